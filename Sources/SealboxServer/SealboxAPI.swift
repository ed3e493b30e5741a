import Foundation
import HTTPTypes
import Hummingbird
import Logging
import SealboxJail

/// The HTTP API of `sealbox serve`. Routes so far:
///   GET  /healthz        liveness, load and the cgroup driver
///   POST /v1/runs        run once in a fresh jail; 201 with the `sealbox run --json` object,
///                        or its output as it comes (Accept: application/x-ndjson or
///                        text/event-stream; see RunStreaming.swift)
///   GET  /v1/runs/{id}   a finished run's result (the newest `retainedResults` are kept)
///   GET  /metrics        Prometheus text: runs by status, spawn/queue/wall histograms, load
public struct SealboxAPI: Sendable {
    public let configuration: ServerConfiguration
    public let executor: Executor
    public let admission: RunAdmission
    public let store: RunStore
    public let metrics: ServerMetrics

    public init(configuration: ServerConfiguration, executor: Executor) {
        self.configuration = configuration
        self.executor = executor
        admission = RunAdmission(maxRunning: configuration.maxConcurrentRuns, maxQueued: configuration.maxQueuedRuns)
        store = RunStore(capacity: configuration.retainedResults)
        metrics = ServerMetrics()
    }

    public func router() -> Router<BasicRequestContext> {
        let router = Router()
        router.add(middleware: RequestLogMiddleware())
        router.get("healthz") { _, _ in try await self.health() }
        router.post("v1/runs") { request, context in try await self.createRun(request, logger: context.logger) }
        router.get("v1/runs/:id") { _, context in try self.getRun(context.parameters.require("id")) }
        router.get("metrics") { _, _ in await self.renderMetrics() }
        return router
    }

    /// `logger`: the server's and Hummingbird's logs, request and run lines included.
    public func application(logger: Logger = Logger(label: "sealbox")) -> some ApplicationProtocol {
        Application(router: router(), configuration: .init(address: .hostname(configuration.host, port: configuration.port), serverName: "sealbox"),
                    onServerRunning: { _ in logListening(logger) }, logger: logger)
    }

    /// Serves until SIGTERM or SIGINT (graceful shutdown through swift-service-lifecycle).
    public func run(logger: Logger = Logger(label: "sealbox")) async throws {
        try await application(logger: logger).runService()
    }

    func logListening(_ logger: Logger) {
        logger.info("listening", metadata: [
            "address": .string("http://\(configuration.host):\(configuration.port)"),
            "max_concurrent_runs": .stringConvertible(admission.maxRunning), "max_queued_runs": .stringConvertible(admission.maxQueued),
            "cgroup": .string(executor.cgroupDriver.version.rawValue),
        ])
    }

    // MARK: handlers

    func health() async throws -> Response {
        let load = await admission.load
        return try Self.json(.ok, Health(
            status: "ok", running: load.running, queued: load.queued, maxConcurrentRuns: admission.maxRunning,
            maxQueuedRuns: admission.maxQueued, cgroup: executor.cgroupDriver.version.rawValue))
    }

    func createRun(_ request: Request, logger: Logger) async throws -> Response {
        var request = request
        do {
            if let format = RunStreamFormat(accept: request.headers[.accept]) {
                return try await streamRun(&request, format: format, logger: logger)
            }
            return try await admitAndRun(&request, logger: logger)
        } catch {
            metrics.rejected(error.code)
            throw error
        }
    }

    private func admitAndRun(_ request: inout Request, logger: Logger) async throws(APIError) -> Response {
        let run = try await readRun(&request)
        let waited = try await admit()
        let outcome = await execute(run)
        await admission.release()
        let result = finish(try outcome.get(), waited: waited, logger: logger)
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
        return Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                        body: .init(byteBuffer: ByteBuffer(string: text)))
    }

    func getRun(_ id: String) throws -> Response {
        guard let result = store.get(id) else {
            throw APIError(.notFound, "not_found", "no run \(id) (finished runs are kept for the newest \(configuration.retainedResults))")
        }
        return try Self.json(.ok, result)
    }

    /// Runs the spec; stdin bytes go through a private temporary file the jail gets as an fd.
    /// `output` sees stdout and stderr as they arrive (streamed runs).
    func execute(_ run: RunRequest, output: OutputObserver? = nil) async -> Result<RunResult, APIError> {
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
            return .success(try await executor.run(spec, output: output))
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
