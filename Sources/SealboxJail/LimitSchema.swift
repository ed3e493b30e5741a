import Foundation

/// JSON Schemas of `limits`, derived from `LimitTable`: the request's (OpenAPI
/// `RunRequest.limits`, MCP `run_code`'s input) with the operator's real maxima, and the
/// result's echo. `Encodable`, so any JSON value type can be made from one (MCP's, the
/// OpenAPI document's).
public struct LimitSchema: Encodable, Sendable {
    struct Property: Encodable, Sendable {
        var type: String
        var minimum: LimitValue?
        var maximum: LimitValue?
        var defaultValue: LimitValue?
        var description: String?

        enum CodingKeys: String, CodingKey {
            case type, minimum, maximum, description
            case defaultValue = "default"
        }
    }

    let properties: [(key: LimitKey, schema: Property)]
    let closed: Bool
    let description: String?

    /// The request's `limits`: each row with its minimum, its maximum under `maxima` (its
    /// ceiling when it has none there: the documented `cpus`), its default and what it is.
    public static func request(defaults: Limits, maxima: Limits, description: String? = nil) -> LimitSchema {
        LimitSchema(properties: LimitTable.rows.map { row in
            var about = row.about
            switch row.maximum {
            case .operatorFlag(let flag, _): about += " At most the operator's --\(flag)."
            case .hostCPUs: about += " At most the server's CPU count."
            case .otherLimit: break
            }
            return (row.key, Property(
                type: row.unit.isWhole ? "integer" : "number", minimum: row.minimum,
                maximum: LimitTable.maximum(of: row, in: maxima), defaultValue: defaults[row.key], description: about))
        }, closed: true, description: description)
    }

    /// The result's `limits`: each row's value in force.
    public static var echo: LimitSchema {
        LimitSchema(properties: LimitTable.rows.map { row in
            (row.key, Property(type: row.unit.isWhole ? "integer" : "number"))
        }, closed: false, description: nil)
    }

    /// As JSON text, to splice into a larger schema.
    public var jsonText: String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        // Encoding strings, numbers and booleans cannot fail.
        return String(decoding: (try? encoder.encode(self)) ?? Data("{}".utf8), as: UTF8.self)
    }

    /// The keys of `properties`, in table order.
    public var keys: [LimitKey] { properties.map(\.key) }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: SchemaKey.self)
        try container.encode("object", forKey: SchemaKey("type"))
        if closed { try container.encode(false, forKey: SchemaKey("additionalProperties")) }
        var nested = container.nestedContainer(keyedBy: SchemaKey.self, forKey: SchemaKey("properties"))
        for (key, schema) in properties { try nested.encode(schema, forKey: SchemaKey(key.rawValue)) }
        if let description { try container.encode(description, forKey: SchemaKey("description")) }
    }

    private struct SchemaKey: CodingKey {
        let stringValue: String
        var intValue: Int? { nil }
        init(_ name: String) { stringValue = name }
        init?(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }
}

extension JailResult {
    /// The limits a run had, as `--json` and the API echo them: each row's value in force, by
    /// its key. Decoding takes what is there: results sealed before a row existed lack it.
    public struct AppliedLimits: Sendable, Codable, Equatable {
        public var values: [LimitKey: LimitValue]

        public init(_ limits: Limits) {
            values = [:]
            for row in LimitTable.rows {
                if let value = limits.inForce(row) { values[row.key] = value }
            }
        }

        public subscript(key: LimitKey) -> LimitValue? { values[key] }

        public var timeoutMs: Int { Int(clamping: values[.timeoutMs]?.whole ?? 0) }
        public var memoryBytes: UInt64 { values[.memoryBytes]?.whole ?? 0 }
        public var pids: Int { Int(clamping: values[.pids]?.whole ?? 0) }
        public var diskBytes: UInt64 { values[.diskBytes]?.whole ?? 0 }
        public var outputBytes: Int { Int(clamping: values[.outputBytes]?.whole ?? 0) }
        /// The /dev/shm size in force (absent from results sealed before it existed).
        public var shmBytes: UInt64? { values[.shmBytes]?.whole }

        public init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: AnyKey.self)
            values = [:]
            for row in LimitTable.rows {
                let key = AnyKey(row.key.rawValue)
                if row.unit.isWhole {
                    if let value = try container.decodeIfPresent(UInt64.self, forKey: key) { values[row.key] = .whole(value) }
                } else if let value = try container.decodeIfPresent(Double.self, forKey: key) {
                    values[row.key] = .cores(value)
                }
            }
        }

        public func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: AnyKey.self)
            for row in LimitTable.rows {
                if let value = values[row.key] { try container.encode(row.normalized(value), forKey: AnyKey(row.key.rawValue)) }
            }
        }

        private struct AnyKey: CodingKey {
            let stringValue: String
            var intValue: Int? { nil }
            init(_ name: String) { stringValue = name }
            init?(stringValue: String) { self.stringValue = stringValue }
            init?(intValue: Int) { nil }
        }
    }
}
