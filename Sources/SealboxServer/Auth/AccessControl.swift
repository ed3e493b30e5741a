/// keys.db opened once: the API keys and the tenant directory share its connection pool.
public struct AccessControl: Sendable {
    public let keys: KeyStore
    public let tenants: TenantDirectory

    /// Opens or creates keys.db at `path` (normally `StateLayout.keysPath`); a missing parent
    /// directory is created 0700, the file 0600.
    public init(path: String) throws(AccessError) {
        let database = try AccessDatabase(path: path)
        keys = KeyStore(database: database)
        tenants = TenantDirectory(database: database)
    }
}
