import Foundation
import Glibc
import Testing

/// Runs blocking work (a child process, waits) on a thread of its own: the test pool has as
/// many threads as cores, and a blocked one stalls every other test.
func offPool<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    let outcome: Result<T, any Error> = await withCheckedContinuation { continuation in
        Thread { continuation.resume(returning: Result { try body() }) }.start()
    }
    return try outcome.get()
}

/// A `sealbox serve` process on a free loopback port with a state directory of its own,
/// stopped with SIGTERM; its stderr (JSON log lines) goes to a file the test can read.
final class ServeProcess: @unchecked Sendable {  // set up in init, then used by one test at a time
    let port: Int
    let stateDirectory: String
    let logPath: String
    private let process = Process()

    init(_ flags: [String] = []) throws {
        port = try Self.freePort()
        stateDirectory = NSTemporaryDirectory() + "sealbox-serve-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: stateDirectory, withIntermediateDirectories: true)
        logPath = stateDirectory + "/serve.log"
        _ = FileManager.default.createFile(atPath: logPath, contents: nil)
        process.executableURL = URL(fileURLWithPath: CLI.buildDirectory + "/sealbox")
        process.arguments = ["serve", "--listen", "127.0.0.1:\(port)", "--state-dir", stateDirectory] + flags
        process.standardOutput = FileHandle.nullDevice
        process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath))
        try process.run()
        try waitUntilListening()
        // A tenant's key, as a user of the service has (not the operator key serve made).
        let created = try CLI.runBlocking(["keys", "create", "--state-dir", stateDirectory, "--tenant", "load"])
        guard created.status == 0, !created.stdout.isEmpty else { throw CLIError("keys create failed: \(created.stderr)") }
        try created.stdout.write(toFile: keyPath, atomically: true, encoding: .utf8)
    }

    var keyPath: String { stateDirectory + "/load.key" }

    var keyFlags: [String] { ["--key-file", keyPath] }

    var url: String { "http://127.0.0.1:\(port)" }

    var logLines: [String] {
        ((try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "").split(separator: "\n").map(String.init)
    }

    /// SIGTERM, then the exit status (nil if it did not exit within 30 s: then SIGKILL).
    func stop() -> Int32? {
        guard process.isRunning else { return process.terminationStatus }
        kill(process.processIdentifier, SIGTERM)
        for _ in 0..<3000 where process.isRunning { usleep(10_000) }
        guard !process.isRunning else {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            return nil
        }
        return process.terminationStatus
    }

    deinit {
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        try? FileManager.default.removeItem(atPath: stateDirectory)
    }

    /// Connects until the port answers (serve starts its broker first), at most 30 s.
    private func waitUntilListening() throws {
        for _ in 0..<300 {
            guard process.isRunning else {
                throw CLIError("serve exited with \(process.terminationStatus): \(logLines.joined(separator: "\n"))")
            }
            if Self.connects(port) { return }
            usleep(100_000)
        }
        throw CLIError("serve did not listen on \(port) within 30 s: \(logLines.joined(separator: "\n"))")
    }

    static func connects(_ port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = loopback(port)
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        } == 0
    }

    /// A port the kernel just handed out (bound to port 0, then released).
    static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = loopback(0)
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer in
                bind(fd, pointer, length) == 0 && getsockname(fd, pointer, &length) == 0
            }
        }
        guard bound else { throw CLIError("cannot find a free port: errno \(errno)") }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    static func loopback(_ port: Int) -> sockaddr_in {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        return address
    }
}

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
