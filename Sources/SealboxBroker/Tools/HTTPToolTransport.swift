import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import SealboxLedger
import SealboxBase
import SealboxTracing

/// Runs one expanded http tool request with AsyncHTTPClient (SwiftNIO: event-driven, so a call
/// waiting on a slow world costs no CPU — URLSession on Linux spun about 0.8 core per waiting
/// call): one client per call (no cookies, no cache, no connection reuse across calls), a
/// deadline of its own over the whole exchange, the response body capped as it streams in, and
/// redirects followed only for GET/HEAD to the same scheme, host and port (at most 5); any
/// other redirect is returned as the outcome (status 3xx, `location` header) and never followed.
/// Proxy settings in the broker's environment are not used.
enum HTTPToolTransport {
    struct Response: Sendable {
        let status: Int
        /// Lower-case names; repeated headers joined with ", ".
        let headers: [String: String]
        let body: Data
        let truncated: Bool
    }

    /// Why a call ended without a response.
    enum Failure: Error, Sendable {
        case timeout
        case cancelled
        case connect
        case hostNotFound
        case tls
        case connectionLost
        case badResponse
        /// The egress guard refused the address the host resolves to.
        case refused(String)
        case other(String)
    }

    static let redirectStatuses: Set<UInt> = [301, 302, 303, 307, 308]
    static let maxRedirects = 5

    /// The deadline is our own watchdog's, at exactly `timeoutMs` (+ `watchdogSlackMs`, for
    /// tests); the client's own deadline (`timeoutMs`, head and body) is a second line.
    static func perform(
        _ request: HTTPToolRequest, timeoutMs: Int, maxBytes: Int, watchdogSlackMs: Int = 0
    ) async throws(ToolError) -> Response {
        let deadline = NIODeadline.now() + .milliseconds(Int64(timeoutMs))
        let outcome: Result<Response, Failure> = await withTaskGroup(of: Result<Response, Failure>.self) { group in
            group.addTask { await pinnedExchange(request, timeoutMs: timeoutMs, deadline: deadline, maxBytes: maxBytes) }
            group.addTask {
                do {
                    try await Task.sleep(for: .milliseconds(timeoutMs + watchdogSlackMs))
                    return .failure(.timeout)
                } catch {
                    return .failure(.cancelled)
                }
            }
            let first = await group.next() ?? .failure(.cancelled)
            group.cancelAll()
            return first
        }

        let shown = request.target
        switch outcome {
        case .success(let response):
            return response
        case .failure(.timeout):
            throw ToolError(.toolFailed, "\(shown): timed out after \(DurationText.format(milliseconds: timeoutMs))", happened: nil)
        case .failure(.cancelled):
            throw ToolError(.toolFailed, "\(shown): cancelled", happened: nil)
        case .failure(.connect):
            throw ToolError(.toolFailed, "\(shown): could not connect to the server", happened: false)
        case .failure(.hostNotFound):
            throw ToolError(.toolFailed, "\(shown): host not found", happened: false)
        case .failure(.tls):
            throw ToolError(.toolFailed, "\(shown): TLS connection failed", happened: false)
        case .failure(.connectionLost):
            throw ToolError(.toolFailed, "\(shown): the connection was lost before a complete response", happened: nil)
        case .failure(.badResponse):
            throw ToolError(.toolFailed, "\(shown): bad response from the server", happened: nil)
        case .failure(.refused(let why)):
            throw ToolError(.toolFailed, "\(shown): refused: \(why); name the address or its range in allow_hosts, or set allow_private_networks: true", happened: false)
        case .failure(.other(let what)):
            throw ToolError(.toolFailed, "\(shown): request failed (\(what))", happened: nil)
        }
    }

    /// Resolves the host through the egress guard, pins the connection to the address it
    /// allowed (the client never looks the name up again), then runs the exchange.
    private static func pinnedExchange(_ request: HTTPToolRequest, timeoutMs: Int, deadline: NIODeadline, maxBytes: Int) async -> Result<Response, Failure> {
        guard let host = request.url.host else { return .failure(.other("no host")) }
        var configuration = HTTPClient.Configuration(redirectConfiguration: .disallow, decompression: .disabled)
        configuration.timeout = HTTPClient.Configuration.Timeout(connect: .milliseconds(Int64(timeoutMs)), read: .milliseconds(Int64(timeoutMs)))
        configuration.proxy = nil
        // No span of the client's own: it would record the full URL, and a tool's URL may hold
        // a secret or the call's arguments. The tool-call span is the request's parent instead
        // (`exchange` sends its traceparent), and the world sees that one header, not two.
        configuration.tracing.tracer = nil
        // One attempt: a refused connection is a call that certainly did not happen, answered
        // at once (the client would otherwise retry until the connect timeout).
        configuration.connectionPool.retryConnectionEstablishment = false
        do {
            if let address = try await request.egress.pin(host) { configuration.dnsOverride = [host: address] }
        } catch {
            switch error {
            case .hostNotFound: return .failure(.hostNotFound)
            case .refused(let why): return .failure(.refused(why))
            }
        }
        let client = HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: configuration)
        let result = await exchange(request, client: client, deadline: deadline, maxBytes: maxBytes)
        try? await client.shutdown()
        return result
    }

    /// The request, its same-origin redirects, and the capped body of the last answer.
    private static func exchange(_ request: HTTPToolRequest, client: HTTPClient, deadline: NIODeadline, maxBytes: Int) async -> Result<Response, Failure> {
        var url = request.url
        var redirects = 0
        do {
            while true {
                var outgoing = HTTPClientRequest(url: url.absoluteString)
                outgoing.method = HTTPMethod(rawValue: request.method)
                // Otherwise the client's default names its library.
                outgoing.headers.replaceOrAdd(name: "User-Agent", value: "sealbox-broker")
                // The tool call's span (W3C trace context; nothing when tracing is off), before
                // the tool's own headers, so a header the operator configured stays as written.
                for h in TraceParent.headers() { outgoing.headers.replaceOrAdd(name: h.name, value: h.value) }
                for h in request.headers { outgoing.headers.replaceOrAdd(name: h.name, value: h.value) }
                if let body = request.body { outgoing.body = .bytes(ByteBuffer(bytes: body)) }
                let response = try await client.execute(outgoing, deadline: deadline)
                if request.method == "GET" || request.method == "HEAD", redirectStatuses.contains(response.status.code), redirects < maxRedirects,
                   let location = response.headers.first(name: "location"),
                   let next = URL(string: location, relativeTo: url)?.absoluteURL, sameOrigin(next, request.url) {
                    redirects += 1
                    url = next
                    continue  // the redirect's own body is dropped unread
                }
                var headers: [String: String] = [:]
                for (name, value) in response.headers {
                    let key = name.lowercased()
                    headers[key] = headers[key].map { $0 + ", " + value } ?? value
                }
                var body = Data()
                var truncated = false
                for try await chunk in response.body {
                    let room = maxBytes - body.count
                    if chunk.readableBytes <= room {
                        body.append(contentsOf: chunk.readableBytesView)
                    } else {
                        body.append(contentsOf: chunk.readableBytesView.prefix(max(0, room)))
                        truncated = true
                        break  // leaving the body unread closes the connection
                    }
                }
                return .success(Response(status: Int(response.status.code), headers: headers, body: body, truncated: truncated))
            }
        } catch {
            return .failure(classify(error))
        }
    }

    static func classify(_ error: any Error) -> Failure {
        if error is CancellationError { return .cancelled }
        if let client = error as? HTTPClientError {
            if [.deadlineExceeded, .readTimeout, .writeTimeout].contains(client) { return .timeout }
            if client == .connectTimeout { return .connect }
            if client == .cancelled { return .cancelled }
            if client == .remoteConnectionClosed { return .connectionLost }
            if client == .bodyLengthMismatch { return .badResponse }
            return .other(String(describing: client))
        }
        if let connection = error as? NIOConnectionError {
            return connection.connectionErrors.isEmpty && (connection.dnsAError != nil || connection.dnsAAAAError != nil) ? .hostNotFound : .connect
        }
        if error is SocketAddressError { return .hostNotFound }
        if let channel = error as? ChannelError {
            switch channel {
            case .connectTimeout: return .connect
            case .eof, .ioOnClosedChannel, .alreadyClosed, .outputClosed, .inputClosed: return .connectionLost
            default: return .other(String(describing: channel))
            }
        }
        if let io = error as? IOError {
            return [ECONNREFUSED, ENETUNREACH, EHOSTUNREACH, EADDRNOTAVAIL].contains(io.errnoCode) ? .connect : .connectionLost
        }
        // NIOSSL's errors (handshake, certificates) without importing it.
        if String(reflecting: type(of: error)).contains("SSL") { return .tls }
        if error is HTTPParserError { return .badResponse }
        return .other(String(describing: type(of: error)))
    }

    static func sameOrigin(_ a: URL, _ b: URL) -> Bool {
        a.scheme?.lowercased() == b.scheme?.lowercased() && a.host?.lowercased() == b.host?.lowercased() && port(a) == port(b)
    }

    private static func port(_ url: URL) -> Int? {
        url.port ?? (url.scheme?.lowercased() == "https" ? 443 : url.scheme?.lowercased() == "http" ? 80 : nil)
    }
}
