import Foundation
import Glibc
import SealboxTestSupport
import Testing

/// `sealbox mcp` started as a subprocess, spoken to line by line over its stdin and stdout the
/// way an MCP host does. Lines are read on a thread of their own, so a test can wait for one
/// reply with a deadline while the server is still running.
final class MCPServerProcess: @unchecked Sendable {  // mutable state guarded by lock
    let process = Process()
    private let input = Pipe()
    private let output = Pipe()
    private let errors = Pipe()
    private let lock = NSCondition()
    private var lines: [String] = []
    private var pending = Data()
    private var outputClosed = false
    private var stderrText = Data()
    /// Set once the stderr reader took everything: the process's last words are in `stderr`.
    private var stderrClosed = false

    init(_ arguments: [String]) throws {
        let binary = Binaries.sealbox
        guard FileManager.default.isExecutableFile(atPath: binary) else {
            throw CLIError("sealbox not built at \(binary): run `swift build` first (scripts/test.sh does)")
        }
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = ["mcp"] + arguments
        process.standardInput = input
        process.standardOutput = output
        process.standardError = errors
        try process.run()
        Thread { [self] in
            while true {
                let data = output.fileHandleForReading.availableData
                lock.lock()
                if data.isEmpty {
                    if !pending.isEmpty { lines.append(String(decoding: pending, as: UTF8.self)) }
                    outputClosed = true
                    lock.broadcast()
                    lock.unlock()
                    return
                }
                pending.append(data)
                while let newline = pending.firstIndex(of: UInt8(ascii: "\n")) {
                    lines.append(String(decoding: pending[pending.startIndex..<newline], as: UTF8.self))
                    pending = Data(pending[(newline + 1)...])
                }
                lock.broadcast()
                lock.unlock()
            }
        }.start()
        Thread { [self] in
            let data = errors.fileHandleForReading.readDataToEndOfFile()
            lock.withLock {
                stderrText = data
                stderrClosed = true
                lock.broadcast()
            }
        }.start()
    }

    func send(_ line: String) {
        input.fileHandleForWriting.write(Data((line + "\n").utf8))
    }

    func send(_ message: [String: Any]) throws {
        send(String(decoding: try JSONSerialization.data(withJSONObject: message, options: [.sortedKeys]), as: UTF8.self))
    }

    func closeInput() {
        try? input.fileHandleForWriting.close()
    }

    /// The next line on stdout, or nil when none came before the deadline or stdout closed.
    func nextLine(timeout: TimeInterval = 30) -> String? {
        let deadline = Date().addingTimeInterval(timeout)
        lock.lock()
        defer { lock.unlock() }
        while lines.isEmpty && !outputClosed {
            if !lock.wait(until: deadline) { break }
        }
        return lines.isEmpty ? nil : lines.removeFirst()
    }

    /// The next line parsed as a JSON object; a line that is not one fails the test.
    func nextMessage(timeout: TimeInterval = 30) throws -> [String: Any] {
        let line = try #require(nextLine(timeout: timeout), "no reply within \(timeout) s; stderr: \(stderr)")
        return try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any], "not a JSON object on stdout: \(line)")
    }

    /// Waits for the exit (killing the server after `timeout`); returns its status.
    func waitForExit(timeout: TimeInterval = 60) -> Int32 {
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning && Date() < deadline { usleep(10_000) }
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            return -1
        }
        return process.terminationStatus
    }

    /// Everything left on stdout once the server closed it.
    func remainingLines() -> [String] {
        lock.lock()
        defer { lock.unlock() }
        while !outputClosed { lock.wait() }
        defer { lines.removeAll() }
        return lines
    }

    /// What the server wrote to stderr; once it has exited, all of it (the reader thread may
    /// still be taking the last bytes when the exit is seen: waited for, at most 10 s).
    var stderr: String {
        let exited = !process.isRunning
        return lock.withLock {
            let deadline = Date().addingTimeInterval(10)
            while exited && !stderrClosed && lock.wait(until: deadline) {}
            return String(decoding: stderrText, as: UTF8.self)
        }
    }

    deinit {
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
    }
}

enum MCPTestSupport {
    static func code(_ message: [String: Any]) -> Int? {
        (message["error"] as? [String: Any])?["code"] as? Int
    }

    static func errorMessage(_ message: [String: Any]) -> String {
        (message["error"] as? [String: Any])?["message"] as? String ?? ""
    }

    /// The venv scripts/setup.sh makes; SEALBOX_VENV overrides it as it does there.
    static var venvPython: String {
        (ProcessInfo.processInfo.environment["SEALBOX_VENV"] ?? "/var/cache/sealbox/venv") + "/bin/python"
    }
}

@Suite("sealbox mcp: JSON-RPC over stdio", .needsRoot)
struct MCPProtocolTests {
    @Test("malformed and invalid messages get JSON-RPC errors; ids are echoed; notifications get no reply")
    func edgeCases() throws {
        let dir = try TemporaryDirectory.make("mcp")
        defer { TemporaryDirectory.remove(dir) }
        let server = try MCPServerProcess(["--state-dir", dir, "--max-message", "4K"])
        let cases: [(line: String, id: Any?, code: Int?, says: String)] = [
            ("{not json", nil, -32700, "not valid JSON"),
            ("[{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}]", nil, -32600, "batches"),
            ("42", nil, -32600, "JSON object"),
            ("{\"id\":2,\"method\":\"ping\"}", 2, -32600, "jsonrpc"),
            ("{\"jsonrpc\":\"1.0\",\"id\":3,\"method\":\"ping\"}", 3, -32600, "jsonrpc"),
            ("{\"jsonrpc\":\"2.0\",\"id\":{\"a\":1},\"method\":\"ping\"}", nil, -32600, "id must be"),
            ("{\"jsonrpc\":\"2.0\",\"id\":4}", 4, -32600, "method is required"),
            ("{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"resources/list\"}", 5, -32601, "resources/list"),
            ("{\"jsonrpc\":\"2.0\",\"id\":\"str-id\",\"method\":\"no/such\"}", "str-id", -32601, "no/such"),
            ("{\"jsonrpc\":\"2.0\",\"id\":6,\"method\":\"tools/call\"}", 6, -32602, "tools/call needs params"),
            ("{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"tools/call\",\"params\":{\"name\":\"rm_rf\"}}", 7, -32602, "unknown tool \"rm_rf\""),
            ("{\"jsonrpc\":\"2.0\",\"id\":8,\"method\":\"tools/call\",\"params\":{\"name\":\"run_code\",\"arguments\":[1]}}", 8, -32602, "arguments must be an object"),
            ("{\"jsonrpc\":\"2.0\",\"id\":9,\"method\":\"initialize\",\"params\":{}}", 9, -32602, "protocolVersion"),
            ("{\"jsonrpc\":\"2.0\",\"id\":10,\"method\":\"tools/list\",\"params\":7}", 10, -32600, "params must be"),
            ("{\"jsonrpc\":\"2.0\",\"id\":12345678901,\"method\":\"ping\"}", 12_345_678_901, nil, ""),
            ("{\"jsonrpc\":\"2.0\",\"id\":\"\",\"method\":\"ping\"}", "", nil, ""),
        ]
        // One at a time, so each reply is known to answer its own line.
        for (line, id, code, says) in cases {
            server.send(line)
            let reply = try server.nextMessage()
            #expect(reply["jsonrpc"] as? String == "2.0", "\(line) -> \(reply)")
            if let id = id as? Int {
                #expect((reply["id"] as? NSNumber)?.int64Value == Int64(id), "\(line) -> \(reply)")
            } else if let id = id as? String {
                #expect(reply["id"] as? String == id, "\(line) -> \(reply)")
            } else {
                #expect(reply["id"] is NSNull, "\(line) -> \(reply)")
            }
            if let code {
                #expect(MCPTestSupport.code(reply) == code, "\(line) -> \(reply)")
                #expect(MCPTestSupport.errorMessage(reply).contains(says), "\(line) -> \(reply)")
                #expect(reply["result"] == nil)
            } else {
                #expect(reply["result"] as? [String: Any] != nil && reply["error"] == nil, "\(line) -> \(reply)")
            }
        }

        // A line over --max-message is answered with an error and skipped, then the server
        // carries on with the next line.
        server.send("{\"jsonrpc\":\"2.0\",\"id\":20,\"method\":\"ping\",\"params\":{\"pad\":\"" + String(repeating: "x", count: 10_000) + "\"}}")
        let tooLong = try server.nextMessage()
        #expect(MCPTestSupport.code(tooLong) == -32600, "\(tooLong)")
        #expect(MCPTestSupport.errorMessage(tooLong).contains("4096"), "\(tooLong)")
        #expect(tooLong["id"] is NSNull)

        // Notifications, and responses to requests this server never sent, get no reply: the
        // next line on stdout answers the ping after them.
        server.send("{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}")
        server.send("{\"jsonrpc\":\"2.0\",\"method\":\"notifications/no-such-thing\",\"params\":{}}")
        server.send("{\"jsonrpc\":\"2.0\",\"id\":99,\"result\":{}}")
        server.send("")
        server.send("{\"jsonrpc\":\"2.0\",\"id\":21,\"method\":\"ping\"}\r")
        let pong = try server.nextMessage()
        #expect((pong["id"] as? Int) == 21, "\(pong)")
        #expect(pong["result"] as? [String: Any] != nil)

        server.closeInput()
        #expect(server.waitForExit() == 0, "\(server.stderr)")
        #expect(server.remainingLines().isEmpty)
        #expect(server.stderr.contains("sealbox mcp: serving MCP on stdio"))
        #expect(server.stderr.contains("skipped"), "the oversize line is logged on stderr")
    }

    @Test("requests run concurrently; end of input waits for runs in flight, then exits 0")
    func concurrencyAndEndOfInput() throws {
        let dir = try TemporaryDirectory.make("mcp")
        defer { TemporaryDirectory.remove(dir) }
        let server = try MCPServerProcess(["--state-dir", dir])
        let slow: [String: Any] = ["jsonrpc": "2.0", "id": "slow", "method": "tools/call", "params": [
            "name": "run_code", "arguments": ["language": "sh", "code": "sleep 1.5; echo done-sleeping"]]]
        try server.send(slow)
        try server.send(["jsonrpc": "2.0", "id": "fast", "method": "ping"])
        let first = try server.nextMessage()
        #expect(first["id"] as? String == "fast", "the ping is answered while the run is still going: \(first)")
        // End of input now: the run in flight still gets its answer before the server exits.
        server.closeInput()
        let status = server.waitForExit()
        #expect(status == 0, "\(server.stderr)")
        let rest = server.remainingLines()
        #expect(rest.count == 1, "\(rest)")
        let reply = try #require(try JSONSerialization.jsonObject(with: Data((rest.first ?? "").utf8)) as? [String: Any])
        #expect(reply["id"] as? String == "slow")
        let result = try #require(reply["result"] as? [String: Any])
        #expect(result["isError"] as? Bool == false)
        let structured = try #require(result["structuredContent"] as? [String: Any])
        #expect(structured["stdout"] as? String == "done-sleeping\n")
        #expect(structured["status"] as? String == "ok")
    }

    @Test("a request the client cancels gets no response; the others still do")
    func cancellation() throws {
        let dir = try TemporaryDirectory.make("mcp")
        defer { TemporaryDirectory.remove(dir) }
        let server = try MCPServerProcess(["--state-dir", dir])
        try server.send(["jsonrpc": "2.0", "id": "cancel-me", "method": "tools/call", "params": [
            "name": "run_code", "arguments": ["language": "sh", "code": "sleep 1"]]])
        try server.send(["jsonrpc": "2.0", "id": "keep-me", "method": "tools/call", "params": [
            "name": "run_code", "arguments": ["language": "sh", "code": "sleep 1; echo kept"]]])
        try server.send(["jsonrpc": "2.0", "method": "notifications/cancelled", "params": ["requestId": "cancel-me", "reason": "test"]])
        // Cancelling an id that is not in flight changes nothing.
        try server.send(["jsonrpc": "2.0", "method": "notifications/cancelled", "params": ["requestId": 12345]])
        server.closeInput()
        #expect(server.waitForExit() == 0, "\(server.stderr)")
        let replies = try server.remainingLines().map { try #require(try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]) }
        #expect(replies.map { $0["id"] as? String } == ["keep-me"], "\(replies)")
        #expect(server.stderr.contains("cancelled by the client"))
    }

    @Test("tool errors are results with isError and a message naming the problem")
    func toolErrors() async throws {
        let dir = try TemporaryDirectory.make("mcp")
        defer { TemporaryDirectory.remove(dir) }
        let server = try MCPServerProcess(["--state-dir", dir, "--max-memory", "512M"])
        let cases: [(tool: String, arguments: [String: Any], says: [String])] = [
            ("run_code", ["code": "print(1)"], ["language is required"]),
            ("run_code", ["language": "python"], ["code is required"]),
            ("run_code", ["language": "python", "code": 7], ["code must be a string"]),
            ("run_code", ["language": "python", "code": "1", "limits": ["memory_bytes": 1 << 30]], ["limits.memory_bytes", "maximum"]),
            ("run_code", ["language": "python", "code": "1", "limits": ["walltime": 1]], ["limits.walltime"]),
            // One decoder for HTTP bodies and MCP arguments: 1e30 is a whole number, too large.
            ("run_code", ["language": "python", "code": "1", "limits": ["timeout_ms": 1e30]], ["limits.timeout_ms is too large"]),
            ("run_code", ["language": "python", "code": "1", "limits": ["pids": 2.5]], ["limits.pids must be a whole number"]),
            ("run_code", ["language": "python", "code": "1", "files": [["name": "a", "content": "!!", "encoding": "base64"]]], ["files[0].content", "base64"]),
            ("run_code", ["language": "python", "code": "1", "profile": "/etc/passwd"], ["profile", "not a path"]),
            ("run_code", ["language": "python", "code": "1", "tools": ["stamp"]], ["no broker", "--tools"]),
            ("run_code", ["language": "python", "code": "1", "step": "s"], ["step needs a session"]),
            ("run_code", ["language": "python", "code": "1", "session": "nope", "step": "s"], ["not_found", "unknown session nope"]),
            ("run_code", ["language": "python", "code": "1", "command": ["ls"]], ["unknown argument \"command\""]),
            ("create_session", ["workspace_limit_bytes": 10], ["workspace_limit_bytes must be between"]),
            ("session_facts", [:], ["session is required"]),
            ("list_effects", ["state": "happy"], ["unknown state \"happy\""]),
            ("list_effects", ["limit": 0], ["limit must be between 1 and 1000"]),
        ]
        for (index, (tool, arguments, says)) in cases.enumerated() {
            try server.send(["jsonrpc": "2.0", "id": index, "method": "tools/call", "params": ["name": tool, "arguments": arguments]])
            let reply = try server.nextMessage()
            #expect(reply["id"] as? Int == index)
            let result = try #require(reply["result"] as? [String: Any], "\(tool) \(arguments) -> \(reply)")
            #expect(result["isError"] as? Bool == true, "\(tool) \(arguments) -> \(result)")
            #expect(result["structuredContent"] == nil)
            let content = try #require((result["content"] as? [[String: Any]])?.first)
            #expect(content["type"] as? String == "text")
            let text = content["text"] as? String ?? ""
            for phrase in says {
                #expect(text.contains(phrase), "\(tool) \(arguments): \"\(text)\" should mention \(phrase)")
            }
        }
        // An empty effect log is an empty list, not an error.
        try server.send(["jsonrpc": "2.0", "id": "effects", "method": "tools/call", "params": ["name": "list_effects"]])
        let effects = try #require(try server.nextMessage()["result"] as? [String: Any])
        #expect(effects["isError"] as? Bool == false)
        #expect((effects["structuredContent"] as? [String: Any])?["calls"] as? [Any] != nil)
        server.closeInput()
        #expect(server.waitForExit() == 0)
    }

    @Test("--help shows the tools and a host config snippet; bad flags exit 125")
    func helpAndFlags() async throws {
        let help = try await CLI.run(["mcp", "--help"])
        #expect(help.status == 0)
        for phrase in ["run_code", "create_session", "session_facts", "list_effects", "mcpServers", "--state-dir", "--tools", "--broker"] {
            #expect(help.stdout.contains(phrase), "--help should mention \(phrase)")
        }
        let dir = try TemporaryDirectory.make("mcp")
        defer { TemporaryDirectory.remove(dir) }
        let bad: [([String], String)] = [
            (["mcp", "--state-dir", dir, "--tools", dir + "/missing.yaml"], "no such readable file"),
            (["mcp", "--state-dir", dir, "--tools", "a.yaml", "--broker", "b.sock"], "not both"),
            (["mcp", "--state-dir", dir, "--max-memory", "lots"], "--max-memory"),
            (["mcp", "--state-dir", dir, "--max-message", "1"], "--max-message"),
            (["mcp", "--state-dir", dir, "--max-concurrent", "0"], "--max-concurrent"),
        ]
        for (arguments, says) in bad {
            let out = try await CLI.run(arguments)
            #expect(out.status == 125, "\(arguments): \(out.stderr)")
            #expect(out.stderr.contains(says), "\(arguments): \(out.stderr)")
            #expect(out.stdout.isEmpty)
            #expect(!out.stderr.contains("Fatal error"))
        }
    }
}

@Suite("sealbox mcp: tools through a running broker", .needsRoot)
struct MCPBrokerTests {
    /// `--broker SOCKET`: run_code grants tools of a broker the operator runs, whose effect log
    /// is the state directory's, so list_effects and session_facts see the calls.
    @Test("run_code grants a tool of a running broker; list_effects lists the sealed call")
    func runningBroker() throws {
        let dir = try TemporaryDirectory.make("mcp")
        defer { TemporaryDirectory.remove(dir) }
        let state = dir + "/state", brokerDir = dir + "/broker"
        // 0711: the jail's user reaches its run socket by path but cannot list the directory.
        try FileManager.default.createDirectory(atPath: brokerDir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o711])
        _ = try TestTools.write(in: dir)
        let broker = Process()
        broker.executableURL = URL(fileURLWithPath: Binaries.sealbox)
        broker.arguments = ["broker", "--config", dir + "/tools.yaml", "--state-dir", brokerDir, "--ledger", state + "/effects.db"]
        broker.standardOutput = FileHandle.nullDevice
        broker.standardError = FileHandle.nullDevice
        try broker.run()
        defer {
            if broker.isRunning { broker.terminate() }
            broker.waitUntilExit()
        }
        let socket = brokerDir + "/control.sock"
        for _ in 0..<3000 where !FileManager.default.fileExists(atPath: socket) && broker.isRunning { usleep(10_000) }
        #expect(FileManager.default.fileExists(atPath: socket), "the broker did not start")

        let server = try MCPServerProcess(["--state-dir", state, "--broker", socket])
        try server.send(["jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": ["name": "run_code", "arguments": [
            "language": "python", "session": "agent-7", "tools": ["stamp"],
            "code": "import sealbox; print(sealbox.call('stamp', {'text': 'hello'})['stdout'].strip())"]]])
        let run = try #require(try server.nextMessage(timeout: 60)["result"] as? [String: Any])
        #expect(run["isError"] as? Bool == false, "\(run)")
        #expect((run["structuredContent"] as? [String: Any])?["stdout"] as? String == "stamped hello\n", "\(run)")

        try server.send(["jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": ["name": "list_effects", "arguments": ["session": "agent-7"]]])
        let listed = try #require(try server.nextMessage()["result"] as? [String: Any])
        let calls = try #require((listed["structuredContent"] as? [String: Any])?["calls"] as? [[String: Any]], "\(listed)")
        #expect(calls.count == 1)
        #expect(calls.first?["tool"] as? String == "stamp")
        #expect(calls.first?["state"] as? String == "sealed")
        #expect(calls.first?["session_id"] as? String == "agent-7")

        // A tool the broker does not offer is refused by it, as a tool error.
        try server.send(["jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": ["name": "run_code", "arguments": [
            "language": "sh", "code": "true", "tools": ["launch_missiles"]]]])
        let refused = try #require(try server.nextMessage(timeout: 60)["result"] as? [String: Any])
        #expect(refused["isError"] as? Bool == true)
        let text = ((refused["content"] as? [[String: Any]])?.first?["text"] as? String) ?? ""
        #expect(text.contains("broker_refused") && text.contains("launch_missiles"), "\(text)")
        server.closeInput()
        #expect(server.waitForExit() == 0, "\(server.stderr)")
    }
}

@Suite("sealbox mcp: the official MCP Python SDK as client", .needsRoot)
struct MCPClientTests {
    /// scripts/mcp_client_check.py: initialize, tools/list, every tool through the SDK's
    /// ClientSession over stdio (it validates each structuredContent against the tool's
    /// outputSchema), a replayed step, a broker tool call, raw malformed lines.
    @Test("scripts/mcp_client_check.py passes against the built binary")
    func pythonSDK() throws {
        let output = try Self.runPython(["scripts/mcp_client_check.py", "--sealbox", Binaries.sealbox])
        #expect(output?.contains("mcp client check: all passed") == true, "\(output ?? "")")
    }

    /// scripts/mcp_transport_check.py: the official client over stdio (`sealbox mcp`) and over
    /// Streamable HTTP (`sealbox serve`, /mcp, API keys): initialize, tools/list, run_code, a
    /// bad argument named, progress coalesced, and a cancelled run_code whose jailed process is
    /// gone within 100 ms (measured on its pidfd). HTTP adds 401 without a key and tenancy.
    @Test("scripts/mcp_transport_check.py passes over each transport", arguments: ["stdio", "http"])
    func transports(_ transport: String) throws {
        let output = try Self.runPython(["scripts/mcp_transport_check.py", "--sealbox", Binaries.sealbox, "--transport", transport])
        #expect(output?.contains("mcp transport check (\(transport)): all passed") == true, "\(output ?? "")")
        // The measured cancel-to-gone time, in the test log.
        for line in (output ?? "").split(separator: "\n") where line.hasPrefix("measure") { print(line) }
    }

    /// Runs a script of scripts/ with the venv's Python; records a failure (never a skip) when
    /// the venv is missing or the script fails. Returns its output.
    static func runPython(_ arguments: [String]) throws -> String? {
        let python = MCPTestSupport.venvPython
        // Not a skip: CI's scripts/setup.sh makes the venv, so a missing one is a broken setup.
        guard FileManager.default.isExecutableFile(atPath: python) else {
            Issue.record("no Python venv at \(python): run scripts/setup.sh (it installs scripts/python-tools.txt there)")
            return nil
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: python)
        process.arguments = [Binaries.repoRoot + "/" + arguments[0]] + arguments.dropFirst()
        let out = Pipe()
        process.standardOutput = out
        process.standardError = out
        try process.run()
        let output = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        #expect(process.terminationStatus == 0, "\(arguments[0]) failed:\n\(output)")
        #expect(!output.contains("FAIL"), "\(output)")
        return output
    }
}
