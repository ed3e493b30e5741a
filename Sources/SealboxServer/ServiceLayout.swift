import Crypto
import Foundation
import Glibc

/// Where `sealbox serve` (and `sealbox keys`, `sealbox mcp`) keep their state. One directory
/// holds everything, so an operator backs up, moves or wipes one thing:
///   keys.db          API keys (hashed) and which tenant owns which session
///   effects.db       the broker's effect log (SQLite, WAL, fsync'd)
///   checkpoints.db   sealed steps; blobs/ beside it holds workspace file contents
///   broker.log       what the broker process says
///   api-key          the operator key made at first start (mode 0600), when auth is on
public struct ServiceLayout: Sendable {
    public let stateDirectory: String

    public init(stateDirectory: String) {
        self.stateDirectory = stateDirectory
    }

    /// /var/lib/sealbox as root; $XDG_STATE_HOME/sealbox or ~/.local/state/sealbox otherwise.
    public static var defaultStateDirectory: String {
        if geteuid() == 0 { return "/var/lib/sealbox" }
        let env = ProcessInfo.processInfo.environment
        if let xdg = env["XDG_STATE_HOME"], xdg.hasPrefix("/") { return xdg + "/sealbox" }
        return (env["HOME"] ?? NSHomeDirectory()) + "/.local/state/sealbox"
    }

    public var keysPath: String { stateDirectory + "/keys.db" }
    public var ledgerPath: String { stateDirectory + "/effects.db" }
    public var checkpointsPath: String { stateDirectory + "/checkpoints.db" }
    /// The broker's sockets live outside the state directory: jails must be able to reach
    /// their run socket (the directory path must be searchable by the jail's uid), while the
    /// state directory stays 0700 because the effect log and the keys are in it. One per state
    /// directory, so two services on one machine never share sockets.
    public var brokerStateDirectory: String {
        let base = geteuid() == 0 ? "/run/sealbox" : "/tmp/sealbox-\(getuid())"
        let digest = SHA256.hash(data: Data(stateDirectory.utf8)).prefix(8).map { String(format: "%02x", $0) }.joined()
        return base + "/serve-" + digest
    }
    public var bootstrapKeyPath: String { stateDirectory + "/api-key" }
    /// Large finished results of GET /v1/runs/{id}; emptied at every start.
    public var resultsDirectory: String { stateDirectory + "/results" }
}
