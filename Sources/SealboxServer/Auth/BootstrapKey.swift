import SealboxBase
import Foundation
import Glibc
import SealboxAccess

/// The first key of a fresh installation. `sealbox serve` with auth on and a key store holding
/// no key at all makes an operator key for tenant `default` and writes it to
/// `StateLayout.bootstrapKeyPath` (mode 0600), so the first request is
///
///     curl -H "Authorization: Bearer $(cat /var/lib/sealbox/api-key)" localhost:8080/v1/runs -d '…'
///
/// The key is written to that file only, never printed (a terminal scrollback or a journal is
/// not a secret store).
public enum BootstrapKey {
    public static let tenant = "default"
    public static let name = "bootstrap"

    /// Returns the path written, or nil when the store already has keys (revoked ones count:
    /// an operator who revoked every key did so on purpose). The file is created with
    /// O_EXCL | O_NOFOLLOW before the key exists, so an existing file (or a symlink planted
    /// there) is never overwritten or followed.
    public static func ensure(keys: KeyStore, path: String) throws(AccessError) -> String? {
        guard try keys.count() == 0 else { return nil }
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard fd >= 0 else {
            let reason = String(cString: strerror(errno))
            if errno == EEXIST {
                throw AccessError(.badPath, "the key store \(keys.location) has no keys but \(path) exists (a key of an earlier store?): remove it, or make a key with `sealbox keys create --operator --tenant default`")
            }
            throw AccessError(.badPath, "cannot create the bootstrap key file \(path): \(reason)")
        }
        var keepFile = false
        defer {
            close(fd)
            if !keepFile { unlink(path) }
        }
        // Another server may have made the first key since the count above: then it wrote the
        // file (or lost the race on the file to us and gets EEXIST); either way make none here.
        guard let created = try keys.createIfEmpty(tenant: tenant, name: name, isOperator: true) else { return nil }
        let bytes = Array((created.key + "\n").utf8)
        var offset = 0
        while offset < bytes.count {
            let n = Interrupted.retry { bytes.withUnsafeBytes { write(fd, $0.baseAddress! + offset, $0.count - offset) } }
            guard n > 0 else {
                let reason = String(cString: strerror(errno))
                try? keys.delete(id: created.info.id)
                throw AccessError(.badPath, "cannot write the bootstrap key file \(path): \(reason)")
            }
            offset += n
        }
        guard fsync(fd) == 0 else {
            let reason = String(cString: strerror(errno))
            try? keys.delete(id: created.info.id)
            throw AccessError(.badPath, "cannot sync the bootstrap key file \(path): \(reason)")
        }
        keepFile = true
        return path
    }
}

extension SealboxAPI {
    /// For `sealbox serve` at start: with auth on, makes the bootstrap key when the key store
    /// is empty and returns the file it wrote (print the path, not the key); nil otherwise.
    public func bootstrapKeyIfNeeded() throws(AccessError) -> String? {
        guard configuration.authRequired else { return nil }
        return try BootstrapKey.ensure(keys: access.keys, path: configuration.layout.bootstrapKeyPath)
    }
}
