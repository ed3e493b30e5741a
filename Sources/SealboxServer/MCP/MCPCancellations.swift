import Synchronization

/// Requests in flight and the ones the client cancelled (`notifications/cancelled`). MCP asks
/// the receiver to stop and send no response; a run already started finishes (its jail is
/// bounded by its own limits), but its answer is dropped, so the client never gets a response
/// to an id it has given up on.
final class MCPCancellations: Sendable {
    private let state = Mutex<[JSONRPCID: Bool]>([:])

    func begin(_ id: JSONRPCID) {
        state.withLock { $0[id] = false }
    }

    /// Marks `id` cancelled if it is in flight; an unknown or finished id is ignored.
    func cancel(_ id: JSONRPCID) {
        state.withLock { if $0[id] != nil { $0[id] = true } }
    }

    /// Ends `id`; true when it was cancelled meanwhile.
    func end(_ id: JSONRPCID) -> Bool {
        state.withLock { $0.removeValue(forKey: id) ?? false }
    }
}
