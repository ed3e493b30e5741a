import CSealboxSpawn
import Foundation
import Glibc
import SealboxTestSupport
@testable import SealboxJail

/// Runs a program on the host, unjailed, the way the compatibility battery's baseline needs it:
/// in its own session (so everything it starts can be killed as a group), with exactly the
/// environment a jail gets, in a directory holding the same files as the jail's /work, bounded
/// in time. Blocking: call it from a thread of its own (`HostRun.run`).
enum HostRun {
    /// The jail's environment but HOME, which `run` sets to the run's own directory.
    static let jailEnvironment: [(String, String)] = [("PATH", Executor.jailPath), ("LANG", "C.UTF-8")]

    struct Output: Sendable, Equatable {
        var exitCode: Int32
        var stdout: String
        var stderr: String
        var timedOut: Bool
    }

    /// `command[0]` is looked up in the jail's PATH, as the jail does; the files are written
    /// into a fresh directory that is the program's working directory and HOME (as /work is
    /// the jail's).
    static func run(_ command: [String], files: [SeedFile], environment: [(String, String)], timeoutMs: Int) async throws -> Output {
        try await offPool { try runBlocking(command, files: files, environment: environment, timeoutMs: timeoutMs) }
    }

    static func resolve(_ program: String) -> String? {
        if program.contains("/") { return program }
        for dir in Executor.jailPath.split(separator: ":") where access("\(dir)/\(program)", X_OK) == 0 {
            return "\(dir)/\(program)"
        }
        return nil
    }

    static func runBlocking(_ command: [String], files: [SeedFile], environment: [(String, String)], timeoutMs: Int) throws -> Output {
        let dir = try TemporaryDirectory.make("host-run")
        defer { TemporaryDirectory.remove(dir) }
        for file in files {
            let path = dir + "/" + file.name
            guard FileManager.default.createFile(atPath: path, contents: Data(file.contents)),
                  chmod(path, file.executable ? 0o755 : 0o644) == 0 else { throw FixtureError("cannot write \(path)") }
        }
        guard let program = resolve(command[0]) else { throw FixtureError("\(command[0]) is not installed on this host (PATH \(Executor.jailPath))") }
        // setsid(1) execs in place (a posix_spawned child is no group leader), so the pid is
        // the session's and kill(-pid) reaches everything the program started. env -i -C gives
        // the jail's environment and working directory and nothing of the test process's.
        let vars = environment.map { "\($0.0)=\($0.1)" } + ["HOME=\(dir)"]
        let argv = ["/usr/bin/setsid", "/usr/bin/env", "-i", "-C", dir] + vars + [program] + command.dropFirst()

        var outPipe: [Int32] = [-1, -1], errPipe: [Int32] = [-1, -1]
        guard sbx_pipe_cloexec(&outPipe) == 0, sbx_pipe_cloexec(&errPipe) == 0 else { throw FixtureError("pipe: \(errno)") }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, outPipe[1], 1)
        posix_spawn_file_actions_adddup2(&actions, errPipe[1], 2)
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        // Default signal dispositions and an empty mask: the spawning thread may block signals
        // (a test runner thread), and a blocked SIGTERM would survive the exec.
        var all = sigset_t(), none = sigset_t()
        sigfillset(&all)
        sigemptyset(&none)
        posix_spawnattr_setsigdefault(&attributes, &all)
        posix_spawnattr_setsigmask(&attributes, &none)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK))
        var pid: pid_t = 0
        let cArgs = argv.map { strdup($0) } + [nil]
        defer { for arg in cArgs { free(arg) } }
        let rc = posix_spawn(&pid, argv[0], &actions, &attributes, cArgs, [nil])
        close(outPipe[1])
        close(errPipe[1])
        defer {
            close(outPipe[0])
            close(errPipe[0])
        }
        guard rc == 0 else { throw FixtureError("posix_spawn \(argv[0]): \(rc)") }
        let pidfd = sbx_pidfd_open(pid)
        guard pidfd >= 0 else { throw FixtureError("pidfd_open: \(-pidfd)") }
        defer { close(pidfd) }

        var out = [UInt8](), err = [UInt8]()
        var outOpen = true, errOpen = true, exited = false, timedOut = false
        var status: Int32 = 0
        let deadline = Clock.nanos() + UInt64(timeoutMs) * 1_000_000
        var drainDeadline: UInt64?
        var buffer = [UInt8](repeating: 0, count: 65536)
        while outOpen || errOpen || !exited {
            let now = Clock.nanos()
            if !timedOut && now >= deadline {
                timedOut = true
                kill(-pid, SIGKILL)
            }
            if let drain = drainDeadline, now >= drain { break }
            var fds: [pollfd] = []
            if !exited { fds.append(pollfd(fd: pidfd, events: Int16(POLLIN), revents: 0)) }
            if outOpen { fds.append(pollfd(fd: outPipe[0], events: Int16(POLLIN), revents: 0)) }
            if errOpen { fds.append(pollfd(fd: errPipe[0], events: Int16(POLLIN), revents: 0)) }
            let wake = drainDeadline ?? (timedOut ? now + 5_000_000_000 : deadline)
            let n = poll(&fds, nfds_t(fds.count), Int32(clamping: (wake > now ? wake - now : 0) / 1_000_000 + 1))
            if n < 0 && errno == EINTR { continue }
            for entry in fds where entry.revents != 0 {
                if entry.fd == pidfd {
                    while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
                    exited = true
                    // Whatever the program left running (a daemonised child) goes with it, as
                    // in a jail; it would otherwise hold the pipes open.
                    kill(-pid, SIGKILL)
                    drainDeadline = Clock.nanos() + 5_000_000_000
                    continue
                }
                let count = buffer.withUnsafeMutableBytes { read(entry.fd, $0.baseAddress, $0.count) }
                if count > 0 {
                    if entry.fd == outPipe[0] { out += buffer[0..<count] } else { err += buffer[0..<count] }
                } else if count == 0 || (errno != EINTR && errno != EAGAIN) {
                    if entry.fd == outPipe[0] { outOpen = false } else { errOpen = false }
                }
            }
        }
        if !exited {
            kill(-pid, SIGKILL)
            while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        }
        // WIFEXITED / WEXITSTATUS / WTERMSIG, which Swift does not import as functions.
        let signal = status & 0x7f
        let code = signal == 0 ? (status >> 8) & 0xff : 128 + signal
        return Output(exitCode: code, stdout: String(decoding: out, as: UTF8.self), stderr: String(decoding: err, as: UTF8.self),
                      timedOut: timedOut)
    }
}
