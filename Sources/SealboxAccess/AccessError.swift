/// The one error type of access state (API keys and session owners), of the stores and of the
/// key store and tenant directory above them: a stable code plus a message meant for an
/// operator or an API client.
public struct AccessError: Error, CustomStringConvertible, Sendable, Equatable {
    public enum Code: String, Sendable {
        /// A tenant name, key name, session id or key id that is not acceptable.
        case invalidInput = "invalid_input"
        /// No key with that id.
        case notFound = "not_found"
        /// The session belongs to another tenant.
        case ownedByAnotherTenant = "owned_by_another_tenant"
        /// The store holds the most keys it takes.
        case limit
        /// The path cannot hold the key store, or the bootstrap key file cannot be written.
        case badPath = "bad_path"
        /// The file exists but is not a sealbox key store.
        case notAKeyStore = "not_a_key_store"
        /// SQLite failed (I/O, disk full, lock timeout, …).
        case storage
    }

    public let code: Code
    public let message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { message }
}
