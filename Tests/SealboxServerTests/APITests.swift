import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import SealboxJail
import SealboxServer
import SealboxSQLite
import Testing

/// The HTTP API through HummingbirdTesting (router, and one live server on a real socket);
/// real jails behind it.
@Suite("HTTP API")
struct APITests {
    static let repoRoot: String = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }
        return url.path
    }()

    static let executor: Result<Executor, JailError> = Result { () throws(JailError) in
        try Executor(configuration: .init(dataDirectory: repoRoot))
    }

    static func api(_ configure: (inout ServerConfiguration) -> Void = { _ in }) throws -> SealboxAPI {
        var configuration = ServerConfiguration(layout: try ServerTestSupport.temporaryLayout(), maxConcurrentRuns: 2, maxQueuedRuns: 4)
        // Auth is not the point here (AuthAPITests): these run as `--no-auth`.
        configuration.authRequired = false
        configure(&configuration)
        return try SealboxAPI(configuration: configuration, executor: try executor.get(), access: try SQLiteAccessStore.open(layout: configuration.layout))
    }

    static func app(_ api: SealboxAPI) -> some ApplicationProtocol {
        Application(router: api.router())
    }

    static func object(_ response: TestResponse) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data(response.body.readableBytesView)) as? [String: Any])
    }

    static func post(_ client: some TestClientProtocol, _ json: String) async throws -> TestResponse {
        try await client.execute(uri: "/v1/runs", method: .post, headers: [.contentType: "application/json"], body: ByteBuffer(string: json))
    }

    @Test("POST /v1/runs runs a snippet and answers the `sealbox run --json` object; GET /v1/runs/{id} returns it again")
    func runAndFetch() async throws {
        try await Self.app(Self.api()).test(.router) { client in
            let response = try await Self.post(client, #"{"language":"python","code":"import sys; print(6*7); print(sys.stdin.read())","stdin":"fed","files":[{"name":"data.txt","content":"aGk=","encoding":"base64"}],"limits":{"timeout_ms":5000,"shm_bytes":1048576}}"#)
            #expect(response.status == .created)
            let result = try Self.object(response)
            #expect(result["status"] as? String == "ok")
            #expect(result["stdout"] as? String == "42\nfed\n")
            #expect((result["limits"] as? [String: Any])?["timeout_ms"] as? Int == 5000)
            #expect((result["limits"] as? [String: Any])?["shm_bytes"] as? Int == 1 << 20)
            let id = try #require(result["id"] as? String)
            #expect(response.headers[.location] == "/v1/runs/\(id)")
            let again = try await client.execute(uri: "/v1/runs/\(id)", method: .get)
            #expect(again.status == .ok)
            #expect(try Self.object(again)["stdout"] as? String == "42\nfed\n")
            let missing = try await client.execute(uri: "/v1/runs/r0", method: .get)
            #expect(missing.status == .notFound)
            // A file given in the request is in /work.
            let cat = try await Self.post(client, #"{"command":["/bin/cat","/work/data.txt"],"files":[{"name":"data.txt","content":"aGk=","encoding":"base64"}]}"#)
            #expect(try Self.object(cat)["stdout"] as? String == "hi")
        }
    }

    @Test("bad input is a 400 naming the field, never a crash", arguments: [
        (#"{"language":"python","code":"1","timeout":5}"#, "timeout"),
        (#"{"language":"python","code":"1","limits":{"memory":5}}"#, "limits.memory"),
        (#"{"language":"python","code":"1","limits":{"timeout_ms":"5"}}"#, "limits.timeout_ms"),
        (#"{"language":"python","code":"1","limits":{"memory_bytes":99999999999999}}"#, "limits.memory_bytes"),
        (#"{"language":"python","code":"1","limits":{"pids":0}}"#, "limits.pids"),
        (#"{"language":"python","code":"1","limits":{"shm_bytes":1024}}"#, "limits.shm_bytes"),
        (#"{"language":"python","code":"1","limits":{"memory_bytes":67108864,"shm_bytes":134217728}}"#, "limits.shm_bytes"),
        (#"{"language":"python","code":"1","limits":{"shm_bytes":99999999999999}}"#, "limits.shm_bytes"),
        (#"{"language":"python","code":"1","limits":{"pids":2.5}}"#, "limits.pids"),
        (#"{"language":"python","code":"1","limits":{"timeout_ms":1e30}}"#, "limits.timeout_ms"),
        (#"{"language":"python","code":"1","profile":"/etc/passwd"}"#, "profile"),
        (#"{"language":"python","code":"1","profile":"../profiles/default"}"#, "profile"),
        (#"{"language":"cobol","code":"1"}"#, "language"),
        (#"{"language":"python"}"#, "code"),
        (#"{"code":"1"}"#, "language"),
        (#"{}"#, "command"),
        (#"{"command":[]}"#, "command"),
        (#"{"language":"python","code":"1","command":["/bin/true"]}"#, "command"),
        (#"{"language":"python","code":"1","files":[{"name":"a","content":"!!","encoding":"base64"}]}"#, "files[0].content"),
        (#"{"language":"python","code":"1","files":[{"name":"a","content":"x","mode":7}]}"#, "files[0].mode"),
        (#"{"language":"python","code":"1","files":[{"content":"x"}]}"#, "files[0].name"),
        (#"{"language":"python","code":"1","env":{"A":1}}"#, "env.A"),
    ])
    func badInput(body: String, field: String) async throws {
        try await Self.app(Self.api()).test(.router) { client in
            let response = try await Self.post(client, body)
            #expect(response.status == .badRequest, "\(String(buffer: response.body))")
            let error = try #require(try Self.object(response)["error"] as? [String: Any])
            #expect(error["field"] as? String == field, "\(error)")
            #expect((error["message"] as? String)?.isEmpty == false)
        }
    }

    @Test("not JSON, not an object, a bad env name, an unknown profile: 400 with a message")
    func malformed() async throws {
        try await Self.app(Self.api()).test(.router) { client in
            for body in ["not json", "[1,2]", "", #"{"command":["/bin/true"],"env":{"A=B":"1"}}"#, #"{"command":["/bin/true"],"profile":"nope"}"#] {
                let response = try await Self.post(client, body)
                #expect(response.status == .badRequest, "\(body): \(String(buffer: response.body))")
                #expect(try Self.object(response)["error"] != nil)
            }
        }
    }

    @Test("a body over the limit is refused with 413")
    func bodyLimit() async throws {
        try await Self.app(Self.api { $0.maxBodyBytes = 1024 }).test(.router) { client in
            let big = "{\"language\":\"python\",\"code\":\"" + String(repeating: "x", count: 4096) + "\"}"
            let response = try await Self.post(client, big)
            #expect(response.status == .contentTooLarge)
            #expect((try Self.object(response)["error"] as? [String: Any])?["code"] as? String == "payload_too_large")
        }
    }

    @Test("beyond the running and queued runs, 429 with Retry-After; nothing piles up; the server recovers")
    func backpressure() async throws {
        let api = try Self.api { $0.maxConcurrentRuns = 1; $0.maxQueuedRuns = 1 }
        try await Self.app(api).test(.router) { client in
            let slow = #"{"command":["/bin/sleep","1"]}"#
            async let first = Self.post(client, slow)
            async let second = Self.post(client, slow)
            // Let the first two take the slot and the queue place.
            for _ in 0..<100 where await api.admission.load != (1, 1) { try await Task.sleep(for: .milliseconds(10)) }
            #expect(await api.admission.load == (1, 1))
            let third = try await Self.post(client, slow)
            #expect(third.status == .tooManyRequests)
            #expect(third.headers[.retryAfter] == "1")
            #expect(try await first.status == .created)
            #expect(try await second.status == .created)
            #expect(await api.admission.load == (0, 0))
            let after = try await Self.post(client, #"{"command":["/bin/true"]}"#)
            #expect(after.status == .created)
        }
    }

    @Test("GET /metrics: Prometheus text with runs by status, spawn latency, rejections and load; results carry their phases")
    func metrics() async throws {
        try await Self.app(Self.api()).test(.router) { client in
            let ok = try Self.object(try await Self.post(client, #"{"command":["/bin/true"]}"#))
            let phases = try #require(ok["phases"] as? [String: Any])
            for key in ["queue_ms", "setup_ms", "spawn_ms", "run_ms", "teardown_ms"] {
                #expect((phases[key] as? Double ?? -1) >= 0, "\(key) in \(phases)")
            }
            _ = try await Self.post(client, #"{"command":["/bin/false"]}"#)
            _ = try await Self.post(client, #"{"command":["/bin/true"],"bogus":1}"#)
            let response = try await client.execute(uri: "/metrics", method: .get)
            #expect(response.status == .ok)
            #expect(response.headers[.contentType]?.hasPrefix("text/plain; version=0.0.4") == true)
            let text = String(buffer: response.body)
            var samples: [String: Double] = [:]
            for line in text.split(separator: "\n") where !line.hasPrefix("#") {
                // Exposition format: name{labels} value
                let parts = line.split(separator: " ")
                #expect(parts.count == 2, "malformed sample line: \(line)")
                samples[String(parts[0])] = Double(parts[1])
            }
            #expect(samples["sealbox_runs_total{status=\"ok\"}"] == 1)
            #expect(samples["sealbox_runs_total{status=\"exit_nonzero\"}"] == 1)
            #expect(samples["sealbox_requests_rejected_total{reason=\"bad_request\"}"] == 1)
            #expect(samples["sealbox_spawn_seconds_count"] == 2)
            #expect(samples["sealbox_spawn_seconds_bucket{le=\"+Inf\"}"] == 2)
            #expect((samples["sealbox_spawn_seconds_sum"] ?? 0) > 0)
            #expect(samples["sealbox_jails_live"] == 0 && samples["sealbox_queue_depth"] == 0)
            #expect(samples["sealbox_jails_max"] == 2 && samples["sealbox_queue_max"] == 4)
        }
    }

    @Test("serve --pool: a run without tools takes a prepared jail (phases.warm), one with other limits spawns cold; /metrics shows the pool")
    func pooled() async throws {
        let executor = try Executor(configuration: .init(dataDirectory: Self.repoRoot))
        let pool = try executor.startPool(JailPool.Configuration(size: 1))
        defer { executor.stopPool() }
        #expect(pool.waitUntilFull(timeout: 30))
        var configuration = ServerConfiguration(layout: try ServerTestSupport.temporaryLayout(), maxConcurrentRuns: 2, maxQueuedRuns: 4)
        configuration.authRequired = false
        let api = try SealboxAPI(configuration: configuration, executor: executor, access: try SQLiteAccessStore.open(layout: configuration.layout))
        try await Self.app(api).test(.router) { client in
            let warm = try Self.object(try await Self.post(client, #"{"language":"python","code":"print(6*7)"}"#))
            #expect(warm["status"] as? String == "ok" && warm["stdout"] as? String == "42\n", "\(warm)")
            #expect((warm["phases"] as? [String: Any])?["warm"] as? Bool == true, "\(warm)")
            let cold = try Self.object(try await Self.post(client, #"{"command":["/bin/true"],"limits":{"memory_bytes":67108864}}"#))
            #expect(cold["status"] as? String == "ok")
            #expect((cold["phases"] as? [String: Any])?["warm"] == nil)
            let text = String(buffer: try await client.execute(uri: "/metrics", method: .get).body)
            // Values as numbers: a gauge is written as a float ("1.0"), a counter as an integer.
            var samples: [String: Double] = [:]
            for line in text.split(separator: "\n") where !line.hasPrefix("#") {
                let parts = line.split(separator: " ")
                if parts.count == 2 { samples[String(parts[0])] = Double(parts[1]) }
            }
            #expect(samples["sealbox_pool_size"] == 1, "\(text)")
            #expect(samples["sealbox_pool_runs_total{outcome=\"hit\"}"] == 1, "\(text)")
            #expect(samples["sealbox_pool_runs_total{outcome=\"miss\"}"] == 0, "\(text)")
        }
    }

    @Test("a live server on a real socket: healthz and a run")
    func live() async throws {
        let api = try Self.api { $0.port = 0; $0.maxConcurrentRuns = 1 }
        let app = Application(router: api.router(), configuration: .init(address: .hostname("127.0.0.1", port: 0)))
        try await app.test(.live) { client in
            let health = try await client.execute(uri: "/healthz", method: .get)
            #expect(health.status == .ok)
            #expect(try Self.object(health)["status"] as? String == "ok")
            let run = try await Self.post(client, #"{"language":"sh","code":"echo live"}"#)
            #expect(run.status == .created)
            #expect(try Self.object(run)["stdout"] as? String == "live\n")
        }
    }
}
