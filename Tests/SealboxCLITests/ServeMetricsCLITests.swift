import Foundation
import SealboxTestSupport
import Testing

/// /metrics of a real `sealbox serve`: one registry (swift-prometheus) holds sealbox's own
/// metrics and Hummingbird's per-route HTTP metrics (swift-metrics, bootstrapped by serve).
@Suite("serve metrics", .needsRoot)
struct ServeMetricsCLITests {
    @Test("GET /metrics: sealbox's metrics and per-route HTTP counts and latencies, labelled by route, method and status")
    func perRouteMetrics() async throws {
        let server = try ServeProcess()
        defer { _ = server.stop() }
        let port = server.port, key = server.key, operatorKey = server.operatorKey
        let ran = try await offPool { try RawHTTP.post(port: port, "/v1/runs", key: key, body: #"{"language":"sh","code":"echo hi"}"#) }
        #expect(ran.status == 201, "\(ran.status) \(ran.body.prefix(300))")
        let refused = try await offPool { try RawHTTP.post(port: port, "/v1/runs", key: "sbx_nope_nope", body: "{}") }
        #expect(refused.status == 401)
        let text = try await offPool { try RawHTTP.get(port: port, "/metrics", key: operatorKey) }.body
        var samples: [String: Double] = [:]
        for line in text.split(separator: "\n") where !line.hasPrefix("#") {
            let parts = line.split(separator: " ")
            #expect(parts.count == 2, "malformed sample line: \(line)")
            if parts.count == 2 { samples[String(parts[0])] = Double(parts[1]) }
        }
        #expect(samples["sealbox_runs_total{status=\"ok\"}"] == 1, "\(text.prefix(2000))")
        func requests(_ status: Int) -> Double {
            samples.filter { $0.key.hasPrefix("sealbox_http_requests_total{") && $0.key.contains("method=\"POST\"")
                && $0.key.contains("v1/runs") && $0.key.contains("status=\"\(status)\"") }.values.reduce(0, +)
        }
        #expect(requests(201) == 1, "\(text.prefix(3000))")
        #expect(requests(401) == 1, "\(text.prefix(3000))")
        let durations = samples.filter { $0.key.hasPrefix("sealbox_http_request_duration_seconds_count{") && $0.key.contains("v1/runs") }
        #expect(durations.values.reduce(0, +) >= 1, "\(text.prefix(3000))")
        #expect(text.contains("# TYPE sealbox_http_requests_total counter"), "\(text.prefix(600))")
    }
}
