import Synchronization

/// Access state in memory, gone with the process: for tests of the semantics above
/// `AccessStore` (which run against this and the SQLite store alike) and for a server that
/// keeps nothing. Every method holds one lock, so each is atomic as the protocol asks.
public final class InMemoryAccessStore: AccessStore {
    private struct State {
        var keys: [String: APIKeyRecord] = [:]
        var owners: [String: SessionOwnership] = [:]
    }

    private let state = Mutex(State())

    public init() {}

    public var location: String { "memory" }

    public func insertKey(_ key: APIKeyRecord, ifFewerThan limit: Int) throws(AccessError) -> KeyInsertion {
        state.withLock { state in
            guard state.keys.count < limit else { return .full(count: state.keys.count) }
            guard state.keys[key.info.id] == nil else { return .idTaken }
            state.keys[key.info.id] = key
            return .inserted
        }
    }

    public func key(id: String) throws(AccessError) -> APIKeyRecord? {
        state.withLock { $0.keys[id] }
    }

    public func keys(tenant: String?) throws(AccessError) -> [APIKeyInfo] {
        state.withLock { state in
            state.keys.values.map(\.info)
                .filter { tenant == nil || $0.tenant == tenant }
                .sorted { ($0.createdMs, $0.id) < ($1.createdMs, $1.id) }
        }
    }

    public func revokeKey(id: String, at time: Int64) throws(AccessError) -> APIKeyInfo? {
        state.withLock { state in
            guard let before = state.keys[id]?.info else { return nil }
            if before.revokedMs == nil { state.keys[id]?.info.revokedMs = time }
            return before
        }
    }

    public func deleteKey(id: String) throws(AccessError) {
        _ = state.withLock { $0.keys.removeValue(forKey: id) }
    }

    public func keyCount() throws(AccessError) -> Int {
        state.withLock { $0.keys.count }
    }

    public func claimSession(_ session: String, tenant: String, at time: Int64) throws(AccessError) -> String? {
        state.withLock { state in
            if let owner = state.owners[session] { return owner.tenant }
            state.owners[session] = SessionOwnership(sessionID: session, tenant: tenant, createdMs: time)
            return nil
        }
    }

    public func owner(of session: String) throws(AccessError) -> String? {
        state.withLock { $0.owners[session]?.tenant }
    }

    public func owners(of sessions: [String]) throws(AccessError) -> [String: String] {
        state.withLock { state in
            var owners: [String: String] = [:]
            for session in sessions {
                if let owner = state.owners[session] { owners[session] = owner.tenant }
            }
            return owners
        }
    }

    public func sessions(of tenant: String, after: String?, limit: Int) throws(AccessError) -> [SessionOwnership] {
        state.withLock { state in
            let mine = state.owners.values.filter { $0.tenant == tenant }
                .sorted { ($0.createdMs, $0.sessionID) < ($1.createdMs, $1.sessionID) }
            var start = mine.startIndex
            if let after, let cursor = mine.firstIndex(where: { $0.sessionID == after }) { start = cursor + 1 }
            return Array(mine[start...].prefix(max(limit, 0)))
        }
    }
}
