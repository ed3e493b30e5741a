import Foundation
import SealboxTestSupport
import Testing
@testable import SealboxBroker

private struct Minted {
    let authority: TokenAuthority
    let token: String
    let tokenID: String
    let expiresAtMs: Int64
}

private func mint(tools: [String] = ["alpha", "beta", "gamma"], run: String = "run-1",
                  expiresIn: Int64 = 60_000) -> Minted {
    let authority = TokenAuthority(key: TokenAuthority.randomKey())
    let exp = tokenNow + expiresIn
    let (token, id) = authority.mint(runID: run, sessionID: "ses-1", tools: tools, expiresAtMs: exp)
    return Minted(authority: authority, token: token, tokenID: id, expiresAtMs: exp)
}

private func verify(_ m: Minted, _ token: String? = nil, tool: String = "alpha", run: String = "run-1",
                    now: Int64 = tokenNow, revocations: RevocationList = RevocationList()) throws(TokenError) -> TokenClaims {
    try m.authority.verify(token ?? m.token, tool: tool, runID: run, nowMs: now, revocations: revocations)
}

/// Builds a token string from parts without any of the encoder's checks.
private func rawToken(payload: [UInt8], signature: [UInt8]) -> String {
    "sbx1.\(TokenBase64URL.encode(payload)).\(TokenBase64URL.encode(signature))"
}

@Suite("capability tokens")
struct TokenTests {
    @Test func mintVerifyRoundTrip() throws {
        let m = mint()
        let claims = try verify(m)
        #expect(claims == TokenClaims(tokenID: m.tokenID, runID: "run-1", sessionID: "ses-1",
                                      tools: ["alpha", "beta", "gamma"], expiresAtMs: m.expiresAtMs, caveatCount: 0))
        #expect(m.tokenID.count == 32 && m.tokenID.allSatisfy(\.isHexDigit) && m.tokenID == m.tokenID.lowercased())
        #expect(m.token.hasPrefix("sbx1."))
        #expect(m.token.split(separator: ".", omittingEmptySubsequences: false).count == 3)
        // Every mint gets a fresh id.
        #expect(mint().tokenID != m.tokenID)
    }

    @Test func wireFormatIsCanonicalEnvelope() throws {
        let m = mint(tools: ["b", "a", "b"])   // normalized: sorted, unique
        let parts = m.token.split(separator: ".", omittingEmptySubsequences: false)
        let payload = try #require(TokenBase64URL.decode(Array(parts[1].utf8)))
        let text = String(decoding: payload, as: UTF8.self)
        #expect(text == #"{"caveats":[],"root":{"exp":\#(m.expiresAtMs),"run":"run-1","ses":"ses-1","tid":"\#(m.tokenID)","tools":["a","b"],"v":1}}"#)
        #expect(try #require(TokenBase64URL.decode(Array(parts[2].utf8))).count == 32)
    }

    @Test func wrongKeyIsDenied() {
        let m = mint()
        let other = TokenAuthority(key: TokenAuthority.randomKey())
        let e = tokenError { try other.verify(m.token, tool: "alpha", runID: "run-1", nowMs: tokenNow, revocations: RevocationList()) }
        #expect(e?.code == .denied)
        #expect(e?.message.contains("signature") == true)
    }

    /// Every single-bit change of every byte (7 bits: the token is ASCII) is refused as `denied`,
    /// on a fresh token and on one with caveats.
    @Test(arguments: [0, 2])
    func flippedByteAnywhereIsDenied(caveats: Int) throws {
        let m = mint()
        var token = m.token
        if caveats > 0 { token = try TokenAttenuation.attenuate(token, tools: ["alpha", "beta"], expiresAtMs: nil) }
        if caveats > 1 { token = try TokenAttenuation.attenuate(token, tools: nil, expiresAtMs: m.expiresAtMs - 1) }
        #expect(try verify(m, token).caveatCount == caveats)
        let bytes = Array(token.utf8)
        var checked = 0
        for i in bytes.indices {
            for bit in 0..<7 {
                var mutated = bytes
                mutated[i] ^= UInt8(1 << bit)
                let e = tokenError { try verify(m, String(decoding: mutated, as: UTF8.self)) }
                #expect(e?.code == .denied, "byte \(i) bit \(bit): \(String(describing: e))")
                checked += 1
            }
        }
        #expect(checked == bytes.count * 7)
    }

    @Test func truncationsAndExtensionsAreDenied() {
        let m = mint()
        let bytes = Array(m.token.utf8)
        for n in 0..<bytes.count {
            #expect(tokenError { try verify(m, String(decoding: bytes[0..<n], as: UTF8.self)) }?.code == .denied)
        }
        for suffix in ["A", "=", ".", "==", " ", "\n", "\u{0}"] {
            #expect(tokenError { try verify(m, m.token + suffix) }?.code == .denied)
            #expect(tokenError { try verify(m, suffix + m.token) }?.code == .denied)
        }
    }

    @Test func expiry() throws {
        let m = mint()
        #expect(try verify(m, now: m.expiresAtMs - 1).expiresAtMs == m.expiresAtMs)
        let atExpiry = tokenError { try verify(m, now: m.expiresAtMs) }
        #expect(atExpiry?.code == .expired)
        #expect(tokenError { try verify(m, now: m.expiresAtMs + 3_600_000) }?.code == .expired)
    }

    @Test(arguments: ["delta", "", "Alpha", "alpha ", "alph", "alpha\u{0}", String(repeating: "x", count: 5000)])
    func toolOutsideScopeIsDeniedAndNamed(tool: String) {
        let m = mint()
        let e = tokenError { try verify(m, tool: tool) }
        #expect(e?.code == .denied)
        #expect(e?.message.contains("is not granted") == true)
        var quoted: [UInt8] = []
        TokenJSON.writeString(tool, into: &quoted)
        let needle = tool.count > 200 ? "\"" + String(repeating: "x", count: 200) + "\"..." : String(decoding: quoted, as: UTF8.self)
        #expect(e?.message.contains(needle) == true, "\(e?.message ?? "")")
        #expect((e?.message.count ?? 0) < 400)
    }

    struct AttenuationCase: Sendable, CustomTestStringConvertible {
        let name: String
        let steps: [([String]?, Int64?)]     // (tools, expiry offset from now)
        let tools: Set<String>
        let expiryOffset: Int64
        var testDescription: String { name }
    }

    static let attenuationCases: [AttenuationCase] = [
        .init(name: "tools only", steps: [(["alpha", "beta"], nil)], tools: ["alpha", "beta"], expiryOffset: 60_000),
        .init(name: "expiry only", steps: [(nil, 10_000)], tools: ["alpha", "beta", "gamma"], expiryOffset: 10_000),
        .init(name: "both at once", steps: [(["gamma"], 5_000)], tools: ["gamma"], expiryOffset: 5_000),
        .init(name: "twice narrower", steps: [(["alpha", "beta"], 30_000), (["alpha"], 20_000)], tools: ["alpha"], expiryOffset: 20_000),
        .init(name: "later expiry changes nothing", steps: [(nil, 10_000), (nil, 50_000)], tools: ["alpha", "beta", "gamma"], expiryOffset: 10_000),
        .init(name: "expiry past the root's", steps: [(nil, 3_600_000)], tools: ["alpha", "beta", "gamma"], expiryOffset: 60_000),
        .init(name: "duplicates and order", steps: [(["beta", "alpha", "beta"], nil)], tools: ["alpha", "beta"], expiryOffset: 60_000),
        .init(name: "empty scope", steps: [([], nil)], tools: [], expiryOffset: 60_000),
    ]

    @Test(arguments: attenuationCases)
    func attenuationNarrows(_ c: AttenuationCase) throws {
        let m = mint()
        var token = m.token
        for (tools, offset) in c.steps {
            token = try TokenAttenuation.attenuate(token, tools: tools, expiresAtMs: offset.map { tokenNow + $0 })
        }
        for tool in ["alpha", "beta", "gamma"] {
            let e = tokenError { try verify(m, token, tool: tool) }
            if c.tools.contains(tool) {
                let claims = try verify(m, token, tool: tool)
                #expect(claims.tools == c.tools)
                #expect(claims.expiresAtMs == tokenNow + c.expiryOffset)
                #expect(claims.caveatCount == c.steps.count)
                #expect(claims.tokenID == m.tokenID)
            } else {
                #expect(e?.code == .denied)
            }
        }
        #expect(tokenError { try verify(m, token, tool: c.tools.first ?? "alpha", now: tokenNow + c.expiryOffset) }?.code
            == .expired)
    }

    @Test func attenuateRefusesToWidenAndEmptyRequests() throws {
        let m = mint(tools: ["alpha", "beta"])
        let e = tokenError { try TokenAttenuation.attenuate(m.token, tools: ["alpha", "zeta"], expiresAtMs: nil) }
        #expect(e?.code == .denied)
        #expect(e?.message.contains("zeta") == true)
        let narrowed = try TokenAttenuation.attenuate(m.token, tools: ["alpha"], expiresAtMs: nil)
        #expect(tokenError { try TokenAttenuation.attenuate(narrowed, tools: ["beta"], expiresAtMs: nil) }?.code == .denied)
        #expect(tokenError { try TokenAttenuation.attenuate(m.token, tools: nil, expiresAtMs: nil) }?.code == .denied)
        #expect(tokenError { try TokenAttenuation.attenuate(m.token, tools: [""], expiresAtMs: nil) }?.code == .denied)
    }

    /// A caveat that lists more tools than the token has (appended below the policy check, as a
    /// hostile holder would) is validly signed and still widens nothing.
    @Test(arguments: [["alpha", "beta", "zeta"], ["zeta"], ["alpha", "beta", "gamma", "zeta"]])
    func caveatWithMoreToolsDoesNotWiden(caveatTools: [String]) throws {
        let m = mint(tools: ["alpha", "beta"])
        let narrowed = try TokenAttenuation.attenuate(m.token, tools: ["alpha"], expiresAtMs: nil)
        for base in [m.token, narrowed] {
            let before = try TokenFormat.decode(base).effectiveTools
            let widened = try TokenFormat.append(TokenCaveat(tools: TokenFormat.normalize(tools: caveatTools), expiresAtMs: nil), to: base)
            for tool in ["alpha", "beta", "gamma", "zeta"] {
                let allowed = before.contains(tool) && caveatTools.contains(tool)
                let e = tokenError { try verify(m, widened, tool: tool) }
                #expect((e == nil) == allowed, "\(tool) via \(caveatTools)")
                if !allowed { #expect(e?.code == .denied) }
            }
        }
        // Nor can a caveat push the expiry out.
        let later = try TokenFormat.append(TokenCaveat(tools: nil, expiresAtMs: .max), to: narrowed)
        #expect(tokenError { try verify(m, later, now: m.expiresAtMs) }?.code == .expired)
    }

    @Test func removingOrEditingACaveatIsDenied() throws {
        let m = mint()
        let one = try TokenAttenuation.attenuate(m.token, tools: ["alpha", "beta"], expiresAtMs: tokenNow + 30_000)
        let two = try TokenAttenuation.attenuate(one, tools: ["alpha"], expiresAtMs: nil)
        var decoded = try TokenFormat.decode(two)
        #expect(try verify(m, two).tools == ["alpha"])

        for drop in [0, 1] {
            var stripped = decoded
            stripped.caveats.remove(at: drop)
            #expect(tokenError { try verify(m, try TokenFormat.encode(stripped), tool: "alpha") }?.code == .denied, "dropped \(drop)")
        }
        var none = decoded
        none.caveats = []
        #expect(tokenError { try verify(m, try TokenFormat.encode(none)) }?.code == .denied)
        // Keep the count, loosen the content.
        decoded.caveats[1] = TokenCaveat(tools: ["alpha", "beta", "gamma"], expiresAtMs: nil)
        #expect(tokenError { try verify(m, try TokenFormat.encode(decoded), tool: "gamma") }?.code == .denied)
        // Swap the order of the caveats (same set, different chain).
        var swapped = try TokenFormat.decode(two)
        swapped.caveats.swapAt(0, 1)
        #expect(tokenError { try verify(m, try TokenFormat.encode(swapped)) }?.code == .denied)
        // The signature of the one-caveat token on the two-caveat payload, and vice versa.
        var mixed = try TokenFormat.decode(two)
        mixed.signature = try TokenFormat.decode(one).signature
        #expect(tokenError { try verify(m, try TokenFormat.encode(mixed)) }?.code == .denied)
    }

    @Test func tokenForAnotherRunIsDenied() {
        let m = mint(run: "run-1")
        for run in ["run-2", "", "run-1 ", "RUN-1"] {
            let e = tokenError { try verify(m, run: run) }
            #expect(e?.code == .denied)
            #expect(e?.message.contains("another run") == true)
        }
    }

    @Test func revocation() throws {
        let m = mint()
        let list = RevocationList(tokenIDs: ["0123456789abcdef0123456789abcdef"], runIDs: ["run-9"])
        #expect(try verify(m, revocations: list).tokenID == m.tokenID)
        list.revoke(tokenID: m.tokenID)
        #expect(tokenError { try verify(m, revocations: list) }?.code == .revoked)

        let m2 = mint()
        let byRun = RevocationList()
        byRun.revoke(runID: "run-1")
        #expect(tokenError { try verify(m2, revocations: byRun) }?.code == .revoked)
        // Attenuated copies die with their parent.
        let child = try TokenAttenuation.attenuate(m2.token, tools: ["alpha"], expiresAtMs: nil)
        #expect(tokenError { try verify(m2, child, revocations: byRun) }?.code == .revoked)
        let initRevoked = RevocationList(tokenIDs: [m2.tokenID])
        #expect(tokenError { try verify(m2, child, revocations: initRevoked) }?.code == .revoked)
        #expect(initRevoked.isRevoked(tokenID: m2.tokenID, runID: "x"))
        #expect(!initRevoked.isRevoked(tokenID: "y", runID: "x"))
    }

    @Test func revocationListIsThreadSafe() async {
        let list = RevocationList()
        await withTaskGroup(of: Void.self) { group in
            for i in 0..<64 {
                group.addTask {
                    list.revoke(tokenID: "t\(i)")
                    list.revoke(runID: "r\(i)")
                    _ = list.isRevoked(tokenID: "t\(i)", runID: "none")
                }
            }
        }
        for i in 0..<64 {
            #expect(list.isRevoked(tokenID: "t\(i)", runID: "none"))
            #expect(list.isRevoked(tokenID: "none", runID: "r\(i)"))
        }
    }

    static let garbage: [String] = [
        "", ".", "..", "sbx1", "sbx1.", "sbx1..", "sbx1.e30.", "sbx2.e30.AAAA",
        "sbx1.e30.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",     // payload {} with a zero signature
        "sbx1.!!!!.????", "sbx1.e30=.AAAA", "SBX1.e30.AAAA", "sbx1.e30.AAAA.AAAA",
        "{\"root\":{}}", "null", "\u{0}\u{0}\u{0}", "🔑.🔑.🔑", "sbx1.\u{00e9}.x",
        String(repeating: "A", count: 4097), "sbx1." + String(repeating: "A", count: 5000) + ".AAAA",
        String(repeating: ".", count: 10_000), String(repeating: "sbx1.", count: 1000),
    ]

    @Test(arguments: garbage)
    func garbageIsDeniedNotACrash(input: String) {
        let m = mint()
        let e = tokenError { try verify(m, input) }
        #expect(e?.code == .denied)
        #expect(e?.message.hasPrefix("malformed token") == true)
        #expect(tokenError { try TokenAttenuation.attenuate(input, tools: ["alpha"], expiresAtMs: nil) }?.code == .denied)
    }

    @Test func randomBytesAreDenied() {
        let m = mint()
        var rng = SeededRandom(seed: 42)
        let alphabet = Array("sbx1.ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_=+/{}\"\\ \n".utf8)
        for round in 0..<3000 {
            let n = Int(rng.next() % 700)
            var bytes = (0..<n).map { _ in round % 2 == 0 ? UInt8(truncatingIfNeeded: rng.next()) : alphabet[Int(rng.next() % UInt64(alphabet.count))] }
            if round % 3 == 0 { bytes = Array("sbx1.".utf8) + bytes }
            let e = tokenError { try verify(m, String(decoding: bytes, as: UTF8.self)) }
            #expect(e?.code == .denied)
        }
    }

    /// Random multi-byte edits of a real token: never accepted.
    @Test func mutatedTokensAreDenied() throws {
        let m = mint()
        let token = try TokenAttenuation.attenuate(m.token, tools: ["alpha"], expiresAtMs: tokenNow + 1000)
        let base = Array(token.utf8)
        var rng = SeededRandom(seed: 7)
        for _ in 0..<3000 {
            var bytes = base
            for _ in 0..<(1 + Int(rng.next() % 4)) {
                let i = Int(rng.next() % UInt64(bytes.count))
                switch rng.next() % 3 {
                case 0: bytes[i] = UInt8(truncatingIfNeeded: rng.next() % 128)
                case 1: bytes.remove(at: i)
                default: bytes.insert(UInt8(truncatingIfNeeded: 0x21 + rng.next() % 94), at: i)
                }
            }
            guard bytes != base else { continue }
            #expect(tokenError { try verify(m, String(decoding: bytes, as: UTF8.self)) }?.code == .denied)
        }
    }

    /// Payloads that carry a *valid* signature for their root but are not tokens the broker would
    /// issue: the parser refuses them before any other check.
    @Test(arguments: [
        "whitespace", "unsorted keys", "float exp", "unknown root field", "unknown caveat field",
        "empty caveat", "unsorted tools", "duplicate tools", "version 2", "short tid", "17 caveats",
        "boolean", "escaped slash", "leading zero",
    ])
    func signedButNonCanonicalIsDenied(variant: String) throws {
        let key = TokenAuthority.randomKey()
        let authority = TokenAuthority(key: key)
        let tid = "0123456789abcdef0123456789abcdef"
        var root = #"{"exp":1700000060000,"run":"run-1","ses":"ses-1","tid":"\#(tid)","tools":["alpha","beta"],"v":1}"#
        var caveats: [String] = []
        switch variant {
        case "whitespace": root = root.replacingOccurrences(of: ",", with: ", ")
        case "unsorted keys": root = #"{"run":"run-1","exp":1700000060000,"ses":"ses-1","tid":"\#(tid)","tools":["alpha","beta"],"v":1}"#
        case "float exp": root = root.replacingOccurrences(of: "1700000060000", with: "1700000060000.0")
        case "unknown root field": root = root.replacingOccurrences(of: #""v":1"#, with: #""v":1,"x":1"#)
        case "unknown caveat field": caveats = [#"{"exp":1,"who":"me"}"#]
        case "empty caveat": caveats = ["{}"]
        case "unsorted tools": root = root.replacingOccurrences(of: #"["alpha","beta"]"#, with: #"["beta","alpha"]"#)
        case "duplicate tools": root = root.replacingOccurrences(of: #"["alpha","beta"]"#, with: #"["alpha","alpha","beta"]"#)
        case "version 2": root = root.replacingOccurrences(of: #""v":1"#, with: #""v":2"#)
        case "short tid": root = root.replacingOccurrences(of: tid, with: "0123")
        case "17 caveats": caveats = Array(repeating: #"{"exp":1700000050000}"#, count: 17)
        case "boolean": caveats = [#"{"exp":true}"#]
        case "escaped slash": root = root.replacingOccurrences(of: "run-1", with: #"run\/1"#)
        case "leading zero": caveats = [#"{"exp":01}"#]
        default: Issue.record("unknown variant")
        }
        var signature = TokenFormat.hmac(key: key, message: Array(root.utf8))
        for caveat in caveats { signature = TokenFormat.hmac(key: signature, message: Array(caveat.utf8)) }
        let payload = #"{"caveats":[\#(caveats.joined(separator: ","))],"root":\#(root)}"#
        let token = rawToken(payload: Array(payload.utf8), signature: signature)
        let e = tokenError { try authority.verify(token, tool: "alpha", runID: variant == "escaped slash" ? "run/1" : "run-1",
                                                  nowMs: 0, revocations: RevocationList()) }
        #expect(e?.code == .denied)
        #expect(e?.message.hasPrefix("malformed token") == true, "\(String(describing: e))")
    }

    /// The control: the same hand-built construction, canonical, verifies.
    @Test func handBuiltCanonicalTokenVerifies() throws {
        let key = TokenAuthority.randomKey()
        let root = #"{"exp":1700000060000,"run":"run-1","ses":"ses-1","tid":"0123456789abcdef0123456789abcdef","tools":["alpha","beta"],"v":1}"#
        let caveat = #"{"exp":1700000050000,"tools":["beta"]}"#
        let signature = TokenFormat.hmac(key: TokenFormat.hmac(key: key, message: Array(root.utf8)), message: Array(caveat.utf8))
        let token = rawToken(payload: Array(#"{"caveats":[\#(caveat)],"root":\#(root)}"#.utf8), signature: signature)
        let claims = try TokenAuthority(key: key).verify(token, tool: "beta", runID: "run-1", nowMs: 0, revocations: RevocationList())
        #expect(claims.tools == ["beta"] && claims.expiresAtMs == 1_700_000_050_000 && claims.caveatCount == 1)
    }

    @Test func atMostSixteenCaveats() throws {
        let m = mint()
        var token = m.token
        for i in 0..<16 {
            token = try TokenAttenuation.attenuate(token, tools: nil, expiresAtMs: m.expiresAtMs - Int64(i))
        }
        #expect(try verify(m, token).caveatCount == 16)
        #expect(token.utf8.count <= 4096)
        let e = tokenError { try TokenAttenuation.attenuate(token, tools: nil, expiresAtMs: tokenNow + 1) }
        #expect(e?.code == .denied)
        #expect(e?.message.contains("16") == true)
    }

    @Test func sizeLimit() throws {
        let authority = TokenAuthority(key: TokenAuthority.randomKey())
        let many = (0..<400).map { "tool-number-\($0)" }
        let e = tokenError { try authority.tryMint(runID: "r", sessionID: "s", tools: many, expiresAtMs: 1) }
        #expect(e?.code == .denied)
        #expect(e?.message.contains("4096") == true)
        #expect(tokenError { try authority.tryMint(runID: "", sessionID: "s", tools: [], expiresAtMs: 1) }?.code == .denied)
        #expect(tokenError { try authority.tryMint(runID: "r", sessionID: "s", tools: [""], expiresAtMs: 1) }?.code == .denied)

        // A token just under the limit cannot be attenuated past it.
        let tools = (0..<140).map { String(format: "t%03d-xxxxxxxxxxx", $0) }
        let (big, _) = try authority.tryMint(runID: "r", sessionID: "s", tools: tools, expiresAtMs: 10)
        #expect(big.utf8.count <= 4096)
        let narrowed = tokenError { try TokenAttenuation.attenuate(big, tools: Array(tools.prefix(139)), expiresAtMs: nil) }
        #expect(narrowed?.code == .denied)
        #expect(narrowed?.message.contains("limit") == true)
        #expect(try authority.verify(big, tool: "t000-xxxxxxxxxxx", runID: "r", nowMs: 0, revocations: RevocationList()).tools.count == 140)
    }

    @Test func unicodeToolNames() throws {
        let tools = ["café", "cafe\u{301}", "😀", "a\"b\\c", "tab\there", "x/y", "\u{7f}"]
        let m = mint(tools: tools)
        for tool in tools {
            #expect(try verify(m, tool: tool).caveatCount == 0)
        }
        let narrowed = try TokenAttenuation.attenuate(m.token, tools: ["😀", "a\"b\\c"], expiresAtMs: nil)
        #expect(try verify(m, narrowed, tool: "😀").tools == ["😀", "a\"b\\c"])
        #expect(tokenError { try verify(m, narrowed, tool: "x/y") }?.code == .denied)
    }

    @Test func verificationOrder() throws {
        // Bad signature beats everything; run binding beats revocation; revocation beats expiry;
        // expiry beats scope.
        let m = mint()
        let revoked = RevocationList(runIDs: ["run-1"])
        #expect(tokenError { try verify(m, tool: "nope", run: "run-2", now: .max, revocations: revoked) }?.message.contains("another run") == true)
        #expect(tokenError { try verify(m, tool: "nope", now: .max, revocations: revoked) }?.code == .revoked)
        #expect(tokenError { try verify(m, tool: "nope", now: .max) }?.code == .expired)
        #expect(tokenError { try verify(m, tool: "nope") }?.code == .denied)
    }
}

@Suite("canonical JSON and base64url")
struct TokenEncodingTests {
    @Test(arguments: [
        (TokenJSON.string("a\"b\\c/d"), #""a\"b\\c/d""#),
        (.string("\u{8}\u{c}\n\r\t\u{0}\u{1f}\u{7f}"), #""\b\f\n\r\t\u0000\u001f\u007f""#),
        (.string("é😀"), #""\u00e9\ud83d\ude00""#),
        (.int(0), "0"), (.int(-1), "-1"), (.int(.max), "9223372036854775807"), (.int(.min), "-9223372036854775808"),
        (.array([]), "[]"), (.object([:]), "{}"),
        (.object(["b": .int(1), "a": .array([.string("x"), .int(2)]), "é": .int(3), "Z": .int(4)]), #"{"Z":4,"a":["x",2],"b":1,"\u00e9":3}"#),
    ])
    func canonicalBytes(value: TokenJSON, expected: String) {
        #expect(String(decoding: value.canonicalBytes, as: UTF8.self) == expected)
        #expect(TokenJSON.parseCanonical(Array(expected.utf8)) == value)
    }

    @Test(arguments: [
        " {}", "{} ", "{ }", #"{"a":1,"a":1}"#, #"{"b":1,"a":2}"#, "1.0", "1e3", "-0", "01", "+1", "true", "null",
        "9223372036854775808", "-9223372036854775809", #""\ud800""#, #""\udc00""#, #""\u00E9""#, #""\/""#,
        "\"é\"", "\"\u{7f}\"", "\"\t\"", "[1,]", "[", "\"", #"{"a"}"#, "[[[[[[[[[[[]]]]]]]]]]]",
    ])
    func nonCanonicalJSONIsRefused(text: String) {
        #expect(TokenJSON.parseCanonical(Array(text.utf8)) == nil)
    }

    @Test func base64URLRoundTripAndStrictness() {
        for n in 0..<40 {
            let bytes = (0..<n).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ 11) }
            let text = TokenBase64URL.encode(bytes)
            #expect(!text.contains("=") && !text.contains("+") && !text.contains("/"))
            #expect(TokenBase64URL.decode(Array(text.utf8)) == bytes)
        }
        #expect(TokenBase64URL.decode(Array("_-8".utf8)) == [0xff, 0xef])
        #expect(TokenBase64URL.decode(Array("AB".utf8)) == nil)       // unused bits set
        #expect(TokenBase64URL.decode(Array("AAB".utf8)) == nil)
        #expect(TokenBase64URL.decode(Array("A".utf8)) == nil)        // impossible length
        #expect(TokenBase64URL.decode(Array("AA==".utf8)) == nil)     // padding
        #expect(TokenBase64URL.decode(Array("A+A/".utf8)) == nil)     // standard alphabet
        #expect(TokenBase64URL.decode(Array("AA".utf8)) == [0])
    }
}
