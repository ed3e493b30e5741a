import GRDB

/// Session families inside the write transaction (see `Ledger.recordSession`).
enum LedgerApplyFamily {
    /// Records `sessionID` under the root that `claimedRoot` stands for and returns that root.
    ///
    /// `claimedRoot == sessionID` claims "this session is a root". Any other claimed root may be
    /// a fork itself: it is resolved to ITS root, so a fork of a fork joins the same family. An
    /// unrecorded root is recorded as its own root, so it cannot later join another family and
    /// split this one. A session's root never changes: a different one is refused.
    static func record(_ db: Database, sessionID: String, claimedRoot: String, now: Int64) throws -> String {
        let root = claimedRoot == sessionID ? sessionID : try rootOf(db, claimedRoot) ?? claimedRoot
        if let existing = try rootOf(db, sessionID) {
            guard existing == root else {
                let claim = claimedRoot == sessionID ? "as its own root" : "under root \(root)"
                throw LedgerError(
                    .invalidInput,
                    "session \(sessionID) is recorded in the family of root \(existing) and cannot be opened \(claim): "
                        + "a session's family never changes (name session_root \(existing), or fork a new session)")
            }
            return existing
        }
        if root != sessionID, try rootOf(db, root) == nil {
            try insert(db, sessionID: root, root: root, now: now)
        }
        try insert(db, sessionID: sessionID, root: root, now: now)
        return root
    }

    static func rootOf(_ db: Database, _ sessionID: String) throws -> String? {
        guard let row = try Row.fetchOne(db, sql: "SELECT root_id FROM session_family WHERE session_id = ?", arguments: [sessionID]) else {
            return nil
        }
        guard let root = try RowReader.text(row, "root_id") else {
            throw LedgerError(.storage, "session_family row of \(sessionID): root_id is NULL")
        }
        return root
    }

    private static func insert(_ db: Database, sessionID: String, root: String, now: Int64) throws {
        try db.execute(
            sql: "INSERT INTO session_family (session_id, root_id, created_at_ms) VALUES (?, ?, ?)",
            arguments: [sessionID, root, now])
    }
}
