import SealboxBase
import ArgumentParser
import Foundation

import SealboxJail
import SealboxAccess
import SealboxMCP
import SealboxSQLite
import SealboxServer
import SealboxTracing

struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Serve the HTTP API: POST /v1/runs runs code in a fresh jail.",
        discussion: """
            Example:
              sealbox serve &
              curl -s -H "Authorization: Bearer $(cat /var/lib/sealbox/api-key)" \\
                localhost:8080/v1/runs -d '{"language":"python","code":"print(6*7)"}'

            State: --state-dir (default /var/lib/sealbox as root) holds the API keys,
            the effect log, the checkpoints of sessions and the broker's log. serve
            starts its own broker process for the tools of --tools FILE (a broker
            config; none without it), which writes the effect log.

            Routes (the full contract: GET /openapi.json, docs/openapi.json):
              POST /v1/runs                 run; with session+step, a resumable step
              GET  /v1/runs/{id}            a finished run
              POST /v1/sessions             a session; GET /v1/sessions/{id}[/facts]
              POST /v1/sessions/{id}/fork   {"at": STEP}
              GET  /v1/effects[/{seq}]      tool calls of the key's tenant
              POST /v1/effects/{seq}/resolve|approve|deny   (operator key)
              GET  /v1/profiles, /healthz, /metrics (operator key)
            Every route but /healthz and /openapi.json needs Authorization: Bearer
            KEY (`sealbox keys create`); at the first start an operator key is
            written to STATE-DIR/api-key. Runs beyond --max-concurrent wait in a
            queue of --max-queued; beyond that the answer is 429 with Retry-After.
            Limits a request asks for are capped by the --max-* flags (--max-timeout,
            --max-memory, ...; 400 naming the field); GET /openapi.json shows them.

            SIGTERM or SIGINT: no new runs (503), runs executing get --shutdown-grace
            seconds, then their jails are killed (each caller still gets a result);
            then the server and its broker stop.

            With Accept: application/x-ndjson (or text/event-stream), POST /v1/runs
            answers 200 and streams the run: started, stdout/stderr as the program
            writes, then the result.

            Logs go to stderr, one JSON object per line (ts, level, msg and fields):
            a line per request (method, path, status, duration_ms) and per finished
            run (run_id, session, step, tenant, status, exit_code, queue/setup/spawn/
            run/teardown/wall_ms).
            """)

    @Option(name: .long, help: "Address to listen on, HOST:PORT.")
    var listen: String = "127.0.0.1:8080"

    @Option(name: .customLong("state-dir"), help: ArgumentHelp(
        "Where the service keeps its API keys, effect log, checkpoints and broker state; one server per directory.", valueName: "DIR"))
    var stateDir: String = StateLayout.defaultStateDirectory

    @Option(name: .long, help: "Broker config (YAML) with the tools and secrets runs may be granted (\"tools\" in POST /v1/runs). Default: a broker with no tools.")
    var tools: String?

    @Option(name: .customLong("max-concurrent"), help: "Runs executing at once (default: the number of CPUs).")
    var maxConcurrent: Int = ProcessInfo.processInfo.activeProcessorCount

    @Option(name: .customLong("max-queued"), help: "Runs waiting for a slot before requests get 429.")
    var maxQueued: Int = 64

    @Option(name: .customLong("max-concurrent-per-tenant"), help: "Runs of one tenant executing at once (default: all of --max-concurrent). When a slot frees, the tenant with the fewest runs executing goes next either way.")
    var maxConcurrentPerTenant: Int?

    @Option(name: .customLong("max-queued-per-tenant"), help: "Runs of one tenant waiting at once (default: half of --max-queued), so one tenant cannot fill the queue.")
    var maxQueuedPerTenant: Int?

    @Option(name: .customLong("max-body"), help: "Largest request body, e.g. 8M.")
    var maxBody: String = "8M"

    @OptionGroup var limits: OperatorLimitOptions

    @OptionGroup var profilePolicy: ProfilePolicyOptions

    @OptionGroup(title: "Live sandboxes") var sandboxOptions: SandboxOptions

    @Option(name: .customLong("results-memory"), help: "Finished results kept in memory for GET /v1/runs/{id}, in bytes (oldest forgotten first).")
    var resultsMemory: String = "64M"

    @Option(name: .customLong("results-disk"), help: "Finished results kept on disk in STATE-DIR/results, in bytes; they outlive a restart (oldest forgotten first).")
    var resultsDisk: String = "1G"

    @Option(name: .customLong("results-retention"), help: "Finished results are forgotten this long after they finished, e.g. 24h, 7d.")
    var resultsRetention: String = "24h"

    @Option(name: .customLong("results-per-tenant"), help: "Bytes of kept results one tenant may hold; past it, its own oldest go first.")
    var resultsPerTenant: String = "256M"

    @Option(name: .customLong("results-max"), help: "Finished results kept at most, whatever their size.")
    var resultsMax: Int = 10_000

    @Option(name: .customLong("max-connections"), help: "Connections open at once (at most half the descriptor limit). Past it, the oldest idle connection is closed to make room; with none idle, the new one is.")
    var maxConnections: Int = 4096

    @Option(name: .customLong("max-connections-per-peer"), help: "Connections open at once from one address; past it, that address's oldest idle connection is closed first.")
    var maxConnectionsPerPeer: Int = 256

    @Option(name: .customLong("header-timeout"), help: "Seconds a connection has to send a request's head (a request's body gets at least 60 s more).")
    var headerTimeout: Double = 10

    @Option(name: .customLong("idle-timeout"), help: "Seconds a keep-alive connection may wait for its next request.")
    var idleTimeout: Double = 60

    @Option(name: .customLong("log-level"), help: "Least severe log level written: trace, debug, info, notice, warning, error, critical.")
    var logLevel: String = "info"

    @Option(name: .customLong("shutdown-grace"), help: "On SIGTERM: seconds runs still executing get to finish before their jails are killed (new runs get 503 at once).")
    var shutdownGrace: Double = 30

    @Option(name: .long, help: "Keep this many jails prepared ahead for runs with the default profile and limits and no tools (a warm pool: each jail serves one run, then a fresh one is prepared). 0: none.")
    var pool: Int = 0

    @Option(name: .customLong("pool-refill-delay"), help: "Refill the pool only after no jail was taken for this many ms, so a burst's runs do not compete with the refill for CPU.")
    var poolRefillDelay: Int = 0

    @Flag(name: .customLong("no-auth"), help: "Accept requests without an API key, each as an operator of tenant \"default\". Only for a server nobody else can reach. Requests must then name the server by IP address, localhost or the --listen host, and come from no other web origin (against DNS rebinding).")
    var noAuth = false

    func run() async throws {
        var configuration = ServerConfiguration()
        let parts = listen.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 2, !parts[0].isEmpty, let port = Int(parts[1]), (1...65535).contains(port) else {
            throw CLIFailure(message: "--listen expects HOST:PORT, e.g. 127.0.0.1:8080, got \"\(listen)\"")
        }
        configuration.host = String(parts[0])
        configuration.port = port
        guard (1...1024).contains(maxConcurrent) else { throw CLIFailure(message: "--max-concurrent must be between 1 and 1024") }
        guard (0...JailPool.maximumSize).contains(pool) else { throw CLIFailure(message: "--pool must be between 0 and \(JailPool.maximumSize)") }
        guard (0...100_000).contains(maxQueued) else { throw CLIFailure(message: "--max-queued must be between 0 and 100000") }
        guard shutdownGrace.isFinite, (0...3600).contains(shutdownGrace) else {
            throw CLIFailure(message: "--shutdown-grace must be between 0 and 3600 seconds")
        }
        configuration.shutdownGrace = .milliseconds(Int64((shutdownGrace * 1000).rounded()))
        configuration.maxConcurrentRuns = maxConcurrent
        configuration.maxQueuedRuns = maxQueued
        if let maxConcurrentPerTenant, !(1...maxConcurrent).contains(maxConcurrentPerTenant) {
            throw CLIFailure(message: "--max-concurrent-per-tenant must be between 1 and --max-concurrent (\(maxConcurrent))")
        }
        if let maxQueuedPerTenant, !(0...maxQueued).contains(maxQueuedPerTenant) {
            throw CLIFailure(message: "--max-queued-per-tenant must be between 0 and --max-queued (\(maxQueued))")
        }
        configuration.maxConcurrentRunsPerTenant = maxConcurrentPerTenant
        configuration.maxQueuedRunsPerTenant = maxQueuedPerTenant ?? max(1, maxQueued / 2)
        guard (1...1_000_000).contains(resultsMax) else { throw CLIFailure(message: "--results-max must be between 1 and 1000000") }
        do {
            configuration.maxBodyBytes = Int(try ByteSize.parse(maxBody, flag: "--max-body"))
            configuration.results = RunStore.Limits(
                count: resultsMax, memoryBytes: Int(try ByteSize.parse(resultsMemory, flag: "--results-memory")),
                diskBytes: Int(try ByteSize.parse(resultsDisk, flag: "--results-disk")),
                perTenantBytes: Int(try ByteSize.parse(resultsPerTenant, flag: "--results-per-tenant")))
        } catch {
            throw CLIFailure(message: error.description)
        }
        configuration.results.retentionMs = try SandboxOptions.duration(resultsRetention, flag: "--results-retention", at: 1000...(365 * 86_400_000))
        configuration.maxLimits = try limits.limits()
        configuration.profiles = try profilePolicy.grant()
        configuration.sandboxes = try sandboxOptions.limits()
        guard (1...1_000_000).contains(maxConnections), (1...1_000_000).contains(maxConnectionsPerPeer) else {
            throw CLIFailure(message: "--max-connections and --max-connections-per-peer must be between 1 and 1000000")
        }
        for (flag, value) in [("--header-timeout", headerTimeout), ("--idle-timeout", idleTimeout)] where !(value.isFinite && value >= 0.1 && value <= 3600) {
            throw CLIFailure(message: "\(flag) must be between 0.1 and 3600 seconds")
        }
        let descriptors = Self.raiseDescriptorLimit()
        configuration.connections = ConnectionLimits(
            maxConnections: maxConnections, maxPerPeer: maxConnectionsPerPeer,
            headerTimeout: .milliseconds(Int64(headerTimeout * 1000)), bodyTimeout: .milliseconds(Int64(max(headerTimeout, 60) * 1000)),
            idleTimeout: .milliseconds(Int64(idleTimeout * 1000))).fitted(toDescriptorLimit: descriptors)
        guard let logger = ServerLogging.bootstrap(level: logLevel) else {
            throw CLIFailure(message: "--log-level must be one of \(ServerLogging.levelNames), got \"\(logLevel)\"")
        }
        // Once per process, before any span: OTLP export when the OTEL_* variables ask for it.
        let tracing = TracingExport.bootstrap(serviceName: "sealbox", diagnostics: logger)
        configuration.layout = StateLayout(stateDirectory: stateDir)
        configuration.authRequired = !noAuth
        // From here on every failure is a JSON log line, like everything serve writes.
        func fail(_ message: String, _ metadata: [String: String] = [:]) -> ExitCode {
            ServerLogging.error(message, to: logger, metadata: metadata)
            return ExitCode(125)
        }
        do {
            try FileManager.default.createDirectory(atPath: stateDir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        } catch {
            throw fail("cannot create the state directory: \(error.localizedDescription)", ["state_dir": stateDir])
        }
        // Before anything in the state directory is touched: one server per state directory.
        let lock: StateDirectoryLock
        do {
            lock = try StateDirectoryLock.acquire(configuration.layout)
        } catch {
            throw fail(error.description, ["state_dir": stateDir])
        }
        defer { withExtendedLifetime(lock) {} }
        let executor: Executor
        do {
            executor = try Executor(configuration: .init(dataDirectory: try DataDirectory.locate()))
        } catch {
            throw fail(error.description)
        }
        if pool > 0 {
            do {
                // The limits a request naming none gets: the defaults, lowered to the operator's maxima.
                let limits = try LimitTable.resolve(nil, defaults: configuration.defaultLimits, maxima: configuration.maxLimits)
                try executor.startPool(JailPool.Configuration(size: pool, limits: limits, refillDelayMs: poolRefillDelay))
            } catch {
                throw fail("--pool: " + error.description)
            }
        }
        // Whatever way serve ends, the pool's prepared jails go with it.
        defer { executor.stopPool() }
        let slot = BrokerSlot(.starting)
        let api: SealboxAPI
        do {
            let access: SQLiteAccessStore
            do {
                access = try SQLiteAccessStore.open(layout: configuration.layout)
            } catch {
                throw ServiceStartError("cannot open the key store: \(error.message)")
            }
            api = try SealboxAPI(configuration: configuration, executor: executor, access: access, broker: slot, metrics: .bootstrapProcessWide())
            if let path = try api.bootstrapKeyIfNeeded() {
                ServerLogging.notice("no API keys yet: made an operator key for tenant \"default\" in \(path) (mode 0600). Send it as: Authorization: Bearer $(cat \(path))",
                                     to: logger, metadata: ["key_file": path])
            }
        } catch {
            throw fail("\(error)")
        }
        let swept = api.sweepLeftovers()
        if swept.partialBlobs + swept.unownedSessions > 0 {
            ServerLogging.notice("removed what a killed server left behind", to: logger,
                                 metadata: ["partial_blobs": String(swept.partialBlobs), "unowned_sessions": String(swept.unownedSessions)])
        }
        let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        let layout = configuration.layout
        let tools = self.tools
        let brokerFailure = BrokerFailureNote()
        let outcome: Result<Void, any Error>
        do {
            // The port is bound first: a server that cannot listen never starts a broker.
            // MCP's Streamable HTTP transport at /mcp, behind the same keys as the API.
            let mcp = MCPHTTPEndpoint(api: api, logger: logger)
            try await api.run(logger: logger, mounting: { mcp.mount(on: $0) }, services: tracing.map { [$0] } ?? []) { stop in
                do {
                    let broker = try await ManagedBroker.start(executable: exe, layout: layout, toolsConfig: tools)
                    slot.set(.running(broker))
                    ServerLogging.notice("broker started", to: logger, metadata: ["pid": String(broker.processIdentifier), "tools": tools ?? "none"])
                } catch {
                    slot.set(.failed("\(error)"))
                    brokerFailure.set("\(error)")
                    await stop("the broker did not start")
                }
            }
            outcome = .success(())
        } catch {
            outcome = .failure(error)
        }
        // After the last run has closed its grant: the broker seals calls in flight and stops.
        if case .running(let broker) = slot.current { await broker.stopped() }
        if let failure = brokerFailure.message { throw fail("the broker did not start: \(failure)") }
        if case .failure(let error) = outcome { throw fail("\(error)", ["address": listen]) }
    }

    /// The descriptor limit, raised to its hard limit: idle connections and jails both hold
    /// descriptors. Returns the soft limit in force.
    static func raiseDescriptorLimit() -> Int {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return 1024 }
        if limit.rlim_cur < limit.rlim_max {
            var raised = limit
            raised.rlim_cur = limit.rlim_max
            if setrlimit(Int32(RLIMIT_NOFILE.rawValue), &raised) == 0 { limit = raised }
        }
        return Int(min(limit.rlim_cur, 1 << 30))
    }
}

/// Why the service's broker did not start, when it did not.
final class BrokerFailureNote: @unchecked Sendable {  // guarded by `lock`
    private let lock = NSLock()
    private var text: String?
    var message: String? { lock.withLock { text } }
    func set(_ message: String) { lock.withLock { text = message } }
}
