import SealboxBase
import SealboxJail
import SealboxServer

/// What an operator sets for `sealbox mcp`: where state lives, how tools reach a broker, how
/// much runs at once, and the most a tool call may ask for.
public struct MCPConfiguration: Sendable {
    /// Checkpoints and the effect log: the same files `sealbox serve` uses.
    public var layout: StateLayout
    /// Broker config: each run_code that grants tools starts a broker for that run.
    public var brokerConfigPath: String?
    /// A running broker's control socket, instead of one broker per run.
    public var brokerControlSocket: String?
    /// Runs executing at once; more wait (up to `maxInFlightRequests`).
    public var maxConcurrentRuns: Int
    /// Requests read and not yet answered; the server stops reading beyond that.
    public var maxInFlightRequests: Int
    /// Longest message line; a longer one is answered with an error and skipped.
    public var maxLineBytes: Int
    /// The most a run_code call may ask for (an error naming the field above it).
    public var maxLimits: Limits
    /// What a run_code call that names no limit gets.
    public var defaultLimits: Limits
    /// The seccomp profiles a run_code call may name (`sealbox mcp --profiles`).
    public var profiles: ProfileGrant = .serverDefault
    /// The profile catalog (the data directory's profiles/).
    public var profilesDirectory: String = ""

    public init(
        layout: StateLayout = StateLayout(stateDirectory: StateLayout.defaultStateDirectory),
        brokerConfigPath: String? = nil, brokerControlSocket: String? = nil,
        maxConcurrentRuns: Int = 2, maxInFlightRequests: Int = 32, maxLineBytes: Int = 16 << 20,
        maxLimits: Limits = LimitTable.defaultMaxima,
        defaultLimits: Limits = Limits()
    ) {
        self.layout = layout
        self.brokerConfigPath = brokerConfigPath
        self.brokerControlSocket = brokerControlSocket
        self.maxConcurrentRuns = maxConcurrentRuns
        self.maxInFlightRequests = maxInFlightRequests
        self.maxLineBytes = maxLineBytes
        self.maxLimits = maxLimits
        self.defaultLimits = defaultLimits
    }

    var hasBroker: Bool { brokerConfigPath != nil || brokerControlSocket != nil }
}
