import Foundation
import Glibc
import Testing
@testable import SealboxLedger
@testable import SealboxSQLite

@Suite("Checkpoint store: forks, snapshots, attempts")
struct CheckpointForkTests {
    static func seal(_ store: any CheckpointStore, _ session: String, _ steps: [String]) throws {
        for step in steps { try store.seal(session: session, step: step, codeDigest: "d-\(step)", result: "{}", ledgerCursor: nil) }
    }

    @Test("a fork sees its parent's prefix up to the fork point, and only that")
    func lineage() throws {
        let (store, path) = try CheckpointStoreTests.store()
        let original = try store.createSession(workspaceLimitBytes: 8 << 20)
        try Self.seal(store, original, ["a", "b", "c"])
        let fork = try store.fork(session: original, atStep: "b")
        #expect(fork.forkedFrom == original && fork.forkedAtStep == "b" && fork.root == original)
        #expect(fork.workspaceLimitBytes == 8 << 20)
        #expect(try store.steps(session: fork.id).map(\.stepKey) == ["a", "b"])
        #expect(try store.sealed(session: fork.id, step: "b")?.sessionID == original)
        #expect(try store.sealed(session: fork.id, step: "c") == nil)
        // The fork's own step "c" chains after the fork point, not after the original's "c".
        let c = try store.seal(session: fork.id, step: "c", codeDigest: "other", result: "{}", ledgerCursor: nil)
        #expect(try c.parentSeq == store.sealed(session: original, step: "b")?.seq)
        #expect(try store.sealed(session: original, step: "c")?.codeDigest == "d-c")
        // Inherited steps cannot be sealed again in the fork.
        #expect { try store.seal(session: fork.id, step: "a", codeDigest: "x", result: "{}", ledgerCursor: nil) } throws: {
            ($0 as? CheckpointError)?.code == .alreadySealed
        }
        // A fork of the fork, at an inherited step: sees only "a".
        let grandchild = try store.fork(session: fork.id, atStep: "a")
        #expect(try store.steps(session: grandchild.id).map(\.stepKey) == ["a"])
        #expect(grandchild.root == original)
        // The root follows from the fork edges, read back (it is not stored).
        #expect(try store.session(grandchild.id)?.root == original && store.session(fork.id)?.root == original)
        #expect(Set(try store.family(of: grandchild.id)) == [original, fork.id, grandchild.id])
        #expect(Set(try store.family(of: original)) == [original, fork.id, grandchild.id], "walked down from the root too")
        #expect(try store.family(of: store.createSession()).count == 1)
        #expect(try SQLiteCheckpointStore(path: path).verify().ok)
    }

    @Test("a fork starts at a sealed step of a known session")
    func forkRefusals() throws {
        let (store, _) = try CheckpointStoreTests.store()
        let session = try store.createSession()
        #expect { try store.fork(session: session, atStep: "nope") } throws: { ($0 as? CheckpointError)?.code == .notSealed }
        #expect { try store.fork(session: "s0", atStep: "a") } throws: { ($0 as? CheckpointError)?.code == .unknownSession }
        #expect { try store.createSession(workspaceLimitBytes: 1000) } throws: { ($0 as? CheckpointError)?.code == .invalidInput }
    }

    @Test("snapshots are stored once, the latest is the next step's start, verify catches an altered manifest")
    func snapshots() throws {
        let (store, path) = try CheckpointStoreTests.store()
        let session = try store.createSession()
        let manifest = SnapshotManifest(entries: [
            SnapshotEntry(path: "b.txt", kind: .file, mode: 0o644, size: 3, digest: "sha256:" + String(repeating: "a", count: 64)),
            SnapshotEntry(path: "a", kind: .directory, mode: 0o755),
        ])
        #expect(manifest.entries.map(\.path) == ["a", "b.txt"])
        #expect(try store.latestSnapshot(session: session) == nil)
        try store.seal(session: session, step: "1", codeDigest: "d", result: "{}", ledgerCursor: nil, snapshot: manifest)
        try store.seal(session: session, step: "2", codeDigest: "d", result: "{}", ledgerCursor: nil, snapshot: manifest)
        #expect(try store.latestSnapshot(session: session) == manifest)
        #expect(try store.steps(session: session).map(\.snapshot) == [manifest.id, manifest.id])
        #expect(try store.verify().ok)

        let python = Process()
        python.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        python.arguments = ["-c", "import sqlite3, sys; db = sqlite3.connect(sys.argv[1]); db.execute(\"update snapshots set manifest = replace(manifest, 'b.txt', 'c.txt')\"); db.commit()", path]
        try python.run()
        python.waitUntilExit()
        let report = try SQLiteCheckpointStore(path: path).verify()
        #expect(!report.ok && report.firstBadSeq == 1 && report.reason?.contains("snapshot") == true)
    }

    @Test("the blob store keeps one copy per content and names it by its SHA-256")
    func blobs() throws {
        let (store, _) = try CheckpointStoreTests.store()
        let file = NSTemporaryDirectory() + "sealbox-blob-\(UUID().uuidString.prefix(8))"
        try Data("hello\n".utf8).write(to: URL(fileURLWithPath: file))
        let fd = open(file, O_RDONLY)
        defer { close(fd) }
        let first = try store.blobs.put(fd: fd)
        let second = try store.blobs.put(fd: fd)
        #expect(first.digest == "sha256:5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03")
        #expect(first.stored && !second.stored && first.size == 6)
        #expect(store.blobs.check(first.digest))
        let directory = try #require(store.blobs as? DirectoryBlobStore)
        #expect(directory.path(of: "sha256:../../etc/passwd") == nil)
        #expect(throws: CheckpointError.self) { try store.blobs.open("sha256:../../etc/passwd") }
    }

    @Test("a started step without a seal is reported with whether its runner still lives")
    func attempts() throws {
        let (store, _) = try CheckpointStoreTests.store()
        let session = try store.createSession()
        try store.recordAttempt(session: session, step: "a", codeDigest: "d", runID: "r1")
        try store.recordAttempt(session: session, step: "b", codeDigest: "d", runID: nil)
        try store.seal(session: session, step: "a", codeDigest: "d", result: "{}", ledgerCursor: nil)
        let open = try store.unsealedAttempts(session: session)
        #expect(open.map(\.stepKey) == ["b"])
        #expect(open.first?.runnerAlive == true)
        var dead = try #require(open.first)
        dead.pidStart = "0"
        #expect(!dead.runnerAlive)
    }
}
