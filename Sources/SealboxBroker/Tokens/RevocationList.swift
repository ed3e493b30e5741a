import Synchronization

/// Token ids and run ids whose tokens must no longer be honoured. The broker revokes a run's id
/// the moment the run ends; a single token can be revoked by its id. Thread-safe.
public final class RevocationList: Sendable {
    private struct State {
        var tokenIDs: Set<String>
        var runIDs: Set<String>
    }

    private let state: Mutex<State>

    public init(tokenIDs: Set<String> = [], runIDs: Set<String> = []) {
        state = Mutex(State(tokenIDs: tokenIDs, runIDs: runIDs))
    }

    public func revoke(tokenID: String) {
        state.withLock { _ = $0.tokenIDs.insert(tokenID) }
    }

    public func revoke(runID: String) {
        state.withLock { _ = $0.runIDs.insert(runID) }
    }

    public func isRevoked(tokenID: String, runID: String) -> Bool {
        state.withLock { $0.tokenIDs.contains(tokenID) || $0.runIDs.contains(runID) }
    }
}
