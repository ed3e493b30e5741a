import SealboxAccess

extension APIKeyInfo {
    /// `profiles` as a grant; a value that does not read as one grants nothing.
    var profileGrant: ProfileGrant? {
        guard let profiles else { return nil }
        return ProfileGrant(text: profiles) ?? .only([])
    }
}

/// A key just made: `key` is the full `sbx_<id>_<secret>` text, shown once.
public struct CreatedAPIKey: Sendable {
    public let info: APIKeyInfo
    public let key: String
}

/// What a presented key turned out to be.
public enum KeyCheck: Sendable, Equatable {
    case valid(APIIdentity)
    /// Not the `sbx_<id>_<secret>` format, no such id, or the wrong secret: one answer for all,
    /// so a caller learns nothing about which ids exist.
    case unknown
    /// The right secret of a revoked key.
    case revoked(id: String)
}

/// API keys: their text and hashing, the checks on names, the bootstrap's "only when empty",
/// over the primitives of an `AccessStore`. Every check reads the store (one lookup by id), so
/// a key revoked by `sealbox keys revoke` in another process is refused on the very next
/// request: there is no cache to go stale.
public final class KeyStore: Sendable {
    /// Rows, revoked ones included; a store this full refuses `create`.
    public static let maxKeys = 10_000

    let store: any AccessStore

    init(store: any AccessStore) {
        self.store = store
    }

    /// Where the keys are, for messages to an operator (keys.db's path for SQLite).
    public var location: String { store.location }

    /// `profiles`: the seccomp profiles the key may name; nil for the server's policy.
    public func create(tenant: String, name: String = "", isOperator: Bool, profiles: ProfileGrant? = nil) throws(AccessError) -> CreatedAPIKey {
        try AccessNames.checkTenant(tenant)
        try AccessNames.checkKeyName(name)
        switch try insert(tenant: tenant, name: name, isOperator: isOperator, profiles: profiles, ifFewerThan: Self.maxKeys) {
        case .created(let created): return created
        case .full(let count): throw AccessError(.limit, "the key store holds \(count) keys (revoked ones count), the most it takes")
        }
    }

    /// The bootstrap: makes a key only when the store has none at all, checked and inserted in
    /// one atomic step of the store, so two servers starting at once make one key between them.
    public func createIfEmpty(tenant: String, name: String, isOperator: Bool) throws(AccessError) -> CreatedAPIKey? {
        try AccessNames.checkTenant(tenant)
        try AccessNames.checkKeyName(name)
        guard case .created(let created) = try insert(tenant: tenant, name: name, isOperator: isOperator, profiles: nil, ifFewerThan: 1) else { return nil }
        return created
    }

    /// Checks a presented key in constant time with respect to the secret. An unknown id still
    /// costs a hash and a comparison, so response times do not sort ids into known and unknown.
    public func check(_ presented: String) throws(AccessError) -> KeyCheck {
        guard let token = APIKeyToken.parse(presented) else { return .unknown }
        let presentedDigest = token.secretDigest
        let record = try store.key(id: token.id)
        let matches = APIKeyToken.constantTimeEqual(presentedDigest, record?.secretDigest ?? Self.decoyDigest)
        guard let info = record?.info, matches else { return .unknown }
        if info.revokedMs != nil { return .revoked(id: info.id) }
        return .valid(APIIdentity(keyID: info.id, tenant: info.tenant, isOperator: info.isOperator, profiles: info.profileGrant))
    }

    /// Every key, oldest first; `tenant` narrows to one tenant's. Bounded by `maxKeys`.
    public func list(tenant: String? = nil) throws(AccessError) -> [APIKeyInfo] {
        try store.keys(tenant: tenant)
    }

    public func info(id: String) throws(AccessError) -> APIKeyInfo? {
        try store.key(id: id)?.info
    }

    /// Revokes a key for good; the key's next request gets 401. Revoking a revoked key changes
    /// nothing and says so (`wasRevoked`).
    public func revoke(id: String) throws(AccessError) -> (info: APIKeyInfo, wasRevoked: Bool) {
        guard APIKeyToken.isID(id) else {
            throw AccessError(.invalidInput, "\"\(id.prefix(80))\" is not a key id (16 hex digits, as `sealbox keys list` prints them)")
        }
        let now = AccessControl.nowMs()
        guard var info = try store.revokeKey(id: id, at: now) else { throw AccessError(.notFound, "no API key \(id)") }
        if info.revokedMs != nil { return (info, true) }
        info.revokedMs = now
        return (info, false)
    }

    /// Removes a key that was never handed out (the bootstrap key whose file could not be
    /// written). Keys that were shown to someone are revoked, never deleted.
    func delete(id: String) throws(AccessError) {
        try store.deleteKey(id: id)
    }

    public func count() throws(AccessError) -> Int {
        try store.keyCount()
    }

    /// Compared against when the id is unknown: no secret hashes to all zeros.
    private static let decoyDigest = [UInt8](repeating: 0, count: 32)

    private enum Insertion {
        case created(CreatedAPIKey)
        case full(count: Int)
    }

    /// A fresh key, stored if the store holds fewer than `limit` keys.
    private func insert(tenant: String, name: String, isOperator: Bool, profiles: ProfileGrant?, ifFewerThan limit: Int) throws(AccessError) -> Insertion {
        // 64 random bits: a collision is practically impossible, but a retry costs nothing.
        for _ in 0..<4 {
            let token = APIKeyToken.generate()
            let info = APIKeyInfo(id: token.id, tenant: tenant, name: name, isOperator: isOperator, createdMs: AccessControl.nowMs(), revokedMs: nil,
                                  profiles: profiles?.description)
            switch try store.insertKey(APIKeyRecord(info: info, secretDigest: token.secretDigest), ifFewerThan: limit) {
            case .inserted: return .created(CreatedAPIKey(info: info, key: token.text))
            case .idTaken: continue
            case .full(let count): return .full(count: count)
            }
        }
        throw AccessError(.storage, "cannot pick an unused key id")
    }
}
