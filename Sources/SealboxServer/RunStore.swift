import SealboxJail
import Synchronization

/// Finished runs by id for GET /v1/runs/{id}: the newest `capacity` are kept, the oldest
/// forgotten first, so the store never grows without bound.
public final class RunStore: Sendable {
    private struct State {
        var results: [String: RunResult] = [:]
        var order: [String] = []
        var head = 0
    }

    public let capacity: Int
    private let state = Mutex(State())

    public init(capacity: Int) {
        self.capacity = max(1, capacity)
    }

    public func put(_ result: RunResult) {
        state.withLock { s in
            if s.results.updateValue(result, forKey: result.id) != nil { return }
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

    public func get(_ id: String) -> RunResult? {
        state.withLock { $0.results[id] }
    }

    public var count: Int { state.withLock { $0.results.count } }
}
