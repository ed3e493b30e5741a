import Foundation
import SealboxTestSupport
import Testing

/// `sealbox serve` traced into a local OTLP receiver: the request span joins the caller's
/// `traceparent`, the run and its phases are under it, the broker's tool call is under the run
/// and its http request carries the trace to the world; with no OTEL_* variable nothing is
/// exported.
@Suite("tracing end to end", .needsRoot, .serialized)
struct TracingEndToEndTests {
    static let traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
    static let callerSpanID = "00f067aa0ba902b7"
    static let traceparent = "00-\(traceID)-\(callerSpanID)-01"
    /// Long enough for a loaded 2-core machine; the wait ends as soon as the spans arrive.
    static let deadline: Duration = .seconds(60)

    static func otel(_ port: Int) -> [String: String] {
        ["OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:\(port)", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json",
         "OTEL_BSP_SCHEDULE_DELAY": "100"]
    }

    /// The request span, the run span and the phases of `traceID`'s trace, once all arrived.
    struct RunTrace {
        var request: ExportedSpan
        var run: ExportedSpan
        var phases: [String: ExportedSpan]
        var queue: ExportedSpan?

        init?(_ spans: [ExportedSpan]) {
            let mine = spans.filter { $0.traceID == TracingEndToEndTests.traceID }
            guard let request = mine.first(where: { $0.parentSpanID == TracingEndToEndTests.callerSpanID }),
                  let run = mine.first(where: { $0.name == "sealbox.run" }) else { return nil }
            var phases: [String: ExportedSpan] = [:]
            for span in mine where span.name.hasPrefix("sealbox.phase.") { phases[String(span.name.dropFirst("sealbox.phase.".count))] = span }
            guard ["setup", "spawn", "run", "teardown", "queue"].allSatisfy({ phases[$0] != nil }) else { return nil }
            self.request = request
            self.run = run
            self.queue = phases.removeValue(forKey: "queue")
            self.phases = phases
        }
    }

    @Test("POST /v1/runs with a traceparent: request, run and phase spans in the caller's trace, exported while serve runs")
    func requestRunAndPhases() async throws {
        try await LoopbackReceiver.with { receiver, otlpPort in
            let server = try await offPool { try ServeProcess([], environment: Self.otel(otlpPort)) }
            let port = server.port, key = server.key
            let ran = try await offPool {
                try RawHTTP.post(port: port, "/v1/runs", key: key, body: #"{"language":"python","code":"print(6*7)"}"#,
                                 headers: ["traceparent": Self.traceparent])
            }
            #expect(ran.status == 201 && ran.json?["stdout"] as? String == "42\n", "\(ran.status) \(ran.body.prefix(400))")
            let runID = try #require(ran.json?["id"] as? String)

            let arrived = await receiver.waitUntil(timeout: Self.deadline) { RunTrace($0.received) != nil }
            let trace = try #require(arrived ? RunTrace(receiver.received) : nil, "spans that arrived: \(receiver.received)")
            #expect(trace.request.service == "sealbox")
            #expect(trace.request.attributes["http.route"] == "/v1/runs" || trace.request.name == "/v1/runs", "\(trace.request)")
            #expect(trace.request.attributes["http.response.status_code"] == "201", "\(trace.request)")
            #expect(trace.run.parentSpanID == trace.request.spanID, "the run is not under the request: \(trace.run) / \(trace.request)")
            #expect(trace.run.attributes["sealbox.run.id"] == runID && trace.run.attributes["sealbox.run.status"] == "ok", "\(trace.run)")
            #expect(trace.run.attributes["sealbox.run.exit_code"] == "0", "\(trace.run)")
            for (name, phase) in trace.phases {
                #expect(phase.parentSpanID == trace.run.spanID, "phase \(name) is not under the run: \(phase)")
            }
            #expect(trace.queue?.parentSpanID == trace.request.spanID, "\(String(describing: trace.queue))")
            // Nothing the run was given travels in a span: not its code.
            #expect(!receiver.received.contains { $0.attributes.values.contains { $0.contains("6*7") } }, "\(receiver.received)")

            // A malformed traceparent is ignored (a trace of its own), never an error, and the
            // tracer's complaint about it does not log the request's headers (the API key).
            let malformed = try await offPool {
                try RawHTTP.post(port: port, "/v1/runs", key: key, body: #"{"language":"sh","code":"echo hi"}"#,
                                 headers: ["traceparent": "00-\(Self.traceID.uppercased())-zz-01"])
            }
            #expect(malformed.status == 201 && malformed.json?["status"] as? String == "ok", "\(malformed.status) \(malformed.body.prefix(300))")
            #expect(server.stop() == 0)
            #expect(!server.logLines.contains { $0.contains(key) }, "the API key is in serve's log")
        }
    }

    @Test("a broker http tool call: a tool-call span under the run, and the world sees a traceparent of the same trace")
    func toolCallAndWorld() async throws {
        try await LoopbackReceiver.with { receiver, port in
            let dir = NSTemporaryDirectory() + "sealbox-tracing-\(UUID().uuidString.prefix(8))"
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(atPath: dir) }
            let tools = dir + "/tools.yaml"
            try """
                tools:
                  hello:
                    kind: http
                    method: GET
                    url: "http://127.0.0.1:\(port)/hello"
                    allow_hosts: [127.0.0.1]
                    effect: read
                """.write(toFile: tools, atomically: true, encoding: .utf8)
            let server = try await offPool { try ServeProcess(["--tools", tools], environment: Self.otel(port)) }
            let servePort = server.port, key = server.key
            let code = #"import sealbox; print(sealbox.call('hello', {})['status'])"#
            let ran = try await offPool {
                try RawHTTP.post(port: servePort, "/v1/runs", key: key, body: #"{"language":"python","code":"\#(code)","tools":["hello"]}"#,
                                 headers: ["traceparent": Self.traceparent])
            }
            #expect(ran.status == 201 && ran.json?["stdout"] as? String == "200\n", "\(ran.status) \(ran.body.prefix(600))")
            let runID = try #require(ran.json?["id"] as? String)

            let arrived = await receiver.waitUntil(timeout: Self.deadline) { r in
                RunTrace(r.received) != nil && r.received.contains { $0.name == "sealbox.tool_call" && $0.traceID == Self.traceID }
            }
            #expect(arrived, "spans that arrived: \(receiver.received)")
            let trace = try #require(RunTrace(receiver.received))
            let call = try #require(receiver.received.first { $0.name == "sealbox.tool_call" && $0.traceID == Self.traceID })
            #expect(call.service == "sealbox-broker", "\(call)")
            #expect(call.parentSpanID == trace.run.spanID, "the tool call is not under the run: \(call) / \(trace.run)")
            #expect(call.attributes["sealbox.tool.name"] == "hello" && call.attributes["sealbox.tool.effect_class"] == "read", "\(call)")
            #expect(call.attributes["sealbox.run.id"] == runID, "\(call)")
            #expect(call.attributes["sealbox.effect.seq"] != nil && call.attributes["sealbox.error.code"] == nil, "\(call)")

            let seen = receiver.traceparentsSeenByWorld
            #expect(seen.count == 1, "\(seen)")
            let parts = (seen.first ?? "").split(separator: "-").map(String.init)
            #expect(parts.count == 4 && parts[1] == Self.traceID && parts[2] == call.spanID,
                    "the world's traceparent \(seen) is not the tool call's span \(call.spanID) in trace \(Self.traceID)")
            #expect(server.stop() == 0)
        }
    }

    @Test("with no OTEL_* variable nothing is exported, and serve answers as before")
    func offByDefault() async throws {
        try await LoopbackReceiver.with { receiver, _ in
            var cleared: [String: String] = [:]
            for name in ProcessInfo.processInfo.environment.keys where name.hasPrefix("OTEL_") { cleared[name] = "" }
            let environment = cleared
            let server = try await offPool { try ServeProcess([], environment: environment) }
            let port = server.port, key = server.key
            let ran = try await offPool {
                try RawHTTP.post(port: port, "/v1/runs", key: key, body: #"{"language":"sh","code":"echo hi"}"#,
                                 headers: ["traceparent": Self.traceparent])
            }
            #expect(ran.status == 201 && ran.json?["stdout"] as? String == "hi\n", "\(ran.status) \(ran.body.prefix(300))")
            #expect(ran.headers["traceparent"] == nil)
            // A graceful stop flushes an exporter: had there been one, its spans would be in
            // before serve exits.
            #expect(server.stop() == 0)
            #expect(receiver.exportRequests == 0 && receiver.received.isEmpty, "\(receiver.received)")
        }
    }
}
