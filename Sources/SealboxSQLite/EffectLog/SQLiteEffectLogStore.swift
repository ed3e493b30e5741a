import Foundation
import GRDB
import SealboxBase
import SealboxLedger

/// The one-machine effect log store: one SQLite file (WAL, synchronous=FULL), GRDB.
///
/// Writes: `write` runs in one `BEGIN IMMEDIATE` transaction with a busy timeout (the chain-tail
/// lock of docs/storage.md: no other connection or process appends between reading the tail
/// and COMMIT), and COMMIT returns after the WAL was fsync'd. Reads use a `DatabasePool`, so
/// they never wait for the writer.
public final class SQLiteEffectLogStore: EffectLogStore {
    /// Absolute path of the SQLite file.
    public let path: String
    let pool: DatabasePool

    public var location: String { path }

    /// Lock files beside the log (`FileBrokerLeases`): one machine, as the file itself.
    public var leases: any BrokerLeases { FileBrokerLeases(ledgerPath: path) }

    /// Opens or creates the store at `path`. A missing parent directory is created with mode
    /// 0700, a new file with mode 0600. `busyTimeout`: how long a write waits for another
    /// connection's (or process's) transaction, in seconds.
    public init(path: String, busyTimeout: TimeInterval = 5) throws(LedgerError) {
        let absolute = try Self.prepareFile(path)
        var config = GRDB.Configuration()
        config.label = "sealbox.ledger"
        config.busyMode = .timeout(busyTimeout)
        config.foreignKeysEnabled = true
        let pool: DatabasePool
        do {
            pool = try DatabasePool(path: absolute, configuration: config)
        } catch let error as DatabaseError where error.resultCode == .SQLITE_NOTADB {
            throw LedgerError(.notALedger, "\(absolute) is not a sealbox ledger: not an SQLite database")
        } catch {
            throw LedgerError(.storage, "cannot open the effect log \(absolute): \(Self.describe(error))")
        }
        do {
            try pool.writeWithoutTransaction { db in
                // GRDB's DatabasePool sets synchronous=NORMAL on its writer (enough for WAL
                // consistency, not for durability: a power cut may lose the last commits). The
                // effect log promises fsync before the caller sees an answer, hence FULL, set here
                // after GRDB's own setup, on the one connection that writes.
                try db.execute(sql: "PRAGMA synchronous = FULL")
                try Self.checkIdentity(db, path: absolute)
            }
            let migrator = LedgerSchema.migrator
            let superseded = try pool.read { try migrator.hasBeenSuperseded($0) }
            if superseded {
                throw LedgerError(.notALedger, "\(absolute) was written by a newer sealbox (unknown schema migrations)")
            }
            try migrator.migrate(pool)
        } catch let error as LedgerError {
            throw error
        } catch let error as DatabaseError where error.resultCode == .SQLITE_NOTADB {
            throw LedgerError(.notALedger, "\(absolute) is not a sealbox ledger: not an SQLite database")
        } catch {
            throw LedgerError(.storage, "cannot open the effect log \(absolute): \(Self.describe(error))")
        }
        self.path = absolute
        self.pool = pool
    }

    // MARK: - The write transaction

    public func write<T>(_ body: (any EffectLogTransaction) throws -> T) throws(LedgerError) -> T {
        do {
            return try pool.writeWithoutTransaction { db -> T in
                var result: T?
                try db.inTransaction(.immediate) {
                    result = try body(SQLiteEffectLogTransaction(db: db))
                    return .commit
                }
                guard let result else { throw LedgerError(.storage, "the write transaction returned nothing") }
                return result
            }
        } catch let error as LedgerError {
            throw error
        } catch {
            throw LedgerError(Self.storageCode(error), Self.describe(error))
        }
    }

    // MARK: - Reads

    public func revocations() throws(LedgerError) -> (tokenIDs: Set<String>, runIDs: Set<String>) {
        try read { db in
            var tokens = Set<String>()
            var runs = Set<String>()
            for row in try Row.fetchAll(db, sql: "SELECT token_id, run_id FROM revocations") {
                if let token = try RowReader.text(row, "token_id") { tokens.insert(token) }
                if let run = try RowReader.text(row, "run_id") { runs.insert(run) }
            }
            return (tokens, runs)
        }
    }

    public func latestCall(sessionID: String, tool: String, idempotencyKey: String) throws(LedgerError) -> CallSummary? {
        try read { db in
            try SQLiteEffectLogTransaction.fetchCalls(
                db,
                sql: """
                    SELECT * FROM calls WHERE session_id = ? AND tool = ? AND idempotency_key = ?
                    ORDER BY intent_seq DESC LIMIT 1
                    """,
                arguments: [sessionID, tool, idempotencyKey]
            ).first
        }
    }

    public func call(intentSeq: Int64) throws(LedgerError) -> CallSummary? {
        try read { db in
            try SQLiteEffectLogTransaction.fetchCalls(db, sql: "SELECT * FROM calls WHERE intent_seq = ?", arguments: [intentSeq]).first
        }
    }

    public func record(seq: Int64) throws(LedgerError) -> EffectRecord? {
        try read { db in
            try Row.fetchOne(db, sql: RowReader.recordSelect + " WHERE seq = ?", arguments: [seq]).map { row throws(LedgerError) in
                try RowReader.record(row)
            }
        }
    }

    public func records(forIntent intentSeq: Int64) throws(LedgerError) -> [EffectRecord] {
        try read { db in
            try Row.fetchAll(
                db, sql: RowReader.recordSelect + " WHERE seq = ? OR intent_seq = ? ORDER BY seq",
                arguments: [intentSeq, intentSeq]
            ).map { try RowReader.record($0) }
        }
    }

    public func records(afterSeq: Int64, limit: Int) throws(LedgerError) -> [EffectRecord] {
        try read { db in
            try Row.fetchAll(
                db, sql: RowReader.recordSelect + " WHERE seq > ? ORDER BY seq LIMIT ?", arguments: [afterSeq, limit]
            ).map { try RowReader.record($0) }
        }
    }

    public func list(_ filter: ListFilter) throws(LedgerError) -> [CallSummary] {
        var conditions: [String] = []
        var arguments: [(any DatabaseValueConvertible)?] = []
        if let v = filter.sessionID { conditions.append("session_id = ?"); arguments.append(v) }
        if let v = filter.runID { conditions.append("run_id = ?"); arguments.append(v) }
        if let v = filter.tool { conditions.append("tool = ?"); arguments.append(v) }
        if let v = filter.state { conditions.append("state = ?"); arguments.append(v.rawValue) }
        if let v = filter.afterSeq { conditions.append("intent_seq > ?"); arguments.append(v) }
        arguments.append(filter.limit)
        let whereClause = conditions.isEmpty ? "" : " WHERE " + conditions.joined(separator: " AND ")
        let sql = "SELECT * FROM calls" + whereClause + " ORDER BY intent_seq LIMIT ?"
        return try read { db in
            try SQLiteEffectLogTransaction.fetchCalls(db, sql: sql, arguments: StatementArguments(arguments))
        }
    }

    public func walkChain(_ visit: (ChainRow) -> Bool) throws(LedgerError) {
        try read { db in
            let cursor = try Row.fetchCursor(db, sql: RowReader.recordSelect + " ORDER BY seq")
            while let row = try cursor.next() {
                let seqValue: DatabaseValue = row["seq"] ?? .null
                guard case .int64(let seq) = seqValue.storage else {
                    _ = visit(.unreadableSeq)
                    return
                }
                let decoded: Result<EffectRecord, LedgerError>
                do throws(LedgerError) {
                    decoded = .success(try RowReader.record(row))
                } catch {
                    decoded = .failure(error)
                }
                if !visit(.row(seq: seq, decoded)) { return }
            }
        }
    }

    public func lastSeq(runID: String) throws(LedgerError) -> Int64? {
        try read { db in
            try Int64.fetchOne(db, sql: "SELECT MAX(COALESCE(completion_seq, intent_seq)) FROM calls WHERE run_id = ?", arguments: [runID])
        }
    }

    /// Counted in one GROUP BY over the `calls` index (one row per call, a few dozen bytes each).
    public func callCounts() throws(LedgerError) -> [CallCount] {
        try read { db in
            try Row.fetchAll(
                db, sql: "SELECT effect_class, state, COUNT(*) AS n FROM calls GROUP BY effect_class, state ORDER BY effect_class, state"
            ).map { row in
                CallCount(effectClass: row["effect_class"] ?? "", state: row["state"] ?? "", count: row["n"] ?? 0)
            }
        }
    }

    public func familyRoot(of sessionID: String) throws(LedgerError) -> String? {
        try read { db in try SQLiteEffectLogTransaction(db: db).familyRoot(of: sessionID) }
    }

    public func familyMembers(root: String) throws(LedgerError) -> [String] {
        try read { db in
            try String.fetchAll(db, sql: "SELECT session_id FROM session_family WHERE root_id = ? ORDER BY rowid", arguments: [root])
        }
    }

    public func calls(familyRoot root: String, excluding sessionID: String, tool: String, idempotencyKey: String, limit: Int) throws(LedgerError) -> [CallSummary] {
        try read { db in
            try SQLiteEffectLogTransaction.fetchCalls(
                db,
                sql: """
                    SELECT * FROM calls
                    WHERE session_id IN (SELECT session_id FROM session_family WHERE root_id = ? AND session_id <> ?)
                      AND tool = ? AND idempotency_key = ?
                    ORDER BY intent_seq DESC LIMIT ?
                    """,
                arguments: [root, sessionID, tool, idempotencyKey, limit])
        }
    }

    public func calls(sessionIDs: [String], afterSeq: Int64, limit: Int) throws(LedgerError) -> [CallSummary] {
        guard !sessionIDs.isEmpty else { return [] }
        let sql = "SELECT * FROM calls WHERE session_id IN (\(Self.placeholders(sessionIDs.count))) AND intent_seq > ? ORDER BY intent_seq LIMIT ?"
        let arguments = StatementArguments(sessionIDs) + [afterSeq, limit]
        return try read { db in try SQLiteEffectLogTransaction.fetchCalls(db, sql: sql, arguments: arguments) }
    }

    public func liveGrants(sessionIDs: [String], nowMs: Int64) throws(LedgerError) -> [GrantSummary] {
        guard !sessionIDs.isEmpty else { return [] }
        let sql = SQLiteGrantRows.liveSelect + " AND g.session_id IN (\(Self.placeholders(sessionIDs.count))) ORDER BY g.record_seq"
        let arguments: StatementArguments = [nowMs] + StatementArguments(sessionIDs)
        return try read { db in try SQLiteGrantRows.fetch(db, sql: sql, arguments: arguments) }
    }

    public func worldKeySecret() throws(LedgerError) -> [UInt8] {
        let value: Data? = try read { db in try Data.fetchOne(db, sql: "SELECT value FROM ledger_secrets WHERE name = 'world_key'") }
        guard let value, value.count >= 16 else { throw LedgerError(.storage, "the effect log has no world key secret") }
        return [UInt8](value)
    }

    public func awaitingApprovals(runID: String) throws(LedgerError) -> Int {
        try read { db in
            try Int.fetchOne(db, sql: "SELECT count(*) FROM calls WHERE state = 'awaiting_approval' AND run_id = ?", arguments: [runID]) ?? 0
        }
    }

    public func awaitingApprovals(tenant: String) throws(LedgerError) -> Int {
        try read { db in
            try Int.fetchOne(db, sql: """
                SELECT count(*) FROM calls
                WHERE state = 'awaiting_approval' AND run_id IN (SELECT run_id FROM grants WHERE tenant = ?)
                """, arguments: [tenant]) ?? 0
        }
    }

    /// `PRAGMA journal_mode` and `PRAGMA synchronous` as the writing connection sees them.
    public func durabilitySettings() throws(LedgerError) -> (journalMode: String, synchronous: Int) {
        do {
            return try pool.writeWithoutTransaction { db in
                let mode = try String.fetchOne(db, sql: "PRAGMA journal_mode") ?? ""
                let sync = try Int.fetchOne(db, sql: "PRAGMA synchronous") ?? -1
                return (mode, sync)
            }
        } catch {
            throw LedgerError(.storage, "cannot read the effect log settings: \(Self.describe(error))")
        }
    }

    // MARK: - Helpers

    func read<T>(_ body: (Database) throws -> T) throws(LedgerError) -> T {
        do {
            return try pool.read(body)
        } catch let error as LedgerError {
            throw error
        } catch {
            throw LedgerError(.storage, "cannot read the effect log \(path): \(Self.describe(error))")
        }
    }

    static func placeholders(_ count: Int) -> String {
        Array(repeating: "?", count: count).joined(separator: ", ")
    }

    /// `.storageFull` when SQLite (or the file system under it) ran out of space, else `.storage`.
    static func storageCode(_ error: any Error) -> LedgerError.Code {
        if let error = error as? DatabaseError, StorageFull.isFull(error) { return .storageFull }
        return .storage
    }

    static func describe(_ error: any Error) -> String {
        if let error = error as? LedgerError { return error.message }
        if let error = error as? DatabaseError {
            return "\(error.message ?? "SQLite error") (SQLite code \(error.extendedResultCode.rawValue))"
        }
        return "\(error)"
    }

    /// Resolves `path`, creates a missing parent directory (0700) and a missing file (0600).
    private static func prepareFile(_ path: String) throws(LedgerError) -> String {
        guard !path.isEmpty else { throw LedgerError(.badPath, "the effect log path is empty") }
        guard !path.utf8.contains(0) else { throw LedgerError(.badPath, "the effect log path contains a NUL character") }
        let url = URL(fileURLWithPath: path).standardizedFileURL
        let absolute = url.path
        let parent = url.deletingLastPathComponent().path
        let fm = FileManager.default
        var isDirectory: ObjCBool = false
        if fm.fileExists(atPath: parent, isDirectory: &isDirectory) {
            guard isDirectory.boolValue else {
                throw LedgerError(.badPath, "cannot create the effect log \(absolute): \(parent) is not a directory")
            }
        } else {
            do {
                try fm.createDirectory(atPath: parent, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
            } catch {
                throw LedgerError(.badPath, "cannot create directory \(parent) for the effect log: \(error.localizedDescription)")
            }
        }
        if fm.fileExists(atPath: absolute, isDirectory: &isDirectory) {
            guard !isDirectory.boolValue else { throw LedgerError(.badPath, "\(absolute) is a directory, not an effect log") }
        } else {
            // Created here so it gets 0600 (SQLite would use 0644); the -wal and -shm files take
            // the database file's mode.
            let fd = open(absolute, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
            if fd >= 0 {
                close(fd)
            } else if errno != EEXIST {
                throw LedgerError(.badPath, "cannot create the effect log \(absolute): \(String(cString: strerror(errno)))")
            }
        }
        return absolute
    }

    /// A file with tables but without the sealbox application id is someone else's database:
    /// refuse it rather than add our tables to it.
    private static func checkIdentity(_ db: Database, path: String) throws {
        let applicationID = try Int32.fetchOne(db, sql: "PRAGMA application_id") ?? 0
        if applicationID == LedgerSchema.applicationID { return }
        if applicationID != 0 {
            throw LedgerError(.notALedger, "\(path) is not a sealbox ledger (SQLite application_id \(applicationID))")
        }
        let tables = try String.fetchAll(
            db, sql: "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")
        // A broker killed while creating the ledger can leave GRDB's bookkeeping table, created
        // on its own before the first migration's transaction, and nothing else: that file is
        // an unfinished ledger, not someone else's database (found by the kill -9 trials).
        if tables == ["grdb_migrations"], try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM grdb_migrations") == 0 { return }
        if !tables.isEmpty {
            throw LedgerError(
                .notALedger,
                "\(path) is an SQLite database but not a sealbox ledger (tables: \(tables.prefix(5).joined(separator: ", ")))")
        }
    }
}

extension Ledger {
    /// Opens or creates the SQLite effect log at `path` (`SQLiteEffectLogStore`). Callers outside
    /// this module open their stores through `StateStores`.
    public convenience init(path: String, configuration: Configuration = Configuration()) throws(LedgerError) {
        self.init(store: try SQLiteEffectLogStore(path: path, busyTimeout: configuration.busyTimeout), configuration: configuration)
    }

    /// `PRAGMA journal_mode` and `PRAGMA synchronous` of a SQLite effect log's writing connection.
    public func durabilitySettings() throws(LedgerError) -> (journalMode: String, synchronous: Int) {
        guard let sqlite = store as? SQLiteEffectLogStore else {
            throw LedgerError(.storage, "the effect log at \(path) is not a SQLite store")
        }
        return try sqlite.durabilitySettings()
    }
}
