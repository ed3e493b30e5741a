import SealboxJail

/// What a run is given to reach the broker: its socket for this run only and its capability
/// token, and the client library (sealbox.py, sealbox-call) when this install has one. The
/// jail sees it as its door (`JailDoor`) at fixed paths, with the token in SEALBOX_TOKEN and
/// the socket's jail path in SEALBOX_BROKER: the names the client library reads.
public struct BrokerGrant: Sendable, Equatable {
    /// The broker's socket for this run only (mounted at /run/sealbox/broker.sock).
    public var socketPath: String
    /// The run's capability token (SEALBOX_TOKEN).
    public var token: String
    /// Directory with sealbox.py and sealbox-call (client/ in the checkout), copied in.
    public var clientDirectory: String?

    public static let jailSocketPath = "/run/sealbox/broker.sock"
    public static let jailClientPath = "/run/sealbox/client"

    public init(socketPath: String, token: String, clientDirectory: String? = nil) {
        self.socketPath = socketPath
        self.token = token
        self.clientDirectory = clientDirectory
    }

    public var door: JailDoor {
        JailDoor(socketPath: socketPath, jailSocketPath: Self.jailSocketPath,
                 environment: ["SEALBOX_TOKEN": token, "SEALBOX_BROKER": Self.jailSocketPath],
                 clientDirectory: clientDirectory, jailClientPath: Self.jailClientPath)
    }
}
