// The one strict JSON reader (RFC 8259) of sealbox: profiles, request bodies, MCP messages and
// broker requests all go through it.
//
// Why not JSONDecoder or JSONSerialization: on Linux they report every syntax error, and even
// `"value": -1` for a UInt64 field, as "The given data was not valid JSON." with no position,
// and they disagree on duplicate member names (JSONSerialization keeps the last, JSONDecoder
// the first), so a body checked with one and decoded with the other can mean two things. This
// reader refuses a duplicate member name outright (RFC 8259 §4 leaves them undefined; refusing
// is the only reading every consumer agrees on), reports "line 12, column 7: expected ',' or
// '}'", and keeps numbers as their literal text so 64-bit values round-trip exactly.

/// A parsed JSON value. Object members keep their document order; names are unique.
public enum JSONValue: Sendable, Equatable {
    case null
    case bool(Bool)
    case number(String)  // the literal, validated against the JSON number grammar
    case string(String)
    case array([JSONValue])
    case object([(key: String, value: JSONValue)])

    public static func == (lhs: JSONValue, rhs: JSONValue) -> Bool {
        switch (lhs, rhs) {
        case (.null, .null): return true
        case let (.bool(a), .bool(b)): return a == b
        case let (.number(a), .number(b)): return a == b
        case let (.string(a), .string(b)): return a == b
        case let (.array(a), .array(b)): return a == b
        case let (.object(a), .object(b)):
            return a.count == b.count && zip(a, b).allSatisfy { $0.key == $1.key && $0.value == $1.value }
        default: return false
        }
    }

    /// "a string", "an array", ... for messages.
    public var kindDescription: String {
        switch self {
        case .null: return "null"
        case .bool: return "a boolean"
        case .number: return "a number"
        case .string: return "a string"
        case .array: return "an array"
        case .object: return "an object"
        }
    }

    /// The member named `key` (names are unique: the reader refuses duplicates).
    public subscript(key: String) -> JSONValue? {
        guard case .object(let members) = self else { return nil }
        return members.first(where: { $0.key == key })?.value
    }
}

/// A syntax error with a 1-based line and column (columns count bytes). `path` names the
/// member at fault when there is one (a duplicate name: `limits.pids`), in the notation of
/// `JSONPositions`.
public struct JSONSyntaxError: Error, CustomStringConvertible, Sendable, Equatable {
    public let line: Int
    public let column: Int
    public let problem: String
    public var path: String?
    public var description: String { "line \(line), column \(column): \(problem)" }
}

/// Where a JSON value (or member name) starts: 1-based line and column, columns counting bytes
/// like `JSONSyntaxError`.
public struct JSONPosition: Sendable, Hashable, CustomStringConvertible {
    public let line: Int
    public let column: Int

    public init(line: Int, column: Int) {
        self.line = line
        self.column = column
    }

    public var description: String { "\(line):\(column)" }
}

/// A side table of positions by JSON path, filled by `JSONReader.parse(_:positions:)` only when a
/// caller asks (`sealbox profile check`); loading a profile for a run does not pay for it.
/// Paths are the ones validation messages use: "" is the top-level value, then `syscalls`,
/// `syscalls[3]`, `syscalls[3].args[0].op`.
public struct JSONPositions: Sendable {
    /// Where each value starts.
    public var values: [String: JSONPosition] = [:]
    /// Where the name of each object member starts, by the member's path (`defaultaction` in
    /// `{"defaultaction": ...}`), so a misspelt key can be pointed at rather than its value.
    public var keys: [String: JSONPosition] = [:]

    public init() {}

    /// The position of `path`, or of its nearest ancestor that has one: a missing member
    /// (`syscalls[0].action: missing`) is reported where its object starts.
    public func position(of path: String, preferringKey: Bool = false) -> JSONPosition {
        var p = path
        while true {
            if preferringKey, p == path, let k = keys[p] { return k }
            if let v = values[p] { return v }
            if p.isEmpty { return JSONPosition(line: 1, column: 1) }
            p = Self.parent(of: p)
        }
    }

    /// `a.b[2].c` → `a.b[2]` → `a.b` → `a` → "".
    public static func parent(of path: String) -> String {
        guard let last = path.lastIndex(where: { $0 == "." || $0 == "[" }) else { return "" }
        return String(path[..<last])
    }

    public static func member(_ parent: String, _ key: String) -> String {
        parent.isEmpty ? key : "\(parent).\(key)"
    }

    public static func element(_ parent: String, _ index: Int) -> String {
        "\(parent)[\(index)]"
    }
}

public struct JSONReader {
    private let bytes: [UInt8]
    private var pos = 0
    private var depth = 0
    public static let maxDepth = 64
    /// Non-nil only when positions were asked for. A newline can only occur in whitespace
    /// (strings may not hold raw control characters), so `skipWhitespace` alone keeps `line` and
    /// `lineStart` current.
    private var positions: JSONPositions?
    private var line = 1
    private var lineStart = 0
    /// The members and elements above the value being read (`["limits", "pids"]`, `["files",
    /// "[2]"]`), so an error can name where it is even when no positions are recorded.
    private var trail: [String] = []

    public static func parse(_ bytes: [UInt8]) throws(JSONSyntaxError) -> JSONValue {
        var reader = JSONReader(bytes: bytes)
        return try reader.parseDocument()
    }

    /// Parses like `parse(_:)` and records the position of every value and member name by its
    /// JSON path into `positions`.
    public static func parse(_ bytes: [UInt8], positions: inout JSONPositions) throws(JSONSyntaxError) -> JSONValue {
        var reader = JSONReader(bytes: bytes)
        reader.positions = JSONPositions()
        defer { positions = reader.positions ?? JSONPositions() }
        return try reader.parseDocument()
    }

    private mutating func parseDocument() throws(JSONSyntaxError) -> JSONValue {
        // A UTF-8 byte order mark is not JSON, but editors write it; tolerate it.
        if bytes.starts(with: [0xEF, 0xBB, 0xBF]) { pos = 3 }
        skipWhitespace()
        let value = try parseValue(path: positions == nil ? nil : "")
        skipWhitespace()
        if pos < bytes.count {
            throw error("unexpected \(describeCurrent()) after the top-level value")
        }
        return value
    }

    /// The current position, the same way `error(_:at:)` counts (the BOM counts as 3 columns).
    private var here: JSONPosition { JSONPosition(line: line, column: pos - lineStart + 1) }

    private init(bytes: [UInt8]) {
        self.bytes = bytes
    }

    private func error(_ problem: String, at offset: Int? = nil) -> JSONSyntaxError {
        let end = min(offset ?? pos, bytes.count)
        var line = 1
        var column = 1
        for b in bytes[0..<end] {
            if b == UInt8(ascii: "\n") {
                line += 1
                column = 1
            } else {
                column += 1
            }
        }
        return JSONSyntaxError(line: line, column: column, problem: problem, path: nil)
    }

    /// `trail` in the notation of `JSONPositions`: `files[2].name`.
    private var trailPath: String {
        var text = ""
        for piece in trail {
            text += piece.hasPrefix("[") || text.isEmpty ? piece : "." + piece
        }
        return text
    }

    /// A member name as an error message shows it: at most 64 characters, escaped.
    static func printable(_ text: String) -> String {
        Printable.text(text, limit: 64)
    }

    private func describeCurrent() -> String {
        guard pos < bytes.count else { return "end of input" }
        let b = bytes[pos]
        if b >= 0x21 && b < 0x7F { return "'\(Character(Unicode.Scalar(b)))'" }
        return "byte 0x\(String(b, radix: 16))"
    }

    private mutating func skipWhitespace() {
        while pos < bytes.count {
            switch bytes[pos] {
            case 0x0A:
                pos += 1
                line += 1
                lineStart = pos
            case 0x20, 0x09, 0x0D: pos += 1
            default: return
            }
        }
    }

    /// `path` is nil unless positions are recorded (no path strings are built then).
    private mutating func parseValue(path: String?) throws(JSONSyntaxError) -> JSONValue {
        guard pos < bytes.count else { throw error("unexpected end of input, expected a value") }
        if let path {
            let at = here
            positions?.values[path] = at
        }
        switch bytes[pos] {
        case UInt8(ascii: "{"): return try parseObject(path: path)
        case UInt8(ascii: "["): return try parseArray(path: path)
        case UInt8(ascii: "\""): return .string(try parseString())
        case UInt8(ascii: "t"): try expectLiteral("true"); return .bool(true)
        case UInt8(ascii: "f"): try expectLiteral("false"); return .bool(false)
        case UInt8(ascii: "n"): try expectLiteral("null"); return .null
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return try parseNumber()
        default: throw error("unexpected \(describeCurrent()), expected a value")
        }
    }

    private mutating func expectLiteral(_ word: String) throws(JSONSyntaxError) {
        let w = Array(word.utf8)
        guard bytes.count - pos >= w.count, Array(bytes[pos..<pos + w.count]) == w else {
            throw error("invalid literal, expected \(word)")
        }
        pos += w.count
    }

    private mutating func enter() throws(JSONSyntaxError) {
        depth += 1
        if depth > Self.maxDepth { throw error("nesting deeper than \(Self.maxDepth) levels") }
    }

    private mutating func parseObject(path: String?) throws(JSONSyntaxError) -> JSONValue {
        try enter()
        defer { depth -= 1 }
        pos += 1  // {
        var members: [(key: String, value: JSONValue)] = []
        var names = Set<String>()
        skipWhitespace()
        if pos < bytes.count && bytes[pos] == UInt8(ascii: "}") {
            pos += 1
            return .object(members)
        }
        while true {
            skipWhitespace()
            guard pos < bytes.count, bytes[pos] == UInt8(ascii: "\"") else {
                throw error("unexpected \(describeCurrent()), expected a member name in double quotes")
            }
            let keyPosition = here
            let keyOffset = pos
            let key = try parseString()
            trail.append(key)
            defer { trail.removeLast() }
            guard names.insert(key).inserted else {
                var duplicate = error("duplicate member name \"\(Self.printable(key))\" (each name may appear once in an object)", at: keyOffset)
                duplicate.path = trailPath
                throw duplicate
            }
            let memberPath = path.map { JSONPositions.member($0, key) }
            if let memberPath { positions?.keys[memberPath] = keyPosition }
            skipWhitespace()
            guard pos < bytes.count, bytes[pos] == UInt8(ascii: ":") else {
                throw error("unexpected \(describeCurrent()), expected ':' after member name \"\(key)\"")
            }
            pos += 1
            skipWhitespace()
            members.append((key, try parseValue(path: memberPath)))
            skipWhitespace()
            guard pos < bytes.count else { throw error("unexpected end of input, expected ',' or '}'") }
            if bytes[pos] == UInt8(ascii: ",") {
                pos += 1
                continue
            }
            if bytes[pos] == UInt8(ascii: "}") {
                pos += 1
                return .object(members)
            }
            throw error("unexpected \(describeCurrent()), expected ',' or '}'")
        }
    }

    private mutating func parseArray(path: String?) throws(JSONSyntaxError) -> JSONValue {
        try enter()
        defer { depth -= 1 }
        pos += 1  // [
        var items: [JSONValue] = []
        skipWhitespace()
        if pos < bytes.count && bytes[pos] == UInt8(ascii: "]") {
            pos += 1
            return .array(items)
        }
        while true {
            skipWhitespace()
            trail.append("[\(items.count)]")
            defer { trail.removeLast() }
            items.append(try parseValue(path: path.map { JSONPositions.element($0, items.count) }))
            skipWhitespace()
            guard pos < bytes.count else { throw error("unexpected end of input, expected ',' or ']'") }
            if bytes[pos] == UInt8(ascii: ",") {
                pos += 1
                continue
            }
            if bytes[pos] == UInt8(ascii: "]") {
                pos += 1
                return .array(items)
            }
            throw error("unexpected \(describeCurrent()), expected ',' or ']'")
        }
    }

    private mutating func parseString() throws(JSONSyntaxError) -> String {
        let start = pos
        pos += 1  // opening quote
        var out: [UInt8] = []
        while true {
            guard pos < bytes.count else { throw error("unterminated string", at: start) }
            let b = bytes[pos]
            switch b {
            case UInt8(ascii: "\""):
                pos += 1
                guard let s = String(validating: out, as: UTF8.self) else {
                    throw error("string is not valid UTF-8", at: start)
                }
                return s
            case UInt8(ascii: "\\"):
                pos += 1
                guard pos < bytes.count else { throw error("unterminated string", at: start) }
                let e = bytes[pos]
                pos += 1
                switch e {
                case UInt8(ascii: "\""): out.append(0x22)
                case UInt8(ascii: "\\"): out.append(0x5C)
                case UInt8(ascii: "/"): out.append(0x2F)
                case UInt8(ascii: "b"): out.append(0x08)
                case UInt8(ascii: "f"): out.append(0x0C)
                case UInt8(ascii: "n"): out.append(0x0A)
                case UInt8(ascii: "r"): out.append(0x0D)
                case UInt8(ascii: "t"): out.append(0x09)
                case UInt8(ascii: "u"):
                    var scalar = try parseHex4()
                    if (0xD800..<0xDC00).contains(scalar) {
                        // A high surrogate must be followed by an escaped low surrogate.
                        guard bytes.count - pos >= 6, bytes[pos] == UInt8(ascii: "\\"), bytes[pos + 1] == UInt8(ascii: "u") else {
                            throw error("unpaired UTF-16 surrogate in \\u escape")
                        }
                        pos += 2
                        let low = try parseHex4()
                        guard (0xDC00..<0xE000).contains(low) else { throw error("unpaired UTF-16 surrogate in \\u escape") }
                        scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                    } else if (0xDC00..<0xE000).contains(scalar) {
                        throw error("unpaired UTF-16 surrogate in \\u escape")
                    }
                    guard let u = Unicode.Scalar(scalar) else { throw error("invalid \\u escape") }
                    out.append(contentsOf: Array(String(Character(u)).utf8))
                default:
                    throw error("invalid escape '\\\(Character(Unicode.Scalar(e)))' in string", at: pos - 2)
                }
            case 0x00..<0x20:
                throw error("control character 0x\(String(b, radix: 16)) in string (escape it)")
            default:
                out.append(b)
                pos += 1
            }
        }
    }

    private mutating func parseHex4() throws(JSONSyntaxError) -> UInt32 {
        guard bytes.count - pos >= 4 else { throw error("truncated \\u escape") }
        var v: UInt32 = 0
        for _ in 0..<4 {
            let b = bytes[pos]
            let d: UInt32
            switch b {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): d = UInt32(b - UInt8(ascii: "0"))
            case UInt8(ascii: "a")...UInt8(ascii: "f"): d = UInt32(b - UInt8(ascii: "a") + 10)
            case UInt8(ascii: "A")...UInt8(ascii: "F"): d = UInt32(b - UInt8(ascii: "A") + 10)
            default: throw error("invalid hex digit in \\u escape")
            }
            v = v << 4 | d
            pos += 1
        }
        return v
    }

    private mutating func parseNumber() throws(JSONSyntaxError) -> JSONValue {
        let start = pos
        func digits(_ r: inout JSONReader) -> Int {
            var n = 0
            while r.pos < r.bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(r.bytes[r.pos]) {
                r.pos += 1
                n += 1
            }
            return n
        }
        if bytes[pos] == UInt8(ascii: "-") { pos += 1 }
        guard pos < bytes.count else { throw error("invalid number: '-' without digits", at: start) }
        if bytes[pos] == UInt8(ascii: "0") {
            pos += 1
            if pos < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[pos]) {
                throw error("invalid number: leading zeros are not allowed", at: start)
            }
        } else if digits(&self) == 0 {
            throw error("invalid number", at: start)
        }
        if pos < bytes.count, bytes[pos] == UInt8(ascii: ".") {
            pos += 1
            if digits(&self) == 0 { throw error("invalid number: expected digits after '.'", at: start) }
        }
        if pos < bytes.count, bytes[pos] == UInt8(ascii: "e") || bytes[pos] == UInt8(ascii: "E") {
            pos += 1
            if pos < bytes.count, bytes[pos] == UInt8(ascii: "+") || bytes[pos] == UInt8(ascii: "-") { pos += 1 }
            if digits(&self) == 0 { throw error("invalid number: expected digits in the exponent", at: start) }
        }
        return .number(String(decoding: bytes[start..<pos], as: UTF8.self))
    }
}

// MARK: - Decodable (so SeccompProfile can be decoded from any Decoder through the same path)

extension JSONValue: Decodable {
    public init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        if c.decodeNil() {
            self = .null
        } else if let b = try? c.decode(Bool.self) {
            self = .bool(b)
        } else if let u = try? c.decode(UInt64.self) {
            self = .number(String(u))
        } else if let i = try? c.decode(Int64.self) {
            self = .number(String(i))
        } else if let d = try? c.decode(Double.self) {
            self = .number(String(d))
        } else if let s = try? c.decode(String.self) {
            self = .string(s)
        } else if let a = try? c.decode([JSONValue].self) {
            self = .array(a)
        } else if let o = try? c.decode([String: JSONValue].self) {
            // A generic Decoder has no member order; sort for determinism.
            self = .object(o.sorted { $0.key < $1.key }.map { (key: $0.key, value: $0.value) })
        } else {
            throw DecodingError.dataCorruptedError(in: c, debugDescription: "unsupported JSON value")
        }
    }
}
