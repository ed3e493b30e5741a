/// Token grants in the log, so an operator can ask what authority remains: a grant record when a
/// token is minted, a revocation record when the token or its run is revoked (closing a run
/// revokes it), and the expiry signed into the token.
extension Ledger {
    /// Appends a `grant` record and records the session's family (`recordSession`), in one
    /// transaction. The broker calls it BEFORE it hands the token out, so no token exists that
    /// the log does not know. Throws `invalidInput` for a family conflict (see `recordSession`),
    /// a token id already granted, or unusable fields.
    public func appendGrant(_ input: GrantInput) async throws(LedgerError) -> EffectRecord {
        guard !input.tokenID.isEmpty, !input.runID.isEmpty else {
            throw LedgerError(.invalidInput, "a grant names a token id and a run id")
        }
        try Self.checkSessionIDs([input.sessionID] + (input.sessionRoot.map { [$0] } ?? []))
        for tool in input.tools where tool.isEmpty || tool.contains(",") {
            // The grant record joins the tools with ",".
            throw LedgerError(.invalidInput, "tool name \"\(tool)\" cannot be granted: empty or contains \",\"")
        }
        guard input.expiresAtMs > 0 else { throw LedgerError(.invalidInput, "expires_at_ms must be a unix time in ms, not \(input.expiresAtMs)") }
        try Self.checkText([("token_id", input.tokenID), ("run_id", input.runID)] + input.tools.map { ("tool", $0) })
        return try await submit(.grant(input)).records[0]
    }

    /// Grants of these sessions that are live at `nowMs`: not expired, token not revoked, run not
    /// revoked or closed. In grant order. At most 1000 session ids.
    public func liveGrants(sessionIDs: [String], nowMs: Int64) throws(LedgerError) -> [GrantSummary] {
        try Self.checkSessionIDs(sessionIDs)
        return try store.liveGrants(sessionIDs: sessionIDs, nowMs: nowMs)
    }

    /// Every grant still live is revoked (a revocation record per token), whichever broker
    /// minted it. Only right when no other broker is live on this log: a starting broker uses
    /// `recoverAbandonedWork`, which ends only the grants of brokers that are gone. Returns the
    /// grants it ended.
    @discardableResult
    public func revokeLiveGrants(reason: String) async throws(LedgerError) -> [GrantSummary] {
        try Self.checkText([("reason", reason)])
        return try await submit(.revokeLiveGrants(reason: reason, brokerID: nil)).grants
    }
}
