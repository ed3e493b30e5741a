import Crypto
import Foundation
import GRDB
import SealboxBase
import SealboxLedger

/// Sessions and their sealed steps, in SQLite (WAL, synchronous=FULL: a seal is durable when
/// `seal` returns).
public final class SQLiteCheckpointStore: CheckpointStore {
    private let queue: DatabaseQueue
    public let path: String
    /// Workspace file contents, next to the database.
    public let blobs: any BlobStore
    static let genesis = String(repeating: "0", count: 64)

    public init(path: String) throws(CheckpointError) {
        self.path = path
        let directory = (path as NSString).deletingLastPathComponent
        blobs = DirectoryBlobStore(directory: (directory.isEmpty ? "." : directory) + "/blobs")
        do {
            let dir = (path as NSString).deletingLastPathComponent
            if !dir.isEmpty { try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700]) }
            // 0600 like the effect log and the key store: sealed results hold a tenant's
            // output. SQLite would create the file 0644 (and its -wal/-shm like the file).
            let fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0o600)
            if fd >= 0 { close(fd) }
            var config = Configuration()
            config.label = "sealbox.checkpoints"
            config.busyMode = .timeout(5)
            queue = try DatabaseQueue(path: path, configuration: config)
            try queue.writeWithoutTransaction { db in
                try db.execute(sql: "PRAGMA journal_mode = WAL")
                try db.execute(sql: "PRAGMA synchronous = FULL")
            }
            try CheckpointSchema.migrator.migrate(queue)
        } catch {
            throw CheckpointError(.storage, "checkpoint store \(path): \(error)")
        }
    }

    /// A new session, registered; returns its id. `id`: one made by `newSessionID()` beforehand,
    /// when the caller must record it elsewhere first (the API claims it for a tenant before
    /// the session exists, so a crash in between never leaves a session nobody owns).
    public func createSession(id: String, workspaceLimitBytes: UInt64) throws(CheckpointError) -> String {
        guard workspaceLimitBytes >= 1 << 20, workspaceLimitBytes <= SessionInfo.maximumWorkspaceLimit else {
            throw CheckpointError(.invalidInput, "the workspace limit must be between 1M and 16G")
        }
        do {
            try queue.write { db in
                try db.execute(sql: "INSERT INTO sessions (id, created_at_ms, workspace_limit_bytes) VALUES (?, ?, ?)",
                               arguments: [id, Self.nowMs(), Int64(workspaceLimitBytes)])
            }
        } catch {
            throw CheckpointError(.storage, "cannot create a session: \(error)")
        }
        return id
    }

    public func session(_ id: String) throws(CheckpointError) -> SessionInfo? {
        try read { db in try SessionInfo.fetch(id, in: db) }
    }

    /// A new session whose history is `session`'s up to and including its sealed step
    /// `step`; it starts from that step's workspace and shares the family's effects.
    public func fork(session: String, atStep step: String, newID: String) throws(CheckpointError) -> SessionInfo {
        if let problem = StepKey.problem(step) { throw CheckpointError(.invalidInput, "the step key \(problem)") }
        do {
            return try queue.write { db -> SessionInfo in
                guard let lineage = try Lineage.of(session, in: db),
                      let parent = try SessionInfo.fetch(session, in: db) else {
                    throw CheckpointError(.unknownSession, "unknown session \(session)")
                }
                let condition = lineage.condition
                guard let point = try Row.fetchOne(
                    db, sql: "SELECT * FROM checkpoints WHERE \(condition.sql) AND step_key = ?",
                    arguments: condition.arguments + [step]).map(Self.checkpoint) else {
                    throw CheckpointError(.notSealed, "step \(step) of session \(session) is not sealed; a fork starts at a sealed step (see `sealbox session steps \(session)`)")
                }
                let fork = SessionInfo(
                    id: newID, createdAtMs: Self.nowMs(), forkedFrom: session, forkedAtStep: step,
                    forkedAtSeq: point.seq, root: parent.root, workspaceLimitBytes: parent.workspaceLimitBytes)
                try db.execute(sql: """
                    INSERT INTO sessions (id, created_at_ms, forked_from, forked_at_step, forked_at_seq, workspace_limit_bytes)
                    VALUES (?, ?, ?, ?, ?, ?)
                    """, arguments: [fork.id, fork.createdAtMs, session, step, point.seq, Int64(fork.workspaceLimitBytes)])
                return fork
            }
        } catch let error as CheckpointError {
            throw error
        } catch {
            throw CheckpointError(.storage, "cannot fork session \(session): \(error)")
        }
    }

    /// Every session of `session`'s family (same root), oldest first, itself included.
    public func family(of session: String) throws(CheckpointError) -> [String] {
        try read { db in
            guard let root = try Lineage.of(session, in: db)?.root else { return [] }
            // The root and everything forked from it, however deep (bounded as a lineage is).
            return try String.fetchAll(db, sql: """
                WITH RECURSIVE family(id, depth) AS (
                    SELECT ?, 0
                    UNION
                    SELECT s.id, family.depth + 1 FROM sessions s JOIN family ON s.forked_from = family.id
                    WHERE family.depth < ?
                )
                SELECT s.id FROM sessions s JOIN family ON s.id = family.id ORDER BY s.created_at_ms, s.id
                """, arguments: [root, Lineage.maximumDepth])
        }
    }

    public func sessionExists(_ id: String) throws(CheckpointError) -> Bool {
        do {
            return try queue.read { db in try Bool.fetchOne(db, sql: "SELECT 1 FROM sessions WHERE id = ?", arguments: [id]) ?? false }
        } catch {
            throw CheckpointError(.storage, "checkpoint store: \(error)")
        }
    }

    /// The sealed checkpoint of `step` in the session's history (a fork's includes its
    /// parent's prefix), if any.
    public func sealed(session: String, step: String) throws(CheckpointError) -> Checkpoint? {
        try read { db in try Self.sealed(db, session: session, step: step) }
    }

    /// The session's sealed steps, in order; for a fork, its parent's up to the fork point first.
    public func steps(session: String) throws(CheckpointError) -> [Checkpoint] {
        try read { db in
            guard let condition = try Lineage.of(session, in: db)?.condition else { return [] }
            return try Row.fetchAll(db, sql: "SELECT * FROM checkpoints WHERE \(condition.sql) ORDER BY seq", arguments: condition.arguments)
                .map(Self.checkpoint)
        }
    }

    /// The workspace the session's next step starts from: its last sealed step's snapshot.
    public func latestSnapshot(session: String) throws(CheckpointError) -> SnapshotManifest? {
        let id: String? = try read { db in
            guard let condition = try Lineage.of(session, in: db)?.condition else { return nil }
            return try String.fetchOne(db, sql: "SELECT snapshot FROM checkpoints WHERE \(condition.sql) ORDER BY seq DESC LIMIT 1",
                                       arguments: condition.arguments)
        }
        guard let id else { return nil }
        return try snapshot(id)
    }

    public func snapshot(_ id: String) throws(CheckpointError) -> SnapshotManifest? {
        let json: String? = try read { db in try String.fetchOne(db, sql: "SELECT manifest FROM snapshots WHERE id = ?", arguments: [id]) }
        guard let json else { return nil }
        guard let manifest = SnapshotManifest.decode(json), manifest.id == id else {
            throw CheckpointError(.storage, "snapshot \(id) is unreadable or does not match its id")
        }
        return manifest
    }

    /// Records that a step is starting (before its jail), so a step that never seals shows
    /// up in `session facts`, and takes the step's lease: when another attempt of the same
    /// step is running (not ended, its runner alive), nothing is recorded and `.stepRunning`
    /// is thrown; when the step got sealed meanwhile, `.alreadySealed`. Checked and inserted
    /// in one write transaction, so of two simultaneous starts exactly one gets the lease.
    @discardableResult
    public func recordAttempt(session: String, step: String, codeDigest: String, runID: String?,
                              pid: Int32, pidStart: String) throws(CheckpointError) -> StepAttempt {
        if let problem = StepKey.problem(step) { throw CheckpointError(.invalidInput, "the step key \(problem)") }
        var attempt = StepAttempt(id: 0, sessionID: session, stepKey: step, codeDigest: codeDigest, runID: runID,
                                  pid: pid, pidStart: pidStart, startedAtMs: Self.nowMs())
        do {
            try queue.write { db in
                if try Self.sealed(db, session: session, step: step) != nil {
                    throw CheckpointError(.alreadySealed, "step \(step) of session \(session) was sealed by another run meanwhile")
                }
                let open = try Row.fetchAll(db, sql: """
                    SELECT * FROM step_attempts WHERE session_id = ? AND step_key = ? AND ended_at_ms IS NULL ORDER BY id DESC LIMIT 16
                    """, arguments: [session, step]).map(Self.attempt)
                if let running = open.first(where: \.runnerAlive) {
                    throw CheckpointError(.stepRunning, "step \(step) of session \(session) is running now (run \(running.runID ?? "?"), started at \(running.startedAtMs) ms); wait for it to end, then run it again to get its sealed result")
                }
                try db.execute(sql: """
                    INSERT INTO step_attempts (session_id, step_key, code_digest, run_id, pid, pid_start, started_at_ms)
                    VALUES (?, ?, ?, ?, ?, ?, ?)
                    """, arguments: [session, step, codeDigest, runID, attempt.pid, attempt.pidStart, attempt.startedAtMs])
                attempt.id = db.lastInsertedRowID
            }
        } catch let error as CheckpointError {
            throw error
        } catch {
            throw CheckpointError(.storage, "cannot record the start of step \(step): \(error)")
        }
        return attempt
    }

    /// Ends an attempt that did not seal its step (`outcome`: blocked, failed, interrupted,
    /// not_started), releasing the step's lease. A sealed attempt needs no end: the seal is.
    public func endAttempt(_ id: Int64, outcome: String) throws(CheckpointError) {
        do {
            try queue.write { db in
                try db.execute(sql: "UPDATE step_attempts SET ended_at_ms = ?, outcome = ? WHERE id = ? AND ended_at_ms IS NULL",
                               arguments: [Self.nowMs(), outcome, id])
            }
        } catch {
            throw CheckpointError(.storage, "cannot record the end of attempt \(id): \(error)")
        }
    }

    /// Every attempt recorded for this session's own steps, oldest first.
    public func attempts(session: String) throws(CheckpointError) -> [StepAttempt] {
        try read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM step_attempts WHERE session_id = ? ORDER BY id", arguments: [session]).map(Self.attempt)
        }
    }

    /// The newest attempt of every step of this session that started but has no seal.
    public func unsealedAttempts(session: String) throws(CheckpointError) -> [StepAttempt] {
        try read { db in
            guard let condition = try Lineage.of(session, in: db)?.condition else { return [] }
            return try Row.fetchAll(db, sql: """
                SELECT a.* FROM step_attempts a
                WHERE a.session_id = ?
                  AND a.id = (SELECT MAX(id) FROM step_attempts b WHERE b.session_id = a.session_id AND b.step_key = a.step_key)
                  AND NOT EXISTS (SELECT 1 FROM checkpoints WHERE \(condition.sql) AND step_key = a.step_key)
                ORDER BY a.id
                """, arguments: [session] + condition.arguments).map(Self.attempt)
        }
    }

    /// Seals a finished step. Durable when this returns. A step is sealed once: sealing it
    /// again is refused (a re-run of a sealed step never executes, so never reaches here).
    @discardableResult
    public func seal(session: String, step: String, codeDigest: String, result: String,
                     ledgerCursor: Int64?, snapshot manifest: SnapshotManifest?) throws(CheckpointError) -> Checkpoint {
        if let problem = StepKey.problem(step) { throw CheckpointError(.invalidInput, "the step key \(problem)") }
        let snapshot = manifest?.id
        do {
            return try queue.write { db -> Checkpoint in
                guard try Bool.fetchOne(db, sql: "SELECT 1 FROM sessions WHERE id = ?", arguments: [session]) ?? false else {
                    throw CheckpointError(.unknownSession, "unknown session \(session) (create one with `sealbox session new`)")
                }
                if try Self.sealed(db, session: session, step: step) != nil {
                    throw CheckpointError(.alreadySealed, "step \(step) of session \(session) is already sealed")
                }
                let last = try Row.fetchOne(db, sql: "SELECT seq, hash FROM checkpoints ORDER BY seq DESC LIMIT 1")
                let view = try Lineage.of(session, in: db)?.condition
                let parent = try view.flatMap { try Int64.fetchOne(db, sql: "SELECT MAX(seq) FROM checkpoints WHERE \($0.sql)", arguments: $0.arguments) }
                if let manifest, let id = snapshot {
                    let json = String(decoding: manifest.canonicalJSON, as: UTF8.self)
                    try db.execute(sql: "INSERT OR IGNORE INTO snapshots (id, manifest, files, bytes, created_at_ms) VALUES (?, ?, ?, ?, ?)",
                                   arguments: [id, json, manifest.fileCount, Int64(manifest.totalBytes), Self.nowMs()])
                }
                var checkpoint = Checkpoint(
                    seq: (last?["seq"] as Int64? ?? 0) + 1, sessionID: session, stepKey: step, codeDigest: codeDigest,
                    result: result, ledgerCursor: ledgerCursor, snapshot: snapshot, parentSeq: parent,
                    createdAtMs: Self.nowMs(), prevHash: last?["hash"] ?? Self.genesis, hash: "")
                checkpoint.hash = Checkpoints.hash(checkpoint)
                try db.execute(sql: """
                    INSERT INTO checkpoints (seq, session_id, step_key, code_digest, result, ledger_cursor, snapshot,
                                             parent_seq, created_at_ms, prev_hash, hash)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                    """, arguments: [checkpoint.seq, session, step, codeDigest, result, ledgerCursor, snapshot,
                                     parent, checkpoint.createdAtMs, checkpoint.prevHash, checkpoint.hash])
                return checkpoint
            }
        } catch let error as CheckpointError {
            throw error
        } catch {
            throw CheckpointError(.storage, "cannot seal step \(step): \(error)")
        }
    }

    /// Sessions nothing refers to: no sealed step, no attempt, no fork (oldest first, at most
    /// `limit`). A server killed between creating a session and recording who owns it left
    /// such sessions behind before ownership was recorded first.
    public func unusedSessions(limit: Int) throws(CheckpointError) -> [String] {
        try read { db in
            try String.fetchAll(db, sql: """
                SELECT id FROM sessions s
                WHERE NOT EXISTS (SELECT 1 FROM checkpoints WHERE session_id = s.id)
                  AND NOT EXISTS (SELECT 1 FROM step_attempts WHERE session_id = s.id)
                  AND NOT EXISTS (SELECT 1 FROM sessions f WHERE f.forked_from = s.id)
                ORDER BY created_at_ms LIMIT ?
                """, arguments: [limit])
        }
    }

    /// Removes a session if nothing refers to it (checked again inside the transaction).
    @discardableResult
    public func removeUnusedSession(_ id: String) throws(CheckpointError) -> Bool {
        do {
            return try queue.write { db in
                try db.execute(sql: """
                    DELETE FROM sessions WHERE id = ?
                      AND NOT EXISTS (SELECT 1 FROM checkpoints WHERE session_id = ?)
                      AND NOT EXISTS (SELECT 1 FROM step_attempts WHERE session_id = ?)
                      AND NOT EXISTS (SELECT 1 FROM sessions f WHERE f.forked_from = ?)
                    """, arguments: [id, id, id, id])
                return db.changesCount > 0
            }
        } catch {
            throw CheckpointError(.storage, "cannot remove session \(id): \(error)")
        }
    }

    /// Walks the chain; names the first bad checkpoint.
    public func verify() throws(CheckpointError) -> VerifyReport {
        do {
            return try queue.read { db in
                var previous = Self.genesis
                var expectedSeq: Int64 = 1
                var checked = 0
                for row in try Row.fetchAll(db, sql: "SELECT * FROM checkpoints ORDER BY seq") {
                    let c = Self.checkpoint(row)
                    if c.seq != expectedSeq {
                        return VerifyReport(ok: false, checked: checked, firstBadSeq: expectedSeq, reason: "gap: seq \(expectedSeq) is missing")
                    }
                    if c.prevHash != previous {
                        return VerifyReport(ok: false, checked: checked, firstBadSeq: c.seq, reason: "prev_hash does not match seq \(c.seq - 1)")
                    }
                    if Checkpoints.hash(c) != c.hash {
                        return VerifyReport(ok: false, checked: checked, firstBadSeq: c.seq, reason: "hash mismatch")
                    }
                    if let id = c.snapshot {
                        let json = try String.fetchOne(db, sql: "SELECT manifest FROM snapshots WHERE id = ?", arguments: [id])
                        guard let json, SnapshotManifest.decode(json)?.id == id else {
                            return VerifyReport(ok: false, checked: checked, firstBadSeq: c.seq, reason: "workspace snapshot \(id) is missing or altered")
                        }
                    }
                    previous = c.hash
                    expectedSeq += 1
                    checked += 1
                }
                return VerifyReport(ok: true, checked: checked, firstBadSeq: nil, reason: nil)
            }
        } catch {
            throw CheckpointError(.storage, "checkpoint store: \(error)")
        }
    }

    static func attempt(_ row: Row) -> StepAttempt {
        StepAttempt(id: row["id"], sessionID: row["session_id"], stepKey: row["step_key"], codeDigest: row["code_digest"],
                    runID: row["run_id"], pid: row["pid"], pidStart: row["pid_start"], startedAtMs: row["started_at_ms"],
                    endedAtMs: row["ended_at_ms"], outcome: row["outcome"])
    }

    static func sealed(_ db: Database, session: String, step: String) throws -> Checkpoint? {
        guard let condition = try Lineage.of(session, in: db)?.condition else { return nil }
        return try Row.fetchOne(db, sql: "SELECT * FROM checkpoints WHERE \(condition.sql) AND step_key = ?",
                                arguments: condition.arguments + [step]).map(Self.checkpoint)
    }

    private func read<T>(_ body: (Database) throws -> T) throws(CheckpointError) -> T {
        do {
            return try queue.read(body)
        } catch let error as CheckpointError {
            throw error
        } catch {
            throw CheckpointError(.storage, "checkpoint store \(path): \(error)")
        }
    }

    static func checkpoint(_ row: Row) -> Checkpoint {
        Checkpoint(seq: row["seq"], sessionID: row["session_id"], stepKey: row["step_key"], codeDigest: row["code_digest"],
                   result: row["result"], ledgerCursor: row["ledger_cursor"], snapshot: row["snapshot"],
                   parentSeq: row["parent_seq"], createdAtMs: row["created_at_ms"], prevHash: row["prev_hash"], hash: row["hash"])
    }

    static func nowMs() -> Int64 { Int64(Date().timeIntervalSince1970 * 1000) }
}
