import SealboxAccess

/// Names that go into keys.db and into URLs, log lines and metrics labels, so they are short
/// and plain.
enum AccessNames {
    static let maxTenantLength = 64
    static let maxKeyNameLength = 128
    static let maxSessionIDBytes = 256

    /// A tenant: 1-64 of [A-Za-z0-9_-].
    static func checkTenant(_ tenant: String) throws(AccessError) {
        guard !tenant.isEmpty, tenant.utf8.count <= maxTenantLength,
              tenant.utf8.allSatisfy({ isAlphanumeric($0) || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: "-") })
        else {
            throw AccessError(.invalidInput, "a tenant is 1-\(maxTenantLength) characters of A-Z, a-z, 0-9, _ and -, not \"\(tenant.prefix(80))\"")
        }
    }

    /// A key's label, for people: up to 128 bytes, no control characters (it is printed in tables).
    static func checkKeyName(_ name: String) throws(AccessError) {
        guard name.utf8.count <= maxKeyNameLength else {
            throw AccessError(.invalidInput, "a key name is at most \(maxKeyNameLength) bytes")
        }
        guard !name.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) else {
            throw AccessError(.invalidInput, "a key name may not contain control characters")
        }
    }

    /// A session id as the effect log and the checkpoint store keep it: 1-256 bytes, no NUL
    /// (SQLite would cut the text there).
    static func checkSessionID(_ session: String) throws(AccessError) {
        guard !session.isEmpty, session.utf8.count <= maxSessionIDBytes, !session.utf8.contains(0) else {
            throw AccessError(.invalidInput, "a session id is 1-\(maxSessionIDBytes) bytes without NUL")
        }
    }

    private static func isAlphanumeric(_ byte: UInt8) -> Bool {
        (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte) || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte)
            || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte)
    }
}
