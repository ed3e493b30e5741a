import Foundation
import Glibc
import SealboxTestSupport
import Testing

/// The battery's one parent suite: serialized, because each test starts its own `sealbox
/// serve` and several at once would measure the machine, not the server.
@Suite("Hostile API battery", .serialized, .needsRoot)
struct HostileAPI {}

/// A server and the calls the battery makes to it, every one off the test pool's threads.
struct Target: Sendable {
    let server: ServeProcess

    var port: Int { server.port }

    func post(_ path: String, _ body: String, key: String? = nil, headers: [String: String] = [:], timeout: Double = 30) async throws -> RawHTTP.Answer {
        let port = self.port, key = key ?? server.key
        return try await offPool { try RawHTTP.request(port: port, method: "POST", path, key: key, body: Array(body.utf8), headers: headers, timeout: timeout) }
    }

    func get(_ path: String, key: String? = nil) async throws -> RawHTTP.Answer {
        let port = self.port, key = key ?? server.key
        return try await offPool { try RawHTTP.get(port: port, path, key: key) }
    }

    /// `{"language":"python","code":…}` plus `extra` members, as raw JSON text.
    func run(python code: String, _ extra: String = "", key: String? = nil, timeout: Double = 30) async throws -> RawHTTP.Answer {
        try await post("/v1/runs", #"{"language":"python","code":\#(Self.quote(code))\#(extra.isEmpty ? "" : "," + extra)}"#, key: key, timeout: timeout)
    }

    func session() async throws -> String {
        let made = try await post("/v1/sessions", "")
        return try #require(made.json?["id"] as? String, "\(made.status) \(made.body)")
    }

    /// A Prometheus sample from /metrics (operator key), or nil.
    func metric(_ name: String) async throws -> Double? {
        let text = try await get("/metrics", key: server.operatorKey).body
        for line in text.split(separator: "\n") where line.hasPrefix(name + " ") {
            return Double(line.dropFirst(name.count + 1))
        }
        return nil
    }

    static func quote(_ text: String) -> String {
        let data = try! JSONSerialization.data(withJSONObject: [text], options: [.fragmentsAllowed])
        let array = String(decoding: data, as: UTF8.self)
        return String(array.dropFirst().dropLast())
    }
}

enum Battery {
    /// A broker config with a slow command tool and a quick one.
    static func toolsConfig(in dir: String) throws -> String {
        try TestTools.write(in: dir)
    }

    /// Waits (bounded: `seconds`) until `condition` holds, polling every 20 ms.
    static func eventually(_ seconds: Double = 30, _ what: String, _ condition: () async throws -> Bool) async throws {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if try await condition() { return }
            try await Task.sleep(for: .milliseconds(20))
        }
        throw CLIError("not within \(seconds) s: \(what)")
    }

    /// User + system CPU seconds of a process so far (/proc/PID/stat).
    static func cpuSeconds(_ pid: Int32) -> Double {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8), let close = text.lastIndex(of: ")") else { return 0 }
        let fields = text[text.index(after: close)...].split(separator: " ")
        guard fields.count > 13, let user = Double(fields[11]), let system = Double(fields[12]) else { return 0 }
        return (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
    }
}
