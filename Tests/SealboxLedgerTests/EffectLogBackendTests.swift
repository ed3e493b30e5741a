import Foundation
import Testing
@testable import SealboxLedger
@testable import SealboxSQLite

/// The effect-class state machine runs over `EffectLogTransaction`'s primitives: the same ops
/// give the same records and call states in memory and on SQLite (the reference a PostgreSQL
/// backend will be held to), and the in-memory backend keeps the rules on its own.
@Suite("Effect log backends")
struct EffectLogBackendTests {
    static let key = String(repeating: "k", count: 8)

    /// Ops of a session: a sealed call, an irreversible call interrupted and resolved, an approval,
    /// a refused transition, a fork joining its family, a grant and its revocation.
    static func ops() -> [LedgerOp] {
        [
            .intent(makeIntent(tool: "send_mail", key: "a"), .pending),
            .completion(makeCompletion(1)),
            .intent(makeIntent(tool: "transfer", effect: .irreversible, key: "b"), .pending),
            .markInterrupted(actor: "broker"),
            .resolve(intentSeq: 3, happened: true, actor: "operator:test", note: "bank says yes"),
            .intent(makeIntent(tool: "delete", key: "c", approval: .human), .awaitingApproval),
            .approve(intentSeq: 6, actor: "operator:test"),
            .completion(makeCompletion(1)),  // sealed already: refused, writes nothing
            .session(sessionID: "sess-2", root: "sess-1"),
            .grant(GrantInput(tokenID: "tok-9", runID: "run-9", sessionID: "sess-2", sessionRoot: "sess-1", tools: ["send_mail"], expiresAtMs: Int64.max / 2, brokerID: "b1")),
            .revokeLiveGrants(reason: "broker stopping", brokerID: "b1"),
        ]
    }

    struct Trace: Equatable {
        var records: [String]
        var calls: [String]
        var refused: [Int]
    }

    static func describe(_ records: [EffectRecord]) -> [String] {
        records.map { r in
            [String(r.seq), r.kind, r.status ?? "-", r.intentSeq.map(String.init) ?? "-", r.tool ?? "-", r.actor ?? "-", r.note.map { String($0.prefix(40)) } ?? "-"]
                .joined(separator: "|")
        }
    }

    static func describe(_ calls: [CallSummary]) -> [String] {
        calls.sorted { $0.intentSeq < $1.intentSeq }.map { "\($0.intentSeq)|\($0.tool)|\($0.state.rawValue)|\($0.completionSeq.map(String.init) ?? "-")" }
    }

    static func inMemory(_ ops: [LedgerOp]) throws -> (Trace, InMemoryEffectLogTransaction) {
        let tx = InMemoryEffectLogTransaction()
        var refused: [Int] = []
        for (index, op) in ops.enumerated() {
            var tail = tx.tail
            do {
                _ = try LedgerApply.apply(tx, op, tail: &tail, now: 1_000 + Int64(index))
            } catch let error as LedgerError {
                #expect(error.code == .invalidTransition, "\(error)")
                refused.append(index)
            }
        }
        return (Trace(records: describe(tx.records), calls: describe(Array(tx.calls.values)), refused: refused), tx)
    }

    static func sqlite(_ ops: [LedgerOp], path: String) async throws -> Trace {
        let ledger = try Ledger(path: path)
        var refused: [Int] = []
        for (index, op) in ops.enumerated() {
            do {
                switch op {
                case .intent(let input, let state): _ = try await ledger.appendIntent(input, state: state)
                case .completion(let input): _ = try await ledger.appendCompletion(input)
                case .approve(let seq, let actor): _ = try await ledger.approve(intentSeq: seq, actor: actor)
                case .resolve(let seq, let happened, let actor, let note): _ = try await ledger.resolve(intentSeq: seq, happened: happened, actor: actor, note: note)
                case .markInterrupted(let actor): _ = try await ledger.markInterrupted(actor: actor)
                case .session(let session, let root): _ = try await ledger.recordSession(session, root: root)
                case .grant(let input): _ = try await ledger.appendGrant(input)
                case .revokeLiveGrants(let reason, let broker): _ = try await ledger.revokeLiveGrants(ofBroker: broker ?? "", reason: reason)
                default: Issue.record("op \(index) is not in this scenario")
                }
            } catch {
                #expect(error.code == .invalidTransition, "\(error)")
                refused.append(index)
            }
        }
        let records = try ledger.records(afterSeq: 0, limit: 1000)
        let calls = try ledger.list(ListFilter(limit: 1000))
        return Trace(records: describe(records), calls: describe(calls), refused: refused)
    }

    @Test("the same ops give the same records and call states in memory and on SQLite")
    func backendsAgree() async throws {
        let dir = TempLedgerDir()
        defer { dir.cleanup() }
        let (memory, tx) = try Self.inMemory(Self.ops())
        let onDisk = try await Self.sqlite(Self.ops(), path: dir.ledgerPath)
        #expect(memory == onDisk)
        #expect(memory.refused == [7])
        // The rules held in memory: the irreversible call went in doubt, then was resolved.
        #expect(memory.calls.contains("3|transfer|resolved_happened|-"), "\(memory.calls)")
        #expect(memory.records.contains { $0.hasPrefix("4|interruption|in_doubt|3|transfer") }, "\(memory.records)")
        // The chain links: every record's prev_hash is its predecessor's hash, and each hash is its own.
        var previous = EffectHash.genesisPrevHash
        for record in tx.records {
            #expect(record.prevHash == previous && record.hash == EffectHash.compute(record))
            previous = record.hash
        }
        // The fork joined sess-1's family; the revoked grant is no longer live.
        #expect(try tx.familyRoot(of: "sess-2") == "sess-1")
        #expect(try tx.liveGrants(now: 0).isEmpty)
    }
}
