import Foundation
import GRDB

/// What happens inside the write transaction for each op: read the call's current state from
/// `calls`, check the transition, append the record(s) to the chain and update `calls` — all in
/// the caller's savepoint, so an invalid transition leaves no trace.
enum LedgerApply {
    static func apply(_ db: Database, _ op: LedgerOp, tail: inout ChainTail, now: Int64) throws -> OpOutcome {
        switch op {
        case .intent(let input, let state):
            var record = EffectRecord(
                seq: 0, kind: RecordKind.intent.rawValue, createdAtMs: now, prevHash: "",
                runID: input.runID, sessionID: input.sessionID, tool: input.tool,
                effectClass: input.effectClass.rawValue, idempotencyKey: input.idempotencyKey, target: input.target,
                argsDigest: input.argsDigest, approval: input.approval.rawValue, tokenID: input.tokenID,
                fresh: input.fresh, status: state.rawValue)
            try append(&record, db, &tail)
            try db.execute(
                sql: """
                    INSERT INTO calls (intent_seq, session_id, run_id, tool, effect_class, idempotency_key, approval,
                                       state, completion_seq, created_at_ms, updated_at_ms)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, NULL, ?, ?)
                    """,
                arguments: [record.seq, input.sessionID, input.runID, input.tool, input.effectClass.rawValue,
                            input.idempotencyKey, input.approval.rawValue, state.rawValue, now, now])
            return OpOutcome(records: [record])

        case .completion(let input):
            let call = try existingCall(db, input.intentSeq)
            guard [.pending, .approved, .interrupted].contains(call.state) else {
                throw transitionError(call, expected: "pending, approved or interrupted")
            }
            var record = followUp(call, kind: .completion, now: now)
            record.status = input.status
            record.response = input.response
            record.responseDigest = input.responseDigest
            record.resourceVersion = input.resourceVersion
            record.irreversible = input.irreversible
            record.happened = input.happened
            record.durationMs = input.durationMs
            record.actor = "broker"
            try append(&record, db, &tail)
            try move(db, call, to: input.status == "ok" ? .sealed : .failed, completionSeq: record.seq, now: now)
            return OpOutcome(records: [record])

        case .approve(let seq, let actor):
            let call = try existingCall(db, seq)
            guard call.state == .awaitingApproval else { throw transitionError(call, expected: "awaiting approval") }
            var record = followUp(call, kind: .approval, now: now)
            record.status = "approved"
            record.actor = actor
            try append(&record, db, &tail)
            try move(db, call, to: .approved, completionSeq: nil, now: now)
            return OpOutcome(records: [record])

        case .deny(let seq, let actor, let note):
            let call = try existingCall(db, seq)
            guard call.state == .awaitingApproval else { throw transitionError(call, expected: "awaiting approval") }
            var record = followUp(call, kind: .approval, now: now)
            record.status = "denied"
            record.actor = actor
            record.note = note
            try append(&record, db, &tail)
            try move(db, call, to: .denied, completionSeq: nil, now: now)
            return OpOutcome(records: [record])

        case .resolve(let seq, let happened, let actor, let note):
            let call = try existingCall(db, seq)
            guard call.state == .inDoubt else { throw transitionError(call, expected: "in doubt") }
            var record = followUp(call, kind: .resolution, now: now)
            record.status = happened ? "happened" : "did_not_happen"
            record.happened = happened
            record.actor = actor
            record.note = note
            try append(&record, db, &tail)
            try move(db, call, to: happened ? .resolvedHappened : .resolvedNotHappened, completionSeq: nil, now: now)
            return OpOutcome(records: [record])

        case .markInterrupted(let actor):
            let pending = try fetchCalls(db, sql: "SELECT * FROM calls WHERE state = ? ORDER BY intent_seq",
                                         arguments: [CallState.pending.rawValue])
            var outcome = OpOutcome()
            for call in pending {
                try interrupt(db, call, actor: actor, note: nil, tail: &tail, now: now, into: &outcome)
            }
            return outcome

        case .revocation(let tokenID, let runID, let reason):
            var record = EffectRecord(
                seq: 0, kind: RecordKind.revocation.rawValue, createdAtMs: now, prevHash: "",
                runID: runID, tokenID: tokenID, actor: "broker", note: reason)
            try append(&record, db, &tail)
            try db.execute(
                sql: "INSERT INTO revocations (token_id, run_id, reason, created_at_ms, record_seq) VALUES (?, ?, ?, ?, ?)",
                arguments: [tokenID, runID, reason, now, record.seq])
            return OpOutcome(records: [record])

        case .session(let sessionID, let root):
            return OpOutcome(familyRoot: try LedgerApplyFamily.record(db, sessionID: sessionID, claimedRoot: root, now: now))

        case .grant(let input):
            return try LedgerApplyGrants.grant(db, input, tail: &tail, now: now)

        case .revokeLiveGrants(let reason, let brokerID):
            return try LedgerApplyGrants.revokeLive(db, reason: reason, brokerID: brokerID, tail: &tail, now: now)

        case .recover(let actor, let probe):
            return try LedgerApplyRecovery.recover(db, actor: actor, probe: probe, tail: &tail, now: now)
        }
    }

    /// A pending call whose broker stopped: irreversible -> in doubt, anything else -> interrupted.
    static func interrupt(_ db: Database, _ call: CallSummary, actor: String, note: String?,
                          tail: inout ChainTail, now: Int64, into outcome: inout OpOutcome) throws {
        let next: CallState = call.effectClass == .irreversible ? .inDoubt : .interrupted
        var record = followUp(call, kind: .interruption, now: now)
        record.status = next.rawValue
        record.actor = actor
        record.note = note
        try append(&record, db, &tail)
        try move(db, call, to: next, completionSeq: nil, now: now)
        var moved = call
        moved.state = next
        moved.updatedAtMs = now
        outcome.records.append(record)
        outcome.calls.append(moved)
    }

    // MARK: - Chain

    /// Gives `record` the next seq, chains it to `tail`, hashes it, inserts it, advances `tail`.
    static func append(_ record: inout EffectRecord, _ db: Database, _ tail: inout ChainTail) throws {
        record.seq = tail.seq + 1
        record.prevHash = tail.hash
        record.hash = EffectHash.compute(record)
        var values = databaseValues(of: record)
        // A large response is stored once, as a blob; the row refers to it by digest.
        let blob = try ResponseBlobs.store(record.response, db)
        if let blob, let index = EffectHash.columns.firstIndex(of: "response") {
            values[index] = .null
            values.append(blob.databaseValue)
        }
        let statement = try db.cachedStatement(sql: blob == nil ? insertSQL : insertWithBlobSQL)
        try statement.execute(arguments: StatementArguments(values))
        tail = ChainTail(seq: record.seq, hash: record.hash)
    }

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

    // MARK: - Calls

    static func existingCall(_ db: Database, _ seq: Int64) throws -> CallSummary {
        if let call = try fetchCalls(db, sql: "SELECT * FROM calls WHERE intent_seq = ?", arguments: [seq]).first {
            return call
        }
        if let kind = try String.fetchOne(db, sql: "SELECT kind FROM effects WHERE seq = ?", arguments: [seq]) {
            throw LedgerError(.notFound, "seq \(seq) is a \(kind) record, not an intent")
        }
        throw LedgerError(.notFound, "no record with seq \(seq)")
    }

    static func transitionError(_ call: CallSummary, expected: String) -> LedgerError {
        LedgerError(.invalidTransition, "seq \(call.intentSeq) is \(call.state.phrase), not \(expected)")
    }

    /// A record about an existing call: it carries the call's identity so the log reads on its own.
    static func followUp(_ call: CallSummary, kind: RecordKind, now: Int64) -> EffectRecord {
        EffectRecord(
            seq: 0, kind: kind.rawValue, createdAtMs: now, prevHash: "", intentSeq: call.intentSeq,
            runID: call.runID, sessionID: call.sessionID, tool: call.tool)
    }

    static func move(_ db: Database, _ call: CallSummary, to state: CallState, completionSeq: Int64?, now: Int64) throws {
        try db.execute(
            sql: "UPDATE calls SET state = ?, completion_seq = COALESCE(?, completion_seq), updated_at_ms = ? WHERE intent_seq = ?",
            arguments: [state.rawValue, completionSeq, now, call.intentSeq])
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
