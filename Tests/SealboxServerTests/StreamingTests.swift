import Foundation
import Hummingbird
import HummingbirdTesting
import Logging
import SealboxJail
import SealboxRuntime
@testable import SealboxServer
import SealboxSQLite
import Testing

/// POST /v1/runs with Accept: application/x-ndjson or text/event-stream, on a live socket
/// with real jails: output arrives while the program runs, admission applies, and a client
/// that goes away leaks nothing.
@Suite("Streaming runs")
struct StreamingTests {
    static func api(_ configure: (inout ServerConfiguration) -> Void = { _ in }) throws -> SealboxAPI {
        var configuration = ServerConfiguration(port: 0, layout: try ServerTestSupport.temporaryLayout(), maxConcurrentRuns: 2, maxQueuedRuns: 4)
        configuration.authRequired = false  // keys and tenants: `tenancy` below
        configure(&configuration)
        return try SealboxAPI(configuration: configuration, executor: try APITests.executor.get(),
                              access: try SQLiteAccessStore.open(layout: configuration.layout))
    }

    /// A live server for `api` on an ephemeral port; `body` gets the port.
    static func live(_ api: SealboxAPI, logger: Logger = Logger(label: "test"), _ body: @escaping @Sendable (Int) async throws -> Void) async throws {
        let app = Application(router: api.router(), configuration: .init(address: .hostname("127.0.0.1", port: 0)), logger: logger)
        try await app.test(.live) { client in
            try await body(try #require(client.port))
        }
    }

    typealias Event = (at: ContinuousClock.Instant, object: [String: Any])

    static func ndjson(_ response: StreamedResponse) throws -> [Event] {
        try response.lines.map { line in
            (line.at, try #require(try JSONSerialization.jsonObject(with: Data(line.text.utf8)) as? [String: Any], "not a JSON object: \(line.text)"))
        }
    }

    /// SSE frames: "event: NAME" and "data: JSON" lines, a blank line after each event.
    static func sse(_ response: StreamedResponse) throws -> [Event] {
        var events: [Event] = []
        var name: String?
        for line in response.lines {
            if line.text.hasPrefix("event: ") {
                name = String(line.text.dropFirst(7))
            } else if line.text.hasPrefix("data: ") {
                let object = try #require(try JSONSerialization.jsonObject(with: Data(line.text.dropFirst(6).utf8)) as? [String: Any])
                #expect(object["event"] as? String == name, "SSE event name \(name ?? "none") vs \(object)")
                events.append((line.at, object))
            } else {
                #expect(line.text.isEmpty, "unexpected SSE line \(line.text)")
                name = nil
            }
        }
        return events
    }

    static func names(_ events: [Event]) -> [String] { events.map { $0.object["event"] as? String ?? "?" } }

    static func text(_ events: [Event], _ stream: String) -> String {
        events.filter { $0.object["event"] as? String == stream }.compactMap { $0.object["data"] as? String }.joined()
    }

    static let twoLines = #"{"command":["/bin/sh","-c","echo first; sleep 2; echo second"]}"#

    /// Buffered output would reach the client in the same instant as the result; streamed, the
    /// first line comes about 2 s earlier. Half of that leaves room for a loaded machine (the
    /// whole suite on two cores delays lines by hundreds of milliseconds).
    static let streamedLead = Duration.seconds(1)

    @Test("NDJSON: started, the first line while the program sleeps, the second, then the same result a plain POST answers")
    func ndjsonStream() async throws {
        let api = try Self.api()
        try await Self.live(api) { port in
            let response = try await StreamClient.post(port: port, accept: "application/x-ndjson", body: Self.twoLines)
            #expect(response.status == 200)
            #expect(response.headers["content-type"] == "application/x-ndjson")
            #expect(response.headers["transfer-encoding"] == "chunked")
            let events = try Self.ndjson(response)
            #expect(Self.names(events) == ["started", "stdout", "stdout", "result"])
            let firstOut = try #require(events.first { $0.object["event"] as? String == "stdout" })
            #expect(firstOut.object["data"] as? String == "first\n")
            let last = try #require(events.last)
            #expect(last.at - firstOut.at > Self.streamedLead, "first line only \(last.at - firstOut.at) before the result")
            let result = try #require(last.object["result"] as? [String: Any])
            #expect(result["status"] as? String == "ok")
            #expect(result["stdout"] as? String == "first\nsecond\n")
            #expect((result["phases"] as? [String: Any])?["queue_ms"] is Double)
            let id = try #require(result["id"] as? String)
            #expect(events[0].object["id"] as? String == id)
            // It is a run like any other: stored, counted, its slot free again.
            #expect(api.store.get(id, visibleTo: .unauthenticated)?.stdout == "first\nsecond\n")
            #expect(api.metrics.render(running: 0, queued: 0, maxRunning: 1, maxQueued: 1).contains("sealbox_runs_total{status=\"ok\"} 1\n"))
            #expect(await api.admission.load == (0, 0))
        }
    }

    @Test("SSE: the same events as `event:` + `data:` frames, output before the result")
    func sseStream() async throws {
        try await Self.live(try Self.api()) { port in
            let body = #"{"command":["/bin/sh","-c","echo out; echo err >&2; sleep 2; exit 3"]}"#
            let response = try await StreamClient.post(port: port, accept: "text/event-stream", body: body)
            #expect(response.status == 200)
            #expect(response.headers["content-type"] == "text/event-stream")
            let events = try Self.sse(response)
            #expect(Set(Self.names(events)) == ["started", "stdout", "stderr", "result"])
            #expect(Self.names(events).first == "started" && Self.names(events).last == "result")
            #expect(Self.text(events, "stdout") == "out\n" && Self.text(events, "stderr") == "err\n")
            let firstOut = try #require(events.first { $0.object["event"] as? String == "stdout" })
            #expect(try #require(events.last).at - firstOut.at > Self.streamedLead)
            let result = try #require(events.last?.object["result"] as? [String: Any])
            #expect(result["status"] as? String == "exit_nonzero" && result["exit_code"] as? Int == 3)
        }
    }

    @Test("bytes that are not UTF-8 come as data_base64; a character split across two writes stays text")
    func encodings() async throws {
        try await Self.live(try Self.api()) { port in
            let body = #"{"command":["/bin/sh","-c","printf '\\303'; sleep 0.3; printf '\\251\\n'; sleep 0.3; printf '\\377' >&2"]}"#
            let events = try Self.ndjson(try await StreamClient.post(port: port, accept: "application/x-ndjson", body: body))
            #expect(Self.text(events, "stdout") == "é\n")
            #expect(!events.contains { $0.object["event"] as? String == "stdout" && $0.object["data_base64"] != nil })
            let binary = try #require(events.first { $0.object["event"] as? String == "stderr" })
            #expect(binary.object["data_base64"] as? String == "/w==")
            #expect(binary.object["data"] == nil)
        }
    }

    @Test("admission is the same as for plain runs: a full queue answers 429 before any stream")
    func admission() async throws {
        let api = try Self.api { $0.maxConcurrentRuns = 1; $0.maxQueuedRuns = 0 }
        try await Self.live(api) { port in
            // Long enough that the second request arrives while the first still runs, even on
            // a loaded machine (with `sleep 1`, CI once saw the first finish before it).
            let slow = #"{"command":["/bin/sleep","5"]}"#
            async let first = StreamClient.post(port: port, accept: "application/x-ndjson", body: slow)
            for _ in 0..<200 where await api.admission.load != (1, 0) { try await Task.sleep(for: .milliseconds(10)) }
            #expect(await api.admission.load == (1, 0))
            let refused = try await StreamClient.post(port: port, accept: "application/x-ndjson", body: slow)
            #expect(refused.status == 429)
            #expect(refused.headers["retry-after"] == "1")
            #expect(refused.headers["content-type"] == "application/json")
            let error = try #require(try JSONSerialization.jsonObject(with: Data(refused.body)) as? [String: Any])
            #expect((error["error"] as? [String: Any])?["code"] as? String == "busy")
            #expect(Self.names(try Self.ndjson(try await first)).last == "result")
            #expect(await api.admission.load == (0, 0))
        }
    }

    @Test("a client that disconnects mid-stream: the run still ends (its timeout kills it), lands in the store and frees its slot")
    func disconnect() async throws {
        let api = try Self.api { $0.maxConcurrentRuns = 1 }
        let marker = "31.4159"  // a sleep argument no other process on the host uses
        try await Self.live(api) { port in
            let body = #"{"command":["/bin/sh","-c","echo going; exec sleep \#(marker)"],"limits":{"timeout_ms":4000}}"#
            let cut = try await StreamClient.post(port: port, accept: "application/x-ndjson", body: body) { $0.contains(#""event":"stdout""#) }
            let id = try #require(try Self.ndjson(cut).first?.object["id"] as? String)
            #expect(api.store.get(id, visibleTo: .unauthenticated) == nil, "the run should still be going when the client leaves")
            var stored: RunResult?
            for _ in 0..<300 {
                stored = api.store.get(id, visibleTo: .unauthenticated)
                if stored != nil, await api.admission.load == (0, 0) { break }
                try await Task.sleep(for: .milliseconds(100))
            }
            #expect(stored?.status == .timeout)
            #expect(await api.admission.load == (0, 0))
            #expect(Self.processes(containing: "sleep \(marker)").isEmpty)
            // The server takes the next run at once.
            let next = try Self.ndjson(try await StreamClient.post(port: port, accept: "application/x-ndjson", body: #"{"command":["/bin/true"]}"#))
            #expect(Self.names(next) == ["started", "result"])
        }
    }

    @Test("a streamed session step with a tool: the id announced first is the run's (and the broker grant's); the run's log line names session and step")
    func sessionStep() async throws {
        let service = try await SessionAPITests.service()
        defer { service.broker.stop() }
        let sink = LogSink.capture()
        try await Self.live(service.api, logger: ServerLogging.logger(sink: sink)) { port in
            let created = try await StreamClient.post(port: port, path: "/v1/sessions", accept: "application/json", body: "{}")
            #expect(created.status == 201)
            let session = try #require((try JSONSerialization.jsonObject(with: Data(created.body)) as? [String: Any])?["id"] as? String)
            let code = "import sealbox, sys; print('calling', flush=True); sealbox.call('cutover', {}, key='k1'); print('called')"
            let response = try await StreamClient.post(port: port, accept: "application/x-ndjson",
                                                       body: SessionAPITests.step(session, "cut", code, tools: ["cutover"]))
            let events = try Self.ndjson(response)
            #expect(Self.names(events) == ["started", "stdout", "stdout", "result"], "\(response.lines.map(\.text))")
            let result = try #require(events.last?.object["result"] as? [String: Any])
            #expect(result["status"] as? String == "ok", "\(result)")
            #expect(result["checkpoint"] is Int)
            #expect(events.first?.object["id"] as? String == result["id"] as? String)
            #expect(SessionAPITests.worldLines(service) == 1)
            let run = try #require(try LogTests.objects(sink).first { $0["msg"] as? String == "run finished" })
            #expect(run["session"] as? String == session && run["step"] as? String == "cut" && run["stream"] as? String == "ndjson")
            #expect(run["run_id"] as? String == result["id"] as? String)
        }
    }

    @Test("auth applies before any stream: no key is a 401; a key's streamed run is its tenant's, in the store and the log line")
    func tenancy() async throws {
        let state = TestState()
        defer { state.remove() }
        let api = try state.api()
        let keys = try AuthAPITests.keys(api)
        let sink = LogSink.capture()
        let app = Application(router: api.router(), logger: ServerLogging.logger(sink: sink))
        try await app.test(.router) { client in
            let body = ByteBuffer(string: #"{"command":["/bin/sh","-c","echo mine"]}"#)
            let anonymous = try await client.execute(uri: "/v1/runs", method: .post, headers: [.accept: "application/x-ndjson"], body: body)
            #expect(anonymous.status == .unauthorized)
            #expect(anonymous.headers[.contentType] == "application/json")
            let streamed = try await client.execute(uri: "/v1/runs", method: .post,
                                                    headers: [.accept: "application/x-ndjson", .authorization: "Bearer \(keys.a.key)"], body: body)
            #expect(streamed.status == .ok)
            let last = try #require(String(buffer: streamed.body).split(separator: "\n").last)
            let result = try #require((try JSONSerialization.jsonObject(with: Data(last.utf8)) as? [String: Any])?["result"] as? [String: Any])
            let id = try #require(result["id"] as? String)
            #expect(api.store.tenant(of: id) == "tenant-a")
            #expect(try await client.execute(uri: "/v1/runs/\(id)", method: .get, headers: [.authorization: "Bearer \(keys.b.key)"]).status == .notFound)
            let lines = try LogTests.objects(sink)
            #expect(lines.first { $0["msg"] as? String == "run finished" }?["tenant"] as? String == "tenant-a")
            #expect(lines.contains { $0["msg"] as? String == "request" && $0["status"] as? Int == 401 })
        }
    }

    @Test("a bad body is a 400 JSON error, not a stream; Accept without a stream type gets the plain 201")
    func notStreamed() async throws {
        try await APITests.app(try Self.api()).test(.router) { client in
            let bad = try await client.execute(uri: "/v1/runs", method: .post, headers: [.accept: "application/x-ndjson"],
                                               body: ByteBuffer(string: #"{"language":"python"}"#))
            #expect(bad.status == .badRequest)
            #expect(bad.headers[.contentType] == "application/json")
            let plain = try await client.execute(uri: "/v1/runs", method: .post, headers: [.accept: "application/json, text/plain"],
                                                 body: ByteBuffer(string: #"{"command":["/bin/true"]}"#))
            #expect(plain.status == .created)
        }
    }

    @Test("the Accept header picks the format: first streaming type listed, parameters and case ignored")
    func acceptParsing() {
        #expect(RunStreamFormat(accept: "application/x-ndjson") == .ndjson)
        #expect(RunStreamFormat(accept: "Text/Event-Stream; charset=utf-8") == .serverSentEvents)
        #expect(RunStreamFormat(accept: "application/json, text/event-stream;q=0.5, application/x-ndjson") == .serverSentEvents)
        #expect(RunStreamFormat(accept: "application/json") == nil)
        #expect(RunStreamFormat(accept: "*/*") == nil)
        #expect(RunStreamFormat(accept: nil) == nil)
    }

    @Test("the UTF-8 joiner holds back only an unfinished character")
    func joiner() {
        var joiner = UTF8ChunkJoiner()
        #expect(joiner.take([0x61, 0xE2, 0x82]) == [0x61])          // "a" + 2 of the 3 bytes of "€"
        #expect(joiner.take([0xAC, 0x62]) == [0xE2, 0x82, 0xAC, 0x62])
        #expect(joiner.take([0xF0, 0x9F]) == [])
        #expect(joiner.flush() == [0xF0, 0x9F])
        #expect(joiner.take([]) == [])
        #expect(joiner.take([0xFF]) == [0xFF])                       // not a lead byte: sent as it is
        #expect(joiner.take([0x80, 0x80, 0x80, 0x80]) == [0x80, 0x80, 0x80, 0x80])
    }

    static func processes(containing marker: String) -> [String] {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return entries.compactMap { pid -> String? in
            guard Int(pid) != nil, let data = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") else { return nil }
            let cmdline = String(decoding: data.map { $0 == 0 ? 32 : $0 }, as: UTF8.self)
            return cmdline.contains(marker) ? "\(pid): \(cmdline)" : nil
        }
    }
}
