import Foundation
import GRDB
import SealboxBase

/// The durable, hash-chained effect log (DESIGN.md, "Effect log").
///
/// Writes go through a group-commit writer (`GroupCommitWriter`): an async append returns only
/// after the transaction holding its record committed with synchronous=FULL in WAL mode, i.e.
/// after the WAL was fsync'd. Reads use a `DatabasePool`, so they never wait for the writer.
///
/// Several processes may open the same file (the broker, and `sealbox log approve|deny|resolve`):
/// every write transaction is `BEGIN IMMEDIATE` with a busy timeout, and reads the chain tail
/// inside it, so the chain stays one chain.
public final class Ledger: Sendable {
    public struct Configuration: Sendable {
        /// Most ops written in one transaction.
        public var maxBatch: Int = 256
        /// Most ops waiting for the writer; further callers suspend until there is room.
        public var queueLimit: Int = 4096
        /// How long a write waits for another connection's (or process's) transaction, in seconds.
        public var busyTimeout: TimeInterval = 5

        public init(maxBatch: Int = 256, queueLimit: Int = 4096, busyTimeout: TimeInterval = 5) {
            self.maxBatch = maxBatch
            self.queueLimit = queueLimit
            self.busyTimeout = busyTimeout
        }
    }

    /// Absolute path of the SQLite file.
    public let path: String
    let pool: DatabasePool
    private let writer: GroupCommitWriter

    /// Opens or creates the ledger at `path`. A missing parent directory is created with mode 0700,
    /// a new file with mode 0600.
    public convenience init(path: String) throws(LedgerError) {
        try self.init(path: path, configuration: Configuration())
    }

    public init(path: String, configuration: Configuration) throws(LedgerError) {
        let absolute = try Self.prepareFile(path)
        var config = GRDB.Configuration()
        config.label = "sealbox.ledger"
        config.busyMode = .timeout(configuration.busyTimeout)
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
        self.writer = GroupCommitWriter(
            pool: pool, maxBatch: max(1, configuration.maxBatch), queueLimit: max(1, configuration.queueLimit),
            apply: { db, op, tail, now in try LedgerApply.apply(SQLiteEffectLogTransaction(db: db), op, tail: &tail, now: now) })
    }

    deinit {
        writer.close()
    }

    // MARK: - Writes (group-committed)

    public func appendIntent(_ input: IntentInput, state: CallState) async throws(LedgerError) -> EffectRecord {
        guard state == .pending || state == .awaitingApproval else {
            throw LedgerError(.invalidInput, "an intent starts pending or awaiting_approval, not \(state.rawValue)")
        }
        guard !input.tool.isEmpty else { throw LedgerError(.invalidInput, "an intent needs a tool name") }
        try Self.checkText([
            ("run_id", input.runID), ("session_id", input.sessionID), ("tool", input.tool),
            ("idempotency_key", input.idempotencyKey), ("target", input.target), ("args_digest", input.argsDigest),
            ("token_id", input.tokenID),
        ])
        return try await submit(.intent(input, state)).records[0]
    }

    public func appendCompletion(_ input: CompletionInput) async throws(LedgerError) -> EffectRecord {
        var input = input
        guard input.status == "ok" || input.status == "tool_failed" else {
            throw LedgerError(.invalidInput, "completion status must be \"ok\" or \"tool_failed\", not \"\(input.status)\"")
        }
        guard input.durationMs.isFinite, input.durationMs >= 0 else {
            throw LedgerError(.invalidInput, "duration_ms must be a finite number >= 0, not \(input.durationMs)")
        }
        // -0.0 and 0.0 hash differently but SQLite may hand back either: store one.
        if input.durationMs == 0 { input.durationMs = 0 }
        try Self.checkText([
            ("status", input.status), ("response", input.response), ("response_digest", input.responseDigest),
            ("resource_version", input.resourceVersion),
        ])
        if let response = input.response {
            guard (try? JSONReader.parse(Array(response.utf8))) != nil else {
                throw LedgerError(.invalidInput, "completion response of seq \(input.intentSeq) is not JSON text")
            }
        }
        return try await submit(.completion(input)).records[0]
    }

    public func approve(intentSeq: Int64, actor: String) async throws(LedgerError) -> EffectRecord {
        try Self.checkActor(actor)
        return try await submit(.approve(intentSeq: intentSeq, actor: actor)).records[0]
    }

    public func deny(intentSeq: Int64, actor: String, note: String?) async throws(LedgerError) -> EffectRecord {
        try Self.checkActor(actor)
        try Self.checkText([("note", note)])
        return try await submit(.deny(intentSeq: intentSeq, actor: actor, note: note)).records[0]
    }

    public func resolve(intentSeq: Int64, happened: Bool, actor: String, note: String?) async throws(LedgerError) -> EffectRecord {
        try Self.checkActor(actor)
        try Self.checkText([("note", note)])
        return try await submit(.resolve(intentSeq: intentSeq, happened: happened, actor: actor, note: note)).records[0]
    }

    /// Every `pending` intent (no completion: its broker stopped while executing it) becomes
    /// `in_doubt` when its effect class is irreversible, else `interrupted`, whichever broker
    /// wrote it. Only right when no broker is live on this log: a starting broker uses
    /// `recoverAbandonedWork`, which moves only the calls of brokers that are gone.
    /// One transaction; returns the calls it moved, in seq order.
    public func markInterrupted(actor: String) async throws(LedgerError) -> [CallSummary] {
        try Self.checkActor(actor)
        return try await submit(.markInterrupted(actor: actor)).calls
    }

    public func recordRevocation(tokenID: String?, runID: String?, reason: String) async throws(LedgerError) -> EffectRecord {
        guard (tokenID.map { !$0.isEmpty } ?? false) || (runID.map { !$0.isEmpty } ?? false) else {
            throw LedgerError(.invalidInput, "a revocation names a token id or a run id")
        }
        try Self.checkText([("token_id", tokenID), ("run_id", runID), ("reason", reason)])
        return try await submit(.revocation(tokenID: tokenID, runID: runID, reason: reason)).records[0]
    }

    func submit(_ op: LedgerOp) async throws(LedgerError) -> OpOutcome {
        try await writer.submit(op).get()
    }

    // MARK: - Reads (DatabasePool readers: never wait for the writer)

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

    /// The newest intent under (session, tool, idempotency key).
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

    /// The intent and every record referring to it, in seq order.
    public func records(forIntent intentSeq: Int64) throws(LedgerError) -> [EffectRecord] {
        try read { db in
            try Row.fetchAll(
                db, sql: RowReader.recordSelect + " WHERE seq = ? OR intent_seq = ? ORDER BY seq",
                arguments: [intentSeq, intentSeq]
            ).map { try RowReader.record($0) }
        }
    }

    /// Records with seq > `afterSeq`, in seq order, at most `limit` (clamped to 1...10000).
    public func records(afterSeq: Int64 = 0, limit: Int = 100) throws(LedgerError) -> [EffectRecord] {
        let limit = min(max(limit, 1), ListFilter.maximumLimit)
        return try read { db in
            try Row.fetchAll(
                db, sql: RowReader.recordSelect + " WHERE seq > ? ORDER BY seq LIMIT ?", arguments: [afterSeq, limit]
            ).map { try RowReader.record($0) }
        }
    }

    /// Calls matching every non-nil field of `filter`, in intent-seq order.
    public func list(_ filter: ListFilter) throws(LedgerError) -> [CallSummary] {
        var conditions: [String] = []
        var arguments: [(any DatabaseValueConvertible)?] = []
        if let v = filter.sessionID { conditions.append("session_id = ?"); arguments.append(v) }
        if let v = filter.runID { conditions.append("run_id = ?"); arguments.append(v) }
        if let v = filter.tool { conditions.append("tool = ?"); arguments.append(v) }
        if let v = filter.state { conditions.append("state = ?"); arguments.append(v.rawValue) }
        if let v = filter.afterSeq { conditions.append("intent_seq > ?"); arguments.append(v) }
        let limit = min(max(filter.limit, 1), ListFilter.maximumLimit)
        arguments.append(limit)
        let whereClause = conditions.isEmpty ? "" : " WHERE " + conditions.joined(separator: " AND ")
        let sql = "SELECT * FROM calls" + whereClause + " ORDER BY intent_seq LIMIT ?"
        return try read { db in
            try SQLiteEffectLogTransaction.fetchCalls(db, sql: sql, arguments: StatementArguments(arguments))
        }
    }

    /// Walks the whole chain in one read snapshot: seqs 1, 2, 3… without gaps, each prev_hash equal
    /// to the previous record's hash (64 zeros for seq 1), each hash equal to the SHA-256 of the
    /// record's canonical encoding (`EffectHash`). Stops at the first bad record.
    ///
    /// Cannot see records cut off the END of the chain (nothing refers to the last record); the
    /// `calls` table, which is not chained, may point at them, and a copy of the last hash kept
    /// elsewhere (a checkpoint) pins it.
    public func verify() throws(LedgerError) -> VerifyReport {
        try read { db in
            let cursor = try Row.fetchCursor(db, sql: RowReader.recordSelect + " ORDER BY seq")
            var expected: Int64 = 1
            var prevHash = EffectHash.genesisPrevHash
            var checked = 0
            func bad(_ seq: Int64, _ reason: String) -> VerifyReport {
                VerifyReport(ok: false, checked: checked, firstBadSeq: seq, reason: reason)
            }
            while let row = try cursor.next() {
                let seqValue: DatabaseValue = row["seq"] ?? .null
                guard case .int64(let seq) = seqValue.storage else {
                    return bad(expected, "seq \(expected): unreadable seq column")
                }
                if seq != expected {
                    if expected == 1 { return bad(1, "gap before seq \(seq): the chain does not start at seq 1") }
                    let missing = seq - 1 == expected ? "seq \(expected) is missing" : "seqs \(expected)…\(seq - 1) are missing"
                    return bad(expected, "gap after seq \(expected - 1): \(missing)")
                }
                let record: EffectRecord
                do {
                    record = try RowReader.record(row)
                } catch {
                    return bad(seq, "unreadable record: \(Self.describe(error))")
                }
                if record.prevHash != prevHash {
                    return bad(seq, seq == 1 ? "prev_hash of seq 1 is not 64 zeros" : "prev_hash does not match seq \(seq - 1)")
                }
                if EffectHash.compute(record) != record.hash {
                    return bad(seq, "hash mismatch")
                }
                checked += 1
                prevHash = record.hash
                expected = seq + 1
            }
            return VerifyReport(ok: true, checked: checked, firstBadSeq: nil, reason: nil)
        }
    }

    // MARK: - Introspection

    /// Group-commit counters of this instance.
    public var writerStats: WriterStats { writer.stats }

    /// Write transactions committed by this instance (tests assert that appends were batched).
    public var commitCount: Int { writer.stats.commits }

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

    /// The newest record a run wrote (its calls' completions and intents), or nil.
    public func lastSeq(runID: String) throws(LedgerError) -> Int64? {
        try read { db in
            try Int64.fetchOne(db, sql: "SELECT MAX(COALESCE(completion_seq, intent_seq)) FROM calls WHERE run_id = ?", arguments: [runID])
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

    static func nowMs() -> Int64 {
        Int64((Date().timeIntervalSince1970 * 1000).rounded(.down))
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

    /// SQLite hands text back only up to a NUL (GRDB reads it as a C string), so a NUL would make
    /// a record that can never verify. Refuse it up front.
    static func checkText(_ fields: [(String, String?)]) throws(LedgerError) {
        for (name, value) in fields where value?.utf8.contains(0) == true {
            throw LedgerError(.invalidInput, "\(name) contains a NUL character")
        }
    }

    static func checkActor(_ actor: String) throws(LedgerError) {
        guard !actor.isEmpty else { throw LedgerError(.invalidInput, "actor is empty (say who decided: \"operator:NAME\" or \"broker\")") }
        try checkText([("actor", actor)])
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
