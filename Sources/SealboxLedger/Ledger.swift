import Foundation
import SealboxBase

/// The durable, hash-chained effect log (DESIGN.md, "Effect log"): its rules over a store.
///
/// `Ledger` holds what is the same on every backend: the checks of every input, the group
/// commit (`GroupCommitWriter`: an async append returns only after the transaction holding its
/// record committed durably), the effect-class state machine (`LedgerApply`, run inside the
/// store's write transaction) and the chain walk of `verify`. Where records are kept is an
/// `EffectLogStore`; on one machine `SQLiteEffectLogStore` in SealboxSQLite (WAL, synchronous=FULL, reads that
/// never wait for the writer).
///
/// Several processes may share one store (the broker, and `sealbox log approve|deny|resolve`):
/// every write transaction holds the store's chain-tail lock and reads the tail inside it, so
/// the chain stays one chain (docs/storage.md).
public final class Ledger: Sendable {
    public struct Configuration: Sendable {
        /// Most ops written in one transaction.
        public var maxBatch: Int = 256
        /// Most ops waiting for the writer; further callers suspend until there is room.
        public var queueLimit: Int = 4096
        /// How long a write waits for another connection's (or process's) transaction, in seconds.
        public var busyTimeout: TimeInterval = 5

        public init(maxBatch: Int = 256, queueLimit: Int = 4096, busyTimeout: TimeInterval = 5) {
            self.maxBatch = maxBatch
            self.queueLimit = queueLimit
            self.busyTimeout = busyTimeout
        }
    }

    /// Where the records are kept.
    public let store: any EffectLogStore
    private let writer: GroupCommitWriter

    /// Where the store lives (for a SQLite store, the absolute path of its file).
    public var path: String { store.location }

    /// The leases of the brokers writing this log (`BrokerLeases`).
    public var leases: any BrokerLeases { store.leases }

    public init(store: any EffectLogStore, configuration: Configuration = Configuration()) {
        self.store = store
        self.writer = GroupCommitWriter(
            store: store, maxBatch: max(1, configuration.maxBatch), queueLimit: max(1, configuration.queueLimit))
    }

    deinit {
        writer.close()
    }

    // MARK: - Writes (group-committed)

    public func appendIntent(_ input: IntentInput, state: CallState) async throws(LedgerError) -> EffectRecord {
        guard state == .pending || state == .awaitingApproval else {
            throw LedgerError(.invalidInput, "an intent starts pending or awaiting_approval, not \(state.rawValue)")
        }
        guard !input.tool.isEmpty else { throw LedgerError(.invalidInput, "an intent needs a tool name") }
        try Self.checkText([
            ("run_id", input.runID), ("session_id", input.sessionID), ("tool", input.tool),
            ("idempotency_key", input.idempotencyKey), ("target", input.target), ("args_digest", input.argsDigest),
            ("token_id", input.tokenID),
        ])
        return try await submit(.intent(input, state)).records[0]
    }

    public func appendCompletion(_ input: CompletionInput) async throws(LedgerError) -> EffectRecord {
        var input = input
        guard input.status == "ok" || input.status == "tool_failed" else {
            throw LedgerError(.invalidInput, "completion status must be \"ok\" or \"tool_failed\", not \"\(input.status)\"")
        }
        guard input.durationMs.isFinite, input.durationMs >= 0 else {
            throw LedgerError(.invalidInput, "duration_ms must be a finite number >= 0, not \(input.durationMs)")
        }
        // -0.0 and 0.0 hash differently but SQLite may hand back either: store one.
        if input.durationMs == 0 { input.durationMs = 0 }
        try Self.checkText([
            ("status", input.status), ("response", input.response), ("response_digest", input.responseDigest),
            ("resource_version", input.resourceVersion),
        ])
        if let response = input.response {
            guard (try? JSONReader.parse(Array(response.utf8))) != nil else {
                throw LedgerError(.invalidInput, "completion response of seq \(input.intentSeq) is not JSON text")
            }
        }
        return try await submit(.completion(input)).records[0]
    }

    public func approve(intentSeq: Int64, actor: String) async throws(LedgerError) -> EffectRecord {
        try Self.checkActor(actor)
        return try await submit(.approve(intentSeq: intentSeq, actor: actor)).records[0]
    }

    public func deny(intentSeq: Int64, actor: String, note: String?) async throws(LedgerError) -> EffectRecord {
        try Self.checkActor(actor)
        try Self.checkText([("note", note)])
        return try await submit(.deny(intentSeq: intentSeq, actor: actor, note: note)).records[0]
    }

    public func resolve(intentSeq: Int64, happened: Bool, actor: String, note: String?) async throws(LedgerError) -> EffectRecord {
        try Self.checkActor(actor)
        try Self.checkText([("note", note)])
        return try await submit(.resolve(intentSeq: intentSeq, happened: happened, actor: actor, note: note)).records[0]
    }

    /// Every `pending` intent (no completion: its broker stopped while executing it) becomes
    /// `in_doubt` when its effect class is irreversible, else `interrupted`, whichever broker
    /// wrote it. Only right when no broker is live on this log: a starting broker uses
    /// `recoverAbandonedWork`, which moves only the calls of brokers that are gone.
    /// One transaction; returns the calls it moved, in seq order.
    public func markInterrupted(actor: String) async throws(LedgerError) -> [CallSummary] {
        try Self.checkActor(actor)
        return try await submit(.markInterrupted(actor: actor)).calls
    }

    public func recordRevocation(tokenID: String?, runID: String?, reason: String) async throws(LedgerError) -> EffectRecord {
        guard (tokenID.map { !$0.isEmpty } ?? false) || (runID.map { !$0.isEmpty } ?? false) else {
            throw LedgerError(.invalidInput, "a revocation names a token id or a run id")
        }
        try Self.checkText([("token_id", tokenID), ("run_id", runID), ("reason", reason)])
        return try await submit(.revocation(tokenID: tokenID, runID: runID, reason: reason)).records[0]
    }

    func submit(_ op: LedgerOp) async throws(LedgerError) -> OpOutcome {
        try await writer.submit(op).get()
    }

    // MARK: - Reads (the store's snapshots: never wait for the writer)

    public func revocations() throws(LedgerError) -> (tokenIDs: Set<String>, runIDs: Set<String>) {
        try store.revocations()
    }

    /// The newest intent under (session, tool, idempotency key).
    public func latestCall(sessionID: String, tool: String, idempotencyKey: String) throws(LedgerError) -> CallSummary? {
        try store.latestCall(sessionID: sessionID, tool: tool, idempotencyKey: idempotencyKey)
    }

    public func call(intentSeq: Int64) throws(LedgerError) -> CallSummary? {
        try store.call(intentSeq: intentSeq)
    }

    public func record(seq: Int64) throws(LedgerError) -> EffectRecord? {
        try store.record(seq: seq)
    }

    /// The intent and every record referring to it, in seq order.
    public func records(forIntent intentSeq: Int64) throws(LedgerError) -> [EffectRecord] {
        try store.records(forIntent: intentSeq)
    }

    /// Records with seq > `afterSeq`, in seq order, at most `limit` (clamped to 1...10000).
    public func records(afterSeq: Int64 = 0, limit: Int = 100) throws(LedgerError) -> [EffectRecord] {
        try store.records(afterSeq: afterSeq, limit: min(max(limit, 1), ListFilter.maximumLimit))
    }

    /// Calls matching every non-nil field of `filter`, in intent-seq order.
    public func list(_ filter: ListFilter) throws(LedgerError) -> [CallSummary] {
        var filter = filter
        filter.limit = min(max(filter.limit, 1), ListFilter.maximumLimit)
        return try store.list(filter)
    }

    /// Walks the whole chain in one read snapshot: seqs 1, 2, 3… without gaps, each prev_hash equal
    /// to the previous record's hash (64 zeros for seq 1), each hash equal to the SHA-256 of the
    /// record's canonical encoding (`EffectHash`). Stops at the first bad record.
    ///
    /// Cannot see records cut off the END of the chain (nothing refers to the last record); the
    /// `calls` table, which is not chained, may point at them, and a copy of the last hash kept
    /// elsewhere (a checkpoint) pins it.
    public func verify() throws(LedgerError) -> VerifyReport {
        var expected: Int64 = 1
        var prevHash = EffectHash.genesisPrevHash
        var checked = 0
        var failure: VerifyReport?
        func bad(_ seq: Int64, _ reason: String) -> Bool {
            failure = VerifyReport(ok: false, checked: checked, firstBadSeq: seq, reason: reason)
            return false
        }
        try store.walkChain { row in
            guard case .row(let seq, let decoded) = row else {
                return bad(expected, "seq \(expected): unreadable seq column")
            }
            if seq != expected {
                if expected == 1 { return bad(1, "gap before seq \(seq): the chain does not start at seq 1") }
                let missing = seq - 1 == expected ? "seq \(expected) is missing" : "seqs \(expected)…\(seq - 1) are missing"
                return bad(expected, "gap after seq \(expected - 1): \(missing)")
            }
            let record: EffectRecord
            switch decoded {
            case .success(let r): record = r
            case .failure(let error): return bad(seq, "unreadable record: \(error.message)")
            }
            if record.prevHash != prevHash {
                return bad(seq, seq == 1 ? "prev_hash of seq 1 is not 64 zeros" : "prev_hash does not match seq \(seq - 1)")
            }
            if EffectHash.compute(record) != record.hash {
                return bad(seq, "hash mismatch")
            }
            checked += 1
            prevHash = record.hash
            expected = seq + 1
            return true
        }
        return failure ?? VerifyReport(ok: true, checked: checked, firstBadSeq: nil, reason: nil)
    }

    /// The secret that keys world idempotency keys (`WorldKey`), made once when the log was created.
    public func worldKeySecret() throws(LedgerError) -> [UInt8] {
        try store.worldKeySecret()
    }

    /// Calls of `runID` waiting for an operator's decision.
    public func awaitingApprovals(runID: String) throws(LedgerError) -> Int {
        try store.awaitingApprovals(runID: runID)
    }

    /// Calls of every run granted to `tenant` waiting for an operator's decision.
    public func awaitingApprovals(tenant: String) throws(LedgerError) -> Int {
        try store.awaitingApprovals(tenant: tenant)
    }

    // MARK: - Introspection

    /// Group-commit counters of this instance.
    public var writerStats: WriterStats { writer.stats }

    /// Write transactions committed by this instance (tests assert that appends were batched).
    public var commitCount: Int { writer.stats.commits }

    /// The newest record a run wrote (its calls' completions and intents), or nil.
    public func lastSeq(runID: String) throws(LedgerError) -> Int64? {
        try store.lastSeq(runID: runID)
    }

    // MARK: - Helpers

    package static func nowMs() -> Int64 {
        Int64((Date().timeIntervalSince1970 * 1000).rounded(.down))
    }

    /// SQLite hands text back only up to a NUL (GRDB reads it as a C string), so a NUL would make
    /// a record that can never verify. Refuse it up front.
    static func checkText(_ fields: [(String, String?)]) throws(LedgerError) {
        for (name, value) in fields where value?.utf8.contains(0) == true {
            throw LedgerError(.invalidInput, "\(name) contains a NUL character")
        }
    }

    static func checkActor(_ actor: String) throws(LedgerError) {
        guard !actor.isEmpty else { throw LedgerError(.invalidInput, "actor is empty (say who decided: \"operator:NAME\" or \"broker\")") }
        try checkText([("actor", actor)])
    }
}
