import Foundation
import Glibc
import SealboxTestSupport
import Testing

extension HostileAPI {
    /// Every byte a tenant sends is hostile: one reading of each body, duplicate members
    /// refused everywhere, names looked up in catalogs and never used as paths, every refusal
    /// a 4xx naming the field, no host path or file content in any answer.
    @Suite("Hostile input")
    struct Inputs {
        /// The hole: JSONSerialization (the check) kept the last of two "profile" members and
        /// JSONDecoder (the use) the first, so a path passed the "name, not a path" check.
        @Test("duplicate members are a 400 naming the field in every body, at any depth")
        func duplicatesEverywhere() async throws {
            let target = Target(server: try await offPool { try ServeProcess() })
            let session = try await target.session()
            let cases: [(String, String, String, String?)] = [
                ("/v1/runs", #"{"language":"python","code":"print(1)","profile":"/etc/shadow","profile":"default"}"#, "profile", nil),
                ("/v1/runs", #"{"language":"python","language":"sh","code":"print(1)"}"#, "language", nil),
                ("/v1/runs", #"{"language":"python","code":"print(1)","limits":{"pids":1,"pids":64}}"#, "limits.pids", nil),
                ("/v1/runs", #"{"language":"python","code":"print(1)","files":[{"name":"a","content":"b","name":"c"}]}"#, "files[0].name", nil),
                ("/v1/runs", #"{"language":"python","code":"print(1)","env":{"A":"1","A":"2"}}"#, "env.A", nil),
                ("/v1/sessions", #"{"workspace_limit_bytes":1048576,"workspace_limit_bytes":2097152}"#, "workspace_limit_bytes", nil),
                ("/v1/sessions/\(session)/fork", #"{"at":"a","at":"b"}"#, "at", nil),
                ("/v1/effects/1/resolve", #"{"happened":true,"happened":false}"#, "happened", target.server.operatorKey),
            ]
            for (path, body, field, key) in cases {
                let answer = try await target.post(path, body, key: key)
                #expect(answer.status == 400, "\(path) \(body): \(answer.status) \(answer.body)")
                #expect(answer.errorField == field, "\(body): \(answer.body)")
                #expect(answer.errorMessage?.contains("duplicate member name") == true, "\(answer.body)")
            }
        }

        /// Without keys, a web page must not reach the API: not under its own name re-pointed
        /// at 127.0.0.1 (DNS rebinding: the browser sends `Host: evil.example`), not by a
        /// cross-site POST to the loopback address (`Origin: http://evil.example`). Clients
        /// that address the server directly pass; with keys, any name passes.
        @Test("--no-auth refuses requests under another host name or from another origin (DNS rebinding)")
        func noAuthRefusesRebinding() async throws {
            let server = try await offPool { try ServeProcess(["--no-auth"]) }
            let port = server.port
            func send(_ method: String, _ path: String, host: String, origin: String? = nil, body: String? = nil) async throws -> RawHTTP.Answer {
                var text = "\(method) \(path) HTTP/1.1\r\nHost: \(host)\r\nConnection: close\r\n"
                if let origin { text += "Origin: \(origin)\r\n" }
                if let body {
                    // MCP's Streamable HTTP asks for both; a run asks for neither (so it does not stream).
                    if path == "/mcp" { text += "Accept: application/json, text/event-stream\r\n" }
                    text += "Content-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)"
                } else {
                    text += "\r\n"
                }
                let request = text
                return try await offPool { try RawHTTP.request(port: port, request) }
            }
            let run = #"{"language":"python","code":"print(42)"}"#
            let initialize = #"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#
            let refused: [(String, String, String, String?, String?)] = [
                ("GET", "/healthz", "evil.example:\(port)", nil, nil),
                ("POST", "/v1/runs", "evil.example:\(port)", nil, run),
                ("POST", "/v1/runs", "EVIL.example.", nil, run),
                ("POST", "/mcp", "evil.example:\(port)", nil, initialize),
                ("POST", "/v1/runs", "127.0.0.1:\(port)", "http://evil.example", run),
                ("POST", "/v1/runs", "127.0.0.1:\(port)", "null", run),
                ("POST", "/v1/runs", "127.0.0.1:\(port)", "http://127.0.0.1:\(port + 1)", run),
                ("POST", "/mcp", "localhost:\(port)", "http://evil.example", initialize),
            ]
            for (method, path, host, origin, body) in refused {
                let answer = try await send(method, path, host: host, origin: origin, body: body)
                #expect(answer.status == 403, "\(method) \(path) Host \(host) Origin \(origin ?? "-"): \(answer.status) \(answer.body)")
                #expect(answer.errorCode == "forbidden_host", "\(answer.body)")
                #expect(!answer.body.lowercased().contains("evil"), "the refusal echoes the header: \(answer.body)")
            }
            let served: [(String, String?, Int)] = [
                ("127.0.0.1:\(port)", nil, 201),
                ("localhost:\(port)", nil, 201),
                ("LOCALHOST.:\(port)", nil, 201),
                ("[::1]:\(port)", nil, 201),
                ("127.0.0.1:\(port)", "http://127.0.0.1:\(port)", 201),
            ]
            for (host, origin, status) in served {
                let answer = try await send("POST", "/v1/runs", host: host, origin: origin, body: run)
                #expect(answer.status == status, "Host \(host) Origin \(origin ?? "-"): \(answer.status) \(answer.body)")
            }
            let mcp = try await send("POST", "/mcp", host: "127.0.0.1:\(port)", body: initialize)
            #expect(mcp.status == 200, "\(mcp.status) \(mcp.body)")
            _ = try await offPool { server.stop() }

            // With keys, the name a client uses is its own business.
            let keyed = Target(server: try await offPool { try ServeProcess() })
            let keyedPort = keyed.port, key = keyed.server.key
            let text = "POST /v1/runs HTTP/1.1\r\nHost: sealbox.internal.example:\(keyedPort)\r\nConnection: close\r\nAuthorization: Bearer \(key)\r\nContent-Type: application/json\r\nContent-Length: \(run.utf8.count)\r\n\r\n\(run)"
            let answer = try await offPool { try RawHTTP.request(port: keyedPort, text) }
            #expect(answer.status == 201, "\(answer.status) \(answer.body)")
        }

        /// A profile is a name in the operator's catalog: a path, a dot, a NUL or a `.json`
        /// suffix is refused before anything is opened; errors quote no host file; a FIFO
        /// named as a profile blocks nothing.
        @Test("profile names: never a path, never a file's content in the answer, never a blocked slot")
        func profilesAreNames() async throws {
            let target = Target(server: try await offPool { try ServeProcess() })
            let dir = try TemporaryDirectory.make("hostile-profiles")
            defer { TemporaryDirectory.remove(dir) }
            // A permissive profile planted where a tenant could put one, and a FIFO.
            try #"{"defaultAction":"SCMP_ACT_ALLOW"}"#.write(toFile: dir + "/planted.json", atomically: true, encoding: .utf8)
            #expect(mkfifo(dir + "/fifo.json", 0o644) == 0)
            let names = ["/etc/shadow", dir + "/planted.json", dir + "/fifo.json", "evil.json", "noext\\u0000.json", "../default",
                         ".", "", "default/", "a b", String(repeating: "x", count: 65)]
            for name in names {
                let began = Date()
                let answer = try await target.run(python: "print(1)", #""profile":"\#(name)""#)
                #expect(answer.status == 400, "\(name): \(answer.status) \(answer.body)")
                #expect(answer.errorField == "profile", "\(name): \(answer.body)")
                #expect(Date().timeIntervalSince(began) < 5, "\(name) took \(Date().timeIntervalSince(began)) s")
                for leak in ["root:", "SCMP_ACT_ALLOW", "/var/lib", target.server.stateDirectory, "unexpected '"] {
                    #expect(!answer.body.contains(leak), "\(name): the answer quotes \(leak): \(answer.body)")
                }
            }
            // A name that is not in the catalog: 400 listing what is offered, no path.
            let unknown = try await target.run(python: "print(1)", #""profile":"nosuch""#)
            #expect(unknown.status == 400 && unknown.errorField == "profile", "\(unknown.body)")
            #expect(unknown.errorMessage?.contains("default") == true && unknown.errorMessage?.contains("/") == false, "\(unknown.body)")
        }

        /// `permissive` allows everything but a deny-list; by default no key may name it. An
        /// operator grants it per key (`keys create --profiles`) or per server (`--profiles`).
        @Test("permissive is refused with 403 unless the key's grant names it; GET /v1/profiles lists what the key may use")
        func permissiveNeedsAGrant() async throws {
            let target = Target(server: try await offPool { try ServeProcess() })
            let refused = try await target.run(python: "print(1)", #""profile":"permissive""#)
            #expect(refused.status == 403 && refused.errorCode == "profile_not_allowed" && refused.errorField == "profile", "\(refused.body)")
            #expect(refused.errorMessage?.contains("\"permissive\"") == true)
            let listed = try await target.get("/v1/profiles")
            let names = (listed.json?["profiles"] as? [[String: Any]])?.compactMap { $0["name"] as? String }
            #expect(names == ["default", "node", "python", "strict"], "\(listed.body)")
            let state = target.server.stateDirectory
            let created = try await CLI.run(["keys", "create", "--state-dir", state, "--tenant", "debug", "--profiles", "all"])
            #expect(created.status == 0, "\(created.stderr)")
            let granted = created.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            let allowed = try await target.run(python: "print('under permissive')", #""profile":"permissive""#, key: granted)
            #expect(allowed.status == 201 && allowed.json?["profile"] as? String == "permissive", "\(allowed.body)")
            #expect(allowed.json?["stdout"] as? String == "under permissive\n")
            let strictOnly = try await CLI.run(["keys", "create", "--state-dir", state, "--tenant", "ci", "--profiles", "strict"])
            let strictKey = strictOnly.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
            let notDefault = try await target.run(python: "print(1)", key: strictKey)
            #expect(notDefault.status == 403 && notDefault.errorField == "profile", "a key granted strict only may not fall back to default: \(notDefault.body)")
        }

        /// Everything in the run request that names or carries something is checked, with the
        /// field named; nothing reaches the jail as a 5xx or a `spawn_failed` for bad input.
        @Test("bad names and values in runs, sessions and forks: 4xx naming the field, no Swift type names, no host paths")
        func namesAndValues() async throws {
            let target = Target(server: try await offPool { try ServeProcess() })
            let session = try await target.session()
            let manyFiles = (0..<2000).map { #"{"name":"f\#($0)","content":""}"# }.joined(separator: ",")
            let cases: [(String, String, String)] = [
                (#""step":"a\u0000b","session":"\#(session)""#, "step", "NUL in a step key merged steps"),
                (#""step":"\u001b[2Jgone","session":"\#(session)""#, "step", "terminal escapes in a step key"),
                (#""step":"a\u202eb","session":"\#(session)""#, "step", "a bidi override in a step key"),
                (#""limits":{"memory_bytes":-5}"#, "limits.memory_bytes", "negative memory"),
                (#""limits":{"disk_bytes":-1}"#, "limits.disk_bytes", "negative disk"),
                (#""limits":{"timeout_ms":2.5}"#, "limits.timeout_ms", "fractional timeout"),
                (#""limits":{"timeout_ms":1e30}"#, "limits.timeout_ms", "huge timeout"),
                (#""args":["a\u0000b"]"#, "args[0]", "NUL in an argument"),
                (#""env":{"A=B":"x"}"#, "env.A=B", "= in an environment name"),
                (#""env":{"1X":"x"}"#, "env.1X", "an environment name starting with a digit"),
                (#""env":{"X":"a\u0000b"}"#, "env.X", "NUL in an environment value"),
                (#""env":{"SEALBOX_TOKEN":"x"}"#, "env.SEALBOX_TOKEN", "a reserved name"),
                (#""env":[1]"#, "env", "env of the wrong type"),
                (#""files":[{"name":"../x","content":""}]"#, "files[0].name", "a path as a file name"),
                (#""files":[{"name":"a\u0000b","content":""}]"#, "files[0].name", "NUL in a file name"),
                (#""files":[{"name":".","content":""}]"#, "files[0].name", "dot as a file name"),
                (#""files":[{"name":"a","content":""},{"name":"a","content":""}]"#, "files[1].name", "a file given twice"),
                (#""files":[\#(manyFiles)]"#, "files", "2000 files"),
                (#""tools":["../x"]"#, "tools[0]", "a path as a tool"),
                (#""session":"../x""#, "session", "a path as a session"),
            ]
            for (extra, field, what) in cases {
                let answer = try await target.run(python: "print(1)", extra)
                #expect(answer.status == 400, "\(what): \(answer.status) \(answer.body.prefix(300))")
                #expect(answer.errorField == field, "\(what): \(answer.body.prefix(300))")
                for leak in ["Dictionary", "Array<", "Swift.", "Optional(", target.server.stateDirectory] {
                    #expect(!answer.body.contains(leak), "\(what): \(answer.body.prefix(300))")
                }
            }
            let fork = try await target.post("/v1/sessions/\(session)/fork", #"{"at":"one\u0000x"}"#)
            #expect(fork.status == 400 && fork.errorField == "at", "\(fork.body)")
            // The tools error never names the broker's config or its other tools.
            let tools = try await target.run(python: "print(1)", #""tools":["nope"]"#)
            #expect(tools.status == 400, "\(tools.body)")
            #expect(!tools.body.contains(".yaml") && !tools.body.contains(target.server.stateDirectory), "\(tools.body)")
        }

        /// `Accept: application/x-ndjson;q=0` says "not that" (RFC 9110): a plain 201.
        @Test("Accept with q=0 does not stream")
        func acceptQualityZero() async throws {
            let target = Target(server: try await offPool { try ServeProcess() })
            let plain = try await target.post("/v1/runs", #"{"language":"sh","code":"echo hi"}"#, headers: ["Accept": "application/x-ndjson;q=0, application/json"])
            #expect(plain.status == 201 && plain.headers["content-type"] == "application/json", "\(plain.status) \(plain.body)")
            let streamed = try await target.post("/v1/runs", #"{"language":"sh","code":"echo hi"}"#, headers: ["Accept": "application/x-ndjson;q=0.5"])
            #expect(streamed.status == 200 && streamed.headers["content-type"] == "application/x-ndjson", "\(streamed.status)")
        }

        /// MCP reads each message once with the same strict reader: a duplicate member in the
        /// arguments is a parse error, not a second reading.
        @Test("MCP: a message with a duplicate member is refused as a parse error")
        func mcpDuplicates() async throws {
            let dir = try TemporaryDirectory.make("hostile-mcp")
            defer { TemporaryDirectory.remove(dir) }
            let line = #"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"run_code","arguments":{"language":"python","code":"print(1)","profile":"/etc/shadow","profile":"default"}}}"#
            let output = try await offPool { () throws -> String in
                let process = Process()
                process.executableURL = URL(fileURLWithPath: Binaries.sealbox)
                process.arguments = ["mcp", "--state-dir", dir]
                let input = Pipe(), out = Pipe()
                process.standardInput = input
                process.standardOutput = out
                process.standardError = FileHandle.nullDevice
                try process.run()
                input.fileHandleForWriting.write(Data((line + "\n").utf8))
                try input.fileHandleForWriting.close()
                let data = out.fileHandleForReading.readDataToEndOfFile()
                process.waitUntilExit()
                return String(decoding: data, as: UTF8.self)
            }
            let answer = try #require(try JSONSerialization.jsonObject(with: Data(output.utf8)) as? [String: Any], "\(output)")
            let error = try #require(answer["error"] as? [String: Any], "\(output)")
            #expect(error["code"] as? Int == -32700, "\(output)")
            #expect((error["message"] as? String)?.contains("duplicate member name \"profile\"") == true, "\(output)")
        }

        /// Profiles and broker configs refuse duplicates too: a profile with two
        /// defaultActions cannot mean the permissive one.
        @Test("profiles and broker configs with duplicate keys are refused")
        func filesWithDuplicates() async throws {
            let dir = try TemporaryDirectory.make("hostile-files")
            defer { TemporaryDirectory.remove(dir) }
            let profile = dir + "/twice.json"
            try #"{"defaultAction":"SCMP_ACT_ERRNO","defaultAction":"SCMP_ACT_ALLOW","syscalls":[]}"#.write(toFile: profile, atomically: true, encoding: .utf8)
            let check = try await CLI.run(["profile", "check", profile])
            #expect(check.status == 1 && check.stdout.contains("duplicate member name \"defaultAction\""), "\(check.stdout) \(check.stderr)")
            let run = try await CLI.run(["run", "--profile", profile, "--", "/bin/true"])
            #expect(run.status == 125 && run.stderr.contains("duplicate member name"), "\(run.stderr)")
            let config = dir + "/tools.yaml"
            try """
                tools:
                  ping: { kind: command, argv: [/bin/true], effect: read }
                  ping: { kind: command, argv: [/bin/false], effect: read }
                """.write(toFile: config, atomically: true, encoding: .utf8)
            let broker = try await CLI.run(["broker", "--config", config, "--state-dir", dir + "/broker"])
            #expect(broker.status == 125 && broker.stderr.contains("duplicate key \"ping\""), "\(broker.stderr)")
        }

        /// The broker reads a jail's request once, strictly: a request naming two tools is
        /// refused, not executed as either.
        @Test("a broker request with a duplicate member is refused as bad_request")
        func brokerDuplicates() async throws {
            let dir = try TemporaryDirectory.make("hostile-broker")
            defer { TemporaryDirectory.remove(dir) }
            let target = Target(server: try await offPool { try ServeProcess(["--tools", try Battery.toolsConfig(in: dir)]) })
            let code = """
                import json, os, socket
                s = socket.socket(socket.AF_UNIX); s.connect(os.environ["SEALBOX_BROKER"])
                token = json.dumps(os.environ["SEALBOX_TOKEN"])
                s.sendall(('{"token":%s,"op":"call","tool":"stamp","tool":"nap","args":{"text":"a","seconds":"1"}}\\n' % token).encode())
                print(s.makefile().readline().strip())
                """
            let answer = try await target.run(python: code, #""tools":["stamp"]"#)
            #expect(answer.status == 201, "\(answer.body)")
            let stdout = (answer.json?["stdout"] as? String) ?? ""
            let reply = (try? JSONSerialization.jsonObject(with: Data(stdout.utf8))) as? [String: Any] ?? [:]
            #expect(reply["ok"] as? Bool == false, "\(stdout)")
            let error = reply["error"] as? [String: Any] ?? [:]
            let errorCode = error["code"] as? String
            let message = error["message"] as? String ?? ""
            #expect(errorCode == "bad_request", "\(stdout)")
            #expect(message.contains("duplicate member name \"tool\""), "\(stdout)")
        }
    }
}
