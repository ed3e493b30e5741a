/// Decodes `Decodable` types from JSON read by `JSONReader`: one reading of the bytes, so
/// what is checked is what is used. Strict where Foundation's JSONDecoder is lax or vague:
/// - a duplicate member name anywhere is refused (by the reader);
/// - a member the type does not know is refused, naming it, when the type's `CodingKeys`
///   cannot be made from that name (synthesized `CodingKeys` cannot; a dictionary's keys
///   can), and the known names are listed when `CodingKeys` is `CaseIterable`;
/// - numbers are read from their literal: `-5` for an unsigned field says "must not be
///   negative", `1e30` for an `Int` says "is too large", `2.5` says "must be a whole number";
/// - every error names the field (`limits.memory_bytes`, `files[2].name`) and says what was
///   expected in words ("a string"), never in Swift type names.
///
///     struct Body: Decodable { var at: String }
///     let body = try StrictJSONDecoder.decode(Body.self, from: bytes)
public enum StrictJSONDecoder {
    public static func decode<T: Decodable>(_ type: T.Type, from bytes: [UInt8]) throws(JSONDecodingError) -> T {
        let value: JSONValue
        do {
            value = try JSONReader.parse(bytes)
        } catch {
            throw JSONDecodingError(field: error.path, message: "not valid JSON: \(error.description)", syntax: true)
        }
        return try decode(type, from: value)
    }

    /// Decodes an already parsed value (a member of a larger message).
    public static func decode<T: Decodable>(_ type: T.Type, from value: JSONValue) throws(JSONDecodingError) -> T {
        do {
            return try T(from: ValueDecoder(value: value, path: []))
        } catch let error as JSONDecodingError {
            throw error
        } catch let error as DecodingError {
            throw JSONDecodingError(error)
        } catch {
            // A type's own init(from:) threw something else: its message is the type's own.
            throw JSONDecodingError(field: nil, message: "\(error)")
        }
    }
}

/// Why a JSON document could not be decoded: the field at fault (nil for the whole body)
/// and a message that starts with it.
public struct JSONDecodingError: Error, Sendable, Equatable, CustomStringConvertible {
    public var field: String?
    public var message: String
    /// The bytes are not JSON at all (or have a duplicate member name), as opposed to JSON of
    /// the wrong shape.
    public var syntax: Bool

    public init(field: String?, message: String, syntax: Bool = false) {
        self.field = field
        self.message = message
        self.syntax = syntax
    }

    public var description: String { message }

    init(_ error: DecodingError) {
        switch error {
        // A type's own init(from:) threw these; its debugDescription may name Swift types
        // ("Cannot initialize Kind from invalid String value"), so only the field is said.
        case .typeMismatch(_, let context), .valueNotFound(_, let context):
            let field = CodingPath.render(context.codingPath)
            self.init(field: field.isEmpty ? nil : field, message: (field.isEmpty ? "the body" : field) + " has the wrong type")
        case .dataCorrupted(let context):
            let field = CodingPath.render(context.codingPath)
            self.init(field: field.isEmpty ? nil : field, message: (field.isEmpty ? "the body" : field) + " is not a valid value")
        case .keyNotFound(let key, let context):
            let field = CodingPath.render(context.codingPath + [key])
            self.init(field: field, message: "\(field) is required")
        @unknown default:
            self.init(field: nil, message: "the body does not have the expected shape")
        }
    }
}

/// Coding paths in the notation of `JSONPositions`: `files[2].name`.
enum CodingPath {
    static func render(_ path: [any CodingKey]) -> String {
        var text = ""
        for key in path {
            if let index = key.intValue, key.stringValue == "Index \(index)" || key is IndexKey {
                text += "[\(index)]"
            } else {
                text += (text.isEmpty ? "" : ".") + key.stringValue
            }
        }
        return text
    }
}

struct IndexKey: CodingKey {
    var intValue: Int?
    var stringValue: String { "[\(intValue ?? 0)]" }
    init(_ index: Int) { intValue = index }
    init?(intValue: Int) { self.intValue = intValue }
    init?(stringValue: String) { nil }
}

struct NameKey: CodingKey {
    var stringValue: String
    var intValue: Int? { nil }
    init(_ name: String) { stringValue = name }
    init?(stringValue: String) { self.stringValue = stringValue }
    init?(intValue: Int) { nil }
}

private struct ValueDecoder: Decoder {
    let value: JSONValue
    let codingPath: [any CodingKey]
    var userInfo: [CodingUserInfoKey: Any] { [:] }

    init(value: JSONValue, path: [any CodingKey]) {
        self.value = value
        self.codingPath = path
    }

    var field: String { CodingPath.render(codingPath) }
    var subject: String { codingPath.isEmpty ? "the body" : field }

    func mismatch(_ expected: String) -> JSONDecodingError {
        JSONDecodingError(field: codingPath.isEmpty ? nil : field, message: "\(subject) must be \(expected), not \(value.kindDescription)")
    }

    func container<Key: CodingKey>(keyedBy type: Key.Type) throws -> KeyedDecodingContainer<Key> {
        guard case .object(let members) = value else { throw mismatch("an object") }
        var byName: [String: JSONValue] = [:]
        byName.reserveCapacity(members.count)
        for (name, member) in members {
            guard Key(stringValue: name) != nil else {
                let unknown = CodingPath.render(codingPath + [NameKey(name)])
                var known = ""
                if let cases = Key.self as? any CaseIterable.Type {
                    let names = (cases.allCases as any Collection).compactMap { ($0 as? Key)?.stringValue }
                    known = " (known: \(names.sorted().joined(separator: ", ")))"
                }
                throw JSONDecodingError(field: unknown, message: "unknown field \"\(JSONReader.printable(unknown))\"\(known)")
            }
            byName[name] = member
        }
        return KeyedDecodingContainer(Keyed<Key>(members: byName, order: members.map(\.key), decoder: self))
    }

    func unkeyedContainer() throws -> any UnkeyedDecodingContainer {
        guard case .array(let items) = value else { throw mismatch("an array") }
        return Unkeyed(items: items, decoder: self)
    }

    func singleValueContainer() throws -> any SingleValueDecodingContainer {
        Single(decoder: self)
    }

    func child(_ value: JSONValue, _ key: any CodingKey) -> ValueDecoder {
        ValueDecoder(value: value, path: codingPath + [key])
    }

    // MARK: scalars

    func decodeBool() throws -> Bool {
        guard case .bool(let flag) = value else { throw mismatch("true or false") }
        return flag
    }

    func decodeString() throws -> String {
        guard case .string(let text) = value else { throw mismatch("a string") }
        return text
    }

    func decodeDouble() throws -> Double {
        guard case .number(let literal) = value else { throw mismatch("a number") }
        guard let number = Double(literal), number.isFinite else {
            throw JSONDecodingError(field: field, message: "\(subject) is too large")
        }
        return number
    }

    /// Whole numbers from their literal, exactly: `12`, `-3`, and also `1e3` or `2.0`,
    /// which are whole numbers written otherwise.
    func decodeInteger<T: FixedWidthInteger>(_ type: T.Type) throws -> T {
        guard case .number(let literal) = value else { throw mismatch(T.isSigned ? "a whole number" : "a whole number (0 or more)") }
        if let exact = T(literal) { return exact }
        let negative = literal.hasPrefix("-")
        if !T.isSigned && negative && literal.contains(where: { $0 >= "1" && $0 <= "9" }) {
            throw JSONDecodingError(field: field, message: "\(subject) must not be negative")
        }
        let isInteger = literal.allSatisfy { $0 == "-" || ($0 >= "0" && $0 <= "9") }
        if isInteger {
            if !T.isSigned && negative { return 0 }  // "-0"
            throw JSONDecodingError(field: field, message: "\(subject) is too large (at most \(T.max))")
        }
        // 1e3, 2.0: exact when the double is integral and within 2^53.
        guard let number = Double(literal), number.isFinite else {
            throw JSONDecodingError(field: field, message: "\(subject) is too large (at most \(T.max))")
        }
        guard number.rounded() == number else { throw JSONDecodingError(field: field, message: "\(subject) must be a whole number") }
        guard abs(number) <= 9_007_199_254_740_992, let exact = T(exactly: number) else {
            throw JSONDecodingError(field: field, message: "\(subject) is too large (at most \(T.max))")
        }
        return exact
    }

    func decodeValue<T: Decodable>(_ type: T.Type) throws -> T {
        // The scalar types go by value, so their errors name the field in words.
        switch type {
        case is String.Type: return try decodeString() as! T
        case is Bool.Type: return try decodeBool() as! T
        case is Double.Type: return try decodeDouble() as! T
        case is Float.Type: return Float(try decodeDouble()) as! T
        case is Int.Type: return try decodeInteger(Int.self) as! T
        case is Int64.Type: return try decodeInteger(Int64.self) as! T
        case is Int32.Type: return try decodeInteger(Int32.self) as! T
        case is UInt64.Type: return try decodeInteger(UInt64.self) as! T
        case is UInt.Type: return try decodeInteger(UInt.self) as! T
        case is UInt32.Type: return try decodeInteger(UInt32.self) as! T
        case is UInt16.Type: return try decodeInteger(UInt16.self) as! T
        case is UInt8.Type: return try decodeInteger(UInt8.self) as! T
        case is JSONValue.Type: return value as! T
        default: return try T(from: self)
        }
    }
}

private struct Keyed<Key: CodingKey>: KeyedDecodingContainerProtocol {
    let members: [String: JSONValue]
    let order: [String]
    let decoder: ValueDecoder

    var codingPath: [any CodingKey] { decoder.codingPath }
    var allKeys: [Key] { order.compactMap { Key(stringValue: $0) } }

    func contains(_ key: Key) -> Bool { members[key.stringValue] != nil }

    func member(_ key: Key) throws -> ValueDecoder {
        guard let value = members[key.stringValue] else {
            let field = CodingPath.render(codingPath + [key])
            throw JSONDecodingError(field: field, message: "\(field) is required")
        }
        return decoder.child(value, key)
    }

    func decodeNil(forKey key: Key) throws -> Bool {
        members[key.stringValue].map { $0 == .null } ?? true
    }

    func decode<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T {
        let child = try member(key)
        if child.value == .null, !(T.self is JSONValue.Type) {
            throw JSONDecodingError(field: child.field, message: "\(child.field) must not be null")
        }
        return try child.decodeValue(type)
    }

    func decodeIfPresent<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T? {
        guard let value = members[key.stringValue], value != .null else { return nil }
        return try decoder.child(value, key).decodeValue(type)
    }

    func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type, forKey key: Key) throws -> KeyedDecodingContainer<NestedKey> {
        try member(key).container(keyedBy: type)
    }

    func nestedUnkeyedContainer(forKey key: Key) throws -> any UnkeyedDecodingContainer {
        try member(key).unkeyedContainer()
    }

    func superDecoder() throws -> any Decoder {
        decoder.child(members["super"] ?? .null, NameKey("super"))
    }

    func superDecoder(forKey key: Key) throws -> any Decoder {
        decoder.child(members[key.stringValue] ?? .null, key)
    }
}

private struct Unkeyed: UnkeyedDecodingContainer {
    let items: [JSONValue]
    let decoder: ValueDecoder
    var currentIndex = 0

    init(items: [JSONValue], decoder: ValueDecoder) {
        self.items = items
        self.decoder = decoder
    }

    var codingPath: [any CodingKey] { decoder.codingPath }
    var count: Int? { items.count }
    var isAtEnd: Bool { currentIndex >= items.count }

    mutating func next() throws -> ValueDecoder {
        guard !isAtEnd else {
            throw JSONDecodingError(field: decoder.field, message: "\(decoder.subject) has too few items")
        }
        defer { currentIndex += 1 }
        return decoder.child(items[currentIndex], IndexKey(currentIndex))
    }

    mutating func decodeNil() throws -> Bool {
        guard !isAtEnd, items[currentIndex] == .null else { return false }
        currentIndex += 1
        return true
    }

    mutating func decode<T: Decodable>(_ type: T.Type) throws -> T {
        let child = try next()
        if child.value == .null, !(T.self is JSONValue.Type) {
            throw JSONDecodingError(field: child.field, message: "\(child.field) must not be null")
        }
        return try child.decodeValue(type)
    }

    mutating func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type) throws -> KeyedDecodingContainer<NestedKey> {
        try next().container(keyedBy: type)
    }

    mutating func nestedUnkeyedContainer() throws -> any UnkeyedDecodingContainer {
        try next().unkeyedContainer()
    }

    mutating func superDecoder() throws -> any Decoder {
        try next()
    }
}

private struct Single: SingleValueDecodingContainer {
    let decoder: ValueDecoder
    var codingPath: [any CodingKey] { decoder.codingPath }

    func decodeNil() -> Bool { decoder.value == .null }
    func decode(_ type: Bool.Type) throws -> Bool { try decoder.decodeBool() }
    func decode(_ type: String.Type) throws -> String { try decoder.decodeString() }
    func decode(_ type: Double.Type) throws -> Double { try decoder.decodeDouble() }
    func decode(_ type: Float.Type) throws -> Float { Float(try decoder.decodeDouble()) }
    func decode(_ type: Int.Type) throws -> Int { try decoder.decodeInteger(Int.self) }
    func decode(_ type: Int8.Type) throws -> Int8 { try decoder.decodeInteger(Int8.self) }
    func decode(_ type: Int16.Type) throws -> Int16 { try decoder.decodeInteger(Int16.self) }
    func decode(_ type: Int32.Type) throws -> Int32 { try decoder.decodeInteger(Int32.self) }
    func decode(_ type: Int64.Type) throws -> Int64 { try decoder.decodeInteger(Int64.self) }
    func decode(_ type: UInt.Type) throws -> UInt { try decoder.decodeInteger(UInt.self) }
    func decode(_ type: UInt8.Type) throws -> UInt8 { try decoder.decodeInteger(UInt8.self) }
    func decode(_ type: UInt16.Type) throws -> UInt16 { try decoder.decodeInteger(UInt16.self) }
    func decode(_ type: UInt32.Type) throws -> UInt32 { try decoder.decodeInteger(UInt32.self) }
    func decode(_ type: UInt64.Type) throws -> UInt64 { try decoder.decodeInteger(UInt64.self) }
    func decode<T: Decodable>(_ type: T.Type) throws -> T { try decoder.decodeValue(type) }
}
