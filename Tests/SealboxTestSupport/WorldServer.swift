import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import Synchronization

/// "The world" for broker and end-to-end tests: a real HTTP/1.1 server (Hummingbird) on a
/// loopback address, port chosen by the kernel. It records every request it really received
/// (method, raw target, raw path, raw query, headers, body) before answering, and answers from
/// canned responses per path (status, headers such as ETag, body, a delay, a redirect), from a
/// handler, or 404.
///
///     let server = try await WorldServer.start()   // 127.0.0.1:<port>; start(host: "127.0.0.2") for "another host"
///     server.route("/repos/a/b/issues", .json(#"{"number":1}"#, status: 201, headers: [("ETag", "\"v1\"")]))
///     … call http://127.0.0.1:\(server.port)/repos/a/b/issues …
///     server.requests(to: "/repos/a/b/issues").first?.header("Authorization")
///     server.stop()                                 // also on deinit
///
/// Routes match the raw path exactly as sent, still percent-encoded, and may change while the
/// server runs (a test makes the world slow, then quick): so one responder looks them up on each
/// request, rather than a `Router` built once with decoded path components.
public final class WorldServer: Sendable {
    public struct Request: Sendable {
        public let method: String
        /// The request target exactly as sent ("/a%2Fb?x=1").
        public let target: String
        /// The target before "?", still percent-encoded.
        public let path: String
        /// The raw query (after "?"), if any.
        public let query: String?
        public let headers: [(name: String, value: String)]
        public let body: Data

        /// The first header with this name (case-insensitive).
        public func header(_ name: String) -> String? {
            headers.first { $0.name.lowercased() == name.lowercased() }?.value
        }

        /// Every value of this header (case-insensitive).
        public func headerValues(_ name: String) -> [String] {
            headers.filter { $0.name.lowercased() == name.lowercased() }.map(\.value)
        }

        /// Decoded query items in order ("+" is not treated as space).
        public var queryItems: [(name: String, value: String)] {
            guard let query, !query.isEmpty else { return [] }
            return query.split(separator: "&", omittingEmptySubsequences: true).map { item in
                let parts = item.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
                let name = String(parts[0]).removingPercentEncoding ?? String(parts[0])
                let value = parts.count > 1 ? (String(parts[1]).removingPercentEncoding ?? String(parts[1])) : ""
                return (name, value)
            }
        }

        public var bodyText: String { String(decoding: body, as: UTF8.self) }
    }

    public struct Response: Sendable {
        public var status: Int
        public var headers: [(name: String, value: String)]
        public var body: Data
        /// Wait this long after receiving the request before answering.
        public var delay: Duration
        /// Then wait until this gate opens (a test answers when it has seen what it waits for,
        /// not after a guessed delay).
        public var gate: Gate?

        public init(status: Int = 200, headers: [(name: String, value: String)] = [], body: Data = Data(), delay: Duration = .zero) {
            self.status = status
            self.headers = headers
            self.body = body
            self.delay = delay
        }

        public static func text(_ text: String, status: Int = 200, headers: [(name: String, value: String)] = [], delay: Duration = .zero) -> Response {
            Response(status: status, headers: [("Content-Type", "text/plain; charset=utf-8")] + headers, body: Data(text.utf8), delay: delay)
        }

        public static func json(_ json: String, status: Int = 200, headers: [(name: String, value: String)] = [], delay: Duration = .zero,
                                gate: Gate? = nil) -> Response {
            var response = Response(status: status, headers: [("Content-Type", "application/json")] + headers, body: Data(json.utf8), delay: delay)
            response.gate = gate
            return response
        }

        public static func redirect(to location: String, status: Int = 302) -> Response {
            Response(status: status, headers: [("Location", location), ("Content-Type", "text/plain")], body: Data("moved\n".utf8))
        }

        public static let notFound = Response.json(#"{"error":"not found"}"#, status: 404)
    }

    public typealias Handler = @Sendable (Request) -> Response

    /// Holds answers until `open()`; open once, it lets everything through.
    public final class Gate: Sendable {
        private let state = Mutex<(open: Bool, waiting: [CheckedContinuation<Void, Never>])>((false, []))

        public init() {}

        public func open() {
            let waiting = state.withLock { s in
                s.open = true
                defer { s.waiting = [] }
                return s.waiting
            }
            for call in waiting { call.resume() }
        }

        func wait() async {
            await withCheckedContinuation { (call: CheckedContinuation<Void, Never>) in
                let passes = state.withLock { s in
                    if !s.open { s.waiting.append(call) }
                    return s.open
                }
                if passes { call.resume() }
            }
        }
    }

    public let host: String
    public let port: Int
    public var baseURL: String { "http://\(host):\(port)" }

    /// What the responder reads and the test writes: routes, the fallback, the record.
    private let shared: Shared
    private let serving: Task<Void, Never>

    private final class Shared: Sendable {
        let state = Mutex(State())
    }

    private struct State {
        var recorded: [Request] = []
        var routes: [String: Handler] = [:]
        var fallback: Handler = { _ in .notFound }
    }

    /// Largest request body the world reads; the tools under test send far less.
    static let maxRequestBytes = 64 << 20

    /// Starts serving on `host` (an IPv4 loopback address), port 0; returns once it listens.
    public static func start(host: String = "127.0.0.1") async throws -> WorldServer {
        let shared = Shared()
        let listening = ListeningSignal()
        let app = Application(
            responder: CallbackResponder<BasicRequestContext> { request, _ in try await answer(request, shared) },
            configuration: .init(address: .hostname(host, port: 0), serverName: nil),
            onServerRunning: { channel in listening.resolve(.success(channel.localAddress?.port ?? 0)) },
            logger: Logger(label: "sealbox-test-world", factory: { _ in SwiftLogNoOpLogHandler() })
        )
        // Off the test pool, with every task of the server: see `OffPoolExecutor`.
        let serving = Task(executorPreference: OffPoolExecutor.shared) {
            do {
                try await app.run()
                listening.resolve(.failure(SetupError(description: "the world server on \(host) stopped before it listened")))
            } catch {
                listening.resolve(.failure(SetupError(description: "the world server on \(host) did not start: \(error)")))
            }
        }
        do {
            let port = try await listening.value()
            return WorldServer(host: host, port: port, shared: shared, serving: serving)
        } catch {
            serving.cancel()
            throw error
        }
    }

    /// `start` for a caller on a thread of its own (never the test pool's: it blocks).
    public static func startBlocking(host: String = "127.0.0.1") throws -> WorldServer {
        let result = OneShot<Result<WorldServer, any Error>>()
        Task {
            do { result.set(.success(try await start(host: host))) } catch { result.set(.failure(error)) }
        }
        return try result.wait().get()
    }

    private init(host: String, port: Int, shared: Shared, serving: Task<Void, Never>) {
        self.host = host
        self.port = port
        self.shared = shared
        self.serving = serving
    }

    deinit { stop() }

    /// Stops listening and ends open connections (a delayed answer is cancelled, never sent).
    public func stop() { serving.cancel() }

    public struct SetupError: Error, CustomStringConvertible {
        public let description: String
    }

    // MARK: configuration

    /// Answer requests for exactly this raw path (any method unless `method` is given).
    public func route(_ path: String, method: String? = nil, _ response: Response) {
        route(path, method: method) { _ in response }
    }

    public func route(_ path: String, method: String? = nil, handler: @escaping Handler) {
        shared.state.withLock { $0.routes[Self.key(method, path)] = handler }
    }

    /// The answer for requests no route matches (default 404 JSON).
    public func setFallback(_ handler: @escaping Handler) {
        shared.state.withLock { $0.fallback = handler }
    }

    private static func key(_ method: String?, _ path: String) -> String { "\(method?.uppercased() ?? "*") \(path)" }

    // MARK: what it saw

    public var requests: [Request] { shared.state.withLock { $0.recorded } }

    public func requests(to path: String) -> [Request] { requests.filter { $0.path == path } }

    public func count(_ path: String) -> Int { requests(to: path).count }

    public func resetRecorded() { shared.state.withLock { $0.recorded.removeAll() } }

    /// A loopback port with nothing listening (bound, then closed).
    public static func closedPort() throws -> Int { try ServeProcess.freePort() }

    // MARK: serving

    /// Records the request (whole body read first), then answers from its route.
    private static func answer(_ request: HummingbirdCore.Request, _ shared: Shared) async throws -> HummingbirdCore.Response {
        let target = request.head.path ?? "/"
        let parts = target.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)
        let body = try await request.body.collect(upTo: maxRequestBytes)
        let seen = Request(
            method: request.method.rawValue, target: target, path: String(parts.first ?? ""),
            query: parts.count > 1 ? String(parts[1]) : nil,
            headers: request.headers.map { ($0.name.rawName, $0.value) },
            body: Data(body.readableBytesView)
        )
        let handler: Handler = shared.state.withLock {
            $0.recorded.append(seen)
            return $0.routes[key(seen.method, seen.path)] ?? $0.routes[key(nil, seen.path)] ?? $0.fallback
        }
        let response = handler(seen)
        // Cancelled when the test stops the world: the answer is then never sent.
        if response.delay > .zero { try await Task.sleep(for: response.delay) }
        if let gate = response.gate { await gate.wait() }
        var headers = HTTPFields()
        for (name, value) in response.headers where name.lowercased() != "content-length" {
            guard let field = HTTPField.Name(name) else { continue }
            headers.append(HTTPField(name: field, value: value))
        }
        return HummingbirdCore.Response(
            status: .init(code: response.status),
            headers: headers,
            body: .init(byteBuffer: ByteBuffer(bytes: response.body))
        )
    }
}

/// The port the server bound, or why it did not start: resolved once, awaited once.
private final class ListeningSignal: Sendable {
    private let state = Mutex<(result: Result<Int, any Error>?, waiter: CheckedContinuation<Int, any Error>?)>((nil, nil))

    func resolve(_ result: Result<Int, any Error>) {
        let waiter: CheckedContinuation<Int, any Error>? = state.withLock { state in
            guard case .none = state.result else { return nil }
            state.result = result
            let waiter = state.waiter
            state.waiter = nil
            return waiter
        }
        waiter?.resume(with: result)
    }

    func value() async throws -> Int {
        try await withCheckedThrowingContinuation { continuation in
            let ready: Result<Int, any Error>? = state.withLock {
                if let result = $0.result { return result }
                $0.waiter = continuation
                return nil
            }
            if let ready { continuation.resume(with: ready) }
        }
    }
}
