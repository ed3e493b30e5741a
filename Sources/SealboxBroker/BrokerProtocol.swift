import Foundation
import SealboxBase
import SealboxLedger

/// The jail-facing protocol (DESIGN.md, "Inside the jail"): one JSON object per line each way.
public struct CallRequest: Sendable, Decodable {
    public var token: String
    public var op: String
    public var tool: String
    public var args: [String: JSONValue]?
    public var key: String?
    /// hybrid tools: ask for a fresh read instead of the sealed snapshot (recorded as such).
    public var fresh: Bool?
}

public enum BrokerErrorCode: String, Sendable, Codable {
    case denied, expired, revoked
    case inDoubt = "in_doubt"
    case awaitingApproval = "awaiting_approval"
    case unknownTool = "unknown_tool"
    case toolFailed = "tool_failed"
    case badRequest = "bad_request"
    /// The effect log cannot be written because the disk is full: retry later.
    case storageFull = "storage_full"
    /// The key was used before for this tool with other arguments: a key names one call.
    case keyConflict = "key_conflict"
    /// The run or its tenant used up a quota of `BrokerLimits` (calls, effect-log bytes,
    /// pending approvals): nothing was written or sent.
    case quotaExceeded = "quota_exceeded"
}

public struct BrokerError: Error, Sendable, Codable, Equatable {
    public var code: BrokerErrorCode
    public var message: String

    public init(_ code: BrokerErrorCode, _ message: String) {
        self.code = code
        self.message = message
    }
}

public struct EffectInfo: Sendable, Codable, Equatable {
    /// The intent record's sequence number in the effect log.
    public var seq: Int64
    public var replayed: Bool
    public var completionSeq: Int64?
    /// Set when the answer (or refusal) comes from a call of another session of the same family
    /// (a fork or its parent): the world does not fork. Absent from the JSON otherwise, so
    /// clients that predate it see the same objects as before.
    public var fromSession: String?

    public init(seq: Int64, replayed: Bool, completionSeq: Int64? = nil, fromSession: String? = nil) {
        self.seq = seq
        self.replayed = replayed
        self.completionSeq = completionSeq
        self.fromSession = fromSession
    }

    enum CodingKeys: String, CodingKey {
        case seq, replayed
        case completionSeq = "completion_seq"
        case fromSession = "from_session"
    }
}

public struct CallResponse: Sendable, Codable, Equatable {
    public var ok: Bool
    public var result: JSONValue?
    public var effect: EffectInfo?
    public var error: BrokerError?

    public static func success(_ result: JSONValue, _ effect: EffectInfo) -> CallResponse {
        CallResponse(ok: true, result: result, effect: effect, error: nil)
    }

    public static func failure(_ error: BrokerError, result: JSONValue? = nil, effect: EffectInfo? = nil) -> CallResponse {
        CallResponse(ok: false, result: result, effect: effect, error: error)
    }

    /// The longest answer line the jail's client reads (client/sealbox.py MAX_LINE_BYTES, with
    /// its newline).
    public static let maxLineBytes = (1 << 20) - 1

    /// The answer as one line the client can read: a result whose JSON (escaped, a command's
    /// output can grow sixfold) would pass `maxLineBytes` is replaced by a note of its size.
    /// The effect log keeps the whole result; the jail learns the seq to ask an operator for it.
    /// Without this, a sealed call answered `bad_response` forever.
    public func encodedLine() -> Data {
        let seq = effect.map { String($0.seq) } ?? "?"
        var bounded = self
        if let encoded = try? JSONEncoder().encode(self) {
            guard encoded.count > Self.maxLineBytes else { return encoded }
            bounded.result = .object([
                "answer_too_large": .bool(true), "bytes": .number(encoded.count),
                "note": .string("the result is in the effect log (seq \(seq)); it is larger than the \(Self.maxLineBytes) bytes an answer may be"),
            ])
        } else {
            // A number beyond the range of a double has no JSONEncoder form; the effect log
            // keeps it digit for digit (canonical JSON writes the literal).
            bounded.result = .object([
                "answer_unencodable": .bool(true),
                "note": .string("the result is in the effect log (seq \(seq)); it holds a number beyond the range of a double"),
            ])
        }
        if var error = bounded.error, error.message.utf8.count > 4096 {
            error.message = String(decoding: Array(error.message.utf8.prefix(4096)), as: UTF8.self) + "…"
            bounded.error = error
        }
        return (try? JSONEncoder().encode(bounded)) ?? Data()
    }
}

/// The operator-facing control protocol on the broker's control socket (root only).
public struct ControlRequest: Sendable, Codable {
    public var op: String
    public var runID: String?
    public var sessionID: String?
    /// open_run: the root of the session's family when the session is a fork (of a fork, …);
    /// absent: the session is its own root. A session's family is recorded once and never changes.
    public var sessionRoot: String?
    public var tools: [String]?
    public var ttlMs: Int64?
    public var tokenID: String?
    /// open_run: who the run's calls count against (`BrokerLimits.perTenant`), 1-64 letters,
    /// digits, - or _; absent: the session's family.
    public var tenant: String?
    /// open_run: the W3C traceparent of the run's span; the run's tool-call spans are its
    /// children. Set by the process that opens the run, never by the jail; a malformed one
    /// is ignored (the calls are traced as roots of their own).
    public var traceparent: String?

    public init(op: String, runID: String? = nil, sessionID: String? = nil, sessionRoot: String? = nil, tools: [String]? = nil,
                ttlMs: Int64? = nil, tokenID: String? = nil, tenant: String? = nil, traceparent: String? = nil) {
        self.op = op
        self.traceparent = traceparent
        self.tenant = tenant
        self.runID = runID
        self.sessionID = sessionID
        self.sessionRoot = sessionRoot
        self.tools = tools
        self.ttlMs = ttlMs
        self.tokenID = tokenID
    }

    enum CodingKeys: String, CodingKey {
        case op
        case runID = "run_id"
        case sessionID = "session_id"
        case sessionRoot = "session_root"
        case tools
        case ttlMs = "ttl_ms"
        case tokenID = "token_id"
        case tenant
        case traceparent
    }
}

public struct ControlResponse: Sendable, Codable {
    public var ok: Bool
    public var token: String?
    public var tokenID: String?
    public var socket: String?
    public var tools: [String]?
    public var runs: Int?
    /// close_run: the last effect-log seq the run wrote (a step's ledger cursor).
    public var lastSeq: Int64?
    /// close_run: calls the run was refused because they wait on a decision (in doubt,
    /// awaiting approval), at most `BlockedCall.maxPerRun` distinct ones. A step that hit one
    /// is not finished: it must not be sealed.
    public var blocked: [BlockedCall]?
    /// close_run: how many refusals of that kind there were in all.
    public var blockedTotal: Int?
    /// status: how often runs were throttled and refused by their limits (`BrokerLimits`).
    public var limits: UsageBook.Counters?
    public var error: BrokerError?

    public init(ok: Bool, token: String? = nil, tokenID: String? = nil, socket: String? = nil, tools: [String]? = nil, runs: Int? = nil,
                lastSeq: Int64? = nil, blocked: [BlockedCall]? = nil, blockedTotal: Int? = nil, limits: UsageBook.Counters? = nil, error: BrokerError? = nil) {
        self.ok = ok
        self.limits = limits
        self.token = token
        self.tokenID = tokenID
        self.socket = socket
        self.tools = tools
        self.runs = runs
        self.lastSeq = lastSeq
        self.blocked = blocked
        self.blockedTotal = blockedTotal
        self.error = error
    }

    enum CodingKeys: String, CodingKey {
        case ok, token
        case tokenID = "token_id"
        case socket, tools, runs, error
        case lastSeq = "last_seq"
        case blocked
        case blockedTotal = "blocked_total"
        case limits
    }
}

/// A call refused to wait for a decision: the intent it waits on and why.
public struct BlockedCall: Sendable, Codable, Equatable {
    public var seq: Int64?
    public var code: BrokerErrorCode
    public var message: String

    public init(seq: Int64?, code: BrokerErrorCode, message: String) {
        self.seq = seq
        self.code = code
        self.message = message
    }

    /// The refusals that wait on an operator or on the world, not final answers.
    public static func isBlocking(_ code: BrokerErrorCode) -> Bool {
        code == .inDoubt || code == .awaitingApproval
    }

    /// Distinct blocked calls kept per run (by seq), and the longest message kept: a jail
    /// that makes thousands of refused calls must not grow the broker's memory or the
    /// close_run answer past what the client reads (it read 1 MiB, dropped the rest, and the
    /// step was sealed with its approval pending).
    public static let maxPerRun = 32
    public static let maxMessageBytes = 300
}

/// The blocked calls of one run: at most `BlockedCall.maxPerRun` distinct ones, and how many
/// refusals there were in all.
public struct BlockedSummary: Sendable {
    public private(set) var calls: [BlockedCall] = []
    public private(set) var total = 0

    public init() {}

    public mutating func add(_ call: BlockedCall) {
        total += 1
        if let seq = call.seq, calls.contains(where: { $0.seq == seq }) { return }
        guard calls.count < BlockedCall.maxPerRun else { return }
        var kept = call
        if kept.message.utf8.count > BlockedCall.maxMessageBytes {
            kept.message = String(decoding: Array(kept.message.utf8.prefix(BlockedCall.maxMessageBytes)), as: UTF8.self) + "…"
        }
        calls.append(kept)
    }
}
