import Foundation
import Glibc

/// Where `sealbox serve` (and `sealbox keys`, `sealbox mcp`) keep their state. One directory
/// holds everything, so an operator backs up, moves or wipes one thing:
///   keys.db          API keys (hashed) and which tenant owns which session
///   effects.db       the broker's effect log (SQLite, WAL, fsync'd)
///   checkpoints.db   sealed steps; blobs/ beside it holds workspace file contents
///   broker/          the broker process's state: control socket, run sockets, its log
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
    public var brokerStateDirectory: String { stateDirectory + "/broker" }
    public var brokerControlSocket: String { brokerStateDirectory + "/control.sock" }
    public var bootstrapKeyPath: String { stateDirectory + "/api-key" }
}
