import GRDB
import SealboxLedger

/// The effect log's primitives on SQLite (GRDB), inside `GroupCommitWriter`'s `BEGIN
/// IMMEDIATE` transaction (its tail lock), and its reads.
struct SQLiteEffectLogTransaction: EffectLogTransaction {
    let db: Database

    func chainTail() throws -> ChainTail {
        try ChainTail.read(db)
    }

    func savepoint(_ body: () throws -> Void) throws {
        try db.inSavepoint {
            try body()
            return .commit
        }
    }

    func call(intentSeq: Int64) throws -> CallSummary? {
        try Self.fetchCalls(db, sql: "SELECT * FROM calls WHERE intent_seq = ?", arguments: [intentSeq]).first
    }

    func recordKind(seq: Int64) throws -> String? {
        try String.fetchOne(db, sql: "SELECT kind FROM effects WHERE seq = ?", arguments: [seq])
    }

    func calls(in state: CallState) throws -> [CallSummary] {
        try Self.fetchCalls(db, sql: "SELECT * FROM calls WHERE state = ? ORDER BY intent_seq", arguments: [state.rawValue])
    }

    func insert(_ record: EffectRecord) throws {
        var values = Self.databaseValues(of: record)
        // A large response is stored once, as a blob; the row refers to it by digest.
        let blob = try ResponseBlobs.store(record.response, db)
        if let blob, let index = EffectHash.columns.firstIndex(of: "response") {
            values[index] = .null
            values.append(blob.databaseValue)
        }
        let statement = try db.cachedStatement(sql: blob == nil ? Self.insertSQL : Self.insertWithBlobSQL)
        try statement.execute(arguments: StatementArguments(values))
    }

    func insertCall(_ call: CallSummary) throws {
        try db.execute(
            sql: """
                INSERT INTO calls (intent_seq, session_id, run_id, tool, effect_class, idempotency_key, approval,
                                   state, completion_seq, created_at_ms, updated_at_ms)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """,
            arguments: [call.intentSeq, call.sessionID, call.runID, call.tool, call.effectClass.rawValue,
                        call.idempotencyKey, call.approval.rawValue, call.state.rawValue, call.completionSeq,
                        call.createdAtMs, call.updatedAtMs])
    }

    func moveCall(intentSeq: Int64, to state: CallState, completionSeq: Int64?, now: Int64) throws {
        try db.execute(
            sql: "UPDATE calls SET state = ?, completion_seq = COALESCE(?, completion_seq), updated_at_ms = ? WHERE intent_seq = ?",
            arguments: [state.rawValue, completionSeq, now, intentSeq])
    }

    func insertRevocation(tokenID: String?, runID: String?, reason: String, now: Int64, recordSeq: Int64) throws {
        try db.execute(
            sql: "INSERT INTO revocations (token_id, run_id, reason, created_at_ms, record_seq) VALUES (?, ?, ?, ?, ?)",
            arguments: [tokenID, runID, reason, now, recordSeq])
    }

    func familyRoot(of sessionID: String) throws -> String? {
        guard let row = try Row.fetchOne(db, sql: "SELECT root_id FROM session_family WHERE session_id = ?", arguments: [sessionID]) else {
            return nil
        }
        guard let root = try RowReader.text(row, "root_id") else {
            throw LedgerError(.storage, "session_family row of \(sessionID): root_id is NULL")
        }
        return root
    }

    func insertFamilyMember(sessionID: String, root: String, now: Int64) throws {
        try db.execute(
            sql: "INSERT INTO session_family (session_id, root_id, created_at_ms) VALUES (?, ?, ?)",
            arguments: [sessionID, root, now])
    }

    func grantExists(tokenID: String) throws -> Bool {
        try Int64.fetchOne(db, sql: "SELECT record_seq FROM grants WHERE token_id = ?", arguments: [tokenID]) != nil
    }

    func insertGrant(_ input: GrantInput, tools: String, now: Int64, recordSeq: Int64) throws {
        try db.execute(
            sql: """
                INSERT INTO grants (token_id, run_id, session_id, tools, expires_at_ms, created_at_ms, record_seq, tenant)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                """,
            arguments: [input.tokenID, input.runID, input.sessionID, tools, input.expiresAtMs, now, recordSeq, input.tenant])
    }

    func liveGrants(now: Int64) throws -> [GrantSummary] {
        try SQLiteGrantRows.fetch(db, sql: SQLiteGrantRows.liveSelect + " ORDER BY g.record_seq", arguments: [now])
    }

    func ownersOfPendingCalls() throws -> [Int64: [String]] {
        var owners: [Int64: [String]] = [:]
        func collect(_ sql: String) throws {
            for row in try Row.fetchAll(db, sql: sql, arguments: [CallState.pending.rawValue]) {
                guard let seq = try RowReader.int(row, "intent_seq") else { continue }
                let note = (try? RowReader.text(row, "note")) ?? nil
                if let broker = LedgerApplyGrants.brokerID(fromNote: note) { owners[seq, default: []].append(broker) }
            }
        }
        // token_id is the grants' primary key: one grant per call (attenuated tokens keep it).
        try collect("""
            SELECT c.intent_seq AS intent_seq, ge.note AS note
            FROM calls c
            JOIN effects i ON i.seq = c.intent_seq
            JOIN grants g ON g.token_id = i.token_id
            JOIN effects ge ON ge.seq = g.record_seq
            WHERE c.state = ?
            """)
        // Intents whose token has no grant: the grants of their run, if any.
        try collect("""
            SELECT c.intent_seq AS intent_seq, ge.note AS note
            FROM calls c
            JOIN grants g ON g.run_id = c.run_id
            JOIN effects ge ON ge.seq = g.record_seq
            WHERE c.state = ?
              AND NOT EXISTS (SELECT 1 FROM effects i JOIN grants g2 ON g2.token_id = i.token_id WHERE i.seq = c.intent_seq)
            """)
        return owners
    }

    // MARK: - Rows

    static let insertSQL = "INSERT INTO effects (\(EffectHash.columns.joined(separator: ", ")), hash) VALUES ("
        + Array(repeating: "?", count: EffectHash.columns.count + 1).joined(separator: ", ") + ")"
    static let insertWithBlobSQL = "INSERT INTO effects (\(EffectHash.columns.joined(separator: ", ")), hash, response_blob) VALUES ("
        + Array(repeating: "?", count: EffectHash.columns.count + 2).joined(separator: ", ") + ")"

    /// The row values in `EffectHash.columns` order, then `hash`.
    static func databaseValues(of r: EffectRecord) -> [DatabaseValue] {
        var values = EffectHash.fields(of: r).map { value -> DatabaseValue in
            switch value {
            case .int(let v): v.databaseValue
            case .text(let v): v.databaseValue
            case .bool(let v): v.map { ($0 ? 1 : 0 as Int64).databaseValue } ?? .null
            case .real(let v): v.databaseValue
            }
        }
        values.append(r.hash.databaseValue)
        return values
    }

    static func fetchCalls(_ db: Database, sql: String, arguments: StatementArguments) throws -> [CallSummary] {
        try Row.fetchAll(db, sql: sql, arguments: arguments).map { try callSummary($0) }
    }

    static func callSummary(_ row: Row) throws(LedgerError) -> CallSummary {
        let seq = try RowReader.int(row, "intent_seq")
        guard let seq else { throw LedgerError(.storage, "a calls row has no intent_seq") }
        func required(_ column: String) throws(LedgerError) -> String {
            guard let value = try RowReader.text(row, column) else {
                throw LedgerError(.storage, "calls row \(seq): \(column) is NULL")
            }
            return value
        }
        let stateText = try required("state")
        guard let state = CallState(rawValue: stateText) else {
            throw LedgerError(.storage, "calls row \(seq): unknown state \"\(stateText)\"")
        }
        let classText = try required("effect_class")
        guard let effectClass = EffectClass(rawValue: classText) else {
            throw LedgerError(.storage, "calls row \(seq): unknown effect class \"\(classText)\"")
        }
        let approvalText = try required("approval")
        guard let approval = Approval(rawValue: approvalText) else {
            throw LedgerError(.storage, "calls row \(seq): unknown approval \"\(approvalText)\"")
        }
        guard let created = try RowReader.int(row, "created_at_ms"), let updated = try RowReader.int(row, "updated_at_ms") else {
            throw LedgerError(.storage, "calls row \(seq): timestamps are NULL")
        }
        return CallSummary(
            intentSeq: seq, completionSeq: try RowReader.int(row, "completion_seq"), state: state,
            sessionID: try required("session_id"), runID: try required("run_id"), tool: try required("tool"),
            effectClass: effectClass, idempotencyKey: try required("idempotency_key"), approval: approval,
            createdAtMs: created, updatedAtMs: updated)
    }
}

extension ChainTail {
    /// The tail inside the write transaction (its `BEGIN IMMEDIATE` is the tail lock).
    static func read(_ db: Database) throws -> ChainTail {
        if let row = try Row.fetchOne(db, sql: "SELECT seq, hash FROM effects ORDER BY seq DESC LIMIT 1") {
            let seqValue: DatabaseValue = row[0]
            let hashValue: DatabaseValue = row[1]
            guard case .int64(let seq) = seqValue.storage, case .string(let hash) = hashValue.storage else {
                // Appending onto an unreadable tail would only bury the damage deeper.
                throw LedgerError(.storage, "the last record of the effect log is unreadable; run `sealbox log verify`")
            }
            return ChainTail(seq: seq, hash: hash)
        }
        return .empty
    }
}

/// Rows of the `grants` table (`liveGrants`).
enum SQLiteGrantRows {
    /// Grants not expired at `?` (the first argument) and neither revoked by token nor by run
    /// (closing a run revokes it), with their grant record's note (`grant_note`, for the broker
    /// id). Callers append further conditions with AND.
    static let liveSelect = """
        SELECT g.*, e.note AS grant_note FROM grants g JOIN effects e ON e.seq = g.record_seq
        WHERE g.expires_at_ms > ?
          AND NOT EXISTS (SELECT 1 FROM revocations r WHERE r.token_id = g.token_id)
          AND NOT EXISTS (SELECT 1 FROM revocations r WHERE r.run_id = g.run_id)
        """

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
            brokerID: row.hasColumn("grant_note") ? LedgerApplyGrants.brokerID(fromNote: (try? RowReader.text(row, "grant_note")) ?? nil) : nil)
    }
}

/// Reads columns by storage class and never traps: a tampered or damaged row becomes a
/// LedgerError (GRDB's `row[...]` conversions would crash on a wrong type).
enum RowReader {
    static let recordSelect = "SELECT \(EffectHash.columns.map { $0 == "response" ? ResponseBlobs.responseColumn : $0 }.joined(separator: ", ")), hash FROM effects"

    static func int(_ row: Row, _ column: String) throws(LedgerError) -> Int64? {
        let value: DatabaseValue = row[column] ?? .null
        switch value.storage {
        case .null: return nil
        case .int64(let v): return v
        default: throw LedgerError(.storage, "\(column) is not an integer")
        }
    }

    static func text(_ row: Row, _ column: String) throws(LedgerError) -> String? {
        let value: DatabaseValue = row[column] ?? .null
        switch value.storage {
        case .null: return nil
        case .string(let v): return v
        default: throw LedgerError(.storage, "\(column) is not text")
        }
    }

    static func bool(_ row: Row, _ column: String) throws(LedgerError) -> Bool? {
        let value: DatabaseValue = row[column] ?? .null
        switch value.storage {
        case .null: return nil
        case .int64(0): return false
        case .int64(1): return true
        default: throw LedgerError(.storage, "\(column) is not 0 or 1")
        }
    }

    static func real(_ row: Row, _ column: String) throws(LedgerError) -> Double? {
        let value: DatabaseValue = row[column] ?? .null
        switch value.storage {
        case .null: return nil
        case .double(let v): return v
        case .int64(let v): return Double(v)
        default: throw LedgerError(.storage, "\(column) is not a number")
        }
    }

    /// A row selected with `recordSelect`.
    static func record(_ row: Row) throws(LedgerError) -> EffectRecord {
        func required<T>(_ value: T?, _ column: String) throws(LedgerError) -> T {
            guard let value else { throw LedgerError(.storage, "\(column) is NULL") }
            return value
        }
        return EffectRecord(
            seq: try required(int(row, "seq"), "seq"),
            kind: try required(text(row, "kind"), "kind"),
            createdAtMs: try required(int(row, "created_at_ms"), "created_at_ms"),
            prevHash: try required(text(row, "prev_hash"), "prev_hash"),
            hash: try required(text(row, "hash"), "hash"),
            intentSeq: try int(row, "intent_seq"),
            runID: try text(row, "run_id"),
            sessionID: try text(row, "session_id"),
            tool: try text(row, "tool"),
            effectClass: try text(row, "effect_class"),
            idempotencyKey: try text(row, "idempotency_key"),
            target: try text(row, "target"),
            argsDigest: try text(row, "args_digest"),
            approval: try text(row, "approval"),
            tokenID: try text(row, "token_id"),
            fresh: try bool(row, "fresh"),
            status: try text(row, "status"),
            response: try text(row, "response"),
            responseDigest: try text(row, "response_digest"),
            resourceVersion: try text(row, "resource_version"),
            irreversible: try bool(row, "irreversible"),
            happened: try bool(row, "happened"),
            durationMs: try real(row, "duration_ms"),
            actor: try text(row, "actor"),
            note: try text(row, "note"))
    }
}
