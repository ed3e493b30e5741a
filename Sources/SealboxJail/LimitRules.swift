import Foundation
import Glibc

/// What follows from `LimitTable`'s rows: reading flags and requests, the checks, the pool's
/// fit test, the rlimits, the echo and the schemas. Nothing here names a particular limit.
extension LimitTable {
    private static let byKey: [LimitKey: LimitRow] = Dictionary(uniqueKeysWithValues: rows.map { ($0.key, $0) })

    public static func row(_ key: LimitKey) -> LimitRow? { byKey[key] }

    // MARK: maxima

    /// The operator's maxima when no flag is given, as the documentation shows them: a
    /// maximum that depends on the host (`cpus`) is left out.
    public static var documentedMaxima: Limits {
        var maxima = Limits()
        for row in rows {
            if case .operatorFlag(_, let value) = row.maximum { maxima[row.key] = value } else { maxima[row.key] = nil }
        }
        return maxima
    }

    /// The maxima of a server on this host that the operator gave no flag for.
    public static var defaultMaxima: Limits {
        (try? operatorMaxima()) ?? documentedMaxima
    }

    /// The maxima of a server on this host: the operator's flags (`given`, by key) over the
    /// defaults, the host's CPU count, and each rlimit at most sealbox's own hard limit (a jail
    /// can never be given more; an operator asking for more is told so).
    public static func operatorMaxima(_ given: [LimitKey: LimitValue] = [:]) throws(JailError) -> Limits {
        var maxima = documentedMaxima
        for row in rows {
            if case .hostCPUs = row.maximum { maxima[row.key] = .cores(Double(ProcessInfo.processInfo.activeProcessorCount)) }
            if let value = given[row.key], let flag = row.operatorFlag {
                try checkRange(row, value, flag: "--" + flag)
                maxima[row.key] = value
            }
            if case .rlimit(let resource) = row.enforcement, let value = maxima[row.key] {
                let hard = hardLimit(resource)
                if value.whole > hard {
                    if given[row.key] != nil {
                        throw JailError(.invalidSpec, "--\(row.operatorFlag ?? row.flag) \(value) is above sealbox's own hard \(row.title) (\(hard)), which no jail can exceed")
                    }
                    maxima[row.key] = .whole(hard)
                }
            }
        }
        return maxima
    }

    /// The most `row` may be in a request under `maxima`; nil: only its ceiling bounds it.
    public static func maximum(of row: LimitRow, in maxima: Limits) -> LimitValue? {
        if case .otherLimit(let other, _) = row.maximum, let otherRow = self.row(other) { return maximum(of: otherRow, in: maxima) }
        return maxima[row.key] ?? row.ceiling
    }

    static func hardLimit(_ resource: Int32) -> UInt64 {
        var current = rlimit()
        guard getrlimit(__rlimit_resource_t(UInt32(resource)), &current) == 0 else { return UInt64.max }
        return UInt64(current.rlim_max)
    }

    // MARK: flags

    /// `sealbox run`'s limit flags (flag text by key, as given) over the defaults.
    public static func limits(fromFlags given: [LimitKey: String]) throws(JailError) -> Limits {
        var limits = Limits()
        for row in rows {
            guard let text = given[row.key] else { continue }
            let value = try row.unit.parseFlag(text, flag: "--" + row.flag)
            try checkRange(row, value, flag: "--" + row.flag)
            limits[row.key] = value
        }
        return limits
    }

    /// The operator's `--max-*` flags (text by key, as given).
    public static func maxima(fromFlags given: [LimitKey: String]) throws(JailError) -> Limits {
        var values: [LimitKey: LimitValue] = [:]
        for row in rows {
            guard let flag = row.operatorFlag, let text = given[row.key] else { continue }
            values[row.key] = try row.unit.parseFlag(text, flag: "--" + flag)
        }
        return try operatorMaxima(values)
    }

    /// A flag's value within the row's minimum and ceiling.
    static func checkRange(_ row: LimitRow, _ value: LimitValue, flag: String) throws(JailError) {
        let unit = row.unit
        if let ceiling = row.ceiling, value < row.minimum || value > ceiling {
            throw JailError(.invalidSpec, "\(flag) must be between \(unit.flagText(row.minimum)) and \(unit.flagMessageText(ceiling))")
        }
        guard value >= row.minimum else { throw JailError(.invalidSpec, "\(flag) must be at least \(unit.flagMessageText(row.minimum))") }
    }

    /// Help for `sealbox run --<flag>`.
    public static func flagHelp(_ row: LimitRow) -> String {
        let hint: String
        switch row.unit {
        case .bytes: hint = " A size: 256M, 1G."
        case .milliseconds: hint = " In seconds (millisecond resolution)."
        case .cpus: hint = " E.g. 0.5."
        case .count: hint = ""
        }
        let fallback = row.defaultValue.map { " (default: \(row.unit.flagText($0)))" } ?? ""
        return "\(row.about)\(hint) limits.\(row.key) in the API.\(fallback)"
    }

    /// Help for the operator's flag of `row`.
    public static func operatorFlagHelp(_ row: LimitRow) -> String {
        guard case .operatorFlag(_, let value) = row.maximum else { return "" }
        let unit = row.unit == .milliseconds ? ", in seconds" : ""
        return "Largest \(row.title) a request may ask for\(unit) (limits.\(row.key); default: \(row.unit.flagText(value)))."
    }

    // MARK: requests

    /// A request's limits (`RequestedLimits`) over `defaults`, each checked against its row
    /// and the operator's `maxima`. Every refusal names the field: `limits.memory_bytes`.
    public static func resolve(_ requested: RequestedLimits?, defaults: Limits, maxima: Limits) throws(JailError) -> Limits {
        var limits = defaults
        for row in rows {
            guard let value = requested?.values[row.key] else { continue }
            guard value >= row.minimum else {
                throw JailError(.invalidSpec, "\(row.field) must be at least \(row.minimum)", field: row.field)
            }
            if let maximum = maximum(of: row, in: maxima), value > maximum {
                let whose: String
                switch row.maximum {
                case .hostCPUs: whose = "this host's CPU count"
                case .operatorFlag, .otherLimit: whose = "the operator's maximum"
                }
                throw JailError(.invalidSpec, "\(row.field) \(value) is above \(whose) of \(maximum)", field: row.field)
            }
            limits[row.key] = value
        }
        // A default above the operator's maximum is lowered to it: what is not asked for never
        // exceeds what may be asked for.
        for row in rows {
            if let value = limits[row.key], let maximum = maximum(of: row, in: maxima), value > maximum { limits[row.key] = maximum }
        }
        for row in rows {
            guard case .otherLimit(let other, let because) = row.maximum, let otherRow = self.row(other),
                  let value = limits[row.key], let bound = limits.inForce(otherRow), value > bound else { continue }
            throw JailError(.invalidSpec, "\(row.field) \(value) is above \(otherRow.field) (\(bound)): \(because)", field: row.field)
        }
        return limits
    }

    /// `SpecValidator`'s check of a spec's limits: each row's bounds, and the bounds rows set
    /// each other.
    static func validate(_ limits: Limits) throws(JailError) {
        for row in rows {
            guard let value = limits[row.key] else { continue }
            guard value >= row.minimum else {
                throw JailError(.invalidSpec, "\(row.title) must be at least \(row.unit.flagMessageText(row.minimum))", field: row.field)
            }
            if let ceiling = row.ceiling, value > ceiling {
                throw JailError(.invalidSpec, "\(row.title) must be at most \(row.unit.flagMessageText(ceiling))", field: row.field)
            }
        }
        for row in rows {
            guard case .otherLimit(let other, let because) = row.maximum, let otherRow = self.row(other),
                  let value = limits[row.key], let bound = limits.inForce(otherRow), value > bound else { continue }
            throw JailError(.invalidSpec, "\(row.title) (\(spelled(value, row.unit))) must not exceed the \(otherRow.title) (\(spelled(bound, otherRow.unit))): \(because)",
                            field: row.field)
        }
    }

    private static func spelled(_ value: LimitValue, _ unit: LimitUnit) -> String {
        switch unit {
        case .bytes: "\(value) bytes"
        case .milliseconds: "\(value) ms"
        case .count, .cpus: "\(value)"
        }
    }

    // MARK: enforcement

    /// Whether runs under `a` and `b` need the same jail: every limit fixed when a pooled jail
    /// is prepared is equal.
    static func sameJail(_ a: Limits, _ b: Limits) -> Bool {
        rows.allSatisfy { row in !row.shapesPooledJail || a.inForce(row) == b.inForce(row) }
    }

    /// The rlimits the rows ask for: resource and value.
    static func rlimits(_ limits: Limits) -> [(resource: Int32, value: UInt64)] {
        rows.compactMap { row in
            guard case .rlimit(let resource) = row.enforcement, let value = limits.inForce(row) else { return nil }
            return (resource, value.whole)
        }
    }
}

/// A request's `limits` object, read by the strict decoder: only the rows' keys (any other
/// is refused, naming it), each as its unit's JSON type, so `-5` for a size is refused as
/// "limits.memory_bytes must not be negative".
public struct RequestedLimits: Decodable, Sendable, Equatable {
    public var values: [LimitKey: LimitValue]

    public init(_ values: [LimitKey: LimitValue] = [:]) {
        self.values = values
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: LimitCodingKey.self)
        values = [:]
        for row in LimitTable.rows {
            let key = LimitCodingKey(row)
            if row.unit.isWhole {
                if let value = try container.decodeIfPresent(UInt64.self, forKey: key) { values[row.key] = .whole(value) }
            } else if let value = try container.decodeIfPresent(Double.self, forKey: key) {
                values[row.key] = .cores(value)
            }
        }
    }
}

/// The rows' keys as coding keys; a name that is no row's cannot be made, which is how the
/// strict decoder knows a field is unknown (and lists the known ones).
struct LimitCodingKey: CodingKey, CaseIterable {
    let stringValue: String
    var intValue: Int? { nil }

    init(_ row: LimitRow) { stringValue = row.key.rawValue }

    init?(stringValue: String) {
        guard LimitTable.row(LimitKey(stringValue)) != nil else { return nil }
        self.stringValue = stringValue
    }

    init?(intValue: Int) { nil }

    static var allCases: [LimitCodingKey] { LimitTable.rows.map(LimitCodingKey.init) }
}

extension LimitValue: Encodable {
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .whole(let value): try container.encode(value)
        case .cores(let value): try container.encode(value)
        }
    }
}
