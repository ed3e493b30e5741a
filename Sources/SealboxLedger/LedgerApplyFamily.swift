
/// Session families inside the write transaction (see `Ledger.recordSession`).
enum LedgerApplyFamily {
    /// Records `sessionID` under the root that `claimedRoot` stands for and returns that root.
    ///
    /// `claimedRoot == sessionID` claims "this session is a root". Any other claimed root may be
    /// a fork itself: it is resolved to ITS root, so a fork of a fork joins the same family. An
    /// unrecorded root is recorded as its own root, so it cannot later join another family and
    /// split this one. A session's root never changes: a different one is refused.
    static func record(_ tx: any EffectLogTransaction, sessionID: String, claimedRoot: String, now: Int64) throws -> String {
        let root = claimedRoot == sessionID ? sessionID : try tx.familyRoot(of: claimedRoot) ?? claimedRoot
        if let existing = try tx.familyRoot(of: sessionID) {
            guard existing == root else {
                let claim = claimedRoot == sessionID ? "as its own root" : "under root \(root)"
                throw LedgerError(
                    .invalidInput,
                    "session \(sessionID) is recorded in the family of root \(existing) and cannot be opened \(claim): "
                        + "a session's family never changes (name session_root \(existing), or fork a new session)")
            }
            return existing
        }
        if root != sessionID, try tx.familyRoot(of: root) == nil {
            try tx.insertFamilyMember(sessionID: root, root: root, now: now)
        }
        try tx.insertFamilyMember(sessionID: sessionID, root: root, now: now)
        return root
    }
}
