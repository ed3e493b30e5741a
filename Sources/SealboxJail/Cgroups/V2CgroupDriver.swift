import Glibc
import Synchronization

/// cgroup v2 driver: task cgroups at `<root>/sealbox/<name>`.
public struct V2CgroupDriver: CgroupDriver {
    /// Controllers sealbox enables for its task cgroups, in write order; memory and pids are required.
    public static let wantedControllers = ["memory", "pids", "cpu"]
    public static let requiredControllers: Set<String> = ["memory", "pids"]

    public var version: CgroupVersion { .v2 }
    /// The unified hierarchy directory sealbox was given (not ours: never written).
    public let root: String
    /// Controllers enabled in `<root>/sealbox/cgroup.subtree_control`, i.e. available in task cgroups.
    public let enabledControllers: Set<String>

    /// `<root>/sealbox`, created if missing; ours.
    public var parent: String { "\(root)/\(Cgroups.parentName)" }

    /// Checks that `root` offers and delegates memory and pids, creates `<root>/sealbox` and enables
    /// "+memory +pids +cpu" (those present) in its cgroup.subtree_control. Never writes `root`'s own files.
    public init(root: String) throws(CgroupError) {
        let controllersFile = "\(root)/cgroup.controllers"
        guard let controllers = CgroupFS.readIfPresent(controllersFile) else {
            throw CgroupError(
                stage: "detect", path: root,
                message: "not a cgroup2 directory (cannot read \(controllersFile))")
        }
        let subtree = CgroupFS.readIfPresent("\(root)/cgroup.subtree_control") ?? ""
        try Self.checkDelegation(root: root, controllers: controllers, subtreeControl: subtree)
        try self.init(root: root, requireControllers: true)
    }

    /// Internal: with `requireControllers == false` the delegation check is skipped and whatever of
    /// memory/pids/cpu the parent offers is enabled (possibly nothing). Used by tests on hosts whose unified
    /// hierarchy has no controllers, to exercise mkdir/kill/destroy.
    init(root: String, requireControllers: Bool) throws(CgroupError) {
        self.root = root
        let parent = "\(root)/\(Cgroups.parentName)"
        try CgroupFS.mkdir(parent, allowExisting: true)
        let available = CgroupParsing.parseControllerList(
            try CgroupFS.read("\(parent)/cgroup.controllers"))
        let subtreeFile = "\(parent)/cgroup.subtree_control"
        let current = CgroupParsing.parseControllerList(try CgroupFS.read(subtreeFile))
        let wanted = Self.wantedControllers.filter { available.contains($0) }
        if !wanted.allSatisfy({ current.contains($0) }) {
            try CgroupFS.write(wanted.map { "+\($0)" }.joined(separator: " "), to: subtreeFile)
        }
        let enabled = CgroupParsing.parseControllerList(try CgroupFS.read(subtreeFile))
        if requireControllers && !Self.requiredControllers.isSubset(of: enabled) {
            throw CgroupError(
                stage: "detect", path: subtreeFile,
                message: "memory and pids could not be enabled (enabled: \(Self.describe(enabled)))")
        }
        self.enabledControllers = enabled
    }

    /// Pure check of a cgroup2 root's `cgroup.controllers` and `cgroup.subtree_control` contents: memory and pids
    /// must be available and already delegated to children. Sealbox never writes the root's subtree_control
    /// because that cgroup is not ours.
    public static func checkDelegation(root: String, controllers: String, subtreeControl: String) throws(CgroupError) {
        let available = CgroupParsing.parseControllerList(controllers)
        let delegated = CgroupParsing.parseControllerList(subtreeControl)
        let missing = requiredControllers.subtracting(available)
        if !missing.isEmpty {
            throw CgroupError(
                stage: "detect", path: root,
                message: "cgroup v2 controllers not available: \(describe(missing)) missing from "
                    + "\(root)/cgroup.controllers (offers: \(describe(available))); sealbox needs memory and pids")
        }
        let undelegated = requiredControllers.subtracting(delegated)
        if !undelegated.isEmpty {
            throw CgroupError(
                stage: "detect", path: root,
                message: "cgroup v2 controllers not delegated: \(describe(undelegated)) missing from "
                    + "\(root)/cgroup.subtree_control (has: \(describe(delegated))); sealbox will not write it "
                    + "because that cgroup is not ours — enable them there, or point SEALBOX_CGROUP_V2_ROOT at a "
                    + "delegated cgroup")
        }
    }

    static func describe(_ controllers: Set<String>) -> String {
        controllers.isEmpty ? "none" : controllers.sorted().joined(separator: " ")
    }

    public func create(name: String, limits: CgroupLimits) throws(CgroupError) -> any TaskCgroup {
        try createV2(name: name, limits: limits)
    }

    /// `create` with the concrete return type.
    public func createV2(name: String, limits: CgroupLimits) throws(CgroupError) -> V2TaskCgroup {
        try CgroupParsing.validateTaskName(name)
        let directory = "\(parent)/\(name)"
        try CgroupFS.mkdir(directory, allowExisting: false)
        do throws(CgroupError) {
            if let bytes = limits.memoryBytes {
                try writeLimit("\(bytes)", file: "memory.max", controller: "memory", directory: directory)
            }
            let swap = "\(directory)/memory.swap.max"
            if CgroupFS.exists(swap) {
                try CgroupFS.write("0", to: swap)
            }
            if let pids = limits.pids {
                try writeLimit("\(pids)", file: "pids.max", controller: "pids", directory: directory)
            }
            if let quota = limits.cpuQuotaMicros {
                try writeLimit(
                    CgroupParsing.cpuMax(quotaMicros: quota, periodMicros: limits.cpuPeriodMicros),
                    file: "cpu.max", controller: "cpu", directory: directory)
            }
            let fd = try CgroupFS.open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
            return V2TaskCgroup(name: name, directory: directory, directoryFD: fd)
        } catch {
            try? CgroupFS.rmdir(directory)
            throw error
        }
    }

    private func writeLimit(_ value: String, file: String, controller: String, directory: String) throws(CgroupError) {
        let path = "\(directory)/\(file)"
        guard CgroupFS.exists(path) else {
            throw CgroupError(
                stage: "write", path: path,
                message: "\(controller) controller is not enabled in \(parent)/cgroup.subtree_control")
        }
        try CgroupFS.write(value, to: path)
    }
}

/// A task cgroup in the unified hierarchy.
public final class V2TaskCgroup: TaskCgroup {
    public let name: String
    public var version: CgroupVersion { .v2 }
    public var procsFDs: [Int32] { [] }
    /// `<root>/sealbox/<name>`.
    public let directory: String

    private struct State {
        var fd: Int32
        var removed: Bool
    }

    private let state: Mutex<State>

    init(name: String, directory: String, directoryFD: Int32) {
        self.name = name
        self.directory = directory
        self.state = Mutex(State(fd: directoryFD, removed: false))
    }

    deinit {
        state.withLock { state in
            CgroupFS.close(state.fd)
            state.fd = -1
        }
    }

    public var cloneIntoFD: Int32 {
        state.withLock { $0.fd }
    }

    /// Move `pid` into the cgroup (write to cgroup.procs). Spawners should prefer CLONE_INTO_CGROUP.
    public func attach(pid: pid_t) throws(CgroupError) {
        try CgroupFS.write("\(pid)", to: "\(directory)/cgroup.procs")
    }

    public func pids() -> [pid_t] {
        (CgroupFS.procs("\(directory)/cgroup.procs") ?? []).sorted()
    }

    /// Whether the cgroup (or a descendant) still has live tasks; false once the directory is gone.
    public func isPopulated() -> Bool {
        if let events = CgroupFS.readIfPresent("\(directory)/cgroup.events") {
            return (CgroupParsing.parseKeyValues(events)["populated"] ?? 0) != 0
        }
        return !pids().isEmpty
    }

    public func usage() -> CgroupUsage {
        var usage = limitEvents()
        usage.peakMemoryBytes = CgroupFS.readIfPresent("\(directory)/memory.peak").flatMap(CgroupParsing.parseUInt)
        usage.cpuNanos = CgroupFS.readIfPresent("\(directory)/cpu.stat")
            .flatMap { CgroupParsing.parseKeyValues($0)["usage_usec"] }
            .map { $0.multipliedReportingOverflow(by: 1000).partialValue }
        return usage
    }

    public func limitEvents() -> CgroupUsage {
        let oom = CgroupFS.readIfPresent("\(directory)/memory.events")
            .flatMap { CgroupParsing.parseKeyValues($0)["oom_kill"] } ?? 0
        let hits = CgroupFS.readIfPresent("\(directory)/pids.events")
            .flatMap { CgroupParsing.parseKeyValues($0)["max"] } ?? 0
        return CgroupUsage(oomKills: Int(clamping: oom), pidsLimitHits: Int(clamping: hits))
    }

    public func setFrozen(_ frozen: Bool) throws(CgroupError) {
        try CgroupFS.write(frozen ? "1" : "0", to: "\(directory)/cgroup.freeze")
        let done = CgroupFS.poll(timeoutNanos: 2_000_000_000, intervalMicros: 2_000) {
            let events = CgroupFS.readIfPresent("\(directory)/cgroup.events").map(CgroupParsing.parseKeyValues)
            return events?["frozen"] == (frozen ? 1 : 0)
        }
        if !done { throw CgroupError(stage: "freeze", path: directory, message: "cgroup.events does not say frozen \(frozen ? 1 : 0) after 2 s") }
    }

    /// Write "1" to cgroup.kill (kernels without it: SIGKILL each pid in cgroup.procs), then wait up to 2 s for
    /// the cgroup to become unpopulated.
    public func killAll() throws(CgroupError) {
        if state.withLock({ $0.removed }) { return }
        let killFile = "\(directory)/cgroup.kill"
        if CgroupFS.exists(killFile) {
            try CgroupFS.write("1", to: killFile)
        } else if let error = CgroupFS.killEach(pids(), path: "\(directory)/cgroup.procs") {
            throw error
        }
        let emptied = CgroupFS.poll(timeoutNanos: 2_000_000_000, intervalMicros: 2_000) {
            if !isPopulated() { return true }
            if !CgroupFS.exists(killFile) { _ = CgroupFS.killEach(pids(), path: "\(directory)/cgroup.procs") }
            return false
        }
        if !emptied {
            throw CgroupError(stage: "kill", path: directory, message: "cgroup still populated 2 s after kill")
        }
    }

    /// Wait up to 2 s for the cgroup to empty, close the directory fd, rmdir. Idempotent.
    public func destroy() throws(CgroupError) {
        let alreadyRemoved = state.withLock { state in
            CgroupFS.close(state.fd)
            state.fd = -1
            return state.removed
        }
        if alreadyRemoved { return }
        let empty = CgroupFS.poll(timeoutNanos: 2_000_000_000) { !isPopulated() }
        do throws(CgroupError) {
            try CgroupFS.rmdir(directory)
        } catch {
            var error = error
            if !empty { error.message = "cgroup still populated after 2 s; call killAll() first" }
            throw error
        }
        state.withLock { $0.removed = true }
    }
}
