import Foundation
import GRDB
import Testing
@testable import SealboxLedger
@testable import SealboxSQLite

/// Session families (v2): forks share what happened in the world.
@Suite("Ledger: session families")
struct LedgerFamilyTests {
    @Test("a root, its fork and a fork of the fork form one family; a session's root never changes")
    func recordAndResolve() async throws {
        let dir = TempLedgerDir()
        defer { dir.cleanup() }
        let ledger = try Ledger(path: dir.ledgerPath)
        #expect(try await ledger.recordSession("root") == "root")
        #expect(try await ledger.recordSession("root") == "root", "idempotent")
        #expect(try await ledger.recordSession("fork-a", root: "root") == "root")
        // A fork of a fork names its parent: it joins the parent's family.
        #expect(try await ledger.recordSession("fork-b", root: "fork-a") == "root")
        #expect(try await ledger.recordSession("fork-b", root: "root") == "root", "naming the true root is the same claim")
        #expect(try ledger.root(of: "fork-b") == "root")
        #expect(try ledger.family(of: "fork-b") == ["root", "fork-a", "fork-b"])
        #expect(try ledger.family(of: "root") == ["root", "fork-a", "fork-b"])
        // Never recorded: a family of one.
        #expect(try ledger.root(of: "loner") == "loner")
        #expect(try ledger.family(of: "loner") == ["loner"])

        // Conflicts: another root, or claiming to be a root after being recorded as a fork.
        let other = await ledgerError { try await ledger.recordSession("fork-a", root: "elsewhere") }
        #expect(other?.code == .invalidInput)
        #expect(other?.message.contains("session fork-a is recorded in the family of root root") == true, "\(other?.message ?? "")")
        #expect(other?.message.contains("under root elsewhere") == true)
        let asRoot = await ledgerError { try await ledger.recordSession("fork-a") }
        #expect(asRoot?.message.contains("cannot be opened as its own root") == true, "\(asRoot?.message ?? "")")
        #expect(await ledgerError { try await ledger.recordSession("root", root: "elsewhere") }?.code == .invalidInput)
        // A refused claim left nothing behind.
        #expect(try ledger.family(of: "elsewhere") == ["elsewhere"])
    }

    @Test("an unrecorded root is recorded with its first fork, so it cannot join another family later")
    func implicitRoot() async throws {
        let dir = TempLedgerDir()
        defer { dir.cleanup() }
        let ledger = try Ledger(path: dir.ledgerPath)
        try await ledger.recordSession("child", root: "parent")
        #expect(try ledger.family(of: "parent") == ["parent", "child"])
        #expect(await ledgerError { try await ledger.recordSession("parent", root: "grandparent") }?.code == .invalidInput)
        #expect(await ledgerError { try await ledger.recordSession("", root: "x") }?.code == .invalidInput)
    }

    @Test("callsInFamily: the other sessions' calls under (tool, key), newest first; calls(sessionIDs:) pages")
    func familyCalls() async throws {
        let dir = TempLedgerDir()
        defer { dir.cleanup() }
        let ledger = try Ledger(path: dir.ledgerPath)
        try await ledger.recordSession("s")
        try await ledger.recordSession("f1", root: "s")
        try await ledger.recordSession("f2", root: "f1")
        try await ledger.recordSession("stranger")
        let a = try await ledger.appendIntent(makeIntent(session: "s", tool: "pay", effect: .irreversible, key: "k"), state: .pending)
        _ = try await ledger.appendCompletion(makeCompletion(a.seq, irreversible: true))
        let b = try await ledger.appendIntent(makeIntent(session: "f1", tool: "pay", effect: .irreversible, key: "k"), state: .pending)
        let c = try await ledger.appendIntent(makeIntent(session: "f2", tool: "pay", effect: .irreversible, key: "k"), state: .pending)
        _ = try await ledger.appendIntent(makeIntent(session: "f1", tool: "pay", effect: .irreversible, key: "other"), state: .pending)
        _ = try await ledger.appendIntent(makeIntent(session: "stranger", tool: "pay", effect: .irreversible, key: "k"), state: .pending)

        #expect(try ledger.callsInFamily(sessionID: "f2", tool: "pay", idempotencyKey: "k").map(\.intentSeq) == [b.seq, a.seq])
        #expect(try ledger.callsInFamily(sessionID: "s", tool: "pay", idempotencyKey: "k").map(\.intentSeq) == [c.seq, b.seq])
        #expect(try ledger.latestCallInFamily(sessionID: "f1", tool: "pay", idempotencyKey: "k")?.sessionID == "f2")
        #expect(try ledger.latestCallInFamily(sessionID: "f1", tool: "mail", idempotencyKey: "k") == nil)
        #expect(try ledger.callsInFamily(sessionID: "stranger", tool: "pay", idempotencyKey: "k").isEmpty)
        #expect(try ledger.callsInFamily(sessionID: "never-recorded", tool: "pay", idempotencyKey: "k").isEmpty)

        let all = try ledger.calls(sessionIDs: ledger.family(of: "f1"))
        #expect(all.map(\.sessionID) == ["s", "f1", "f2", "f1"])
        #expect(all.map(\.intentSeq) == all.map(\.intentSeq).sorted())
        #expect(try ledger.calls(sessionIDs: ["s", "f1", "f2"], limit: 2).map(\.intentSeq) == [a.seq, b.seq])
        #expect(try ledger.calls(sessionIDs: ["s", "f1", "f2"], afterSeq: b.seq).count == 2)
        #expect(try ledger.calls(sessionIDs: []).isEmpty)
        #expect(ledgerError { try ledger.calls(sessionIDs: Array(repeating: "s", count: 1001)) }?.code == .invalidInput)
    }

    @Test("a v1 ledger migrates to v2: old records still verify, old sessions are families of one")
    func migratesFromV1() async throws {
        let dir = TempLedgerDir()
        defer { dir.cleanup() }
        // A ledger as the v1-only sealbox left it, with one sealed call. Written on a thread of
        // its own: SQLite blocks on fsync, the cooperative pool must not.
        let path = dir.ledgerPath
        let hasFamilyTable = try await Self.onThread { try Self.writeV1Ledger(path: path) }
        #expect(!hasFamilyTable)
        let ledger = try Ledger(path: dir.ledgerPath)
        #expect(try ledger.verify() == VerifyReport(ok: true, checked: 2, firstBadSeq: nil, reason: nil))
        #expect(try ledger.family(of: "old") == ["old"])
        #expect(try ledger.latestCall(sessionID: "old", tool: "pay", idempotencyKey: "k")?.state == .sealed)
        // The old session becomes a root when its first fork is recorded; the fork then sees its call.
        try await ledger.recordSession("new-fork", root: "old")
        #expect(try ledger.latestCallInFamily(sessionID: "new-fork", tool: "pay", idempotencyKey: "k")?.sessionID == "old")
        #expect(try ledger.verify().ok)
    }

    /// Applies only migration v1 and seals one irreversible call of session "old"; returns
    /// whether the v2 table exists (it must not).
    static func writeV1Ledger(path: String) throws -> Bool {
        let queue = try DatabaseQueue(path: path)
        try LedgerSchema.migrator.migrate(queue, upTo: "v1-effects-calls-revocations")
        try queue.write { db in
            var tail = try ChainTail.read(db)
            let intent = try LedgerApply.apply(
                SQLiteEffectLogTransaction(db: db), .intent(makeIntent(session: "old", tool: "pay", effect: .irreversible, key: "k"), .pending), tail: &tail, now: 1)
            _ = try LedgerApply.apply(SQLiteEffectLogTransaction(db: db), .completion(makeCompletion(intent.records[0].seq, irreversible: true)), tail: &tail, now: 2)
        }
        return try queue.read { try Int.fetchOne($0, sql: "SELECT count(*) FROM sqlite_master WHERE name = 'session_family'") } != 0
    }

    static func onThread<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            Thread { continuation.resume(with: Result { try body() }) }.start()
        }
    }
}
