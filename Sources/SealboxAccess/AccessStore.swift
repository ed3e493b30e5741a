/// The primitives the API keys and the tenant directory are built on: rows in, rows out, and
/// the few conditional writes that must be atomic against other writers (another server, a
/// `sealbox keys` process). Nothing here knows what a key's text looks like, how its secret is
/// hashed, which names are acceptable, when a bootstrap key is made or who may see what: that
/// is `KeyStore`, `TenantDirectory` and `BootstrapKey` in SealboxServer, written once above
/// this protocol. A backend (SQLite today in SealboxSQLite, PostgreSQL later) implements these
/// and nothing more.
///
/// Times are milliseconds since the epoch, chosen by the caller. Every method either does all
/// it says or nothing, and throws `AccessError` (`.storage` for a failing backend).
public protocol AccessStore: Sendable {
    /// Where the store lives, for messages to an operator (a file path for SQLite).
    var location: String { get }

    // MARK: API keys

    /// Adds `key` if the store holds fewer than `limit` keys (revoked ones count) and no key
    /// has its id, as one atomic step: two callers asking with `limit` 1 make one key between
    /// them.
    func insertKey(_ key: APIKeyRecord, ifFewerThan limit: Int) throws(AccessError) -> KeyInsertion

    /// The key with this id, revoked or not.
    func key(id: String) throws(AccessError) -> APIKeyRecord?

    /// Every key, or one tenant's, ordered by creation time then id.
    func keys(tenant: String?) throws(AccessError) -> [APIKeyInfo]

    /// Sets the key's revocation time to `time` unless it has one, atomically. Returns the key
    /// as it was before the call; nil when there is no such key.
    func revokeKey(id: String, at time: Int64) throws(AccessError) -> APIKeyInfo?

    /// Removes a key (one never handed out); no such key is not an error.
    func deleteKey(id: String) throws(AccessError)

    /// How many keys the store holds, revoked ones included.
    func keyCount() throws(AccessError) -> Int

    // MARK: Session owners

    /// Records `tenant` as the owner of `session` unless the session has an owner, atomically.
    /// Returns the owner before the call: nil when this call made `tenant` the owner.
    func claimSession(_ session: String, tenant: String, at time: Int64) throws(AccessError) -> String?

    /// The owning tenant of `session`; nil when nobody claimed it.
    func owner(of session: String) throws(AccessError) -> String?

    /// Owners of several sessions: session id → tenant, unclaimed ones absent. The caller
    /// bounds the batch (`TenantDirectory.maxBatch`).
    func owners(of sessions: [String]) throws(AccessError) -> [String: String]

    /// At most `limit` of a tenant's sessions, ordered by claim time then session id, starting
    /// after `after` (a session id of this tenant: the last one of the previous page); from
    /// the first when `after` is nil or not one of the tenant's sessions.
    func sessions(of tenant: String, after: String?, limit: Int) throws(AccessError) -> [SessionOwnership]
}

/// What `AccessStore.insertKey` did.
public enum KeyInsertion: Sendable, Equatable {
    case inserted
    /// Another key has this id; nothing was written.
    case idTaken
    /// The store already held `count` keys, not fewer than the limit; nothing was written.
    case full(count: Int)
}
