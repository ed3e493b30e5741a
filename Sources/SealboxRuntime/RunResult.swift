import SealboxJail

/// The answer to one run as sealbox gives it: what the jail did (`JailResult`), and what the
/// runtime and the service add — whether a session step was replayed from its seal, the
/// checkpoint that seals it, the /work it left, the tool calls it waits on, and whether the
/// service dropped its output for room. Encoded at the edge (`sealbox run --json`, the HTTP
/// API, MCP) as one flat object, the contract of DESIGN.md; the jail's members are reached
/// as if they were this type's own (`result.status`, `result.stdout`).
@dynamicMemberLookup
public struct RunResult: Sendable, Codable, Equatable {
    public typealias Status = JailResult.Status
    public typealias Phases = JailResult.Phases
    public typealias SpawnSteps = JailResult.SpawnSteps
    public typealias Violation = JailResult.Violation
    public typealias AppliedLimits = JailResult.AppliedLimits

    /// What the jail did; for a replayed step, what it did when the step first ran.
    public var jail: JailResult
    /// For a session step: true when the sealed result was returned and nothing executed.
    public var replayed: Bool?
    /// For a session step: the seq of the checkpoint that seals it.
    public var checkpoint: Int64?
    /// For a session step: the /work it left, as sealed.
    public var workspace: WorkspaceSummary?

    /// For a session step: broker calls refused because they wait on a decision (an
    /// in-doubt effect, a pending approval). Such a step is not finished and not sealed.
    public var blocked: [BlockedEffect]?

    public struct BlockedEffect: Sendable, Codable, Equatable {
        public var seq: Int64?
        public var code: String
        public var message: String

        public init(seq: Int64?, code: String, message: String) {
            self.seq = seq
            self.code = code
            self.message = message
        }
    }

    public struct WorkspaceSummary: Sendable, Codable, Equatable {
        /// Content-addressed id of the snapshot ("sha256:...").
        public var snapshot: String
        public var files: Int
        public var bytes: UInt64
        public var limitBytes: UInt64
        /// Files whose contents were not in the store yet (the rest were stored once already).
        public var newBlobs: Int
        /// True when the program filled /work to its limit (its writes then failed with ENOSPC).
        public var full: Bool
        /// Entries not kept: fifos, sockets, names that are not UTF-8.
        public var skipped: [String]

        public init(snapshot: String, files: Int, bytes: UInt64, limitBytes: UInt64, newBlobs: Int, full: Bool, skipped: [String]) {
            self.snapshot = snapshot
            self.files = files
            self.bytes = bytes
            self.limitBytes = limitBytes
            self.newBlobs = newBlobs
            self.full = full
            self.skipped = skipped
        }

        enum CodingKeys: String, CodingKey {
            case snapshot, files, bytes
            case limitBytes = "limit_bytes"
            case newBlobs = "new_blobs"
            case full, skipped
        }
    }

    /// Only in a copy the service kept (GET /v1/runs/{id}): true when its stdout and stderr
    /// were left out because no room was left to keep them.
    public var outputDropped: Bool?

    public init(jail: JailResult) {
        self.jail = jail
    }

    public subscript<Value>(dynamicMember member: WritableKeyPath<JailResult, Value>) -> Value {
        get { jail[keyPath: member] }
        set { jail[keyPath: member] = newValue }
    }

    enum CodingKeys: String, CodingKey {
        case replayed, checkpoint, workspace, blocked
        case outputDropped = "output_dropped"
    }

    public init(from decoder: any Decoder) throws {
        jail = try JailResult(from: decoder)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        replayed = try c.decodeIfPresent(Bool.self, forKey: .replayed)
        checkpoint = try c.decodeIfPresent(Int64.self, forKey: .checkpoint)
        workspace = try c.decodeIfPresent(WorkspaceSummary.self, forKey: .workspace)
        blocked = try c.decodeIfPresent([BlockedEffect].self, forKey: .blocked)
        outputDropped = try c.decodeIfPresent(Bool.self, forKey: .outputDropped)
    }

    /// One flat object, in the contract's order: the jail's verdict and output, then these
    /// members, then the jail's phases.
    public func encode(to encoder: any Encoder) throws {
        try jail.encode(to: encoder) { encoder in
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encodeIfPresent(replayed, forKey: .replayed)
            try c.encodeIfPresent(checkpoint, forKey: .checkpoint)
            try c.encodeIfPresent(workspace, forKey: .workspace)
            try c.encodeIfPresent(blocked, forKey: .blocked)
        }
        if let outputDropped {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(outputDropped, forKey: .outputDropped)
        }
    }
}
