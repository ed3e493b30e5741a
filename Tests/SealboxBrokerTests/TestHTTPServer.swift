import Foundation
import SealboxBase
import SealboxLedger

#if canImport(Glibc)
import Glibc
#endif

/// "The world" for broker tests: a real HTTP/1.1 server on a loopback address (port chosen by the
/// kernel), accepting on its own thread, one thread per connection, keep-alive. It records every
/// request it really received (method, raw path, raw query, headers, body) before answering, and
/// answers from canned responses per path (status, headers such as ETag, body, a delay, a
/// redirect), from a handler, or 404.
///
///     let server = try TestHTTPServer()            // 127.0.0.1:<port>; TestHTTPServer(host: "127.0.0.2") for "another host"
///     server.route("/repos/a/b/issues", .json(#"{"number":1}"#, status: 201, headers: [("ETag", "\"v1\"")]))
///     … call http://127.0.0.1:\(server.port)/repos/a/b/issues …
///     server.requests(to: "/repos/a/b/issues").first?.header("Authorization")
///     server.stop()                                 // also on deinit
final class TestHTTPServer: @unchecked Sendable {
    struct Request: Sendable {
        let method: String
        /// The request target exactly as sent ("/a%2Fb?x=1").
        let target: String
        /// The target before "?", still percent-encoded.
        let path: String
        /// The raw query (after "?"), if any.
        let query: String?
        let headers: [(name: String, value: String)]
        let body: Data

        /// The first header with this name (case-insensitive).
        func header(_ name: String) -> String? {
            headers.first { $0.name.lowercased() == name.lowercased() }?.value
        }

        /// Every value of this header (case-insensitive).
        func headerValues(_ name: String) -> [String] {
            headers.filter { $0.name.lowercased() == name.lowercased() }.map(\.value)
        }

        /// Decoded query items in order ("+" is not treated as space).
        var queryItems: [(name: String, value: String)] {
            guard let query, !query.isEmpty else { return [] }
            return query.split(separator: "&", omittingEmptySubsequences: true).map { item in
                let parts = item.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
                let name = String(parts[0]).removingPercentEncoding ?? String(parts[0])
                let value = parts.count > 1 ? (String(parts[1]).removingPercentEncoding ?? String(parts[1])) : ""
                return (name, value)
            }
        }

        var bodyText: String { String(decoding: body, as: UTF8.self) }

        var bodyJSON: JSONValue? { try? JSONReader.parse([UInt8](body)) }
    }

    struct Response: Sendable {
        var status: Int
        var headers: [(name: String, value: String)]
        var body: Data
        /// Wait this long after receiving the request before answering.
        var delay: Duration
        /// Close the connection without answering.
        var dropConnection: Bool

        init(status: Int = 200, headers: [(name: String, value: String)] = [], body: Data = Data(),
             delay: Duration = .zero, dropConnection: Bool = false) {
            self.status = status
            self.headers = headers
            self.body = body
            self.delay = delay
            self.dropConnection = dropConnection
        }

        static func text(_ text: String, status: Int = 200, headers: [(name: String, value: String)] = [], delay: Duration = .zero) -> Response {
            Response(status: status, headers: [("Content-Type", "text/plain; charset=utf-8")] + headers, body: Data(text.utf8), delay: delay)
        }

        static func json(_ json: String, status: Int = 200, headers: [(name: String, value: String)] = [], delay: Duration = .zero) -> Response {
            Response(status: status, headers: [("Content-Type", "application/json")] + headers, body: Data(json.utf8), delay: delay)
        }

        static func redirect(to location: String, status: Int = 302) -> Response {
            Response(status: status, headers: [("Location", location), ("Content-Type", "text/plain")], body: Data("moved\n".utf8))
        }

        static let notFound = Response.json(#"{"error":"not found"}"#, status: 404)
    }

    typealias Handler = @Sendable (Request) -> Response

    let host: String
    let port: Int
    var baseURL: String { "http://\(host):\(port)" }

    private let lock = NSLock()
    private var listenFD: Int32
    private var stopped = false
    private var recorded: [Request] = []
    private var routes: [String: Handler] = [:]
    private var fallback: Handler = { _ in .notFound }
    private var connections: Set<Int32> = []

    struct SetupError: Error, CustomStringConvertible {
        let description: String
    }

    init(host: String = "127.0.0.1") throws {
        self.host = host
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw SetupError(description: "socket: \(String(cString: strerror(errno)))") }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = 0
        guard inet_pton(AF_INET, host, &addr.sin_addr) == 1 else {
            close(fd)
            throw SetupError(description: "not an IPv4 address: \(host)")
        }
        let bound = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, listen(fd, 64) == 0 else {
            let e = String(cString: strerror(errno))
            close(fd)
            throw SetupError(description: "bind/listen \(host): \(e)")
        }
        var actual = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &actual) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        listenFD = fd
        port = Int(UInt16(bigEndian: actual.sin_port))
        let thread = Thread { [self] in acceptLoop(fd) }
        thread.name = "TestHTTPServer-accept"
        thread.start()
    }

    deinit { stop() }

    // MARK: configuration

    /// Answer requests for exactly this raw path (any method unless `method` is given).
    func route(_ path: String, method: String? = nil, _ response: Response) {
        route(path, method: method) { _ in response }
    }

    func route(_ path: String, method: String? = nil, handler: @escaping Handler) {
        lock.withLock { routes[Self.key(method, path)] = handler }
    }

    /// The answer for requests no route matches (default 404 JSON).
    func setFallback(_ handler: @escaping Handler) {
        lock.withLock { fallback = handler }
    }

    private static func key(_ method: String?, _ path: String) -> String { "\(method?.uppercased() ?? "*") \(path)" }

    // MARK: what it saw

    var requests: [Request] { lock.withLock { recorded } }

    func requests(to path: String) -> [Request] { requests.filter { $0.path == path } }

    func count(_ path: String) -> Int { requests(to: path).count }

    func resetRecorded() { lock.withLock { recorded.removeAll() } }

    /// A loopback port with nothing listening (bound, then closed).
    static func closedPort() -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = 0
        inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr)
        _ = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        var actual = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &actual) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        return Int(UInt16(bigEndian: actual.sin_port))
    }

    func stop() {
        let (fd, open): (Int32, Set<Int32>) = lock.withLock {
            guard !stopped else { return (-1, []) }
            stopped = true
            return (listenFD, connections)
        }
        if fd >= 0 { shutdown(fd, Int32(SHUT_RDWR)) }
        for c in open { shutdown(c, Int32(SHUT_RDWR)) }
    }

    private var isStopped: Bool { lock.withLock { stopped } }

    // MARK: serving

    private func acceptLoop(_ fd: Int32) {
        while true {
            let c = accept(fd, nil, nil)
            if c < 0 {
                if errno == EINTR && !isStopped { continue }
                break
            }
            let registered: Bool = lock.withLock {
                guard !stopped else { return false }
                connections.insert(c)
                return true
            }
            guard registered else { close(c); break }
            let thread = Thread { [self] in
                serve(c)
                lock.withLock { _ = connections.remove(c) }
                close(c)
            }
            thread.name = "TestHTTPServer-conn"
            thread.start()
        }
        close(fd)
    }

    private func serve(_ fd: Int32) {
        var buffer = Data()
        while !isStopped {
            guard let request = readRequest(fd, &buffer) else { return }
            let handler: Handler = lock.withLock {
                recorded.append(request)
                return routes[Self.key(request.method, request.path)] ?? routes[Self.key(nil, request.path)] ?? fallback
            }
            let response = handler(request)
            if response.delay > .zero {
                let until = ContinuousClock.now + response.delay
                while ContinuousClock.now < until && !isStopped { usleep(5_000) }
            }
            if response.dropConnection || isStopped { return }
            var head = "HTTP/1.1 \(response.status) \(Self.reason(response.status))\r\n"
            for h in response.headers where h.name.lowercased() != "content-length" { head += "\(h.name): \(h.value)\r\n" }
            head += "Content-Length: \(response.body.count)\r\n"
            let close = request.header("Connection")?.lowercased() == "close"
            head += close ? "Connection: close\r\n\r\n" : "Connection: keep-alive\r\n\r\n"
            guard send(fd, Data(head.utf8)) else { return }
            if request.method != "HEAD" { guard send(fd, response.body) else { return } }
            if close { return }
        }
    }

    private func send(_ fd: Int32, _ data: Data) -> Bool {
        data.withUnsafeBytes { raw -> Bool in
            var offset = 0
            while offset < raw.count {
                let n = Glibc.send(fd, raw.baseAddress! + offset, raw.count - offset, Int32(MSG_NOSIGNAL))
                if n < 0 { if errno == EINTR { continue }; return false }
                offset += n
            }
            return true
        }
    }

    /// Reads more bytes into `buffer`; false at EOF or error.
    private func fill(_ fd: Int32, _ buffer: inout Data) -> Bool {
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { return false }
            buffer.append(contentsOf: chunk[0..<n])
            return true
        }
    }

    private func readRequest(_ fd: Int32, _ buffer: inout Data) -> Request? {
        let separator = Data("\r\n\r\n".utf8)
        var headerEnd: Range<Data.Index>?
        while true {
            headerEnd = buffer.range(of: separator)
            if headerEnd != nil { break }
            guard buffer.count < 1 << 20, fill(fd, &buffer) else { return nil }
        }
        let headText = String(decoding: buffer[buffer.startIndex..<headerEnd!.lowerBound], as: UTF8.self)
        buffer = Data(buffer[headerEnd!.upperBound...])
        var lines = headText.components(separatedBy: "\r\n")
        let requestLine = lines.removeFirst().split(separator: " ", omittingEmptySubsequences: true)
        guard requestLine.count >= 2 else { return nil }
        let method = String(requestLine[0])
        let target = String(requestLine[1])
        var headers: [(name: String, value: String)] = []
        for line in lines where !line.isEmpty {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers.append((String(line[..<colon]), line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)))
        }
        func header(_ name: String) -> String? { headers.first { $0.name.lowercased() == name }?.value }
        if header("expect")?.lowercased() == "100-continue" {
            guard send(fd, Data("HTTP/1.1 100 Continue\r\n\r\n".utf8)) else { return nil }
        }
        var body = Data()
        if header("transfer-encoding")?.lowercased().contains("chunked") == true {
            while true {
                var lineEnd: Range<Data.Index>?
                while true {
                    lineEnd = buffer.range(of: Data("\r\n".utf8))
                    if lineEnd != nil { break }
                    guard fill(fd, &buffer) else { return nil }
                }
                let sizeText = String(decoding: buffer[buffer.startIndex..<lineEnd!.lowerBound], as: UTF8.self)
                let size = Int(sizeText.split(separator: ";").first.map(String.init) ?? "", radix: 16) ?? 0
                buffer = Data(buffer[lineEnd!.upperBound...])
                while buffer.count < size + 2 { guard fill(fd, &buffer) else { return nil } }
                if size == 0 {
                    buffer = Data(buffer.dropFirst(2))  // final CRLF (no trailers expected)
                    break
                }
                body.append(buffer.prefix(size))
                buffer = Data(buffer.dropFirst(size + 2))
            }
        } else if let length = header("content-length").flatMap({ Int($0) }), length > 0 {
            while buffer.count < length { guard fill(fd, &buffer) else { return nil } }
            body = Data(buffer.prefix(length))
            buffer = Data(buffer.dropFirst(length))
        }
        let parts = target.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)
        return Request(
            method: method, target: target, path: String(parts[0]),
            query: parts.count > 1 ? String(parts[1]) : nil, headers: headers, body: body
        )
    }

    private static func reason(_ status: Int) -> String {
        switch status {
        case 200: return "OK"
        case 201: return "Created"
        case 204: return "No Content"
        case 301: return "Moved Permanently"
        case 302: return "Found"
        case 303: return "See Other"
        case 304: return "Not Modified"
        case 307: return "Temporary Redirect"
        case 400: return "Bad Request"
        case 404: return "Not Found"
        case 409: return "Conflict"
        case 422: return "Unprocessable Entity"
        case 500: return "Internal Server Error"
        case 503: return "Service Unavailable"
        default: return "Status"
        }
    }
}
