import Foundation
import SealboxBase
import SealboxLedger

/// The one place sealbox opens its durable stores. Commands, the server, MCP, the broker and the
/// runtime ask here and get the stores as their protocols: the effect log as a `Ledger` over an
/// `EffectLogStore`, the checkpoint store as `any CheckpointStore` (its `blobs`, `any BlobStore`,
/// beside it). Which engine backs a file is decided here and nowhere else; on one machine each
/// store is an SQLite file of the state directory (`StateLayout`: effects.db, checkpoints.db
/// and blobs/).
///
/// A file named explicitly (`--ledger FILE`, `--checkpoints FILE`, a broker config's `ledger:`)
/// is opened here too, through the `file:` openers.
public struct StateStores: Sendable, Equatable {
    /// The effect log's file: the layout's effects.db unless another was named.
    public let effectLogFile: String
    /// The checkpoint store's file: the layout's checkpoints.db unless another was named.
    public let checkpointsFile: String

    /// The stores of `layout`; `effectLogFile` / `checkpointsFile`, when given, name other files.
    public init(layout: StateLayout, effectLogFile: String? = nil, checkpointsFile: String? = nil) {
        self.effectLogFile = effectLogFile ?? layout.ledgerPath
        self.checkpointsFile = checkpointsFile ?? layout.checkpointsPath
    }

    /// The effect log, created when missing.
    public func effectLog(configuration: Ledger.Configuration = Ledger.Configuration()) throws(LedgerError) -> Ledger {
        try Self.effectLog(file: effectLogFile, configuration: configuration)
    }

    /// The effect log, or nil while there is none (no tool was ever called): reading never
    /// creates one.
    public func existingEffectLog() throws(LedgerError) -> Ledger? {
        try Self.existingEffectLog(file: effectLogFile)
    }

    /// The checkpoint store and its blobs, created when missing.
    public func checkpoints() throws(CheckpointError) -> any CheckpointStore {
        try Self.checkpoints(file: checkpointsFile)
    }

    /// The checkpoint store, or nil while there is none (no session was ever created).
    public func existingCheckpoints() throws(CheckpointError) -> (any CheckpointStore)? {
        try Self.existingCheckpoints(file: checkpointsFile)
    }

    // MARK: - One store by its file

    /// The effect log at `file`, created when missing (a missing parent directory too, 0700).
    public static func effectLog(file: String, configuration: Ledger.Configuration = Ledger.Configuration()) throws(LedgerError) -> Ledger {
        Ledger(store: try SQLiteEffectLogStore(path: file, busyTimeout: configuration.busyTimeout), configuration: configuration)
    }

    /// The effect log at `file`, or nil while no file is there.
    public static func existingEffectLog(file: String) throws(LedgerError) -> Ledger? {
        guard FileManager.default.fileExists(atPath: file) else { return nil }
        return try effectLog(file: file)
    }

    /// The checkpoint store at `file` (blobs/ beside it), created when missing.
    public static func checkpoints(file: String) throws(CheckpointError) -> any CheckpointStore {
        try SQLiteCheckpointStore(path: file)
    }

    /// The checkpoint store at `file`, or nil while no file is there.
    public static func existingCheckpoints(file: String) throws(CheckpointError) -> (any CheckpointStore)? {
        guard FileManager.default.fileExists(atPath: file) else { return nil }
        return try checkpoints(file: file)
    }
}
