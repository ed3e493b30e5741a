import Foundation
import HTTPTypes
import Hummingbird
import Logging
import MCP
import NIOCore
import SealboxServer
import ServiceLifecycle
import Synchronization

/// MCP's Streamable HTTP transport at /mcp on `sealbox serve`, so a remote agent can use
/// sealbox: POST a JSON-RPC message (answers come back as an SSE stream), GET the session's
/// stream of server messages (progress), DELETE to end the session. Each MCP session is the
/// SDK's `StatefulHTTPServerTransport` and `Server`, behind `MCPGate` like stdio.
///
/// Authentication and tenancy are the API's: the route sits behind `AuthMiddleware` (Bearer
/// key on every request), a session belongs to the key that initialized it (another key gets
/// 404, as for a session that does not exist), and its tools act as that key (`APIBackend`).
/// Bodies are capped at the API's `maxBodyBytes`. Sessions are bounded: at most
/// `maxSessions` live ones, each ended after `idleTimeout` without a request (and none in
/// flight), after `maxLifetime`, or once it has sent `maxSessionBytes` (the SDK's transport
/// keeps every message of a session for replay to a reconnecting client; that bound is what
/// keeps it finite). A client whose session ended gets 404 and initializes again (MCP says so).
public final class MCPHTTPEndpoint: Sendable {
    public struct Configuration: Sendable {
        public var maxSessions = 64
        public var idleTimeout: Duration = .seconds(15 * 60)
        public var maxLifetime: Duration = .seconds(24 * 3600)
        public var maxSessionBytes = 256 << 20
        /// Requests of one session read and not yet answered; beyond, a request gets 429.
        public var maxInFlightPerSession = 32

        public init() {}
    }

    public static let path = "mcp"

    let api: SealboxAPI
    let configuration: Configuration
    let logger: Logger
    private let sessions: Mutex<[String: MCPHTTPSession]> = Mutex([:])

    public init(api: SealboxAPI, configuration: Configuration = Configuration(), logger: Logger = Logger(label: "sealbox.mcp")) {
        self.api = api
        self.configuration = configuration
        self.logger = logger
    }

    /// Adds POST, GET and DELETE /mcp to the API's router (after its key check).
    public func mount(on router: Router<SealboxRequestContext>) {
        router.post(RouterPath(stringLiteral: Self.path)) { request, context in try await self.post(request, context) }
        router.get(RouterPath(stringLiteral: Self.path)) { request, context in try await self.forward(request, context, body: nil) }
        router.delete(RouterPath(stringLiteral: Self.path)) { request, context in try await self.forward(request, context, body: nil) }
    }

    public var sessionCount: Int { sessions.withLock { $0.count } }

    // MARK: requests

    func post(_ request: Request, _ context: SealboxRequestContext) async throws -> Response {
        let identity = try context.requireIdentity()
        var request = request
        let body: ByteBuffer
        do {
            body = try await request.collectBody(upTo: api.configuration.maxBodyBytes)
        } catch {
            return Self.jsonRPCError(.contentTooLarge, .invalidRequest("the request body is larger than \(api.configuration.maxBodyBytes) bytes"))
        }
        let bytes = Data(body.readableBytesView)
        guard request.headers[Self.sessionHeader] == nil else { return try await forward(request, context, body: bytes) }
        // No session yet: only an initialize opens one.
        switch JSONRPCIncoming.parse(bytes) {
        case .invalid(let error, _):
            return Self.jsonRPCError(.badRequest, error)
        case .request(_, "initialize", _):
            break
        default:
            return Self.jsonRPCError(.badRequest, .invalidRequest("no MCP session: send initialize first, then the Mcp-Session-Id header it answers with"))
        }
        guard let session = await open(for: identity, context: context) else {
            var response = Self.jsonRPCError(.serviceUnavailable, .invalidRequest("this server has \(configuration.maxSessions) MCP sessions open, the most it keeps; retry later"))
            response.headers[.retryAfter] = "5"
            return response
        }
        let answer = await session.handle(Self.mcpRequest(request, body: bytes))
        if answer.statusCode >= 400 { close(session.id, why: "its initialize was refused") }
        return response(answer)
    }

    /// A request of an existing session (POST with Mcp-Session-Id, GET, DELETE).
    func forward(_ request: Request, _ context: SealboxRequestContext, body: Data?) async throws -> Response {
        let identity = try context.requireIdentity()
        sweep()
        guard let id = request.headers[Self.sessionHeader] else {
            return Self.jsonRPCError(.badRequest, .invalidRequest("the Mcp-Session-Id header is required (initialize opens a session)"))
        }
        // Another key's session answers as one that does not exist.
        guard let session = sessions.withLock({ $0[id] }), session.keyID == identity.keyID else {
            return Self.jsonRPCError(.notFound, .invalidRequest("no MCP session \(id.prefix(64)) (it ended or never existed): initialize a new one"))
        }
        if session.ended && request.method != .delete {
            // Over its byte budget: no new request; it is closed once its last answer is out.
            return Self.jsonRPCError(.notFound, .invalidRequest("MCP session \(id.prefix(64)) ended: it sent \(configuration.maxSessionBytes) bytes, the most one session sends; initialize a new one"))
        }
        let response = await session.handle(Self.mcpRequest(request, body: body))
        if request.method == .delete { close(id, why: "the client ended it") }
        return self.response(response)
    }

    // MARK: sessions

    private func open(for identity: APIIdentity, context: SealboxRequestContext) async -> MCPHTTPSession? {
        sweep()
        let id = Self.newSessionID()
        let backend = APIBackend(api: api, identity: identity, logger: logger)
        let session = MCPHTTPSession(id: id, keyID: identity.keyID, methods: .sealbox(backend: backend), configuration: configuration)
        let admitted = sessions.withLock { sessions -> Bool in
            guard sessions.count < configuration.maxSessions else { return false }
            sessions[id] = session
            return true
        }
        guard admitted else { return nil }
        do {
            try await session.start()
        } catch {
            close(id, why: "it could not start: \(error)")
            return nil
        }
        logger.info("mcp session opened", metadata: ["tenant": .string(identity.tenant), "key": .string(identity.keyID), "sessions": .stringConvertible(sessionCount)])
        return session
    }

    /// Ends sessions idle too long (none of their requests in flight) or too old.
    func sweep(now: ContinuousClock.Instant = .now) {
        let expired = sessions.withLock { sessions in
            sessions.values.filter { $0.expired(now: now) }.map(\.id)
        }
        for id in expired { close(id, why: "it expired") }
    }

    /// Ends every session: the server is shutting down, and an open event stream (a client's
    /// GET) would otherwise hold the shutdown until the client hangs up.
    func closeAll(why: String) {
        let ids = sessions.withLock { Array($0.keys) }
        for id in ids { close(id, why: why) }
    }

    func close(_ id: String, why: String) {
        guard let session = sessions.withLock({ $0.removeValue(forKey: id) }) else { return }
        logger.info("mcp session closed", metadata: ["why": .string(why)])
        Task { await session.stop() }
    }

    /// 128 random bits: a session id is the only thing naming a session, besides the key.
    static func newSessionID() -> String {
        var generator = SystemRandomNumberGenerator()
        return (0..<4).map { _ in String(format: "%08x", UInt32.random(in: .min ... .max, using: &generator)) }.joined()
    }

    static let sessionHeader = HTTPField.Name(HTTPHeaderName.sessionID)!

    // MARK: conversions

    static func mcpRequest(_ request: Request, body: Data?) -> MCP.HTTPRequest {
        var headers: [String: String] = [:]
        for field in request.headers {
            let name = field.name.canonicalName
            headers[name] = headers[name].map { $0 + ", " + field.value } ?? field.value
        }
        return MCP.HTTPRequest(method: request.method.rawValue, headers: headers, body: body, path: "/" + path)
    }

    func response(_ response: MCP.HTTPResponse) -> Response {
        var fields = HTTPFields()
        for (name, value) in response.headers {
            if let name = HTTPField.Name(name) { fields[name] = value }
        }
        let status = HTTPTypes.HTTPResponse.Status(code: response.statusCode)
        switch response {
        case .stream(let events, _):
            return Response(status: status, headers: fields, body: ResponseBody { writer in
                try await withGracefulShutdownHandler {
                    for try await event in events {
                        try await writer.write(ByteBuffer(bytes: event))
                    }
                } onGracefulShutdown: {
                    self.closeAll(why: "the server is shutting down")
                }
                try await writer.finish(nil)
            })
        default:
            return Response(status: status, headers: fields, body: response.bodyData.map { ResponseBody(byteBuffer: ByteBuffer(bytes: $0)) } ?? ResponseBody())
        }
    }

    static func jsonRPCError(_ status: HTTPTypes.HTTPResponse.Status, _ error: JSONRPCError) -> Response {
        Response(status: status, headers: [.contentType: "application/json"],
                 body: ResponseBody(byteBuffer: ByteBuffer(bytes: JSONRPCOutgoing.error(id: nil, error))))
    }
}

/// One Streamable HTTP session: the SDK's transport and server, behind a gate.
final class MCPHTTPSession: Sendable {
    let id: String
    let keyID: String
    let methods: MCPMethods
    let configuration: MCPHTTPEndpoint.Configuration
    let gate: MCPGate
    let transport: GatedHTTPTransport
    private let created = ContinuousClock.now
    private let lastUsed = Mutex(ContinuousClock.now)
    private let server = Mutex<Server?>(nil)

    init(id: String, keyID: String, methods: MCPMethods, configuration: MCPHTTPEndpoint.Configuration) {
        self.id = id
        self.keyID = keyID
        self.methods = methods
        self.configuration = configuration
        gate = MCPGate(calls: MCPCalls())
        transport = GatedHTTPTransport(
            inner: StatefulHTTPServerTransport(
                sessionIDGenerator: FixedSessionID(id: id),
                // Keys, not cookies, authenticate here: a page in a browser cannot send this
                // server's key, so the SDK's localhost Origin check (against DNS rebinding)
                // would only refuse remote agents.
                validationPipeline: StandardValidationPipeline(validators: [
                    AcceptHeaderValidator(mode: .sseRequired), ContentTypeValidator(), ProtocolVersionValidator(), SessionValidator(),
                ]),
                logger: MCPConnection.quietLogger),
            gate: gate, maxBytes: configuration.maxSessionBytes)
    }

    func start() async throws {
        let started = try await MCPConnection.start(methods: methods, gate: gate, transport: transport)
        server.withLock { $0 = started }
    }

    func stop() async {
        guard let server = server.withLock({ $0 }) else { return }
        await server.stop()
    }

    /// A POST body goes through the gate first; what it answers itself never reaches the SDK.
    func handle(_ request: MCP.HTTPRequest) async -> MCP.HTTPResponse {
        lastUsed.withLock { $0 = .now }
        guard request.method == "POST", let body = request.body else { return await transport.inner.handleRequest(request) }
        switch gate.inbound(body) {
        case .answer(let bytes):
            return .data(bytes, headers: [HTTPHeaderName.contentType: "application/json", HTTPHeaderName.sessionID: id])
        case .ignore:
            return .accepted(headers: [HTTPHeaderName.sessionID: id])
        case .forward(let bytes, let requestID):
            if let requestID, gate.calls.inFlight > configuration.maxInFlightPerSession {
                // Taken back: this request is answered here, never by the SDK.
                _ = gate.calls.answered(requestID)
                return .error(statusCode: 429, .invalidRequest("\(configuration.maxInFlightPerSession) requests of this session are unanswered, the most it takes; wait for one"), sessionID: id)
            }
            let response = await transport.inner.handleRequest(MCP.HTTPRequest(method: request.method, headers: request.headers, body: bytes, path: request.path))
            // Refused by the SDK's transport (a header it checks): no answer will come.
            if let requestID, response.statusCode >= 400 { _ = gate.calls.answered(requestID) }
            return response
        }
    }

    var ended: Bool { transport.overBudget }

    func expired(now: ContinuousClock.Instant) -> Bool {
        if now - created > configuration.maxLifetime { return true }
        guard gate.calls.inFlight == 0 else { return false }
        return transport.overBudget || now - lastUsed.withLock({ $0 }) > configuration.idleTimeout
    }
}

/// The SDK's HTTP transport with sealbox's outbound gate (a cancelled request's answer is
/// dropped) and a byte budget: the SDK keeps every message it sends in a session for replay,
/// so a session that has sent `maxBytes` is ended (the client initializes a new one).
actor GatedHTTPTransport: Transport {
    nonisolated let logger = MCPConnection.quietLogger
    nonisolated let inner: StatefulHTTPServerTransport
    private let gate: MCPGate
    private let maxBytes: Int
    private let sent = Mutex(0)

    init(inner: StatefulHTTPServerTransport, gate: MCPGate, maxBytes: Int) {
        self.inner = inner
        self.gate = gate
        self.maxBytes = maxBytes
    }

    nonisolated var overBudget: Bool { sent.withLock { $0 } >= maxBytes }

    /// The inner transport's stream, taken at connect (the server asks for it after).
    private var incoming: AsyncThrowingStream<Data, any Swift.Error>?

    func connect() async throws {
        try await inner.connect()
        incoming = await inner.receive()
    }

    func disconnect() async { await inner.disconnect() }

    func receive() -> AsyncThrowingStream<Data, any Swift.Error> {
        incoming ?? AsyncThrowingStream { $0.finish(throwing: MCPError.internalError("the transport is not connected")) }
    }

    func send(_ data: Data) async throws {
        try await gate.outbound(data, endFirst: true) { bytes in
            sent.withLock { $0 += bytes.count }
            try await inner.send(bytes)
        }
    }
}

/// The session id sealbox chose, handed to the SDK's transport (which asks for one).
struct FixedSessionID: SessionIDGenerator {
    let id: String
    func generateSessionID() -> String { id }
}
