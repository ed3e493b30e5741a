import CSealboxSpawn
import Dispatch
import Foundation
import Glibc
import SealboxBase
import SealboxProfiles
import Synchronization

/// One command to run in a live jail (`LiveJail.run`).
public struct LiveCommand: Sendable {
    public var command: [String]
    /// Over the jail's own (PATH, HOME, LANG and a broker door's), as a run's `environment`.
    public var environment: [(name: String, value: String)]
    /// Where it starts, inside the jail: `/work` or a directory below it.
    public var workingDirectory: String
    public var stdin: StdinSource
    public var timeoutMs: Int
    /// Per stream, as a run's `output_bytes`.
    public var outputBytes: Int
    /// The result's id; nil: a fresh one.
    public var id: String?

    public init(command: [String], environment: [(name: String, value: String)] = [], workingDirectory: String = "/work",
                stdin: StdinSource = .null, timeoutMs: Int = Limits().timeoutMs, outputBytes: Int = Limits().outputBytes, id: String? = nil) {
        self.command = command
        self.environment = environment
        self.workingDirectory = workingDirectory
        self.stdin = stdin
        self.timeoutMs = timeoutMs
        self.outputBytes = outputBytes
        self.id = id
    }
}

/// A jail that stays: the namespaces, cgroup (the limits hold for everything it runs
/// together), filesystem, seccomp filter and dropped privileges of a run's jail, and an init
/// that starts commands in it on request (sbx_resident.c) until `end`.
///
/// A command is started by the jail's own pid 1, never by a host process entering the jail:
/// it gets its own process group, the stdio sealbox passes, the jail's seccomp filter and an
/// execve, exactly as a run's program; its result is a run's result. Several may run at once;
/// what a command leaves running in the background lives on until the jail ends.
public final class LiveJail: @unchecked Sendable {  // immutable but for `state`, a Mutex
    public let id: String
    /// The profile its filter was compiled from.
    public let profile: String
    /// The jail's limits: memory, pids, disk and CPU for everything in it together.
    public let limits: Limits
    /// Whether it came from the warm pool.
    public let fromPool: Bool

    private let jail: PreparedJail
    private let filter: CompiledSeccompFilter
    private let baseEnvironment: [(String, String)]
    private let executor: Executor
    private let liveToken: UInt64
    private let liveJails: LiveJails
    /// The pool's bookkeeping when the jail came from it; the thread that cloned a jail
    /// in-process, kept until it ends (the jail's parent-death signal follows that thread).
    private let onEnd: @Sendable () -> Void

    private struct State {
        var ended = false
        var paused = false
        var nextCommand: Int64 = 1
        var running = 0
    }
    /// Also serializes the control socket: one request and its answer at a time.
    private let state = Mutex(State())

    init(id: String, profile: String, limits: Limits, fromPool: Bool, jail: PreparedJail, filter: CompiledSeccompFilter,
         baseEnvironment: [(String, String)], executor: Executor, liveJails: LiveJails, onEnd: @escaping @Sendable () -> Void) {
        self.id = id
        self.profile = profile
        self.limits = limits
        self.fromPool = fromPool
        self.jail = jail
        self.filter = filter
        self.baseEnvironment = baseEnvironment
        self.executor = executor
        self.liveJails = liveJails
        self.onEnd = onEnd
        self.liveToken = liveJails.register(pidfd: jail.pidfd)
    }

    deinit {
        end()
    }

    /// Whether it ended: `end` was called, or its init died (killed from outside, or by a
    /// service shutting down through `LiveJails`).
    public var hasEnded: Bool {
        state.withLock { $0.ended } || jail.hasExited
    }

    /// Whether `pause` froze it.
    public var isPaused: Bool { state.withLock { $0.paused } }

    /// Freezes everything in it (no CPU time, memory kept: commands running stop where they
    /// are, their wall clock and timeouts go on) or thaws it. A paused jail takes no command.
    public func setPaused(_ paused: Bool) throws(JailError) {
        try state.withLock { state throws(JailError) in
            guard !state.ended else { throw JailError(.setup, "the sandbox has ended") }
            guard state.paused != paused else { return }
            do throws(CgroupError) {
                try jail.cgroup.setFrozen(paused)
            } catch {
                throw JailError(.cgroup, error.description)
            }
            state.paused = paused
        }
    }

    /// `body` with the jail frozen (unless it is paused already), so that nothing in it changes
    /// /work meanwhile: a snapshot of a jail whose commands still run is then still one instant.
    /// A jail whose cgroup cannot freeze (no freezer on this host) runs `body` as it is.
    public func whileFrozen<T>(_ body: () throws -> T) rethrows -> T {
        let froze = state.withLock { state -> Bool in
            guard !state.ended, !state.paused else { return false }
            return (try? jail.cgroup.setFrozen(true)) != nil
        }
        defer { if froze { state.withLock { state in if !state.paused { try? jail.cgroup.setFrozen(false) } } } }
        return try body()
    }

    /// Its /work, for reading from outside (a snapshot: `Workspace.walk`, `openFile`);
    /// `setup` once the jail has ended.
    public func workspaceView() throws(JailError) -> Workspace {
        let fd = duplicateWorkDirectory()
        guard fd >= 0 else { throw JailError(.setup, "the sandbox has ended") }
        return Workspace(viewing: fd, limitBytes: limits.diskBytes)
    }

    /// Commands running now.
    public var runningCommands: Int { state.withLock { $0.running } }

    /// Its cgroup's name (the same in every hierarchy).
    public var cgroupName: String { jail.cgroup.name }

    /// The jail's cgroup usage now (memory, CPU, limit events of everything in it).
    public func usage() -> CgroupUsage { jail.cgroup.usage() }

    /// Kills everything in it, reaps it and removes its cgroup. Idempotent; commands still
    /// running end as killed.
    public func end() {
        let first = state.withLock { state -> Bool in
            defer { state.ended = true }
            return !state.ended
        }
        guard first else { return }
        try? jail.cgroup.killAll()
        jail.discard()  // SIGKILLs init (and so its pid namespace), reaps it, removes the cgroup
        _ = liveJails.unregister(liveToken)
        onEnd()
    }

    /// Runs `command` on a thread of its own, so the caller's pool is never blocked.
    public func run(_ command: LiveCommand, output: OutputObserver? = nil) async throws(JailError) -> JailResult {
        let outcome: Result<JailResult, JailError> = await onOwnThread("sealbox-command") { [self] in
            do throws(JailError) {
                return .success(try runBlocking(command, output: output))
            } catch {
                return .failure(error)
            }
        }
        return try outcome.get()
    }

    /// Runs `command` and waits for it on the calling thread. Throws when the command is not
    /// valid or the jail has ended; a command that cannot start (not found, not executable)
    /// is a result with status `spawn_failed`, as for a run.
    public func runBlocking(_ command: LiveCommand, output: OutputObserver? = nil) throws(JailError) -> JailResult {
        let began = Clock.nanos()
        try Self.validate(command)
        let id = try command.id.map { id throws(JailError) in try SpecValidator.runID(id) } ?? RandomID.run()
        let stdinFD = try Executor.openStdin(command.stdin)
        defer { close(stdinFD) }
        let baseline = jail.cgroup.limitEvents()
        let launched = try launch(command, stdinFD: stdinFD)
        defer { launched.closeReadEnds() }
        let limits = launched.limits
        var supervision = Supervision(limits: limits)
        supervision.stdout = CappedBuffer(cap: limits.outputBytes, stream: .stdout, observer: output)
        supervision.stderr = CappedBuffer(cap: limits.outputBytes, stream: .stderr, observer: output)
        supervision.spawnNanos = Clock.nanos() - launched.started
        if let failure = launched.failure {
            supervision.spawnError = failure
        } else {
            defer { finished(launched) }
            supervision.recording = filter.policy?.fallback == .proceed
            supervision.loop(
                ending: .command(exitFD: launched.exit, kill: { [self] in signal(launched.commandID, SIGKILL) }),
                out: launched.out, err: launched.err, notifyFD: launched.notifyFD,
                policy: filter.policy ?? NotificationPolicy(fallback: .fail(errno: EPERM)), started: launched.started)
            if hasEnded && supervision.exit.map({ $0.exited == 0 && $0.code == SIGKILL }) == true {
                supervision.killedBecause = "the sandbox ended"
            }
        }
        supervision.wallNanos = Clock.nanos() - launched.started
        var result = supervision.verdict(id: id, profile: profile, cgroup: jail.cgroup, baseline: baseline)
        result.phases = supervision.phases(began: began, spawnStarted: launched.started, ended: Clock.nanos(), warm: true)
        return result
    }

    /// A command started in the jail: the read ends of its stdout, stderr and exit pipes, or
    /// why it could not start.
    struct Launched {
        var commandID: Int64
        var limits: Limits
        var out: Int32
        var err: Int32
        var exit: Int32
        var notifyFD: Int32
        var started: UInt64
        /// Why nothing runs (a run's spawn failure: message and exit code).
        var failure: (message: String, exitCode: Int32)?

        func closeReadEnds() {
            for fd in [out, err, exit] { close(fd) }
        }
    }

    /// Starts `command` (checked) with `stdinFD` as its stdin. Throws when the jail ended, is
    /// paused or does not answer; a command that cannot start is a `failure`.
    func launch(_ command: LiveCommand, stdinFD: Int32) throws(JailError) -> Launched {
        var limits = self.limits
        limits.timeoutMs = command.timeoutMs
        limits.outputBytes = command.outputBytes
        var environment = baseEnvironment
        for (name, value) in command.environment {
            if let i = environment.firstIndex(where: { $0.0 == name }) { environment[i].1 = value } else { environment.append((name, value)) }
        }
        var pipes: [(read: Int32, write: Int32)] = []
        do throws(JailError) {
            for _ in 0..<3 { pipes.append(try Pipe.make()) }
        } catch {
            for pipe in pipes { close(pipe.read); close(pipe.write) }
            throw error
        }
        let (outPipe, errPipe, exitPipe) = (pipes[0], pipes[1], pipes[2])
        let inputs = SpawnInputs(
            command: command.command, environment: environment, plan: FilesystemPlan(), newroot: executor.newroot, limits: limits,
            filter: filter, cgroup: jail.cgroup, stdinFD: stdinFD, capLastCap: executor.capLastCap,
            setupTimeoutMs: executor.configuration.setupTimeoutMs, cloner: executor.cloner)
        var start = sbx_command_start()
        let started = Clock.nanos()
        let (rc, commandID) = state.withLock { state -> (Int32, Int64) in
            guard !state.ended else { return (-EPIPE, 0) }
            guard !state.paused else { return (-EAGAIN, 0) }
            let commandID = state.nextCommand
            state.nextCommand += 1
            let rc = withSpawnRequest(inputs, stdoutFD: outPipe.write, stderrFD: errPipe.write, workdir: command.workingDirectory) { req in
                sbx_resident_exec(jail.controlFD, commandID, req, exitPipe.write, Int32(clamping: executor.configuration.setupTimeoutMs), &start)
            }
            if rc == 0 { state.running += 1 }
            return (rc, commandID)
        }
        for fd in [outPipe.write, errPipe.write, exitPipe.write] { close(fd) }
        var launched = Launched(commandID: commandID, limits: limits, out: outPipe.read, err: errPipe.read, exit: exitPipe.read,
                                notifyFD: start.notify_fd, started: started)
        if rc == -EAGAIN || rc < -1 {
            launched.closeReadEnds()
            if rc == -EAGAIN { throw JailError(.invalidSpec, "the sandbox is paused: resume it first") }
            throw JailError(.setup, hasEnded ? "the sandbox has ended" : "the sandbox's init does not answer: \(ErrnoName.describe(-rc))")
        }
        if rc == -1 {
            var failure = sbx_spawn_result()
            failure.failed_stage = Int32(start.failed_stage)
            failure.failed_errno = Int32(start.failed_errno)
            failure.failed_index = start.failed_index
            launched.failure = Supervision.describeSpawnFailure(failure, request: inputs)
        }
        return launched
    }

    /// A started command is over (its status read): its place freed, and its seccomp
    /// listener closed, unless processes it left behind still use its filter: then a thread
    /// of their own answers their notified calls until the last of them is gone (without it,
    /// their next notified call would wait forever).
    func finished(_ launched: Launched) {
        if launched.notifyFD >= 0 {
            var entry = pollfd(fd: launched.notifyFD, events: Int16(POLLIN), revents: 0)
            let stillUsed = poll(&entry, 1, 0) >= 0 && entry.revents & Int16(POLLHUP | POLLERR | POLLNVAL) == 0
            if stillUsed { serveNotifications(launched.notifyFD) } else { close(launched.notifyFD) }
        }
        state.withLock { $0.running -= 1 }
    }

    /// Answers the notified calls of `listener` (a seccomp listener, which it takes) as the
    /// jail's profile says, on a thread of its own, until no task uses the filter any more
    /// (the kernel then says POLLHUP) or the jail ends.
    func serveNotifications(_ listener: Int32) {
        let policy = filter.policy ?? NotificationPolicy(fallback: .fail(errno: EPERM))
        let thread = Thread { [weak self] in
            defer { close(listener) }
            while self.map({ !$0.hasEnded }) ?? false {
                var entry = pollfd(fd: listener, events: Int16(POLLIN), revents: 0)
                let ready = poll(&entry, 1, 500)
                if ready < 0 && errno != EINTR { return }
                if entry.revents & Int16(POLLHUP | POLLERR | POLLNVAL) != 0 { return }
                if entry.revents & Int16(POLLIN) != 0 { _ = Supervision.answerOne(listener, policy: policy) }
            }
        }
        thread.name = "sealbox-notify"
        thread.start()
    }

    /// A duplicate of the descriptor on its /work, or -1 once it ended.
    func duplicateWorkDirectory() -> Int32 {
        state.withLock { state in
            state.ended ? -1 : fcntl(jail.workFD, F_DUPFD_CLOEXEC, 3)
        }
    }

    /// Sends `signal` to command `commandID`'s process group, if it still runs.
    func signal(_ commandID: Int64, _ signal: Int32) {
        state.withLock { state in
            guard !state.ended else { return }
            _ = sbx_resident_signal(jail.controlFD, commandID, signal)
        }
    }

    static func validate(_ command: LiveCommand) throws(JailError) {
        var spec = JailSpec(command: command.command)
        spec.environment = command.environment
        try SpecValidator.validate(spec)
        guard isWorkPath(command.workingDirectory) else {
            throw JailError(.invalidSpec, "the working directory must be /work or a directory below it, without . or .. parts")
        }
        guard command.timeoutMs > 0, command.outputBytes >= 0 else {
            throw JailError(.invalidSpec, "a command's timeout must be positive and its output limit not negative")
        }
    }

    /// `/work` or `/work/a/b`: absolute, no empty, `.` or `..` part, no NUL, at most 4096 bytes.
    public static func isWorkPath(_ path: String) -> Bool {
        guard path.utf8.count <= 4096, !path.utf8.contains(0) else { return false }
        let parts = path.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count >= 2, parts[0].isEmpty, parts[1] == "work" else { return false }
        return parts.dropFirst(2).allSatisfy { !$0.isEmpty && $0 != "." && $0 != ".." }
    }
}

extension Executor {
    /// Starts a live jail for `spec` (its command is not used: commands come with
    /// `LiveJail.run`): from the warm pool when one fits, else prepared now. Its seed files
    /// are in /work when it returns.
    public func startLiveJail(_ spec: JailSpec) throws(JailError) -> LiveJail {
        var checked = spec
        if checked.command.isEmpty { checked.command = ["/bin/true"] }
        try SpecValidator.validate(checked)
        let id = try spec.id.map { id throws(JailError) in try SpecValidator.runID(id) } ?? RandomID.run()
        let (profile, filter) = try filter(for: spec)
        let environment = SpecValidator.environment(spec)

        if spec.compiledFilter == nil, let pool, pool.fits(spec, filter: filter), let jail = pool.take() {
            let ended: @Sendable () -> Void = { pool.finished(jail) }
            for file in spec.files {
                if let problem = jail.writeFile(file) {
                    jail.discard()
                    ended()
                    throw JailError(.setup, problem)
                }
            }
            return try resident(jail, id: id, profile: profile, spec: spec, filter: filter, environment: environment, fromPool: true, onEnd: ended)
        }

        if let workspace = spec.workspace {
            for file in spec.files { try Self.seed(file, into: workspace) }
        }
        let plan = try FilesystemPlan.build(rootfs: spec.rootfs, etcDirectory: etcDirectory, files: spec.files, binds: spec.binds,
                                            door: spec.door, workspaceFD: spec.workspace?.mountFD, shmBytes: spec.limits.devShmBytes)
        let cgroup: any TaskCgroup
        do {
            cgroup = try cgroupDriver.create(name: StaleCgroups.taskName(runID: id), limits: CgroupLimits(spec.limits))
        } catch {
            throw JailError(.cgroup, error.description)
        }
        let devNull = open("/dev/null", O_RDWR | O_CLOEXEC)
        guard devNull >= 0 else {
            try? cgroup.destroy()
            throw JailError.syscall(.setup, "open /dev/null", errno)
        }
        defer { close(devNull) }
        let inputs = SpawnInputs(
            command: ["/bin/true"], environment: [], plan: plan, newroot: newroot, limits: spec.limits,
            workspaceBytes: spec.workspace?.limitBytes ?? 0, filter: filter, cgroup: cgroup, stdinFD: devNull,
            capLastCap: capLastCap, setupTimeoutMs: configuration.setupTimeoutMs, cloner: cloner)
        let prepare: @Sendable () -> Result<PreparedJail, JailError> = { [self] in
            var raw = sbx_prepared()
            var result = sbx_spawn_result()
            let rc = withSpawnRequest(inputs, stdoutFD: devNull, stderrFD: devNull, deferred: true) { req in
                cloner.prepare(req, &raw, &result)
            }
            guard rc == 0 else {
                return .failure(JailError(.setup, "preparing a live jail: " + Supervision.describeSpawnFailure(result, request: inputs).message))
            }
            let steps = withUnsafeBytes(of: raw.step_ns) { Array($0.bindMemory(to: UInt64.self)) }
            return .success(PreparedJail(raw: raw, cgroup: cgroup, owner: -1, prepareSteps: steps))
        }
        // Cloned by this process (no spawner): the jail's parent-death signal follows the
        // cloning thread, so that thread stays until the jail ends.
        let outcome: Result<PreparedJail, JailError>
        let onEnd: @Sendable () -> Void
        if cloner.usesHelper {
            outcome = prepare()
            onEnd = {}
        } else {
            let keeper = ParentThread.run(prepare)
            outcome = keeper.value
            onEnd = { keeper.release() }
        }
        let jail: PreparedJail
        switch outcome {
        case .success(let prepared): jail = prepared
        case .failure(let error):
            onEnd()
            try? cgroup.destroy()
            throw error
        }
        return try resident(jail, id: id, profile: profile, spec: spec, filter: filter, environment: environment, fromPool: false, onEnd: onEnd)
    }

    private func resident(_ jail: PreparedJail, id: String, profile: String, spec: JailSpec, filter: CompiledSeccompFilter,
                          environment: [(String, String)], fromPool: Bool, onEnd: @escaping @Sendable () -> Void) throws(JailError) -> LiveJail {
        let rc = jail.makeResident(timeoutMs: configuration.setupTimeoutMs)
        guard rc == 0 else {
            jail.discard()
            onEnd()
            throw JailError(.setup, "the live jail's init did not take over: \(ErrnoName.describe(-rc))")
        }
        return LiveJail(id: id, profile: profile, limits: spec.limits, fromPool: fromPool, jail: jail, filter: filter,
                        baseEnvironment: environment, executor: self, liveJails: spec.liveJails, onEnd: onEnd)
    }
}

/// A thread that runs one body and then stays, asleep, until released: the parent of a jail
/// cloned in this process must outlive it (PR_SET_PDEATHSIG follows the cloning thread).
final class ParentThread<T: Sendable>: Sendable {
    let value: T
    private let stay: DispatchSemaphore

    private init(value: T, stay: DispatchSemaphore) {
        self.value = value
        self.stay = stay
    }

    /// Runs `body` on a new thread and returns once it finished; the thread stays until
    /// `release`.
    static func run(_ body: @escaping @Sendable () -> T) -> ParentThread<T> {
        let done = DispatchSemaphore(value: 0)
        let stay = DispatchSemaphore(value: 0)
        let box = ParentThreadBox<T>()
        let thread = Thread {
            box.value = body()
            done.signal()
            stay.wait()
        }
        thread.name = "sealbox-jail-parent"
        thread.start()
        done.wait()
        return ParentThread(value: box.value!, stay: stay)
    }

    func release() { stay.signal() }
}

/// `ParentThread.run`'s result, written by its thread before it signals, read after.
private final class ParentThreadBox<T>: @unchecked Sendable {
    var value: T?
}
