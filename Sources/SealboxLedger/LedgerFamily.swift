/// Session families (DESIGN.md, "Resumability"): `sealbox session fork S --at STEP` makes a
/// session whose history is S's prefix, but the world does not fork. Every session of a family
/// (same root) must see the irreversible effects sealed by any other, so the broker looks calls
/// up across the family, not just in the calling session.
extension Ledger {
    /// Most session ids one query takes.
    public static let maximumSessionIDs = 1000

    /// Records that `sessionID` belongs to the family of `root` (nil: it is its own root) and
    /// returns the family's root. Idempotent. A root that is itself a fork stands for its own
    /// root. Throws `invalidInput` when the session is already recorded under another root: a
    /// session's family never changes.
    @discardableResult
    public func recordSession(_ sessionID: String, root: String? = nil) async throws(LedgerError) -> String {
        try Self.checkSessionIDs([sessionID] + (root.map { [$0] } ?? []))
        let outcome = try await submit(.session(sessionID: sessionID, root: root ?? sessionID))
        return outcome.familyRoot ?? sessionID
    }

    /// The root of `sessionID`'s family; a session never recorded is its own root.
    public func root(of sessionID: String) throws(LedgerError) -> String {
        try store.familyRoot(of: sessionID) ?? sessionID
    }

    /// Every session of `sessionID`'s family: the root first, then the others in the order they
    /// were recorded. A session never recorded is a family of one.
    public func family(of sessionID: String) throws(LedgerError) -> [String] {
        let root = try store.familyRoot(of: sessionID) ?? sessionID
        return [root] + (try store.familyMembers(root: root)).filter { $0 != root }
    }

    /// Calls under (tool, idempotency key) in the OTHER sessions of `sessionID`'s family, newest
    /// first, at most 1000.
    public func callsInFamily(sessionID: String, tool: String, idempotencyKey: String) throws(LedgerError) -> [CallSummary] {
        guard let root = try store.familyRoot(of: sessionID) else { return [] }
        return try store.calls(familyRoot: root, excluding: sessionID, tool: tool, idempotencyKey: idempotencyKey, limit: 1000)
    }

    /// The newest call under (tool, idempotency key) in another session of `sessionID`'s family.
    public func latestCallInFamily(sessionID: String, tool: String, idempotencyKey: String) throws(LedgerError) -> CallSummary? {
        try callsInFamily(sessionID: sessionID, tool: tool, idempotencyKey: idempotencyKey).first
    }

    /// Every call of these sessions in intent-seq order: those after `afterSeq`, at most `limit`
    /// (clamped to 1...10000; page with the last intent seq). At most 1000 session ids.
    public func calls(sessionIDs: [String], afterSeq: Int64 = 0, limit: Int = 1000) throws(LedgerError) -> [CallSummary] {
        try Self.checkSessionIDs(sessionIDs)
        guard !sessionIDs.isEmpty else { return [] }
        return try store.calls(sessionIDs: sessionIDs, afterSeq: afterSeq, limit: min(max(limit, 1), ListFilter.maximumLimit))
    }

    static func checkSessionIDs(_ ids: [String]) throws(LedgerError) {
        guard ids.count <= maximumSessionIDs else {
            throw LedgerError(.invalidInput, "at most \(maximumSessionIDs) session ids per query, not \(ids.count)")
        }
        for id in ids where id.isEmpty {
            throw LedgerError(.invalidInput, "a session id is empty")
        }
        try checkText(ids.map { ("session_id", $0) })
    }
}
