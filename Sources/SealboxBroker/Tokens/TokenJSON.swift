import SealboxBase

/// The JSON subset used inside tokens, with one canonical byte encoding: `CanonicalJSON.asciiV1`,
/// the writer every canonical byte of sealbox comes from, and `JSONReader` to read it back.
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

    /// The value as the one JSON value type.
    var json: JSONValue {
        switch self {
        case .string(let s): return .string(s)
        case .int(let v): return .number(v)
        case .array(let elements): return .array(elements.map(\.json))
        case .object(let members): return .object(members.mapValues(\.json))
        }
    }

    var canonicalBytes: [UInt8] {
        CanonicalJSON.asciiV1.bytes(json)
    }

    func write(into out: inout [UInt8]) {
        out.append(contentsOf: canonicalBytes)
    }

    static func writeString(_ s: String, into out: inout [UInt8]) {
        out.append(contentsOf: CanonicalJSON.asciiV1.bytes(.string(s)))
    }

    static func codePointLess(_ a: String, _ b: String) -> Bool {
        CanonicalJSON.codePointLess(a, b)
    }

    static func codePointEqual(_ a: String, _ b: String) -> Bool {
        CanonicalJSON.codePointEqual(a, b)
    }

    // MARK: parsing

    /// Parses `bytes` and returns the value only if `bytes` is exactly its canonical encoding.
    /// Anything else (whitespace, unsorted or duplicate keys, floats, `true`, raw non-ASCII, lone
    /// surrogates, trailing bytes, nesting deeper than `maxDepth`) returns nil.
    static func parseCanonical(_ bytes: [UInt8], maxDepth: Int = 8) -> TokenJSON? {
        // Read by the one strict reader (duplicates and lone surrogates refused), narrowed to
        // the token subset, then written again: only canonical bytes come back the same.
        guard let parsed = try? JSONReader.parse(bytes), let value = TokenJSON(parsed, depth: 0, maxDepth: maxDepth),
              value.canonicalBytes == bytes else { return nil }
        return value
    }

    /// `value` when it is in the token subset (strings, 64-bit integers in plain digits,
    /// arrays, objects) and nested at most `maxDepth` deep.
    private init?(_ value: JSONValue, depth: Int, maxDepth: Int) {
        guard depth <= maxDepth else { return nil }
        switch value {
        case .string(let s): self = .string(s)
        case .number(let literal):
            guard JSONNumber.isPlainInteger(literal), let v = Int64(literal) else { return nil }
            self = .int(v)
        case .array(let items):
            var elements: [TokenJSON] = []
            for item in items {
                guard let element = TokenJSON(item, depth: depth + 1, maxDepth: maxDepth) else { return nil }
                elements.append(element)
            }
            self = .array(elements)
        case .object(let pairs):
            var members: [String: TokenJSON] = [:]
            for (key, item) in pairs {
                guard let member = TokenJSON(item, depth: depth + 1, maxDepth: maxDepth),
                      members.updateValue(member, forKey: key) == nil else { return nil }
                members[key] = member
            }
            self = .object(members)
        case .null, .bool:
            return nil
        }
    }
}
