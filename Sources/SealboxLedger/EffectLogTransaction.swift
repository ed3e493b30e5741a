/// The primitives the effect-class state machine (`LedgerApply` and its family, grant and
/// recovery parts) writes through, inside one write transaction whose chain-tail lock the store
/// holds (docs/storage.md: one chain, a tail lock, batched writers).
///
/// The semantics (which transition is allowed, what record it appends, how a family is joined,
/// which grants a dead broker leaves) live above this protocol as functions of it; a backend
/// implements these primitives and nothing else: `SQLiteEffectLogTransaction` (GRDB) for the
/// one-machine store, `InMemoryEffectLogTransaction` for fast tests of the state machine.
public protocol EffectLogTransaction {
    /// The last record of the chain, read under the tail lock the transaction holds.
    func chainTail() throws -> ChainTail
    /// Runs `body` so that, when it throws, nothing it wrote stays (a savepoint): one refused op
    /// of a batch leaves no trace while the others commit.
    func savepoint(_ body: () throws -> Void) throws
    /// The call an intent opened, by the intent's seq.
    func call(intentSeq: Int64) throws -> CallSummary?
    /// The kind of the record at `seq` (for "seq N is a completion record, not an intent").
    func recordKind(seq: Int64) throws -> String?
    /// Calls in `state`, in intent order.
    func calls(in state: CallState) throws -> [CallSummary]
    /// Appends a record already numbered, chained and hashed (`LedgerApply.append`).
    func insert(_ record: EffectRecord) throws
    func insertCall(_ call: CallSummary) throws
    func moveCall(intentSeq: Int64, to state: CallState, completionSeq: Int64?, now: Int64) throws
    func insertRevocation(tokenID: String?, runID: String?, reason: String, now: Int64, recordSeq: Int64) throws
    /// The root of `sessionID`'s family, nil when it was never recorded.
    func familyRoot(of sessionID: String) throws -> String?
    func insertFamilyMember(sessionID: String, root: String, now: Int64) throws
    func grantExists(tokenID: String) throws -> Bool
    func insertGrant(_ input: GrantInput, tools: String, now: Int64, recordSeq: Int64) throws
    /// Grants not expired at `now` and revoked neither by token nor by run, in record order.
    func liveGrants(now: Int64) throws -> [GrantSummary]
    /// intent seq -> the broker ids of the grant(s) behind each pending call: the grant of the
    /// token the intent names, else the grants of the intent's run.
    func ownersOfPendingCalls() throws -> [Int64: [String]]
}

/// The last record of the chain, as seen inside the write transaction.
public struct ChainTail: Sendable, Equatable {
    public var seq: Int64
    public var hash: String

    public init(seq: Int64, hash: String) {
        self.seq = seq
        self.hash = hash
    }

    /// The tail of an empty chain: seq 0, and the prev_hash seq 1 carries.
    public static let empty = ChainTail(seq: 0, hash: EffectHash.genesisPrevHash)
}
