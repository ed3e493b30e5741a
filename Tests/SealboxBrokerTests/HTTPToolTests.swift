import Foundation
import SealboxTestSupport
import Testing
@testable import SealboxBroker
import SealboxLedger
import SealboxBase

private let token = "ghp_HTTP-TOOL-TEST-SECRET-81b3"

/// http tools against a real loopback server (WorldServer).
@Suite struct HTTPToolTests {
    /// A create-issue style tool aimed at `server`.
    static func issueTool(_ server: WorldServer, extra: String = "") throws -> (ToolRunner, ToolDefinition) {
        try ToolTestSupport.tool("create_issue", """
        secrets:
          github_token: { env: GITHUB_TOKEN }
        tools:
          create_issue:
            kind: http
            method: POST
            url: "\(server.baseURL)/repos/{owner}/{repo}/issues"
            allow_hosts: [127.0.0.1]
            headers: { Authorization: "Bearer {secret:github_token}", Accept: application/json }
            body: json
            args:
              owner: { type: string }
              repo: { type: string }
              title: { type: string, max_length: 256 }
              labels: { type: array, optional: true }
              draft: { type: boolean, optional: true }
            effect: irreversible
            timeout: 5s
        \(extra)
        """, environment: ["GITHUB_TOKEN": token])
    }

    @Test func postInjectsTheSecretKeyAndJSONBody() async throws {
        let server = try await WorldServer.start()
        server.route("/repos/octo/hello/issues", method: "POST",
                     .json(#"{"number":42,"title":"Bug"}"#, status: 201, headers: [("ETag", "\"abc123\""), ("X-Other", "1")]))
        let (runner, tool) = try Self.issueTool(server)

        let outcome = try await runner.run(tool, args: [
            "owner": .string("octo"), "repo": .string("hello"), "title": .string("Bug"),
            "labels": .array([.string("p1"), .string("ui")]),
        ], idempotencyKey: "key-0001")

        let seen = try #require(server.requests(to: "/repos/octo/hello/issues").first)
        #expect(server.requests.count == 1)
        #expect(seen.method == "POST")
        #expect(seen.header("Authorization") == "Bearer \(token)")
        #expect(seen.header("Accept") == "application/json")
        #expect(seen.header("Idempotency-Key") == "key-0001")
        #expect(seen.header("Content-Type") == "application/json")
        #expect(seen.header("User-Agent") == "sealbox-broker")
        #expect(seen.bodyJSON == .object(["title": .string("Bug"), "labels": .array([.string("p1"), .string("ui")])]))

        #expect(ToolTestSupport.field(outcome.result, "status") == .number(201))
        #expect(ToolTestSupport.field(outcome.result, "body") == .object(["number": .number(42), "title": .string("Bug")]))
        #expect(ToolTestSupport.field(outcome.result, "body_truncated") == .bool(false))
        #expect(ToolTestSupport.field(outcome.result, "headers", "etag") == .string("\"abc123\""))
        #expect(ToolTestSupport.field(outcome.result, "headers", "x-other") == nil)  // not selected
        #expect(outcome.resourceVersion == "\"abc123\"")
        #expect(outcome.target == "POST \(server.baseURL)/repos/octo/hello/issues")
        #expect(!outcome.target.contains(token))
        #expect(outcome.durationMs > 0)
        #expect(try runner.describeTarget(tool, args: ["owner": .string("octo"), "repo": .string("hello"), "title": .string("Bug")]) == outcome.target)
    }

    @Test func placeholdersArePercentEncodedSoTheyCannotChangeThePath() async throws {
        let server = try await WorldServer.start()
        server.setFallback { _ in .json("{}") }
        let (runner, tool) = try Self.issueTool(server)

        let outcome = try await runner.run(tool, args: [
            "owner": .string("../../admin"), "repo": .string("a b?c=d#e"), "title": .string("t"),
        ], idempotencyKey: "k")
        let seen = try #require(server.requests.first)
        #expect(seen.path == "/repos/..%2F..%2Fadmin/a%20b%3Fc%3Dd%23e/issues")
        #expect(seen.query == nil)
        #expect(outcome.target == "POST \(server.baseURL)/repos/..%2F..%2Fadmin/a%20b%3Fc%3Dd%23e/issues")

        // A value that would be a whole "." or ".." segment is refused; nothing is sent.
        server.resetRecorded()
        for dots in ["..", "."] {
            let failure = await ToolTestSupport.toolError { () async throws(ToolError) in
                try await runner.run(tool, args: ["owner": .string(dots), "repo": .string("r"), "title": .string("t")], idempotencyKey: "k")
            }
            #expect(failure == ToolError(.badRequest, "argument values may not form a \".\" or \"..\" path segment", happened: false))
        }
        #expect(server.requests.isEmpty)
    }

    @Test func hostAllowlistIsEnforcedBeforeAnythingIsSent() async throws {
        let server = try await WorldServer.start()
        let other = try await WorldServer.start(host: "127.0.0.2")
        server.setFallback { _ in .json("{}") }
        other.setFallback { _ in .json("{}") }
        let (runner, tool) = try ToolTestSupport.tool("fetch", """
        tools:
          fetch:
            kind: http
            method: GET
            url: "http://{host}:\(server.port)/status"
            allow_hosts: [127.0.0.1]
            args: { host: string }
            effect: read
        """)
        // Same port on another loopback address: not in allow_hosts.
        let otherTool = try ToolTestSupport.tool("fetch", """
        tools:
          fetch:
            kind: http
            method: GET
            url: "http://{host}:\(other.port)/status"
            allow_hosts: [127.0.0.1]
            args: { host: string }
            effect: read
        """).1
        for (t, host, message) in [
            (otherTool, "127.0.0.2", "host 127.0.0.2 is not in allow_hosts for tool fetch"),
            (tool, "evil.example", "host evil.example is not in allow_hosts for tool fetch"),
            (tool, "127.0.0.1/x", "argument \"host\" is not valid in a host name"),
            (tool, "127.0.0.1@evil.example", "argument \"host\" is not valid in a host name"),
        ] {
            let failure = await ToolTestSupport.toolError { () async throws(ToolError) in
                try await runner.run(t, args: ["host": .string(host)], idempotencyKey: "k")
            }
            #expect(failure == ToolError(.badRequest, message, happened: false), "\(host)")
            #expect(throws: ToolError(.badRequest, message, happened: false)) { try runner.describeTarget(t, args: ["host": .string(host)]) }
        }
        #expect(server.requests.isEmpty)
        #expect(other.requests.isEmpty)

        // The allowed host goes through.
        let ok = try await runner.run(tool, args: ["host": .string("127.0.0.1")], idempotencyKey: "k")
        #expect(ToolTestSupport.field(ok.result, "status") == .number(200))
        #expect(server.count("/status") == 1)
    }

    @Test func readToolsSendArgumentsAsQueryAndNoIdempotencyKey() async throws {
        let server = try await WorldServer.start()
        server.route("/search", .json(#"{"items":[]}"#, headers: [("Last-Modified", "Wed, 21 Oct 2015 07:28:00 GMT")]))
        let (runner, tool) = try ToolTestSupport.tool("search", """
        tools:
          search:
            kind: http
            method: GET
            url: "\(server.baseURL)/search?per_page=5&q={q}"
            allow_hosts: [127.0.0.1]
            args:
              q: string
              tag: { type: array, optional: true }
              page: { type: integer, default: 1 }
              exact: { type: boolean, optional: true }
            effect: read
        """)
        let outcome = try await runner.run(tool, args: [
            "q": .string("a&b=c d"), "tag": .array([.string("x"), .string("y/z")]), "exact": .bool(true),
        ], idempotencyKey: "should-not-be-sent")
        let seen = try #require(server.requests(to: "/search").first)
        #expect(seen.method == "GET")
        #expect(seen.query == "per_page=5&q=a%26b%3Dc%20d&exact=true&page=1&tag=x&tag=y%2Fz")
        #expect(seen.queryItems.map { "\($0.name)=\($0.value)" } == ["per_page=5", "q=a&b=c d", "exact=true", "page=1", "tag=x", "tag=y/z"])
        #expect(seen.header("Idempotency-Key") == nil)
        #expect(seen.body.isEmpty)
        #expect(outcome.resourceVersion == "Wed, 21 Oct 2015 07:28:00 GMT")
    }

    @Test func idempotencyHeaderCanBeRenamedOrDisabled() async throws {
        let server = try await WorldServer.start()
        server.setFallback { _ in .json("{}") }
        let yaml = """
        tools:
          renamed:
            kind: http
            method: PUT
            url: "\(server.baseURL)/renamed"
            allow_hosts: [127.0.0.1]
            idempotency_header: X-Request-Id
            effect: idempotent
          disabled:
            kind: http
            method: DELETE
            url: "\(server.baseURL)/disabled"
            allow_hosts: [127.0.0.1]
            idempotency_header: false
            effect: irreversible
        """
        let config = try ToolTestSupport.config(yaml)
        let runner = ToolRunner(config: config)
        _ = try await runner.run(config.tools["renamed"]!, args: [:], idempotencyKey: "abc")
        _ = try await runner.run(config.tools["disabled"]!, args: [:], idempotencyKey: "abc")
        let renamed = try #require(server.requests(to: "/renamed").first)
        #expect(renamed.header("X-Request-Id") == "abc")
        #expect(renamed.header("Idempotency-Key") == nil)
        #expect(renamed.bodyJSON == .object([:]))
        let disabled = try #require(server.requests(to: "/disabled").first)
        #expect(disabled.method == "DELETE")
        #expect(disabled.header("Idempotency-Key") == nil)
    }

    @Test func nonSuccessStatusIsAnOutcomeNotAnError() async throws {
        let server = try await WorldServer.start()
        server.route("/repos/a/b/issues", .json(#"{"message":"Validation Failed"}"#, status: 422))
        server.route("/repos/a/c/issues", .text("overloaded", status: 503, headers: [("Retry-After", "7")]))
        let (runner, tool) = try Self.issueTool(server)
        let invalid = try await runner.run(tool, args: ["owner": .string("a"), "repo": .string("b"), "title": .string("t")], idempotencyKey: "k1")
        #expect(ToolTestSupport.field(invalid.result, "status") == .number(422))
        #expect(ToolTestSupport.field(invalid.result, "body") == .object(["message": .string("Validation Failed")]))
        let busy = try await runner.run(tool, args: ["owner": .string("a"), "repo": .string("c"), "title": .string("t")], idempotencyKey: "k2")
        #expect(ToolTestSupport.field(busy.result, "status") == .number(503))
        #expect(ToolTestSupport.field(busy.result, "body") == .string("overloaded"))
        #expect(ToolTestSupport.field(busy.result, "headers", "retry-after") == .string("7"))
        let missing = try await runner.run(tool, args: ["owner": .string("a"), "repo": .string("zzz"), "title": .string("t")], idempotencyKey: "k3")
        #expect(ToolTestSupport.field(missing.result, "status") == .number(404))
    }

    @Test func timeoutIsToolFailedWithUnknownOutcome() async throws {
        let server = try await WorldServer.start()
        server.route("/repos/a/slow/issues", .json("{}", delay: .seconds(90)))
        let (runner, tool) = try ToolTestSupport.tool("create_issue", """
        tools:
          create_issue:
            kind: http
            method: POST
            url: "\(server.baseURL)/repos/a/{repo}/issues"
            allow_hosts: [127.0.0.1]
            args: { repo: string }
            effect: irreversible
            timeout: 500ms
        """)
        let start = ContinuousClock.now
        let failure = await ToolTestSupport.toolError { () async throws(ToolError) in
            try await runner.run(tool, args: ["repo": .string("slow")], idempotencyKey: "k")
        }
        let elapsed = ContinuousClock.now - start
        #expect(failure == ToolError(.toolFailed, "POST \(server.baseURL)/repos/a/slow/issues: timed out after 500ms", happened: nil))
        // The server answers after 90 s; ending far earlier shows our deadline fired (loose
        // upper bound: a loaded CI machine delays wake-ups).
        #expect(elapsed >= .milliseconds(450) && elapsed < .seconds(60), "\(elapsed)")
        #expect(server.count("/repos/a/slow/issues") == 1)  // it was sent: the outcome is unknown
    }

    /// Without our watchdog, the HTTP client's own deadline still ends the call, at the timeout.
    @Test func clientDeadlineAloneIsABackstop() async throws {
        let server = try await WorldServer.start()
        server.route("/slow", .json("{}", delay: .seconds(90)))
        let (_, tool) = try ToolTestSupport.tool("slow", """
        tools:
          slow: { kind: http, method: GET, url: "\(server.baseURL)/slow", allow_hosts: [127.0.0.1], effect: read }
        """)
        guard case .http(let spec) = tool.kind else { Issue.record("not http"); return }
        let request = try HTTPToolRequest.build(tool: tool, spec: spec, args: [:], secrets: SecretStore(), idempotencyKey: nil)
        let start = ContinuousClock.now
        do {
            _ = try await HTTPToolTransport.perform(request, timeoutMs: 700, maxBytes: 1024, watchdogSlackMs: 60_000)
            Issue.record("no timeout")
        } catch {
            #expect(error.code == .toolFailed)
            #expect(error.message.hasSuffix("timed out after 700ms"))
            #expect(error.happened == nil)
        }
        let elapsed = ContinuousClock.now - start
        #expect(elapsed >= .milliseconds(650) && elapsed < .seconds(60), "\(elapsed)")
    }

    @Test func connectionRefusedIsToolFailedAndDidNotHappen() async throws {
        let port = try WorldServer.closedPort()
        let (runner, tool) = try ToolTestSupport.tool("create_issue", """
        tools:
          create_issue:
            kind: http
            method: POST
            url: "http://127.0.0.1:\(port)/issues"
            allow_hosts: [127.0.0.1]
            effect: irreversible
            timeout: 5s
        """)
        let failure = await ToolTestSupport.toolError { () async throws(ToolError) in
            try await runner.run(tool, args: [:], idempotencyKey: "k")
        }
        #expect(failure == ToolError(.toolFailed, "POST http://127.0.0.1:\(port)/issues: could not connect to the server", happened: false))
    }

    @Test func redirectToAnotherHostIsNotFollowed() async throws {
        let server = try await WorldServer.start()
        let other = try await WorldServer.start(host: "127.0.0.2")
        other.setFallback { _ in .json(#"{"stolen":true}"#) }
        server.route("/go", .redirect(to: "\(other.baseURL)/landing"))
        server.route("/post", .redirect(to: "/landing", status: 303))
        server.route("/same", .redirect(to: "/landing", status: 301))
        server.route("/landing", .json(#"{"landed":true}"#))
        let config = try ToolTestSupport.config("""
        secrets: { t: { env: T } }
        tools:
          get:
            kind: http
            method: GET
            url: "\(server.baseURL)/{p}"
            allow_hosts: [127.0.0.1, 127.0.0.2]
            headers: { Authorization: "Bearer {secret:t}" }
            args: { p: string }
            effect: read
          post:
            kind: http
            method: POST
            url: "\(server.baseURL)/post"
            allow_hosts: [127.0.0.1]
            effect: irreversible
        """, environment: ["T": token])
        let runner = ToolRunner(config: config)

        let cross = try await runner.run(config.tools["get"]!, args: ["p": .string("go")], idempotencyKey: "k")
        #expect(ToolTestSupport.field(cross.result, "status") == .number(302))
        #expect(ToolTestSupport.field(cross.result, "headers", "location") == .string("\(other.baseURL)/landing"))
        #expect(other.requests.isEmpty)  // even though 127.0.0.2 is allowed, and the secret never went there

        // Same host, GET: followed (with the headers); POST: not followed.
        let same = try await runner.run(config.tools["get"]!, args: ["p": .string("same")], idempotencyKey: "k")
        #expect(ToolTestSupport.field(same.result, "status") == .number(200))
        #expect(ToolTestSupport.field(same.result, "body") == .object(["landed": .bool(true)]))
        #expect(server.requests(to: "/landing").first?.header("Authorization") == "Bearer \(token)")
        let post = try await runner.run(config.tools["post"]!, args: [:], idempotencyKey: "k")
        #expect(ToolTestSupport.field(post.result, "status") == .number(303))
        #expect(server.requests(to: "/landing").count == 1)
    }

    @Test func responseIsCappedAtMaxResponseBytes() async throws {
        let server = try await WorldServer.start()
        server.route("/big", .text(String(repeating: "x", count: 500_000)))
        server.route("/bigjson", .json("[" + Array(repeating: "1", count: 100_000).joined(separator: ",") + "]"))
        server.route("/exact", .text(String(repeating: "y", count: 1024)))
        let (runner, tool) = try ToolTestSupport.tool("get", """
        tools:
          get:
            kind: http
            method: GET
            url: "\(server.baseURL)/{p}"
            allow_hosts: [127.0.0.1]
            args: { p: string }
            effect: read
            max_response_bytes: 1K
        """)
        let big = try await runner.run(tool, args: ["p": .string("big")], idempotencyKey: "k")
        #expect(ToolTestSupport.field(big.result, "status") == .number(200))
        #expect(ToolTestSupport.field(big.result, "body") == .string(String(repeating: "x", count: 1024)))
        #expect(ToolTestSupport.field(big.result, "body_truncated") == .bool(true))
        let json = try await runner.run(tool, args: ["p": .string("bigjson")], idempotencyKey: "k")
        #expect(ToolTestSupport.field(json.result, "body_truncated") == .bool(true))
        #expect(ToolTestSupport.field(json.result, "body")?.stringValue?.count == 1024)  // cut JSON stays text
        let exact = try await runner.run(tool, args: ["p": .string("exact")], idempotencyKey: "k")
        #expect(ToolTestSupport.field(exact.result, "body_truncated") == .bool(false))
        #expect(ToolTestSupport.field(exact.result, "body")?.stringValue?.count == 1024)
    }

    @Test func secretInQueryIsSentButNeverShown() async throws {
        let server = try await WorldServer.start()
        server.setFallback { _ in .json("{}") }
        let (runner, tool) = try ToolTestSupport.tool("lookup", """
        secrets: { key: { env: KEY } }
        tools:
          lookup:
            kind: http
            method: GET
            url: "\(server.baseURL)/lookup?api_key={secret:key}&name={name}"
            allow_hosts: [127.0.0.1]
            args: { name: string }
            effect: read
        """, environment: ["KEY": "k&y=\(token)"])
        let outcome = try await runner.run(tool, args: ["name": .string("n")], idempotencyKey: "k")
        #expect(outcome.target == "GET \(server.baseURL)/lookup?api_key={secret:key}&name=n")
        let seen = try #require(server.requests.first)
        #expect(seen.queryItems.first { $0.name == "api_key" }?.value == "k&y=\(token)")
    }

    @Test func headerArgumentsCannotInjectLines() async throws {
        let server = try await WorldServer.start()
        let (runner, tool) = try ToolTestSupport.tool("put", """
        tools:
          put:
            kind: http
            method: PUT
            url: "\(server.baseURL)/doc"
            allow_hosts: [127.0.0.1]
            headers: { If-Match: "{etag}" }
            args: { etag: string, text: string }
            effect: hybrid
        """)
        let failure = await ToolTestSupport.toolError { () async throws(ToolError) in
            try await runner.run(tool, args: ["etag": .string("\"v1\"\r\nX-Evil: 1"), "text": .string("t")], idempotencyKey: "k")
        }
        #expect(failure == ToolError(.badRequest, "argument \"etag\" contains a control character and cannot go in header If-Match", happened: false))
        // Every control character, not only CR, LF and NUL (an escape, a backspace, DEL).
        for evil in ["v\u{1b}[2J", "v\u{08}", "v\u{7f}", "v\u{85}"] {
            let refused = await ToolTestSupport.toolError { () async throws(ToolError) in
                try await runner.run(tool, args: ["etag": .string(evil), "text": .string("t")], idempotencyKey: "k")
            }
            #expect(refused?.code == .badRequest, "\(evil.debugDescription)")
        }
        #expect(server.requests.isEmpty)

        server.setFallback { _ in .json("{}", headers: [("ETag", "\"v2\"")]) }
        let ok = try await runner.run(tool, args: ["etag": .string("\"v1\""), "text": .string("t")], idempotencyKey: "k")
        #expect(server.requests.first?.header("If-Match") == "\"v1\"")
        #expect(server.requests.first?.bodyJSON == .object(["text": .string("t")]))
        #expect(ok.resourceVersion == "\"v2\"")
    }

    @Test func concurrentCallsDoNotMixUp() async throws {
        let server = try await WorldServer.start()
        server.setFallback { request in .json(#"{"path":"\#(request.path)"}"#) }
        let (runner, tool) = try ToolTestSupport.tool("get", """
        tools:
          get: { kind: http, method: GET, url: "\(server.baseURL)/item/{n}", allow_hosts: [127.0.0.1], args: { n: integer }, effect: read }
        """)
        try await withThrowingTaskGroup(of: (Int, JSONValue?).self) { group in
            for n in 0..<16 {
                group.addTask {
                    let o = try await runner.run(tool, args: ["n": .number(Double(n))], idempotencyKey: "k\(n)")
                    return (n, ToolTestSupport.field(o.result, "body"))
                }
            }
            for try await (n, body) in group {
                #expect(body == .object(["path": .string("/item/\(n)")]))
            }
        }
        #expect(server.requests.count == 16)
    }
}

/// The egress guard: a host name that resolves inward (loopback, private, link-local: the cloud
/// metadata service) is refused unless the config names that address or range, or allows
/// private networks; the connection goes to the address that was checked.
@Suite struct EgressGuardTests {
    @Test func addressesAreClassified() throws {
        let guardian = EgressGuard(allowHosts: ["api.example.com", "10.0.0.0/8", "192.168.1.7"], allowPrivateNetworks: false)
        func refusal(_ text: String) -> String? { guardian.refusal(IPRange.parse(text)!) }
        #expect(refusal("169.254.169.254") == "a link-local (cloud metadata) address")
        #expect(refusal("127.0.0.1") == "a loopback address")
        #expect(refusal("::1") == "a loopback address")
        #expect(refusal("::ffff:127.0.0.1") == "a loopback address")
        #expect(refusal("172.20.0.1") == "a private address")
        #expect(refusal("fd00:ec2::254") == "a private (unique local) address")
        #expect(refusal("0.0.0.0") == "an unspecified address")
        #expect(refusal("100.64.1.1") != nil && refusal("fe80::1") != nil && refusal("224.0.0.1") != nil)
        // Public addresses, and what the config names.
        #expect(refusal("8.8.8.8") == nil && refusal("2001:4860:4860::8888") == nil && refusal("172.32.0.1") == nil)
        #expect(refusal("10.200.3.4") == nil && refusal("192.168.1.7") == nil && refusal("192.168.1.8") != nil)
        #expect(EgressGuard(allowHosts: [], allowPrivateNetworks: true).refusal(IPRange.parse("127.0.0.1")!) == nil)
        #expect(IPRange("10.0.0.0/33") == nil && IPRange("example.com") == nil && IPRange("[::1]/128") != nil)
    }

    @Test func aNameThatResolvesToLoopbackIsRefusedUnlessNamed() async throws {
        let server = try await WorldServer.start()
        server.route("/x", .json(#"{"ok":true}"#))
        func tool(_ extra: String) throws -> (ToolRunner, ToolDefinition) {
            try ToolTestSupport.tool("get", """
            tools:
              get: { kind: http, method: GET, url: "http://localhost:\(server.port)/x", effect: read, \(extra) }
            """)
        }
        let (refusedRunner, refused) = try tool("allow_hosts: [localhost]")
        let failure = await ToolTestSupport.toolError { () async throws(ToolError) in
            try await refusedRunner.run(refused, args: [:], idempotencyKey: "k")
        }
        #expect(failure?.message.contains("refused: localhost resolves to 127.0.0.1, a loopback address; name the address or its range in allow_hosts") == true, "\(String(describing: failure))")
        #expect(failure?.happened == false)
        #expect(server.count("/x") == 0)
        // Naming the address (or its range), or allowing private networks, lets it through.
        for extra in ["allow_hosts: [localhost, 127.0.0.1]", #"allow_hosts: [localhost, "127.0.0.0/8"]"#, "allow_hosts: [localhost], allow_private_networks: true"] {
            let (runner, allowed) = try tool(extra)
            let outcome = try await runner.run(allowed, args: [:], idempotencyKey: "k")
            guard let status = outcome.result["status"]?.doubleValue else {
                Issue.record("\(extra): \(outcome.result)")
                continue
            }
            #expect(status == 200, "\(extra)")
        }
        #expect(server.count("/x") == 3)
    }

    @Test func rangesInAllowHostsAreChecked() {
        #expect(ToolTestSupport.configError(#"tools: { x: { kind: http, method: GET, url: "https://h/x", allow_hosts: [h, "10.0.0.0/33"], effect: read } }"#)?
            .contains("invalid host \"10.0.0.0/33\" (a host name, an IP address, a CIDR range, or *.domain)") == true)
        #expect(ToolTestSupport.configError(#"tools: { x: { kind: http, method: GET, url: "https://h/x", allow_hosts: [h, "10.0.0.0/8"], allow_private_networks: sure, effect: read } }"#)?
            .contains("allow_private_networks") == true)
    }
}
