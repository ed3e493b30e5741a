/// What a starting broker found and did on a shared effect log (`Ledger.recoverAbandonedWork`).
public struct BrokerRecovery: Sendable, Equatable {
    /// Calls left without completion by brokers that are gone, now in doubt (irreversible) or
    /// interrupted (anything else), in seq order.
    public var calls: [CallSummary]
    /// Grants of brokers that are gone, now ended (a revocation record each), in grant order.
    public var grants: [GrantSummary]
    /// Brokers found gone (lock free or lock file missing), whose work was recovered.
    public var goneBrokers: [String]
    /// Other brokers found live: their executing calls and their tokens were left alone.
    public var liveBrokers: [String]
    /// Brokers whose lease could not be probed, with the reason: treated as live.
    public var unprobedBrokers: [String: String]
    /// Executing (pending) calls and live grants left alone because their broker is live.
    public var callsLeftAlone: Int
    public var grantsLeftAlone: Int

    public init(calls: [CallSummary] = [], grants: [GrantSummary] = [], goneBrokers: [String] = [], liveBrokers: [String] = [],
                unprobedBrokers: [String: String] = [:], callsLeftAlone: Int = 0, grantsLeftAlone: Int = 0) {
        self.calls = calls
        self.grants = grants
        self.goneBrokers = goneBrokers
        self.liveBrokers = liveBrokers
        self.unprobedBrokers = unprobedBrokers
        self.callsLeftAlone = callsLeftAlone
        self.grantsLeftAlone = grantsLeftAlone
    }
}

extension Ledger {
    /// At broker start, with `lease` held (see `BrokerLeases`): recovers what brokers that are
    /// GONE left open, and nothing of brokers that are live. In one transaction:
    ///
    /// - every `pending` call (intent without completion) whose broker is gone becomes `in_doubt`
    ///   when irreversible, else `interrupted` (as `markInterrupted` does for all);
    /// - every live grant whose broker is gone is revoked.
    ///
    /// A call's broker is the one that recorded the grant of the token the intent names (else,
    /// of the intent's run). Whether a broker is gone is the leases' answer (`leases.probe`),
    /// asked inside the transaction and held until it ended. Calls and grants without a broker id (recorded before brokers held leases, or
    /// without a grant) are recovered as before: their broker cannot be asked.
    ///
    /// Leases of gone brokers are removed once the transaction committed. Call again later
    /// (e.g. when a call finds another broker's intent still pending) to pick up brokers that
    /// died since.
    public func recoverAbandonedWork(lease: any BrokerLease, actor: String = "broker") async throws(LedgerError) -> BrokerRecovery {
        try Self.checkActor(actor)
        let probe = leases.probe(own: lease.brokerID)
        let outcome: OpOutcome
        do {
            outcome = try await submit(.recover(actor: actor, probe: probe))
        } catch {
            probe.finish(committed: false)
            throw error
        }
        probe.finish(committed: true)
        var gone: [String] = [], live: [String] = [], unprobed: [String: String] = [:]
        for (broker, verdict) in probe.verdicts where broker != lease.brokerID {
            switch verdict {
            case .gone: gone.append(broker)
            case .live: live.append(broker)
            case .unknown(let why): unprobed[broker] = why
            }
        }
        return BrokerRecovery(
            calls: outcome.calls, grants: outcome.grants, goneBrokers: gone.sorted(), liveBrokers: live.sorted(),
            unprobedBrokers: unprobed, callsLeftAlone: outcome.callsLeftAlone, grantsLeftAlone: outcome.grantsLeftAlone)
    }

    /// The grants `brokerID` recorded that are still live get a revocation record each (`reason`).
    /// A broker calls it as it stops, so the log does not show its tokens as live authority.
    @discardableResult
    public func revokeLiveGrants(ofBroker brokerID: String, reason: String) async throws(LedgerError) -> [GrantSummary] {
        guard !brokerID.isEmpty else { throw LedgerError(.invalidInput, "a broker id is empty") }
        try Self.checkText([("reason", reason), ("broker_id", brokerID)])
        return try await submit(.revokeLiveGrants(reason: reason, brokerID: brokerID)).grants
    }
}

/// `Ledger.recoverAbandonedWork` inside the write transaction.
enum LedgerApplyRecovery {
    static func recover(_ tx: any EffectLogTransaction, actor: String, probe: any BrokerLeaseProbe, tail: inout ChainTail, now: Int64) throws -> OpOutcome {
        // Every lease, not just those the log names: crashed brokers that left nothing open are
        // cleaned up too.
        probe.probeAll()
        var outcome = OpOutcome()

        let pending = try tx.calls(in: .pending)
        let owners = pending.isEmpty ? [:] : try tx.ownersOfPendingCalls()
        for call in pending {
            let brokers = owners[call.intentSeq] ?? []
            if brokers.contains(where: { !probe.isGone($0) }) {
                outcome.callsLeftAlone += 1
                continue
            }
            let note = brokers.isEmpty
                ? nil
                : "broker \(brokers.sorted().joined(separator: ", ")) stopped between intent and completion"
            try LedgerApply.interrupt(tx, call, actor: actor, note: note, tail: &tail, now: now, into: &outcome)
        }

        for grant in try tx.liveGrants(now: now) {
            let reason: String
            if let broker = grant.brokerID {
                guard probe.isGone(broker) else {
                    outcome.grantsLeftAlone += 1
                    continue
                }
                reason = "broker \(broker) is gone: its tokens no longer verify"
            } else {
                reason = "broker restarted: tokens of the previous broker no longer verify"
            }
            try LedgerApplyGrants.end(tx, grant, reason: reason, tail: &tail, now: now, into: &outcome)
            outcome.grants.append(grant)
        }
        return outcome
    }
}
