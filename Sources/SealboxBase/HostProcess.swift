import Foundation
import Glibc
import Synchronization

/// A host program sealbox starts (a command tool, its own broker): posix_spawn, no shell, every
/// descriptor above 2 closed in the child (`posix_spawn_file_actions_addclosefrom_np`), the
/// signals sealbox handles back at their defaults and none blocked. Closing every other
/// descriptor matters twice: a child never holds a socket or pipe of another request, and
/// a child started with a low RLIMIT_NOFILE never fails on an inherited descriptor numbered
/// above it (Foundation's `Process.run` failed so with EBADF).
///
/// The child is reaped once, by `wait()` or `stop(grace:)`; until then its pid stays ours, so
/// a signal never reaches a recycled pid.
public final class HostProcess: Sendable {
    public let pid: pid_t
    private let reaped = Mutex<Int32?>(nil)

    public struct Options: Sendable {
        /// Descriptors for the child's 0, 1 and 2; nil is /dev/null.
        public var stdin: Int32?
        public var stdout: Int32?
        public var stderr: Int32?
        public var workingDirectory: String?
        /// A process group of its own, so the whole group can be killed at once.
        public var newProcessGroup: Bool

        public init(stdin: Int32? = nil, stdout: Int32? = nil, stderr: Int32? = nil, workingDirectory: String? = nil, newProcessGroup: Bool = false) {
            self.stdin = stdin
            self.stdout = stdout
            self.stderr = stderr
            self.workingDirectory = workingDirectory
            self.newProcessGroup = newProcessGroup
        }
    }

    /// The stage and errno of a failed start.
    public struct SpawnError: Error, CustomStringConvertible, Sendable {
        public let errno: Int32
        public var description: String { "posix_spawn: \(String(cString: strerror(errno)))" }
    }

    private init(pid: pid_t) {
        self.pid = pid
    }

    /// `wrap` sees the spawn call itself (the broker records a command tool's pid while no
    /// other thread can reap it: `CommandOrphans.spawning`).
    public static func spawn(_ argv: [String], environment: [String], options: Options = Options(),
                             wrap: (() -> pid_t?) -> Void = { _ = $0() }) throws(SpawnError) -> HostProcess {
        precondition(!argv.isEmpty, "a program to start")
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        for (target, source) in [(Int32(0), options.stdin), (1, options.stdout), (2, options.stderr)] {
            let rc = source.map { posix_spawn_file_actions_adddup2(&actions, $0, target) }
                ?? posix_spawn_file_actions_addopen(&actions, target, "/dev/null", target == 0 ? O_RDONLY : O_WRONLY, 0)
            guard rc == 0 else { throw SpawnError(errno: rc) }
        }
        guard let closeFrom = cLibrarySymbol("posix_spawn_file_actions_addclosefrom_np", as: AddCloseFrom.self) else {
            // glibc < 2.34: no way to close what another thread opened without O_CLOEXEC.
            throw SpawnError(errno: ENOSYS)
        }
        var rc = closeFrom(&actions, 3)
        guard rc == 0 else { throw SpawnError(errno: rc) }
        if let directory = options.workingDirectory {
            guard let chdir = cLibrarySymbol("posix_spawn_file_actions_addchdir_np", as: AddChdir.self) else { throw SpawnError(errno: ENOSYS) }
            rc = directory.withCString { chdir(&actions, $0) }
            guard rc == 0 else { throw SpawnError(errno: rc) }
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
        var flags = POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF
        if options.newProcessGroup {
            posix_spawnattr_setpgroup(&attributes, 0)
            flags |= POSIX_SPAWN_SETPGROUP
        }
        posix_spawnattr_setflags(&attributes, Int16(flags))

        let cArgv = argv.map { strdup($0) } + [nil]
        let cEnv = environment.map { strdup($0) } + [nil]
        defer {
            for p in cArgv { free(p) }
            for p in cEnv { free(p) }
        }
        var pid: pid_t = 0
        // ETXTBSY: the program file is open for writing somewhere, typically because another
        // thread of this process forked (a jail spawn) while the file was being written, and
        // the child still holds the descriptor until it execs or closes it. That lasts
        // milliseconds; retry for up to about a second before calling it a failure.
        for attempt in 0...20 {
            if attempt > 0 { usleep(50_000) }
            wrap {
                rc = posix_spawn(&pid, argv[0], &actions, &attributes, cArgv, cEnv)
                return rc == 0 ? pid : nil
            }
            if rc != ETXTBSY { break }
        }
        guard rc == 0 else { throw SpawnError(errno: rc) }
        return HostProcess(pid: pid)
    }

    /// Whether the child has exited (it is not reaped: its pid stays ours).
    public var hasExited: Bool {
        if reaped.withLock({ $0 }) != nil { return true }
        var info = siginfo_t()
        let r = waitid(P_PID, id_t(pid), &info, WEXITED | WNOHANG | WNOWAIT)
        return r == 0 && info._sifields._kill.si_pid == pid
    }

    /// Signals the child (`group`: its whole process group), unless it was reaped already.
    public func signal(_ signal: Int32, group: Bool = false) {
        reaped.withLock { status in
            if status == nil { _ = kill(group ? -pid : pid, signal) }
        }
    }

    /// Blocks until the child exits and reaps it; its wait status. Call it off the cooperative
    /// pool (`onOwnThread`). The wait itself holds no lock (waitid with WNOWAIT), so `signal`
    /// from another thread meanwhile still reaches the child.
    @discardableResult
    public func wait() -> Int32 {
        if let status = reaped.withLock({ $0 }) { return status }
        var info = siginfo_t()
        _ = Interrupted.retry { waitid(P_PID, id_t(pid), &info, WEXITED | WNOWAIT) }
        return reaped.withLock { reaped in
            if let reaped { return reaped }
            var status: Int32 = 0
            _ = Interrupted.retry { waitpid(pid, &status, 0) }
            reaped = status
            return status
        }
    }

    /// SIGTERM, up to `grace` for the child to end, then SIGKILL; reaped. Blocks.
    public func stop(grace: Duration) {
        guard reaped.withLock({ $0 }) == nil else { return }
        signal(SIGTERM)
        let deadline = ContinuousClock.now + grace
        while !hasExited && ContinuousClock.now < deadline { usleep(5_000) }
        if !hasExited { signal(SIGKILL) }
        wait()
    }

    private typealias AddCloseFrom = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>?, Int32) -> Int32
    private typealias AddChdir = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>?, UnsafePointer<CChar>?) -> Int32
}
