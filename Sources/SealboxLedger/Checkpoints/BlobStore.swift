import Crypto
import Foundation
import Glibc
import SealboxBase

/// Workspace file contents, content-addressed ("sha256:<64 hex>"). The store computes the
/// digest as it writes: a caller's digest never names a blob it did not store, and one that
/// is not a digest opens nothing. A blob named in a sealed checkpoint is durable before the
/// seal, and immutable once named.
public protocol BlobStore: Sendable {
    /// Stores what `fd` holds (read from offset 0 to EOF). Returns the digest, the size, and
    /// whether the bytes were new to the store.
    func put(fd: Int32) throws(CheckpointError) -> (digest: String, size: UInt64, stored: Bool)
    /// A read-only descriptor of the blob's bytes (the caller closes it).
    func open(_ digest: String) throws(CheckpointError) -> Int32
    /// Whether the blob is there and its bytes still hash to its name.
    func check(_ digest: String) -> Bool
    /// Removes what interrupted writes left behind; returns how many.
    func sweepTemporaries() -> Int
}

/// The one-machine blob store: blobs/<2 hex>/<64 hex> beside the checkpoint database, written
/// to a temporary name, fsync'd, renamed, and the directory fsync'd.
public struct DirectoryBlobStore: BlobStore {
    public let directory: String

    public init(directory: String) {
        self.directory = directory
    }

    public func path(of digest: String) -> String? {
        guard digest.hasPrefix("sha256:") else { return nil }
        let hex = digest.dropFirst(7)
        guard hex.count == 64, hex.allSatisfy({ $0.isHexDigit && !$0.isUppercase }) else { return nil }
        return "\(directory)/\(hex.prefix(2))/\(hex)"
    }

    /// Stores what `fd` holds (read from offset 0 to EOF). Returns the digest, the size, and
    /// whether the bytes were new to the store.
    public func put(fd: Int32) throws(CheckpointError) -> (digest: String, size: UInt64, stored: Bool) {
        let (digest, size) = try hash(fd: fd)
        guard let final = path(of: digest) else { throw CheckpointError(.storage, "bad digest \(digest)") }
        if access(final, F_OK) == 0 { return (digest, size, false) }
        try makeDirectory((final as NSString).deletingLastPathComponent)
        let temporary = "\(directory)/tmp-\(getpid())-\(UInt64.random(in: 0...UInt64.max))"
        let out = Glibc.open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o444)
        guard out >= 0 else { throw Self.failure("create \(temporary)") }
        var ok = false
        defer {
            close(out)
            if !ok { unlink(temporary) }
        }
        try copy(from: fd, to: out)
        guard fsync(out) == 0 else { throw Self.failure("fsync \(temporary)") }
        guard rename(temporary, final) == 0 else { throw Self.failure("rename to \(final)") }
        ok = true
        try syncDirectory((final as NSString).deletingLastPathComponent)
        return (digest, size, true)
    }

    /// Removes partial blobs (`tmp-<pid>-<n>`) of writers that are gone: a process killed
    /// between creating its temporary file and renaming it leaves one. Returns how many.
    @discardableResult
    public func sweepTemporaries() -> Int {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: directory) else { return 0 }
        var removed = 0
        for name in names where name.hasPrefix("tmp-") {
            let fields = name.split(separator: "-")
            guard fields.count == 3, let pid = Int32(fields[1]) else { continue }
            if pid != getpid(), kill(pid, 0) != 0, errno == ESRCH, unlink(directory + "/" + name) == 0 { removed += 1 }
        }
        return removed
    }

    /// Opens a blob for reading.
    public func open(_ digest: String) throws(CheckpointError) -> Int32 {
        guard let path = path(of: digest) else { throw CheckpointError(.storage, "bad blob digest \(digest)") }
        let fd = Glibc.open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
        guard fd >= 0 else { throw Self.failure("open blob \(digest)") }
        return fd
    }

    /// Re-hashes a blob: false when its bytes no longer match its name.
    public func check(_ digest: String) -> Bool {
        guard let fd = try? open(digest) else { return false }
        defer { close(fd) }
        return (try? hash(fd: fd).digest) == digest
    }

    private func hash(fd: Int32) throws(CheckpointError) -> (digest: String, size: UInt64) {
        var hasher = SHA256()
        var size: UInt64 = 0
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        var offset: off_t = 0
        while true {
            let n = Interrupted.retry { buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, offset) } }
            if n < 0 { throw Self.failure("read workspace file") }
            if n == 0 { break }
            hasher.update(data: buffer[0..<n])
            size += UInt64(n)
            offset += off_t(n)
        }
        return ("sha256:" + Hex.encode(hasher.finalize()), size)
    }

    private func copy(from input: Int32, to output: Int32) throws(CheckpointError) {
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        var offset: off_t = 0
        while true {
            let n = Interrupted.retry { buffer.withUnsafeMutableBytes { pread(input, $0.baseAddress, $0.count, offset) } }
            if n < 0 { throw Self.failure("read workspace file") }
            if n == 0 { return }
            offset += off_t(n)
            var written = 0
            while written < n {
                let w = Interrupted.retry { buffer.withUnsafeBytes { write(output, $0.baseAddress! + written, n - written) } }
                if w < 0 { throw Self.failure("write blob") }
                written += w
            }
        }
    }

    private func makeDirectory(_ path: String) throws(CheckpointError) {
        if mkdir(directory, 0o700) != 0 && errno != EEXIST { throw Self.failure("mkdir \(directory)") }
        if mkdir(path, 0o700) != 0 && errno != EEXIST { throw Self.failure("mkdir \(path)") }
    }

    private func syncDirectory(_ path: String) throws(CheckpointError) {
        let fd = Glibc.open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw Self.failure("open \(path)") }
        defer { close(fd) }
        guard fsync(fd) == 0 else { throw Self.failure("fsync \(path)") }
    }

    static func failure(_ what: String) -> CheckpointError {
        CheckpointError(.storage, "blob store: \(what): \(String(cString: strerror(errno)))")
    }
}
