import Foundation
import GRDB

/// What keys.db says about one API key. Never the secret: that exists only in the answer to
/// `create` (and in the bootstrap key file).
public struct APIKeyInfo: Sendable, Codable, Equatable {
    public var id: String
    public var tenant: String
    public var name: String
    public var isOperator: Bool
    public var createdMs: Int64
    public var revokedMs: Int64?
    /// The profiles the key may name (`all`, `all-but:a,b` or `a,b`); nil: the server's policy.
    public var profiles: String?

    enum CodingKeys: String, CodingKey {
        case id, tenant, name
        case isOperator = "operator"
        case createdMs = "created_ms"
        case revokedMs = "revoked_ms"
        case profiles
    }

    /// Explicit `"revoked_ms": null` for a live key: the field is always there.
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(id, forKey: .id)
        try c.encode(tenant, forKey: .tenant)
        try c.encode(name, forKey: .name)
        try c.encode(isOperator, forKey: .isOperator)
        try c.encode(createdMs, forKey: .createdMs)
        try c.encode(revokedMs, forKey: .revokedMs)
        try c.encode(profiles, forKey: .profiles)
    }

    static func from(_ row: Row) -> APIKeyInfo {
        APIKeyInfo(id: row["id"], tenant: row["tenant"], name: row["name"], isOperator: row["is_operator"],
                   createdMs: row["created_ms"], revokedMs: row["revoked_ms"], profiles: row["profiles"])
    }

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

/// API keys in keys.db. Every check reads the database (one primary-key lookup), so a key
/// revoked by `sealbox keys revoke` in another process is refused on the very next request:
/// there is no cache to go stale.
public final class KeyStore: Sendable {
    /// Rows, revoked ones included; a store this full refuses `create`.
    public static let maxKeys = 10_000

    let database: AccessDatabase

    init(database: AccessDatabase) {
        self.database = database
    }

    public var path: String { database.path }

    /// `profiles`: the seccomp profiles the key may name; nil for the server's policy.
    public func create(tenant: String, name: String = "", isOperator: Bool, profiles: ProfileGrant? = nil) throws(AccessError) -> CreatedAPIKey {
        try AccessNames.checkTenant(tenant)
        try AccessNames.checkKeyName(name)
        return try database.write { db in try Self.insert(db, tenant: tenant, name: name, isOperator: isOperator, profiles: profiles) }
    }

    /// The bootstrap: makes a key only when the store has none at all, checked and inserted in
    /// one IMMEDIATE transaction, so two servers starting at once make one key between them.
    public func createIfEmpty(tenant: String, name: String, isOperator: Bool) throws(AccessError) -> CreatedAPIKey? {
        try AccessNames.checkTenant(tenant)
        try AccessNames.checkKeyName(name)
        return try database.write { db in
            guard try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM api_keys") == 0 else { return nil }
            return try Self.insert(db, tenant: tenant, name: name, isOperator: isOperator)
        }
    }

    /// Checks a presented key in constant time with respect to the secret. An unknown id still
    /// costs a hash and a comparison, so response times do not sort ids into known and unknown.
    public func check(_ presented: String) throws(AccessError) -> KeyCheck {
        guard let token = APIKeyToken.parse(presented) else { return .unknown }
        let presentedDigest = token.secretDigest
        let row = try database.read { db in
            try Row.fetchOne(db, sql: "SELECT * FROM api_keys WHERE id = ?", arguments: [token.id])
        }
        let storedDigest: [UInt8] = row.flatMap { ($0["secret_sha256"] as Data?).map(Array.init) } ?? Self.decoyDigest
        let matches = APIKeyToken.constantTimeEqual(presentedDigest, storedDigest)
        guard let row, matches else { return .unknown }
        let info = APIKeyInfo.from(row)
        if info.revokedMs != nil { return .revoked(id: info.id) }
        return .valid(APIIdentity(keyID: info.id, tenant: info.tenant, isOperator: info.isOperator, profiles: info.profileGrant))
    }

    /// Every key, oldest first; `tenant` narrows to one tenant's. Bounded by `maxKeys`.
    public func list(tenant: String? = nil) throws(AccessError) -> [APIKeyInfo] {
        try database.read { db in
            if let tenant {
                return try Row.fetchAll(db, sql: "SELECT * FROM api_keys WHERE tenant = ? ORDER BY created_ms, id", arguments: [tenant]).map(APIKeyInfo.from)
            }
            return try Row.fetchAll(db, sql: "SELECT * FROM api_keys ORDER BY created_ms, id").map(APIKeyInfo.from)
        }
    }

    public func info(id: String) throws(AccessError) -> APIKeyInfo? {
        try database.read { db in
            try Row.fetchOne(db, sql: "SELECT * FROM api_keys WHERE id = ?", arguments: [id]).map(APIKeyInfo.from)
        }
    }

    /// Revokes a key for good; the key's next request gets 401. Revoking a revoked key changes
    /// nothing and says so (`wasRevoked`).
    public func revoke(id: String) throws(AccessError) -> (info: APIKeyInfo, wasRevoked: Bool) {
        guard APIKeyToken.isID(id) else {
            throw AccessError(.invalidInput, "\"\(id.prefix(80))\" is not a key id (16 hex digits, as `sealbox keys list` prints them)")
        }
        return try database.write { db in
            guard var info = try Row.fetchOne(db, sql: "SELECT * FROM api_keys WHERE id = ?", arguments: [id]).map(APIKeyInfo.from) else {
                throw AccessError(.notFound, "no API key \(id)")
            }
            if info.revokedMs != nil { return (info, true) }
            let now = AccessDatabase.nowMs()
            try db.execute(sql: "UPDATE api_keys SET revoked_ms = ? WHERE id = ?", arguments: [now, id])
            info.revokedMs = now
            return (info, false)
        }
    }

    /// Removes a key that was never handed out (the bootstrap key whose file could not be
    /// written). Keys that were shown to someone are revoked, never deleted.
    func delete(id: String) throws(AccessError) {
        try database.write { db in try db.execute(sql: "DELETE FROM api_keys WHERE id = ?", arguments: [id]) }
    }

    public func count() throws(AccessError) -> Int {
        try database.read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM api_keys") ?? 0 }
    }

    /// Compared against when the id is unknown: no secret hashes to all zeros.
    private static let decoyDigest = [UInt8](repeating: 0, count: 32)

    private static func insert(_ db: Database, tenant: String, name: String, isOperator: Bool, profiles: ProfileGrant? = nil) throws -> CreatedAPIKey {
        let count = try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM api_keys") ?? 0
        guard count < maxKeys else {
            throw AccessError(.limit, "the key store holds \(count) keys (revoked ones count), the most it takes")
        }
        // 64 random bits: a collision is practically impossible, but a retry costs nothing.
        for _ in 0..<4 {
            let token = APIKeyToken.generate()
            guard try Int.fetchOne(db, sql: "SELECT 1 FROM api_keys WHERE id = ?", arguments: [token.id]) == nil else { continue }
            let info = APIKeyInfo(id: token.id, tenant: tenant, name: name, isOperator: isOperator, createdMs: AccessDatabase.nowMs(), revokedMs: nil,
                                  profiles: profiles?.description)
            try db.execute(
                sql: "INSERT INTO api_keys (id, secret_sha256, tenant, name, is_operator, created_ms, profiles) VALUES (?, ?, ?, ?, ?, ?, ?)",
                arguments: [info.id, Data(token.secretDigest), tenant, name, isOperator, info.createdMs, info.profiles])
            return CreatedAPIKey(info: info, key: token.text)
        }
        throw AccessError(.storage, "cannot pick an unused key id")
    }
}
