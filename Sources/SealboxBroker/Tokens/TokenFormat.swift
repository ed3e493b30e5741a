import Crypto

/// The signed statement at the start of every token (`"root"` in the envelope).
/// Canonical JSON: `{"exp":…,"run":"…","ses":"…","tid":"…","tools":[…],"v":1}`.
struct TokenRoot: Sendable, Equatable {
    var tokenID: String        // "tid": 32 lowercase hex digits (128 random bits)
    var runID: String          // "run"
    var sessionID: String      // "ses"
    var tools: [String]        // "tools": sorted by code point, no duplicates
    var expiresAtMs: Int64     // "exp": unix milliseconds

    var json: TokenJSON {
        .object([
            "v": .int(TokenFormat.version),
            "tid": .string(tokenID),
            "run": .string(runID),
            "ses": .string(sessionID),
            "tools": .array(tools.map(TokenJSON.string)),
            "exp": .int(expiresAtMs),
        ])
    }
}

/// One attenuation step (`"caveats"[i]`): `{"exp":…}`, `{"tools":[…]}` or both.
struct TokenCaveat: Sendable, Equatable {
    var tools: [String]?
    var expiresAtMs: Int64?

    var json: TokenJSON {
        var members: [String: TokenJSON] = [:]
        if let tools { members["tools"] = .array(tools.map(TokenJSON.string)) }
        if let expiresAtMs { members["exp"] = .int(expiresAtMs) }
        return .object(members)
    }
}

struct DecodedToken: Sendable, Equatable {
    var root: TokenRoot
    var caveats: [TokenCaveat]
    var signature: [UInt8]

    /// Root tools ∩ every caveat's tools.
    var effectiveTools: Set<String> {
        var scope = Set(root.tools)
        for caveat in caveats {
            if let tools = caveat.tools { scope.formIntersection(tools) }
        }
        return scope
    }

    /// The earliest expiry of the root and all caveats.
    var effectiveExpiresAtMs: Int64 {
        caveats.reduce(root.expiresAtMs) { min($0, $1.expiresAtMs ?? .max) }
    }
}

/// Wire format `sbx1.<base64url(canonical envelope)>.<base64url(signature)>`, with
/// envelope `{"caveats":[…],"root":{…}}` and the HMAC-SHA256 chain
/// `sig0 = HMAC(brokerKey, canonical(root))`, `sig_i = HMAC(sig_{i-1}, canonical(caveat_i))`;
/// the token carries the last signature only. See docs/tokens.md.
enum TokenFormat {
    static let prefix = "sbx1"
    static let version: Int64 = 1
    static let maxTokenBytes = 4096
    static let maxCaveats = 16
    static let signatureBytes = 32

    // MARK: signatures

    static func hmac(key: [UInt8], message: [UInt8]) -> [UInt8] {
        Array(HMAC<SHA256>.authenticationCode(for: message, using: SymmetricKey(data: key)))
    }

    /// Extends a signature over `caveats`, in order.
    static func chain(_ signature: [UInt8], over caveats: [TokenCaveat]) -> [UInt8] {
        caveats.reduce(signature) { sig, caveat in hmac(key: sig, message: caveat.json.canonicalBytes) }
    }

    /// Equality that takes the same time wherever the first difference is.
    static func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        var diff: UInt8 = 0
        for i in a.indices { diff |= a[i] ^ b[i] }
        return diff == 0
    }

    // MARK: tools lists

    /// Sorted by code point, duplicates removed: the only form a token may carry.
    static func normalize(tools: [String]) -> [String] {
        var out: [String] = []
        for tool in tools.sorted(by: TokenJSON.codePointLess) where out.last.map({ !TokenJSON.codePointEqual($0, tool) }) ?? true {
            out.append(tool)
        }
        return out
    }

    // MARK: encode / decode

    static func encode(_ token: DecodedToken) throws(TokenError) -> String {
        guard token.caveats.count <= maxCaveats else {
            throw .denied("a token carries at most \(maxCaveats) caveats")
        }
        let envelope = TokenJSON.object([
            "root": token.root.json,
            "caveats": .array(token.caveats.map(\.json)),
        ])
        let text = "\(prefix).\(TokenBase64URL.encode(envelope.canonicalBytes)).\(TokenBase64URL.encode(token.signature))"
        guard text.utf8.count <= maxTokenBytes else {
            throw .denied("token would be \(text.utf8.count) bytes; the limit is \(maxTokenBytes)")
        }
        return text
    }

    /// Strict parse. Does not check the signature: that needs the broker key (`TokenAuthority`).
    static func decode(_ token: String) throws(TokenError) -> DecodedToken {
        let bytes = Array(token.utf8)
        guard bytes.count <= maxTokenBytes else {
            throw .malformed("longer than \(maxTokenBytes) bytes")
        }
        let parts = bytes.split(separator: UInt8(ascii: "."), omittingEmptySubsequences: false)
        guard parts.count == 3, parts[0].elementsEqual(prefix.utf8) else {
            throw .malformed("expected \(prefix).<payload>.<signature>")
        }
        guard let payload = TokenBase64URL.decode(parts[1]) else { throw .malformed("payload is not base64url") }
        guard let signature = TokenBase64URL.decode(parts[2]), signature.count == signatureBytes else {
            throw .malformed("bad signature encoding")
        }
        guard case .object(let envelope)? = TokenJSON.parseCanonical(payload) else {
            throw .malformed("payload is not canonical JSON")
        }
        guard Set(envelope.keys) == ["root", "caveats"],
              case .object(let rootObject)? = envelope["root"],
              case .array(let caveatValues)? = envelope["caveats"] else {
            throw .malformed("envelope must be {\"caveats\":[…],\"root\":{…}}")
        }
        guard caveatValues.count <= maxCaveats else {
            throw .malformed("more than \(maxCaveats) caveats")
        }
        let root = try decodeRoot(rootObject)
        var caveats: [TokenCaveat] = []
        for value in caveatValues {
            caveats.append(try decodeCaveat(value))
        }
        return DecodedToken(root: root, caveats: caveats, signature: signature)
    }

    private static func decodeRoot(_ object: [String: TokenJSON]) throws(TokenError) -> TokenRoot {
        guard Set(object.keys) == ["v", "tid", "run", "ses", "tools", "exp"] else {
            throw .malformed("root must have exactly exp, run, ses, tid, tools, v")
        }
        guard case .int(version)? = object["v"] else { throw .malformed("unsupported version") }
        guard case .string(let tid)? = object["tid"], tid.utf8.count == 32,
              tid.utf8.allSatisfy({ (0x30...0x39).contains($0) || (0x61...0x66).contains($0) }) else {
            throw .malformed("tid must be 32 lowercase hex digits")
        }
        guard case .string(let run)? = object["run"], !run.isEmpty,
              case .string(let ses)? = object["ses"], !ses.isEmpty else {
            throw .malformed("run and ses must be non-empty strings")
        }
        guard case .int(let exp)? = object["exp"] else { throw .malformed("exp must be an integer") }
        return TokenRoot(tokenID: tid, runID: run, sessionID: ses, tools: try decodeTools(object["tools"]), expiresAtMs: exp)
    }

    private static func decodeCaveat(_ value: TokenJSON) throws(TokenError) -> TokenCaveat {
        guard case .object(let object) = value, !object.isEmpty,
              Set(object.keys).isSubset(of: ["tools", "exp"]) else {
            throw .malformed("a caveat is {\"exp\":…}, {\"tools\":[…]} or both")
        }
        var caveat = TokenCaveat()
        if let tools = object["tools"] { caveat.tools = try decodeTools(tools) }
        if let exp = object["exp"] {
            guard case .int(let ms) = exp else { throw .malformed("exp must be an integer") }
            caveat.expiresAtMs = ms
        }
        return caveat
    }

    private static func decodeTools(_ value: TokenJSON?) throws(TokenError) -> [String] {
        guard case .array(let elements)? = value else { throw .malformed("tools must be an array") }
        var tools: [String] = []
        for element in elements {
            guard case .string(let tool) = element, !tool.isEmpty else {
                throw .malformed("tools must be non-empty strings")
            }
            if let last = tools.last, !TokenJSON.codePointLess(last, tool) {
                throw .malformed("tools must be sorted and unique")
            }
            tools.append(tool)
        }
        return tools
    }

    // MARK: attenuation

    /// Appends `caveat` and extends the signature chain. No policy: the caller decides what may be
    /// appended (appending never widens a token, whatever the caveat says).
    static func append(_ caveat: TokenCaveat, to token: String) throws(TokenError) -> String {
        var decoded = try decode(token)
        guard decoded.caveats.count < maxCaveats else {
            throw .denied("a token carries at most \(maxCaveats) caveats")
        }
        decoded.signature = hmac(key: decoded.signature, message: caveat.json.canonicalBytes)
        decoded.caveats.append(caveat)
        return try encode(decoded)
    }
}
