/// Which cgroup hierarchy a driver uses.
public enum CgroupVersion: String, Sendable, Codable {
    case v1, v2, none
}

/// Resource limits applied to a task cgroup. `nil` means "leave unlimited".
public struct CgroupLimits: Sendable, Equatable {
    /// Hard memory limit (v2 memory.max, v1 memory.limit_in_bytes). Swap is disabled alongside it.
    public var memoryBytes: UInt64?
    /// Maximum number of tasks (pids.max).
    public var pids: Int?
    /// CPU time allowed per period (v2 cpu.max, v1 cpu.cfs_quota_us). nil = unlimited.
    public var cpuQuotaMicros: Int?
    /// CPU accounting period (v2 cpu.max second field, v1 cpu.cfs_period_us).
    public var cpuPeriodMicros: Int

    public init(
        memoryBytes: UInt64? = nil,
        pids: Int? = nil,
        cpuQuotaMicros: Int? = nil,
        cpuPeriodMicros: Int = 100_000
    ) {
        self.memoryBytes = memoryBytes
        self.pids = pids
        self.cpuQuotaMicros = cpuQuotaMicros
        self.cpuPeriodMicros = cpuPeriodMicros
    }
}

/// Resource usage read back from a task cgroup. Read it before `destroy()`.
public struct CgroupUsage: Sendable, Equatable {
    /// High-water mark of memory use (v2 memory.peak, v1 memory.max_usage_in_bytes). nil if unavailable.
    public var peakMemoryBytes: UInt64?
    /// CPU time consumed, in nanoseconds (v2 cpu.stat usage_usec * 1000, v1 cpuacct.usage). nil if unavailable.
    public var cpuNanos: UInt64?
    /// OOM kills inside the cgroup (v2 memory.events oom_kill, v1 memory.oom_control oom_kill).
    public var oomKills: Int
    /// Forks refused because pids.max was reached (pids.events max).
    public var pidsLimitHits: Int

    public init(peakMemoryBytes: UInt64? = nil, cpuNanos: UInt64? = nil, oomKills: Int = 0, pidsLimitHits: Int = 0) {
        self.peakMemoryBytes = peakMemoryBytes
        self.cpuNanos = cpuNanos
        self.oomKills = oomKills
        self.pidsLimitHits = pidsLimitHits
    }
}

/// Creates per-task cgroups on one kind of hierarchy.
public protocol CgroupDriver: Sendable {
    var version: CgroupVersion { get }
    /// Creates the per-task cgroup <parent>/<name> in every hierarchy it uses and applies limits.
    func create(name: String, limits: CgroupLimits) throws(CgroupError) -> any TaskCgroup
    /// The `<hierarchy>/sealbox` directories task cgroups are created in (for the stale sweep).
    var taskParentDirectories: [String] { get }
}

extension CgroupDriver {
    public var taskParentDirectories: [String] { [] }
}

/// One task's cgroup (in one or several hierarchies).
public protocol TaskCgroup: AnyObject, Sendable {
    var version: CgroupVersion { get }
    var name: String { get }
    /// v2: an fd of the cgroup directory (O_RDONLY|O_DIRECTORY|O_CLOEXEC) for clone3's CLONE_INTO_CGROUP; -1 for v1.
    /// -1 after `destroy()`.
    var cloneIntoFD: Int32 { get }
    /// v1: fds open O_WRONLY|O_CLOEXEC on each hierarchy's cgroup.procs; the spawner writes the child's pid into
    /// each before letting the child run. Empty for v2, and empty after `destroy()`.
    var procsFDs: [Int32] { get }
    func usage() -> CgroupUsage
    /// Only the limit events of `usage` (OOM kills, pids-limit hits): the two files a command
    /// in a live jail needs before and after it, instead of every counter.
    func limitEvents() -> CgroupUsage
    /// Kill every process in the cgroup. v2: write "1" to cgroup.kill. v1: freezer FROZEN, SIGKILL every pid in
    /// cgroup.procs, THAWED, repeat until empty (bounded).
    func killAll() throws(CgroupError)
    /// Freezes every process in the cgroup (no CPU, memory kept) or thaws them, and waits
    /// (bounded) until the kernel says it is done. v2: cgroup.freeze; v1: freezer.state, when
    /// the freezer hierarchy is mounted (else it throws).
    func setFrozen(_ frozen: Bool) throws(CgroupError)
    /// Wait (bounded, up to 2 s) until empty, close fds, rmdir the task cgroup in every hierarchy. Idempotent.
    func destroy() throws(CgroupError)
}

extension TaskCgroup {
    public func limitEvents() -> CgroupUsage {
        let usage = usage()
        return CgroupUsage(oomKills: usage.oomKills, pidsLimitHits: usage.pidsLimitHits)
    }
}
