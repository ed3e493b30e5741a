/// A token the broker minted for a run, as recorded in the chain before the token is handed out
/// (DESIGN.md: tokens are scoped to named tools, expiring, revoked when the task ends).
public struct GrantInput: Sendable, Equatable {
    public var tokenID: String
    public var runID: String
    public var sessionID: String
    /// The root of the session's family (see `Ledger.recordSession`); nil: the session is its
    /// own root. Recorded in the same transaction as the grant.
    public var sessionRoot: String?
    /// Tool names; none may be empty or contain ",".
    public var tools: [String]
    /// The token's expiry, unix ms (the exact value signed into the token).
    public var expiresAtMs: Int64
    /// The broker that minted the token and holds the key it verifies with (its `BrokerLeases` lease
    /// id), recorded in the grant note as `broker_id`. The grant, and the calls made with its
    /// token, are recovered only once that broker is gone. nil: a grant without an owner
    /// (written before brokers held leases), which any starting broker ends.
    public var brokerID: String?
    /// Who the run's calls count against (`BrokerLimits`); nil: the session's family.
    public var tenant: String?

    public init(tokenID: String, runID: String, sessionID: String, sessionRoot: String? = nil, tools: [String], expiresAtMs: Int64,
                brokerID: String? = nil, tenant: String? = nil) {
        self.tenant = tenant
        self.tokenID = tokenID
        self.runID = runID
        self.sessionID = sessionID
        self.sessionRoot = sessionRoot
        self.tools = tools
        self.expiresAtMs = expiresAtMs
        self.brokerID = brokerID
    }
}

/// One row of the `grants` index: a token minted for a run.
public struct GrantSummary: Sendable, Codable, Equatable {
    public var tokenID: String
    public var runID: String
    public var sessionID: String
    /// Sorted, as recorded.
    public var tools: [String]
    public var expiresAtMs: Int64
    public var createdAtMs: Int64
    /// The `grant` record's seq in the chain.
    public var recordSeq: Int64
    /// The broker that minted the token (the grant note's `broker_id`); nil for grants recorded
    /// before brokers held leases.
    public var brokerID: String?

    public init(tokenID: String, runID: String, sessionID: String, tools: [String], expiresAtMs: Int64, createdAtMs: Int64, recordSeq: Int64,
                brokerID: String? = nil) {
        self.tokenID = tokenID
        self.runID = runID
        self.sessionID = sessionID
        self.tools = tools
        self.expiresAtMs = expiresAtMs
        self.createdAtMs = createdAtMs
        self.recordSeq = recordSeq
        self.brokerID = brokerID
    }

    enum CodingKeys: String, CodingKey {
        case tokenID = "token_id"
        case runID = "run_id"
        case sessionID = "session_id"
        case tools
        case expiresAtMs = "expires_at_ms"
        case createdAtMs = "created_at_ms"
        case recordSeq = "record_seq"
        case brokerID = "broker_id"
    }
}
