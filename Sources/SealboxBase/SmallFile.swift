import Glibc

/// Reads a whole small file to EOF: pseudo files (procfs and cgroupfs report size 0), /etc
/// files copied into jails, profiles, the broker's config and secret files. One loop, with
/// one EINTR rule and one size cap, for every such read.
public enum SmallFile {
    public enum Failure: Error, Sendable, Equatable {
        case errno(Int32)
        case tooLarge(limit: Int)
    }

    public static func read(_ path: String, limit: Int = 1 << 20, flags: Int32 = O_RDONLY | O_CLOEXEC) -> Result<[UInt8], Failure> {
        let fd = open(path, flags)
        guard fd >= 0 else { return .failure(.errno(errno)) }
        defer { close(fd) }
        return read(descriptor: fd, limit: limit)
    }

    /// Reads an open descriptor from its current offset to EOF; more than `limit` bytes is
    /// `.tooLarge`. The caller keeps the descriptor.
    public static func read(descriptor fd: Int32, limit: Int) -> Result<[UInt8], Failure> {
        var data: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 16 * 1024)
        while true {
            let count = Interrupted.retry { buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) } }
            if count < 0 { return .failure(.errno(errno)) }
            if count == 0 { return .success(data) }
            data.append(contentsOf: buffer[0..<count])
            if data.count > limit { return .failure(.tooLarge(limit: limit)) }
        }
    }
}

extension SmallFile {
    /// Writes `bytes` as the whole of `path`, or leaves what was there: a temporary file
    /// beside it (`mode`), written, fsync'd when `durable`, renamed over `path`, and the
    /// directory fsync'd when `durable`. Returns 0, or the errno of the step that failed.
    @discardableResult
    public static func replace(_ path: String, with bytes: [UInt8], mode: mode_t = 0o600, durable: Bool = true) -> Int32 {
        let temporary = path + ".tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode)
        guard fd >= 0 else { return errno }
        var failed: Int32 = bytes.withUnsafeBytes { Interrupted.writeAll(fd, $0) } ? 0 : errno
        if failed == 0, durable, fsync(fd) != 0 { failed = errno }
        close(fd)
        if failed == 0, rename(temporary, path) != 0 { failed = errno }
        if failed != 0 {
            unlink(temporary)
            return failed
        }
        if durable {
            let slash = path.lastIndex(of: "/").map { String(path[..<$0]) } ?? "."
            let dir = open(slash.isEmpty ? "/" : slash, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
            if dir >= 0 {
                _ = fsync(dir)
                close(dir)
            }
        }
        return 0
    }
}
