import Foundation
import SealboxAccess

/// The access state of the server over one store: the API keys and the tenant directory
/// share it (keys.db, for the SQLite store every command opens with
/// `SQLiteAccessStore.open(layout:)`).
public struct AccessControl: Sendable {
    public let keys: KeyStore
    public let tenants: TenantDirectory

    public init(store: any AccessStore) {
        keys = KeyStore(store: store)
        tenants = TenantDirectory(store: store)
    }

    /// The time stamps of keys and claims: set here, above the store, so every backend keeps
    /// the same clock.
    static func nowMs() -> Int64 {
        Int64((Date().timeIntervalSince1970 * 1000).rounded(.down))
    }
}
