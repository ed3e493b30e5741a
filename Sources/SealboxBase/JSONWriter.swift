/// The one JSON writer of sealbox: canonical bytes for digests, idempotency keys and tokens
/// (`CanonicalJSON`), and the pretty, ordered layout of the profiles sealbox writes. One
/// writer with options rather than one per use, so an escape or a number is written the same
/// way everywhere it means the same thing.
public struct JSONWriter: Sendable {
    public enum KeyOrder: Sendable {
        /// As the value holds them (a learned profile reads top-down: comment, defaultAction, ...).
        case document
        /// Unicode code point order (`CanonicalJSON.codePointLess`).
        case codePoint
    }

    public enum Strings: Sendable {
        /// Raw UTF-8; `"`, `\` and control characters escaped (`\n`, `\u001f`).
        case utf8
        /// As `.utf8`, and DEL (0x7F) escaped too: log lines a terminal shows.
        case utf8EscapingDelete
        /// Pure ASCII: also 0x7F and every non-ASCII UTF-16 code unit as `\u` + 4 lowercase
        /// hex digits, each half of a surrogate pair on its own (Python's `ensure_ascii=True`).
        case ascii
    }

    public enum Numbers: Sendable {
        /// The literal as read or built.
        case literal
        /// `JSONNumber.canonicalText`.
        case canonical
    }

    public enum Layout: Sendable {
        /// No whitespace at all.
        case compact
        /// Two-space indents, one member or element a line, `": "` after names; an array of
        /// strings only is packed several to a line (a 300-name syscall list stays readable).
        case pretty
    }

    public var keyOrder: KeyOrder
    public var strings: Strings
    public var numbers: Numbers
    public var layout: Layout

    public init(keyOrder: KeyOrder, strings: Strings, numbers: Numbers, layout: Layout) {
        self.keyOrder = keyOrder
        self.strings = strings
        self.numbers = numbers
        self.layout = layout
    }

    /// Profiles as sealbox writes them: pretty, in document order, numbers as given.
    public static let pretty = JSONWriter(keyOrder: .document, strings: .utf8, numbers: .literal, layout: .pretty)

    /// Compact, in document order: messages on the wire.
    public static let compact = JSONWriter(keyOrder: .document, strings: .utf8, numbers: .literal, layout: .compact)

    public func bytes(_ value: JSONValue) -> [UInt8] {
        var out: [UInt8] = []
        write(value, indent: 0, into: &out)
        return out
    }

    public func string(_ value: JSONValue) -> String {
        String(decoding: bytes(value), as: UTF8.self)
    }

    /// The longest line of a packed string array (pretty layout), its indent not counted.
    static let packedLineWidth = 90

    private func write(_ value: JSONValue, indent: Int, into out: inout [UInt8]) {
        switch value {
        case .null: out.append(contentsOf: "null".utf8)
        case .bool(let flag): out.append(contentsOf: (flag ? "true" : "false").utf8)
        case .number(let literal):
            out.append(contentsOf: (numbers == .canonical ? JSONNumber.canonicalText(literal) : literal).utf8)
        case .string(let text): writeString(text, into: &out)
        case .array(let items): writeArray(items, indent: indent, into: &out)
        case .object(let members): writeObject(members, indent: indent, into: &out)
        }
    }

    private func writeObject(_ members: [(key: String, value: JSONValue)], indent: Int, into out: inout [UInt8]) {
        let ordered = keyOrder == .codePoint ? members.sorted { CanonicalJSON.codePointLess($0.key, $1.key) } : members
        out.append(UInt8(ascii: "{"))
        if layout == .pretty, !ordered.isEmpty {
            for (i, member) in ordered.enumerated() {
                out.append(contentsOf: (i == 0 ? "\n" : ",\n").utf8)
                pad(indent + 2, &out)
                writeString(member.key, into: &out)
                out.append(contentsOf: ": ".utf8)
                write(member.value, indent: indent + 2, into: &out)
            }
            out.append(UInt8(ascii: "\n"))
            pad(indent, &out)
        } else {
            for (i, member) in ordered.enumerated() {
                if i > 0 { out.append(UInt8(ascii: ",")) }
                writeString(member.key, into: &out)
                out.append(UInt8(ascii: ":"))
                write(member.value, indent: indent, into: &out)
            }
        }
        out.append(UInt8(ascii: "}"))
    }

    private func writeArray(_ items: [JSONValue], indent: Int, into out: inout [UInt8]) {
        out.append(UInt8(ascii: "["))
        guard layout == .pretty, !items.isEmpty else {
            for (i, item) in items.enumerated() {
                if i > 0 { out.append(UInt8(ascii: ",")) }
                write(item, indent: indent, into: &out)
            }
            out.append(UInt8(ascii: "]"))
            return
        }
        var lines: [[UInt8]] = []
        if items.allSatisfy({ $0.stringValue != nil }) {
            var line: [UInt8] = []
            var lineCharacters = 0
            for item in items {
                var quoted: [UInt8] = []
                writeString(item.stringValue!, into: &quoted)
                let characters = String(decoding: quoted, as: UTF8.self).count
                if !line.isEmpty, lineCharacters + characters > Self.packedLineWidth {
                    lines.append(line)
                    line = []
                    lineCharacters = 0
                }
                if !line.isEmpty {
                    line.append(contentsOf: ", ".utf8)
                    lineCharacters += 2
                }
                line.append(contentsOf: quoted)
                lineCharacters += characters
            }
            if !line.isEmpty { lines.append(line) }
        } else {
            for item in items {
                var element: [UInt8] = []
                write(item, indent: indent + 2, into: &element)
                lines.append(element)
            }
        }
        for (i, line) in lines.enumerated() {
            out.append(contentsOf: (i == 0 ? "\n" : ",\n").utf8)
            pad(indent + 2, &out)
            out.append(contentsOf: line)
        }
        out.append(UInt8(ascii: "\n"))
        pad(indent, &out)
        out.append(UInt8(ascii: "]"))
    }

    private func pad(_ count: Int, _ out: inout [UInt8]) {
        out.append(contentsOf: repeatElement(UInt8(ascii: " "), count: count))
    }

    /// `\u` and the code unit in 4 lowercase hex digits.
    private static func appendEscaped(_ unit: UInt16, into out: inout [UInt8]) {
        out.append(contentsOf: [0x5C, UInt8(ascii: "u")])
        out.append(contentsOf: Hex.encode([UInt8(unit >> 8), UInt8(truncatingIfNeeded: unit)]).utf8)
    }

    /// The escapes both string policies share, for one code unit below 0x80; false when the
    /// unit is not one of them.
    private static func appendCommonEscape(_ unit: UInt16, into out: inout [UInt8]) -> Bool {
        switch unit {
        case 0x22: out.append(contentsOf: [0x5C, 0x22])  // \"
        case 0x5C: out.append(contentsOf: [0x5C, 0x5C])  // \\
        case 0x08: out.append(contentsOf: [0x5C, UInt8(ascii: "b")])
        case 0x0C: out.append(contentsOf: [0x5C, UInt8(ascii: "f")])
        case 0x0A: out.append(contentsOf: [0x5C, UInt8(ascii: "n")])
        case 0x0D: out.append(contentsOf: [0x5C, UInt8(ascii: "r")])
        case 0x09: out.append(contentsOf: [0x5C, UInt8(ascii: "t")])
        case 0x00..<0x20: appendEscaped(unit, into: &out)
        default: return false
        }
        return true
    }

    func writeString(_ text: String, into out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        switch strings {
        case .utf8, .utf8EscapingDelete:
            let escapeDelete = strings == .utf8EscapingDelete
            for byte in text.utf8 {
                if byte == 0x7F && escapeDelete {
                    Self.appendEscaped(0x7F, into: &out)
                } else if byte >= 0x80 || !Self.appendCommonEscape(UInt16(byte), into: &out) {
                    out.append(byte)
                }
            }
        case .ascii:
            for unit in text.utf16 {
                if Self.appendCommonEscape(unit, into: &out) { continue }
                if unit >= 0x20 && unit < 0x7F { out.append(UInt8(unit)) } else { Self.appendEscaped(unit, into: &out) }
            }
        }
        out.append(UInt8(ascii: "\""))
    }
}

/// Canonical JSON: the same value always gives the same bytes. Versioned, because digests and
/// keys made from these bytes are stored (effect logs, `auto:` keys, token signatures): a
/// change to the bytes is a new version, never an edit of one.
public enum CanonicalJSON {
    /// Version 1, the bytes of args digests, `auto:` keys, stored responses and http tool
    /// bodies: no whitespace, member names in code point order, strings in raw UTF-8 with `"`,
    /// `\` and control characters escaped (`/` is not), numbers by `JSONNumber.canonicalText`.
    /// Byte for byte what JSONEncoder (`.sortedKeys`, `.withoutEscapingSlashes`) wrote for the
    /// broker's old double-valued JSON, which the known-answer tests pin.
    public static let v1 = JSONWriter(keyOrder: .codePoint, strings: .utf8, numbers: .canonical, layout: .compact)

    /// Version 1 of the token encoding (`TokenFormat`): pure ASCII, names in code point
    /// order, numbers as given (tokens hold 64-bit integers only). Identical to Python's
    /// `json.dumps(v, sort_keys=True, separators=(",", ":"), ensure_ascii=True)`.
    public static let asciiV1 = JSONWriter(keyOrder: .codePoint, strings: .ascii, numbers: .literal, layout: .compact)

    /// Unicode code point order (what Python's `sorted` uses for `str`, and JSONEncoder's
    /// `.sortedKeys` on Linux). Swift's own `<` on String is not it: it compares canonically
    /// equivalent strings as equal.
    public static func codePointLess(_ a: String, _ b: String) -> Bool {
        a.unicodeScalars.lexicographicallyPrecedes(b.unicodeScalars) { $0.value < $1.value }
    }

    public static func codePointEqual(_ a: String, _ b: String) -> Bool {
        a.unicodeScalars.elementsEqual(b.unicodeScalars)
    }
}
