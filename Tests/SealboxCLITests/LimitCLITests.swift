import Foundation
import SealboxTestSupport
import Testing

/// The run limits as users meet them, from the built binary: the flags, the operator's
/// maxima in the served OpenAPI and in MCP's `run_code` schema, and field-naming refusals.
/// The list of limits comes from the served document, which SealboxServerTests keeps equal to
/// `LimitTable`: a new row must show up here as a flag without this file naming it.
@Suite("Run limits from the outside", .needsRoot)
struct LimitCLITests {
    /// `RunRequest.limits` of an OpenAPI document.
    static func limitsSchema(_ document: [String: Any]) throws -> [String: Any] {
        let components = try #require(document["components"] as? [String: Any])
        let schemas = try #require(components["schemas"] as? [String: Any])
        let request = try #require(schemas["RunRequest"] as? [String: Any])
        return try #require((request["properties"] as? [String: Any])?["limits"] as? [String: Any])
    }

    @Test("serve --max-memory 8G serves an OpenAPI with 8G as the maximum; every limit in it is a flag of run, every maximum one of serve and mcp")
    func servedMaxima() async throws {
        let serve = try ServeProcess(["--max-memory", "8G", "--max-pids", "100"])
        defer { _ = serve.stop() }
        let answer = try await offPool { try RawHTTP.get(port: serve.port, "/openapi.json", key: nil) }
        #expect(answer.status == 200)
        let document = try #require(answer.json)
        #expect(document["openapi"] as? String == "3.1.0")
        let limits = try Self.limitsSchema(document)
        let properties = try #require(limits["properties"] as? [String: [String: Any]])
        #expect((properties["memory_bytes"]?["maximum"] as? NSNumber)?.int64Value == 8 << 30)
        #expect((properties["pids"]?["maximum"] as? NSNumber)?.int64Value == 100)
        #expect((properties["cpus"]?["maximum"] as? NSNumber)?.doubleValue == Double(ProcessInfo.processInfo.activeProcessorCount))
        // /dev/shm is bounded by the memory limit, so by the operator's memory maximum.
        #expect((properties["shm_bytes"]?["maximum"] as? NSNumber)?.int64Value == 8 << 30)

        let runHelp = try await CLI.run(["run", "--help"])
        let serveHelp = try await CLI.run(["serve", "--help"])
        let mcpHelp = try await CLI.run(["mcp", "--help"])
        #expect(properties.count >= 7)
        for (key, property) in properties {
            #expect(runHelp.stdout.contains("limits.\(key)"), "sealbox run has no flag for limits.\(key)")
            let description = property["description"] as? String ?? ""
            // "At most the operator's --max-memory.": that flag exists on serve and mcp.
            if let range = description.range(of: #"--max-[a-z-]+"#, options: .regularExpression) {
                let flag = String(description[range])
                #expect(serveHelp.stdout.contains(flag) && mcpHelp.stdout.contains(flag), "\(flag) of limits.\(key) is not an operator flag")
            }
        }
    }

    @Test("a negative size is a 400 naming limits.memory_bytes, over HTTP and in MCP run_code")
    func negativeSize() async throws {
        let serve = try ServeProcess()
        defer { _ = serve.stop() }
        let body = #"{"language":"python","code":"print(1)","limits":{"memory_bytes":-5}}"#
        let answer = try await offPool { try RawHTTP.post(port: serve.port, "/v1/runs", key: serve.key, body: body) }
        #expect(answer.status == 400, "\(answer.body)")
        #expect(answer.errorField == "limits.memory_bytes", "\(answer.body)")
        #expect(answer.errorMessage == "limits.memory_bytes must not be negative", "\(answer.body)")

        let dir = try TemporaryDirectory.make("mcp")
        defer { TemporaryDirectory.remove(dir) }
        let server = try MCPServerProcess(["--state-dir", dir, "--max-memory", "8G"])
        try server.send(["jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": [
            "name": "run_code", "arguments": ["language": "python", "code": "1", "limits": ["memory_bytes": -5]]]])
        let reply = try #require(try server.nextMessage()["result"] as? [String: Any])
        #expect(reply["isError"] as? Bool == true)
        let text = ((reply["content"] as? [[String: Any]])?.first?["text"] as? String) ?? ""
        #expect(text.contains("limits.memory_bytes must not be negative"), "\(text)")
        // MCP's schema shows the operator's maxima too.
        try server.send(["jsonrpc": "2.0", "id": 2, "method": "tools/list"])
        let tools = try #require((try server.nextMessage()["result"] as? [String: Any])?["tools"] as? [[String: Any]])
        let runCode = try #require(tools.first { $0["name"] as? String == "run_code" })
        let input = try #require(runCode["inputSchema"] as? [String: Any])
        let limits = try #require((input["properties"] as? [String: Any])?["limits"] as? [String: Any])
        let memory = try #require((limits["properties"] as? [String: [String: Any]])?["memory_bytes"])
        #expect((memory["maximum"] as? NSNumber)?.int64Value == 8 << 30)
        #expect((memory["default"] as? NSNumber)?.int64Value == 256 << 20)
        server.closeInput()
        #expect(server.waitForExit() == 0)
    }

    @Test("run --max-open-files sets the jail's RLIMIT_NOFILE and the result echoes it; the operator's maximum bounds requests")
    func openFiles() async throws {
        let out = try await CLI.run(["run", "--max-open-files", "77", "--json", "--", "/bin/sh", "-c", "ulimit -n"])
        #expect(out.status == 0, "\(out.stderr)")
        let json = try out.json()
        #expect(json["stdout"] as? String == "77\n")
        #expect((json["limits"] as? [String: Any])?["max_open_files"] as? Int == 77)
        let refused = try await CLI.run(["run", "--max-open-files", "8", "--", "true"])
        #expect(refused.status == 125 && refused.stderr.contains("--max-open-files must be between 16 and"), "\(refused.stderr)")

        let serve = try ServeProcess(["--max-open-files", "200"])
        defer { _ = serve.stop() }
        let ran = try await offPool {
            try RawHTTP.post(port: serve.port, "/v1/runs", key: serve.key, body: #"{"command":["/bin/sh","-c","ulimit -n"],"limits":{"max_open_files":150}}"#)
        }
        #expect(ran.status == 201, "\(ran.body)")
        #expect(ran.json?["stdout"] as? String == "150\n")
        let above = try await offPool {
            try RawHTTP.post(port: serve.port, "/v1/runs", key: serve.key, body: #"{"command":["/bin/true"],"limits":{"max_open_files":201}}"#)
        }
        #expect(above.status == 400 && above.errorField == "limits.max_open_files", "\(above.body)")
    }

    @Test("operator maxima outside what sealbox allows are refused at start, naming the flag", arguments: [
        (["serve", "--max-memory", "1M"], "--max-memory must be at least 4M"),
        (["serve", "--max-timeout", "0"], "--max-timeout must be between 0.001 and 86400 seconds"),
        (["mcp", "--max-pids", "0"], "--max-pids must be between 1 and 100000"),
        (["mcp", "--max-disk", "lots"], "invalid size \"lots\" for --max-disk"),
        (["serve", "--max-sandboxes-per-tenant", "40"], "--max-sandboxes-per-tenant must be between 0 and --max-sandboxes (32)"),
        (["serve", "--max-hibernated", "200000"], "--max-hibernated must be between 0 and 100000"),
        (["serve", "--max-hibernated-per-tenant", "300"], "--max-hibernated-per-tenant must be between 0 and --max-hibernated (256)"),
        (["serve", "--sandbox-idle-timeout", "2h"], "--sandbox-idle-timeout must be a duration between 1s and 60m"),
    ])
    func badMaxima(arguments: [String], fragment: String) async throws {
        let dir = try TemporaryDirectory.make("mcp")
        defer { TemporaryDirectory.remove(dir) }
        let out = try await CLI.run(arguments + ["--state-dir", dir])
        #expect(out.status != 0, "\(out.stderr)")
        #expect(out.stderr.contains(fragment), "\(out.stderr)")
    }
}
