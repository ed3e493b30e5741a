/// The JSON subset used inside tokens, with one canonical byte encoding.
///
/// Canonical form (identical to Python's
/// `json.dumps(v, sort_keys=True, separators=(",", ":"), ensure_ascii=True)` for these values):
/// - values are objects, arrays, strings and integers (signed 64-bit) only: no floats, booleans or null;
/// - no whitespace anywhere; `,` between elements and `:` after keys;
/// - object keys sorted by Unicode code point, no duplicates;
/// - integers in plain decimal, `-` for negatives, no leading zeros, no `+`, fraction or exponent;
/// - strings: every UTF-16 code unit of the string in order; printable ASCII 0x20–0x7E except `"` and
///   `\` is written as itself; `"` → `\"`, `\` → `\\`, 0x08 → `\b`, 0x0C → `\f`, 0x0A → `\n`,
///   0x0D → `\r`, 0x09 → `\t`; every other code unit (other controls, 0x7F, all non-ASCII, each half of
///   a surrogate pair) → `\u` + 4 lowercase hex digits. `/` is not escaped.
/// The encoding is therefore pure ASCII.
enum TokenJSON: Equatable, Sendable {
    case string(String)
    case int(Int64)
    case array([TokenJSON])
    case object([String: TokenJSON])

    // MARK: canonical encoding

    var canonicalBytes: [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(256)
        write(into: &out)
        return out
    }

    func write(into out: inout [UInt8]) {
        switch self {
        case .string(let s):
            Self.writeString(s, into: &out)
        case .int(let v):
            out.append(contentsOf: String(v).utf8)
        case .array(let elements):
            out.append(UInt8(ascii: "["))
            for (i, e) in elements.enumerated() {
                if i > 0 { out.append(UInt8(ascii: ",")) }
                e.write(into: &out)
            }
            out.append(UInt8(ascii: "]"))
        case .object(let members):
            out.append(UInt8(ascii: "{"))
            for (i, key) in members.keys.sorted(by: Self.codePointLess).enumerated() {
                if i > 0 { out.append(UInt8(ascii: ",")) }
                Self.writeString(key, into: &out)
                out.append(UInt8(ascii: ":"))
                members[key]!.write(into: &out)
            }
            out.append(UInt8(ascii: "}"))
        }
    }

    private static let hexDigits = Array("0123456789abcdef".utf8)

    static func writeString(_ s: String, into out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        for unit in s.utf16 {
            switch unit {
            case 0x22: out.append(contentsOf: [0x5C, 0x22])                 // \"
            case 0x5C: out.append(contentsOf: [0x5C, 0x5C])                 // \\
            case 0x08: out.append(contentsOf: [0x5C, UInt8(ascii: "b")])
            case 0x0C: out.append(contentsOf: [0x5C, UInt8(ascii: "f")])
            case 0x0A: out.append(contentsOf: [0x5C, UInt8(ascii: "n")])
            case 0x0D: out.append(contentsOf: [0x5C, UInt8(ascii: "r")])
            case 0x09: out.append(contentsOf: [0x5C, UInt8(ascii: "t")])
            case 0x20...0x7E: out.append(UInt8(unit))
            default:
                out.append(contentsOf: [0x5C, UInt8(ascii: "u")])
                out.append(hexDigits[Int(unit >> 12) & 0xF])
                out.append(hexDigits[Int(unit >> 8) & 0xF])
                out.append(hexDigits[Int(unit >> 4) & 0xF])
                out.append(hexDigits[Int(unit) & 0xF])
            }
        }
        out.append(UInt8(ascii: "\""))
    }

    /// Unicode code point order (what Python's `sorted` uses for `str`). Swift's own `<` on
    /// String is not it (it compares canonically equivalent strings as equal).
    static func codePointLess(_ a: String, _ b: String) -> Bool {
        var ia = a.unicodeScalars.makeIterator()
        var ib = b.unicodeScalars.makeIterator()
        while true {
            switch (ia.next(), ib.next()) {
            case (nil, nil): return false
            case (nil, _): return true
            case (_, nil): return false
            case (let x?, let y?):
                if x.value != y.value { return x.value < y.value }
            }
        }
    }

    static func codePointEqual(_ a: String, _ b: String) -> Bool {
        a.unicodeScalars.elementsEqual(b.unicodeScalars)
    }

    // MARK: parsing

    /// Parses `bytes` and returns the value only if `bytes` is exactly its canonical encoding.
    /// Anything else (whitespace, unsorted or duplicate keys, floats, `true`, raw non-ASCII, lone
    /// surrogates, trailing bytes, nesting deeper than `maxDepth`) returns nil.
    static func parseCanonical(_ bytes: [UInt8], maxDepth: Int = 8) -> TokenJSON? {
        var parser = Parser(bytes: bytes, maxDepth: maxDepth)
        guard let value = parser.value(depth: 0), parser.index == bytes.count else { return nil }
        guard value.canonicalBytes == bytes else { return nil }
        return value
    }

    private struct Parser {
        let bytes: [UInt8]
        let maxDepth: Int
        var index = 0

        init(bytes: [UInt8], maxDepth: Int) {
            self.bytes = bytes
            self.maxDepth = maxDepth
        }

        private func peek() -> UInt8? { index < bytes.count ? bytes[index] : nil }

        private mutating func take(_ byte: UInt8) -> Bool {
            guard peek() == byte else { return false }
            index += 1
            return true
        }

        mutating func value(depth: Int) -> TokenJSON? {
            guard depth <= maxDepth, let b = peek() else { return nil }
            switch b {
            case UInt8(ascii: "\""):
                return string().map(TokenJSON.string)
            case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"):
                return integer().map(TokenJSON.int)
            case UInt8(ascii: "["):
                index += 1
                var elements: [TokenJSON] = []
                if take(UInt8(ascii: "]")) { return .array(elements) }
                while true {
                    guard let e = value(depth: depth + 1) else { return nil }
                    elements.append(e)
                    if take(UInt8(ascii: "]")) { return .array(elements) }
                    guard take(UInt8(ascii: ",")) else { return nil }
                }
            case UInt8(ascii: "{"):
                index += 1
                var members: [String: TokenJSON] = [:]
                if take(UInt8(ascii: "}")) { return .object(members) }
                while true {
                    guard peek() == UInt8(ascii: "\""), let key = string(), take(UInt8(ascii: ":")),
                          let v = value(depth: depth + 1) else { return nil }
                    guard members.updateValue(v, forKey: key) == nil else { return nil }  // duplicate
                    if take(UInt8(ascii: "}")) { return .object(members) }
                    guard take(UInt8(ascii: ",")) else { return nil }
                }
            default:
                return nil
            }
        }

        private mutating func integer() -> Int64? {
            let negative = take(UInt8(ascii: "-"))
            var magnitude: UInt64 = 0
            var digits = 0
            while let b = peek(), b >= UInt8(ascii: "0"), b <= UInt8(ascii: "9") {
                let (m1, o1) = magnitude.multipliedReportingOverflow(by: 10)
                let (m2, o2) = m1.addingReportingOverflow(UInt64(b - UInt8(ascii: "0")))
                guard !o1, !o2 else { return nil }
                magnitude = m2
                digits += 1
                index += 1
            }
            guard digits > 0 else { return nil }
            if negative {
                guard magnitude <= UInt64(Int64.max) + 1 else { return nil }
                return magnitude == UInt64(Int64.max) + 1 ? Int64.min : -Int64(magnitude)
            }
            guard magnitude <= UInt64(Int64.max) else { return nil }
            return Int64(magnitude)
        }

        private mutating func hex4() -> UInt16? {
            guard index + 4 <= bytes.count else { return nil }
            var v: UInt16 = 0
            for _ in 0..<4 {
                let b = bytes[index]
                let d: UInt8
                switch b {
                case UInt8(ascii: "0")...UInt8(ascii: "9"): d = b - UInt8(ascii: "0")
                case UInt8(ascii: "a")...UInt8(ascii: "f"): d = b - UInt8(ascii: "a") + 10
                case UInt8(ascii: "A")...UInt8(ascii: "F"): d = b - UInt8(ascii: "A") + 10
                default: return nil
                }
                v = v << 4 | UInt16(d)
                index += 1
            }
            return v
        }

        private mutating func string() -> String? {
            guard take(UInt8(ascii: "\"")) else { return nil }
            var scalars = String.UnicodeScalarView()
            while true {
                guard let b = peek() else { return nil }
                index += 1
                switch b {
                case UInt8(ascii: "\""):
                    return String(scalars)
                case UInt8(ascii: "\\"):
                    guard let e = peek() else { return nil }
                    index += 1
                    switch e {
                    case UInt8(ascii: "\""): scalars.append("\"")
                    case UInt8(ascii: "\\"): scalars.append("\\")
                    case UInt8(ascii: "/"): scalars.append("/")
                    case UInt8(ascii: "b"): scalars.append("\u{08}")
                    case UInt8(ascii: "f"): scalars.append("\u{0C}")
                    case UInt8(ascii: "n"): scalars.append("\n")
                    case UInt8(ascii: "r"): scalars.append("\r")
                    case UInt8(ascii: "t"): scalars.append("\t")
                    case UInt8(ascii: "u"):
                        guard let u = hex4() else { return nil }
                        switch u {
                        case 0xD800...0xDBFF:
                            guard take(UInt8(ascii: "\\")), take(UInt8(ascii: "u")), let low = hex4(),
                                  (0xDC00...0xDFFF).contains(low) else { return nil }
                            let cp = 0x10000 + (UInt32(u - 0xD800) << 10) + UInt32(low - 0xDC00)
                            guard let s = Unicode.Scalar(cp) else { return nil }
                            scalars.append(s)
                        case 0xDC00...0xDFFF:
                            return nil  // lone low surrogate
                        default:
                            guard let s = Unicode.Scalar(UInt32(u)) else { return nil }
                            scalars.append(s)
                        }
                    default:
                        return nil
                    }
                case 0x20...0x7F:
                    scalars.append(Unicode.Scalar(b))
                default:
                    return nil  // raw control character or non-ASCII byte
                }
            }
        }
    }
}
