import Foundation
import GRDB

/// Token grants inside the write transaction (see `Ledger.appendGrant`).
enum LedgerApplyGrants {
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

    /// Grants not expired at `?` (the first argument) and neither revoked by token nor by run
    /// (closing a run revokes it), with their grant record's note (`grant_note`, for the broker
    /// id). Callers append further conditions with AND.
    static let liveSelect = """
        SELECT g.*, e.note AS grant_note FROM grants g JOIN effects e ON e.seq = g.record_seq
        WHERE g.expires_at_ms > ?
          AND NOT EXISTS (SELECT 1 FROM revocations r WHERE r.token_id = g.token_id)
          AND NOT EXISTS (SELECT 1 FROM revocations r WHERE r.run_id = g.run_id)
        """

    /// The `broker_id` of a grant note; nil when absent or unreadable (such a grant is treated
    /// as one without an owner).
    static func brokerID(fromNote note: String?) -> String? {
        guard let note, let owner = try? JSONDecoder().decode(Owner.self, from: Data(note.utf8)) else { return nil }
        return owner.brokerID
    }

    private struct Owner: Decodable {
        var brokerID: String?
        enum CodingKeys: String, CodingKey { case brokerID = "broker_id" }
    }

    static func fetch(_ db: Database, sql: String, arguments: StatementArguments) throws -> [GrantSummary] {
        try Row.fetchAll(db, sql: sql, arguments: arguments).map { try summary($0) }
    }

    static func summary(_ row: Row) throws(LedgerError) -> GrantSummary {
        let token = try RowReader.text(row, "token_id") ?? "?"
        func required<T>(_ value: T?, _ column: String) throws(LedgerError) -> T {
            guard let value else { throw LedgerError(.storage, "grants row of token \(token): \(column) is NULL") }
            return value
        }
        let tools = try required(RowReader.text(row, "tools"), "tools")
        return GrantSummary(
            tokenID: token, runID: try required(RowReader.text(row, "run_id"), "run_id"),
            sessionID: try required(RowReader.text(row, "session_id"), "session_id"),
            tools: tools.isEmpty ? [] : tools.split(separator: ",", omittingEmptySubsequences: false).map(String.init),
            expiresAtMs: try required(RowReader.int(row, "expires_at_ms"), "expires_at_ms"),
            createdAtMs: try required(RowReader.int(row, "created_at_ms"), "created_at_ms"),
            recordSeq: try required(RowReader.int(row, "record_seq"), "record_seq"),
            brokerID: row.hasColumn("grant_note") ? brokerID(fromNote: (try? RowReader.text(row, "grant_note")) ?? nil) : nil)
    }
}
