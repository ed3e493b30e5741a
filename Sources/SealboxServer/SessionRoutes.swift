import Foundation
import HTTPTypes
import Hummingbird
import SealboxBase
import SealboxJail
import SealboxRuntime
import SealboxSQLite
import SealboxLedger

/// Sessions over HTTP, the same operations as `sealbox session new|steps|facts|fork`:
///   POST /v1/sessions                {"workspace_limit_bytes": N?}          → 201 the session
///   GET  /v1/sessions/{id}           the session and its sealed steps
///   GET  /v1/sessions/{id}/facts     `sealbox session facts ID --json`
///   POST /v1/sessions/{id}/fork      {"at": "STEP"}                         → 201 the fork
/// Steps themselves run through POST /v1/runs with "session" and "step".
/// A session belongs to the tenant whose key created it (a fork, to the tenant that forked
/// it); another tenant's session is a 404 as if it did not exist (SessionTenancy).
extension SealboxAPI {
    func addSessionRoutes(to router: Router<SealboxRequestContext>) {
        router.post("v1/sessions") { request, context in try await self.createSession(request, context.requireIdentity()) }
        router.get("v1/sessions/:id") { _, context in try self.getSession(context.parameters.require("id"), context.requireIdentity()) }
        router.get("v1/sessions/:id/facts") { _, context in try self.sessionFacts(context.parameters.require("id"), context.requireIdentity()) }
        router.post("v1/sessions/:id/fork") { request, context in try await self.forkSession(context.parameters.require("id"), request, context.requireIdentity()) }
    }

    /// Request bodies of session calls are small; anything larger is not one.
    static let sessionBodyLimit = 64 << 10

    func createSession(_ request: Request, _ identity: APIIdentity) async throws -> Response {
        struct Body: Decodable {
            var workspace_limit_bytes: UInt64?
            enum CodingKeys: String, CodingKey, CaseIterable { case workspace_limit_bytes }
        }
        let body = try await StrictBody.decode(Body.self, request, limit: Self.sessionBodyLimit, emptyAllowed: true)
        var limit = SessionInfo.defaultWorkspaceLimit
        if let bytes = body?.workspace_limit_bytes {
            guard (1 << 20...SessionInfo.maximumWorkspaceLimit).contains(bytes) else {
                throw APIError.badRequest("workspace_limit_bytes must be between 1 MiB and \(SessionInfo.maximumWorkspaceLimit >> 30) GiB", field: "workspace_limit_bytes")
            }
            limit = bytes
        }
        let info = try newSession(workspaceLimitBytes: limit, for: identity)
        var response = try Self.json(.created, info)
        response.headers[.location] = "/v1/sessions/\(info.id)"
        return response
    }

    func getSession(_ id: String, _ identity: APIIdentity) throws -> Response {
        try requireSession(id, visibleTo: identity)
        do {
            guard let info = try checkpoints.session(id) else { throw Self.unknownSession(id) }
            return try Self.json(.ok, SessionView(session: info, steps: try checkpoints.steps(session: id).map(StepView.init)))
        } catch let error as APIError {
            throw error
        } catch let error as CheckpointError {
            throw Self.apiError(error)
        }
    }

    func sessionFacts(_ id: String, _ identity: APIIdentity) throws -> Response {
        try Self.json(.ok, try facts(of: id, for: identity))
    }

    /// A new session owned by the caller's tenant (POST /v1/sessions, MCP's create_session).
    public func newSession(workspaceLimitBytes limit: UInt64, for identity: APIIdentity) throws(APIError) -> SessionInfo {
        // Claimed for the tenant before it exists: a crash in between leaves an owner row
        // with no session (harmless), never a session no tenant can see.
        let id = Checkpoints.newSessionID()
        try claimSession(id, for: identity)
        do {
            _ = try checkpoints.createSession(id: id, workspaceLimitBytes: limit)
            guard let created = try checkpoints.session(id) else { throw CheckpointError(.storage, "session \(id) vanished") }
            return created
        } catch let error as CheckpointError {
            throw Self.apiError(error)
        } catch {
            throw APIError(.internalServerError, "storage", "cannot create a session: \(error)")
        }
    }

    /// Where a session stands, for the caller's tenant (404 for another's).
    public func facts(of id: String, for identity: APIIdentity) throws(APIError) -> SessionFacts {
        try requireSession(id, visibleTo: identity)
        do {
            let ledger = try StateStores(layout: configuration.layout).existingEffectLog()
            return try SessionFacts.gather(store: checkpoints, ledger: ledger, session: id)
        } catch let error as CheckpointError {
            throw Self.apiError(error)
        } catch let error as APIError {
            throw error
        } catch {
            throw APIError(.internalServerError, "storage", "cannot read the facts of session \(id): \(error)")
        }
    }

    func forkSession(_ id: String, _ request: Request, _ identity: APIIdentity) async throws -> Response {
        try requireSession(id, visibleTo: identity)
        struct Body: Decodable {
            var at: String
            enum CodingKeys: String, CodingKey, CaseIterable { case at }
        }
        let body = try await StrictBody.decode(Body.self, request, limit: Self.sessionBodyLimit, emptyAllowed: false)
        guard let step = body?.at, !step.isEmpty else {
            throw APIError.badRequest("at must name the sealed step the fork starts after", field: "at")
        }
        if let problem = StepKey.problem(step) { throw APIError.badRequest("at \(problem)", field: "at") }
        let forkID = Checkpoints.newSessionID()
        try claimSession(forkID, for: identity)
        let fork: SessionInfo
        do {
            fork = try checkpoints.fork(session: id, atStep: step, newID: forkID)
        } catch {
            throw Self.apiError(error)
        }
        var response = try Self.json(.created, fork)
        response.headers[.location] = "/v1/sessions/\(fork.id)"
        return response
    }

    static func unknownSession(_ id: String) -> APIError {
        APIError(.notFound, "not_found", "unknown session \(id) (create one with POST /v1/sessions)")
    }

    static func apiError(_ error: CheckpointError) -> APIError {
        switch error.code {
        case .unknownSession: return APIError(.notFound, "not_found", error.message)
        case .notSealed: return APIError(.conflict, "not_sealed", error.message, field: "at")
        case .stepConflict: return APIError(.conflict, "step_conflict", error.message, field: "step")
        case .alreadySealed: return APIError(.conflict, "already_sealed", error.message)
        case .invalidInput: return APIError.badRequest(error.message)
        case .stepRunning: return APIError(.conflict, "step_running", error.message, field: "step", retryAfter: 1)
        case .storage:
            if StorageFull.isFull(message: error.message) { return .storageFull(error.message) }
            return APIError(.internalServerError, "storage", error.message)
        }
    }

    /// GET /v1/sessions/{id}: the session, then its sealed steps in order (a fork's include the
    /// inherited prefix, each naming the session that sealed it).
    struct SessionView: Encodable {
        var session: SessionInfo
        var steps: [StepView]
    }

    /// A sealed step as `Checkpoint` encodes it, but with `result` as the JSON object it is
    /// (the run's result), not as a string holding JSON.
    struct StepView: Encodable {
        var checkpoint: Checkpoint

        init(_ checkpoint: Checkpoint) {
            self.checkpoint = checkpoint
        }

        private struct ResultKey: CodingKey {
            var stringValue: String { "result" }
            var intValue: Int? { nil }
            init() {}
            init?(stringValue: String) { nil }
            init?(intValue: Int) { nil }
        }

        func encode(to encoder: any Encoder) throws {
            var plain = checkpoint
            plain.result = ""
            try plain.encode(to: encoder)
            var container = encoder.container(keyedBy: ResultKey.self)
            if let result = try? JSONDecoder().decode(RunResult.self, from: Data(checkpoint.result.utf8)) {
                try container.encode(result, forKey: ResultKey())
            } else {
                try container.encode(checkpoint.result, forKey: ResultKey())
            }
        }
    }
}

/// A small JSON object body, decoded once by `StrictJSONDecoder`: duplicate and unknown
/// fields and wrong types get 400 naming the field. nil for an empty body when allowed.
enum StrictBody {
    static func decode<T: Decodable>(_ type: T.Type, _ request: Request, limit: Int, emptyAllowed: Bool) async throws -> T? {
        var request = request
        let buffer: ByteBuffer
        do {
            buffer = try await request.collectBody(upTo: limit)
        } catch {
            throw APIError(.contentTooLarge, "payload_too_large", "the request body is larger than \(limit) bytes")
        }
        let bytes = [UInt8](buffer.readableBytesView)
        if bytes.allSatisfy({ $0 == 0x20 || $0 == 0x0a || $0 == 0x0d || $0 == 0x09 }) {
            guard emptyAllowed else { throw APIError.badRequest("the body must be a JSON object") }
            return nil
        }
        do {
            return try StrictJSONDecoder.decode(T.self, from: bytes)
        } catch {
            throw APIError(decoding: error)
        }
    }
}
