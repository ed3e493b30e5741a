import CSealboxSpawn
import Foundation
import Glibc
import SealboxProfiles
import SealboxBase

/// Jails set up ahead of their tasks, so a run pays only for handing over its program and
/// the execve (`sbx_prepare` / `sbx_activate`).
///
/// A prepared jail has its namespaces, its own cgroup with the pool's limits, the filesystem
/// (empty /work and /tmp), limits, dropped capabilities and the compiled seccomp filter, and
/// nothing of any task: the program, arguments, environment, stdin and files arrive with the
/// task. Each jail is used once and destroyed like any other run's; the pool prepares a
/// replacement in the background.
///
/// Only runs whose jail would look the same take a pooled jail: the pool's profile (same
/// compiled filter), rootfs and every limit the jail itself enforces (`LimitRow.shapesPooledJail`:
/// its cgroup, tmpfs sizes and rlimits), no extra binds, no broker, no session workspace. Others, and any run finding the pool
/// empty, spawn cold as without a pool.
public final class JailPool: @unchecked Sendable {  // mutable state is guarded by `condition`
    public struct Configuration: Sendable {
        /// Jails kept ready.
        public var size: Int
        /// Threads preparing replacements. A jail dies with the thread that cloned it
        /// (PR_SET_PDEATHSIG follows the thread), so each of these stays until every jail it
        /// prepared has ended.
        public var refillThreads: Int
        public var profile: ProfileReference
        public var limits: Limits
        public var rootfs: RootfsSource
        /// nil: the executor's default (`Configuration.trackViolations`).
        public var violationTracking: ViolationTracking?
        /// Refill only once no jail was taken for this long (0: right away). Preparing a jail
        /// takes CPU (clone, mounts) that runs in flight then compete for; on a small machine
        /// a delay lets a burst finish first.
        public var refillDelayMs: Int

        public init(size: Int, refillThreads: Int = 1, profile: ProfileReference = "default", limits: Limits = Limits(),
                    rootfs: RootfsSource = .host, violationTracking: ViolationTracking? = nil, refillDelayMs: Int = 0) {
            self.size = size
            self.refillThreads = refillThreads
            self.refillDelayMs = refillDelayMs
            self.profile = profile
            self.limits = limits
            self.rootfs = rootfs
            self.violationTracking = violationTracking
        }
    }

    public struct Statistics: Sendable, Equatable {
        /// Jails ready now.
        public var ready: Int
        /// Runs that took a prepared jail.
        public var hits: Int
        /// Eligible runs that found the pool empty and spawned cold.
        public var misses: Int
        /// Jails prepared so far (including those still ready).
        public var prepared: Int
        /// Preparations that failed (each is retried after a pause).
        public var failures: Int
        /// The last failure, for operators.
        public var lastFailure: String?
    }

    public static let maximumSize = 256
    public static let maximumRefillThreads = 16

    public let configuration: Configuration
    let filter: CompiledSeccompFilter
    private let executor: Executor
    private let plan: FilesystemPlan
    private let devNull: Int32
    private let condition = NSCondition()
    private var ready: [PreparedJail] = []
    private var preparing = 0
    private var stopping = false
    private var statistics = Statistics(ready: 0, hits: 0, misses: 0, prepared: 0, failures: 0)
    /// Jails handed out but not yet finished, by the refill thread that cloned them.
    private var outstanding: [Int]
    private var threadsRunning = 0
    /// When a jail was last taken (for `refillDelayMs`).
    private var lastTake = Date.distantPast

    init(executor: Executor, configuration: Configuration) throws(JailError) {
        guard (1...Self.maximumSize).contains(configuration.size) else {
            throw JailError(.invalidSpec, "pool size must be 1...\(Self.maximumSize), not \(configuration.size)")
        }
        guard (1...Self.maximumRefillThreads).contains(configuration.refillThreads) else {
            throw JailError(.invalidSpec, "pool refill threads must be 1...\(Self.maximumRefillThreads), not \(configuration.refillThreads)")
        }
        guard (0...60_000).contains(configuration.refillDelayMs) else {
            throw JailError(.invalidSpec, "pool refill delay must be 0...60000 ms, not \(configuration.refillDelayMs)")
        }
        var template = JailSpec(command: ["/bin/true"])
        template.limits = configuration.limits
        template.rootfs = configuration.rootfs
        template.profile = configuration.profile
        try SpecValidator.validate(template)
        self.executor = executor
        self.configuration = configuration
        do {
            let loaded = try executor.profiles.load(configuration.profile, profilesDirectory: executor.profilesDirectory)
            let tracking = configuration.violationTracking ?? (executor.configuration.trackViolations ? .denials : .off)
            filter = try executor.compiler.compile(loaded, tracking: tracking)
        } catch {
            throw JailError(.profile, error.description)
        }
        plan = try FilesystemPlan.build(rootfs: configuration.rootfs, etcDirectory: executor.etcDirectory, files: [], binds: [],
                                        shmBytes: configuration.limits.devShmBytes)
        devNull = open("/dev/null", O_RDWR | O_CLOEXEC)
        guard devNull >= 0 else { throw JailError(.setup, "cannot open /dev/null: \(ErrnoName.describe(errno))") }
        outstanding = Array(repeating: 0, count: configuration.refillThreads)
        threadsRunning = configuration.refillThreads
        for index in 0..<configuration.refillThreads {
            let thread = Thread { [self] in refillLoop(thread: index) }
            thread.name = "sealbox-pool-\(index)"
            thread.start()
        }
    }

    deinit {
        close(devNull)
    }

    public var stats: Statistics {
        condition.withLock {
            var s = statistics
            s.ready = ready.count
            return s
        }
    }

    /// The ready jails' processes (init, in our pid namespace) and cgroup names, oldest first.
    public var readyJails: [(pid: pid_t, cgroupName: String)] {
        condition.withLock { ready.map { ($0.pid, $0.cgroup.name) } }
    }

    /// Blocks until `size` jails are ready, or `timeout` passes; returns whether they are.
    @discardableResult
    public func waitUntilFull(timeout: Double = 30) -> Bool {
        let deadline = Date(timeIntervalSinceNow: timeout)
        condition.lock()
        defer { condition.unlock() }
        while ready.count < configuration.size && !stopping {
            if !condition.wait(until: deadline) { break }
        }
        return ready.count >= configuration.size
    }

    /// Whether a run of `spec` under `filter` would find the jail it needs here.
    func fits(_ spec: JailSpec, filter: CompiledSeccompFilter) -> Bool {
        spec.workspace == nil && spec.binds.isEmpty && spec.door == nil && spec.rootfs == configuration.rootfs
            && filter.digest == self.filter.digest && LimitTable.sameJail(spec.limits, configuration.limits)
    }

    /// A ready jail for a run that `fits`, or nil (counted as a miss) when none is ready.
    func take() -> PreparedJail? {
        var dead: [PreparedJail] = []
        defer { for jail in dead { jail.discard() } }
        return condition.withLock {
            // A jail that died while waiting (killed from outside) is replaced, not handed out.
            while let first = ready.first, first.hasExited {
                dead.append(ready.removeFirst())
                statistics.failures += 1
                statistics.lastFailure = "a prepared jail exited while waiting"
            }
            guard !stopping, !ready.isEmpty else {
                statistics.misses += 1
                if !dead.isEmpty { condition.broadcast() }
                return nil
            }
            let jail = ready.removeFirst()  // the oldest first: none waits forever
            statistics.hits += 1
            outstanding[jail.owner] += 1
            lastTake = Date()
            condition.broadcast()  // a refill thread has room again
            return jail
        }
    }

    /// The run that took `jail` is over (its jail is dead and reaped).
    func finished(_ jail: PreparedJail) {
        condition.withLock {
            outstanding[jail.owner] -= 1
            condition.broadcast()
        }
    }

    /// Stops refilling, destroys the ready jails, and waits until every refill thread is gone
    /// (each waits for the runs still using its jails). Idempotent.
    public func shutdown() {
        let idle: [PreparedJail] = condition.withLock {
            stopping = true
            let idle = ready
            ready.removeAll()
            condition.broadcast()
            return idle
        }
        for jail in idle { jail.discard() }
        condition.lock()
        while threadsRunning > 0 { condition.wait() }
        condition.unlock()
    }

    private func refillLoop(thread index: Int) {
        var pause = 0.05
        condition.lock()
        while true {
            while !stopping && ready.count + preparing >= configuration.size { condition.wait() }
            if stopping { break }
            let quietUntil = lastTake.addingTimeInterval(Double(configuration.refillDelayMs) / 1000)
            if configuration.refillDelayMs > 0 && quietUntil > Date() {
                _ = condition.wait(until: quietUntil)
                continue  // look again: the pool may have been stopped, or taken from meanwhile
            }
            preparing += 1
            condition.unlock()
            let outcome = prepareOne(owner: index)
            condition.lock()
            preparing -= 1
            switch outcome {
            case .success(let jail):
                pause = 0.05
                statistics.prepared += 1
                if stopping {
                    condition.unlock()
                    jail.discard()
                    condition.lock()
                } else {
                    ready.append(jail)
                }
                condition.broadcast()
            case .failure(let error):
                // The host refused (pids, memory, a broken rootfs): back off rather than spin.
                statistics.failures += 1
                statistics.lastFailure = error.description
                condition.unlock()
                Thread.sleep(forTimeInterval: pause)
                pause = min(pause * 2, 5)
                condition.lock()
            }
        }
        // This thread is the parent of the jails it cloned: stay until none of them runs.
        while outstanding[index] > 0 { condition.wait() }
        threadsRunning -= 1
        condition.broadcast()
        condition.unlock()
    }

    private func prepareOne(owner: Int) -> Result<PreparedJail, JailError> {
        let cgroup: any TaskCgroup
        do {
            cgroup = try executor.cgroupDriver.create(name: StaleCgroups.taskName(runID: RandomID.run()), limits: CgroupLimits(configuration.limits))
        } catch {
            return .failure(JailError(.cgroup, error.description))
        }
        let inputs = SpawnInputs(
            command: ["/bin/true"], environment: [], plan: plan, newroot: executor.newroot, limits: configuration.limits, filter: filter, cgroup: cgroup, stdinFD: devNull,
            capLastCap: executor.capLastCap, setupTimeoutMs: executor.configuration.setupTimeoutMs, cloner: executor.cloner)
        var raw = sbx_prepared()
        var result = sbx_spawn_result()
        let rc = withSpawnRequest(inputs, stdoutFD: devNull, stderrFD: devNull, deferred: true) { req in
            executor.cloner.prepare(req, &raw, &result)
        }
        guard rc == 0 else {
            try? cgroup.destroy()
            return .failure(JailError(.setup, "preparing a pooled jail: " + Supervision.describeSpawnFailure(result, request: inputs).message))
        }
        let steps = withUnsafeBytes(of: raw.step_ns) { Array($0.bindMemory(to: UInt64.self)) }
        return .success(PreparedJail(raw: raw, cgroup: cgroup, owner: owner, prepareSteps: steps))
    }
}

/// One jail from `sbx_prepare`, waiting for its task. Consumed by `activate` or `discard`.
final class PreparedJail: @unchecked Sendable {  // used by one thread at a time: the pool's, then the run's
    private var raw: sbx_prepared
    let cgroup: any TaskCgroup
    /// The refill thread that cloned it.
    let owner: Int
    /// Where its preparation's time went (sbx_spawn_step order, ns).
    let prepareSteps: [UInt64]

    init(raw: sbx_prepared, cgroup: any TaskCgroup, owner: Int, prepareSteps: [UInt64]) {
        self.raw = raw
        self.cgroup = cgroup
        self.owner = owner
        self.prepareSteps = prepareSteps
    }

    var pid: pid_t { raw.pid }

    /// Whether its init has exited (its pidfd polls readable then).
    var hasExited: Bool {
        var entry = pollfd(fd: raw.pidfd, events: Int16(POLLIN), revents: 0)
        return poll(&entry, 1, 0) > 0
    }

    /// Puts one of the task's files into the jail's /work, owned by the jail's user.
    func writeFile(_ file: SeedFile) -> String? {
        var stage: UnsafePointer<CChar>?
        let ids = Executor.outsideIDs
        let rc = file.contents.withUnsafeBytes { bytes in
            sbx_write_task_file(raw.work_fd, file.name, bytes.baseAddress, bytes.count, file.executable ? 0o755 : 0o644, ids.uid, ids.gid, &stage)
        }
        guard rc < 0 else { return nil }
        return "write /work/\(file.name) (\(stage.map { String(cString: $0) } ?? "?")): \(ErrnoName.describe(-rc))"
    }

    /// The parent end of its control socket, and its init's pidfd (a live jail's).
    var controlFD: Int32 { raw.control_fd }
    /// An O_PATH descriptor on its /work, from the jail itself.
    var workFD: Int32 { raw.work_fd }
    var pidfd: Int32 { raw.pidfd }

    /// Makes it a live jail's (`LiveJail`): its init stays and starts commands. 0 or -errno.
    func makeResident(timeoutMs: Int) -> Int32 {
        sbx_resident_start(raw.control_fd, Int32(clamping: timeoutMs))
    }

    func activate(_ task: UnsafePointer<sbx_spawn_req>, setupTimeoutMs: Int, _ result: inout sbx_spawn_result) -> Int32 {
        sbx_activate(&raw, task, Int32(clamping: setupTimeoutMs), &result)
    }

    /// Kills and reaps the jail and removes its cgroup.
    func discard() {
        sbx_discard(&raw)
        try? cgroup.destroy()
    }
}
