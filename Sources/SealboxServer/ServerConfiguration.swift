import SealboxBase
import SealboxJail

/// What an operator sets for `sealbox serve`: where to listen, how much runs at once, how much
/// may wait, and the most any request may ask for.
public struct ServerConfiguration: Sendable {
    public var host: String
    /// Everything the service keeps: keys, effect log, checkpoints, the broker's state.
    public var layout: StateLayout
    public var port: Int
    /// Runs executing at once; more wait in the queue.
    public var maxConcurrentRuns: Int
    /// Runs waiting for a slot; beyond that a request gets 429 with Retry-After.
    public var maxQueuedRuns: Int
    /// One tenant's share: runs executing at once (nil: all of `maxConcurrentRuns`).
    public var maxConcurrentRunsPerTenant: Int?
    /// One tenant's share of the queue (nil: all of `maxQueuedRuns`).
    public var maxQueuedRunsPerTenant: Int?
    /// Largest request body accepted (413 beyond).
    public var maxBodyBytes: Int
    /// What GET /v1/runs/{id} keeps: at most so many results and so many bytes, in memory,
    /// on disk (STATE/results/) and per tenant; the oldest are forgotten first.
    public var results: RunStore.Limits
    /// The most a request may ask for; a request asking for more gets 400 naming the field.
    public var maxLimits: Limits
    /// What a request that names no limit gets.
    public var defaultLimits: Limits
    /// On SIGTERM: how long runs executing may take to finish before their jails are killed.
    public var shutdownGrace: Duration = .seconds(30)
    /// Every request but GET /healthz and GET /openapi.json needs an API key (keys.db in
    /// `layout`). false only for `sealbox serve --no-auth`: every request then acts as tenant
    /// `default`, as an operator.
    public var authRequired = true
    /// Connection caps and timeouts (ConnectionGuard).
    public var connections = ConnectionLimits()
    /// The seccomp profiles a key without its own grant may name (`serve --profiles`).
    public var profiles: ProfileGrant = .serverDefault
    /// Live sandboxes: how many, for how long.
    public var sandboxes = SandboxLimits()

    public init(
        host: String = "127.0.0.1", port: Int = 8080, layout: StateLayout = StateLayout(stateDirectory: StateLayout.defaultStateDirectory),
        maxConcurrentRuns: Int = 2, maxQueuedRuns: Int = 64, maxBodyBytes: Int = 8 << 20, results: RunStore.Limits = RunStore.Limits(),
        maxLimits: Limits = LimitTable.defaultMaxima,
        defaultLimits: Limits = Limits()
    ) {
        self.host = host
        self.layout = layout
        self.port = port
        self.maxConcurrentRuns = maxConcurrentRuns
        self.maxQueuedRuns = maxQueuedRuns
        self.maxBodyBytes = maxBodyBytes
        self.results = results
        self.maxLimits = maxLimits
        self.defaultLimits = defaultLimits
    }
}

/// What an operator allows of live sandboxes (`POST /v1/sandboxes`).
public struct SandboxLimits: Sendable, Equatable {
    /// Live at once on this server; past it, 429.
    public var maxLive: Int = 32
    /// Live at once for one tenant; past it, 429.
    public var maxLivePerTenant: Int = 8
    /// Ended this long after nothing ran in it and nothing was read or written (a request
    /// may ask for another, up to `maxIdleTimeoutMs`).
    public var defaultIdleTimeoutMs: Int64 = 300_000
    public var maxIdleTimeoutMs: Int64 = 3_600_000
    /// Ended this long after it was made, busy or not.
    public var maxLifetimeMs: Int64 = 86_400_000
    /// Commands running at once in one sandbox (its code contexts included); past it, 429.
    public var maxCommandsPerSandbox: Int = 16
    /// Code contexts kept at once in one sandbox; past it, 429.
    public var maxContextsPerSandbox: Int = 8
    /// Ended sandboxes still answered (with why they ended), newest first.
    public var endedKept: Int = 256
    /// Hibernated sandboxes kept on disk at once, on the server and per tenant; past it, 429.
    public var maxHibernated: Int = 256
    public var maxHibernatedPerTenant: Int = 32

    public init() {}
}
