/// What the store says about one API key. Never the secret: that exists only in the answer to
/// `KeyStore.create` (and in the bootstrap key file).
public struct APIKeyInfo: Sendable, Codable, Equatable {
    public var id: String
    public var tenant: String
    public var name: String
    public var isOperator: Bool
    public var createdMs: Int64
    public var revokedMs: Int64?
    /// The profiles the key may name (`all`, `all-but:a,b` or `a,b`); nil: the server's policy.
    public var profiles: String?

    public init(id: String, tenant: String, name: String, isOperator: Bool, createdMs: Int64, revokedMs: Int64?, profiles: String?) {
        self.id = id
        self.tenant = tenant
        self.name = name
        self.isOperator = isOperator
        self.createdMs = createdMs
        self.revokedMs = revokedMs
        self.profiles = profiles
    }

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
}

/// One stored key: what anyone may read about it, and the SHA-256 of its secret (32 bytes),
/// which only the key check compares against.
public struct APIKeyRecord: Sendable, Equatable {
    public var info: APIKeyInfo
    public var secretDigest: [UInt8]

    public init(info: APIKeyInfo, secretDigest: [UInt8]) {
        self.info = info
        self.secretDigest = secretDigest
    }
}

/// Which tenant owns one session, since when.
public struct SessionOwnership: Sendable, Codable, Equatable {
    public var sessionID: String
    public var tenant: String
    public var createdMs: Int64

    public init(sessionID: String, tenant: String, createdMs: Int64) {
        self.sessionID = sessionID
        self.tenant = tenant
        self.createdMs = createdMs
    }

    enum CodingKeys: String, CodingKey {
        case sessionID = "session_id"
        case tenant
        case createdMs = "created_ms"
    }
}
