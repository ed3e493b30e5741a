import Foundation
import GRDB
import Glibc
import SealboxAccess
import SealboxBase

/// keys.db: API keys (only the SHA-256 of each secret) and which tenant owns which session.
/// `sealbox serve` reads it on every request and `sealbox keys` writes it from another process,
/// so: WAL (readers never wait for the writer), `BEGIN IMMEDIATE` writes with a busy timeout,
/// and synchronous=FULL, so a key revoked or created is on disk before the command says so.
/// Only the primitives of `AccessStore`: what a key or a tenant name may be, and when a key is
/// made or refused, is decided above it.
public final class SQLiteAccessStore: AccessStore {
    /// `PRAGMA application_id` of a sealbox key store: "SBKY".
    static let applicationID: Int32 = 0x5342_4B59

    public let path: String
    private let pool: DatabasePool

    /// The one way commands open the access store of a state directory: keys.db in it
    /// (`StateLayout.keysPath`), created with its directory when missing.
    public static func open(layout: StateLayout) throws(AccessError) -> SQLiteAccessStore {
        try SQLiteAccessStore(path: layout.keysPath)
    }

    /// Opens or creates the key store at `path`; a missing parent directory is created 0700,
    /// the file 0600.
    public init(path: String) throws(AccessError) {
        let absolute = try Self.prepareFile(path)
        var config = Configuration()
        config.label = "sealbox.keys"
        // GRDB 7 begins write transactions IMMEDIATE on its own: they take the write lock at
        // BEGIN, so a `sealbox keys` process and the server never deadlock upgrading a lock.
        config.busyMode = .timeout(5)
        do {
            pool = try DatabasePool(path: absolute, configuration: config)
            try pool.writeWithoutTransaction { db in
                // GRDB sets synchronous=NORMAL on the pool's writer; FULL fsyncs the WAL at
                // every commit. Set after GRDB's setup, on the one connection that writes.
                try db.execute(sql: "PRAGMA synchronous = FULL")
                try Self.checkIdentity(db, path: absolute)
            }
            try Self.migrator.migrate(pool)
        } catch let error as AccessError {
            throw error
        } catch let error as DatabaseError where error.resultCode == .SQLITE_NOTADB {
            throw AccessError(.notAKeyStore, "\(absolute) is not a sealbox key store: not an SQLite database")
        } catch {
            throw AccessError(.storage, "cannot open the key store \(absolute): \(Self.describe(error))")
        }
        self.path = absolute
    }

    public var location: String { path }

    // MARK: API keys

    public func insertKey(_ key: APIKeyRecord, ifFewerThan limit: Int) throws(AccessError) -> KeyInsertion {
        try write { db in
            let count = try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM api_keys") ?? 0
            guard count < limit else { return .full(count: count) }
            guard try Int.fetchOne(db, sql: "SELECT 1 FROM api_keys WHERE id = ?", arguments: [key.info.id]) == nil else { return .idTaken }
            let info = key.info
            try db.execute(
                sql: "INSERT INTO api_keys (id, secret_sha256, tenant, name, is_operator, created_ms, revoked_ms, profiles) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                arguments: [info.id, Data(key.secretDigest), info.tenant, info.name, info.isOperator, info.createdMs, info.revokedMs, info.profiles])
            return .inserted
        }
    }

    public func key(id: String) throws(AccessError) -> APIKeyRecord? {
        try read { db in
            try Row.fetchOne(db, sql: "SELECT * FROM api_keys WHERE id = ?", arguments: [id]).map {
                APIKeyRecord(info: Self.keyInfo($0), secretDigest: Array($0["secret_sha256"] as Data))
            }
        }
    }

    public func keys(tenant: String?) throws(AccessError) -> [APIKeyInfo] {
        try read { db in
            if let tenant {
                return try Row.fetchAll(db, sql: "SELECT * FROM api_keys WHERE tenant = ? ORDER BY created_ms, id", arguments: [tenant]).map(Self.keyInfo)
            }
            return try Row.fetchAll(db, sql: "SELECT * FROM api_keys ORDER BY created_ms, id").map(Self.keyInfo)
        }
    }

    public func revokeKey(id: String, at time: Int64) throws(AccessError) -> APIKeyInfo? {
        try write { db in
            guard let before = try Row.fetchOne(db, sql: "SELECT * FROM api_keys WHERE id = ?", arguments: [id]).map(Self.keyInfo) else { return nil }
            if before.revokedMs == nil {
                try db.execute(sql: "UPDATE api_keys SET revoked_ms = ? WHERE id = ?", arguments: [time, id])
            }
            return before
        }
    }

    public func deleteKey(id: String) throws(AccessError) {
        try write { db in try db.execute(sql: "DELETE FROM api_keys WHERE id = ?", arguments: [id]) }
    }

    public func keyCount() throws(AccessError) -> Int {
        try read { db in try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM api_keys") ?? 0 }
    }

    private static func keyInfo(_ row: Row) -> APIKeyInfo {
        APIKeyInfo(id: row["id"], tenant: row["tenant"], name: row["name"], isOperator: row["is_operator"],
                   createdMs: row["created_ms"], revokedMs: row["revoked_ms"], profiles: row["profiles"])
    }

    // MARK: Session owners

    public func claimSession(_ session: String, tenant: String, at time: Int64) throws(AccessError) -> String? {
        try write { db in
            if let owner = try String.fetchOne(db, sql: "SELECT tenant FROM session_owners WHERE session_id = ?", arguments: [session]) {
                return owner
            }
            try db.execute(sql: "INSERT INTO session_owners (session_id, tenant, created_ms) VALUES (?, ?, ?)", arguments: [session, tenant, time])
            return nil
        }
    }

    public func owner(of session: String) throws(AccessError) -> String? {
        try read { db in
            try String.fetchOne(db, sql: "SELECT tenant FROM session_owners WHERE session_id = ?", arguments: [session])
        }
    }

    /// Most ids bound in one query: well under SQLite's bound-parameter limit (32766).
    static let maxBoundIDs = 1000

    public func owners(of sessions: [String]) throws(AccessError) -> [String: String] {
        guard !sessions.isEmpty else { return [:] }
        return try read { db in
            var owners: [String: String] = [:]
            for start in stride(from: 0, to: sessions.count, by: Self.maxBoundIDs) {
                let ids = Array(sessions[start..<min(start + Self.maxBoundIDs, sessions.count)])
                let marks = Array(repeating: "?", count: ids.count).joined(separator: ",")
                for row in try Row.fetchAll(db, sql: "SELECT session_id, tenant FROM session_owners WHERE session_id IN (\(marks))", arguments: StatementArguments(ids)) {
                    owners[row["session_id"]] = row["tenant"]
                }
            }
            return owners
        }
    }

    public func sessions(of tenant: String, after: String?, limit: Int) throws(AccessError) -> [SessionOwnership] {
        try read { db in
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
                arguments: [tenant, afterMs, afterMs, afterID, max(limit, 0)]
            ).map { SessionOwnership(sessionID: $0["session_id"], tenant: $0["tenant"], createdMs: $0["created_ms"]) }
        }
    }

    // MARK: The database

    private func read<T>(_ body: (Database) throws -> T) throws(AccessError) -> T {
        do {
            return try pool.read(body)
        } catch let error as AccessError {
            throw error
        } catch {
            throw AccessError(.storage, "cannot read the key store \(path): \(Self.describe(error))")
        }
    }

    /// One `BEGIN IMMEDIATE` transaction.
    private func write<T>(_ body: (Database) throws -> T) throws(AccessError) -> T {
        do {
            return try pool.write(body)
        } catch let error as AccessError {
            throw error
        } catch {
            throw AccessError(.storage, "cannot write the key store \(path): \(Self.describe(error))")
        }
    }

    /// `PRAGMA journal_mode` and `PRAGMA synchronous` of the writing connection (for tests).
    public func durabilitySettings() throws(AccessError) -> (journalMode: String, synchronous: Int) {
        do {
            return try pool.writeWithoutTransaction { db in
                (try String.fetchOne(db, sql: "PRAGMA journal_mode") ?? "", try Int.fetchOne(db, sql: "PRAGMA synchronous") ?? -1)
            }
        } catch {
            throw AccessError(.storage, "cannot read the key store settings: \(Self.describe(error))")
        }
    }

    /// A migration, once released, is never edited; changes go into a new one.
    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1-api-keys-session-owners") { db in
            try db.execute(sql: """
                CREATE TABLE api_keys (
                    id TEXT PRIMARY KEY,
                    secret_sha256 BLOB NOT NULL CHECK (length(secret_sha256) = 32),
                    tenant TEXT NOT NULL,
                    name TEXT NOT NULL,
                    is_operator INTEGER NOT NULL,
                    created_ms INTEGER NOT NULL,
                    revoked_ms INTEGER
                );
                CREATE INDEX api_keys_by_tenant ON api_keys(tenant, created_ms);
                CREATE TABLE session_owners (
                    session_id TEXT PRIMARY KEY,
                    tenant TEXT NOT NULL,
                    created_ms INTEGER NOT NULL
                );
                CREATE INDEX session_owners_by_tenant ON session_owners(tenant, created_ms, session_id);
                PRAGMA application_id = \(applicationID);
                """)
        }
        // Which seccomp profiles a key may name: NULL for the server's default policy, "*" for
        // every profile of the catalog, else a comma-separated list of names.
        migrator.registerMigration("v2-key-profiles") { db in
            try db.execute(sql: "ALTER TABLE api_keys ADD COLUMN profiles TEXT")
        }
        return migrator
    }

    static func describe(_ error: any Error) -> String {
        if let error = error as? DatabaseError {
            return "\(error.message ?? "SQLite error") (SQLite code \(error.extendedResultCode.rawValue))"
        }
        return "\(error)"
    }

    /// Someone else's SQLite file is refused rather than given our tables.
    private static func checkIdentity(_ db: Database, path: String) throws {
        let applicationID = try Int32.fetchOne(db, sql: "PRAGMA application_id") ?? 0
        if applicationID == Self.applicationID { return }
        if applicationID != 0 {
            throw AccessError(.notAKeyStore, "\(path) is not a sealbox key store (SQLite application_id \(applicationID))")
        }
        let tables = try String.fetchAll(db, sql: "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")
        // GRDB creates its bookkeeping table before the first migration's transaction: a store
        // whose creation was interrupted has only that, and is ours to finish.
        guard tables.isEmpty || tables == ["grdb_migrations"] else {
            throw AccessError(.notAKeyStore, "\(path) is an SQLite database but not a sealbox key store (tables: \(tables.prefix(5).joined(separator: ", ")))")
        }
    }

    /// Creates a missing parent directory (0700) and the file itself (0600: hashes only, but
    /// also who owns which session). SQLite would create it 0644.
    private static func prepareFile(_ path: String) throws(AccessError) -> String {
        guard !path.isEmpty, !path.utf8.contains(0) else { throw AccessError(.badPath, "the key store path is empty or contains NUL") }
        let url = URL(fileURLWithPath: path).standardizedFileURL
        let absolute = url.path
        let parent = url.deletingLastPathComponent().path
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: parent, isDirectory: &isDirectory) {
            guard isDirectory.boolValue else { throw AccessError(.badPath, "cannot create the key store \(absolute): \(parent) is not a directory") }
        } else {
            do {
                try FileManager.default.createDirectory(atPath: parent, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
            } catch {
                throw AccessError(.badPath, "cannot create directory \(parent) for the key store: \(error.localizedDescription)")
            }
        }
        let fd = Glibc.open(absolute, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        if fd >= 0 {
            close(fd)
        } else if errno != EEXIST {
            throw AccessError(.badPath, "cannot create the key store \(absolute): \(String(cString: strerror(errno)))")
        }
        if FileManager.default.fileExists(atPath: absolute, isDirectory: &isDirectory), isDirectory.boolValue {
            throw AccessError(.badPath, "\(absolute) is a directory, not a key store")
        }
        return absolute
    }
}
