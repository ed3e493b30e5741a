import Foundation
import HTTPTypes
import Hummingbird
import SealboxJail

/// The HTTP API of `sealbox serve`. Routes so far:
///   GET  /healthz        liveness, load and the cgroup driver
///   POST /v1/runs        run once in a fresh jail; 201 with the `sealbox run --json` object
///   GET  /v1/runs/{id}   a finished run's result (the newest `retainedResults` are kept)
///   GET  /metrics        Prometheus text: runs by status, spawn/queue/wall histograms, load,
///                        effects by class and state (operator key)
///   GET  /v1/effects…    the effect log; resolve/approve/deny with an operator key (EffectRoutes)
///   GET  /v1/profiles    the seccomp profiles a run may name (ProfileRoutes)
/// Every route but GET /healthz needs `Authorization: Bearer <key>` (AuthMiddleware, AccessPolicy).
public struct SealboxAPI: Sendable {
    public let configuration: ServerConfiguration
    public let executor: Executor
    public let admission: RunAdmission
    public let store: RunStore
    public let metrics: ServerMetrics
    /// keys.db: API keys and which tenant owns which session.
    public let access: AccessControl
    public let effectLog: EffectLogHandle

    /// Opens (or creates) keys.db in the configuration's state directory.
    public init(configuration: ServerConfiguration, executor: Executor) throws(AccessError) {
        self.configuration = configuration
        self.executor = executor
        access = try AccessControl(path: configuration.layout.keysPath)
        effectLog = EffectLogHandle(path: configuration.layout.ledgerPath)
        admission = RunAdmission(maxRunning: configuration.maxConcurrentRuns, maxQueued: configuration.maxQueuedRuns)
        store = RunStore(capacity: configuration.retainedResults)
        metrics = ServerMetrics()
    }

    public func router() -> Router<SealboxRequestContext> {
        let router = Router(context: SealboxRequestContext.self)
        // First: middleware wraps only the routes registered after it.
        router.add(middleware: AuthMiddleware(keys: access.keys, required: configuration.authRequired))
        router.get("healthz") { _, _ in try await self.health() }
        router.post("v1/runs") { request, context in try await self.createRun(request, context.requireIdentity()) }
        router.get("v1/runs/:id") { _, context in try self.getRun(context.parameters.require("id"), context.requireIdentity()) }
        router.get("metrics") { _, _ in await self.renderMetrics() }
        router.get("v1/effects") { request, context in try self.listEffects(request, context) }
        router.get("v1/effects/:seq") { _, context in try self.getEffect(context.parameters.require("seq"), context) }
        router.post("v1/effects/:seq/resolve") { request, context in try await self.decideEffect(.resolve, context.parameters.require("seq"), request, context) }
        router.post("v1/effects/:seq/approve") { request, context in try await self.decideEffect(.approve, context.parameters.require("seq"), request, context) }
        router.post("v1/effects/:seq/deny") { request, context in try await self.decideEffect(.deny, context.parameters.require("seq"), request, context) }
        router.get("v1/profiles") { _, _ in try self.listProfiles() }
        return router
    }

    public func application() -> some ApplicationProtocol {
        Application(router: router(), configuration: .init(address: .hostname(configuration.host, port: configuration.port), serverName: "sealbox"))
    }

    /// Serves until SIGTERM or SIGINT (graceful shutdown through swift-service-lifecycle).
    public func run() async throws {
        try await application().runService()
    }

    // MARK: handlers

    func health() async throws -> Response {
        let load = await admission.load
        return try Self.json(.ok, Health(
            status: "ok", running: load.running, queued: load.queued, maxConcurrentRuns: admission.maxRunning,
            maxQueuedRuns: admission.maxQueued, cgroup: executor.cgroupDriver.version.rawValue))
    }

    func createRun(_ request: Request, _ identity: APIIdentity) async throws -> Response {
        var request = request
        do {
            return try await admitAndRun(&request, identity)
        } catch {
            metrics.rejected(error.code)
            throw error
        }
    }

    private func admitAndRun(_ request: inout Request, _ identity: APIIdentity) async throws(APIError) -> Response {
        let body: ByteBuffer
        do {
            body = try await request.collectBody(upTo: configuration.maxBodyBytes)
        } catch {
            throw APIError(.contentTooLarge, "payload_too_large", "the request body is larger than \(ByteSize.format(UInt64(configuration.maxBodyBytes)))")
        }
        let run = try RunRequest.parse(Data(body.readableBytesView), configuration: configuration)
        let arrived = ContinuousClock.now
        do {
            try await admission.acquire()
        } catch {
            throw APIError(.tooManyRequests, "busy", "\(error.running) runs are executing and \(error.queued) are waiting, the most this server takes; retry later", retryAfter: 1)
        }
        let waited = ContinuousClock.now - arrived
        let outcome = await execute(run)
        await admission.release()
        var result = try outcome.get()
        result.phases?.queueMs = Double(waited.components.seconds) * 1000 + Double(waited.components.attoseconds) / 1e15
        metrics.record(result)
        store.put(result, tenant: identity.tenant)
        var response: Response
        do {
            response = try Self.json(.created, result)
        } catch {
            throw APIError(.internalServerError, "internal", "cannot encode the result: \(error)")
        }
        response.headers[.location] = "/v1/runs/\(result.id)"
        return response
    }

    func renderMetrics() async -> Response {
        let load = await admission.load
        let text = metrics.render(running: load.running, queued: load.queued, maxRunning: admission.maxRunning, maxQueued: admission.maxQueued)
            + EffectMetrics.render(effectLog)
        return Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                        body: .init(byteBuffer: ByteBuffer(string: text)))
    }

    /// Another tenant's run is a 404 like a missing one: its existence is not revealed.
    func getRun(_ id: String, _ identity: APIIdentity) throws -> Response {
        guard let result = store.get(id, visibleTo: identity) else {
            throw APIError(.notFound, "not_found", "no run \(id) (finished runs are kept for the newest \(configuration.retainedResults))")
        }
        return try Self.json(.ok, result)
    }

    /// Runs the spec; stdin bytes go through a private temporary file the jail gets as an fd.
    private func execute(_ run: RunRequest) async -> Result<RunResult, APIError> {
        var spec = run.spec
        var stdinPath: String?
        if let bytes = run.stdin {
            let path = NSTemporaryDirectory() + "sealbox-stdin-\(UUID().uuidString)"
            guard FileManager.default.createFile(atPath: path, contents: Data(bytes), attributes: [.posixPermissions: 0o600]) else {
                return .failure(APIError(.internalServerError, "internal", "cannot stage stdin"))
            }
            stdinPath = path
            spec.stdin = .file(path)
        }
        defer { if let stdinPath { try? FileManager.default.removeItem(atPath: stdinPath) } }
        do throws(JailError) {
            return .success(try await executor.run(spec))
        } catch {
            switch error.code {
            case .invalidSpec, .profile, .rootfs:
                return .failure(.badRequest(error.message))
            case .cgroup, .unsupportedHost, .setup:
                return .failure(APIError(.internalServerError, "jail_setup", error.message))
            }
        }
    }

    struct Health: Encodable {
        var status: String
        var running: Int
        var queued: Int
        var maxConcurrentRuns: Int
        var maxQueuedRuns: Int
        var cgroup: String

        enum CodingKeys: String, CodingKey {
            case status, running, queued, cgroup
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
