import Foundation
import Testing
@testable import SealboxBroker

/// The Python client (client/sealbox.py, client/sealbox-call) against the Swift side: tokens it
/// attenuates must verify here, tokens it damages must not, and `call` must speak the broker
/// protocol to a real unix socket.
@Suite("Python client interop", .serialized)
struct TokenInteropTests {
    private static let wallNow = Int64(Date().timeIntervalSince1970 * 1000)

    private func mint(tools: [String] = ["alpha", "beta", "gamma"], expiresIn: Int64 = 3_600_000)
        -> (authority: TokenAuthority, token: String, expiresAtMs: Int64) {
        let authority = TokenAuthority(key: TokenAuthority.randomKey())
        let exp = Self.wallNow + expiresIn
        return (authority, authority.mint(runID: "run-7", sessionID: "ses-7", tools: tools, expiresAtMs: exp).token, exp)
    }

    private func verify(_ authority: TokenAuthority, _ token: String, _ tool: String,
                        now: Int64 = wallNow) throws(TokenError) -> TokenClaims {
        try authority.verify(token, tool: tool, runID: "run-7", nowMs: now, revocations: RevocationList())
    }

    /// Runs `script` with `token` on stdin (read as `tok`) and returns its stdout.
    private func python(_ script: String, token: String) throws -> String {
        try tokenRunPython("import sys, json, sealbox\ntok = sys.stdin.read().strip()\n" + script, stdin: token)
    }

    // MARK: attenuation across languages

    @Test func pythonAttenuatesSwiftVerifies() throws {
        let m = mint()
        let exp = Self.wallNow + 60_000
        let narrowed = try python("print(sealbox.attenuate(tok, tools=['beta', 'alpha'], expires_at_ms=\(exp)))", token: m.token)
        #expect(narrowed.hasPrefix("sbx1.") && narrowed != m.token)
        let claims = try verify(m.authority, narrowed, "alpha")
        #expect(claims.tools == ["alpha", "beta"])
        #expect(claims.expiresAtMs == exp)
        #expect(claims.caveatCount == 1)
        #expect(try verify(m.authority, narrowed, "beta").tools.count == 2)
        let outside = tokenError { try verify(m.authority, narrowed, "gamma") }
        #expect(outside?.code == .denied)
        #expect(outside?.message.contains("gamma") == true)
        #expect(tokenError { try verify(m.authority, narrowed, "alpha", now: exp) }?.code == .expired)
        // The original still has its full scope.
        #expect(try verify(m.authority, m.token, "gamma").tools.count == 3)
    }

    @Test func pythonExpiresInIsRelativeToNow() throws {
        let m = mint()
        let before = Int64(Date().timeIntervalSince1970 * 1000)
        let narrowed = try python("print(sealbox.attenuate(tok, expires_in=60))", token: m.token)
        let after = Int64(Date().timeIntervalSince1970 * 1000)
        let claims = try verify(m.authority, narrowed, "gamma", now: before)
        #expect(claims.tools.count == 3)
        #expect(claims.expiresAtMs >= before + 60_000 - 5 && claims.expiresAtMs <= after + 60_000 + 5)
    }

    @Test func mixedChainSwiftPythonSwift() throws {
        let m = mint()
        let a = try TokenAttenuation.attenuate(m.token, tools: ["alpha", "beta"], expiresAtMs: nil)
        let b = try python("print(sealbox.attenuate(tok, tools=['alpha'], expires_at_ms=\(Self.wallNow + 10_000)))", token: a)
        let c = try TokenAttenuation.attenuate(b, tools: nil, expiresAtMs: Self.wallNow + 5_000)
        let claims = try verify(m.authority, c, "alpha")
        #expect(claims.tools == ["alpha"] && claims.caveatCount == 3 && claims.expiresAtMs == Self.wallNow + 5_000)
        #expect(tokenError { try verify(m.authority, c, "beta") }?.code == .denied)
        // Python sees the same scope Swift computed, and refuses to widen.
        let out = try python("""
            env, _ = sealbox._decode_token(tok)
            try:
                sealbox.attenuate(tok, tools=['beta'])
                print('widened')
            except sealbox.Error as e:
                print(sorted(sealbox._effective_tools(env)), e.code, e.message)
            """, token: c)
        #expect(out == "['alpha'] denied cannot widen a token: not in its scope: beta")
    }

    @Test func unicodeToolNamesSurviveBothLanguages() throws {
        let tools = ["café", "cafe\u{301}", "😀", "a\"b\\c", "tab\there", "x/y", "\u{7f}del", "Zed"]
        let m = mint(tools: tools)
        let narrowed = try python(#"print(sealbox.attenuate(tok, tools=["😀", "cafe\u0301", 'a"b\\c', "\x7fdel"]))"#, token: m.token)
        let claims = try verify(m.authority, narrowed, "😀")
        #expect(claims.tools == ["😀", "cafe\u{301}", "a\"b\\c", "\u{7f}del"])
        #expect(tokenError { try verify(m.authority, narrowed, "Zed") }?.code == .denied)
    }

    /// Swift's canonical bytes go to Python as text; Python parses and re-canonicalizes them and
    /// must produce the very same bytes.
    @Test(arguments: [
        TokenJSON.object(["z": .int(-9_223_372_036_854_775_808), "a": .array([.string("é😀\u{0}\u{1f}\u{7f}\"\\/\t")]), "B": .object([:])]),
        TokenJSON.object(["caveats": .array([.object(["exp": .int(1), "tools": .array([])])]), "root": .object(["v": .int(1)])]),
        // (Not both "\u{e9}" and "e\u{301}" as keys: Swift's String equality makes them one key.)
        TokenJSON.object(["\u{e9}": .array([.string("e\u{301}"), .string("\u{e9}")]), "f": .int(3), "\u{10ffff}": .string("\u{ffff}")]),
    ])
    func pythonReproducesCanonicalJSON(value: TokenJSON) throws {
        let swiftBytes = String(decoding: value.canonicalBytes, as: UTF8.self)
        let out = try tokenRunPython("""
            import sys, json, sealbox
            text = sys.stdin.read()
            sys.stdout.write(sealbox.canonical_json(json.loads(text)).decode('ascii'))
            """, stdin: swiftBytes)
        #expect(out == swiftBytes)
    }

    struct Tamper: Sendable, CustomTestStringConvertible {
        let name: String
        let script: String
        var testDescription: String { name }
    }

    /// Mistakes or tricks on the Python side; each produces a token Swift must refuse.
    static let tampers: [Tamper] = [
        Tamper(name: "root tools widened, signature kept", script: """
            env, sig = sealbox._decode_token(tok)
            env['root']['tools'] = sorted(env['root']['tools'] + ['zeta'])
            print('sbx1.' + sealbox._b64encode(sealbox.canonical_json(env)) + '.' + sealbox._b64encode(sig))
            """),
        Tamper(name: "caveat keyed with the hex text of the signature", script: """
            import hmac, hashlib
            env, sig = sealbox._decode_token(tok)
            cav = {'tools': ['alpha']}
            new = hmac.new(sig.hex().encode(), sealbox.canonical_json(cav), hashlib.sha256).digest()
            env['caveats'].append(cav)
            print('sbx1.' + sealbox._b64encode(sealbox.canonical_json(env)) + '.' + sealbox._b64encode(new))
            """),
        Tamper(name: "caveat signed over non-canonical JSON", script: """
            import hmac, hashlib
            env, sig = sealbox._decode_token(tok)
            cav = {'tools': ['alpha']}
            new = hmac.new(sig, json.dumps(cav).encode(), hashlib.sha256).digest()
            env['caveats'].append(cav)
            print('sbx1.' + sealbox._b64encode(sealbox.canonical_json(env)) + '.' + sealbox._b64encode(new))
            """),
        Tamper(name: "caveat dropped after attenuation", script: """
            t = sealbox.attenuate(tok, tools=['alpha'])
            env, sig = sealbox._decode_token(t)
            env['caveats'] = []
            print('sbx1.' + sealbox._b64encode(sealbox.canonical_json(env)) + '.' + sealbox._b64encode(sig))
            """),
        Tamper(name: "envelope with whitespace", script: """
            env, sig = sealbox._decode_token(tok)
            print('sbx1.' + sealbox._b64encode(json.dumps(env, sort_keys=True).encode()) + '.' + sealbox._b64encode(sig))
            """),
        Tamper(name: "padded base64", script: """
            p, s = tok.split('.')[1:]
            print('sbx1.' + p + '=' * (-len(p) % 4) + '.' + s + '=' * (-len(s) % 4))
            """),
        Tamper(name: "one payload character changed", script: """
            head, p, s = tok.split('.')
            i = len(p) // 2
            print(head + '.' + p[:i] + ('A' if p[i] != 'A' else 'B') + p[i+1:] + '.' + s)
            """),
    ]

    @Test(arguments: tampers)
    func pythonTamperingIsRejected(_ tamper: Tamper) throws {
        let m = mint()
        let bad = try python(tamper.script, token: m.token)
        #expect(bad.hasPrefix("sbx1."))
        for tool in ["alpha", "zeta"] {
            let e = tokenError { try verify(m.authority, bad, tool) }
            #expect(e?.code == .denied, "\(tamper.name): \(String(describing: e))")
        }
    }

    @Test func pythonRejectsMalformedInput() throws {
        let m = mint()
        let out = try python("""
            zero_sig = sealbox._b64encode(bytes(32))
            deep = 'sbx1.' + sealbox._b64encode(b'[' * 3000) + '.' + zero_sig
            deep_root = 'sbx1.' + sealbox._b64encode(b'{"caveats":[],"root":{"x":' + b'[' * 990 + b']' * 990 + b'}}') + '.' + zero_sig
            cases = ['', 'sbx1', 'sbx1.e30.AAAA', tok + 'A', tok.replace('sbx1', 'sbx2'), 'x' * 5000, deep, deep_root]
            codes = []
            for c in cases:
                try:
                    sealbox.attenuate(c, tools=['alpha'])
                    codes.append('accepted')
                except sealbox.Error as e:
                    codes.append(e.code)
            t = tok
            for i in range(16):
                t = sealbox.attenuate(t, expires_at_ms=\(Self.wallNow) + 1000 - i)
            try:
                sealbox.attenuate(t, expires_at_ms=1)
                codes.append('accepted')
            except sealbox.Error as e:
                codes.append(e.code + ':' + str('16' in e.message))
            print(' '.join(codes))
            print(t)
            """, token: m.token)
        let lines = out.split(separator: "\n").map(String.init)
        #expect(lines.first == "denied denied denied denied denied denied denied denied denied:True")
        let sixteen = try #require(lines.last)
        let claims = try verify(m.authority, sixteen, "gamma")
        #expect(claims.caveatCount == 16 && claims.expiresAtMs == Self.wallNow + 1000 - 15)
    }

    // MARK: sealbox.call against a fake broker

    private static let okAnswer = #"{"ok":true,"result":{"temp":-3.5,"city":"Oslo","tags":["a"]},"effect":{"seq":17,"replayed":false}}"# + "\n"

    @Test func callSendsOneRequestLineAndReturnsResult() throws {
        let broker = try TokenFakeBroker.start(answer: Self.okAnswer)
        let out = try tokenRunPython("""
            import json, sealbox
            assert sealbox.last_effect is None
            r = sealbox.call("weather", {"city": "Oslo", "n": 2, "nested": {"x": [1, True, None]}}, key="req-1")
            print(json.dumps({"result": r, "effect": sealbox.last_effect}, sort_keys=True))
            """, environment: tokenClientEnvironment(token: "TOKEN-abc", broker: broker.path))
        let request = try #require(broker.request())
        #expect(request.hasSuffix("\n"))
        #expect(request.filter { $0 == "\n" }.count == 1)
        let sent = try tokenJSONObject(request)
        #expect(sent["token"] as? String == "TOKEN-abc")
        #expect(sent["op"] as? String == "call")
        #expect(sent["tool"] as? String == "weather")
        #expect(sent["key"] as? String == "req-1")
        #expect(sent["fresh"] as? Bool == false)
        let args = try #require(sent["args"] as? [String: Any])
        #expect(args["city"] as? String == "Oslo")
        #expect(args["n"] as? Int == 2)
        #expect(((args["nested"] as? [String: Any])?["x"] as? [Any])?.count == 3)
        #expect(Set(sent.keys) == ["token", "op", "tool", "args", "key", "fresh"])

        let printed = try tokenJSONObject(out)
        let result = try #require(printed["result"] as? [String: Any])
        #expect(result["city"] as? String == "Oslo")
        #expect(result["temp"] as? Double == -3.5)
        let effect = try #require(printed["effect"] as? [String: Any])
        #expect(effect["seq"] as? Int == 17)
        #expect(effect["replayed"] as? Bool == false)
    }

    @Test func callWithoutKeyOmitsItAndSendsFresh() throws {
        let broker = try TokenFakeBroker.start(answer: #"{"ok":true,"result":{},"effect":{"seq":1,"replayed":true}}"# + "\n")
        let out = try tokenRunPython("""
            import sealbox
            r, e = sealbox.call_with_effect("read_db", fresh=True)
            print(r, e["replayed"], sealbox.last_effect)
            """, environment: tokenClientEnvironment(token: "T", broker: broker.path))
        #expect(out == "{} True None")
        let sent = try tokenJSONObject(try #require(broker.request()))
        #expect(sent["key"] == nil)
        #expect(sent["fresh"] as? Bool == true)
        #expect((sent["args"] as? [String: Any])?.isEmpty == true)
    }

    @Test(arguments: ["denied", "expired", "revoked", "in_doubt", "awaiting_approval", "unknown_tool", "tool_failed", "bad_request"])
    func okFalseRaisesErrorWithCode(code: String) throws {
        let broker = try TokenFakeBroker.start(answer: #"{"ok":false,"error":{"code":"\#(code)","message":"because \#(code)"}}"# + "\n")
        let out = try tokenRunPython("""
            import sealbox
            try:
                sealbox.call("weather", {"city": "Oslo"})
                print("no error")
            except sealbox.Error as e:
                print(e.code + "|" + e.message + "|" + str(e) + "|" + str(isinstance(e, Exception)))
            """, environment: tokenClientEnvironment(token: "T", broker: broker.path))
        #expect(out == "\(code)|because \(code)|\(code): because \(code)|True")
        #expect(broker.request() != nil)
    }

    struct BadBroker: Sendable, CustomTestStringConvertible {
        let name: String
        let answer: String
        let code: String
        var testDescription: String { name }
    }

    @Test(arguments: [
        BadBroker(name: "closes without answering", answer: "", code: "bad_response"),
        BadBroker(name: "half a line", answer: #"{"ok":tr"#, code: "bad_response"),
        BadBroker(name: "not JSON", answer: "hello\n", code: "bad_response"),
        BadBroker(name: "no ok field", answer: #"{"result":{}}"# + "\n", code: "bad_response"),
        BadBroker(name: "error without code", answer: #"{"ok":false,"error":{}}"# + "\n", code: "bad_response"),
        BadBroker(name: "nested 100000 deep", answer: String(repeating: "[", count: 100_000) + "\n", code: "bad_response"),
        BadBroker(name: "line over 1 MiB", answer: #"{"ok":true,"result":""# + String(repeating: "x", count: 1_100_000) + "\"}\n", code: "bad_response"),
        BadBroker(name: "line 1 MiB + 1 byte", answer: #"{"ok":true,"result":""# + String(repeating: "x", count: (1 << 20) - 23) + "\"}\n", code: "bad_response"),
    ])
    func malformedAnswersAreBadResponse(_ bad: BadBroker) throws {
        let broker = try TokenFakeBroker.start(answer: bad.answer)
        let out = try tokenRunPython("""
            import sealbox
            try:
                print(sealbox.call("weather", {}))
            except sealbox.Error as e:
                print(e.code)
            """, environment: tokenClientEnvironment(token: "T", broker: broker.path))
        #expect(out == bad.code)
        _ = broker.request()
    }

    /// A line of exactly 1 MiB, newline included, is the longest accepted.
    @Test func answerOfExactlyOneMiBIsAccepted() throws {
        let frame = #"{"ok":true,"result":{"s":""}}"# + "\n"
        let filler = String(repeating: "y", count: (1 << 20) - frame.utf8.count)
        let broker = try TokenFakeBroker.start(answer: #"{"ok":true,"result":{"s":"\#(filler)"}}"# + "\n")
        let out = try tokenRunPython("""
            import sealbox
            print(len(sealbox.call("weather")["s"]), sealbox.last_effect)
            """, environment: tokenClientEnvironment(token: "T", broker: broker.path))
        #expect(out == "\(filler.count) None")
        _ = broker.request()
    }

    @Test func silentBrokerTimesOut() throws {
        let broker = try TokenFakeBroker.start(answer: #"{"ok":true,"result":{}}"# + "\n", delayMs: 10_000)
        let started = Date()
        let out = try tokenRunPython("""
            import sealbox
            try:
                sealbox.call("weather", {}, timeout=0.5)
                print("answered")
            except sealbox.Error as e:
                print(e.code + "|" + e.message)
            """, environment: tokenClientEnvironment(token: "T", broker: broker.path))
        #expect(out == "unavailable|no answer from the broker within 0.5s")
        #expect(Date().timeIntervalSince(started) < 8)
        #expect(broker.request() != nil)
    }

    @Test func missingEnvironmentAndUnreachableBroker() throws {
        let script = """
            import sealbox
            try:
                sealbox.call("weather", {})
            except sealbox.Error as e:
                print(e.code + "|" + e.message)
            """
        #expect(try tokenRunPython(script) == "no_broker|no broker: this run was started without --tools")
        #expect(try tokenRunPython(script, environment: tokenClientEnvironment(token: "T")) == "no_broker|no broker: this run was started without --tools")
        let unreachable = try tokenRunPython(script, environment: tokenClientEnvironment(token: "T", broker: "/nonexistent/broker.sock"))
        #expect(unreachable.hasPrefix("unavailable|cannot talk to the broker at /nonexistent/broker.sock"))
    }

    // MARK: sealbox-call

    private var sealboxCall: String { tokenClientDirectory + "/sealbox-call" }

    @Test func sealboxCallPrintsResultAndParsesValues() throws {
        let broker = try TokenFakeBroker.start(answer: Self.okAnswer)
        let out = try tokenRunProcess(sealboxCall, [
            "weather", "city=Oslo", "n=2", "ratio=0.5", "--key", "K1", "flag=true", "none=null", #"obj={"a":1}"#, "list=[1,2]",
            #"quoted="42""#, "text=hello world", "--fresh", "eq=a=b", "empty=", "nan=NaN", "neg=-7",
        ], environment: tokenClientEnvironment(token: "TOK", broker: broker.path))
        #expect(out.status == 0, "\(out.stderr)")
        #expect(out.stderr.isEmpty)
        let printed = try tokenJSONObject(out.stdout)
        #expect(printed["city"] as? String == "Oslo")
        #expect(printed["temp"] as? Double == -3.5)

        let sent = try tokenJSONObject(try #require(broker.request()))
        #expect(sent["token"] as? String == "TOK")
        #expect(sent["tool"] as? String == "weather")
        #expect(sent["key"] as? String == "K1")
        #expect(sent["fresh"] as? Bool == true)
        let args = try #require(sent["args"] as? [String: Any])
        #expect(args["city"] as? String == "Oslo")
        #expect(args["n"] as? Int == 2)
        #expect(args["ratio"] as? Double == 0.5)
        #expect(args["flag"] as? Bool == true)
        #expect(args["none"] is NSNull)
        #expect((args["obj"] as? [String: Any])?["a"] as? Int == 1)
        #expect((args["list"] as? [Any])?.count == 2)
        #expect(args["quoted"] as? String == "42")
        #expect(args["text"] as? String == "hello world")
        #expect(args["eq"] as? String == "a=b")
        #expect(args["empty"] as? String == "")
        #expect(args["nan"] as? String == "NaN")
        #expect(args["neg"] as? Int == -7)
        #expect(args.count == 13)
    }

    @Test func sealboxCallJSONMode() throws {
        let broker = try TokenFakeBroker.start(answer: Self.okAnswer)
        let out = try tokenRunProcess(sealboxCall, ["weather", "--json"], environment: tokenClientEnvironment(token: "TOK", broker: broker.path))
        #expect(out.status == 0)
        #expect(out.stdout.filter { $0 == "\n" }.count == 1)
        let answer = try tokenJSONObject(out.stdout)
        #expect(answer["ok"] as? Bool == true)
        #expect((answer["result"] as? [String: Any])?["city"] as? String == "Oslo")
        #expect((answer["effect"] as? [String: Any])?["seq"] as? Int == 17)
        let sent = try tokenJSONObject(try #require(broker.request()))
        #expect(sent["key"] == nil && sent["fresh"] as? Bool == false)
    }

    @Test(arguments: [false, true])
    func sealboxCallBrokerRefusal(json: Bool) throws {
        let broker = try TokenFakeBroker.start(answer: #"{"ok":false,"error":{"code":"denied","message":"tool \"rm\" is not granted by this token"}}"# + "\n")
        let out = try tokenRunProcess(sealboxCall, ["rm", "path=/"] + (json ? ["--json"] : []),
                                 environment: tokenClientEnvironment(token: "TOK", broker: broker.path))
        #expect(out.status == 1)
        #expect(out.stderr == "sealbox-call: denied: tool \"rm\" is not granted by this token\n")
        if json {
            let answer = try tokenJSONObject(out.stdout)
            #expect(answer["ok"] as? Bool == false)
            #expect((answer["error"] as? [String: Any])?["code"] as? String == "denied")
        } else {
            #expect(out.stdout.isEmpty)
        }
        _ = broker.request()
    }

    @Test func sealboxCallWithoutBrokerAndBadUsage() throws {
        let noBroker = try tokenRunProcess(sealboxCall, ["weather"], environment: tokenClientEnvironment())
        #expect(noBroker.status == 3)
        #expect(noBroker.stderr == "sealbox-call: no_broker: no broker: this run was started without --tools\n")
        #expect(noBroker.stdout.isEmpty)

        let usage = try tokenRunProcess(sealboxCall, ["weather", "novalue"], environment: tokenClientEnvironment(token: "T", broker: "/nonexistent"))
        #expect(usage.status == 2)
        #expect(usage.stderr.contains("sealbox-call: usage: expected NAME=VALUE, got 'novalue'"))
        let noTool = try tokenRunProcess(sealboxCall, [], environment: tokenClientEnvironment())
        #expect(noTool.status == 2)
        #expect(noTool.stderr.contains("sealbox-call: usage:"))
    }

    /// The client must keep working on the oldest Python it promises (3.7), where one exists.
    @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: tokenOldPython)))
    func worksOnPython37() throws {
        let m = mint()
        let broker = try TokenFakeBroker.start(answer: Self.okAnswer)
        let out = try tokenRunPython("""
            import sys, sealbox
            assert sys.version_info[:2] == (3, 7), sys.version
            t = sealbox.attenuate(sys.stdin.read().strip(), tools=["beta"], expires_in=30)
            print(sealbox.call("weather", {"x": 1})["city"])
            print(t)
            """, environment: tokenClientEnvironment(token: "T", broker: broker.path), stdin: m.token, python: tokenOldPython)
        let lines = out.split(separator: "\n").map(String.init)
        #expect(lines.first == "Oslo")
        #expect(try verify(m.authority, try #require(lines.last), "beta").tools == ["beta"])
        _ = broker.request()
    }
}

let tokenOldPython = "/root/.pyenv/versions/3.7.16/bin/python3"
