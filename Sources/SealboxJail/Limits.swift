/// A run's limits: one value per row of `LimitTable`, by key. A row's default is filled in
/// at creation; a row without one (`cpus`, `shm_bytes`) is absent until asked for.
/// The named properties are conveniences for the code that enforces one particular limit.
public struct Limits: Sendable, Equatable {
    private var values: [LimitKey: LimitValue]

    /// Every row at its default.
    public init() {
        values = [:]
        for row in LimitTable.rows {
            if let value = row.defaultValue { values[row.key] = value }
        }
    }

    /// The given values over the defaults (nil: the row's default).
    public init(
        timeoutMs: Int? = nil,
        memoryBytes: UInt64? = nil,
        pids: Int? = nil,
        diskBytes: UInt64? = nil,
        outputBytes: Int? = nil,
        cpus: Double? = nil,
        shmBytes: UInt64? = nil
    ) {
        self.init()
        if let timeoutMs { self.timeoutMs = timeoutMs }
        if let memoryBytes { self.memoryBytes = memoryBytes }
        if let pids { self.pids = pids }
        if let diskBytes { self.diskBytes = diskBytes }
        if let outputBytes { self.outputBytes = outputBytes }
        self.cpus = cpus
        self.shmBytes = shmBytes
    }

    /// The value asked for (or the row's default); nil when the row is unset.
    public subscript(key: LimitKey) -> LimitValue? {
        get { values[key] }
        set { values[key] = newValue }
    }

    /// The value in force: the one asked for, else what follows from the other limits
    /// (/dev/shm), else nil (not enforced: `cpus` unthrottled).
    public func inForce(_ row: LimitRow) -> LimitValue? {
        values[row.key] ?? row.derivedDefault?(self)
    }

    private func whole(_ key: LimitKey) -> UInt64 {
        (values[key] ?? LimitTable.row(key)?.defaultValue)?.whole ?? 0
    }

    /// Wall-clock limit in milliseconds.
    public var timeoutMs: Int {
        get { Int(clamping: whole(.timeoutMs)) }
        set { values[.timeoutMs] = .whole(UInt64(clamping: newValue)) }
    }

    public var memoryBytes: UInt64 {
        get { whole(.memoryBytes) }
        set { values[.memoryBytes] = .whole(newValue) }
    }

    public var pids: Int {
        get { Int(clamping: whole(.pids)) }
        set { values[.pids] = .whole(UInt64(clamping: newValue)) }
    }

    /// Size of the tmpfs that holds /work and /tmp together.
    public var diskBytes: UInt64 {
        get { whole(.diskBytes) }
        set { values[.diskBytes] = .whole(newValue) }
    }

    /// Cap on captured stdout and, separately, stderr; the rest is drained and counted.
    public var outputBytes: Int {
        get { Int(clamping: whole(.outputBytes)) }
        set { values[.outputBytes] = .whole(UInt64(clamping: newValue)) }
    }

    /// CPU bandwidth in cores (cgroup cpu.max / cfs quota); nil leaves CPU time unthrottled.
    public var cpus: Double? {
        get { values[.cpus]?.cores }
        set { values[.cpus] = newValue.map { .cores($0) } }
    }

    /// Size of the jail's own /dev/shm tmpfs (POSIX shared memory and semaphores: Python's
    /// multiprocessing, shm_open); nil: `defaultShmBytes(memory:)`. Its pages are charged to
    /// the jail's memory cgroup like any other memory of the jail, so it can never hold more
    /// than the memory limit allows; the validator refuses a larger size.
    public var shmBytes: UInt64? {
        get { values[.shmBytes]?.whole }
        set { values[.shmBytes] = newValue.map { .whole($0) } }
    }

    /// The smallest /dev/shm a run may ask for (its row's minimum).
    public static var minimumShmBytes: UInt64 { LimitTable.row(.shmBytes)?.minimum.whole ?? 64 << 10 }

    /// /dev/shm when a run does not say: a quarter of the memory limit (64M for the default
    /// 256M, Docker's default /dev/shm size), never below `minimumShmBytes`.
    public static func defaultShmBytes(memory: UInt64) -> UInt64 {
        max(memory / 4, minimumShmBytes)
    }

    /// The /dev/shm size in force.
    public var devShmBytes: UInt64 { shmBytes ?? Self.defaultShmBytes(memory: memoryBytes) }

    /// RLIMIT_FSIZE for the jail: the largest file any of its writable mounts can hold (the
    /// disk tmpfs, /dev/shm, a session's workspace), so the rlimit never refuses what the
    /// mount's own size allows (ftruncate of a shared-memory segment past it is EFBIG).
    public func fileSizeLimit(workspaceBytes: UInt64 = 0) -> UInt64 {
        max(diskBytes, devShmBytes, workspaceBytes)
    }
}
