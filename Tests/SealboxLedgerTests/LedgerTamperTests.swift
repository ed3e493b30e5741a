import Foundation
import Testing
@testable import SealboxLedger
@testable import SealboxSQLite

/// Edits made through a separate SQLite connection, as someone with write access to the file
/// would. The ledger's append-only triggers refuse them, so the tamperer drops the triggers first.
@Suite("Ledger: verify detects tampering")
struct LedgerTamperTests {
    /// 6 records: 1 intent, 2 completion, 3 intent, 4 completion, 5 intent (human), 6 approval.
    static func sixRecords(_ dir: TempLedgerDir) async throws -> Ledger {
        let ledger = try Ledger(path: dir.ledgerPath)
        let a = try await ledger.appendIntent(makeIntent(key: "a"), state: .pending)
        _ = try await ledger.appendCompletion(makeCompletion(a.seq))
        let b = try await ledger.appendIntent(makeIntent(tool: "pay", effect: .irreversible, key: "b"), state: .pending)
        _ = try await ledger.appendCompletion(makeCompletion(b.seq, response: #"{"paid":100}"#, irreversible: true))
        let c = try await ledger.appendIntent(makeIntent(key: "c", approval: .human), state: .awaitingApproval)
        _ = try await ledger.approve(intentSeq: c.seq, actor: "operator:alice")
        #expect(try ledger.verify() == VerifyReport(ok: true, checked: 6, firstBadSeq: nil, reason: nil))
        return ledger
    }

    static func tamperer(_ dir: TempLedgerDir) throws -> RawConnection {
        let raw = try RawConnection(path: dir.ledgerPath)
        try raw.execute("DROP TRIGGER effects_no_update; DROP TRIGGER effects_no_delete")
        return raw
    }

    @Test("the append-only triggers refuse UPDATE and DELETE")
    func triggers() async throws {
        let dir = TempLedgerDir()
        defer { dir.cleanup() }
        let ledger = try await Self.sixRecords(dir)
        let raw = try RawConnection(path: dir.ledgerPath)
        #expect(throws: (any Error).self) { try raw.execute("UPDATE effects SET note = 'x' WHERE seq = 2") }
        #expect(throws: (any Error).self) { try raw.execute("DELETE FROM effects WHERE seq = 6") }
        #expect(try ledger.verify().ok)
    }

    @Test("UPDATE of a response → hash mismatch at that seq")
    func editedResponse() async throws {
        let dir = TempLedgerDir()
        defer { dir.cleanup() }
        let ledger = try await Self.sixRecords(dir)
        try Self.tamperer(dir).execute(#"UPDATE effects SET response = '{"paid":1}' WHERE seq = 4"#)
        let report = try ledger.verify()
        #expect(report == VerifyReport(ok: false, checked: 3, firstBadSeq: 4, reason: "hash mismatch"))
    }

    @Test("UPDATE of a status → hash mismatch at that seq")
    func editedStatus() async throws {
        let dir = TempLedgerDir()
        defer { dir.cleanup() }
        let ledger = try await Self.sixRecords(dir)
        try Self.tamperer(dir).execute("UPDATE effects SET status = 'tool_failed' WHERE seq = 2")
        #expect(try ledger.verify() == VerifyReport(ok: false, checked: 1, firstBadSeq: 2, reason: "hash mismatch"))
    }

    @Test("DELETE of a middle row → the gap is reported")
    func deletedMiddleRow() async throws {
        let dir = TempLedgerDir()
        defer { dir.cleanup() }
        let ledger = try await Self.sixRecords(dir)
        try Self.tamperer(dir).execute("DELETE FROM effects WHERE seq = 3")
        let report = try ledger.verify()
        #expect(report == VerifyReport(ok: false, checked: 2, firstBadSeq: 3, reason: "gap after seq 2: seq 3 is missing"))
    }

    @Test("DELETE of the first row → the chain does not start at 1")
    func deletedFirstRow() async throws {
        let dir = TempLedgerDir()
        defer { dir.cleanup() }
        let ledger = try await Self.sixRecords(dir)
        try Self.tamperer(dir).execute("DELETE FROM effects WHERE seq = 1")
        let report = try ledger.verify()
        #expect(report.ok == false)
        #expect(report.firstBadSeq == 1)
        #expect(report.reason == "gap before seq 2: the chain does not start at seq 1")
    }

    @Test("a rewritten row with a correctly recomputed hash → the NEXT record's prev_hash mismatch")
    func rewrittenRowAndHash() async throws {
        let dir = TempLedgerDir()
        defer { dir.cleanup() }
        let ledger = try await Self.sixRecords(dir)
        var forged = try #require(try ledger.record(seq: 4))
        forged.response = #"{"paid":1}"#
        forged.hash = EffectHash.compute(forged)
        try Self.tamperer(dir).execute(
            #"UPDATE effects SET response = '{"paid":1}', hash = '\#(forged.hash)' WHERE seq = 4"#)
        #expect(try ledger.record(seq: 4) == forged)
        let report = try ledger.verify()
        #expect(report == VerifyReport(ok: false, checked: 4, firstBadSeq: 5, reason: "prev_hash does not match seq 4"))
    }

    @Test("an overwritten hash column → hash mismatch at that seq (its own hash no longer matches)")
    func overwrittenHash() async throws {
        let dir = TempLedgerDir()
        defer { dir.cleanup() }
        let ledger = try await Self.sixRecords(dir)
        try Self.tamperer(dir).execute("UPDATE effects SET hash = '\(String(repeating: "f", count: 64))' WHERE seq = 3")
        #expect(try ledger.verify() == VerifyReport(ok: false, checked: 2, firstBadSeq: 3, reason: "hash mismatch"))
    }

    @Test("an edited prev_hash → prev_hash mismatch at that seq")
    func editedPrevHash() async throws {
        let dir = TempLedgerDir()
        defer { dir.cleanup() }
        let ledger = try await Self.sixRecords(dir)
        try Self.tamperer(dir).execute("UPDATE effects SET prev_hash = '\(String(repeating: "0", count: 64))' WHERE seq = 5")
        #expect(try ledger.verify() == VerifyReport(ok: false, checked: 4, firstBadSeq: 5, reason: "prev_hash does not match seq 4"))
    }

    @Test("a value of the wrong type is reported, not a crash")
    func wrongType() async throws {
        let dir = TempLedgerDir()
        defer { dir.cleanup() }
        let ledger = try await Self.sixRecords(dir)
        try Self.tamperer(dir).execute("UPDATE effects SET fresh = 'yes' WHERE seq = 3")
        let report = try ledger.verify()
        #expect(report.ok == false)
        #expect(report.firstBadSeq == 3)
        #expect(report.reason == "unreadable record: fresh is not 0 or 1")
        #expect(ledgerError { try ledger.record(seq: 3) }?.code == .storage)
    }
}
