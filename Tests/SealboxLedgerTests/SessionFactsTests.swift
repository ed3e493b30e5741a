import Foundation
import Testing
@testable import SealboxLedger
@testable import SealboxSQLite

/// `session facts` over a real checkpoint store and a real effect log.
@Suite("Session facts")
struct SessionFactsTests {
    static func result(run: String, status: String = "ok") -> String {
        #"{"id":"\#(run)","status":"\#(status)","exit_code":0}"#
    }

    @Test("true, authority and unsafe, with the step of every effect; a fork sees inherited and sibling facts")
    func classification() async throws {
        let dir = TempLedgerDir()
        defer { dir.cleanup() }
        let store = try SQLiteCheckpointStore(path: dir.url.path + "/checkpoints.sqlite")
        let ledger = try Ledger(path: dir.ledgerPath)
        let s = try store.createSession()

        // Step "a" (run r1) truncated a table and sealed.
        try store.recordAttempt(session: s, step: "a", codeDigest: "d", runID: "r1")
        let truncate = try await ledger.appendIntent(makeIntent(session: s, run: "r1", tool: "truncate", effect: .irreversible), state: .pending)
        _ = try await ledger.appendCompletion(makeCompletion(truncate.seq, irreversible: true))
        try store.seal(session: s, step: "a", codeDigest: "d", result: Self.result(run: "r1"), ledgerCursor: truncate.seq + 1)

        // Step "b" (run r2) was killed: its runner is gone, mid-way through three calls.
        try store.recordAttempt(session: s, step: "b", codeDigest: "d", runID: "r2", pid: 1, pidStart: "not-init")
        let cutover = try await ledger.appendIntent(makeIntent(session: s, run: "r2", tool: "dns_cutover", effect: .irreversible), state: .pending)
        let copy = try await ledger.appendIntent(makeIntent(session: s, run: "r2", tool: "copy", effect: .idempotent), state: .pending)
        let charge = try await ledger.appendIntent(makeIntent(session: s, run: "r2", tool: "charge", effect: .irreversible, approval: .human), state: .awaitingApproval)
        _ = try await ledger.appendGrant(GrantInput(tokenID: "tk-live", runID: "r2", sessionID: s, tools: ["copy", "dns_cutover"],
                                                    expiresAtMs: Int64(Date().timeIntervalSince1970 * 1000) + 60_000))

        let facts = try SessionFacts.gather(store: store, ledger: ledger, session: s)
        #expect(!facts.clean)
        #expect(facts.whatIsTrue.steps.map(\.step) == ["a"] && facts.whatIsTrue.steps[0].runID == "r1")
        #expect(facts.whatIsTrue.effects.map(\.seq) == [truncate.seq] && facts.whatIsTrue.effects[0].step == "a")
        #expect(facts.unsafe.inDoubt.map(\.seq) == [cutover.seq])
        #expect(facts.unsafe.inDoubt[0].action?.contains("sealbox log resolve \(cutover.seq)") == true)
        #expect(facts.unsafe.interrupted.map(\.seq) == [copy.seq])
        #expect(facts.unsafe.unsealedSteps.map(\.step) == ["b"] && facts.unsafe.unsealedSteps[0].runnerAlive == false)
        #expect(facts.authority.approvals.map(\.seq) == [charge.seq] && facts.authority.approvals[0].step == "b")
        #expect(facts.authority.tokens.map(\.tokenID) == ["tk-live"])

        // A fork at "a" inherits the truncate; the original's later irreversible cutover, once
        // resolved as happened, binds the fork as a sibling fact; its reversible calls do not.
        // (A broker opening the log marks the runner-less intents first, as a re-run does.)
        _ = try await ledger.markInterrupted(actor: "broker:test")
        _ = try await ledger.resolve(intentSeq: cutover.seq, happened: true, actor: "operator:test", note: nil)
        let fork = try store.fork(session: s, atStep: "a")
        _ = try await ledger.recordSession(fork.id, root: s)
        let forkFacts = try SessionFacts.gather(store: store, ledger: ledger, session: fork.id)
        let origins = Dictionary(uniqueKeysWithValues: forkFacts.whatIsTrue.effects.map { ($0.seq, $0.origin) })
        #expect(origins == [truncate.seq: .inherited, cutover.seq: .sibling])
        #expect(forkFacts.unsafe.unsealedSteps.isEmpty && forkFacts.unsafe.interrupted.isEmpty)
        #expect(forkFacts.forkedFrom == s && Set(forkFacts.family) == [s, fork.id])
        // The irreversible charge still awaits approval in the original: it binds the fork too.
        #expect(forkFacts.authority.approvals.map(\.seq) == [charge.seq])
    }

    @Test("a session that never used tools has only steps; no ledger is fine")
    func withoutLedger() throws {
        let dir = TempLedgerDir()
        defer { dir.cleanup() }
        let store = try SQLiteCheckpointStore(path: dir.url.path + "/checkpoints.sqlite")
        let s = try store.createSession()
        try store.seal(session: s, step: "only", codeDigest: "d", result: Self.result(run: "r9"), ledgerCursor: nil)
        let facts = try SessionFacts.gather(store: store, ledger: nil, session: s)
        #expect(facts.clean && facts.whatIsTrue.steps.count == 1 && facts.whatIsTrue.effects.isEmpty)
        #expect(throws: CheckpointError.self) { try SessionFacts.gather(store: store, ledger: nil, session: "s0") }
        let json = String(decoding: try JSONEncoder().encode(facts), as: UTF8.self)
        #expect(json.contains("\"true\":{") && json.contains("\"unsealed_steps\":[]"))
    }
}
