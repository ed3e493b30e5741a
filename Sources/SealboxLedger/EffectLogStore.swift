/// Where the effect log is kept (docs/storage.md, "The protocols"): one write transaction that
/// holds the chain-tail lock, and the reads. `Ledger` (validation, group commit, the state
/// machine in `LedgerApply`, `verify`) runs over it; a backend implements this and
/// `EffectLogTransaction`'s primitives, never the semantics.
///
/// `SQLiteEffectLogStore` (SealboxSQLite) is the one-machine store.
public protocol EffectLogStore: Sendable {
    /// Where the store lives, for messages (`effect log /state/effects.db`).
    var location: String { get }

    /// The leases of the brokers writing this log (`BrokerLeases`): where the log is kept
    /// decides how a gone broker is told from a live one.
    var leases: any BrokerLeases { get }

    /// Runs `body` in ONE write transaction that holds the chain-tail lock from the first read
    /// to the commit, so no other writer (thread, process or node) appends in between, and
    /// returns only once the commit is durable. Blocking: `Ledger` calls it from its writer's
    /// own thread. A `LedgerError` thrown by `body` aborts the transaction and is rethrown as it
    /// is; any storage failure becomes a `LedgerError` (`.storageFull` when out of space).
    func write<T>(_ body: (any EffectLogTransaction) throws -> T) throws(LedgerError) -> T

    // MARK: Reads (each in one consistent snapshot; never waits for the writer)

    /// Every token id and run id named by a revocation.
    func revocations() throws(LedgerError) -> (tokenIDs: Set<String>, runIDs: Set<String>)
    /// The newest intent under (session, tool, idempotency key).
    func latestCall(sessionID: String, tool: String, idempotencyKey: String) throws(LedgerError) -> CallSummary?
    func call(intentSeq: Int64) throws(LedgerError) -> CallSummary?
    func record(seq: Int64) throws(LedgerError) -> EffectRecord?
    /// The intent and every record referring to it, in seq order.
    func records(forIntent intentSeq: Int64) throws(LedgerError) -> [EffectRecord]
    /// Records with seq > `afterSeq`, in seq order, at most `limit` (already clamped).
    func records(afterSeq: Int64, limit: Int) throws(LedgerError) -> [EffectRecord]
    /// Calls matching every non-nil field of `filter`, in intent-seq order (limit already clamped).
    func list(_ filter: ListFilter) throws(LedgerError) -> [CallSummary]
    /// Every record in seq order, in one snapshot, until `visit` returns false (`Ledger.verify`).
    func walkChain(_ visit: (ChainRow) -> Bool) throws(LedgerError)
    /// The newest record a run wrote (its calls' completions and intents), or nil.
    func lastSeq(runID: String) throws(LedgerError) -> Int64?
    /// Calls by effect class and state.
    func callCounts() throws(LedgerError) -> [CallCount]
    /// The recorded root of `sessionID`'s family, nil when never recorded.
    func familyRoot(of sessionID: String) throws(LedgerError) -> String?
    /// The sessions recorded under `root`, in the order they were recorded.
    func familyMembers(root: String) throws(LedgerError) -> [String]
    /// Calls under (tool, key) in the sessions of family `root` other than `excluding`, newest
    /// first, at most `limit`.
    func calls(familyRoot root: String, excluding sessionID: String, tool: String, idempotencyKey: String, limit: Int) throws(LedgerError) -> [CallSummary]
    /// Calls of these sessions after `afterSeq`, in intent-seq order, at most `limit`.
    func calls(sessionIDs: [String], afterSeq: Int64, limit: Int) throws(LedgerError) -> [CallSummary]
    /// Grants of these sessions live at `nowMs`, in grant order.
    func liveGrants(sessionIDs: [String], nowMs: Int64) throws(LedgerError) -> [GrantSummary]
    /// The secret that keys world idempotency keys (`WorldKey`), made once when the log was created.
    func worldKeySecret() throws(LedgerError) -> [UInt8]
    /// Calls of `runID` waiting for an operator's decision.
    func awaitingApprovals(runID: String) throws(LedgerError) -> Int
    /// Calls of every run granted to `tenant` waiting for an operator's decision.
    func awaitingApprovals(tenant: String) throws(LedgerError) -> Int
}

/// One row of the chain as `walkChain` reads it; `Ledger.verify` judges it.
public enum ChainRow: Sendable {
    /// A row whose seq cannot be read at all.
    case unreadableSeq
    /// A row with its seq, and the record or why it cannot be read.
    case row(seq: Int64, Result<EffectRecord, LedgerError>)
}
