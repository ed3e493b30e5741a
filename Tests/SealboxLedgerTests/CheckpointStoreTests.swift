import Foundation
import Testing
@testable import SealboxLedger
@testable import SealboxSQLite

@Suite("Checkpoint store")
struct CheckpointStoreTests {
    static func store() throws -> (SQLiteCheckpointStore, String) {
        let path = NSTemporaryDirectory() + "sealbox-cp-\(UUID().uuidString.prefix(8))/checkpoints.sqlite"
        return (try SQLiteCheckpointStore(path: path), path)
    }

    @Test("seal, look up, chain, persist across reopen")
    func sealAndLookUp() throws {
        let (store, path) = try Self.store()
        let session = try store.createSession()
        #expect(try store.sessionExists(session))
        #expect(try store.sealed(session: session, step: "a") == nil)
        let a = try store.seal(session: session, step: "a", codeDigest: "sha256:1", result: "{\"x\":1}", ledgerCursor: 7)
        let b = try store.seal(session: session, step: "b", codeDigest: "sha256:2", result: "{}", ledgerCursor: nil)
        #expect(b.parentSeq == a.seq && a.parentSeq == nil)
        #expect(b.prevHash == a.hash)
        #expect(try store.sealed(session: session, step: "a") == a)
        let reopened = try SQLiteCheckpointStore(path: path)
        #expect(try reopened.steps(session: session).map(\.stepKey) == ["a", "b"])
        #expect(try reopened.verify().ok)
    }

    @Test("a step is sealed once; unknown sessions are refused")
    func refusals() throws {
        let (store, _) = try Self.store()
        let session = try store.createSession()
        try store.seal(session: session, step: "a", codeDigest: "d", result: "{}", ledgerCursor: nil)
        #expect(throws: CheckpointError(.alreadySealed, "step a of session \(session) is already sealed")) {
            try store.seal(session: session, step: "a", codeDigest: "d", result: "{}", ledgerCursor: nil)
        }
        #expect { try store.seal(session: "nope", step: "a", codeDigest: "d", result: "{}", ledgerCursor: nil) } throws: {
            ($0 as? CheckpointError)?.code == .unknownSession
        }
    }

    @Test("editing a sealed checkpoint in the file breaks verify at that seq")
    func tamper() throws {
        let (store, path) = try Self.store()
        let session = try store.createSession()
        for step in ["a", "b", "c"] { try store.seal(session: session, step: step, codeDigest: "d", result: "{\"step\":\"\(step)\"}", ledgerCursor: nil) }
        let python = Process()
        python.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        python.arguments = ["-c", """
            import sqlite3, sys
            db = sqlite3.connect(sys.argv[1])
            for (name,) in db.execute("select name from sqlite_master where type='trigger'").fetchall():
                db.execute('drop trigger "%s"' % name)
            db.execute("update checkpoints set result = '{}' where seq = 2")
            db.commit()
            """, path]
        try python.run()
        python.waitUntilExit()
        let report = try SQLiteCheckpointStore(path: path).verify()
        #expect(!report.ok && report.firstBadSeq == 2 && report.reason == "hash mismatch")
    }

    @Test("code digests differ whenever any part differs, including how the parts are split")
    func digests() {
        let base = Checkpoints.codeDigest([Array("python3".utf8), Array("x".utf8)])
        #expect(base == Checkpoints.codeDigest([Array("python3".utf8), Array("x".utf8)]))
        #expect(base != Checkpoints.codeDigest([Array("python3".utf8), Array("y".utf8)]))
        #expect(base != Checkpoints.codeDigest([Array("python3x".utf8)]))
        #expect(base.hasPrefix("sha256:"))
    }
}
