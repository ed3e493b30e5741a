import Foundation

/// Token grants inside the write transaction (see `Ledger.appendGrant`).
package enum LedgerApplyGrants {
    /// The `note` of a grant record: what the v1 columns have no place for. `broker_id` is
    /// absent from grants recorded before brokers held leases (and from grants written without
    /// one), so those notes read exactly as before.
    struct Note: Codable {
        var expiresAtMs: Int64
        var sessionRoot: String
        var brokerID: String?

        enum CodingKeys: String, CodingKey {
            case expiresAtMs = "expires_at_ms"
            case sessionRoot = "session_root"
            case brokerID = "broker_id"
        }

        /// Sorted keys, no whitespace: the same grant always hashes the same.
        var json: String {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
            return String(decoding: (try? encoder.encode(self)) ?? Data("{}".utf8), as: UTF8.self)
        }
    }

    static func grant(_ tx: any EffectLogTransaction, _ input: GrantInput, tail: inout ChainTail, now: Int64) throws -> OpOutcome {
        // Checked here, not left to the PRIMARY KEY: an SQLite constraint error would abort the
        // whole group-commit batch, a LedgerError only this op.
        if try tx.grantExists(tokenID: input.tokenID) {
            throw LedgerError(.invalidInput, "token \(input.tokenID) was already granted")
        }
        let root = try LedgerApplyFamily.record(
            tx, sessionID: input.sessionID, claimedRoot: input.sessionRoot ?? input.sessionID, now: now)
        let tools = input.tools.sorted()
        var record = EffectRecord(
            seq: 0, kind: RecordKind.grant.rawValue, createdAtMs: now, prevHash: "",
            runID: input.runID, sessionID: input.sessionID, tool: tools.joined(separator: ","), tokenID: input.tokenID,
            actor: "broker", note: Note(expiresAtMs: input.expiresAtMs, sessionRoot: root, brokerID: input.brokerID).json)
        try LedgerApply.append(&record, tx, &tail)
        try tx.insertGrant(input, tools: record.tool ?? "", now: now, recordSeq: record.seq)
        return OpOutcome(records: [record], familyRoot: root)
    }

    /// Every grant still live at `now` (only those of `brokerID` when given) gets a revocation
    /// record (by token id), in one transaction.
    static func revokeLive(_ tx: any EffectLogTransaction, reason: String, brokerID: String?, tail: inout ChainTail, now: Int64) throws -> OpOutcome {
        var live = try tx.liveGrants(now: now)
        if let brokerID { live = live.filter { $0.brokerID == brokerID } }
        var outcome = OpOutcome(grants: live)
        for grant in live {
            try end(tx, grant, reason: reason, tail: &tail, now: now, into: &outcome)
        }
        return outcome
    }

    /// A revocation record (by token id) for `grant`.
    static func end(_ tx: any EffectLogTransaction, _ grant: GrantSummary, reason: String, tail: inout ChainTail, now: Int64, into outcome: inout OpOutcome) throws {
        let revoked = try LedgerApply.apply(tx, .revocation(tokenID: grant.tokenID, runID: nil, reason: reason), tail: &tail, now: now)
        outcome.records += revoked.records
    }

    /// The `broker_id` of a grant note; nil when absent or unreadable (such a grant is treated
    /// as one without an owner).
    package static func brokerID(fromNote note: String?) -> String? {
        guard let note, let owner = try? JSONDecoder().decode(Owner.self, from: Data(note.utf8)) else { return nil }
        return owner.brokerID
    }

    private struct Owner: Decodable {
        var brokerID: String?
        enum CodingKeys: String, CodingKey { case brokerID = "broker_id" }
    }
}
