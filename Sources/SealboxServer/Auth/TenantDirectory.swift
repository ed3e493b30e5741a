import SealboxAccess

/// Which tenant owns which session, over an `AccessStore` (keys.db's `session_owners` for
/// SQLite). Sessions, steps, facts, forks and effect-log calls are all keyed by session id;
/// this directory is what keeps one tenant's sessions out of another's sight.
///
/// How the API uses it (see also `SealboxAPI.claimSession` / `requireSession`):
/// - creating a session (`POST /v1/sessions`, or a fork's new session): `claim(session:tenant:)`
///   first; it throws `.ownedByAnotherTenant` when the id is taken by someone else.
/// - a one-shot `POST /v1/runs`: its run id is its session id in the effect log, so the handler
///   claims the run id for the caller's tenant before the run starts.
/// - anything that reads or acts on an existing session (a run in it, its facts, a fork of
///   it): `owner(of:)` must be the caller's tenant, else answer 404 as if it did not exist.
/// - listings: `owners(of:)` for a batch, `sessions(of:)` for one tenant's.
///
/// Rows are never removed: ownership must outlive the effect log's records about the session
/// (it grows with sessions, as the effect log and the checkpoint store do).
public final class TenantDirectory: Sendable {
    /// Most session ids `owners(of:)` takes at once.
    public static let maxBatch = 1000

    let store: any AccessStore

    init(store: any AccessStore) {
        self.store = store
    }

    /// Makes `tenant` the owner of `session`. True when this call claimed it, false when the
    /// tenant already owned it (claiming twice is harmless). Throws `.ownedByAnotherTenant`
    /// when another tenant owns it, `.invalidInput` for a bad tenant or session id.
    @discardableResult
    public func claim(session: String, tenant: String) throws(AccessError) -> Bool {
        try AccessNames.checkSessionID(session)
        try AccessNames.checkTenant(tenant)
        guard let owner = try store.claimSession(session, tenant: tenant, at: AccessControl.nowMs()) else { return true }
        guard owner == tenant else {
            throw AccessError(.ownedByAnotherTenant, "session \(session) belongs to another tenant")
        }
        return false
    }

    /// The owning tenant, or nil when nobody claimed the session (or the id is not one).
    public func owner(of session: String) throws(AccessError) -> String? {
        guard (try? AccessNames.checkSessionID(session)) != nil else { return nil }
        return try store.owner(of: session)
    }

    /// Owners of several sessions in one read: session id → tenant, unclaimed ones absent.
    /// At most `maxBatch` ids.
    public func owners(of sessions: Set<String>) throws(AccessError) -> [String: String] {
        guard sessions.count <= Self.maxBatch else {
            throw AccessError(.invalidInput, "at most \(Self.maxBatch) sessions at once, not \(sessions.count)")
        }
        guard !sessions.isEmpty else { return [:] }
        return try store.owners(of: Array(sessions))
    }

    /// A tenant's sessions, oldest claim first; page with `after` (the last session id of the
    /// previous page) and `limit` (1...maxBatch).
    public func sessions(of tenant: String, after: String? = nil, limit: Int = 100) throws(AccessError) -> [SessionOwnership] {
        let limit = min(max(limit, 1), Self.maxBatch)
        return try store.sessions(of: tenant, after: after, limit: limit)
    }
}
