import Glibc
import SealboxBase

/// Thin, errno-checked wrappers over the syscalls cgroupfs needs.
///
/// cgroupfs files must be written with a single `write(2)`; every failure is reported with the
/// file and errno.
enum CgroupFS {
    /// Open `path` with `flags`, retrying on EINTR. Returns the fd or throws stage "open".
    static func open(_ path: String, _ flags: Int32) throws(CgroupError) -> Int32 {
        let fd = Interrupted.retry { Glibc.open(path, flags) }
        guard fd >= 0 else { throw CgroupError(stage: "open", path: path, errno: Glibc.errno) }
        return fd
    }

    /// Write `value` with a single write(2) to an already open fd.
    static func write(_ value: String, fd: Int32, path: String) throws(CgroupError) {
        let bytes = Array(value.utf8)
        let written = Interrupted.retry { bytes.withUnsafeBytes { raw in Glibc.write(fd, raw.baseAddress, raw.count) } }
        if written < 0 {
            throw CgroupError(stage: "write", path: path, errno: Glibc.errno, message: "writing \"\(value)\"")
        }
        if written != bytes.count {
            throw CgroupError(
                stage: "write", path: path,
                message: "short write of \"\(value)\" (\(written) of \(bytes.count) bytes)")
        }
    }

    /// open(O_WRONLY|O_CLOEXEC) + one write + close.
    static func write(_ value: String, to path: String) throws(CgroupError) {
        let fd = try open(path, O_WRONLY | O_CLOEXEC)
        defer { _ = Glibc.close(fd) }
        try write(value, fd: fd, path: path)
    }

    /// Read a whole (small, pseudo) file. cgroupfs/procfs report size 0, so read until EOF.
    static func read(_ path: String) throws(CgroupError) -> String {
        switch SmallFile.read(path) {
        case .success(let data):
            return String(decoding: data, as: UTF8.self)
        case .failure(.errno(let code)):
            throw CgroupError(stage: "read", path: path, errno: code)
        case .failure(.tooLarge(let limit)):
            throw CgroupError(stage: "read", path: path, message: "larger than \(limit) bytes")
        }
    }

    /// Read a file, returning nil on any error (for optional statistics files).
    static func readIfPresent(_ path: String) -> String? {
        do {
            return try read(path)
        } catch {
            return nil
        }
    }

    static func exists(_ path: String) -> Bool {
        Glibc.access(path, F_OK) == 0
    }

    static func isDirectory(_ path: String) -> Bool {
        let fd = Glibc.open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { return false }
        _ = Glibc.close(fd)
        return true
    }

    /// mkdir(path, 0755). With `allowExisting`, EEXIST on an existing directory is not an error.
    static func mkdir(_ path: String, allowExisting: Bool) throws(CgroupError) {
        if Glibc.mkdir(path, 0o755) == 0 { return }
        let code = Glibc.errno
        if code == EEXIST && allowExisting && isDirectory(path) { return }
        throw CgroupError(stage: "mkdir", path: path, errno: code)
    }

    /// rmdir(path); a directory that is already gone is not an error.
    static func rmdir(_ path: String) throws(CgroupError) {
        if Interrupted.retry({ Glibc.rmdir(path) }) == 0 { return }
        let code = Glibc.errno
        if code == ENOENT { return }
        throw CgroupError(stage: "rmdir", path: path, errno: code)
    }

    static func close(_ fd: Int32) {
        if fd >= 0 { _ = Glibc.close(fd) }
    }

    /// Sleep for `micros` microseconds.
    static func pause(micros: UInt32) {
        _ = usleep(micros)
    }

    /// Monotonic clock in nanoseconds, for bounded polling loops.
    static func monotonicNanos() -> UInt64 {
        var spec = timespec()
        clock_gettime(CLOCK_MONOTONIC, &spec)
        return UInt64(spec.tv_sec) * 1_000_000_000 + UInt64(spec.tv_nsec)
    }

    /// Poll `condition` every `intervalMicros` until it holds or `timeoutNanos` passes.
    /// Returns whether the condition held.
    static func poll(
        timeoutNanos: UInt64, intervalMicros: UInt32 = 10_000, _ condition: () -> Bool
    ) -> Bool {
        let deadline = monotonicNanos() + timeoutNanos
        while true {
            if condition() { return true }
            if monotonicNanos() >= deadline { return false }
            pause(micros: intervalMicros)
        }
    }

    /// PIDs listed in a cgroup.procs file; nil if it cannot be read (e.g. the cgroup is gone).
    static func procs(_ path: String) -> [pid_t]? {
        guard let text = readIfPresent(path) else { return nil }
        return CgroupParsing.parsePIDList(text)
    }

    /// SIGKILL each pid (never pid <= 0 or ourselves). ESRCH is ignored.
    /// Returns the first unexpected error, if any, after trying every pid.
    static func killEach(_ pids: [pid_t], path: String) -> CgroupError? {
        let me = getpid()
        var firstError: CgroupError?
        for pid in pids where pid > 0 && pid != me {
            if Glibc.kill(pid, SIGKILL) != 0 {
                let code = Glibc.errno
                if code != ESRCH && firstError == nil {
                    firstError = CgroupError(stage: "kill", path: path, errno: code, message: "SIGKILL pid \(pid)")
                }
            }
        }
        return firstError
    }
}
