import Foundation
import Glibc
import SealboxTestSupport
import Testing

@Suite("sealbox bench load", .needsRoot, .serialized)
struct BenchLoadTests {
    static func counts(_ json: [String: Any], _ key: String) -> [String: Int] {
        json[key] as? [String: Int] ?? [:]
    }

    @Test("20 runs at concurrency 4 against a real serve: every one 201 and ok, latency and throughput reported; serve logs a JSON line per run and stops cleanly")
    func load() async throws {
        let server = try await offPool { try ServeProcess(["--max-concurrent", "2"]) }
        let out = try await offPool {
            try CLI.runBlocking(["bench", "load", "--url", server.url, "--count", "20", "--concurrency", "4", "--json"]
                        + server.keyFlags + ["--", "/bin/sh", "-c", "echo hi"])
        }
        #expect(out.status == 0, "\(out.stdout) \(out.stderr)")
        let report = try out.json()
        #expect(report["count"] as? Int == 20 && report["concurrency"] as? Int == 4)
        #expect(Self.counts(report, "http_status") == ["201": 20], "\(report)")
        #expect(Self.counts(report, "run_status") == ["ok": 20], "\(report)")
        #expect(report["connection_errors"] as? Int == 0)
        let p50 = try #require(report["p50_ms"] as? Double)
        let p99 = try #require(report["p99_ms"] as? Double)
        let max = try #require(report["max_ms"] as? Double)
        #expect(p50 > 0 && p50 <= p99 && p99 <= max, "\(report)")
        #expect((report["runs_per_s"] as? Double ?? 0) > 0)

        let stopped = try await offPool { server.stop() }
        #expect(stopped == 0, "serve did not exit cleanly on SIGTERM: \(server.logLines.suffix(5))")
        let lines = try server.logLines.map { line in
            try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any], "not JSON: \(line)")
        }
        let runs = lines.filter { $0["msg"] as? String == "run finished" }
        #expect(runs.count == 20)
        #expect(runs.allSatisfy { $0["status"] as? String == "ok" && $0["spawn_ms"] is Double && $0["queue_ms"] is Double })
        #expect(lines.filter { $0["msg"] as? String == "request" && $0["status"] as? Int == 201 }.count == 20)
    }

    @Test("a full queue: 429s are counted, not retried, and the load still exits 0")
    func refusals() async throws {
        let server = try await offPool { try ServeProcess(["--max-concurrent", "1", "--max-queued", "0"]) }
        defer { _ = server.stop() }
        let out = try await offPool {
            try CLI.runBlocking(["bench", "load", "--url", server.url, "-n", "12", "-c", "4", "--json"] + server.keyFlags + ["--", "/bin/sleep", "0.3"])
        }
        #expect(out.status == 0, "\(out.stdout) \(out.stderr)")
        let status = Self.counts(try out.json(), "http_status")
        #expect((status["201"] ?? 0) + (status["429"] ?? 0) == 12, "\(status)")
        #expect((status["201"] ?? 0) >= 1 && (status["429"] ?? 0) >= 1, "\(status)")
    }

    @Test("without a key every answer is a 401: counted, exit 1")
    func noKey() async throws {
        let server = try await offPool { try ServeProcess() }
        defer { _ = server.stop() }
        let out = try await offPool { try CLI.runBlocking(["bench", "load", "--url", server.url, "-n", "3", "-c", "2", "--json"]) }
        #expect(out.status == 1)
        let report = try out.json()
        #expect(Self.counts(report, "http_status") == ["401": 3], "\(report)")
        #expect(Self.counts(report, "run_status").isEmpty && report["connection_errors"] as? Int == 0)
    }

    @Test("no server: every request is a connection error, reported, exit 1")
    func nothingListening() async throws {
        let port = try ServeProcess.freePort()
        let out = try await offPool { try CLI.runBlocking(["bench", "load", "--url", "http://127.0.0.1:\(port)", "-n", "3", "-c", "2", "--json"]) }
        #expect(out.status == 1)
        let report = try out.json()
        #expect(report["connection_errors"] as? Int == 3)
        #expect((report["first_error"] as? String)?.contains("connect to 127.0.0.1:\(port)") == true, "\(report)")
        #expect(Self.counts(report, "http_status").isEmpty)
    }

    @Test("bad flags are refused with a message", arguments: [
        (["--url", "https://example.com"], "https is not supported"),
        (["--url", "nonsense"], "--url expects http://HOST[:PORT]"),
        (["--count", "0"], "--count must be between 1 and 1000000"),
        (["--concurrency", "0"], "--concurrency must be between 1 and 1024"),
        (["--lang", "python"], "--lang and --code go together"),
        (["--lang", "cobol", "--code", "x"], "unknown --lang \"cobol\""),
        (["--key", "a", "--key-file", "/dev/null"], "either --key or --key-file"),
        (["--key-file", "/nonexistent/key"], "no such readable file"),
        (["--key", "has space"], "printable ASCII"),
    ])
    func badFlags(flags: [String], message: String) async throws {
        let out = try await offPool { try CLI.runBlocking(["bench", "load"] + flags) }
        #expect(out.status == 125, "\(out.stderr)")
        #expect(out.stderr.contains(message), "\(out.stderr)")
    }
}
