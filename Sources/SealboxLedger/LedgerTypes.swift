import Foundation

/// The one error type of SealboxLedger: a stable code plus a message meant for an operator.
public struct LedgerError: Error, CustomStringConvertible, Sendable, Equatable {
    public enum Code: String, Sendable, Codable {
        /// The call is not in a state that allows the requested step ("seq 17 is sealed, not awaiting approval").
        case invalidTransition = "invalid_transition"
        /// No intent (or record) with that seq.
        case notFound = "not_found"
        /// The input itself is unusable (empty tool, bad status, a NUL in a text field, …).
        case invalidInput = "invalid_input"
        /// The path cannot hold a ledger (parent is a file, path is a directory, …).
        case badPath = "bad_path"
        /// The file exists but is not a sealbox ledger (not SQLite, or another application's database).
        case notALedger = "not_a_ledger"
        /// SQLite failed (I/O, lock timeout, …). Nothing of the failed transaction is visible.
        case storage
        /// The disk (or its quota) is full: nothing was written, and retrying later may work.
        case storageFull = "storage_full"
    }

    public let code: Code
    public let message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public init(message: String) {
        self.init(.storage, message)
    }

    public var description: String { message }
}

/// Where a call stands. Raw values are stored in `calls.state` and printed by `sealbox log`.
public enum CallState: String, Codable, Sendable, CaseIterable {
    /// Intent written, executing.
    case pending
    case awaitingApproval = "awaiting_approval"
    /// An operator said yes; not executed yet.
    case approved
    case denied
    /// Completion written with status ok.
    case sealed
    /// Completion written with status tool_failed.
    case failed
    /// Irreversible intent found without completion after a broker restart.
    case inDoubt = "in_doubt"
    /// Non-irreversible intent found without completion after a restart: safe to re-execute.
    case interrupted
    case resolvedHappened = "resolved_happened"
    case resolvedNotHappened = "resolved_not_happened"

    /// How the state reads in a sentence ("seq 17 is sealed, not awaiting approval").
    public var phrase: String { rawValue.replacingOccurrences(of: "_", with: " ") }
}

/// What the broker knows before it executes a side-effecting call.
public struct IntentInput: Sendable, Equatable {
    public var runID: String
    public var sessionID: String
    public var tool: String
    public var effectClass: EffectClass
    public var idempotencyKey: String
    public var target: String
    public var argsDigest: String
    public var approval: Approval
    public var tokenID: String
    public var fresh: Bool

    public init(
        runID: String, sessionID: String, tool: String, effectClass: EffectClass, idempotencyKey: String,
        target: String, argsDigest: String, approval: Approval, tokenID: String, fresh: Bool
    ) {
        self.runID = runID
        self.sessionID = sessionID
        self.tool = tool
        self.effectClass = effectClass
        self.idempotencyKey = idempotencyKey
        self.target = target
        self.argsDigest = argsDigest
        self.approval = approval
        self.tokenID = tokenID
        self.fresh = fresh
    }
}

/// What the broker seals after the call returned (or failed).
public struct CompletionInput: Sendable, Equatable {
    public var intentSeq: Int64
    /// "ok" or "tool_failed".
    public var status: String
    /// JSON text.
    public var response: String?
    public var responseDigest: String
    public var resourceVersion: String?
    public var irreversible: Bool
    public var happened: Bool?
    public var durationMs: Double

    public init(
        intentSeq: Int64, status: String, response: String?, responseDigest: String, resourceVersion: String?,
        irreversible: Bool, happened: Bool?, durationMs: Double
    ) {
        self.intentSeq = intentSeq
        self.status = status
        self.response = response
        self.responseDigest = responseDigest
        self.resourceVersion = resourceVersion
        self.irreversible = irreversible
        self.happened = happened
        self.durationMs = durationMs
    }
}

/// Record kinds of the `effects` chain.
public enum RecordKind: String, Sendable, CaseIterable {
    case intent, completion, approval, resolution, interruption, revocation
    /// A token minted for a run (v2): token_id, run_id, session_id; `tool` holds the granted
    /// tools joined with ","; `note` a JSON object with `expires_at_ms`, `session_root` and, when
    /// the minting broker held a lease (`BrokerLeases`), `broker_id`.
    case grant
}

/// One row of the hash-chained `effects` table.
public struct EffectRecord: Sendable, Codable, Equatable {
    public var seq: Int64
    public var kind: String
    public var createdAtMs: Int64
    /// Hex SHA-256 of the previous record's `hash`; 64 zeros for seq 1.
    public var prevHash: String
    /// Hex SHA-256 of `EffectHash.canonicalEncoding(of: self)`.
    public var hash: String
    public var intentSeq: Int64?
    public var runID: String?
    public var sessionID: String?
    public var tool: String?
    public var effectClass: String?
    public var idempotencyKey: String?
    public var target: String?
    public var argsDigest: String?
    public var approval: String?
    public var tokenID: String?
    public var fresh: Bool?
    public var status: String?
    public var response: String?
    public var responseDigest: String?
    public var resourceVersion: String?
    public var irreversible: Bool?
    public var happened: Bool?
    public var durationMs: Double?
    public var actor: String?
    public var note: String?

    public init(
        seq: Int64, kind: String, createdAtMs: Int64, prevHash: String, hash: String = "",
        intentSeq: Int64? = nil, runID: String? = nil, sessionID: String? = nil, tool: String? = nil,
        effectClass: String? = nil, idempotencyKey: String? = nil, target: String? = nil, argsDigest: String? = nil,
        approval: String? = nil, tokenID: String? = nil, fresh: Bool? = nil, status: String? = nil,
        response: String? = nil, responseDigest: String? = nil, resourceVersion: String? = nil,
        irreversible: Bool? = nil, happened: Bool? = nil, durationMs: Double? = nil, actor: String? = nil,
        note: String? = nil
    ) {
        self.seq = seq
        self.kind = kind
        self.createdAtMs = createdAtMs
        self.prevHash = prevHash
        self.hash = hash
        self.intentSeq = intentSeq
        self.runID = runID
        self.sessionID = sessionID
        self.tool = tool
        self.effectClass = effectClass
        self.idempotencyKey = idempotencyKey
        self.target = target
        self.argsDigest = argsDigest
        self.approval = approval
        self.tokenID = tokenID
        self.fresh = fresh
        self.status = status
        self.response = response
        self.responseDigest = responseDigest
        self.resourceVersion = resourceVersion
        self.irreversible = irreversible
        self.happened = happened
        self.durationMs = durationMs
        self.actor = actor
        self.note = note
    }

    enum CodingKeys: String, CodingKey {
        case seq, kind
        case createdAtMs = "created_at_ms"
        case prevHash = "prev_hash"
        case hash
        case intentSeq = "intent_seq"
        case runID = "run_id"
        case sessionID = "session_id"
        case tool
        case effectClass = "effect_class"
        case idempotencyKey = "idempotency_key"
        case target
        case argsDigest = "args_digest"
        case approval
        case tokenID = "token_id"
        case fresh, status, response
        case responseDigest = "response_digest"
        case resourceVersion = "resource_version"
        case irreversible, happened
        case durationMs = "duration_ms"
        case actor, note
    }
}

/// One row of the `calls` index: where one intent stands.
public struct CallSummary: Sendable, Codable, Equatable {
    public var intentSeq: Int64
    public var completionSeq: Int64?
    public var state: CallState
    public var sessionID: String
    public var runID: String
    public var tool: String
    public var effectClass: EffectClass
    public var idempotencyKey: String
    public var approval: Approval
    public var createdAtMs: Int64
    public var updatedAtMs: Int64

    public init(
        intentSeq: Int64, completionSeq: Int64?, state: CallState, sessionID: String, runID: String, tool: String,
        effectClass: EffectClass, idempotencyKey: String, approval: Approval, createdAtMs: Int64, updatedAtMs: Int64
    ) {
        self.intentSeq = intentSeq
        self.completionSeq = completionSeq
        self.state = state
        self.sessionID = sessionID
        self.runID = runID
        self.tool = tool
        self.effectClass = effectClass
        self.idempotencyKey = idempotencyKey
        self.approval = approval
        self.createdAtMs = createdAtMs
        self.updatedAtMs = updatedAtMs
    }

    enum CodingKeys: String, CodingKey {
        case intentSeq = "intent_seq"
        case completionSeq = "completion_seq"
        case state
        case sessionID = "session_id"
        case runID = "run_id"
        case tool
        case effectClass = "effect_class"
        case idempotencyKey = "idempotency_key"
        case approval
        case createdAtMs = "created_at_ms"
        case updatedAtMs = "updated_at_ms"
    }
}

/// Filters of `Ledger.list`; every non-nil field must match. Results are in intent-seq order.
public struct ListFilter: Sendable, Equatable {
    public static let maximumLimit = 10_000

    public var sessionID: String?
    public var runID: String?
    public var tool: String?
    public var state: CallState?
    /// At most this many calls (clamped to 1...10000).
    public var limit: Int
    /// Only intents with a seq greater than this (paging: pass the last seq of the previous page).
    public var afterSeq: Int64?

    public init(
        sessionID: String? = nil, runID: String? = nil, tool: String? = nil, state: CallState? = nil,
        limit: Int = 100, afterSeq: Int64? = nil
    ) {
        self.sessionID = sessionID
        self.runID = runID
        self.tool = tool
        self.state = state
        self.limit = limit
        self.afterSeq = afterSeq
    }
}

/// The result of walking the chain.
public struct VerifyReport: Sendable, Codable, Equatable {
    public var ok: Bool
    /// Records checked (all of them when ok; up to and including the bad one otherwise).
    public var checked: Int
    public var firstBadSeq: Int64?
    public var reason: String?

    public init(ok: Bool, checked: Int, firstBadSeq: Int64?, reason: String?) {
        self.ok = ok
        self.checked = checked
        self.firstBadSeq = firstBadSeq
        self.reason = reason
    }

    enum CodingKeys: String, CodingKey {
        case ok, checked
        case firstBadSeq = "first_bad_seq"
        case reason
    }
}

/// Group-commit counters, for tests and `sealbox log stats`.
public struct WriterStats: Sendable, Equatable {
    /// Write transactions committed by this Ledger instance.
    public var commits: Int
    /// Appends (jobs) answered, successful or not.
    public var jobs: Int
    /// Records written to the chain.
    public var records: Int
    /// The largest number of jobs in one transaction.
    public var largestBatch: Int
    /// Transactions that failed and were rolled back (every caller of the batch got the error).
    public var failedTransactions: Int
}
