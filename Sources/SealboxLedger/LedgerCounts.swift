/// How many calls stand in one state, for one effect class: a row of `Ledger.callCounts()`.
public struct CallCount: Sendable, Equatable {
    /// `read`, `idempotent`, `irreversible`, `hybrid` (as stored).
    public var effectClass: String
    /// A `CallState` raw value (as stored).
    public var state: String
    public var count: Int

    public init(effectClass: String, state: String, count: Int) {
        self.effectClass = effectClass
        self.state = state
        self.count = count
    }
}

extension Ledger {
    /// Calls by effect class and state, counted in one GROUP BY over the `calls` index (one row
    /// per call, a few dozen bytes each), in one read snapshot. Exact at the moment of the read,
    /// and it survives restarts because it is the log itself that is counted: what
    /// `GET /metrics` exports as `sealbox_effects`.
    public func callCounts() throws(LedgerError) -> [CallCount] {
        try store.callCounts()
    }
}
