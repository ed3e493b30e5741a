import SealboxBase
import Foundation
import Glibc

/// One `sealbox serve` per state directory: an exclusive `flock` on STATE/serve.lock, taken
/// before anything else is touched (keys, logs, the broker's sockets), held for the server's
/// life and released by the kernel when the process dies however it dies. The file holds the
/// holder's pid, so a second server says whom it ran into. The descriptor is close-on-exec,
/// so the broker (a child process, which may outlive a killed server by a few seconds while
/// it seals calls in flight) never holds it.
public final class StateDirectoryLock: Sendable {
    public let path: String
    private let fd: Int32

    private init(path: String, fd: Int32) {
        self.path = path
        self.fd = fd
    }

    public static func acquire(_ layout: StateLayout) throws(ServiceStartError) -> StateDirectoryLock {
        let path = layout.serveLockPath
        let fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard fd >= 0 else {
            throw ServiceStartError("cannot open \(path): \(String(cString: strerror(errno)))")
        }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            let code = errno
            let holder = Self.holder(fd)
            close(fd)
            if code == EWOULDBLOCK {
                throw ServiceStartError("another sealbox serve\(holder.map { " (pid \($0))" } ?? "") is using the state directory \(layout.stateDirectory); stop it first, or give this one another --state-dir")
            }
            throw ServiceStartError("cannot lock \(path): \(String(cString: strerror(code)))")
        }
        let text = "\(getpid())\n"
        _ = ftruncate(fd, 0)
        _ = text.withCString { pwrite(fd, $0, strlen($0), 0) }
        return StateDirectoryLock(path: path, fd: fd)
    }

    /// The pid written by the server holding the lock, if it reads as one.
    static func holder(_ fd: Int32) -> Int32? {
        var buffer = [UInt8](repeating: 0, count: 32)
        let n = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, 0) }
        guard n > 0 else { return nil }
        return Int32(String(decoding: buffer[0..<n], as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines))
    }

    deinit {
        close(fd)
    }
}
