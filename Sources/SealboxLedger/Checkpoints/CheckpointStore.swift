import Crypto
import Glibc
import SealboxBase

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

    /// Every field as given (what a store reads back from its rows).
    public init(seq: Int64, sessionID: String, stepKey: String, codeDigest: String, result: String, ledgerCursor: Int64? = nil, snapshot: String? = nil, parentSeq: Int64? = nil, createdAtMs: Int64, prevHash: String, hash: String) {
        self.seq = seq
        self.sessionID = sessionID
        self.stepKey = stepKey
        self.codeDigest = codeDigest
        self.result = result
        self.ledgerCursor = ledgerCursor
        self.snapshot = snapshot
        self.parentSeq = parentSeq
        self.createdAtMs = createdAtMs
        self.prevHash = prevHash
        self.hash = hash
    }

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
        /// Another run of the same step is executing now.
        case stepRunning = "step_running"
        case stepConflict = "step_conflict"
        case alreadySealed = "already_sealed"
        case notSealed = "not_sealed"
        case invalidInput = "invalid_input"
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

/// Where sessions and their sealed steps are kept: a session's history (its own steps and, for
/// a fork, its parent's up to the fork point), the attempts that hold a step while it runs,
/// the seals, and workspace snapshots. The step-identity and replay rules stay above it
/// (SealboxRuntime.StepCheckpoint); a backend keeps records and their hash chain.
/// `SQLiteCheckpointStore` (SealboxSQLite) is the one-machine store (`checkpoints.db`).
public protocol CheckpointStore: Sendable {
    /// Workspace file contents, by digest.
    var blobs: any BlobStore { get }
    /// Where the store lives, for messages (a path, or a database name).
    var path: String { get }

    /// A new session, registered; returns its id. `id`: one made by
    /// `Checkpoints.newSessionID()` beforehand, when the caller must record it elsewhere first.
    func createSession(id: String, workspaceLimitBytes: UInt64) throws(CheckpointError) -> String
    func session(_ id: String) throws(CheckpointError) -> SessionInfo?
    /// A new session whose history is `session`'s up to and including its sealed step `step`.
    func fork(session: String, atStep step: String, newID: String) throws(CheckpointError) -> SessionInfo
    /// The sessions of `session`'s family (forked from one another).
    func family(of session: String) throws(CheckpointError) -> [String]
    func sessionExists(_ id: String) throws(CheckpointError) -> Bool
    func sealed(session: String, step: String) throws(CheckpointError) -> Checkpoint?
    func steps(session: String) throws(CheckpointError) -> [Checkpoint]
    func latestSnapshot(session: String) throws(CheckpointError) -> SnapshotManifest?
    func snapshot(_ id: String) throws(CheckpointError) -> SnapshotManifest?
    /// Holds `step` for this process while it runs (`step_running` for a live other holder).
    func recordAttempt(session: String, step: String, codeDigest: String, runID: String?, pid: Int32, pidStart: String) throws(CheckpointError) -> StepAttempt
    func endAttempt(_ id: Int64, outcome: String) throws(CheckpointError)
    func attempts(session: String) throws(CheckpointError) -> [StepAttempt]
    func unsealedAttempts(session: String) throws(CheckpointError) -> [StepAttempt]
    /// Seals `step` with its result, durably, when it returns.
    func seal(session: String, step: String, codeDigest: String, result: String, ledgerCursor: Int64?, snapshot manifest: SnapshotManifest?) throws(CheckpointError) -> Checkpoint
    func unusedSessions(limit: Int) throws(CheckpointError) -> [String]
    func removeUnusedSession(_ id: String) throws(CheckpointError) -> Bool
    /// Walks the chain of seals: the first bad one, or ok.
    func verify() throws(CheckpointError) -> VerifyReport
}

extension CheckpointStore {
    public func createSession(workspaceLimitBytes: UInt64 = SessionInfo.defaultWorkspaceLimit) throws(CheckpointError) -> String {
        try createSession(id: Checkpoints.newSessionID(), workspaceLimitBytes: workspaceLimitBytes)
    }

    public func fork(session: String, atStep step: String) throws(CheckpointError) -> SessionInfo {
        try fork(session: session, atStep: step, newID: Checkpoints.newSessionID())
    }

    public func recordAttempt(session: String, step: String, codeDigest: String, runID: String?) throws(CheckpointError) -> StepAttempt {
        try recordAttempt(session: session, step: step, codeDigest: codeDigest, runID: runID, pid: getpid(), pidStart: ProcessStart.current)
    }

    public func seal(session: String, step: String, codeDigest: String, result: String, ledgerCursor: Int64?) throws(CheckpointError) -> Checkpoint {
        try seal(session: session, step: step, codeDigest: codeDigest, result: result, ledgerCursor: ledgerCursor, snapshot: nil)
    }

    public func unusedSessions() throws(CheckpointError) -> [String] {
        try unusedSessions(limit: 1000)
    }
}

/// What every checkpoint store shares: session ids, the digest of what a step runs, and the
/// hash that chains seals (`sealbox-checkpoint-v1`; existing stores verify under it).
public enum Checkpoints {
    public static func newSessionID() -> String {
        RandomID.hex64(prefix: "s", padded: false)
    }

    /// Digest of what a step runs: each part length-prefixed, so no two lists collide.
    public static func codeDigest(_ parts: [[UInt8]]) -> String {
        var encoding = LengthPrefixed(width: .u64)
        for part in parts { encoding.append(part) }
        return "sha256:" + SHA256.hex(encoding.bytes)
    }

    /// SHA-256 over a length-prefixed encoding of every field but the hash itself.
    public static func hash(_ c: Checkpoint) -> String {
        var encoding = LengthPrefixed(width: .u32)
        func field(_ text: String?) {
            guard let text else { encoding.appendTag(0); return }
            encoding.appendTag(1)
            encoding.append(text: text)
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
        return SHA256.hex(encoding.bytes)
    }

}
