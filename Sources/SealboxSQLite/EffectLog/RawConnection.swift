import GRDB
import SealboxLedger

/// A plain SQLite connection to a ledger file, outside the Ledger's rules: no group commit, no
/// transition checks, foreign keys off. For tests that play the tamperer or the other process
/// holding the write lock, and for forensic tooling. Never used by the ledger itself.
final class RawConnection: Sendable {
    private let queue: DatabaseQueue

    init(path: String) throws {
        var config = Configuration()
        config.foreignKeysEnabled = false
        // Lets `begin()` leave a transaction open across calls, as another process would.
        config.allowsUnsafeTransactions = true
        config.busyMode = .timeout(5)
        queue = try DatabaseQueue(path: path, configuration: config)
    }

    func execute(_ sql: String) throws {
        try queue.writeWithoutTransaction { try $0.execute(sql: sql) }
    }

    func int(_ sql: String) throws -> Int64? {
        try queue.writeWithoutTransaction { try Int64.fetchOne($0, sql: sql) }
    }

    func text(_ sql: String) throws -> String? {
        try queue.writeWithoutTransaction { try String.fetchOne($0, sql: sql) }
    }

    /// Takes the write lock (`BEGIN IMMEDIATE`) and keeps it until `rollback()`.
    func begin() throws {
        try execute("BEGIN IMMEDIATE")
    }

    func rollback() throws {
        try execute("ROLLBACK")
    }
}
