import SealboxBase
import Synchronization

/// A token bucket that may go into debt: taking always succeeds and says how long the taker
/// must now wait for the bucket to be out of debt. A connection that waits that long before
/// reading its next line sends, on average, no faster than the rate.
final class RateBucket: Sendable {
    private struct State {
        var tokens: Double
        var updated: ContinuousClock.Instant
    }
    private let perSecond: Double
    private let state: Mutex<State>

    /// A full bucket holds one second's worth.
    init(perSecond: Int) {
        self.perSecond = Double(perSecond)
        self.state = Mutex(State(tokens: Double(perSecond), updated: .now))
    }

    func take(_ amount: Int) -> Duration {
        state.withLock { s in
            let now = ContinuousClock.now
            s.tokens = min(perSecond, s.tokens + (now - s.updated).inSeconds * perSecond) - Double(amount)
            s.updated = now
            return s.tokens >= 0 ? .zero : .seconds(-s.tokens / perSecond)
        }
    }
}

/// The send budgets of one run and of its tenant (shared by the tenant's open runs): lines,
/// bytes and calls per second. The broker charges each request line to both before it handles
/// the line, and each request that parsed before the effect engine looks at it.
final class FlowBudget: Sendable {
    let lines: RateBucket
    let bytes: RateBucket
    let calls: RateBucket
    let tenant: FlowBudget?

    init(_ scope: BrokerLimits.Scope, tenant: FlowBudget?) {
        lines = RateBucket(perSecond: scope.linesPerSecond)
        bytes = RateBucket(perSecond: scope.bytesPerSecond)
        calls = RateBucket(perSecond: scope.callsPerSecond)
        self.tenant = tenant
    }

    /// Charges one call; returns the wait it earned.
    func chargeCall() -> Duration {
        max(calls.take(1), tenant?.chargeCall() ?? .zero)
    }

    /// Charges one line of `byteCount` bytes (its newline included); returns the wait it earned.
    func charge(byteCount: Int) -> Duration {
        var wait = max(lines.take(1), bytes.take(byteCount))
        if let tenant { wait = max(wait, tenant.charge(byteCount: byteCount)) }
        return wait
    }
}
