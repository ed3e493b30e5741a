import Foundation
import SealboxLedger
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// Runs one expanded http tool request with URLSession (libcurl on Linux): one ephemeral session
/// per call (no cookies, no cache, no connection reuse across calls), a hard deadline of its own
/// on top of URLSession's timeouts, the response body capped as it streams in, and redirects
/// followed only for GET/HEAD to the same scheme, host and port (at most 5); any other redirect
/// is returned as the outcome (status 3xx, `location` header) and never followed.
enum HTTPToolTransport {
    struct Response: Sendable {
        let status: Int
        /// Lower-case names.
        let headers: [String: String]
        let body: Data
        let truncated: Bool
    }

    /// The deadline is our own watchdog's, at exactly `timeoutMs` (+ `watchdogSlackMs`, for tests).
    /// URLSession gets the timeout rounded up to whole seconds, as a second line only: on Linux
    /// (swift-corelibs-foundation) `URLRequest.timeoutInterval` is truncated to whole seconds —
    /// anything under 1s fires at once — and the session configuration's
    /// `timeoutIntervalForRequest`/`timeoutIntervalForResource` are not enforced when the request
    /// has its own interval (measured in HTTPToolTests).
    static func perform(
        _ request: HTTPToolRequest, timeoutMs: Int, maxBytes: Int, watchdogSlackMs: Int = 0
    ) async throws(ToolError) -> Response {
        let seconds = (Double(timeoutMs) / 1000).rounded(.up)
        var urlRequest = URLRequest(url: request.url, cachePolicy: .reloadIgnoringLocalCacheData, timeoutInterval: seconds)
        urlRequest.httpMethod = request.method
        urlRequest.httpShouldHandleCookies = false
        // Otherwise libcurl's default names the broker's executable.
        urlRequest.setValue("sealbox-broker", forHTTPHeaderField: "User-Agent")
        for h in request.headers { urlRequest.setValue(h.value, forHTTPHeaderField: h.name) }
        urlRequest.httpBody = request.body

        let configuration = URLSessionConfiguration.ephemeral
        configuration.timeoutIntervalForRequest = seconds
        configuration.timeoutIntervalForResource = seconds
        configuration.urlCache = nil
        configuration.httpCookieStorage = nil
        configuration.httpShouldSetCookies = false
        configuration.requestCachePolicy = .reloadIgnoringLocalCacheData
        configuration.httpMaximumConnectionsPerHost = 1

        let transfer = HTTPToolTransfer(maxBytes: maxBytes, origin: request.url, method: request.method)
        let session = URLSession(configuration: configuration, delegate: transfer, delegateQueue: nil)
        defer { session.invalidateAndCancel() }
        let task = session.dataTask(with: urlRequest)
        transfer.attach(task)

        let watchdog = Task { [transfer] in
            try? await Task.sleep(for: .milliseconds(timeoutMs + watchdogSlackMs))
            if !Task.isCancelled { transfer.stop(.timeout) }
        }
        defer { watchdog.cancel() }

        let completion = await withTaskCancellationHandler {
            await withCheckedContinuation { (c: CheckedContinuation<HTTPToolTransfer.Completion, Never>) in
                transfer.start(c)
            }
        } onCancel: {
            transfer.stop(.cancelled)
        }

        let shown = request.target
        switch completion {
        case .response(let r):
            return r
        case .stopped(.timeout):
            throw ToolError(.toolFailed, "\(shown): timed out after \(ConfigUnits.formatDuration(timeoutMs))", happened: nil)
        case .stopped(.cancelled), .stopped(.capped):
            throw ToolError(.toolFailed, "\(shown): cancelled", happened: nil)
        case .failed(let code):
            switch code {
            case .timedOut:
                throw ToolError(.toolFailed, "\(shown): timed out after \(ConfigUnits.formatDuration(timeoutMs))", happened: nil)
            case .cannotConnectToHost:
                throw ToolError(.toolFailed, "\(shown): could not connect to the server", happened: false)
            case .cannotFindHost, .dnsLookupFailed:
                throw ToolError(.toolFailed, "\(shown): host not found", happened: false)
            case .notConnectedToInternet:
                throw ToolError(.toolFailed, "\(shown): no network", happened: false)
            case .secureConnectionFailed, .serverCertificateUntrusted, .serverCertificateHasBadDate,
                 .serverCertificateNotYetValid, .serverCertificateHasUnknownRoot, .clientCertificateRejected,
                 .clientCertificateRequired:
                throw ToolError(.toolFailed, "\(shown): TLS connection failed (URL error \(code.rawValue))", happened: false)
            case .networkConnectionLost:
                throw ToolError(.toolFailed, "\(shown): the connection was lost before a complete response", happened: nil)
            case .badServerResponse:
                throw ToolError(.toolFailed, "\(shown): bad response from the server", happened: nil)
            default:
                throw ToolError(.toolFailed, "\(shown): request failed (URL error \(code.rawValue))", happened: nil)
            }
        }
    }
}

/// The URLSession delegate of one call. All state behind a lock; the continuation is resumed
/// exactly once.
final class HTTPToolTransfer: NSObject, URLSessionDataDelegate, @unchecked Sendable {
    enum StopReason: Sendable { case timeout, cancelled, capped }

    enum Completion: Sendable {
        case response(HTTPToolTransport.Response)
        case stopped(StopReason)
        case failed(URLError.Code)
    }

    private let lock = NSLock()
    private let maxBytes: Int
    private let origin: URL
    private let method: String
    private var task: URLSessionDataTask?
    private var continuation: CheckedContinuation<Completion, Never>?
    private var result: Completion?
    private var stopReason: StopReason?
    private var status = 0
    private var headers: [String: String] = [:]
    private var body = Data()
    private var truncated = false
    private var redirects = 0

    init(maxBytes: Int, origin: URL, method: String) {
        self.maxBytes = maxBytes
        self.origin = origin
        self.method = method
    }

    func attach(_ task: URLSessionDataTask) {
        lock.withLock { self.task = task }
    }

    func start(_ c: CheckedContinuation<Completion, Never>) {
        let (ready, task): (Completion?, URLSessionDataTask?) = lock.withLock {
            if let result { return (result, nil) }
            continuation = c
            return (nil, stopReason == nil ? self.task : nil)
        }
        if let ready { c.resume(returning: ready); return }
        task?.resume()
        // A stop that raced ahead of start (cancelled before resume) finishes now.
        if task == nil { finish(nil) }
    }

    func stop(_ reason: StopReason) {
        let task: URLSessionDataTask? = lock.withLock {
            guard result == nil, stopReason == nil else { return nil }
            stopReason = reason
            return self.task
        }
        task?.cancel()
        // Should URLSession not report the cancellation, deliver it ourselves.
        if reason != .capped { finish(nil) }
    }

    private func finish(_ error: (any Error)?) {
        let (c, r): (CheckedContinuation<Completion, Never>?, Completion?) = lock.withLock {
            if result == nil {
                if let reason = stopReason, reason != .capped {
                    result = .stopped(reason)
                } else if stopReason == .capped || (error == nil && status != 0) {
                    result = .response(.init(status: status, headers: headers, body: body, truncated: truncated))
                } else if let urlError = error as? URLError {
                    result = .failed(urlError.code)
                } else if error != nil {
                    result = .failed(.unknown)
                } else if continuation == nil {
                    return (nil, nil)  // stop() before start(): start() delivers the stop.
                } else {
                    result = .failed(.badServerResponse)
                }
            }
            guard let c = continuation, let r = result else { return (nil, nil) }
            continuation = nil
            return (c, r)
        }
        if let c, let r { c.resume(returning: r) }
    }

    // MARK: URLSessionDataDelegate

    func urlSession(
        _ session: URLSession, dataTask: URLSessionDataTask, didReceive response: URLResponse,
        completionHandler: @escaping @Sendable (URLSession.ResponseDisposition) -> Void
    ) {
        if let http = response as? HTTPURLResponse {
            var h: [String: String] = [:]
            for (k, v) in http.allHeaderFields {
                if let k = k as? String { h[k.lowercased()] = v as? String ?? "\(v)" }
            }
            lock.withLock {
                status = http.statusCode
                headers = h
                body = Data()
                truncated = false
            }
        }
        completionHandler(.allow)
    }

    func urlSession(_ session: URLSession, dataTask: URLSessionDataTask, didReceive data: Data) {
        let capped: Bool = lock.withLock {
            guard stopReason == nil else { return false }
            let room = maxBytes - body.count
            if data.count <= room {
                body.append(data)
                return false
            }
            body.append(data.prefix(max(0, room)))
            truncated = true
            stopReason = .capped
            return true
        }
        if capped { dataTask.cancel() }
    }

    func urlSession(
        _ session: URLSession, task: URLSessionTask, willPerformHTTPRedirection response: HTTPURLResponse,
        newRequest request: URLRequest, completionHandler: @escaping @Sendable (URLRequest?) -> Void
    ) {
        let follow: Bool = lock.withLock {
            guard method == "GET" || method == "HEAD", redirects < 5, let next = request.url else { return false }
            let same = next.scheme?.lowercased() == origin.scheme?.lowercased()
                && next.host?.lowercased() == origin.host?.lowercased()
                && Self.port(next) == Self.port(origin)
            if same { redirects += 1 }
            return same
        }
        completionHandler(follow ? request : nil)
    }

    func urlSession(_ session: URLSession, task: URLSessionTask, didCompleteWithError error: (any Error)?) {
        finish(error)
    }

    private static func port(_ url: URL) -> Int? {
        url.port ?? (url.scheme?.lowercased() == "https" ? 443 : url.scheme?.lowercased() == "http" ? 80 : nil)
    }
}
