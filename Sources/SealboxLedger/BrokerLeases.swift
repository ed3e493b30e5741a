/// How brokers sharing one effect log tell each other apart, and tell a gone broker from a live
/// one (DESIGN.md, "Effect log"; docs/storage.md, "The protocols").
///
/// Several brokers may write one effect log at once (`sealbox run --tools CONFIG` starts a broker
/// per run, and the runs share the config's `ledger:`). What a broker leaves half-done — an intent
/// without completion, a grant never ended — may only be recovered once that broker is really
/// gone, not merely because another broker started. Each broker therefore holds a lease for its
/// whole life. The broker id is recorded in every grant it writes (the grant note's
/// `broker_id`), and its calls are found through their run's grant, so the effect log says whose
/// work each open call and each live token is.
///
/// The leases of an effect log belong to its store (`EffectLogStore.leases`): where the log is
/// kept decides how liveness is known. On one machine, `FileBrokerLeases` (SealboxSQLite): a
/// lock file per broker that the kernel unlocks when the process dies.
public protocol BrokerLeases: Sendable {
    /// Takes a new lease under a fresh broker id. Before a broker writes anything under its id.
    func acquire() throws(LedgerError) -> any BrokerLease

    /// A probe for ONE recovery transaction, opened by the broker `own` (always live to its own
    /// probe). It must hold what it learned until `finish`: a broker judged gone stays judged
    /// gone, and no other starting broker may recover the same one meanwhile.
    func probe(own: String?) -> any BrokerLeaseProbe

    /// Whether `brokerID` still holds its lease: true, false, or nil when it cannot be told.
    /// Read-only: it never takes over a gone broker's work.
    func isRunning(_ brokerID: String) -> Bool?
}

/// One broker's lease, held until `release` or the broker's death.
public protocol BrokerLease: AnyObject, Sendable {
    /// The id recorded in this broker's grants.
    var brokerID: String { get }
    /// Whether this lease is still held (not released).
    var isHeld: Bool { get }
    /// Ends the lease. Only for a broker that has nothing open any more (no call in flight):
    /// from this instant another broker may recover whatever the log still shows open under
    /// this broker's id. Idempotent.
    func release()
}

/// What a probe found of one broker.
public enum BrokerLeaseVerdict: Sendable, Equatable {
    case gone
    case live
    /// The lease cannot be probed for another reason: treated as live (its work is left
    /// alone), and reported.
    case unknown(String)
}

/// Which brokers named in the log are gone, decided inside the recovery's write transaction (so
/// no record of a broker can appear that the answer does not cover).
public protocol BrokerLeaseProbe: Sendable {
    /// The verdict on `brokerID`, asked once and then remembered (and, for a gone broker, its
    /// lease held) until `finish`.
    func verdict(_ brokerID: String) -> BrokerLeaseVerdict
    /// Probes every lease the store knows of, so brokers that crashed leaving nothing open in
    /// the log are cleaned up too.
    func probeAll()
    /// Every verdict given so far, by broker id.
    var verdicts: [String: BrokerLeaseVerdict] { get }
    /// After the transaction: when it committed, the gone brokers' leases are removed (their
    /// work is recovered); either way what the probe held is let go.
    func finish(committed: Bool)
}

extension BrokerLeaseProbe {
    func isGone(_ brokerID: String) -> Bool { verdict(brokerID) == .gone }
}
