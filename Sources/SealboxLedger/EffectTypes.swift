/// Effect classes, declared per tool by the operator (DESIGN.md, "Effect classes").
public enum EffectClass: String, Codable, Sendable, CaseIterable {
    /// Re-executed on retry (or the sealed snapshot, inside a hybrid decision).
    case read
    /// Sealed completion returned; with only an intent, re-executed with the same key.
    case idempotent
    /// Sealed completion returned; with only an intent the call is in doubt until an operator
    /// resolves it. Never replayed blindly.
    case irreversible
    /// Read-then-write: the read is sealed as a snapshot and returned on resume; a fresh read
    /// must be asked for explicitly and is recorded as such.
    case hybrid
}

/// Who lets a call through.
public enum Approval: String, Codable, Sendable, CaseIterable {
    case auto
    case human
}

/// A JSON value, for tool arguments and results (and the records that store them).
public enum JSONValue: Sendable, Hashable, Codable {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    public init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        if c.decodeNil() { self = .null }
        else if let b = try? c.decode(Bool.self) { self = .bool(b) }
        else if let n = try? c.decode(Double.self) { self = .number(n) }
        else if let s = try? c.decode(String.self) { self = .string(s) }
        else if let a = try? c.decode([JSONValue].self) { self = .array(a) }
        else { self = .object(try c.decode([String: JSONValue].self)) }
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        switch self {
        case .null: try c.encodeNil()
        case .bool(let b): try c.encode(b)
        case .number(let n):
            if n.rounded() == n && abs(n) < 9.0e15 { try c.encode(Int64(n)) } else { try c.encode(n) }
        case .string(let s): try c.encode(s)
        case .array(let a): try c.encode(a)
        case .object(let o): try c.encode(o)
        }
    }

    public var stringValue: String? { if case .string(let s) = self { return s }; return nil }
    public var objectValue: [String: JSONValue]? { if case .object(let o) = self { return o }; return nil }
}
