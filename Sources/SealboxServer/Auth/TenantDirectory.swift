import GRDB

/// One row of `session_owners`.
public struct SessionOwnership: Sendable, Codable, Equatable {
    public var sessionID: String
    public var tenant: String
    public var createdMs: Int64

    enum CodingKeys: String, CodingKey {
        case sessionID = "session_id"
        case tenant
        case createdMs = "created_ms"
    }
}

/// Which tenant owns which session (keys.db, `session_owners`). Sessions, steps, facts, forks
/// and effect-log calls are all keyed by session id; this table is what keeps one tenant's
/// sessions out of another's sight.
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
    /// Most session ids `owners(of:)` takes at once (SQLite's bound-parameter limit is 32766).
    public static let maxBatch = 1000

    let database: AccessDatabase

    init(database: AccessDatabase) {
        self.database = database
    }

    /// Makes `tenant` the owner of `session`. True when this call claimed it, false when the
    /// tenant already owned it (claiming twice is harmless). Throws `.ownedByAnotherTenant`
    /// when another tenant owns it, `.invalidInput` for a bad tenant or session id.
    @discardableResult
    public func claim(session: String, tenant: String) throws(AccessError) -> Bool {
        try AccessNames.checkSessionID(session)
        try AccessNames.checkTenant(tenant)
        return try database.write { db in
            if let owner = try String.fetchOne(db, sql: "SELECT tenant FROM session_owners WHERE session_id = ?", arguments: [session]) {
                guard owner == tenant else {
                    throw AccessError(.ownedByAnotherTenant, "session \(session) belongs to another tenant")
                }
                return false
            }
            try db.execute(
                sql: "INSERT INTO session_owners (session_id, tenant, created_ms) VALUES (?, ?, ?)",
                arguments: [session, tenant, AccessDatabase.nowMs()])
            return true
        }
    }

    /// The owning tenant, or nil when nobody claimed the session (or the id is not one).
    public func owner(of session: String) throws(AccessError) -> String? {
        guard (try? AccessNames.checkSessionID(session)) != nil else { return nil }
        return try database.read { db in
            try String.fetchOne(db, sql: "SELECT tenant FROM session_owners WHERE session_id = ?", arguments: [session])
        }
    }

    /// Owners of several sessions in one query: session id → tenant, unclaimed ones absent.
    /// At most `maxBatch` ids.
    public func owners(of sessions: Set<String>) throws(AccessError) -> [String: String] {
        guard sessions.count <= Self.maxBatch else {
            throw AccessError(.invalidInput, "at most \(Self.maxBatch) sessions at once, not \(sessions.count)")
        }
        guard !sessions.isEmpty else { return [:] }
        let ids = Array(sessions)
        let marks = Array(repeating: "?", count: ids.count).joined(separator: ",")
        return try database.read { db in
            var owners: [String: String] = [:]
            for row in try Row.fetchAll(db, sql: "SELECT session_id, tenant FROM session_owners WHERE session_id IN (\(marks))", arguments: StatementArguments(ids)) {
                owners[row["session_id"]] = row["tenant"]
            }
            return owners
        }
    }

    /// A tenant's sessions, oldest claim first; page with `after` (the last session id of the
    /// previous page) and `limit` (1...maxBatch).
    public func sessions(of tenant: String, after: String? = nil, limit: Int = 100) throws(AccessError) -> [SessionOwnership] {
        let limit = min(max(limit, 1), Self.maxBatch)
        return try database.read { db in
            var afterMs: Int64 = -1
            var afterID = ""
            if let after, let row = try Row.fetchOne(db, sql: "SELECT created_ms FROM session_owners WHERE session_id = ? AND tenant = ?", arguments: [after, tenant]) {
                afterMs = row["created_ms"]
                afterID = after
            }
            return try Row.fetchAll(
                db,
                sql: """
                    SELECT * FROM session_owners WHERE tenant = ? AND (created_ms > ? OR (created_ms = ? AND session_id > ?))
                    ORDER BY created_ms, session_id LIMIT ?
                    """,
                arguments: [tenant, afterMs, afterMs, afterID, limit]
            ).map { SessionOwnership(sessionID: $0["session_id"], tenant: $0["tenant"], createdMs: $0["created_ms"]) }
        }
    }
}
