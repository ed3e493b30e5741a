import SealboxBase

/// What one row of `LimitTable` says about a limit. Everything that names, reads, checks,
/// enforces or echoes a run limit reads these rows (nsjail's `config.proto` plays the same
/// part: one declaration per limit, with its default).

/// A limit's name: its JSON key in a request's `limits` and in a result's echo.
public struct LimitKey: Hashable, Sendable, RawRepresentable, ExpressibleByStringLiteral, CustomStringConvertible {
    public let rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }
    public init(_ rawValue: String) { self.rawValue = rawValue }
    public init(stringLiteral value: String) { self.rawValue = value }
    public var description: String { rawValue }
}

/// A limit's value: whole numbers exactly (bytes, counts, milliseconds), cores as a decimal.
public enum LimitValue: Sendable, Hashable, Comparable, CustomStringConvertible {
    case whole(UInt64)
    case cores(Double)

    public var whole: UInt64 {
        switch self {
        case .whole(let value): value
        case .cores(let value): value.isFinite && value >= 0 ? UInt64(min(value, 9.0e18)) : 0
        }
    }

    public var cores: Double {
        switch self {
        case .whole(let value): Double(value)
        case .cores(let value): value
        }
    }

    /// One row's values are always of one kind; across kinds, by magnitude.
    public static func < (lhs: LimitValue, rhs: LimitValue) -> Bool {
        if case .whole(let a) = lhs, case .whole(let b) = rhs { return a < b }
        return lhs.cores < rhs.cores
    }

    /// As JSON writes it: `268435456`, `0.5`.
    public var description: String {
        switch self {
        case .whole(let value): "\(value)"
        case .cores(let value): value.rounded() == value && abs(value) < 1e15 ? "\(Int64(value))" : "\(value)"
        }
    }
}

/// How a limit is measured: what a flag takes, what JSON type carries it, how messages show it.
public enum LimitUnit: String, Sendable {
    /// JSON: whole bytes. Flags: a size, `256M` (`ByteSize`, binary units).
    case bytes
    /// JSON and flags: a whole number.
    case count
    /// JSON: whole milliseconds (`timeout_ms`). Flags: seconds, `2.5`.
    case milliseconds
    /// JSON and flags: CPU bandwidth in cores, `0.5`.
    case cpus

    public var isWhole: Bool { self != .cpus }

    /// A value as a flag takes it, for `(default: …)` in --help.
    public func flagText(_ value: LimitValue) -> String {
        switch self {
        case .bytes: ByteSize.format(value.whole)
        case .count: "\(value.whole)"
        case .milliseconds: Self.seconds(value.whole)
        case .cpus: "\(value)"
        }
    }

    /// A value for messages about a flag: `4M`, `0.001 seconds`.
    public func flagMessageText(_ value: LimitValue) -> String {
        self == .milliseconds ? flagText(value) + " seconds" : flagText(value)
    }

    /// What a flag value looks like, for its help: `SIZE`, `SECONDS`.
    public var flagValueName: String {
        switch self {
        case .bytes: "size"
        case .count: "n"
        case .milliseconds: "seconds"
        case .cpus: "cores"
        }
    }

    /// Reads a flag's text (`--memory 256M`, `--timeout 2.5`). Range checks are the row's.
    public func parseFlag(_ text: String, flag: String) throws(JailError) -> LimitValue {
        switch self {
        case .bytes:
            return .whole(try ByteSize.parse(text, flag: flag))
        case .count:
            guard let value = UInt64(text.trimmingWhitespace()) else {
                throw JailError(.invalidSpec, "\(flag) expects a whole number, got \"\(text)\"")
            }
            return .whole(value)
        case .milliseconds:
            guard let seconds = Double(text.trimmingWhitespace()), seconds.isFinite, seconds >= 0, seconds < 9.0e15 else {
                throw JailError(.invalidSpec, "\(flag) expects seconds, e.g. 2.5, got \"\(text)\"")
            }
            return .whole(UInt64((seconds * 1000).rounded()))
        case .cpus:
            guard let cores = Double(text.trimmingWhitespace()), cores.isFinite, cores >= 0 else {
                throw JailError(.invalidSpec, "\(flag) expects a number of cores, e.g. 0.5, got \"\(text)\"")
            }
            return .cores(cores)
        }
    }

    /// Milliseconds as seconds without trailing zeros: 10000 → "10", 1 → "0.001".
    static func seconds(_ milliseconds: UInt64) -> String {
        let whole = milliseconds / 1000, fraction = milliseconds % 1000
        guard fraction > 0 else { return "\(whole)" }
        var digits = String(fraction)
        digits = String(repeating: "0", count: 3 - digits.count) + digits
        while digits.hasSuffix("0") { digits.removeLast() }
        return "\(whole).\(digits)"
    }
}

/// What enforces a limit, which decides where a value takes effect.
public enum LimitEnforcement: Sendable, Equatable {
    /// The run's cgroup (memory.max, pids.max, cpu.max): `CgroupLimits`.
    case cgroup
    /// `setrlimit` in the child, before the program starts (`RlimitPlan`): the resource.
    case rlimit(Int32)
    /// The size of a tmpfs of the jail (`FilesystemPlan`, the root tmpfs).
    case tmpfs
    /// sealbox's supervisor, from outside the jail (the timeout kill, the output caps).
    case supervisor
}

/// Where the most a request may ask for comes from.
public enum LimitMaximum: Sendable {
    /// The operator's `serve`/`mcp` flag, and its default.
    case operatorFlag(String, default: LimitValue)
    /// The host's CPU count: a run cannot use more cores than there are.
    case hostCPUs
    /// At most another limit of the same run (and so at most that limit's maximum), for
    /// `because`.
    case otherLimit(LimitKey, because: String)
}

public struct LimitRow: Sendable {
    /// JSON key (`limits.<key>` in requests, in the result's `limits`, in the schemas).
    public let key: LimitKey
    /// `sealbox run --<flag>` (and `profile learn`, `profile test`).
    public let flag: String
    public let unit: LimitUnit
    /// The least a run may ask for.
    public let minimum: LimitValue
    /// The most anyone may set, the operator included; nil: no bound beyond the maximum.
    public let ceiling: LimitValue?
    /// What a run gets when it asks for nothing; nil: unset (see `derivedDefault`).
    public let defaultValue: LimitValue?
    public let maximum: LimitMaximum
    public let enforcement: LimitEnforcement
    /// Fixed when a pooled jail is prepared (its cgroup, tmpfs sizes, rlimits): a run takes a
    /// pooled jail only when every such limit equals the pool's (`JailPool.fits`).
    public let shapesPooledJail: Bool
    /// A noun for messages: "memory limit".
    public let title: String
    /// One sentence for --help and the schemas' descriptions.
    public let about: String
    /// The value in force while unset, when it follows from other limits (/dev/shm's quarter
    /// of the memory limit); nil: an unset limit is not enforced.
    public let derivedDefault: (@Sendable (Limits) -> LimitValue)?

    public init(key: LimitKey, flag: String, unit: LimitUnit, minimum: LimitValue, ceiling: LimitValue? = nil,
                defaultValue: LimitValue?, maximum: LimitMaximum, enforcement: LimitEnforcement, shapesPooledJail: Bool,
                title: String, about: String, derivedDefault: (@Sendable (Limits) -> LimitValue)? = nil) {
        self.key = key
        self.flag = flag
        self.unit = unit
        self.minimum = minimum
        self.ceiling = ceiling
        self.defaultValue = defaultValue
        self.maximum = maximum
        self.enforcement = enforcement
        self.shapesPooledJail = shapesPooledJail
        self.title = title
        self.about = about
        self.derivedDefault = derivedDefault
    }

    /// The operator's flag for this limit's maximum, when there is one.
    public var operatorFlag: String? {
        if case .operatorFlag(let flag, _) = maximum { return flag }
        return nil
    }

    /// `limits.memory_bytes`: how requests and their errors name it.
    public var field: String { "limits.\(key)" }

    /// A value as this row's JSON carries it: whole rows exact, `cpus` as a number.
    func normalized(_ value: LimitValue) -> LimitValue {
        unit.isWhole ? .whole(value.whole) : .cores(value.cores)
    }
}

extension StringProtocol {
    /// The text without white space at either end (flags as users type them).
    fileprivate func trimmingWhitespace() -> String {
        String(drop(while: { $0.isWhitespace }).reversed().drop(while: { $0.isWhitespace }).reversed())
    }
}
