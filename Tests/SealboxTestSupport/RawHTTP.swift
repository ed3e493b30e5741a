import Foundation
import Glibc

/// HTTP/1.1 over a plain socket, byte for byte: a hostile test must send exactly the bytes
/// it means (two members with one name, a NUL, a half-sent head), which no client library
/// lets it do. Every call is bounded in time (`timeout`, default 30 s).
public enum RawHTTP {
    public struct Answer: Sendable {
        public var status: Int
        public var headers: [String: String]
        public var body: String

        /// The body as a JSON object (or nil).
        public var json: [String: Any]? {
            (try? JSONSerialization.jsonObject(with: Data(body.utf8))) as? [String: Any]
        }

        /// `error.code`, `error.field`, `error.message` of an API error body.
        public var errorCode: String? { (json?["error"] as? [String: Any])?["code"] as? String }
        public var errorField: String? { (json?["error"] as? [String: Any])?["field"] as? String }
        public var errorMessage: String? { (json?["error"] as? [String: Any])?["message"] as? String }
    }

    /// A request with a body, `Connection: close`, and the key when given.
    public static func post(port: Int, _ path: String, key: String?, body: String, headers: [String: String] = [:]) throws -> Answer {
        try request(port: port, method: "POST", path, key: key, body: Array(body.utf8), headers: headers)
    }

    public static func get(port: Int, _ path: String, key: String?) throws -> Answer {
        try request(port: port, method: "GET", path, key: key, body: nil)
    }

    public static func request(port: Int, method: String, _ path: String, key: String?, body: [UInt8]?, headers: [String: String] = [:],
                               timeout: Double = 30) throws -> Answer {
        var head = "\(method) \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
        if let key { head += "Authorization: Bearer \(key)\r\n" }
        for (name, value) in headers.sorted(by: { $0.key < $1.key }) { head += "\(name): \(value)\r\n" }
        if let body { head += "Content-Type: application/json\r\nContent-Length: \(body.count)\r\n" }
        head += "\r\n"
        return try request(port: port, Array(head.utf8) + (body ?? []), timeout: timeout)
    }

    public static func request(port: Int, _ text: String, timeout: Double = 30) throws -> Answer {
        try request(port: port, Array(text.utf8), timeout: timeout)
    }

    /// Sends `bytes`, reads until the server closes, parses the answer.
    public static func request(port: Int, _ bytes: [UInt8], timeout: Double = 30) throws -> Answer {
        let fd = try connect(port: port, timeout: timeout)
        defer { close(fd) }
        try send(fd, bytes)
        let raw = try readAll(fd)
        return try parse(raw)
    }

    /// A connected socket to 127.0.0.1:`port`, from `source` (any address of 127/8, so a test
    /// can be several peers), with send and receive timeouts.
    public static func connect(port: Int, source: String? = nil, timeout: Double = 30) throws -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw CLIError("socket: errno \(errno)") }
        var tv = timeval(tv_sec: Int(timeout), tv_usec: Int((timeout - timeout.rounded(.down)) * 1_000_000))
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        if let source {
            var local = sockaddr_in()
            local.sin_family = sa_family_t(AF_INET)
            local.sin_addr.s_addr = inet_addr(source)
            let bound = withUnsafePointer(to: &local) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            guard bound == 0 else {
                let code = errno
                close(fd)
                throw CLIError("bind \(source): errno \(code)")
            }
        }
        var address = ServeProcess.loopback(port)
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else {
            let code = errno
            close(fd)
            throw CLIError("connect 127.0.0.1:\(port): errno \(code)")
        }
        return fd
    }

    public static func send(_ fd: Int32, _ bytes: [UInt8]) throws {
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress! + offset, $0.count - offset, Int32(MSG_NOSIGNAL)) }
            if n < 0 {
                if errno == EINTR { continue }
                throw CLIError("send: errno \(errno)")
            }
            offset += n
        }
    }

    /// Until EOF (or the receive timeout); at most 64 MiB.
    public static func readAll(_ fd: Int32) throws -> [UInt8] {
        var out: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        while out.count < 64 << 20 {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n < 0 {
                if errno == EINTR { continue }
                if errno == ECONNRESET { break }
                throw CLIError("recv: errno \(errno) after \(out.count) bytes")
            }
            if n == 0 { break }
            out += buffer[0..<n]
        }
        return out
    }

    /// True when the server closed the connection (EOF or reset) within `seconds`.
    public static func closedByPeer(_ fd: Int32, within seconds: Double) -> Bool {
        var pollfd = Glibc.pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            let left = Int32(max(1, deadline.timeIntervalSinceNow * 1000))
            let ready = poll(&pollfd, 1, left)
            if ready < 0 { if errno == EINTR { continue }; return false }
            if ready == 0 { return false }
            var byte: UInt8 = 0
            let n = recv(fd, &byte, 1, Int32(MSG_DONTWAIT))
            if n == 0 || (n < 0 && errno == ECONNRESET) { return true }
            if n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) { continue }
        }
        return false
    }

    public static func parse(_ raw: [UInt8]) throws -> Answer {
        guard let end = raw.firstRange(of: Array("\r\n\r\n".utf8)) else {
            throw CLIError("no HTTP head in \(raw.count) bytes: \(String(decoding: raw.prefix(200), as: UTF8.self))")
        }
        let head = String(decoding: raw[..<end.lowerBound], as: UTF8.self).components(separatedBy: "\r\n")
        let statusParts = head[0].split(separator: " ")
        guard statusParts.count >= 2, let status = Int(statusParts[1]) else { throw CLIError("bad status line \(head[0])") }
        var headers: [String: String] = [:]
        for line in head.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        var body = Array(raw[end.upperBound...])
        if headers["transfer-encoding"]?.lowercased() == "chunked" { body = dechunk(body) }
        return Answer(status: status, headers: headers, body: String(decoding: body, as: UTF8.self))
    }

    static func dechunk(_ bytes: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        var index = 0
        while index < bytes.count {
            guard let lineEnd = bytes[index...].firstRange(of: Array("\r\n".utf8)) else { break }
            let sizeText = String(decoding: bytes[index..<lineEnd.lowerBound], as: UTF8.self).split(separator: ";").first ?? ""
            guard let size = Int(sizeText, radix: 16), size > 0 else { break }
            let start = lineEnd.upperBound
            guard start + size <= bytes.count else { break }
            out += bytes[start..<start + size]
            index = start + size + 2
        }
        return out
    }
}
