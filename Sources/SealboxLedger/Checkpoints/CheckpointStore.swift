import Crypto
import Foundation
import GRDB

/// A sealed step of a session: what ran (code digest), what came of it (the full result),
/// where the effect log stood (ledger cursor), and its place in the session's history.
/// Checkpoints are hash-chained across the whole store, like effect records.
public struct Checkpoint: Sendable, Codable, Equatable {
    public var seq: Int64
    public var sessionID: String
    public var stepKey: String
    public var codeDigest: String
    /// The step's result as JSON (for `sealbox run`, the RunResult object).
    public var result: String
    /// Last effect-log seq written by the step's run, if it used a broker.
    public var ledgerCursor: Int64?
    /// Workspace snapshot id (content-addressed), when the session has a workspace.
    public var snapshot: String?
    /// The session's previous checkpoint.
    public var parentSeq: Int64?
    public var createdAtMs: Int64
    public var prevHash: String
    public var hash: String

    enum CodingKeys: String, CodingKey {
        case seq
        case sessionID = "session_id"
        case stepKey = "step_key"
        case codeDigest = "code_digest"
        case result
        case ledgerCursor = "ledger_cursor"
        case snapshot
        case parentSeq = "parent_seq"
        case createdAtMs = "created_at_ms"
        case prevHash = "prev_hash"
        case hash
    }
}

public struct CheckpointError: Error, CustomStringConvertible, Sendable, Equatable {
    public enum Code: String, Sendable {
        case unknownSession = "unknown_session"
        case stepConflict = "step_conflict"
        case alreadySealed = "already_sealed"
        case storage
    }

    public let code: Code
    public let message: String
    public var description: String { message }

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }
}

/// Sessions and their sealed steps, in SQLite (WAL, synchronous=FULL: a seal is durable when
/// `seal` returns).
public final class CheckpointStore: Sendable {
    private let queue: DatabaseQueue
    public let path: String
    static let genesis = String(repeating: "0", count: 64)

    public init(path: String) throws(CheckpointError) {
        self.path = path
        do {
            let dir = (path as NSString).deletingLastPathComponent
            if !dir.isEmpty { try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700]) }
            var config = Configuration()
            config.label = "sealbox.checkpoints"
            config.busyMode = .timeout(5)
            queue = try DatabaseQueue(path: path, configuration: config)
            try queue.writeWithoutTransaction { db in
                try db.execute(sql: "PRAGMA journal_mode = WAL")
                try db.execute(sql: "PRAGMA synchronous = FULL")
            }
            var migrator = DatabaseMigrator()
            migrator.registerMigration("v1-sessions-checkpoints") { db in
                try db.execute(sql: """
                    CREATE TABLE sessions (
                        id TEXT PRIMARY KEY,
                        created_at_ms INTEGER NOT NULL,
                        forked_from TEXT,
                        forked_at_step TEXT
                    );
                    CREATE TABLE checkpoints (
                        seq INTEGER PRIMARY KEY,
                        session_id TEXT NOT NULL REFERENCES sessions(id),
                        step_key TEXT NOT NULL,
                        code_digest TEXT NOT NULL,
                        result TEXT NOT NULL,
                        ledger_cursor INTEGER,
                        snapshot TEXT,
                        parent_seq INTEGER REFERENCES checkpoints(seq),
                        created_at_ms INTEGER NOT NULL,
                        prev_hash TEXT NOT NULL,
                        hash TEXT NOT NULL,
                        UNIQUE (session_id, step_key)
                    );
                    CREATE TRIGGER checkpoints_append_only_update BEFORE UPDATE ON checkpoints
                        BEGIN SELECT RAISE(ABORT, 'checkpoints are append-only'); END;
                    CREATE TRIGGER checkpoints_append_only_delete BEFORE DELETE ON checkpoints
                        BEGIN SELECT RAISE(ABORT, 'checkpoints are append-only'); END;
                    """)
            }
            try migrator.migrate(queue)
        } catch {
            throw CheckpointError(.storage, "checkpoint store \(path): \(error)")
        }
    }

    /// A new session id, registered.
    public func createSession() throws(CheckpointError) -> String {
        let id = "s" + String(UInt64.random(in: 0...UInt64.max), radix: 16)
        do {
            try queue.write { db in
                try db.execute(sql: "INSERT INTO sessions (id, created_at_ms) VALUES (?, ?)", arguments: [id, Self.nowMs()])
            }
        } catch {
            throw CheckpointError(.storage, "cannot create a session: \(error)")
        }
        return id
    }

    public func sessionExists(_ id: String) throws(CheckpointError) -> Bool {
        do {
            return try queue.read { db in try Bool.fetchOne(db, sql: "SELECT 1 FROM sessions WHERE id = ?", arguments: [id]) ?? false }
        } catch {
            throw CheckpointError(.storage, "checkpoint store: \(error)")
        }
    }

    /// The sealed checkpoint of `stepKey` in the session, if any.
    public func sealed(session: String, step: String) throws(CheckpointError) -> Checkpoint? {
        do {
            return try queue.read { db in
                try Row.fetchOne(db, sql: "SELECT * FROM checkpoints WHERE session_id = ? AND step_key = ?", arguments: [session, step]).map(Self.checkpoint)
            }
        } catch {
            throw CheckpointError(.storage, "checkpoint store: \(error)")
        }
    }

    /// The session's sealed steps, in order.
    public func steps(session: String) throws(CheckpointError) -> [Checkpoint] {
        do {
            return try queue.read { db in
                try Row.fetchAll(db, sql: "SELECT * FROM checkpoints WHERE session_id = ? ORDER BY seq", arguments: [session]).map(Self.checkpoint)
            }
        } catch {
            throw CheckpointError(.storage, "checkpoint store: \(error)")
        }
    }

    /// Seals a finished step. Durable when this returns. A step is sealed once: sealing it
    /// again is refused (a re-run of a sealed step never executes, so never reaches here).
    @discardableResult
    public func seal(session: String, step: String, codeDigest: String, result: String,
                     ledgerCursor: Int64?, snapshot: String? = nil) throws(CheckpointError) -> Checkpoint {
        do {
            return try queue.write { db -> Checkpoint in
                guard try Bool.fetchOne(db, sql: "SELECT 1 FROM sessions WHERE id = ?", arguments: [session]) ?? false else {
                    throw CheckpointError(.unknownSession, "unknown session \(session) (create one with `sealbox session new`)")
                }
                if try Bool.fetchOne(db, sql: "SELECT 1 FROM checkpoints WHERE session_id = ? AND step_key = ?", arguments: [session, step]) ?? false {
                    throw CheckpointError(.alreadySealed, "step \(step) of session \(session) is already sealed")
                }
                let last = try Row.fetchOne(db, sql: "SELECT seq, hash FROM checkpoints ORDER BY seq DESC LIMIT 1")
                let parent = try Int64.fetchOne(db, sql: "SELECT MAX(seq) FROM checkpoints WHERE session_id = ?", arguments: [session])
                var checkpoint = Checkpoint(
                    seq: (last?["seq"] as Int64? ?? 0) + 1, sessionID: session, stepKey: step, codeDigest: codeDigest,
                    result: result, ledgerCursor: ledgerCursor, snapshot: snapshot, parentSeq: parent,
                    createdAtMs: Self.nowMs(), prevHash: last?["hash"] ?? Self.genesis, hash: "")
                checkpoint.hash = Self.hash(checkpoint)
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
                    if Self.hash(c) != c.hash {
                        return VerifyReport(ok: false, checked: checked, firstBadSeq: c.seq, reason: "hash mismatch")
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

    /// Digest of what a step runs: each part length-prefixed, so no two lists collide.
    public static func codeDigest(_ parts: [[UInt8]]) -> String {
        var data = Data()
        for part in parts {
            var length = UInt64(part.count).bigEndian
            withUnsafeBytes(of: &length) { data.append(contentsOf: $0) }
            data.append(contentsOf: part)
        }
        return "sha256:" + SHA256.hash(data: data).map { String(format: "%02x", $0) }.joined()
    }

    public static var defaultPath: String {
        if geteuid() == 0 { return "/var/lib/sealbox/checkpoints.sqlite" }
        return (ProcessInfo.processInfo.environment["HOME"] ?? "/tmp") + "/.local/state/sealbox/checkpoints.sqlite"
    }

    /// SHA-256 over a length-prefixed encoding of every field but the hash itself.
    static func hash(_ c: Checkpoint) -> String {
        var data = Data()
        func field(_ text: String?) {
            guard let text else { data.append(0); return }
            data.append(1)
            let bytes = Array(text.utf8)
            var length = UInt32(bytes.count).bigEndian
            withUnsafeBytes(of: &length) { data.append(contentsOf: $0) }
            data.append(contentsOf: bytes)
        }
        field("sealbox-checkpoint-v1")
        field(String(c.seq))
        field(c.sessionID)
        field(c.stepKey)
        field(c.codeDigest)
        field(c.result)
        field(c.ledgerCursor.map { String($0) })
        field(c.snapshot)
        field(c.parentSeq.map { String($0) })
        field(String(c.createdAtMs))
        field(c.prevHash)
        return SHA256.hash(data: data).map { String(format: "%02x", $0) }.joined()
    }

    static func checkpoint(_ row: Row) -> Checkpoint {
        Checkpoint(seq: row["seq"], sessionID: row["session_id"], stepKey: row["step_key"], codeDigest: row["code_digest"],
                   result: row["result"], ledgerCursor: row["ledger_cursor"], snapshot: row["snapshot"],
                   parentSeq: row["parent_seq"], createdAtMs: row["created_at_ms"], prevHash: row["prev_hash"], hash: row["hash"])
    }

    static func nowMs() -> Int64 { Int64(Date().timeIntervalSince1970 * 1000) }
}
