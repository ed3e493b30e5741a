import Glibc

/// Fallback when no usable cgroup hierarchy exists: creates nothing, limits nothing, reports nothing.
public struct NoCgroupDriver: CgroupDriver {
    public var version: CgroupVersion { .none }
    /// Why no real driver was chosen.
    public let reason: String

    public init(reason: String = "") {
        self.reason = reason
    }

    public func create(name: String, limits: CgroupLimits) throws(CgroupError) -> any TaskCgroup {
        try CgroupParsing.validateTaskName(name)
        return NoTaskCgroup(name: name)
    }
}

/// The do-nothing task cgroup of `NoCgroupDriver`.
public final class NoTaskCgroup: TaskCgroup {
    public let name: String
    public var version: CgroupVersion { .none }
    public var cloneIntoFD: Int32 { -1 }
    public var procsFDs: [Int32] { [] }

    public init(name: String) {
        self.name = name
    }

    public func usage() -> CgroupUsage { CgroupUsage() }
    public func killAll() throws(CgroupError) {}
    public func setFrozen(_ frozen: Bool) throws(CgroupError) {
        throw CgroupError(stage: "freeze", path: name, message: "no cgroups are in use, so nothing can be frozen")
    }
    public func destroy() throws(CgroupError) {}
}

/// Entry points: host detection and driver factories.
public enum Cgroups {
    /// Name of the per-hierarchy parent directory sealbox owns: `<hierarchy>/sealbox`.
    public static let parentName = "sealbox"
    /// Environment variable naming a (delegated) cgroup2 directory to use instead of /sys/fs/cgroup.
    public static let v2RootEnvironmentVariable = "SEALBOX_CGROUP_V2_ROOT"
    /// Where a pure-v2 host mounts the unified hierarchy.
    public static let defaultV2Root = "/sys/fs/cgroup"

    /// Contents of /proc/self/mountinfo, or "" if unreadable.
    public static func currentMountinfo() -> String {
        CgroupFS.readIfPresent("/proc/self/mountinfo") ?? ""
    }

    /// Picks the driver for this host: v2 if the unified hierarchy (cgroup2 mounted at /sys/fs/cgroup, or the
    /// `SEALBOX_CGROUP_V2_ROOT` override) offers and delegates memory and pids; else v1 if the memory and pids
    /// v1 hierarchies are mounted; else a `NoCgroupDriver`. Never writes outside `<hierarchy>/sealbox/`.
    public static func detect() -> any CgroupDriver {
        detectWithNotes().driver
    }

    /// `detect()` plus the reasons candidates were rejected (for logs / `sealbox doctor`).
    public static func detectWithNotes(
        mountinfo: String = currentMountinfo(),
        v2RootOverride: String? = environmentV2Root()
    ) -> (driver: any CgroupDriver, notes: [String]) {
        var notes: [String] = []
        let mounts = CgroupParsing.cgroupMounts(mountinfo: mountinfo)
        let v2Root: String?
        if let v2RootOverride, !v2RootOverride.isEmpty {
            v2Root = v2RootOverride
        } else if mounts.v2.contains(defaultV2Root) {
            v2Root = defaultV2Root
        } else {
            v2Root = nil
            notes.append("cgroup2 is not mounted at \(defaultV2Root) and \(v2RootEnvironmentVariable) is unset")
        }
        if let v2Root {
            do throws(CgroupError) {
                return (try v2(root: v2Root), notes)
            } catch {
                notes.append("v2 rejected: \(error)")
            }
        }
        do throws(CgroupError) {
            let driver = try V1CgroupDriver(mounts: mounts)
            return (driver, notes + driver.notes)
        } catch {
            notes.append("v1 rejected: \(error)")
        }
        return (NoCgroupDriver(reason: notes.joined(separator: "; ")), notes)
    }

    /// Value of `SEALBOX_CGROUP_V2_ROOT`, if set.
    public static func environmentV2Root() -> String? {
        guard let value = getenv(v2RootEnvironmentVariable) else { return nil }
        return String(cString: value)
    }

    /// The v1 driver for the hierarchies in `mountinfo`; throws if memory or pids is not mounted (or
    /// `<mount>/sealbox` cannot be created there).
    public static func v1(mountinfo: String = currentMountinfo()) throws(CgroupError) -> V1CgroupDriver {
        try V1CgroupDriver(mounts: CgroupParsing.cgroupMounts(mountinfo: mountinfo))
    }

    /// The v2 driver rooted at `root`; throws if `root` does not offer and delegate memory and pids.
    public static func v2(root: String) throws(CgroupError) -> V2CgroupDriver {
        try V2CgroupDriver(root: root)
    }

    /// Write `pid` to one cgroup.procs fd (as returned by `TaskCgroup.procsFDs`) with a single write(2).
    public static func attach(pid: pid_t, procsFD: Int32) throws(CgroupError) {
        try CgroupFS.write("\(pid)", fd: procsFD, path: "cgroup.procs fd \(procsFD)")
    }
}
