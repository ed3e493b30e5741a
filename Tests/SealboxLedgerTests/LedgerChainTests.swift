import Foundation
import Testing
@testable import SealboxLedger
@testable import SealboxSQLite

@Suite("Ledger: chain, durability, persistence")
struct LedgerChainTests {
    @Test("intent → completion seals the call; records are chained; verify ok")
    func intentThenCompletion() async throws {
        let dir = TempLedgerDir()
        defer { dir.cleanup() }
        let ledger = try Ledger(path: dir.ledgerPath)

        let intent = try await ledger.appendIntent(makeIntent(key: "k1"), state: .pending)
        #expect(intent.seq == 1)
        #expect(intent.kind == "intent")
        #expect(intent.prevHash == String(repeating: "0", count: 64))
        #expect(intent.hash == EffectHash.compute(intent))
        #expect(intent.status == "pending")
        #expect(try ledger.call(intentSeq: 1)?.state == .pending)

        let completion = try await ledger.appendCompletion(makeCompletion(intent.seq))
        #expect(completion.seq == 2)
        #expect(completion.kind == "completion")
        #expect(completion.intentSeq == 1)
        #expect(completion.prevHash == intent.hash)
        #expect(completion.hash == EffectHash.compute(completion))

        let call = try #require(try ledger.call(intentSeq: 1))
        #expect(call.state == .sealed)
        #expect(call.completionSeq == 2)
        #expect(call.tool == "send_mail")
        #expect(call.effectClass == .idempotent)

        // What is read back is exactly what was returned (and hashed).
        #expect(try ledger.record(seq: 1) == intent)
        #expect(try ledger.record(seq: 2) == completion)
        #expect(try ledger.record(seq: 3) == nil)
        #expect(try ledger.records(forIntent: 1) == [intent, completion])

        let report = try ledger.verify()
        #expect(report == VerifyReport(ok: true, checked: 2, firstBadSeq: nil, reason: nil))
    }

    @Test("an empty ledger verifies")
    func emptyVerifies() throws {
        let dir = TempLedgerDir()
        defer { dir.cleanup() }
        let ledger = try Ledger(path: dir.ledgerPath)
        #expect(try ledger.verify() == VerifyReport(ok: true, checked: 0, firstBadSeq: nil, reason: nil))
    }

    @Test("journal_mode=wal and synchronous=FULL (2) are in effect on the writing connection")
    func durabilitySettings() throws {
        let dir = TempLedgerDir()
        defer { dir.cleanup() }
        let ledger = try Ledger(path: dir.ledgerPath)
        let settings = try ledger.durabilitySettings()
        #expect(settings.journalMode == "wal")
        #expect(settings.synchronous == 2)
        // journal_mode is persistent in the file: a plain connection sees WAL too.
        let raw = try RawConnection(path: dir.ledgerPath)
        #expect(try raw.text("PRAGMA journal_mode") == "wal")
        #expect(try raw.int("PRAGMA application_id") == Int64(LedgerSchema.applicationID))
    }

    @Test("a missing parent directory is created 0700; the file is 0600")
    func createsParent() throws {
        let dir = TempLedgerDir()
        defer { dir.cleanup() }
        let path = dir.url.appendingPathComponent("a/b/ledger.db").path
        let ledger = try Ledger(path: path)
        #expect(ledger.path == path)
        let fm = FileManager.default
        let parentMode = try fm.attributesOfItem(atPath: dir.url.appendingPathComponent("a/b").path)[.posixPermissions] as? Int
        let fileMode = try fm.attributesOfItem(atPath: path)[.posixPermissions] as? Int
        #expect(parentMode == 0o700)
        #expect(fileMode == 0o600)
    }

    @Test("a bad path or a file that is not a ledger fails with a clear LedgerError")
    func badPaths() throws {
        let dir = TempLedgerDir()
        defer { dir.cleanup() }
        let fm = FileManager.default

        let notDB = dir.url.appendingPathComponent("notes.txt").path
        _ = fm.createFile(atPath: notDB, contents: Data(String(repeating: "hello, not sqlite\n", count: 100).utf8))
        let e1 = ledgerError { try Ledger(path: notDB) }
        #expect(e1?.code == .notALedger)
        #expect(e1?.message.contains("not a sealbox ledger") == true)

        let otherDB = dir.url.appendingPathComponent("other.sqlite").path
        let raw = try RawConnection(path: otherDB)
        try raw.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)")
        let e2 = ledgerError { try Ledger(path: otherDB) }
        #expect(e2?.code == .notALedger)
        #expect(e2?.message.contains("users") == true)

        // A ledger whose creation was killed before its first migration committed opens.
        let unfinished = dir.url.appendingPathComponent("unfinished.sqlite").path
        try RawConnection(path: unfinished).execute("CREATE TABLE grdb_migrations (identifier TEXT NOT NULL PRIMARY KEY)")
        #expect(try Ledger(path: unfinished).verify().ok)
        // One with migrations applied but not ours is still refused.
        let foreign = dir.url.appendingPathComponent("foreign.sqlite").path
        let foreignDB = try RawConnection(path: foreign)
        try foreignDB.execute("CREATE TABLE grdb_migrations (identifier TEXT NOT NULL PRIMARY KEY)")
        try foreignDB.execute("INSERT INTO grdb_migrations VALUES ('someone-elses-v1')")
        #expect(ledgerError { try Ledger(path: foreign) }?.code == .notALedger)

        let e3 = ledgerError { try Ledger(path: dir.url.path) }
        #expect(e3?.code == .badPath)
        #expect(e3?.message.contains("is a directory") == true)

        let e4 = ledgerError { try Ledger(path: notDB + "/ledger.db") }
        #expect(e4?.code == .badPath)
        #expect(e4?.message.contains("is not a directory") == true)

        #expect(ledgerError { try Ledger(path: "") }?.code == .badPath)
    }

    @Test("close and reopen: everything is still there, verifies, and appends continue the chain")
    func reopenPersistence() async throws {
        let dir = TempLedgerDir()
        defer { dir.cleanup() }
        var lastHash = ""
        do {
            let ledger = try Ledger(path: dir.ledgerPath)
            let a = try await ledger.appendIntent(makeIntent(key: "a"), state: .pending)
            _ = try await ledger.appendCompletion(makeCompletion(a.seq))
            let b = try await ledger.appendIntent(makeIntent(key: "b", approval: .human), state: .awaitingApproval)
            lastHash = try #require(try ledger.record(seq: b.seq)).hash
        }
        // The first Ledger is gone (its writer thread exits, its connections close).
        let reopened = try Ledger(path: dir.ledgerPath)
        #expect(try reopened.verify() == VerifyReport(ok: true, checked: 3, firstBadSeq: nil, reason: nil))
        #expect(try reopened.call(intentSeq: 1)?.state == .sealed)
        #expect(try reopened.call(intentSeq: 3)?.state == .awaitingApproval)
        let approval = try await reopened.approve(intentSeq: 3, actor: "operator:alice")
        #expect(approval.seq == 4)
        #expect(approval.prevHash == lastHash)
        #expect(try reopened.verify().ok)
        #expect(try reopened.verify().checked == 4)
    }

    @Test("two Ledger instances on one file (broker + CLI) appending alternately keep one chain")
    func twoWriters() async throws {
        let dir = TempLedgerDir()
        defer { dir.cleanup() }
        let broker = try Ledger(path: dir.ledgerPath)
        let cli = try Ledger(path: dir.ledgerPath)

        var seqs: [Int64] = []
        for i in 0..<10 {
            let intent = try await broker.appendIntent(makeIntent(key: "k\(i)", approval: .human), state: .awaitingApproval)
            seqs.append(intent.seq)
            let decision = i.isMultiple(of: 2)
                ? try await cli.approve(intentSeq: intent.seq, actor: "operator:bob")
                : try await cli.deny(intentSeq: intent.seq, actor: "operator:bob", note: "no")
            seqs.append(decision.seq)
            #expect(decision.prevHash == intent.hash)
        }
        #expect(seqs == Array(1...20))
        // Each instance sees the other's writes.
        #expect(try broker.call(intentSeq: 1)?.state == .approved)
        #expect(try cli.call(intentSeq: 3)?.state == .denied)
        #expect(try broker.verify() == VerifyReport(ok: true, checked: 20, firstBadSeq: nil, reason: nil))

        // And concurrently: both instances group-commit at once, BEGIN IMMEDIATE serialises them.
        try await withThrowingTaskGroup(of: Void.self) { group in
            for i in 0..<40 {
                let ledger = i.isMultiple(of: 2) ? broker : cli
                group.addTask { _ = try await ledger.appendIntent(makeIntent(key: "c\(i)"), state: .pending) }
            }
            try await group.waitForAll()
        }
        let report = try cli.verify()
        #expect(report == VerifyReport(ok: true, checked: 60, firstBadSeq: nil, reason: nil))
    }

    @Test("revocations are persisted, chained, and survive a reopen")
    func revocations() async throws {
        let dir = TempLedgerDir()
        defer { dir.cleanup() }
        do {
            let ledger = try Ledger(path: dir.ledgerPath)
            let r1 = try await ledger.recordRevocation(tokenID: "tok-1", runID: nil, reason: "task ended")
            #expect(r1.kind == "revocation")
            #expect(r1.tokenID == "tok-1")
            #expect(r1.note == "task ended")
            _ = try await ledger.recordRevocation(tokenID: nil, runID: "run-9", reason: "operator kill")
            let e = await ledgerError { try await ledger.recordRevocation(tokenID: nil, runID: nil, reason: "x") }
            #expect(e?.code == .invalidInput)
        }
        let ledger = try Ledger(path: dir.ledgerPath)
        let revoked = try ledger.revocations()
        #expect(revoked.tokenIDs == ["tok-1"])
        #expect(revoked.runIDs == ["run-9"])
        #expect(try ledger.verify() == VerifyReport(ok: true, checked: 2, firstBadSeq: nil, reason: nil))
    }

    @Test("inputs that could never verify or are malformed are refused before anything is written")
    func inputValidation() async throws {
        let dir = TempLedgerDir()
        defer { dir.cleanup() }
        let ledger = try Ledger(path: dir.ledgerPath)
        let nul = await ledgerError { try await ledger.appendIntent(makeIntent(key: "a\u{0}b"), state: .pending) }
        #expect(nul?.message == "idempotency_key contains a NUL character")
        let seq = try await ledger.appendIntent(makeIntent(), state: .pending).seq
        let badStatus = await ledgerError { try await ledger.appendCompletion(makeCompletion(seq, status: "done")) }
        #expect(badStatus?.message == #"completion status must be "ok" or "tool_failed", not "done""#)
        let badJSON = await ledgerError { try await ledger.appendCompletion(makeCompletion(seq, response: "{nope")) }
        #expect(badJSON?.code == .invalidInput)
        var nan = makeCompletion(seq)
        nan.durationMs = .nan
        #expect(await ledgerError { try await ledger.appendCompletion(nan) }?.code == .invalidInput)
        #expect(await ledgerError { try await ledger.approve(intentSeq: seq, actor: "") }?.code == .invalidInput)
        // Nothing of the refused inputs reached the chain.
        #expect(try ledger.verify() == VerifyReport(ok: true, checked: 1, firstBadSeq: nil, reason: nil))
        // A JSON fragment and a zero duration are fine (and -0.0 is stored as 0.0, so it verifies).
        var zero = makeCompletion(seq, response: "null")
        zero.durationMs = -0.0
        let sealed = try await ledger.appendCompletion(zero)
        #expect(try ledger.record(seq: sealed.seq) == sealed)
        #expect(try ledger.verify().ok)
    }

    @Test("the canonical encoding is unambiguous: NULL vs empty, shifted boundaries, types")
    func hashEncoding() {
        let base = EffectRecord(seq: 1, kind: "intent", createdAtMs: 1000, prevHash: EffectHash.genesisPrevHash,
                                runID: "ab", sessionID: "c")
        var shifted = base
        shifted.runID = "a"
        shifted.sessionID = "bc"
        var empty = base
        empty.note = ""
        var flag = base
        flag.fresh = false
        var hashed = base
        hashed.hash = "anything"  // the hash column itself is not part of the encoding
        #expect(EffectHash.compute(base) != EffectHash.compute(shifted))
        #expect(EffectHash.compute(base) != EffectHash.compute(empty))
        #expect(EffectHash.compute(base) != EffectHash.compute(flag))
        #expect(EffectHash.compute(base) == EffectHash.compute(hashed))
        #expect(EffectHash.compute(base).count == 64)
        // The encoding starts with the length-prefixed domain tag, then "seq" INTEGER 1.
        let bytes = EffectHash.canonicalEncoding(of: base)
        let tag = Array("sealbox-effect-v1".utf8)
        #expect(Array(bytes.prefix(4 + tag.count)) == [0, 0, 0, UInt8(tag.count)] + tag)
        let seqField = Array(bytes.dropFirst(4 + tag.count).prefix(4 + 3 + 1 + 8))
        #expect(seqField == [0, 0, 0, 3] + Array("seq".utf8) + [0x01, 0, 0, 0, 0, 0, 0, 0, 1])
    }

    /// Expected values computed by an independent Python implementation written only from the
    /// encoding documented in EffectHash.swift (struct.pack big-endian + hashlib.sha256).
    @Test("known-answer hashes match an independent implementation of the documented encoding")
    func knownAnswer() {
        let intent = EffectRecord(
            seq: 1, kind: "intent", createdAtMs: 1_700_000_000_000, prevHash: EffectHash.genesisPrevHash,
            runID: "run-1", sessionID: "sess-1", tool: "send_mail", effectClass: "irreversible",
            idempotencyKey: "k1", target: "https://api.example.com/send", argsDigest: String(repeating: "ab", count: 32),
            approval: "auto", tokenID: "tok-1", fresh: false, status: "pending")
        let h1 = EffectHash.compute(intent)
        #expect(h1 == "92c7004a6051e2b7bfbb116251cefcd0e8deae47dd4a9c227dabddf46c272b75")
        let completion = EffectRecord(
            seq: 2, kind: "completion", createdAtMs: 1_700_000_000_123, prevHash: h1, intentSeq: 1,
            runID: "run-1", sessionID: "sess-1", tool: "send_mail", status: "ok",
            response: #"{"id":42,"note":"héllo"}"#, responseDigest: String(repeating: "cd", count: 32),
            irreversible: true, happened: true, durationMs: 12.5, actor: "broker", note: "")
        #expect(EffectHash.compute(completion) == "4b77e31efc8ceedd43f34b047b042fceb20d7ae0b20af3ca62de9db1701654a7")
    }
}
