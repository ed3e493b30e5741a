/// What one run, and one tenant across its open runs, may take from a broker: how fast it may
/// send (lines and bytes per second: beyond that its connections are read more slowly, so a
/// flood costs the broker nothing while it waits) and how much it may add to the effect log
/// (calls, response bytes, calls waiting for an operator: beyond that a call is refused with
/// `quota_exceeded` before anything is written or sent). Set in the config's `limits:`.
public struct BrokerLimits: Sendable, Equatable {
    public struct Scope: Sendable, Equatable {
        /// Request lines per second, blank and malformed ones included; a second's worth may
        /// come at once.
        public var linesPerSecond: Int
        /// Request bytes per second; a second's worth may come at once.
        public var bytesPerSecond: Int
        /// Requests that reach the effect engine per second (each is a token check and effect-log
        /// lookups, and maybe a call to the world); a second's worth may come at once.
        public var callsPerSecond: Int
        /// Calls that write a new intent (replays write none and are not counted).
        public var calls: Int
        /// Bytes of tool responses recorded in the effect log.
        public var effectBytes: Int
        /// Calls waiting for an operator's approval (for a tenant: across all its runs, ended
        /// ones included, as the effect log records them).
        public var pendingApprovals: Int

        public init(linesPerSecond: Int, bytesPerSecond: Int, callsPerSecond: Int, calls: Int, effectBytes: Int, pendingApprovals: Int) {
            self.linesPerSecond = linesPerSecond
            self.bytesPerSecond = bytesPerSecond
            self.callsPerSecond = callsPerSecond
            self.calls = calls
            self.effectBytes = effectBytes
            self.pendingApprovals = pendingApprovals
        }
    }

    public var perRun: Scope
    /// One tenant: `sealbox serve` names the API key's tenant when it opens a run; a run opened
    /// without one (`sealbox run --broker`) belongs to its session's family.
    public var perTenant: Scope

    public init(perRun: Scope = BrokerLimits.defaultPerRun, perTenant: Scope = BrokerLimits.defaultPerTenant) {
        self.perRun = perRun
        self.perTenant = perTenant
    }

    public static let defaultPerRun = Scope(linesPerSecond: 500, bytesPerSecond: 4 << 20, callsPerSecond: 100,
                                            calls: 10_000, effectBytes: 64 << 20, pendingApprovals: 64)
    public static let defaultPerTenant = Scope(linesPerSecond: 1000, bytesPerSecond: 16 << 20, callsPerSecond: 200,
                                               calls: 100_000, effectBytes: 256 << 20, pendingApprovals: 256)

    /// The config keys, in the order the docs list them.
    public static let keys = ["lines_per_second", "bytes_per_second", "calls_per_second", "calls", "effect_bytes", "pending_approvals"]
}
