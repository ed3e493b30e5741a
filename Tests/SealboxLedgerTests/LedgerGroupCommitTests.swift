import Foundation
import Testing
@testable import SealboxLedger
@testable import SealboxSQLite

@Suite("Ledger: group commit")
struct LedgerGroupCommitTests {
    @Test("200 concurrent appends: all succeed, seqs 1…200, chain verifies, fewer than 200 transactions")
    func concurrentAppends() async throws {
        let dir = TempLedgerDir()
        defer { dir.cleanup() }
        let ledger = try Ledger(path: dir.ledgerPath)
        let clock = ContinuousClock()
        let started = clock.now
        let records = try await withThrowingTaskGroup(of: EffectRecord.self) { group in
            for i in 0..<200 {
                group.addTask { try await ledger.appendIntent(makeIntent(key: "key-\(i)"), state: .pending) }
            }
            return try await group.reduce(into: [EffectRecord]()) { $0.append($1) }
        }
        let elapsed = clock.now - started
        #expect(records.count == 200)
        #expect(records.map(\.seq).sorted() == Array(1...200))
        #expect(Set(records.compactMap(\.idempotencyKey)).count == 200)
        // What each caller got is what is on disk.
        for record in records.prefix(20) {
            #expect(try ledger.record(seq: record.seq) == record)
        }
        #expect(try ledger.verify() == VerifyReport(ok: true, checked: 200, firstBadSeq: nil, reason: nil))
        let stats = ledger.writerStats
        print("group commit: 200 appends in \(stats.commits) transactions (largest batch \(stats.largestBatch)) in \(elapsed)")
        #expect(stats.commits < 200)
        #expect(ledger.commitCount == stats.commits)
        #expect(stats.jobs == 200)
        #expect(stats.records == 200)
        #expect(stats.failedTransactions == 0)
    }

    @Test("a lone caller is not held back: sequential appends are one transaction each")
    func sequentialAppends() async throws {
        let dir = TempLedgerDir()
        defer { dir.cleanup() }
        let ledger = try Ledger(path: dir.ledgerPath)
        let clock = ContinuousClock()
        let started = clock.now
        for i in 0..<20 {
            let record = try await ledger.appendIntent(makeIntent(key: "seq-\(i)"), state: .pending)
            #expect(record.seq == Int64(i + 1))
        }
        let elapsed = clock.now - started
        print("sequential: 20 appends, \(ledger.commitCount) transactions, \(elapsed / 20) per durable append")
        #expect(ledger.commitCount == 20)
    }

    @Test("back-pressure: a tiny queue and batch bound make callers wait, none is dropped")
    func backPressure() async throws {
        let dir = TempLedgerDir()
        defer { dir.cleanup() }
        let ledger = try Ledger(path: dir.ledgerPath, configuration: .init(maxBatch: 3, queueLimit: 2))
        let seqs = try await withThrowingTaskGroup(of: Int64.self) { group in
            for i in 0..<120 {
                group.addTask { try await ledger.appendIntent(makeIntent(key: "bp-\(i)"), state: .pending).seq }
            }
            return try await group.reduce(into: [Int64]()) { $0.append($1) }
        }
        #expect(seqs.sorted() == Array(1...120))
        let stats = ledger.writerStats
        #expect(stats.largestBatch <= 2)  // never more queued than queueLimit
        #expect(stats.commits >= 60)
        #expect(try ledger.verify().checked == 120)
    }

    @Test("a failed transaction fails every caller of the batch and leaves nothing visible")
    func failedBatch() async throws {
        let dir = TempLedgerDir()
        defer { dir.cleanup() }
        let ledger = try Ledger(path: dir.ledgerPath, configuration: .init(busyTimeout: 0.3))
        _ = try await ledger.appendIntent(makeIntent(key: "before"), state: .pending)

        // Another process holds the write lock longer than the busy timeout.
        let other = try RawConnection(path: dir.ledgerPath)
        try other.begin()
        let errors = await withTaskGroup(of: LedgerError?.self) { group in
            for i in 0..<10 {
                group.addTask {
                    await ledgerError { try await ledger.appendIntent(makeIntent(key: "locked-\(i)"), state: .pending) }
                }
            }
            return await group.reduce(into: [LedgerError]()) { if let e = $1 { $0.append(e) } }
        }
        try other.rollback()
        #expect(errors.count == 10)
        #expect(errors.allSatisfy { $0.code == .storage && $0.message.contains("nothing of this batch was recorded") })
        #expect(ledger.writerStats.failedTransactions >= 1)
        #expect(try ledger.list(ListFilter()).count == 1)
        #expect(try ledger.verify() == VerifyReport(ok: true, checked: 1, firstBadSeq: nil, reason: nil))

        // The lock is gone: the chain continues at seq 2.
        let next = try await ledger.appendIntent(makeIntent(key: "after"), state: .pending)
        #expect(next.seq == 2)
        #expect(try ledger.verify().ok)
    }

    @Test("in one batch an invalid transition fails alone; the others commit")
    func invalidOpInBatch() async throws {
        let dir = TempLedgerDir()
        defer { dir.cleanup() }
        let ledger = try Ledger(path: dir.ledgerPath)
        let pending = try await ledger.appendIntent(makeIntent(key: "p"), state: .pending)
        let waiting = try await ledger.appendIntent(makeIntent(key: "w", approval: .human), state: .awaitingApproval)
        let commitsBefore = ledger.commitCount

        // Hold the write lock so that everything below queues up behind it, then let go.
        let other = try RawConnection(path: dir.ledgerPath)
        try other.begin()
        async let release: Void = {
            try await Task.sleep(for: .milliseconds(400))
            try other.rollback()
        }()
        async let approveWaiting = ledgerError { try await ledger.approve(intentSeq: waiting.seq, actor: "operator:a") }
        async let approvePending = ledgerError { try await ledger.approve(intentSeq: pending.seq, actor: "operator:a") }
        async let sealPending = ledgerError { try await ledger.appendCompletion(makeCompletion(pending.seq)) }
        async let newIntent = ledgerError { try await ledger.appendIntent(makeIntent(key: "n"), state: .pending) }
        try await release
        let (e1, e2, e3, e4) = await (approveWaiting, approvePending, sealPending, newIntent)
        #expect(e1 == nil)
        // approve of the pending call ran before or after its completion in the same batch:
        // either way it is not awaiting approval, and says which state it saw.
        #expect(e2?.code == .invalidTransition)
        #expect(e2?.message.hasSuffix(", not awaiting approval") == true)
        #expect(e3 == nil)
        #expect(e4 == nil)
        #expect(try ledger.call(intentSeq: waiting.seq)?.state == .approved)
        #expect(try ledger.call(intentSeq: pending.seq)?.state == .sealed)
        #expect(try ledger.verify() == VerifyReport(ok: true, checked: 5, firstBadSeq: nil, reason: nil))
        #expect(ledger.commitCount - commitsBefore <= 2)
        print("batched behind a lock: \(ledger.commitCount - commitsBefore) transactions for 4 ops")
    }
}
