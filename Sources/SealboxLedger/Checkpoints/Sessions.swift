/// A session as the store knows it.
public struct SessionInfo: Sendable, Codable, Equatable {
    public var id: String
    public var createdAtMs: Int64
    /// For a fork: the session it branched from, at which step and checkpoint.
    public var forkedFrom: String?
    public var forkedAtStep: String?
    public var forkedAtSeq: Int64?
    /// The first session of the family: every fork of a fork shares it. Irreversible effects
    /// are facts for the whole family (the world does not fork).
    public var root: String
    /// Cap on the session's /work, in bytes.
    public var workspaceLimitBytes: UInt64

    public static let defaultWorkspaceLimit: UInt64 = 64 << 20
    public static let maximumWorkspaceLimit: UInt64 = 16 << 30

    /// Every field as given (what a store reads back from its rows).
    public init(id: String, createdAtMs: Int64, forkedFrom: String? = nil, forkedAtStep: String? = nil, forkedAtSeq: Int64? = nil, root: String, workspaceLimitBytes: UInt64) {
        self.id = id
        self.createdAtMs = createdAtMs
        self.forkedFrom = forkedFrom
        self.forkedAtStep = forkedAtStep
        self.forkedAtSeq = forkedAtSeq
        self.root = root
        self.workspaceLimitBytes = workspaceLimitBytes
    }

    enum CodingKeys: String, CodingKey {
        case id
        case createdAtMs = "created_at_ms"
        case forkedFrom = "forked_from"
        case forkedAtStep = "forked_at_step"
        case forkedAtSeq = "forked_at_seq"
        case root
        case workspaceLimitBytes = "workspace_limit_bytes"
    }
}
