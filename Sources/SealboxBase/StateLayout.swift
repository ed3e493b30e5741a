import Crypto
import Foundation
import Glibc

/// Every file and socket path sealbox keeps, for every command, in one place.
///
/// One state directory holds everything durable, so an operator backs up, moves or wipes one
/// thing, and every command that reads it (`serve`, `mcp`, `keys`, `run --step`, `log`,
/// `session`) finds the same files from the same `--state-dir`:
///   keys.db          API keys (hashed) and which tenant owns which session
///   effects.db       the broker's effect log (SQLite, WAL, fsync'd)
///   checkpoints.db   sealed steps; blobs/ beside it holds workspace file contents
///   broker.log       what the broker process of `serve`/`mcp` says
///   api-key          the operator key made at first start (mode 0600), when auth is on
///   results/         large finished results of GET /v1/runs/{id}; emptied at every start
///
/// Sockets and jail roots live in the runtime directory instead (/run/sealbox as root): jails
/// must reach their run socket by path, while the state directory stays 0700 because the
/// effect log and the keys are in it.
///
/// Before this layout, `sealbox log`, `session` and `run --step` defaulted to `ledger.sqlite`
/// and `checkpoints.sqlite` in the same directory, while `serve` and `mcp` used `effects.db`
/// and `checkpoints.db`: `legacyProblem()` finds such a directory and says how to move it.
public struct StateLayout: Sendable, Equatable {
    public let stateDirectory: String

    /// A relative directory is taken from the working directory now: brokers and jails are
    /// started from other working directories, and the socket directory is named by its path.
    public init(stateDirectory: String) {
        self.stateDirectory = stateDirectory.hasPrefix("/")
            ? stateDirectory : FileManager.default.currentDirectoryPath + "/" + stateDirectory
    }

    /// The layout of `--state-dir` when given, of the default state directory otherwise.
    public init(stateDirectory: String?) {
        self.init(stateDirectory: stateDirectory ?? Self.defaultStateDirectory)
    }

    /// /var/lib/sealbox as root; $XDG_STATE_HOME/sealbox or ~/.local/state/sealbox otherwise.
    public static var defaultStateDirectory: String {
        if geteuid() == 0 { return "/var/lib/sealbox" }
        let env = ProcessInfo.processInfo.environment
        if let xdg = env["XDG_STATE_HOME"], xdg.hasPrefix("/") { return xdg + "/sealbox" }
        return (env["HOME"] ?? NSHomeDirectory()) + "/.local/state/sealbox"
    }

    public static var `default`: StateLayout { StateLayout(stateDirectory: defaultStateDirectory) }

    public var keysPath: String { stateDirectory + "/keys.db" }
    public var ledgerPath: String { stateDirectory + "/effects.db" }
    public var checkpointsPath: String { stateDirectory + "/checkpoints.db" }
    public var brokerLogPath: String { stateDirectory + "/broker.log" }
    /// The no-tools config `serve` writes at every start when no --tools is given.
    public var defaultBrokerConfigPath: String { stateDirectory + "/broker-default.yaml" }
    public var bootstrapKeyPath: String { stateDirectory + "/api-key" }
    public var resultsDirectory: String { stateDirectory + "/results" }
    /// Hibernated sandboxes' records (their files' contents are in the checkpoint store's blobs).
    public var hibernatedDirectory: String { stateDirectory + "/hibernated" }
    /// Held by a running `sealbox serve`, so two never share one state directory.
    public var serveLockPath: String { stateDirectory + "/serve.lock" }

    // MARK: - Runtime directory: sockets and jail roots, gone at reboot

    /// /run/sealbox as root; /tmp/sealbox-<uid> otherwise. Searchable by the jail's uid.
    public static var runtimeDirectory: String {
        geteuid() == 0 ? "/run/sealbox" : "/tmp/sealbox-\(getuid())"
    }

    /// Sockets of a standalone `sealbox broker` started without --state-dir.
    public static var standaloneBrokerDirectory: String { runtimeDirectory + "/broker" }

    /// Sockets of the brokers of this state directory's `serve`/`mcp`: one directory per state
    /// directory, so two services on one machine never share sockets.
    public var brokerSocketsDirectory: String {
        // The first 8 bytes of the digest, as 16 hex digits.
        Self.runtimeDirectory + "/serve-" + SHA256.hex(text: stateDirectory).prefix(16)
    }

    // MARK: - Files of earlier versions

    /// The effect log and checkpoint store under the names `sealbox log`, `session` and
    /// `run --step` gave them before this layout.
    public var legacyLedgerPath: String { stateDirectory + "/ledger.sqlite" }
    public var legacyCheckpointsPath: String { stateDirectory + "/checkpoints.sqlite" }

    /// A state directory that holds a legacy file and not its new name would look empty (and a
    /// new effect log would start beside the old one, forgetting what already happened), so
    /// commands refuse it with this message until the files are moved. Nil when nothing is in
    /// the way. When both names exist they are two separate logs: the new one is used, and the
    /// old one stays readable with --ledger/--checkpoints.
    public func legacyProblem() -> String? {
        let fm = FileManager.default
        var moves: [String] = []
        for (old, new) in [(legacyLedgerPath, ledgerPath), (legacyCheckpointsPath, checkpointsPath)]
        where fm.fileExists(atPath: old) && !fm.fileExists(atPath: new) {
            let oldName = (old as NSString).lastPathComponent, newName = (new as NSString).lastPathComponent
            moves.append("mv \(oldName) \(newName); for s in -wal -shm; do if [ -e \(oldName)$s ]; then mv \(oldName)$s \(newName)$s; fi; done")
        }
        guard !moves.isEmpty else { return nil }
        return "the state directory \(stateDirectory) holds files under the names of an earlier sealbox "
            + "(ledger.sqlite/checkpoints.sqlite; now effects.db/checkpoints.db). Stop every sealbox using it, then in that "
            + "directory run: " + moves.joined(separator: "; ")
    }
}
