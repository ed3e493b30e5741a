import Foundation
import Testing
@testable import SealboxLedger
@testable import SealboxSQLite

@Suite("Ledger: list and lookups")
struct LedgerQueryTests {
    /// s1/r1: mail×2 (sealed), pay (awaiting); s1/r2: mail (pending); s2/r3: pay (failed), get (sealed).
    static func populated(_ dir: TempLedgerDir) async throws -> Ledger {
        let ledger = try Ledger(path: dir.ledgerPath)
        let m1 = try await ledger.appendIntent(makeIntent(session: "s1", run: "r1", tool: "mail", key: "m"), state: .pending)
        _ = try await ledger.appendCompletion(makeCompletion(m1.seq))
        let m2 = try await ledger.appendIntent(makeIntent(session: "s1", run: "r1", tool: "mail", key: "m"), state: .pending)
        _ = try await ledger.appendCompletion(makeCompletion(m2.seq))
        _ = try await ledger.appendIntent(makeIntent(session: "s1", run: "r1", tool: "pay", effect: .irreversible, key: "p", approval: .human), state: .awaitingApproval)
        _ = try await ledger.appendIntent(makeIntent(session: "s1", run: "r2", tool: "mail", key: "m2"), state: .pending)
        let p = try await ledger.appendIntent(makeIntent(session: "s2", run: "r3", tool: "pay", effect: .irreversible, key: "p"), state: .pending)
        _ = try await ledger.appendCompletion(makeCompletion(p.seq, status: "tool_failed", irreversible: true, happened: false))
        let g = try await ledger.appendIntent(makeIntent(session: "s2", run: "r3", tool: "get", effect: .read, key: "g"), state: .pending)
        _ = try await ledger.appendCompletion(makeCompletion(g.seq))
        return ledger
    }

    @Test("list filters by session, run, tool, state; limit and afterSeq page")
    func listFilters() async throws {
        let dir = TempLedgerDir()
        defer { dir.cleanup() }
        let ledger = try await Self.populated(dir)
        // Intents are seqs 1, 3, 5, 6, 7, 9.
        #expect(try ledger.list(ListFilter()).map(\.intentSeq) == [1, 3, 5, 6, 7, 9])
        #expect(try ledger.list(ListFilter(sessionID: "s1")).map(\.intentSeq) == [1, 3, 5, 6])
        #expect(try ledger.list(ListFilter(sessionID: "s2")).map(\.intentSeq) == [7, 9])
        #expect(try ledger.list(ListFilter(runID: "r2")).map(\.intentSeq) == [6])
        #expect(try ledger.list(ListFilter(tool: "pay")).map(\.intentSeq) == [5, 7])
        #expect(try ledger.list(ListFilter(state: .sealed)).map(\.intentSeq) == [1, 3, 9])
        #expect(try ledger.list(ListFilter(state: .failed)).map(\.intentSeq) == [7])
        #expect(try ledger.list(ListFilter(state: .awaitingApproval)).map(\.intentSeq) == [5])
        #expect(try ledger.list(ListFilter(sessionID: "s1", tool: "mail", state: .sealed)).map(\.intentSeq) == [1, 3])
        #expect(try ledger.list(ListFilter(sessionID: "nobody")).isEmpty)
        #expect(try ledger.list(ListFilter(limit: 2)).map(\.intentSeq) == [1, 3])
        #expect(try ledger.list(ListFilter(limit: 2, afterSeq: 3)).map(\.intentSeq) == [5, 6])
        #expect(try ledger.list(ListFilter(limit: 0)).count == 1)  // clamped to at least 1
        #expect(try ledger.list(ListFilter(limit: 1_000_000)).count == 6)  // clamped to 10000

        let failed = try #require(try ledger.list(ListFilter(state: .failed)).first)
        #expect(failed == CallSummary(
            intentSeq: 7, completionSeq: 8, state: .failed, sessionID: "s2", runID: "r3", tool: "pay",
            effectClass: .irreversible, idempotencyKey: "p", approval: .auto,
            createdAtMs: failed.createdAtMs, updatedAtMs: failed.updatedAtMs))
        #expect(failed.updatedAtMs >= failed.createdAtMs)
    }

    @Test("latestCall finds the newest intent under (session, tool, key)")
    func latestCall() async throws {
        let dir = TempLedgerDir()
        defer { dir.cleanup() }
        let ledger = try await Self.populated(dir)
        #expect(try ledger.latestCall(sessionID: "s1", tool: "mail", idempotencyKey: "m")?.intentSeq == 3)
        #expect(try ledger.latestCall(sessionID: "s1", tool: "pay", idempotencyKey: "p")?.state == .awaitingApproval)
        // Same tool and key in another session is another call.
        #expect(try ledger.latestCall(sessionID: "s2", tool: "pay", idempotencyKey: "p")?.intentSeq == 7)
        #expect(try ledger.latestCall(sessionID: "s2", tool: "mail", idempotencyKey: "m") == nil)
        #expect(try ledger.call(intentSeq: 2) == nil)  // a completion, not an intent
    }

    @Test("records(forIntent:) and records(afterSeq:) read the chain; JSON uses snake_case keys")
    func recordsAndJSON() async throws {
        let dir = TempLedgerDir()
        defer { dir.cleanup() }
        let ledger = try await Self.populated(dir)
        #expect(try ledger.records(forIntent: 7).map(\.kind) == ["intent", "completion"])
        #expect(try ledger.records(forIntent: 5).map(\.seq) == [5])
        #expect(try ledger.records(afterSeq: 8, limit: 10).map(\.seq) == [9, 10])
        let completion = try #require(try ledger.record(seq: 8))
        #expect(completion.happened == false)
        #expect(completion.irreversible == true)
        #expect(completion.durationMs == 12.5)

        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        let json = String(decoding: try encoder.encode(completion), as: UTF8.self)
        #expect(json.contains(#""intent_seq":7"#))
        #expect(json.contains(#""prev_hash":""#))
        #expect(json.contains(#""response_digest":""#))
        #expect(try JSONDecoder().decode(EffectRecord.self, from: Data(json.utf8)) == completion)
        let summary = String(decoding: try encoder.encode(try ledger.call(intentSeq: 7)), as: UTF8.self)
        #expect(summary.contains(#""state":"failed""#))
        #expect(summary.contains(#""effect_class":"irreversible""#))
        #expect(summary.contains(#""completion_seq":8"#))
        let report = String(decoding: try encoder.encode(try ledger.verify()), as: UTF8.self)
        #expect(report == #"{"checked":10,"ok":true}"#)
    }
}
