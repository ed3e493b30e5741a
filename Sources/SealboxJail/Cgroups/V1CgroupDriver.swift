import Glibc
import Synchronization

/// One mounted v1 hierarchy used by the driver (cpu and cpuacct may share one).
public struct V1Hierarchy: Sendable, Equatable {
    public var mountPoint: String
    /// The controllers of this hierarchy the driver uses, e.g. ["cpu", "cpuacct"].
    public var controllers: [String]

    public init(mountPoint: String, controllers: [String]) {
        self.mountPoint = mountPoint
        self.controllers = controllers
    }
}

/// cgroup v1 driver: one task cgroup per hierarchy at `<mount>/sealbox/<name>` for memory, pids and, when
/// mounted, cpu, cpuacct and freezer.
public struct V1CgroupDriver: CgroupDriver {
    public static let requiredControllers = ["memory", "pids"]
    public static let optionalControllers = ["cpu", "cpuacct", "freezer"]

    public var version: CgroupVersion { .v1 }
    /// Distinct hierarchies in use, memory first, then pids, cpu, cpuacct, freezer.
    public let hierarchies: [V1Hierarchy]
    /// Human-readable notes about optional controllers that are not used (not mounted / not writable).
    public let notes: [String]

    /// Validates that memory and pids are mounted and creates `<mount>/sealbox` in each hierarchy used.
    public init(mounts: CgroupMounts) throws(CgroupError) {
        for controller in Self.requiredControllers where mounts.v1[controller] == nil {
            throw CgroupError(
                stage: "detect", path: "/proc/self/mountinfo",
                message: "cgroup v1 \(controller) hierarchy is not mounted (sealbox needs memory and pids)")
        }
        var hierarchies: [V1Hierarchy] = []
        var notes: [String] = []
        for controller in Self.requiredControllers + Self.optionalControllers {
            guard let mountPoint = mounts.v1[controller] else {
                notes.append("cgroup v1 \(controller) hierarchy is not mounted; not used")
                continue
            }
            if let index = hierarchies.firstIndex(where: { $0.mountPoint == mountPoint }) {
                hierarchies[index].controllers.append(controller)
                continue
            }
            do throws(CgroupError) {
                try CgroupFS.mkdir("\(mountPoint)/\(Cgroups.parentName)", allowExisting: true)
            } catch {
                if Self.requiredControllers.contains(controller) { throw error }
                notes.append("cgroup v1 \(controller) not used: \(error)")
                continue
            }
            hierarchies.append(V1Hierarchy(mountPoint: mountPoint, controllers: [controller]))
        }
        self.hierarchies = hierarchies
        self.notes = notes
    }

    /// The hierarchy mount point carrying `controller`, if used.
    public func mountPoint(for controller: String) -> String? {
        hierarchies.first { $0.controllers.contains(controller) }?.mountPoint
    }

    /// `<mount>/sealbox/<name>` for the hierarchy carrying `controller`.
    public func directory(for controller: String, name: String) -> String? {
        mountPoint(for: controller).map { "\($0)/\(Cgroups.parentName)/\(name)" }
    }

    public func create(name: String, limits: CgroupLimits) throws(CgroupError) -> any TaskCgroup {
        try createV1(name: name, limits: limits)
    }

    /// `create` with the concrete return type.
    public func createV1(name: String, limits: CgroupLimits) throws(CgroupError) -> V1TaskCgroup {
        try CgroupParsing.validateTaskName(name)
        if limits.cpuQuotaMicros != nil && mountPoint(for: "cpu") == nil {
            throw CgroupError(
                stage: "create", path: name,
                message: "cpuQuotaMicros requested but the cgroup v1 cpu hierarchy is not available")
        }
        let directories = hierarchies.map { "\($0.mountPoint)/\(Cgroups.parentName)/\(name)" }
        var created: [String] = []
        var fds: [Int32] = []
        do throws(CgroupError) {
            for directory in directories {
                try CgroupFS.mkdir(directory, allowExisting: false)
                created.append(directory)
            }
            try apply(limits: limits, name: name)
            for directory in directories {
                fds.append(try CgroupFS.open("\(directory)/cgroup.procs", O_WRONLY | O_CLOEXEC))
            }
        } catch {
            for fd in fds { CgroupFS.close(fd) }
            for directory in created.reversed() { try? CgroupFS.rmdir(directory) }
            throw error
        }
        return V1TaskCgroup(
            name: name,
            directories: directories,
            memoryDirectory: directory(for: "memory", name: name)!,
            pidsDirectory: directory(for: "pids", name: name)!,
            cpuacctDirectory: directory(for: "cpuacct", name: name),
            freezerDirectory: directory(for: "freezer", name: name),
            procsFDs: fds)
    }

    private func apply(limits: CgroupLimits, name: String) throws(CgroupError) {
        let memory = directory(for: "memory", name: name)!
        if let bytes = limits.memoryBytes {
            // memory.limit_in_bytes first: memsw must always be >= limit_in_bytes.
            try CgroupFS.write("\(bytes)", to: "\(memory)/memory.limit_in_bytes")
            let memsw = "\(memory)/memory.memsw.limit_in_bytes"
            if CgroupFS.exists(memsw) {
                try CgroupFS.write("\(bytes)", to: memsw)
            }
        }
        // Best effort: not writable on every kernel / for every cgroup.
        try? CgroupFS.write("0", to: "\(memory)/memory.swappiness")

        if let pids = limits.pids {
            try CgroupFS.write("\(pids)", to: "\(directory(for: "pids", name: name)!)/pids.max")
        }
        if let quota = limits.cpuQuotaMicros, let cpu = directory(for: "cpu", name: name) {
            try CgroupFS.write("\(limits.cpuPeriodMicros)", to: "\(cpu)/cpu.cfs_period_us")
            try CgroupFS.write(CgroupParsing.cfsQuota(quotaMicros: quota), to: "\(cpu)/cpu.cfs_quota_us")
        }
    }
}

/// A task cgroup spread over the v1 hierarchies.
public final class V1TaskCgroup: TaskCgroup {
    public let name: String
    public var version: CgroupVersion { .v1 }
    public var cloneIntoFD: Int32 { -1 }
    /// `<mount>/sealbox/<name>` in each hierarchy, in the same order as `procsFDs`.
    public let directories: [String]
    public let memoryDirectory: String
    public let pidsDirectory: String
    public let cpuacctDirectory: String?
    public let freezerDirectory: String?

    private struct State {
        var fds: [Int32]
        /// Directories not yet removed.
        var remaining: [String]
    }

    private let state: Mutex<State>

    init(
        name: String, directories: [String], memoryDirectory: String, pidsDirectory: String,
        cpuacctDirectory: String?, freezerDirectory: String?, procsFDs: [Int32]
    ) {
        self.name = name
        self.directories = directories
        self.memoryDirectory = memoryDirectory
        self.pidsDirectory = pidsDirectory
        self.cpuacctDirectory = cpuacctDirectory
        self.freezerDirectory = freezerDirectory
        self.state = Mutex(State(fds: procsFDs, remaining: directories))
    }

    deinit {
        state.withLock { state in
            for fd in state.fds { CgroupFS.close(fd) }
            state.fds = []
        }
    }

    public var procsFDs: [Int32] {
        state.withLock { $0.fds }
    }

    /// Move `pid` into the task cgroup in every hierarchy (writes it to each procs fd).
    public func attach(pid: pid_t) throws(CgroupError) {
        try state.withLock { (state) throws(CgroupError) -> Void in
            guard state.fds.count == directories.count else {
                throw CgroupError(stage: "attach", path: memoryDirectory, message: "task cgroup already destroyed")
            }
            for (fd, directory) in zip(state.fds, directories) {
                try CgroupFS.write("\(pid)", fd: fd, path: "\(directory)/cgroup.procs")
            }
        }
    }

    /// Every pid listed in cgroup.procs of any hierarchy.
    public func pids() -> [pid_t] {
        var all = Set<pid_t>()
        for directory in directories {
            all.formUnion(CgroupFS.procs("\(directory)/cgroup.procs") ?? [])
        }
        return all.sorted()
    }

    public func usage() -> CgroupUsage {
        var usage = limitEvents()
        usage.peakMemoryBytes = CgroupFS.readIfPresent("\(memoryDirectory)/memory.max_usage_in_bytes").flatMap(CgroupParsing.parseUInt)
        usage.cpuNanos = cpuacctDirectory
            .flatMap { CgroupFS.readIfPresent("\($0)/cpuacct.usage") }
            .flatMap(CgroupParsing.parseUInt)
        return usage
    }

    public func limitEvents() -> CgroupUsage {
        let oom = CgroupFS.readIfPresent("\(memoryDirectory)/memory.oom_control")
            .flatMap { CgroupParsing.parseKeyValues($0)["oom_kill"] } ?? 0
        // pids.events when the kernel has it; the peak against the limit otherwise (read
        // only then: every read of a cgroup file is a syscall round of its own).
        let events = CgroupFS.readIfPresent("\(pidsDirectory)/pids.events")
        let hits = events != nil
            ? CgroupParsing.pidsLimitHits(events: events, peak: nil, current: nil, max: nil)
            : CgroupParsing.pidsLimitHits(
                events: nil, peak: CgroupFS.readIfPresent("\(pidsDirectory)/pids.peak"),
                current: CgroupFS.readIfPresent("\(pidsDirectory)/pids.current"), max: CgroupFS.readIfPresent("\(pidsDirectory)/pids.max"))
        return CgroupUsage(oomKills: Int(clamping: oom), pidsLimitHits: hits)
    }

    private var isDestroyed: Bool {
        state.withLock { $0.remaining.isEmpty }
    }

    public func setFrozen(_ frozen: Bool) throws(CgroupError) {
        guard let freezerDirectory else {
            throw CgroupError(stage: "freeze", path: memoryDirectory, message: "the v1 freezer hierarchy is not mounted on this host")
        }
        let stateFile = "\(freezerDirectory)/freezer.state"
        let wanted = frozen ? "FROZEN" : "THAWED"
        try CgroupFS.write(wanted, to: stateFile)
        let done = CgroupFS.poll(timeoutNanos: 2_000_000_000, intervalMicros: 2_000) {
            CgroupFS.readIfPresent(stateFile)?.cgroupTrimmed() == wanted
        }
        if !done { throw CgroupError(stage: "freeze", path: freezerDirectory, message: "still not \(wanted) after 2 s") }
    }

    /// Freeze (if the freezer hierarchy is used), SIGKILL every pid, thaw; repeat until empty.
    /// Bounded: at most 25 rounds / about 5 s.
    public func killAll() throws(CgroupError) {
        if isDestroyed { return }
        // Nothing to freeze in an empty cgroup, and nothing can enter it but by a write to
        // cgroup.procs: the common case after a jail's init has exited (its pid namespace is
        // gone with it) costs one read, not a freeze and thaw.
        if pids().isEmpty { return }
        let deadline = CgroupFS.monotonicNanos() + 5_000_000_000
        var rounds = 0
        while true {
            rounds += 1
            if let freezerDirectory {
                let stateFile = "\(freezerDirectory)/freezer.state"
                try CgroupFS.write("FROZEN", to: stateFile)
                // FREEZING can linger (e.g. tasks in uninterruptible sleep); kill anyway after a short wait.
                _ = CgroupFS.poll(timeoutNanos: 500_000_000, intervalMicros: 2_000) {
                    CgroupFS.readIfPresent(stateFile)?.cgroupTrimmed() == "FROZEN"
                }
            }
            let victims = pids()
            let killError = CgroupFS.killEach(victims, path: "\(memoryDirectory)/cgroup.procs")
            if let freezerDirectory {
                // SIGKILLed tasks only die once thawed.
                try CgroupFS.write("THAWED", to: "\(freezerDirectory)/freezer.state")
            }
            if let killError { throw killError }
            if victims.isEmpty { return }
            if CgroupFS.poll(timeoutNanos: 200_000_000, intervalMicros: 2_000, { pids().isEmpty }) { return }
            if rounds >= 25 || CgroupFS.monotonicNanos() >= deadline {
                throw CgroupError(
                    stage: "kill", path: memoryDirectory,
                    message: "\(pids().count) processes remain after \(rounds) freeze/kill/thaw rounds")
            }
        }
    }

    /// Wait up to 2 s for the cgroup to empty, close the procs fds and rmdir every directory. Idempotent; after a
    /// failure (EBUSY while tasks remain) a later call retries the directories that are left.
    public func destroy() throws(CgroupError) {
        let remaining = state.withLock { state in
            for fd in state.fds { CgroupFS.close(fd) }
            state.fds = []
            return state.remaining
        }
        if remaining.isEmpty { return }
        // Usually empty already (the jail's init is reaped): rmdir straight away, and wait
        // for the last processes to leave only when the kernel says EBUSY.
        if remaining.allSatisfy({ (try? CgroupFS.rmdir($0)) != nil }) {
            state.withLock { $0.remaining = [] }
            return
        }
        let empty = CgroupFS.poll(timeoutNanos: 2_000_000_000) { pids().isEmpty }
        var failed: [String] = []
        var firstError: CgroupError?
        for directory in remaining {
            do throws(CgroupError) {
                try CgroupFS.rmdir(directory)
            } catch {
                failed.append(directory)
                if firstError == nil { firstError = error }
            }
        }
        state.withLock { $0.remaining = failed }
        if var error = firstError {
            if !empty {
                error.message = "\(pids().count) processes still in the cgroup after 2 s; call killAll() first"
            }
            throw error
        }
    }
}
