import SealboxLedger

/// Forked sessions (DESIGN.md, "Resumability"): a fork's history is its parent's prefix, but the
/// world does not fork. An irreversible effect sealed in ANY session of the family is a fact
/// for every branch and is never executed again by a sibling; one that may be happening, or may
/// have happened, in a sibling blocks the others until it is settled. Other effect classes keep
/// their per-session rules: a fork re-reads, and re-runs idempotent calls under their key.
extension EffectEngine {
    /// The root of `sessionID`'s family (the session itself when it has none, or when the log
    /// cannot say: then `decide` reports the log as unavailable anyway).
    func familyRoot(of sessionID: String) -> String {
        (try? ledger.root(of: sessionID)) ?? sessionID
    }

    /// What the other sessions of the family say about `call`, which this session is about to
    /// execute; nil: nothing there stops it. Only irreversible tools are affected.
    ///
    /// - sealed / resolved happened in a sibling: that answer, replayed, with `from_session`;
    /// - pending / in doubt / awaiting approval / approved-not-yet-run in a sibling: refused,
    ///   naming the sibling, as the session's own call would be;
    /// - failed in a sibling in a way that may have reached the world: that failure, replayed
    ///   (the rule a session applies to its own failed irreversible calls);
    /// - denied, failed before reaching the world, resolved not happened, nothing: execute here.
    func familyVerdict(_ call: PreparedCall) -> CallResponse? {
        guard call.tool.effect == .irreversible else { return nil }
        let others: [CallSummary]
        do {
            others = try ledger.callsInFamily(sessionID: call.claims.sessionID, tool: call.tool.name, idempotencyKey: call.key)
        } catch {
            return .failure(BrokerError(.toolFailed, "effect log unavailable: \(error.message)"))
        }
        // A sibling's call under this key with other arguments is another call.
        for other in others {
            if let conflict = keyConflict(call, other) { return conflict }
        }
        // Newest first: the most recent settled fact wins.
        if let fact = others.first(where: { $0.state == .sealed || $0.state == .resolvedHappened }) {
            return replay(fact, fromSession: fact.sessionID)
        }
        if let open = others.first(where: { [.pending, .inDoubt, .awaitingApproval, .approved].contains($0.state) }) {
            return refusal(open, tool: call.tool.name)
        }
        if let failed = others.first(where: { $0.state == .failed && !certainlyNotHappened($0) }) {
            return replay(failed, fromSession: failed.sessionID)
        }
        return nil
    }

    private func refusal(_ sibling: CallSummary, tool: String) -> CallResponse {
        let seq = sibling.intentSeq
        let effect = EffectInfo(seq: seq, replayed: true, fromSession: sibling.sessionID)
        let place = "in session \(sibling.sessionID) of this session's family (forks share the world)"
        switch sibling.state {
        case .inDoubt:
            return .failure(BrokerError(.inDoubt, "\(tool) (seq \(seq)) \(place) is irreversible and may or may not have happened: the broker stopped between intent and completion. An operator must run `sealbox log resolve \(seq) --happened` or `--did-not-happen`."), effect: effect)
        case .awaitingApproval:
            return .failure(BrokerError(.awaitingApproval, "\(tool) (seq \(seq)) \(place) waits for an operator: `sealbox log approve \(seq)` or `sealbox log deny \(seq)`"), effect: effect)
        case .approved:
            return .failure(BrokerError(.awaitingApproval, "\(tool) (seq \(seq)) \(place) was approved and has not run yet: it runs when session \(sibling.sessionID) calls it again"), effect: effect)
        default:
            return .failure(BrokerError(.inDoubt, "\(tool) (seq \(seq)) is being executed \(place)"), effect: effect)
        }
    }
}
