import Foundation

/// The effect-class state machine: what happens inside the write transaction for each op. It
/// reads the call's current state, checks the transition, appends the record(s) to the chain
/// and updates the call, all through `EffectLogTransaction`'s primitives (so a second backend
/// implements those, not these rules) and in the caller's savepoint, so an invalid transition
/// leaves no trace.
enum LedgerApply {
    static func apply(_ tx: any EffectLogTransaction, _ op: LedgerOp, tail: inout ChainTail, now: Int64) throws -> OpOutcome {
        switch op {
        case .intent(let input, let state):
            var record = EffectRecord(
                seq: 0, kind: RecordKind.intent.rawValue, createdAtMs: now, prevHash: "",
                runID: input.runID, sessionID: input.sessionID, tool: input.tool,
                effectClass: input.effectClass.rawValue, idempotencyKey: input.idempotencyKey, target: input.target,
                argsDigest: input.argsDigest, approval: input.approval.rawValue, tokenID: input.tokenID,
                fresh: input.fresh, status: state.rawValue)
            try append(&record, tx, &tail)
            try tx.insertCall(CallSummary(
                intentSeq: record.seq, completionSeq: nil, state: state, sessionID: input.sessionID, runID: input.runID,
                tool: input.tool, effectClass: input.effectClass, idempotencyKey: input.idempotencyKey, approval: input.approval,
                createdAtMs: now, updatedAtMs: now))
            return OpOutcome(records: [record])

        case .completion(let input):
            let call = try existingCall(tx, input.intentSeq)
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
            try append(&record, tx, &tail)
            try move(tx, call, to: input.status == "ok" ? .sealed : .failed, completionSeq: record.seq, now: now)
            return OpOutcome(records: [record])

        case .approve(let seq, let actor):
            let call = try existingCall(tx, seq)
            guard call.state == .awaitingApproval else { throw transitionError(call, expected: "awaiting approval") }
            var record = followUp(call, kind: .approval, now: now)
            record.status = "approved"
            record.actor = actor
            try append(&record, tx, &tail)
            try move(tx, call, to: .approved, completionSeq: nil, now: now)
            return OpOutcome(records: [record])

        case .deny(let seq, let actor, let note):
            let call = try existingCall(tx, seq)
            guard call.state == .awaitingApproval else { throw transitionError(call, expected: "awaiting approval") }
            var record = followUp(call, kind: .approval, now: now)
            record.status = "denied"
            record.actor = actor
            record.note = note
            try append(&record, tx, &tail)
            try move(tx, call, to: .denied, completionSeq: nil, now: now)
            return OpOutcome(records: [record])

        case .resolve(let seq, let happened, let actor, let note):
            let call = try existingCall(tx, seq)
            guard call.state == .inDoubt else { throw transitionError(call, expected: "in doubt") }
            var record = followUp(call, kind: .resolution, now: now)
            record.status = happened ? "happened" : "did_not_happen"
            record.happened = happened
            record.actor = actor
            record.note = note
            try append(&record, tx, &tail)
            try move(tx, call, to: happened ? .resolvedHappened : .resolvedNotHappened, completionSeq: nil, now: now)
            return OpOutcome(records: [record])

        case .markInterrupted(let actor):
            let pending = try tx.calls(in: .pending)
            var outcome = OpOutcome()
            for call in pending {
                try interrupt(tx, call, actor: actor, note: nil, tail: &tail, now: now, into: &outcome)
            }
            return outcome

        case .revocation(let tokenID, let runID, let reason):
            var record = EffectRecord(
                seq: 0, kind: RecordKind.revocation.rawValue, createdAtMs: now, prevHash: "",
                runID: runID, tokenID: tokenID, actor: "broker", note: reason)
            try append(&record, tx, &tail)
            try tx.insertRevocation(tokenID: tokenID, runID: runID, reason: reason, now: now, recordSeq: record.seq)
            return OpOutcome(records: [record])

        case .session(let sessionID, let root):
            return OpOutcome(familyRoot: try LedgerApplyFamily.record(tx, sessionID: sessionID, claimedRoot: root, now: now))

        case .grant(let input):
            return try LedgerApplyGrants.grant(tx, input, tail: &tail, now: now)

        case .revokeLiveGrants(let reason, let brokerID):
            return try LedgerApplyGrants.revokeLive(tx, reason: reason, brokerID: brokerID, tail: &tail, now: now)

        case .recover(let actor, let probe):
            return try LedgerApplyRecovery.recover(tx, actor: actor, probe: probe, tail: &tail, now: now)
        }
    }

    /// A pending call whose broker stopped: irreversible -> in doubt, anything else -> interrupted.
    static func interrupt(_ tx: any EffectLogTransaction, _ call: CallSummary, actor: String, note: String?,
                          tail: inout ChainTail, now: Int64, into outcome: inout OpOutcome) throws {
        let next: CallState = call.effectClass == .irreversible ? .inDoubt : .interrupted
        var record = followUp(call, kind: .interruption, now: now)
        record.status = next.rawValue
        record.actor = actor
        record.note = note
        try append(&record, tx, &tail)
        try move(tx, call, to: next, completionSeq: nil, now: now)
        var moved = call
        moved.state = next
        moved.updatedAtMs = now
        outcome.records.append(record)
        outcome.calls.append(moved)
    }

    // MARK: - Chain

    /// Gives `record` the next seq, chains it to `tail`, hashes it, inserts it, advances `tail`.
    static func append(_ record: inout EffectRecord, _ tx: any EffectLogTransaction, _ tail: inout ChainTail) throws {
        record.seq = tail.seq + 1
        record.prevHash = tail.hash
        record.hash = EffectHash.compute(record)
        try tx.insert(record)
        tail = ChainTail(seq: record.seq, hash: record.hash)
    }

    // MARK: - Calls

    static func existingCall(_ tx: any EffectLogTransaction, _ seq: Int64) throws -> CallSummary {
        if let call = try tx.call(intentSeq: seq) {
            return call
        }
        if let kind = try tx.recordKind(seq: seq) {
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

    static func move(_ tx: any EffectLogTransaction, _ call: CallSummary, to state: CallState, completionSeq: Int64?, now: Int64) throws {
        try tx.moveCall(intentSeq: call.intentSeq, to: state, completionSeq: completionSeq, now: now)
    }
}
