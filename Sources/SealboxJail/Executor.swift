import CSealboxSpawn
import Foundation
import Glibc
import SealboxBase
import SealboxProfiles
import Synchronization

/// Runs `JailSpec`s: validate → compile profile (cached) → cgroup → one C spawn call →
/// supervise (timeout, output caps, seccomp notifications) → verdict → teardown.
public final class Executor: Sendable {
    public struct Configuration: Sendable {
        /// Directory holding profiles/ and rootfs/etc (see `DataDirectory.locate`).
        public var dataDirectory: String
        /// Where sealbox keeps the empty directory the jail root is mounted on.
        public var stateDirectory: String
        /// Record denied syscalls (seccomp user notification) for `violations`.
        public var trackViolations: Bool
        /// Upper bound for clone-to-execve.
        public var setupTimeoutMs: Int
        /// Where jails are cloned (see `JailCloner`).
        public var spawner: JailCloner.Choice

        public init(
            dataDirectory: String,
            stateDirectory: String = StateLayout.runtimeDirectory,
            trackViolations: Bool = true,
            setupTimeoutMs: Int = 10_000,
            spawner: JailCloner.Choice = .automatic
        ) {
            self.dataDirectory = dataDirectory
            self.stateDirectory = stateDirectory
            self.trackViolations = trackViolations
            self.setupTimeoutMs = setupTimeoutMs
            self.spawner = spawner
        }
    }

    /// Uid and gid of the jail's one user (rootfs/etc/passwd "sandbox").
    public static let jailUID: UInt32 = 1000
    public static let jailGID: UInt32 = 1000
    /// The host id it maps to when sealbox runs as root: nobody, never host root.
    public static let hostNobody: UInt32 = 65534
    public static let jailPath = "/usr/local/bin:/usr/bin:/bin"
    /// The host uid and gid the jail's user maps to: nobody as root, else our own.
    static var outsideIDs: (uid: UInt32, gid: UInt32) {
        geteuid() == 0 ? (hostNobody, hostNobody) : (getuid(), getgid())
    }

    public let configuration: Configuration
    public let cgroupDriver: any CgroupDriver
    public let compiler: SeccompCompiler
    /// Clones the jails: the spawner helper, or this process.
    public let cloner: JailCloner
    /// Parsed profiles, reused while their files are unchanged (see `ProfileCache`).
    public let profiles = ProfileCache()
    let newroot: String
    let capLastCap: Int32
    /// Jails prepared ahead of runs (`startPool`), or nil.
    private let poolSlot = Mutex<JailPool?>(nil)

    public init(configuration: Configuration, cgroupDriver: (any CgroupDriver)? = nil, compiler: SeccompCompiler = SeccompCompiler()) throws(JailError) {
        self.configuration = configuration
        self.compiler = compiler
        try HostCheck.requireJailSupport()
        self.cgroupDriver = cgroupDriver ?? Self.usableCgroupDriver()
        StaleCgroups.sweep(self.cgroupDriver)
        self.newroot = configuration.stateDirectory + "/root"
        try HostCheck.makeDirectory(configuration.stateDirectory, mode: geteuid() == 0 ? 0o755 : 0o700)
        try HostCheck.makeDirectory(newroot, mode: 0o755)
        self.capLastCap = HostCheck.capLastCap()
        self.cloner = try JailCloner(configuration.spawner)
    }

    /// The host's cgroup driver, if this process may use it: without root the hierarchies
    /// are usually not writable, and a jail without limits beats no jail (the CLI warns).
    static func usableCgroupDriver() -> any CgroupDriver {
        let detected = Cgroups.detect()
        guard geteuid() != 0, detected.version != .none else { return detected }
        do {
            let probe = try detected.create(name: "probe-\(getpid())", limits: CgroupLimits())
            try probe.destroy()
            return detected
        } catch {
            return NoCgroupDriver(reason: "cgroups are not writable without root: \(error.description)")
        }
    }

    /// Starts keeping `configuration.size` jails ready for runs that fit them (see `JailPool`);
    /// replaces (and shuts down) a pool started before.
    @discardableResult
    public func startPool(_ configuration: JailPool.Configuration) throws(JailError) -> JailPool {
        let pool = try JailPool(executor: self, configuration: configuration)
        let previous = poolSlot.withLock { slot in
            defer { slot = pool }
            return slot
        }
        previous?.shutdown()
        return pool
    }

    /// Stops the pool: its ready jails are destroyed; runs using pooled jails finish first.
    public func stopPool() {
        poolSlot.withLock { slot in
            defer { slot = nil }
            return slot
        }?.shutdown()
    }

    public var pool: JailPool? { poolSlot.withLock { $0 } }

    public var profilesDirectory: String { configuration.dataDirectory + "/profiles" }
    public var etcDirectory: String { configuration.dataDirectory + "/rootfs/etc" }

    /// Runs on a dedicated thread (spawn and supervision block), never on the cooperative pool.
    /// `output`, when given, sees stdout and stderr as they arrive (see `OutputObserver`);
    /// the result is the same with or without it.
    public func run(_ spec: JailSpec, output: OutputObserver? = nil) async throws(JailError) -> JailResult {
        let outcome: Result<JailResult, JailError> = await onOwnThread("sealbox-run") { [self] in
            do throws(JailError) {
                return .success(try runBlocking(spec, output: output))
            } catch {
                return .failure(error)
            }
        }
        return try outcome.get()
    }

    /// Runs the spec on the calling thread.
    public func runBlocking(_ spec: JailSpec, output: OutputObserver? = nil) throws(JailError) -> JailResult {
        let began = Clock.nanos()
        let id = try spec.id.map { id throws(JailError) in try SpecValidator.runID(id) } ?? RandomID.run()
        try SpecValidator.validate(spec)
        let (profileName, filter) = try filter(for: spec)
        if spec.compiledFilter == nil, let pool, pool.fits(spec, filter: filter), let jail = pool.take() {
            return try runPooled(spec, id: id, filter: filter, jail: jail, pool: pool, began: began, output: output)
        }
        if let workspace = spec.workspace {
            for file in spec.files {
                try Self.seed(file, into: workspace)
            }
        }
        let plan = try FilesystemPlan.build(rootfs: spec.rootfs, etcDirectory: etcDirectory, files: spec.files, binds: spec.binds,
                                            door: spec.door, workspaceFD: spec.workspace?.mountFD, shmBytes: spec.limits.devShmBytes)
        let environment = SpecValidator.environment(spec)
        let stdinFD = try Self.openStdin(spec.stdin)
        defer { close(stdinFD) }

        let cgroup: any TaskCgroup
        do {
            cgroup = try cgroupDriver.create(name: StaleCgroups.taskName(runID: id), limits: CgroupLimits(spec.limits))
        } catch {
            throw JailError(.cgroup, error.description)
        }
        defer { try? cgroup.destroy() }

        let spawnStarted = Clock.nanos()
        let supervised = try Supervision.start(
            request: SpawnInputs(
                command: spec.command, environment: environment, plan: plan, newroot: newroot,
                limits: spec.limits, workspaceBytes: spec.workspace?.limitBytes ?? 0, filter: filter, cgroup: cgroup, stdinFD: stdinFD,
                capLastCap: capLastCap, setupTimeoutMs: configuration.setupTimeoutMs, cloner: cloner),
            limits: spec.limits, live: spec.liveJails, output: output)
        return finish(supervised, id: id, profile: profileName, cgroup: cgroup, began: began, spawnStarted: spawnStarted, warm: nil)
    }

    /// The compiled seccomp filter `spec` asks for, and its profile's name.
    func filter(for spec: JailSpec) throws(JailError) -> (profile: String, filter: CompiledSeccompFilter) {
        do {
            if let given = spec.compiledFilter { return (given.profileName, given) }
            let loaded = try profiles.load(spec.profile, profilesDirectory: profilesDirectory)
            let tracking = spec.violationTracking ?? (configuration.trackViolations ? .denials : .off)
            return (loaded.name, try compiler.compile(loaded, tracking: tracking))
        } catch {
            throw JailError(.profile, error.description)
        }
    }

    /// The verdict, the teardown, and where the time went: the same for cold and pooled runs.
    private func finish(_ supervised: Supervision, id: String, profile: String, cgroup: any TaskCgroup, began: UInt64,
                        spawnStarted: UInt64, warm: Bool?) -> JailResult {
        var result = supervised.verdict(id: id, profile: profile, cgroup: cgroup)
        // The jail's pid 1 is gone, so the kernel already killed everything in its pid
        // namespace; the cgroup kill is the belt to those braces.
        try? cgroup.killAll()
        try? cgroup.destroy()  // here, not only in the callers' defer, so teardown is measured
        if result.status == .spawnFailed { result.cpuMs = 0 }
        result.phases = supervised.phases(began: began, spawnStarted: spawnStarted, ended: Clock.nanos(), warm: warm)
        return result
    }

    /// A run in a prepared jail: its files go into the jail's /work, then the jail gets the
    /// program and stdio and execs. Supervision, verdict and teardown are those of any run.
    private func runPooled(_ spec: JailSpec, id: String, filter: CompiledSeccompFilter, jail: PreparedJail, pool: JailPool,
                           began: UInt64, output: OutputObserver?) throws(JailError) -> JailResult {
        let cgroup = jail.cgroup
        defer {
            try? cgroup.destroy()
            pool.finished(jail)
        }
        let stdinFD: Int32
        do {
            stdinFD = try Self.openStdin(spec.stdin)
        } catch {
            jail.discard()
            throw error
        }
        defer { close(stdinFD) }
        var fileError: String?
        for file in spec.files {
            fileError = jail.writeFile(file)
            if fileError != nil { break }
        }
        let spawnStarted = Clock.nanos()
        let supervised: Supervision
        if let fileError {
            jail.discard()
            supervised = Supervision.failed(limits: spec.limits, message: fileError)
        } else {
            supervised = try Supervision.start(
                request: SpawnInputs(
                    command: spec.command, environment: SpecValidator.environment(spec), plan: FilesystemPlan(), newroot: newroot,
                    limits: spec.limits, filter: filter, cgroup: cgroup,
                    stdinFD: stdinFD, capLastCap: capLastCap, setupTimeoutMs: configuration.setupTimeoutMs, cloner: cloner),
                limits: spec.limits, live: spec.liveJails, output: output, method: .activate(jail))
        }
        return finish(supervised, id: id, profile: filter.profileName, cgroup: cgroup, began: began, spawnStarted: spawnStarted, warm: true)
    }

    static func openStdin(_ source: StdinSource) throws(JailError) -> Int32 {
        let path: String
        switch source {
        case .null: path = "/dev/null"
        case .file(let file): path = file
        case .bytes(let bytes):
            let fd = bytes.withUnsafeBytes { sbx_sealed_memfd("sealbox-stdin", $0.baseAddress, $0.count) }
            guard fd >= 0 else { throw JailError.syscall(.setup, "memfd for stdin", -fd) }
            guard lseek(fd, 0, SEEK_SET) == 0 else {
                let code = errno
                close(fd)
                throw JailError.syscall(.setup, "lseek stdin memfd", code)
            }
            return fd
        case .descriptor(let given):
            let fd = fcntl(given, F_DUPFD_CLOEXEC, 3)
            guard fd >= 0 else { throw JailError.syscall(.invalidSpec, "stdin descriptor \(given)", errno) }
            // `echo hi | sealbox run -- cat /dev/stdin`: the caller's pipe must be reopenable
            // by the jail's user, as sealbox's own pipes are (Pipe.giveToJail). Only an
            // anonymous pipe: a named FIFO or a file keeps its owner, and reopening it by name
            // takes the permissions its path gives the jail's user.
            if Pipe.isAnonymous(fd) {
                do throws(JailError) {
                    try Pipe.giveToJail(fd)
                } catch {
                    close(fd)
                    throw error
                }
            }
            return fd
        }
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw JailError(.invalidSpec, "cannot open stdin file \(path): \(ErrnoName.describe(errno))") }
        var st = stat()
        if fstat(fd, &st) == 0, (st.st_mode & S_IFMT) == S_IFDIR {
            close(fd)
            throw JailError(.invalidSpec, "stdin file \(path) is a directory")
        }
        return fd
    }
}

extension Supervision {
    /// Where a run's time went: before the spawn (`began` → `spawnStarted`), the spawn, the
    /// program, and the teardown up to `ended`.
    func phases(began: UInt64, spawnStarted: UInt64, ended: UInt64, warm: Bool?) -> JailResult.Phases {
        JailResult.Phases(
            setupMs: Clock.ms(spawnStarted - began), spawnMs: Clock.ms(spawnNanos),
            runMs: Clock.ms(wallNanos - spawnNanos),
            teardownMs: Clock.ms(ended - spawnStarted - wallNanos),
            spawnSteps: spawnSteps.contains(where: { $0 > 0 }) ? JailResult.SpawnSteps(milliseconds: spawnSteps.map { Clock.ms($0) }) : nil,
            warm: warm)
    }
}

extension CgroupLimits {
    init(_ limits: Limits) {
        self.init(
            memoryBytes: limits.memoryBytes,
            pids: limits.pids,
            cpuQuotaMicros: limits.cpus.map { Int(($0 * 100_000).rounded()) },
            cpuPeriodMicros: 100_000)
    }
}

/// Run ids double as cgroup names: short, unique, and safe in a path.
extension Executor {
    /// Writes a seed file into a session's /work. What earlier steps left there may be in the
    /// way (a directory, or a symlink, which is never followed): that is the session's state,
    /// not a host failure, so it is reported as a `.workspace` error naming the file.
    static func seed(_ file: SeedFile, into workspace: Workspace) throws(JailError) {
        do {
            try workspace.writeFile(file.name, mode: file.executable ? 0o755 : 0o644, contents: file.contents)
        } catch {
            let what: String?
            switch error.errno {
            case ELOOP?: what = "is a symbolic link left by an earlier step (links are never followed)"
            case EISDIR?: what = "is a directory left by an earlier step"
            case ENOTDIR?: what = "has a parent that is not a directory"
            case ENOSPC?, EDQUOT?: what = "does not fit: the session's workspace is full"
            default: what = nil
            }
            guard let what else { throw error }
            throw JailError(.workspace, "cannot write /work/\(file.name): it \(what); remove or rename it in a step, or name the file otherwise",
                            errno: error.errno, field: "files")
        }
    }
}

