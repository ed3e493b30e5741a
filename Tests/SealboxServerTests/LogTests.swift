import Foundation
import Hummingbird
import HummingbirdTesting
import Logging
import SealboxJail
@testable import SealboxServer
import Testing

/// `sealbox serve`'s logs: every line one JSON object, a line per request and per run.
@Suite("Structured logs")
struct LogTests {
    static func objects(_ sink: LogSink) throws -> [[String: Any]] {
        try sink.lines.map { line in
            try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any], "not a JSON object: \(line)")
        }
    }

    /// RFC 3339, UTC, milliseconds: 2025-05-01T09:30:12.345Z.
    static func isTimestamp(_ value: Any?) -> Bool {
        guard let text = value as? String else { return false }
        return text.wholeMatch(of: /\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z/) != nil
    }

    @Test("a run through the API logs its request and a run line with the phases, every line JSON")
    func runLine() async throws {
        let sink = LogSink.capture()
        let api = try APITests.api()
        let app = Application(router: api.router(), logger: ServerLogging.logger(sink: sink))
        try await app.test(.router) { client in
            let response = try await APITests.post(client, #"{"command":["/bin/sh","-c","exit 4"]}"#)
            #expect(response.status == .created)
            let id = try #require(try APITests.object(response)["id"] as? String)
            _ = try await APITests.post(client, #"{"bogus":1}"#)
            _ = try await client.execute(uri: "/healthz", method: .get)

            let lines = try Self.objects(sink)
            for line in lines {
                #expect(Self.isTimestamp(line["ts"]), "ts in \(line)")
                #expect(line["level"] is String && line["msg"] is String, "\(line)")
            }
            let run = try #require(lines.first { $0["msg"] as? String == "run finished" })
            #expect(run["run_id"] as? String == id)
            #expect(run["status"] as? String == "exit_nonzero")
            #expect(run["exit_code"] as? Int == 4)
            #expect(run["level"] as? String == "info")
            for key in ["queue_ms", "setup_ms", "spawn_ms", "run_ms", "teardown_ms", "wall_ms"] {
                #expect((run[key] as? Double ?? -1) >= 0, "\(key) in \(run)")
            }
            #expect(run["session"] == nil && run["step"] == nil)
            #expect(run["tenant"] as? String == "default")  // --no-auth's tenant

            let requests = lines.filter { $0["msg"] as? String == "request" }
            #expect(requests.map { $0["status"] as? Int } == [201, 400, 200])
            #expect(requests.map { $0["path"] as? String } == ["/v1/runs", "/v1/runs", "/healthz"])
            #expect(requests.map { $0["method"] as? String } == ["POST", "POST", "GET"])
            #expect(requests.allSatisfy { ($0["duration_ms"] as? Double ?? -1) >= 0 })
        }
    }

    @Test("metadata is flattened with snake_case keys; numbers stay numbers; ts, level and msg cannot be replaced")
    func flattening() throws {
        let sink = LogSink.capture()
        var logger = ServerLogging.logger(level: .debug, sink: sink)
        logger[metadataKey: "hb.request.id"] = "abc"
        logger.debug("quote \" backslash \\ newline \n tab \t bell \u{07} é", metadata: [
            "count": .stringConvertible(3), "ratio": .stringConvertible(0.25), "ok": .stringConvertible(true),
            "msg": "not the message", "ts": "not a time", "nested": ["Inner.Key": "v", "list": ["a", .stringConvertible(1)]],
        ])
        logger.trace("below the level: not written")
        let lines = try Self.objects(sink)
        #expect(lines.count == 1)
        let line = try #require(lines.first)
        #expect(line["msg"] as? String == "quote \" backslash \\ newline \n tab \t bell \u{07} é")
        #expect(Self.isTimestamp(line["ts"]))
        #expect(line["level"] as? String == "debug")
        #expect(line["meta_msg"] as? String == "not the message" && line["meta_ts"] as? String == "not a time")
        #expect(line["hb_request_id"] as? String == "abc")
        #expect(line["count"] as? Int == 3 && line["ratio"] as? Double == 0.25 && line["ok"] as? Bool == true)
        let nested = try #require(line["nested"] as? [String: Any])
        #expect(nested["inner_key"] as? String == "v")
        #expect((nested["list"] as? [Any])?.count == 2)
        // Sorted keys, one line.
        let raw = try #require(sink.lines.first)
        #expect(raw.hasPrefix(#"{"count":3,"hb_request_id":"abc","level":"debug""#), "\(raw)")
    }

    @Test("timestamps: RFC 3339 UTC with milliseconds, the calendar right across leap days and centuries")
    func timestamps() {
        #expect(JSONLogHandler.timestamp(millisecondsSinceEpoch: 0) == "1970-01-01T00:00:00.000Z")
        #expect(JSONLogHandler.timestamp(millisecondsSinceEpoch: 951_782_399_999) == "2000-02-28T23:59:59.999Z")
        #expect(JSONLogHandler.timestamp(millisecondsSinceEpoch: 951_868_800_007) == "2000-03-01T00:00:00.007Z")
        #expect(JSONLogHandler.timestamp(millisecondsSinceEpoch: 1_709_210_096_123) == "2024-02-29T12:34:56.123Z")
        #expect(JSONLogHandler.timestamp(millisecondsSinceEpoch: 4_102_444_800_000) == "2100-01-01T00:00:00.000Z")
        // Against Foundation's own formatter for now.
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        let now = Date()
        let ms = Int64((now.timeIntervalSince1970 * 1000).rounded(.down))
        #expect(JSONLogHandler.timestamp(millisecondsSinceEpoch: ms) == formatter.string(from: Date(timeIntervalSince1970: Double(ms) / 1000)))
    }

    @Test("a huge value is cut, so one line stays bounded")
    func bounded() throws {
        let sink = LogSink.capture()
        ServerLogging.logger(sink: sink).info("big", metadata: ["blob": .string(String(repeating: "é", count: 10_000))])
        let line = try #require(try Self.objects(sink).first)
        let blob = try #require(line["blob"] as? String)
        #expect(blob.utf8.count < JSONLogHandler.maxStringBytes + 32)
        #expect(blob.hasSuffix("…(truncated)"))
        #expect(blob.hasPrefix("éé"))
    }
}
