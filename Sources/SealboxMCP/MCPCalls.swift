import SealboxBase
import Synchronization
import SealboxLedger

/// The requests of one MCP connection that are read and not yet answered, each under a token
/// that `MCPGate` stamps into the request it hands the SDK, so a handler finds its request
/// here: the arguments as sealbox's strict reader read them (the SDK's own decoding never
/// decides what a tool is asked), and whether the client cancelled it.
///
/// A cancellation (`notifications/cancelled`) is recorded here before the SDK sees it: the
/// SDK cancels a handler's task only once that task is registered, and a cancellation that
/// arrives first would be lost; here it is kept, and the handler's kill action runs the moment
/// it is installed. The answer of a cancelled request is dropped on the way out (MCP: the
/// receiver sends no response to a cancelled request).
final class MCPCalls: Sendable {
    struct Call: Sendable {
        var id: JSONRPCID
        var method: String
        var params: JSONValue?
        var cancelled = false
        var onCancel: (@Sendable () -> Void)?
    }

    private struct State {
        var calls: [String: Call] = [:]
        var tokenOfID: [JSONRPCID: String] = [:]
        var next: UInt64 = 0
    }

    private let state = Mutex(State())
    /// Called once per request that leaves the table (answered, dropped or given up).
    private let onEnd: @Sendable () -> Void

    init(onEnd: @escaping @Sendable () -> Void = {}) {
        self.onEnd = onEnd
    }

    var inFlight: Int { state.withLock { $0.calls.count } }

    /// Records a request read from the client; returns its token.
    func begin(id: JSONRPCID, method: String, params: JSONValue?) -> String {
        state.withLock { state in
            state.next += 1
            let token = "c\(state.next)"
            // A client reusing an id still in flight: the newer request is the one a
            // cancellation or an answer with that id refers to from now on.
            state.tokenOfID[id] = token
            state.calls[token] = Call(id: id, method: method, params: params)
            return token
        }
    }

    func call(_ token: String) -> Call? {
        state.withLock { $0.calls[token] }
    }

    func isCancelled(_ token: String) -> Bool {
        state.withLock { $0.calls[token]?.cancelled ?? false }
    }

    func isCancelled(id: JSONRPCID) -> Bool {
        state.withLock { state in state.tokenOfID[id].flatMap { state.calls[$0]?.cancelled } ?? false }
    }

    /// Installs what cancelling `token` does (kill its jail); runs it at once when the
    /// cancellation came first.
    func onCancel(_ token: String, _ action: @escaping @Sendable () -> Void) {
        let runNow = state.withLock { state -> Bool in
            guard var call = state.calls[token] else { return false }
            if call.cancelled { return true }
            call.onCancel = action
            state.calls[token] = call
            return false
        }
        if runNow { action() }
    }

    /// The client cancelled `id`; an unknown or finished id is ignored (MCP says so).
    func cancel(_ id: JSONRPCID) {
        let action = state.withLock { state -> (@Sendable () -> Void)? in
            guard let token = state.tokenOfID[id], var call = state.calls[token], !call.cancelled else { return nil }
            call.cancelled = true
            let action = call.onCancel
            call.onCancel = nil
            state.calls[token] = call
            return action
        }
        action?()
    }

    /// An answer to `id` is on its way out: the request leaves the table. Returns the method
    /// when the answer must be dropped (the request was cancelled), nil to send it.
    func answered(_ id: JSONRPCID) -> String? {
        let ended = state.withLock { state -> Call? in
            guard let token = state.tokenOfID.removeValue(forKey: id) else { return nil }
            return state.calls.removeValue(forKey: token)
        }
        guard let ended else { return nil }
        onEnd()
        return ended.cancelled ? ended.method : nil
    }

    /// A cancelled request whose handler ended without an answer (the SDK sends none).
    func abandon(_ token: String) {
        let ended = state.withLock { state -> Bool in
            guard let call = state.calls.removeValue(forKey: token) else { return false }
            if state.tokenOfID[call.id] == token { state.tokenOfID[call.id] = nil }
            return true
        }
        if ended { onEnd() }
    }
}
