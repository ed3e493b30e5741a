import Foundation
import SealboxBase
import SealboxLedger

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Runs a command tool's program with posix_spawn: no shell, stdin /dev/null, stdout and stderr
/// captured (each capped; the rest is read and discarded so the program never blocks on a full
/// pipe), a fresh process group killed with SIGKILL at the deadline, every other descriptor closed.
enum CommandToolProcess {
    struct Result: Sendable {
        let exitCode: Int32?
        let signal: Int32?
        let stdout: Data
        let stderr: Data
        let stdoutTruncated: Bool
        let stderrTruncated: Bool
    }

    enum Failure: Error, Sendable {
        case spawn(Int32)
        case pipe(Int32)
        case timedOut
        case cancelled
    }

    static func run(
        argv: [String], environment: [String], workingDirectory: String, timeoutMs: Int, maxBytes: Int
    ) async -> Swift.Result<Result, Failure> {
        let control = CommandToolControl()
        return await withTaskCancellationHandler {
            await withCheckedContinuation { (c: CheckedContinuation<Swift.Result<Result, Failure>, Never>) in
                let thread = Thread {
                    c.resume(returning: runBlocking(
                        argv: argv, environment: environment, workingDirectory: workingDirectory,
                        timeoutMs: timeoutMs, maxBytes: maxBytes, control: control
                    ))
                }
                thread.name = "sealbox-command-tool"
                thread.start()
            }
        } onCancel: {
            control.cancel()
        }
    }

    private typealias AddCloseFrom = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>?, Int32) -> Int32
    private typealias AddChdir = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>?, UnsafePointer<CChar>?) -> Int32

    private typealias Pipe2 = @convention(c) (UnsafeMutablePointer<Int32>?, Int32) -> Int32

    /// A close-on-exec pipe (pipe2 when the C library has it, so no other spawn can inherit it).
    private static func makePipe(_ fds: inout [Int32]) -> Bool {
        if let pipe2 = symbol("pipe2", as: Pipe2.self) {
            return fds.withUnsafeMutableBufferPointer { pipe2($0.baseAddress, O_CLOEXEC) } == 0
        }
        guard pipe(&fds) == 0 else { return false }
        _ = fcntl(fds[0], F_SETFD, FD_CLOEXEC)
        _ = fcntl(fds[1], F_SETFD, FD_CLOEXEC)
        return true
    }

    /// glibc ≥ 2.34 / 2.29 extensions, looked up at run time (the Glibc module hides _GNU_SOURCE API).
    private static func symbol<T>(_ name: String, as: T.Type) -> T? {
        guard let handle = dlopen(nil, RTLD_NOW), let p = dlsym(handle, name) else { return nil }
        return unsafeBitCast(p, to: T.self)
    }

    private static func runBlocking(
        argv: [String], environment: [String], workingDirectory: String, timeoutMs: Int, maxBytes: Int,
        control: CommandToolControl
    ) -> Swift.Result<Result, Failure> {
        var outPipe: [Int32] = [-1, -1]
        var errPipe: [Int32] = [-1, -1]
        guard makePipe(&outPipe) else { return .failure(.pipe(errno)) }
        guard makePipe(&errPipe) else {
            let e = errno
            close(outPipe[0]); close(outPipe[1])
            return .failure(.pipe(e))
        }

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, outPipe[1], 1)
        posix_spawn_file_actions_adddup2(&actions, errPipe[1], 2)
        if let closeFrom = symbol("posix_spawn_file_actions_addclosefrom_np", as: AddCloseFrom.self) {
            _ = closeFrom(&actions, 3)
        }
        if let chdir = symbol("posix_spawn_file_actions_addchdir_np", as: AddChdir.self) {
            _ = workingDirectory.withCString { chdir(&actions, $0) }
        }

        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var emptyMask = sigset_t()
        sigemptyset(&emptyMask)
        posix_spawnattr_setsigmask(&attributes, &emptyMask)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for s in [SIGPIPE, SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGCHLD, SIGUSR1, SIGUSR2, SIGALRM] { sigaddset(&defaults, s) }
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setpgroup(&attributes, 0)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))

        let cArgv = argv.map { strdup($0) } + [nil]
        let cEnv = environment.map { strdup($0) } + [nil]
        defer {
            for p in cArgv { free(p) }
            for p in cEnv { free(p) }
        }
        var pid: pid_t = 0
        var rc: Int32 = 0
        // ETXTBSY: the program file is open for writing somewhere, typically because another
        // thread of this process forked (a jail spawn) while the file was being written, and
        // the child still holds the descriptor until it execs or closes it. That lasts
        // milliseconds; retry for up to about a second before calling it a failure.
        for attempt in 0...20 {
            if attempt > 0 { usleep(50_000) }
            _ = CommandOrphans.spawning {
                rc = posix_spawn(&pid, argv[0], &actions, &attributes, cArgv, cEnv)
                return rc == 0 ? pid : nil
            }
            if rc != ETXTBSY { break }
        }
        close(outPipe[1])
        close(errPipe[1])
        guard rc == 0 else {
            close(outPipe[0]); close(errPipe[0])
            return .failure(.spawn(rc))
        }

        let start = ContinuousClock.now
        let deadline = start + .milliseconds(timeoutMs)
        var out = CappedBuffer(cap: maxBytes)
        var err = CappedBuffer(cap: maxBytes)
        var fds: [Int32] = [outPipe[0], errPipe[0]]
        var status: Int32 = 0
        var exited = false
        var exitedAt: ContinuousClock.Instant?
        var killedFor: Failure?
        var buffer = [UInt8](repeating: 0, count: 65536)

        while true {
            if !exited && hasExited(pid) { exited = true; exitedAt = .now }
            if exited && fds.allSatisfy({ $0 < 0 }) { break }
            // A grandchild may keep a pipe open after the program exited: give it a moment, no more.
            if exited, let at = exitedAt, ContinuousClock.now - at > .milliseconds(200) { break }
            if control.isCancelled { killedFor = .cancelled; break }
            let now = ContinuousClock.now
            if now >= deadline { killedFor = .timedOut; break }
            let remaining = deadline - now
            let waitMs = min(Int(remaining.components.seconds * 1000 + remaining.components.attoseconds / 1_000_000_000_000_000) + 1, 50)
            if fds.allSatisfy({ $0 < 0 }) {
                usleep(UInt32(min(waitMs, 5) * 1000))
                continue
            }
            var pollFds = fds.filter { $0 >= 0 }.map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
            let n = poll(&pollFds, nfds_t(pollFds.count), Int32(waitMs))
            if n < 0 && errno != EINTR { break }
            for p in pollFds where p.revents != 0 {
                let count = buffer.withUnsafeMutableBytes { read(p.fd, $0.baseAddress, $0.count) }
                if count > 0 {
                    if p.fd == outPipe[0] { out.append(buffer, count) } else { err.append(buffer, count) }
                } else if count == 0 || (errno != EINTR && errno != EAGAIN) {
                    close(p.fd)
                    fds = fds.map { $0 == p.fd ? -1 : $0 }
                }
            }
        }
        for fd in fds where fd >= 0 { close(fd) }
        // The program is not reaped yet (hasExited uses WNOWAIT), so its pid still names our
        // process group: kill whatever is left of it (the program at a deadline, background
        // children after a normal exit), then reap.
        kill(-pid, SIGKILL)
        _ = Interrupted.retry { waitpid(pid, &status, 0) }
        // What left the group (setsid, a double fork) and was orphaned to this broker dies too.
        CommandOrphans.finished(pid)
        if let killedFor { return .failure(killedFor) }
        let exitCode: Int32? = (status & 0x7f) == 0 ? (status >> 8) & 0xff : nil
        let signal: Int32? = (status & 0x7f) != 0 && (status & 0x7f) != 0x7f ? status & 0x7f : nil
        return .success(Result(
            exitCode: exitCode, signal: signal, stdout: out.data, stderr: err.data,
            stdoutTruncated: out.truncated, stderrTruncated: err.truncated
        ))
    }

    /// Whether the child has exited, without reaping it.
    private static func hasExited(_ pid: pid_t) -> Bool {
        var info = siginfo_t()
        let r = waitid(P_PID, id_t(pid), &info, WEXITED | WNOHANG | WNOWAIT)
        return r == 0 && info._sifields._kill.si_pid == pid
    }

    struct CappedBuffer {
        let cap: Int
        var data = Data()
        var truncated = false

        init(cap: Int) { self.cap = cap }

        mutating func append(_ bytes: [UInt8], _ count: Int) {
            let room = cap - data.count
            if count <= room {
                data.append(contentsOf: bytes[0..<count])
            } else {
                if room > 0 { data.append(contentsOf: bytes[0..<room]) }
                truncated = true
            }
        }
    }
}

/// Cancellation shared between the Swift task and the thread that supervises the process.
final class CommandToolControl: @unchecked Sendable {
    private let lock = NSLock()
    private var cancelled = false

    var isCancelled: Bool { lock.withLock { cancelled } }

    func cancel() { lock.withLock { cancelled = true } }
}
