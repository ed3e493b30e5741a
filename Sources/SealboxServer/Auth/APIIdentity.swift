/// Who sent a request: the key that authenticated it, its tenant, and whether it may act as
/// an operator (metrics; resolving, approving and denying effects; seeing every tenant's).
public struct APIIdentity: Sendable, Equatable, Hashable {
    public var keyID: String
    public var tenant: String
    public var isOperator: Bool

    public init(keyID: String, tenant: String, isOperator: Bool) {
        self.keyID = keyID
        self.tenant = tenant
        self.isOperator = isOperator
    }

    /// Every request of `sealbox serve --no-auth`: tenant `default`, operator rights.
    public static let unauthenticated = APIIdentity(keyID: "no-auth", tenant: "default", isOperator: true)

    /// The one visibility rule of the API: a tenant sees what it owns; an operator sees all.
    public func canSee(ownedBy tenant: String?) -> Bool {
        isOperator || tenant == self.tenant
    }

    /// How the effect log records a decision made with this key.
    public var actor: String { "api-key:\(keyID)" }
}
