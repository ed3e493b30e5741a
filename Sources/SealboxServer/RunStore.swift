import SealboxJail
import Synchronization

/// Finished runs by id for GET /v1/runs/{id}: the newest `capacity` are kept, the oldest
/// forgotten first, so the store never grows without bound. Each result remembers the tenant
/// that ran it: another tenant asking for it gets nothing, as if it did not exist.
public final class RunStore: Sendable {
    private struct Entry {
        var result: RunResult
        var tenant: String
    }

    private struct State {
        var results: [String: Entry] = [:]
        var order: [String] = []
        var head = 0
    }

    public let capacity: Int
    private let state = Mutex(State())

    public init(capacity: Int) {
        self.capacity = max(1, capacity)
    }

    public func put(_ result: RunResult, tenant: String) {
        state.withLock { s in
            if s.results.updateValue(Entry(result: result, tenant: tenant), forKey: result.id) != nil { return }
            s.order.append(result.id)
            if s.order.count - s.head > capacity {
                s.results.removeValue(forKey: s.order[s.head])
                s.head += 1
                // Compact now and then so the order list stays about `capacity` long.
                if s.head >= capacity {
                    s.order.removeFirst(s.head)
                    s.head = 0
                }
            }
        }
    }

    /// The result when `identity` may see it (its own tenant's, or any for an operator).
    public func get(_ id: String, visibleTo identity: APIIdentity) -> RunResult? {
        guard let entry = state.withLock({ $0.results[id] }), identity.canSee(ownedBy: entry.tenant) else { return nil }
        return entry.result
    }

    public func tenant(of id: String) -> String? {
        state.withLock { $0.results[id]?.tenant }
    }

    public var count: Int { state.withLock { $0.results.count } }
}
