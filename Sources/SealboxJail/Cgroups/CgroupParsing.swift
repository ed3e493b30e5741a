/// One line of /proc/<pid>/mountinfo (see proc(5)).
public struct MountinfoEntry: Sendable, Equatable {
    public var mountID: Int
    public var parentID: Int
    /// Root of the mount within its filesystem (for cgroup: the cgroup path that is mounted here).
    public var root: String
    /// Mount point, with mountinfo's octal escapes (\040 etc.) decoded.
    public var mountPoint: String
    public var fsType: String
    public var source: String
    /// Per-superblock options, e.g. ["rw", "cpu", "cpuacct"] or ["rw", "name=systemd"].
    public var superOptions: [String]

    public init(
        mountID: Int, parentID: Int, root: String, mountPoint: String,
        fsType: String, source: String, superOptions: [String]
    ) {
        self.mountID = mountID
        self.parentID = parentID
        self.root = root
        self.mountPoint = mountPoint
        self.fsType = fsType
        self.source = source
        self.superOptions = superOptions
    }
}

/// The cgroup hierarchies visible in a mountinfo.
public struct CgroupMounts: Sendable, Equatable {
    /// v1 controller (or named hierarchy such as "name=systemd") -> mount point. Co-mounted controllers
    /// ("cpu,cpuacct") map to the same mount point. If a hierarchy is mounted twice, the first mount wins.
    public var v1: [String: String]
    /// Mount points of cgroup2, in mountinfo order.
    public var v2: [String]

    public init(v1: [String: String] = [:], v2: [String] = []) {
        self.v1 = v1
        self.v2 = v2
    }
}

/// Pure parsers and formatters used by the drivers; all unit-testable without cgroups.
public enum CgroupParsing {
    /// Mount options that can appear on a v1 cgroup superblock but are not controllers.
    static let nonControllerOptions: Set<String> = [
        "rw", "ro", "none", "noprefix", "clone_children", "xattr", "cpuset_v2_mode",
        "favordynmods", "nofavordynmods",
    ]

    /// Decode mountinfo's octal escapes: "\040" (space), "\011" (tab), "\012" (newline), "\134" (backslash).
    public static func unescapeMountinfoField(_ field: Substring) -> String {
        guard field.contains("\\") else { return String(field) }
        let bytes = Array(field.utf8)
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        var index = 0
        while index < bytes.count {
            if bytes[index] == UInt8(ascii: "\\"), index + 3 < bytes.count {
                let digits = bytes[(index + 1)...(index + 3)]
                if digits.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "7") }) {
                    var value: UInt32 = 0
                    for digit in digits { value = value * 8 + UInt32(digit - UInt8(ascii: "0")) }
                    if value <= 0xFF {
                        out.append(UInt8(value))
                        index += 4
                        continue
                    }
                }
            }
            out.append(bytes[index])
            index += 1
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Parse one mountinfo line; nil if malformed.
    public static func parseMountinfoLine(_ line: String) -> MountinfoEntry? {
        parseMountinfoLine(line[...])
    }

    /// Parse one mountinfo line; nil if malformed.
    public static func parseMountinfoLine(_ line: Substring) -> MountinfoEntry? {
        let fields = line.split(separator: " ", omittingEmptySubsequences: true)
        // id parent maj:min root mountpoint options [optional...] - fstype source superoptions
        guard fields.count >= 9,
              let separator = fields[6...].firstIndex(of: "-"),
              separator + 2 < fields.count
        else { return nil }
        guard let mountID = Int(fields[0]), let parentID = Int(fields[1]) else { return nil }
        let fsType = String(fields[separator + 1])
        let source = unescapeMountinfoField(fields[separator + 2])
        let superOptions = separator + 3 < fields.count
            ? fields[separator + 3].split(separator: ",").map(String.init)
            : []
        return MountinfoEntry(
            mountID: mountID, parentID: parentID,
            root: unescapeMountinfoField(fields[3]),
            mountPoint: unescapeMountinfoField(fields[4]),
            fsType: fsType, source: source, superOptions: superOptions)
    }

    /// Parse a whole mountinfo text, skipping malformed lines.
    public static func parseMountinfo(_ text: String) -> [MountinfoEntry] {
        text.split(separator: "\n").compactMap { parseMountinfoLine($0) }
    }

    /// The v1 controllers (and "name=..." hierarchies) named by a cgroup superblock's options.
    public static func v1Controllers(superOptions: [String]) -> [String] {
        superOptions.filter { option in
            if option.hasPrefix("name=") { return true }
            if option.contains("=") { return false } // release_agent=..., etc.
            return !nonControllerOptions.contains(option)
        }
    }

    /// controller -> mount point for v1, and the cgroup2 mount points.
    public static func cgroupMounts(mountinfo: String) -> CgroupMounts {
        var mounts = CgroupMounts()
        for entry in parseMountinfo(mountinfo) {
            switch entry.fsType {
            case "cgroup":
                for controller in v1Controllers(superOptions: entry.superOptions) where mounts.v1[controller] == nil {
                    mounts.v1[controller] = entry.mountPoint
                }
            case "cgroup2":
                mounts.v2.append(entry.mountPoint)
            default:
                continue
            }
        }
        return mounts
    }

    /// Parse flat-keyed files: "key value" per line (memory.events, memory.oom_control, pids.events, cpu.stat,
    /// cgroup.events). Lines whose value is not an unsigned integer are skipped.
    public static func parseKeyValues(_ text: String) -> [String: UInt64] {
        var result: [String: UInt64] = [:]
        for line in text.split(separator: "\n") {
            let parts = line.split(separator: " ", omittingEmptySubsequences: true)
            guard parts.count == 2, let value = UInt64(parts[1]) else { continue }
            result[String(parts[0])] = value
        }
        return result
    }

    /// Parse a single-value limit file (pids.max, memory.max): nil for "max" or unparsable text.
    public static func parseLimit(_ text: String) -> UInt64? {
        let trimmed = text.cgroupTrimmed()
        if trimmed == "max" { return nil }
        return UInt64(trimmed)
    }

    /// Parse a single unsigned integer file (cpuacct.usage, memory.max_usage_in_bytes, memory.peak).
    public static func parseUInt(_ text: String) -> UInt64? {
        UInt64(text.cgroupTrimmed())
    }

    /// Parse cgroup.procs / tasks: one pid per line.
    public static func parsePIDList(_ text: String) -> [Int32] {
        text.split(separator: "\n").compactMap { Int32($0.cgroupTrimmed()) }
    }

    /// Parse cgroup.controllers / cgroup.subtree_control: space-separated controller names.
    public static func parseControllerList(_ text: String) -> Set<String> {
        Set(text.split(whereSeparator: { $0 == " " || $0 == "\n" || $0 == "\t" }).map(String.init))
    }

    /// v2 cpu.max content: "max 100000" when unlimited, else "50000 100000".
    public static func cpuMax(quotaMicros: Int?, periodMicros: Int) -> String {
        if let quotaMicros {
            return "\(quotaMicros) \(periodMicros)"
        }
        return "max \(periodMicros)"
    }

    /// v1 cpu.cfs_quota_us content: "-1" when unlimited, else the quota.
    public static func cfsQuota(quotaMicros: Int?) -> String {
        if let quotaMicros { return "\(quotaMicros)" }
        return "-1"
    }

    /// Parse v2 cpu.max back into (quota, period); quota nil for "max".
    public static func parseCPUMax(_ text: String) -> (quotaMicros: Int?, periodMicros: Int)? {
        let parts = text.cgroupTrimmed().split(separator: " ")
        guard parts.count == 2, let period = Int(parts[1]) else { return nil }
        if parts[0] == "max" { return (nil, period) }
        guard let quota = Int(parts[0]) else { return nil }
        return (quota, period)
    }

    public static let maxTaskNameLength = 64

    /// Whether `name` is acceptable as a task cgroup directory name: 1...64 characters from [A-Za-z0-9_.-],
    /// not "." and not containing "..".
    public static func isValidTaskName(_ name: String) -> Bool {
        guard !name.isEmpty, name.utf8.count <= maxTaskNameLength else { return false }
        guard name != ".", !name.contains("..") else { return false }
        return name.utf8.allSatisfy { byte in
            (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z"))
                || (byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z"))
                || (byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9"))
                || byte == UInt8(ascii: "_") || byte == UInt8(ascii: ".") || byte == UInt8(ascii: "-")
        }
    }

    /// Throwing form of `isValidTaskName`.
    public static func validateTaskName(_ name: String) throws(CgroupError) {
        guard isValidTaskName(name) else {
            throw CgroupError(
                stage: "validate", path: name,
                message: "invalid cgroup task name: use 1-\(maxTaskNameLength) characters from [A-Za-z0-9_.-], "
                    + "no \"..\" and no \"/\"")
        }
    }

    /// How many pids.max refusals to report when v1 has no pids.events file: pids.events' "max" counter if
    /// given; otherwise 1 if the high-water mark (pids.peak, else pids.current) reached a numeric pids.max,
    /// else 0. The fallback is an approximation: reaching the limit does not prove a fork was refused.
    public static func pidsLimitHits(events: String?, peak: String?, current: String?, max: String?) -> Int {
        if let events {
            return Int(clamping: parseKeyValues(events)["max"] ?? 0)
        }
        guard let maxText = max, let limit = parseLimit(maxText) else { return 0 }
        let high = peak.flatMap(parseUInt) ?? current.flatMap(parseUInt)
        guard let high else { return 0 }
        return high >= limit ? 1 : 0
    }
}

extension StringProtocol {
    func cgroupTrimmed() -> String {
        let isSpace: (Character) -> Bool = { $0 == " " || $0 == "\n" || $0 == "\t" || $0 == "\r" }
        guard let start = firstIndex(where: { !isSpace($0) }) else { return "" }
        let end = lastIndex(where: { !isSpace($0) })!
        return String(self[start...end])
    }
}
