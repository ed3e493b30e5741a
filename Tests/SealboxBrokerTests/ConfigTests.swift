import Foundation
import SealboxTestSupport
import Testing
@testable import SealboxBroker
import SealboxBase
import SealboxLedger

#if canImport(Glibc)
import Glibc
#endif

private let secretValue = "ghp_SEALBOX-TEST-SECRET-4f9c2a"
private let fileSecretValue = "dnskey-SEALBOX-TEST-SECRET-77aa"

/// The repository root, from this file's path (Tests/SealboxBrokerTests/ConfigTests.swift).
private let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path

@Suite struct ConfigTests {
    // MARK: the example file

    @Test func exampleFileParses() throws {
        let dir = try TemporaryDirectory.make("tools")
        defer { TemporaryDirectory.remove(dir) }
        let keyFile = dir + "/dns.key"
        try Data((fileSecretValue + "\n").utf8).write(to: URL(fileURLWithPath: keyFile))
        chmod(keyFile, 0o600)
        var text = try String(contentsOfFile: packageRoot + "/examples/broker.yaml", encoding: .utf8)
        #expect(text.contains("/etc/sealbox/dns.key"))
        text = text.replacingOccurrences(of: "/etc/sealbox/dns.key", with: keyFile)
        // The example names systemctl; a machine without it still checks the rest of the file.
        if access("/usr/bin/systemctl", X_OK) != 0 { text = text.replacingOccurrences(of: "/usr/bin/systemctl", with: "/bin/true") }
        let examplePath = dir + "/broker.yaml"
        try Data(text.utf8).write(to: URL(fileURLWithPath: examplePath))

        let config = try BrokerConfigLoader.load(path: examplePath, environment: ["GITHUB_TOKEN": secretValue])
        #expect(config.ledgerPath == "/var/lib/sealbox/effects.db")
        #expect(config.secrets.names == ["dns_key", "github_token"])
        #expect(config.secrets.reveal("github_token") == secretValue)
        #expect(config.secrets.reveal("dns_key") == fileSecretValue)  // trailing newline trimmed
        #expect(config.warnings.isEmpty)
        #expect(Set(config.tools.keys) == ["create_issue", "get_issue", "restart_service"])
        // The example spells out the defaults: it must say what the code does.
        #expect(config.limits == BrokerLimits())

        let issue = try #require(config.tools["create_issue"])
        #expect(issue.effect == .irreversible)
        #expect(issue.approval == .auto)
        #expect(issue.timeoutMs == 10_000)
        #expect(issue.maxResponseBytes == 1 << 20)
        #expect(issue.args["owner"]?.pattern == "^[A-Za-z0-9_.-]{1,100}$")
        #expect(issue.args["title"]?.maxLength == 256)
        #expect(issue.args["labels"]?.type == .array)
        #expect(issue.args["labels"]?.optional == true)
        guard case .http(let http) = issue.kind else { Issue.record("create_issue is not http"); return }
        #expect(http.method == "POST")
        #expect(http.scheme == "https")
        #expect(http.host.literalText == "api.github.com")
        #expect(http.path.source == "/repos/{owner}/{repo}/issues")
        #expect(http.allowHosts == ["api.github.com"])
        #expect(http.body == .json)
        #expect(http.headers.first { $0.name == "Authorization" }?.value.secretNames == ["github_token"])
        #expect(http.responseHeaders.contains("x-ratelimit-remaining"))
        #expect(http.idempotencyHeader == "Idempotency-Key")

        let runner = ToolRunner(config: config)
        let target = try runner.describeTarget(issue, args: ["owner": .string("a"), "repo": .string("b"), "title": .string("t")])
        #expect(target == "POST https://api.github.com/repos/a/b/issues")

        let getIssue = try #require(config.tools["get_issue"])
        #expect(getIssue.effect == .read)
        #expect(getIssue.approval == .auto)
        #expect(getIssue.timeoutMs == 30_000)  // default

        let restart = try #require(config.tools["restart_service"])
        #expect(restart.effect == .idempotent)
        #expect(restart.approval == .human)
        guard case .command(let command) = restart.kind else { Issue.record("restart_service is not a command"); return }
        #expect(command.argv.map(\.source) == [access("/usr/bin/systemctl", X_OK) == 0 ? "/usr/bin/systemctl" : "/bin/true", "restart", "{service}"])
        #expect(command.env.map(\.name) == ["API_KEY"])
        #expect(command.workingDirectory == "/")
        let restartTarget = try runner.describeTarget(restart, args: ["service": .string("nginx")])
        #expect(restartTarget.hasSuffix(" restart nginx"))
    }

    @Test func loadReportsAMissingFile() {
        #expect(throws: ConfigError("/nonexistent/broker.yaml: cannot read the config file: No such file or directory")) {
            try BrokerConfigLoader.load(path: "/nonexistent/broker.yaml", environment: [:])
        }
    }

    // MARK: bad configs, exact messages

    static let badConfigs: [(String, String, String)] = [
        ("placeholder typo", """
        tools:
          create_issue:
            kind: http
            method: POST
            url: "https://api.github.com/repos/{owner}/{repoo}/issues"
            allow_hosts: [api.github.com]
            args: { owner: string, repo: string }
            effect: irreversible
        """, "test.yaml:5: tools.create_issue.url: placeholder {repoo} is not a declared argument"),

        ("env secret not set", """
        secrets:
          github_token: { env: GITHUB_TOKEN }
        """, "test.yaml:2: secrets.github_token: environment variable GITHUB_TOKEN is not set"),

        ("unknown effect", """
        tools:
          x:
            kind: command
            argv: [/bin/true]
            effect: sometimes
        """, "test.yaml:5: tools.x.effect: unknown effect class \"sometimes\" (read, idempotent, irreversible, hybrid)"),

        ("missing effect", """
        tools:
          x:
            kind: command
            argv: [/bin/true]
        """, "test.yaml:3: tools.x: missing required key \"effect\" (read, idempotent, irreversible, hybrid)"),

        ("unknown approval", """
        tools:
          x: { kind: command, argv: [/bin/true], effect: read, approval: maybe }
        """, "test.yaml:2: tools.x.approval: unknown approval \"maybe\" (auto, human)"),

        ("unknown secret in header", """
        secrets: { github_token: { env: K } }
        tools:
          x:
            kind: http
            method: GET
            url: https://api.github.com/user
            allow_hosts: [api.github.com]
            headers:
              Authorization: "Bearer {secret:gh}"
            effect: read
        """, "test.yaml:9: tools.x.headers.Authorization: unknown secret \"gh\""),

        ("relative program", """
        tools:
          x:
            kind: command
            argv: [systemctl, restart, nginx]
            effect: idempotent
        """, "test.yaml:4: tools.x.argv[0]: the program must be an absolute path, got \"systemctl\""),

        ("program missing", """
        tools:
          x:
            kind: command
            argv: [/nonexistent/bin/tool]
            effect: idempotent
        """, "test.yaml:4: tools.x.argv[0]: /nonexistent/bin/tool does not exist"),

        ("placeholder in program", """
        tools:
          x:
            kind: command
            argv: ["/usr/bin/{prog}"]
            args: { prog: string }
            effect: idempotent
        """, "test.yaml:4: tools.x.argv[0]: the program path must not contain placeholders"),

        ("secret in argv", """
        secrets: { k: { env: K } }
        tools:
          x:
            kind: command
            argv: [/bin/echo, "{secret:k}"]
            effect: read
        """, "test.yaml:5: tools.x.argv[1]: secrets may not be placed in argv (any local user can read a process's arguments); pass them in env"),

        ("unknown kind", """
        tools:
          x: { kind: ftp, effect: read }
        """, "test.yaml:2: tools.x.kind: unknown kind \"ftp\" (http, command)"),

        ("unknown key", """
        tools:
          x:
            kind: http
            metod: GET
        """, "test.yaml:4: tools.x: unknown key \"metod\" for an http tool (expected one of: kind, description, effect, approval, args, timeout, max_response_bytes, method, url, allow_hosts, allow_private_networks, headers, body, response_headers, idempotency_header)"),

        ("unknown top-level key", """
        ledger: /tmp/l.sqlite
        tool: {}
        """, "test.yaml:2: unknown key \"tool\" (expected one of: ledger, secrets, tools, limits)"),

        ("timeout too long", """
        tools:
          x: { kind: command, argv: [/bin/true], effect: read, timeout: 11m }
        """, "test.yaml:2: tools.x.timeout: 11m is more than the maximum 10m"),

        ("bad timeout", """
        tools:
          x: { kind: command, argv: [/bin/true], effect: read, timeout: soon }
        """, "test.yaml:2: tools.x.timeout: invalid duration \"soon\" (e.g. 500ms, 10s, 2m)"),

        ("bad size", """
        tools:
          x: { kind: command, argv: [/bin/true], effect: read, max_response_bytes: lots }
        """, "test.yaml:2: tools.x.max_response_bytes: invalid size \"lots\" (e.g. 64K, 1M)"),

        ("host not allowed", """
        tools:
          x:
            kind: http
            method: GET
            url: https://evil.example/steal
            allow_hosts: [api.github.com]
            effect: read
        """, "test.yaml:5: tools.x.url: host evil.example is not in allow_hosts"),

        ("no allow_hosts", """
        tools:
          x:
            kind: http
            method: GET
            url: https://api.github.com/user
            effect: read
        """, "test.yaml:3: tools.x: missing required key \"allow_hosts\" (the hosts this tool may reach)"),

        ("not http", """
        tools:
          x: { kind: http, method: GET, url: "ftp://h/x", allow_hosts: [h], effect: read }
        """, "test.yaml:2: tools.x.url: must start with https:// or http://"),

        ("secret in url path", """
        secrets: { k: { env: K } }
        tools:
          x: { kind: http, method: GET, url: "https://h/{secret:k}/x", allow_hosts: [h], effect: read }
        """, "test.yaml:3: tools.x.url: secrets may appear only in the query string of a URL (or in headers)"),

        ("space in the URL", """
        tools:
          x: { kind: http, method: GET, url: "https://h/a b", allow_hosts: [h], effect: read }
        """, "test.yaml:2: tools.x.url: not a valid URL (percent-encode spaces and other special characters in the template)"),

        ("null tool", """
        tools:
          x:
          kind: command
        """, "test.yaml:2: tools.x: expected a mapping, got nothing"),

        ("device as a secret file", """
        secrets:
          k: { file: /dev/null }
        """, "test.yaml:2: secrets.k: cannot read /dev/null: not a regular file"),

        ("json body on GET", """
        tools:
          x: { kind: http, method: GET, url: "https://h/x", allow_hosts: [h], effect: read, body: json }
        """, "test.yaml:2: tools.x.body: a GET request cannot carry a JSON body (use query or none)"),

        ("unused argument with body none", """
        tools:
          x:
            kind: http
            method: POST
            url: "https://h/x"
            allow_hosts: [h]
            body: none
            args:
              extra: string
            effect: idempotent
        """, "test.yaml:9: tools.x.args.extra: argument is not used in the URL or headers (body: none sends nothing else)"),

        ("unused command argument", """
        tools:
          x:
            kind: command
            argv: [/bin/echo, hi]
            args:
              who: string
            effect: read
        """, "test.yaml:6: tools.x.args.who: argument is not used in argv or env"),

        ("array placeholder", """
        tools:
          x:
            kind: command
            argv: [/bin/echo, "{items}"]
            args: { items: array }
            effect: read
        """, "test.yaml:4: tools.x.argv[1]: placeholder {items} refers to an array argument; only string, integer, number and boolean arguments can be placed in argv"),

        ("optional placeholder", """
        tools:
          x:
            kind: command
            argv: [/bin/echo, "{who}"]
            args: { who: { type: string, optional: true } }
            effect: read
        """, "test.yaml:4: tools.x.argv[1]: placeholder {who} refers to an optional argument without a default"),

        ("unknown argument type", """
        tools:
          x:
            kind: command
            argv: [/bin/echo, "{who}"]
            args: { who: { type: text } }
            effect: read
        """, "test.yaml:5: tools.x.args.who.type: unknown argument type \"text\" (string, integer, number, boolean, array, object)"),

        ("pattern on an integer", """
        tools:
          x:
            kind: command
            argv: [/bin/echo, "{n}"]
            args:
              n: { type: integer, pattern: "^[0-9]+$" }
            effect: read
        """, "test.yaml:6: tools.x.args.n.pattern: applies only to string arguments"),

        ("default breaks its own spec", """
        tools:
          x:
            kind: command
            argv: [/bin/echo, "{who}"]
            args:
              who: { type: string, max_length: 3, default: "everyone" }
            effect: read
        """, "test.yaml:6: tools.x.args.who.default: 8 characters, more than max_length 3"),

        ("unterminated placeholder", """
        tools:
          x:
            kind: command
            argv: [/bin/echo, "{who"]
            args: { who: string }
            effect: read
        """, "test.yaml:4: tools.x.argv[1]: unterminated placeholder in \"{who\" (write {{ for a literal brace)"),

        ("secret with two sources", """
        secrets:
          k: { env: K, file: /tmp/k }
        """, "test.yaml:2: secrets.k: expected exactly one of env: VARIABLE or file: PATH"),

        ("secret file missing", """
        secrets:
          k: { file: /nonexistent/sealbox.key }
        """, "test.yaml:2: secrets.k: cannot read /nonexistent/sealbox.key: No such file or directory"),

        ("reserved header", """
        tools:
          x:
            kind: http
            method: GET
            url: https://h/x
            allow_hosts: [h]
            headers: { Host: other }
            effect: read
        """, "test.yaml:7: tools.x.headers.Host: this header is set by the HTTP client and cannot be configured"),

        ("not a mapping", """
        tools:
          - x
        """, "test.yaml:2: tools: expected a mapping, got a list"),

        ("empty", "", "test.yaml: the config is empty"),
    ]

    @Test(arguments: badConfigs.indices)
    func badConfigIsRefusedWithAnExactMessage(_ index: Int) {
        let (name, yaml, expected) = Self.badConfigs[index]
        let message = ToolTestSupport.configError(yaml, environment: ["K": secretValue])
        #expect(message == expected, "\(name)")
    }

    @Test func invalidYAMLNamesTheLine() throws {
        let message = try #require(ToolTestSupport.configError("tools:\n  x: [unclosed\n  y: 1\n"))
        #expect(message.hasPrefix("test.yaml:"), "\(message)")
        #expect(message.contains("invalid YAML"), "\(message)")
    }

    @Test func duplicateKeysAreRefused() throws {
        let message = try #require(ToolTestSupport.configError("""
        tools:
          x: { kind: command, argv: [/bin/true], effect: read }
          x: { kind: command, argv: [/bin/true], effect: read }
        """))
        #expect(message.hasPrefix("test.yaml:"), "\(message)")
        #expect(message.contains("duplicate key"), "\(message)")
        #expect(message.contains("\"x\""), "\(message)")
    }

    // MARK: secrets

    @Test func secretFileIsTrimmedAndWarnedAboutWhenReadableByOthers() throws {
        let dir = try TemporaryDirectory.make("tools")
        defer { TemporaryDirectory.remove(dir) }
        let loose = dir + "/loose.key"
        let tight = dir + "/tight.key"
        try Data("one\r\n\n".utf8).write(to: URL(fileURLWithPath: loose))
        try Data("two\n".utf8).write(to: URL(fileURLWithPath: tight))
        chmod(loose, 0o644)
        chmod(tight, 0o600)
        let config = try ToolTestSupport.config("""
        secrets:
          a: { file: loose.key }
          b: { file: \(tight) }
        """, baseDirectory: dir)
        #expect(config.secrets.reveal("a") == "one")
        #expect(config.secrets.reveal("b") == "two")
        #expect(config.warnings == [
            "test.yaml: secrets.a: \(loose) is readable by group or others (mode 644); chmod 600 it",
            // Three-letter values cannot be redacted from answers without redacting words.
            "test.yaml: secrets.a: the value is shorter than 6 characters, too short to be redacted from tool answers",
            "test.yaml: secrets.b: the value is shorter than 6 characters, too short to be redacted from tool answers",
        ])
    }

    // MARK: limits

    @Test func limitsHaveDefaultsAndAreReadPerScope() throws {
        #expect(try ToolTestSupport.config("tools: {}").limits == BrokerLimits())
        let config = try ToolTestSupport.config("""
        limits:
          per_run: { lines_per_second: 50, bytes_per_second: 2M, calls_per_second: 5, calls: 100, effect_bytes: 1G, pending_approvals: 3 }
          per_tenant: { calls: 1000 }
        """)
        #expect(config.limits.perRun == BrokerLimits.Scope(linesPerSecond: 50, bytesPerSecond: 2 << 20, callsPerSecond: 5, calls: 100,
                                                           effectBytes: 1 << 30, pendingApprovals: 3))
        var tenant = BrokerLimits.defaultPerTenant
        tenant.calls = 1000
        #expect(config.limits.perTenant == tenant)
        #expect(ToolTestSupport.configError("limits: { per_run: { calls: 0 } }") == "test.yaml:1: limits.per_run.calls: expected an integer of at least 1, got \"0\"")
        #expect(ToolTestSupport.configError("limits: { per_run: { bytes_per_second: 64K } }")
                == "test.yaml:1: limits.per_run.bytes_per_second: must be at least 1M (the longest request line)")
        #expect(ToolTestSupport.configError("limits: { per_host: {} }")?.contains("unknown key \"per_host\" (expected one of: per_run, per_tenant)") == true)
        #expect(ToolTestSupport.configError("limits: { per_run: { speed: 1 } }")?.contains("unknown key \"speed\"") == true)
    }

    /// A host chosen by the jail under a wildcard is a name the broker resolves for it.
    @Test func jailChosenHostsUnderAWildcardAreWarnedAbout() throws {
        func tool(_ region: String) throws -> BrokerConfig {
            try ToolTestSupport.config("""
            tools:
              get:
                kind: http
                method: GET
                url: "https://{region}.api.example.com/v1"
                allow_hosts: ["*.example.com"]
                args: { region: \(region) }
                effect: read
            """)
        }
        let open = try tool(#"{ type: string, pattern: "^[a-z0-9-]{1,63}$" }"#)
        #expect(open.warnings.count == 1 && open.warnings[0].contains("argument {region} under a wildcard allow_hosts"), "\(open.warnings)")
        let listed = try tool("{ type: string, enum: [eu, us] }")
        #expect(listed.warnings.isEmpty, "\(listed.warnings)")
    }

    @Test func emptySecretsAreRefused() throws {
        let dir = try TemporaryDirectory.make("tools")
        defer { TemporaryDirectory.remove(dir) }
        try Data("\n".utf8).write(to: URL(fileURLWithPath: dir + "/empty.key"))
        #expect(ToolTestSupport.configError("secrets: { k: { file: empty.key } }", baseDirectory: dir)
                == "test.yaml:1: secrets.k: \(dir)/empty.key is empty")
        #expect(ToolTestSupport.configError("secrets: { k: { env: K } }", environment: ["K": ""])
                == "test.yaml:1: secrets.k: environment variable K is empty")
    }

    @Test func secretValuesNeverShow() async throws {
        let port = try WorldServer.closedPort()
        let config = try ToolTestSupport.config("""
        secrets:
          token: { env: TOKEN }
        tools:
          t:
            kind: http
            method: GET
            url: "http://127.0.0.1:\(port)/x?key={secret:token}"
            allow_hosts: [127.0.0.1]
            headers: { Authorization: "Bearer {secret:token}" }
            effect: read
            timeout: 2s
        """, environment: ["TOKEN": secretValue])
        let store = config.secrets
        #expect(store.reveal("token") == secretValue)

        var dumped = ""
        dump(store, to: &dumped)
        var dumpedConfig = ""
        dump(config, to: &dumpedConfig)
        let renderings = [
            store.description, store.debugDescription, String(describing: store), String(reflecting: store),
            "\(store)", dumped, String(describing: Mirror(reflecting: store).children.map { "\($0.label ?? ""): \($0.value)" }),
            String(describing: config), String(reflecting: config), dumpedConfig,
        ]
        for text in renderings {
            #expect(!text.contains(secretValue), "\(text)")
        }
        #expect(store.description.contains("token"))

        // Errors and targets of calls that use the secret.
        let runner = ToolRunner(config: config)
        let tool = try #require(config.tools["t"])
        let target = try runner.describeTarget(tool, args: [:])
        #expect(target == "GET http://127.0.0.1:\(port)/x?key={secret:token}")
        #expect(!target.contains(secretValue))
        let failure = await ToolTestSupport.toolError { () async throws(ToolError) in
            try await runner.run(tool, args: [:], idempotencyKey: "k")
        }
        let error = try #require(failure)
        #expect(error.code == .toolFailed)
        #expect(!error.message.contains(secretValue), "\(error.message)")
        #expect(!String(describing: error).contains(secretValue))

        // Config errors about a secret name it, never show it.
        let multiline = "line1\nline2-\(secretValue)"
        let message = try #require(ToolTestSupport.configError("""
        secrets: { k: { env: K } }
        tools:
          t:
            kind: http
            method: GET
            url: https://h/x
            allow_hosts: [h]
            headers: { X-Key: "{secret:k}" }
            effect: read
        """, environment: ["K": multiline]))
        #expect(message == "test.yaml:8: tools.t.headers.X-Key: secret \"k\" contains a line break or NUL and cannot go in a header")
        #expect(!message.contains(secretValue))
    }

    // MARK: smaller rules

    @Test func relativePathsResolveAgainstTheConfigDirectory() throws {
        let config = try ToolTestSupport.config("ledger: data/ledger.sqlite", baseDirectory: "/srv/sealbox")
        #expect(config.ledgerPath == "/srv/sealbox/data/ledger.sqlite")
        #expect(config.tools.isEmpty)
    }

    @Test func defaultsAndShorthands() throws {
        let config = try ToolTestSupport.config("""
        tools:
          list:
            kind: http
            method: get
            url: "https://{region}.api.example.com/items?per_page=100"
            allow_hosts: ["*.api.example.com"]
            args:
              region: { type: string, default: eu }
              q: string
            effect: read
        """)
        let tool = try #require(config.tools["list"])
        #expect(tool.approval == .auto)
        #expect(tool.timeoutMs == 30_000)
        #expect(tool.maxResponseBytes == 1_048_576)
        #expect(tool.args["q"] == ArgumentSpec(name: "q", type: .string))
        #expect(tool.args["region"]?.optional == true)
        guard case .http(let spec) = tool.kind else { Issue.record("not http"); return }
        #expect(spec.method == "GET")
        #expect(spec.body == .query)
        #expect(spec.port == nil)
        #expect(spec.query?.source == "per_page=100")
        let runner = ToolRunner(config: config)
        #expect(try runner.describeTarget(tool, args: ["q": .string("a b")])
                == "GET https://eu.api.example.com/items?per_page=100&q=a%20b")
    }

    @Test func unitsParse() {
        #expect(DurationText.milliseconds("500ms") == 500)
        #expect(DurationText.milliseconds("10s") == 10_000)
        #expect(DurationText.milliseconds("1.5s") == 1500)
        #expect(DurationText.milliseconds("2m") == 120_000)
        #expect(DurationText.milliseconds("7") == 7000)
        #expect(DurationText.milliseconds("x") == nil)
        #expect(ByteSize.parse("1M", below: 1e15) == 1 << 20)
        #expect(ByteSize.parse("64K", below: 1e15) == 65536)
        #expect(ByteSize.parse("512KiB", below: 1e15) == 512 << 10)
        #expect(ByteSize.parse("100", below: 1e15) == 100)
        #expect(ByteSize.parse("1Q", below: 1e15) == nil)
    }

    @Test func templatesParse() throws {
        let t = try ToolTemplate.parse("Bearer {secret:tok} for {user} {{literal}}")
        #expect(t.parts == [.literal("Bearer "), .secret("tok"), .literal(" for "), .argument("user"), .literal(" {literal}")])
        #expect(throws: ConfigError.self) { try ToolTemplate.parse("{not valid}") }
        #expect(throws: ConfigError.self) { try ToolTemplate.parse("oops}") }
    }

    @Test func hostPatterns() {
        let allow = ["api.github.com", "*.example.com"]
        #expect(HTTPToolURL.hostAllowed("api.github.com", allow))
        #expect(HTTPToolURL.hostAllowed("API.GitHub.com", allow))
        #expect(HTTPToolURL.hostAllowed("a.example.com", allow))
        #expect(HTTPToolURL.hostAllowed("a.b.example.com", allow))
        #expect(!HTTPToolURL.hostAllowed("example.com", allow))
        #expect(!HTTPToolURL.hostAllowed("evilexample.com", allow))
        #expect(!HTTPToolURL.hostAllowed("api.github.com.evil.net", allow))
    }
}
