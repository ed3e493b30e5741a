import Foundation
import Glibc
import SealboxBase
import HTTPTypes
import Hummingbird
import HummingbirdCore
import Logging
import Synchronization
import NIOCore
import SealboxAccess
import ServiceLifecycle
import SealboxJail
import SealboxBroker
import SealboxSQLite
import SealboxLedger
import SealboxRuntime

/// The HTTP API of `sealbox serve`:
///   GET  /healthz                   liveness, load and the cgroup driver
///   POST /v1/runs                   run in a fresh jail (one-shot, or a session step); 201 with
///                                   the `sealbox run --json` object, or its output as it comes
///                                   (Accept: application/x-ndjson or text/event-stream;
///                                   RunStreaming.swift)
///   GET  /v1/runs/{id}              a finished run's result (RunStore: bounded in count and bytes)
///   GET  /v1/runs?state=running     the runs executing now; DELETE /v1/runs/{id} cancels one (RunningRuns)
///   /v1/sandboxes…                  live sandboxes: commands, files, pause (Sandboxes/SandboxRoutes)
///   POST /v1/sessions               a resumable session; GET /v1/sessions/{id} its sealed steps
///   GET  /v1/sessions/{id}/facts    what is true, what authority remains, what is unsafe
///   POST /v1/sessions/{id}/fork     branch at a sealed step
///   GET  /v1/effects…               the effect log; resolve/approve/deny with an operator key
///                                   (EffectRoutes)
///   GET  /v1/profiles               the seccomp profiles a run may name (ProfileRoutes)
///   GET  /metrics                   Prometheus text: runs by status, spawn/queue/wall histograms,
///                                   load, effects by class and state (operator key)
///   GET  /openapi.json              the OpenAPI document
///   POST/GET/DELETE /mcp            MCP over Streamable HTTP, when `sealbox serve` mounts it
///                                   (SealboxMCP's MCPHTTPEndpoint, through `mounting`)
/// Every route but GET /healthz and GET /openapi.json needs `Authorization: Bearer <key>`
/// (AuthMiddleware, AccessPolicy). A key's tenant sees its own runs, sessions and effects only
/// (SessionTenancy).
public struct SealboxAPI: Sendable {
    public let configuration: ServerConfiguration
    public let executor: Executor
    /// Every run's way from admission to result, shared with MCP at /mcp.
    public let runs: RunService
    public var admission: RunAdmission { runs.admission }
    public let store: RunStore
    public let metrics: ServerMetrics
    /// Sessions and sealed steps, at `configuration.layout.checkpointsPath`.
    public let checkpoints: any CheckpointStore
    /// The service's broker (its control socket, once running); a server without one answers
    /// a run that asks for tools with 400, one whose broker is starting with 503.
    public let broker: BrokerSlot
    /// The jails of this server's runs, killed when a shutdown's grace period is over.
    public var liveJails: LiveJails { runs.liveJails }
    /// API keys and which tenant owns which session.
    public let access: AccessControl
    /// The effect log the broker writes, for /v1/effects and the effects metrics.
    public let effectLog: EffectLogHandle
    /// Open connections, against `configuration.connections`.
    public let connections: ConnectionRegistry
    /// Live sandboxes (SandboxRoutes); the reaper ending idle ones runs with the server.
    public let sandboxes: SandboxRegistry
    /// Runs executing now, for `GET /v1/runs?state=running` and `DELETE /v1/runs/{id}`.
    public let running = RunningRuns()
    /// When a write to the state directory last failed for want of space (/healthz).
    let storageFullAt = StorageAlarm()
    /// GET /openapi.json: docs/openapi.json with this server's limits (`OpenAPIDocument`),
    /// made once.
    let openAPI: Result<Data, APIError>

    public init(configuration: ServerConfiguration, executor: Executor, access: any AccessStore,
                brokerControlSocket: String? = nil) throws(ServiceStartError) {
        try self.init(configuration: configuration, executor: executor, access: access,
                      broker: BrokerSlot(brokerControlSocket.map { .external($0) } ?? .none))
    }

    /// `access`: the store of API keys and session owners (`SQLiteAccessStore.open(layout:)`
    /// for the state directory). `metrics`: `sealbox serve` passes the one whose registry it
    /// bootstrapped swift-metrics with; by default a registry of this server's own.
    public init(configuration: ServerConfiguration, executor: Executor, access: any AccessStore, broker: BrokerSlot,
                metrics: ServerMetrics = ServerMetrics()) throws(ServiceStartError) {
        self.configuration = configuration
        self.executor = executor
        self.broker = broker
        do {
            checkpoints = try StateStores(layout: configuration.layout).checkpoints()
        } catch {
            throw ServiceStartError("cannot open the checkpoint store: \(error.message)")
        }
        self.access = AccessControl(store: access)
        effectLog = EffectLogHandle(path: configuration.layout.ledgerPath)
        runs = RunService(
            admission: RunAdmission(maxRunning: configuration.maxConcurrentRuns, maxQueued: configuration.maxQueuedRuns,
                                    maxRunningPerTenant: configuration.maxConcurrentRunsPerTenant, maxQueuedPerTenant: configuration.maxQueuedRunsPerTenant),
            pipeline: RunPipeline(checkpointsPath: configuration.layout.checkpointsPath,
                                  dataDirectory: executor.configuration.dataDirectory) { executor },
            profilesDirectory: executor.profilesDirectory, broker: .service(broker))
        store = RunStore(limits: configuration.results, directory: configuration.layout.resultsDirectory)
        self.metrics = metrics
        connections = ConnectionRegistry(limits: configuration.connections)
        do {
            sandboxes = SandboxRegistry(limits: configuration.sandboxes,
                                        hibernation: try HibernatedSandboxes(directory: configuration.layout.hibernatedDirectory,
                                                                             maximum: configuration.sandboxes.maxHibernated,
                                                                             maximumPerTenant: configuration.sandboxes.maxHibernatedPerTenant))
        } catch {
            throw ServiceStartError("cannot open the hibernated sandboxes' directory \(configuration.layout.hibernatedDirectory): \(error)")
        }
        openAPI = Self.openAPI(dataDirectory: executor.configuration.dataDirectory, configuration: configuration)
    }

    static func openAPI(dataDirectory: String, configuration: ServerConfiguration) -> Result<Data, APIError> {
        guard let document = FileManager.default.contents(atPath: dataDirectory + "/docs/openapi.json") else {
            return .failure(APIError(.notFound, "not_found", "this installation has no docs/openapi.json"))
        }
        let limits = LimitSchema.request(defaults: configuration.defaultLimits, maxima: configuration.maxLimits,
                                         description: OpenAPIDocument.servedLimitsNote)
        do {
            return .success(try OpenAPIDocument.serving(document, limits: limits))
        } catch {
            return .failure(APIError(.internalServerError, "internal", "\(error)"))
        }
    }

    /// Routes served beside the API's own, behind the same key check (MCP at /mcp, mounted
    /// by `sealbox serve` from the SealboxMCP target, which this one cannot import).
    public typealias Mount = @Sendable (Router<SealboxRequestContext>) -> Void

    public func router(mounting mount: Mount? = nil) -> Router<SealboxRequestContext> {
        let router = Router(context: SealboxRequestContext.self)
        // First: middleware wraps only the routes registered after it.
        // Outermost: a span per request, the child of the request's `traceparent` when it has a
        // well-formed one (a malformed one is ignored); runs are traced under it. A no-op
        // unless `sealbox serve` bootstrapped tracing (TracingExport).
        router.add(middleware: TracingMiddleware())
        // Outside auth, so refused requests are logged too.
        router.add(middleware: RequestLogMiddleware())
        // Per-route counts and latencies, into `metrics.registry` when serve bootstrapped
        // swift-metrics with it (a no-op otherwise, as in tests that build several servers).
        router.add(middleware: MetricsMiddleware())
        // Without keys, the address is all that keeps a web page out (DNS rebinding).
        if !configuration.authRequired { router.add(middleware: NoAuthHostGuard(listenHost: configuration.host)) }
        router.add(middleware: AuthMiddleware(keys: access.keys, required: configuration.authRequired))
        router.get("healthz") { _, _ in try await self.health() }
        router.post("v1/runs") { request, context in
            try await self.createRun(request, context.requireIdentity(), connection: context.connection, logger: context.logger)
        }
        router.get("v1/runs/:id") { _, context in try self.getRun(context.parameters.require("id"), context.requireIdentity()) }
        router.get("v1/runs") { request, context in try self.listRuns(request, context.requireIdentity()) }
        router.delete("v1/runs/:id") { _, context in try self.cancelRun(context.parameters.require("id"), context.requireIdentity()) }
        router.get("metrics") { _, _ in await self.renderMetrics() }
        router.get("v1/effects") { request, context in try self.listEffects(request, context) }
        router.get("v1/effects/:seq") { _, context in try self.getEffect(context.parameters.require("seq"), context) }
        router.post("v1/effects/:seq/resolve") { request, context in try await self.decideEffect(.resolve, context.parameters.require("seq"), request, context) }
        router.post("v1/effects/:seq/approve") { request, context in try await self.decideEffect(.approve, context.parameters.require("seq"), request, context) }
        router.post("v1/effects/:seq/deny") { request, context in try await self.decideEffect(.deny, context.parameters.require("seq"), request, context) }
        router.get("v1/profiles") { _, context in try self.listProfiles(context.requireIdentity()) }
        router.get("openapi.json") { _, _ in try self.openAPIDocument() }
        addSessionRoutes(to: router)
        addSandboxRoutes(to: router)
        mount?(router)
        return router
    }

    /// `logger`: the server's and Hummingbird's logs, request and run lines included.
    /// `onListening` runs once the port is bound (`serve` starts its broker there, so a
    /// server that cannot bind its port never starts one).
    public func application(logger: Logger = Logger(label: "sealbox"), mounting mount: Mount? = nil,
                            onListening: @escaping @Sendable () async -> Void = {}) -> some ApplicationProtocol {
        let registry = connections
        let server = HTTPServerBuilder.http1(configuration: .init(additionalChannelHandlers: [ConnectionGuardHandler(registry: registry)]))
        return Application(router: router(mounting: mount), server: server,
                           configuration: .init(address: .hostname(configuration.host, port: configuration.port), serverName: "sealbox"),
                           onServerRunning: { _ in
                               logListening(logger)
                               await onListening()
                           }, logger: logger)
    }

    /// Serves until SIGTERM or SIGINT, then shuts down gracefully (see `drain`).
    /// `onListening`: as for `application`; it may end the service early with `stop`.
    /// `services`: run beside the server in its group and stopped after it (the trace
    /// exporter, which then flushes the spans of the last requests).
    public func run(logger: Logger = Logger(label: "sealbox"), mounting mount: Mount? = nil, services: [any Service] = [],
                    onListening: @escaping @Sendable (_ stop: @escaping @Sendable (String) async -> Void) async -> Void = { _ in }) async throws {
        let box = Mutex<ServiceGroup?>(nil)
        let stop: @Sendable (String) async -> Void = { reason in
            await self.drain(reason: reason, logger: logger)
            await box.withLock { $0 }?.triggerGracefulShutdown()
        }
        let app = application(logger: logger, mounting: mount) { await onListening(stop) }
        // A group stops its services in reverse order: the server first, then `services`.
        let group = ServiceGroup(configuration: .init(services: services + [app], logger: logger))
        box.withLock { $0 = group }
        let signals = ShutdownSignals { reason in
            Task { await stop(reason) }
        }
        defer { signals.cancel() }
        do {
            try await group.run()
        } catch let error as IOError where error.errnoCode == EADDRINUSE || error.errnoCode == EACCES || error.errnoCode == EADDRNOTAVAIL {
            let why = error.errnoCode == EADDRINUSE ? "the address is already in use (another server listens there)"
                : error.errnoCode == EACCES ? "permission denied" : "no such address on this machine"
            throw ServiceStartError("cannot listen on \(configuration.host):\(configuration.port): \(why)")
        }
        logger.info("stopped", metadata: ["address": .string("http://\(configuration.host):\(configuration.port)")])
    }

    /// The first half of a graceful shutdown, before the HTTP server stops: admit no new run
    /// (503 with Retry-After; queued runs are refused, they never started), give the runs
    /// executing up to `configuration.shutdownGrace` to finish, then kill the jails still
    /// running. Each killed run still answers its caller (status signaled, `error` saying
    /// the service shut down) and closes its broker grant; its step stays unsealed, so
    /// running the step again carries on. Returns how many jails were killed.
    @discardableResult
    public func drain(reason: String, logger: Logger? = nil) async -> Int {
        let load = await admission.load
        logger?.notice("shutting down", metadata: [
            "reason": .string(reason), "running": .stringConvertible(load.running), "queued_refused": .stringConvertible(load.queued),
            "grace_s": .stringConvertible(Double(configuration.shutdownGrace.components.seconds)),
        ])
        await admission.close()
        // Live sandboxes end at once: their processes are killed, nobody waits on them.
        sandboxes.shutdown(reason: "the server shut down (\(reason))")
        let deadline = ContinuousClock.now + configuration.shutdownGrace
        while await admission.load.running > 0, ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(20))
        }
        var killed = 0
        if await admission.load.running > 0 {
            killed = liveJails.killAll(reason: "killed: the service shut down (\(reason)) before the run finished, after a grace period of \(configuration.shutdownGrace)")
            logger?.notice("killed runs still executing after the grace period", metadata: ["killed": .stringConvertible(killed)])
        }
        // The killed runs tear down, answer their callers and release their slots.
        let answered = ContinuousClock.now + .seconds(30)
        while await admission.load.running > 0, ContinuousClock.now < answered {
            try? await Task.sleep(for: .milliseconds(20))
        }
        return killed
    }

    func logListening(_ logger: Logger) {
        logger.info("listening", metadata: [
            "address": .string("http://\(configuration.host):\(configuration.port)"),
            "max_concurrent_runs": .stringConvertible(admission.maxRunning), "max_queued_runs": .stringConvertible(admission.maxQueued),
            "cgroup": .string(executor.cgroupDriver.version.rawValue), "state_dir": .string(configuration.layout.stateDirectory),
            "auth": .stringConvertible(configuration.authRequired),
        ])
        if !configuration.authRequired {
            logger.warning("--no-auth: anyone who can reach http://\(configuration.host):\(configuration.port) acts as an operator of tenant \"default\" (runs code, approves and resolves effects)")
        }
    }

    // MARK: handlers

    /// 200 `ok`, or 503 `degraded` when the broker is unreachable or failed, or the state
    /// directory has no room (less than `minimumFreeBytes`, or a write failed for want of
    /// space in the last 5 s). Open to anyone: it names no path and no tenant.
    func health() async throws -> Response {
        let load = await admission.load
        let brokerHealth = broker.health
        let storage = storageHealth()
        let degraded = brokerHealth == "unreachable" || brokerHealth == "failed" || storage != "ok"
        return try Self.json(degraded ? .serviceUnavailable : .ok, Health(
            status: degraded ? "degraded" : "ok", running: load.running, queued: load.queued, maxConcurrentRuns: admission.maxRunning,
            maxQueuedRuns: admission.maxQueued, cgroup: executor.cgroupDriver.version.rawValue, broker: brokerHealth, storage: storage,
            connections: connections.stats.open))
    }

    static let minimumFreeBytes: UInt64 = 16 << 20

    /// `ok` or `full`.
    func storageHealth() -> String {
        if let at = storageFullAt.last, ContinuousClock.now - at < .seconds(5) { return "full" }
        var fs = statvfs()
        guard statvfs(configuration.layout.stateDirectory, &fs) == 0 else { return "ok" }
        return UInt64(fs.f_bavail) * UInt64(fs.f_frsize) < Self.minimumFreeBytes ? "full" : "ok"
    }

    /// Remembers that a write failed for want of space (a 507 was answered).
    func noteStorageFull() {
        storageFullAt.ring()
    }

    func createRun(_ request: Request, _ identity: APIIdentity, connection: (any Channel)? = nil, logger: Logger) async throws -> Response {
        var request = request
        do {
            if let format = RunStreamFormat(accept: request.headers[.accept]) {
                return try await streamRun(&request, identity, format: format, logger: logger)
            }
            return try await admitAndRun(&request, identity, connection: connection, logger: logger)
        } catch {
            metrics.rejected(error.code)
            if error.code == "storage_full" { noteStorageFull() }
            throw error
        }
    }

    private func admitAndRun(_ request: inout Request, _ identity: APIIdentity, connection: (any Channel)?, logger: Logger) async throws(APIError) -> Response {
        let run = try await readRun(&request)
        var whenGone: (@Sendable (_ abandon: @escaping @Sendable () -> Void) -> Void)?
        if let connection {
            whenGone = { [connections] abandon in connections.whenGone(connection, abandon) }
        }
        let (result, encoded) = try await self.run(run, for: identity, whenGone: whenGone, logger: logger).get()
        // The bytes the store kept: encoded once, the same as GET /v1/runs/{id} answers.
        var response = Response(status: .created, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: encoded)))
        response.headers[.location] = "/v1/runs/\(result.id)"
        return response
    }

    /// docs/openapi.json of the data directory, with this server's limits: the document kept
    /// in the repository is the one served (a test checks that it describes every route).
    func openAPIDocument() throws -> Response {
        let data = try openAPI.get()
        return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }

    func renderMetrics() async -> Response {
        let load = await admission.load
        var brokerCounters: UsageBook.Counters?
        if let socket = broker.controlSocket {
            brokerCounters = try? await BrokerControlClient.ask(ControlRequest(op: "status"), socket: socket, timeoutSeconds: 1).limits
        }
        metrics.update(broker: brokerCounters)
        metrics.update(effects: try? effectLog.open()?.callCounts() ?? [])
        metrics.update(pool: executor.pool?.stats, size: executor.pool?.configuration.size ?? 0)
        metrics.update(results: store.stats, limits: store.limits)
        let text = metrics.render(running: load.running, queued: load.queued, maxRunning: admission.maxRunning, maxQueued: admission.maxQueued)
        return Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                        body: .init(byteBuffer: ByteBuffer(string: text)))
    }

    /// `GET /v1/runs?state=running`: the runs executing now that the caller may see (finished
    /// ones are read one by one with GET /v1/runs/{id}).
    func listRuns(_ request: Request, _ identity: APIIdentity) throws -> Response {
        guard request.uri.queryParameters["state"].map(String.init) ?? "running" == "running" else {
            throw APIError.badRequest("state must be running: a finished run is read with GET /v1/runs/{id}", field: "state")
        }
        struct Page: Encodable { var runs: [RunningRuns.View] }
        return try Self.json(.ok, Page(runs: running.list(visibleTo: identity)))
    }

    /// `DELETE /v1/runs/{id}`: kills a running run's jails; its caller gets its result with
    /// status `cancelled`. 202: the kill is under way; 404: no such running run (finished,
    /// unknown, or another tenant's).
    func cancelRun(_ id: String, _ identity: APIIdentity) throws -> Response {
        guard running.cancel(id, by: identity) else {
            throw APIError.notFound("no running run \(Printable.text(id, limit: 64)) (a finished run cannot be cancelled; GET /v1/runs/{id} reads it)")
        }
        struct Cancelling: Encodable { var id: String; var state = "cancelling" }
        return try Self.json(.accepted, Cancelling(id: id))
    }

    /// Another tenant's run is a 404 like a missing one: its existence is not revealed.
    func getRun(_ id: String, _ identity: APIIdentity) throws -> Response {
        guard let encoded = store.encoded(id, visibleTo: identity) else {
            throw APIError(.notFound, "not_found", "no run \(Printable.text(id, limit: 64)) (finished runs are kept while they fit: the newest \(configuration.results.count) at most, \(ByteSize.format(UInt64(configuration.results.perTenantBytes))) per tenant)")
        }
        return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: encoded)))
    }

    /// An error as a tenant may see it: the host's own paths (state and data directories,
    /// the broker's sockets) are replaced by what they are, so an answer never tells a
    /// tenant where the server keeps things. The full text is in the server's log.
    func tenantSafe(_ error: APIError) -> APIError {
        var safe = error
        let replacements = [
            (configuration.layout.stateDirectory, "<state-dir>"), (executor.configuration.dataDirectory, "<data-dir>"),
            (configuration.layout.brokerSocketsDirectory, "<broker-dir>"), ("/run/sealbox", "<run-dir>"),
        ]
        for (path, name) in replacements where path.count > 1 {
            safe.message = Self.replacingPath(path, with: name, in: safe.message)
        }
        return safe
    }

    /// Replaces `path` where it stands as a path (followed by `/`, the end, or a character
    /// that cannot continue a file name in a message), so `/srv/data` in `/srv/data/x` is
    /// replaced but `/srv/data.py` is not.
    static func replacingPath(_ path: String, with name: String, in text: String) -> String {
        var out = ""
        var rest = Substring(text)
        while let range = rest.range(of: path) {
            let next = rest[range.upperBound...].first
            let boundary = next == nil || " /:)\"',;\n".contains(next!)
            out += rest[..<range.lowerBound]
            out += boundary ? name : path
            rest = rest[range.upperBound...]
        }
        return out + rest
    }

    struct Health: Encodable {
        var status: String
        var running: Int
        var queued: Int
        var maxConcurrentRuns: Int
        var maxQueuedRuns: Int
        var cgroup: String
        /// ok, starting, unreachable, failed, none.
        var broker: String
        /// ok, full.
        var storage: String
        var connections: Int

        enum CodingKeys: String, CodingKey {
            case status, running, queued, cgroup, broker, storage, connections
            case maxConcurrentRuns = "max_concurrent_runs"
            case maxQueuedRuns = "max_queued_runs"
        }
    }

    /// Sorted keys, unescaped slashes: the same bytes as `sealbox run --json`.
    static var encoder: JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return encoder
    }

    static func json(_ status: HTTPResponse.Status, _ value: some Encodable) throws -> Response {
        let data = try encoder.encode(value)
        return Response(status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }
}

/// When a write last failed for want of space.
final class StorageAlarm: Sendable {
    private let at = Mutex<ContinuousClock.Instant?>(nil)
    var last: ContinuousClock.Instant? { at.withLock { $0 } }
    func ring() { at.withLock { $0 = ContinuousClock.now } }
}
