import Synchronization
import SealboxBase

/// What each open run, and each tenant across its open runs, has used of its `BrokerLimits`:
/// the flow budgets its connections are charged, and the calls and effect-log bytes its quotas
/// count. Pending approvals are counted in the effect log instead (they outlive runs).
public final class UsageBook: Sendable {
    /// A quota a call ran into, named as the config names it.
    public struct Refusal: Sendable, Equatable {
        public var quota: String
        public var message: String
    }

    /// What the operator sees (control op `status`, serve's /metrics).
    public struct Counters: Sendable, Codable, Equatable {
        /// Times a connection was read more slowly because its run or tenant sent too fast.
        public var throttled: Int = 0
        /// Calls refused, by quota (`calls`, `effect_bytes`, `pending_approvals`).
        public var refused: [String: Int] = [:]
    }

    private struct RunUsage {
        var tenant: String
        var calls = 0
        /// Recorded, plus held for calls still running (their tools' max_response_bytes).
        var effectBytes = 0
        let budget: FlowBudget
    }

    private struct TenantUsage {
        let budget: FlowBudget
        var runs = 0
        var calls = 0
        var effectBytes = 0
    }

    private struct State {
        var runs: [String: RunUsage] = [:]
        var tenants: [String: TenantUsage] = [:]
        var counters = Counters()
    }

    public let limits: BrokerLimits
    private let state = Mutex(State())

    public init(limits: BrokerLimits) { self.limits = limits }

    /// Starts counting for `runID`; returns the budget its connections are charged.
    func open(runID: String, tenant: String) -> FlowBudget {
        state.withLock { s in
            var shared = s.tenants[tenant] ?? TenantUsage(budget: FlowBudget(limits.perTenant, tenant: nil))
            shared.runs += 1
            s.tenants[tenant] = shared
            let usage = RunUsage(tenant: tenant, budget: FlowBudget(limits.perRun, tenant: shared.budget))
            s.runs[runID] = usage
            return usage.budget
        }
    }

    /// Stops counting for `runID`; its tenant's counts lose what the run used.
    func close(runID: String) {
        state.withLock { s in
            guard let run = s.runs.removeValue(forKey: runID), var shared = s.tenants[run.tenant] else { return }
            shared.runs -= 1
            shared.calls -= run.calls
            shared.effectBytes -= run.effectBytes
            s.tenants[run.tenant] = shared.runs > 0 ? shared : nil
        }
    }

    public func tenant(of runID: String) -> String? {
        state.withLock { $0.runs[runID]?.tenant }
    }

    /// Charges one call of `runID` to its and its tenant's calls-per-second budgets; returns
    /// how long the caller must wait before the call goes on.
    func chargeCall(runID: String) -> Duration {
        let budget = state.withLock { $0.runs[runID]?.budget }
        guard let wait = budget?.chargeCall(), wait > .zero else { return .zero }
        countThrottled()
        return wait
    }

    /// Counts one new call of `runID` if its run and tenant have calls and effect bytes left.
    /// A run not opened here (an engine used without a service, in tests) is not limited.
    func admitCall(runID: String) -> Refusal? {
        state.withLock { s in
            guard var run = s.runs[runID], var shared = s.tenants[run.tenant] else { return nil }
            let refusal: Refusal?
            if run.calls >= limits.perRun.calls {
                refusal = Refusal(quota: "calls", message: "run \(runID) has made its \(limits.perRun.calls) calls (limits.per_run.calls)")
            } else if shared.calls >= limits.perTenant.calls {
                refusal = Refusal(quota: "calls", message: "this tenant's open runs have made their \(limits.perTenant.calls) calls (limits.per_tenant.calls)")
            } else if run.effectBytes >= limits.perRun.effectBytes {
                refusal = Refusal(quota: "effect_bytes", message: "run \(runID) has written its \(Self.format(limits.perRun.effectBytes)) of tool responses to the effect log (limits.per_run.effect_bytes)")
            } else if shared.effectBytes >= limits.perTenant.effectBytes {
                refusal = Refusal(quota: "effect_bytes", message: "this tenant's open runs have written their \(Self.format(limits.perTenant.effectBytes)) of tool responses to the effect log (limits.per_tenant.effect_bytes)")
            } else {
                refusal = nil
            }
            if let refusal {
                s.counters.refused[refusal.quota, default: 0] += 1
                return refusal
            }
            run.calls += 1
            shared.calls += 1
            s.runs[runID] = run
            s.tenants[run.tenant] = shared
            return nil
        }
    }

    /// Holds `bytes` of `runID`'s effect_bytes for a call about to run (its tool's largest
    /// response), so calls running at once cannot all pass the quota: a run passes it by at
    /// most the one response that crossed it.
    func reserve(_ bytes: Int, runID: String) {
        adjust(runID, by: bytes)
    }

    /// Replaces a call's hold by the size of the response actually recorded (0: none).
    func settle(reserved: Int, recorded: Int, runID: String) {
        adjust(runID, by: recorded - reserved)
    }

    private func adjust(_ runID: String, by bytes: Int) {
        guard bytes != 0 else { return }
        state.withLock { s in
            guard var run = s.runs[runID], var shared = s.tenants[run.tenant] else { return }
            run.effectBytes += bytes
            shared.effectBytes += bytes
            s.runs[runID] = run
            s.tenants[run.tenant] = shared
        }
    }

    func countRefusal(_ quota: String) {
        state.withLock { $0.counters.refused[quota, default: 0] += 1 }
    }

    func countThrottled() {
        state.withLock { $0.counters.throttled += 1 }
    }

    public var counters: Counters { state.withLock { $0.counters } }

    static func format(_ bytes: Int) -> String { ByteSize.format(bytes) + (bytes >= 1024 ? "B" : " bytes") }
}
