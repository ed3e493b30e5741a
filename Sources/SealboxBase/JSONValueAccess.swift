// Building and reading `JSONValue`s in code: the constructors and accessors callers need so
// that no module keeps a JSON type of its own (the broker's arguments and results, MCP
// messages, profiles all use this one).

extension JSONValue {
    /// An integer, exactly (64-bit values above 2^53 included).
    public static func number<T: BinaryInteger>(_ value: T) -> JSONValue {
        .number(String(value))
    }

    /// A double as canonical v1 writes it (`1.0` as `1`, `0.1` as `0.1`); a NaN or an
    /// infinity, which JSON cannot hold, becomes null.
    public static func number(_ value: Double) -> JSONValue {
        guard value.isFinite else { return .null }
        return .number(JSONNumber.text(of: value))
    }

    /// An object from a dictionary, members in code point order (a dictionary has no order
    /// of its own, and a value built twice must read the same).
    public static func object(_ members: [String: JSONValue]) -> JSONValue {
        .object(members.sorted { CanonicalJSON.codePointLess($0.key, $1.key) }.map { (key: $0.key, value: $0.value) })
    }

    public var stringValue: String? {
        if case .string(let text) = self { return text }
        return nil
    }

    /// The literal text of a number.
    public var numberLiteral: String? {
        if case .number(let literal) = self { return literal }
        return nil
    }

    /// The members by name (names are unique: the reader refuses duplicates).
    public var objectValue: [String: JSONValue]? {
        guard case .object(let members) = self else { return nil }
        var out: [String: JSONValue] = [:]
        out.reserveCapacity(members.count)
        for (key, value) in members { out[key] = value }
        return out
    }

    /// The number as a double (rounded when it has more digits than a double holds).
    public var doubleValue: Double? {
        guard case .number(let literal) = self, let value = Double(literal), value.isFinite else { return nil }
        return value
    }

    /// True for a number with no fractional part, however it is written (`3`, `3.0`, `3e2`,
    /// `18446744073709551615`).
    public var isWholeNumber: Bool {
        guard case .number(let literal) = self else { return false }
        return JSONNumber.isWhole(literal)
    }

    /// Equal as JSON values: numbers by value (`1`, `1.0` and `1e0` are the same number),
    /// everything else as `==`. Objects compare by name, not by member order.
    public func sameValue(as other: JSONValue) -> Bool {
        switch (self, other) {
        case let (.number(a), .number(b)):
            return a == b || JSONNumber.canonicalText(a) == JSONNumber.canonicalText(b)
        case let (.array(a), .array(b)):
            return a.count == b.count && zip(a, b).allSatisfy { $0.sameValue(as: $1) }
        case let (.object(a), .object(b)):
            guard a.count == b.count, let bs = other.objectValue else { return false }
            return a.allSatisfy { member in bs[member.key].map { member.value.sameValue(as: $0) } ?? false }
        default:
            return self == other
        }
    }
}

extension JSONValue: Hashable {
    public func hash(into hasher: inout Hasher) {
        switch self {
        case .null: hasher.combine(0)
        case .bool(let flag): hasher.combine(flag)
        case .number(let literal): hasher.combine(literal)
        case .string(let text): hasher.combine(text)
        case .array(let items): hasher.combine(items)
        case .object(let members):
            hasher.combine(members.count)
            for (key, value) in members {
                hasher.combine(key)
                hasher.combine(value)
            }
        }
    }
}

// MARK: - Encodable

/// Through a generic `Encoder` (JSONEncoder) a number goes as the widest exact Swift type:
/// Int64 or UInt64 for integers that fit, a double otherwise. `JSONWriter` writes the literal
/// itself; use it where every digit of larger numbers must survive.
extension JSONValue: Encodable {
    public func encode(to encoder: any Encoder) throws {
        switch self {
        case .null:
            var c = encoder.singleValueContainer()
            try c.encodeNil()
        case .bool(let flag):
            var c = encoder.singleValueContainer()
            try c.encode(flag)
        case .number(let literal):
            var c = encoder.singleValueContainer()
            if let exact = Int64(literal) {
                try c.encode(exact)
            } else if let exact = UInt64(literal) {
                try c.encode(exact)
            } else if let value = Double(literal), value.isFinite {
                if value.rounded() == value, abs(value) < 9.0e15 { try c.encode(Int64(value)) } else { try c.encode(value) }
            } else {
                throw EncodingError.invalidValue(literal, EncodingError.Context(codingPath: encoder.codingPath, debugDescription: "a number beyond the range of a double"))
            }
        case .string(let text):
            var c = encoder.singleValueContainer()
            try c.encode(text)
        case .array(let items):
            var c = encoder.unkeyedContainer()
            for item in items { try c.encode(item) }
        case .object(let members):
            var c = encoder.container(keyedBy: NameKey.self)
            for (key, value) in members { try c.encode(value, forKey: NameKey(key)) }
        }
    }
}

/// Number literals and their canonical text.
public enum JSONNumber {
    /// Canonical v1 text of a number literal. Below 9.0e15 in magnitude it is what the broker
    /// wrote before JSON values kept their literal (a double through JSONEncoder): whole
    /// numbers as plain integers (`1.0` → `1`, `1e3` → `1000`), others in Swift's shortest
    /// round-trip form without a trailing `.0` (`0.1`, `1e-07`, `9.1e+15`), so the digests and
    /// `auto:` keys of existing logs stay valid. From 2^53 in magnitude a double no longer
    /// holds every integer (these were refused before): an integer literal is written as its
    /// digits exactly, any other literal as given.
    public static func canonicalText(_ literal: String) -> String {
        guard let value = Double(literal), value.isFinite, abs(value) < 9_007_199_254_740_992 else { return literal }
        return text(of: value)
    }

    /// A double as JSONEncoder writes it (with the whole numbers below 9.0e15 as integers,
    /// the rule of the broker's old JSON values).
    public static func text(of value: Double) -> String {
        if value.rounded() == value, abs(value) < 9.0e15 { return String(Int64(value)) }
        var text = value.description
        if text.hasSuffix(".0") { text.removeLast(2) }
        return text
    }

    /// Digits with an optional leading minus: no fraction, no exponent.
    public static func isPlainInteger(_ literal: String) -> Bool {
        let digits = literal.hasPrefix("-") ? literal.utf8.dropFirst() : literal.utf8[...]
        return !digits.isEmpty && digits.allSatisfy { $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }
    }

    public static func isWhole(_ literal: String) -> Bool {
        if isPlainInteger(literal) { return true }
        guard let value = Double(literal), value.isFinite else { return false }
        return value.rounded() == value
    }

}
