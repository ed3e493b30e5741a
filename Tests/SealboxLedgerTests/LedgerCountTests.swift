import Foundation
import Testing
@testable import SealboxLedger
@testable import SealboxSQLite

@Suite("Call counts by class and state")
struct LedgerCountTests {
    @Test("callCounts matches the calls listed, class by class and state by state, and follows transitions")
    func counts() async throws {
        let dir = TempLedgerDir()
        defer { dir.cleanup() }
        let ledger = try Ledger(path: dir.ledgerPath)
        #expect(try ledger.callCounts() == [])
        let sealed = try await ledger.appendIntent(makeIntent(effect: .idempotent), state: .pending)
        _ = try await ledger.appendCompletion(makeCompletion(sealed.seq))
        let awaiting = try await ledger.appendIntent(makeIntent(effect: .irreversible, approval: .human), state: .awaitingApproval)
        _ = try await ledger.appendIntent(makeIntent(effect: .irreversible), state: .pending)
        _ = try await ledger.appendIntent(makeIntent(effect: .read), state: .pending)
        _ = try await ledger.appendIntent(makeIntent(effect: .read), state: .pending)
        var expected: [String: Int] = [:]
        for call in try ledger.list(ListFilter(limit: 100)) { expected["\(call.effectClass.rawValue)/\(call.state.rawValue)", default: 0] += 1 }
        var counted: [String: Int] = [:]
        for count in try ledger.callCounts() { counted["\(count.effectClass)/\(count.state)"] = count.count }
        #expect(counted == expected)
        #expect(counted == ["idempotent/sealed": 1, "irreversible/awaiting_approval": 1, "irreversible/pending": 1, "read/pending": 2])
        _ = try await ledger.deny(intentSeq: awaiting.seq, actor: "operator:test", note: nil)
        _ = try await ledger.markInterrupted(actor: "test")
        counted = [:]
        for count in try ledger.callCounts() { counted["\(count.effectClass)/\(count.state)"] = count.count }
        #expect(counted == ["idempotent/sealed": 1, "irreversible/denied": 1, "irreversible/in_doubt": 1, "read/interrupted": 2])
    }
}
