import Foundation
import Glibc
import SealboxBase

/// Where `bench load` sends its runs: http://HOST[:PORT][/PREFIX]. Plain HTTP only; the
/// load tool measures the server, so it sits next to it (or behind the same proxy).
public struct LoadTarget: Sendable {
    var host: String
    var port: Int
    /// Path prefix before /v1/runs, without a trailing slash ("" for none).
    var prefix: String

    public init(url text: String) throws(BenchFailure) {
        guard let url = URL(string: text), url.scheme?.lowercased() == "http", let host = url.host, !host.isEmpty else {
            throw BenchFailure(message: "--url expects http://HOST[:PORT], e.g. http://127.0.0.1:8080, got \"\(text)\" (https is not supported)")
        }
        guard url.query == nil, url.fragment == nil, url.user == nil else {
            throw BenchFailure(message: "--url takes no query, fragment or user: \"\(text)\"")
        }
        self.host = host.hasPrefix("[") ? String(host.dropFirst().dropLast()) : host
        port = url.port ?? 80
        guard (1...65535).contains(port) else { throw BenchFailure(message: "--url: port \(port) is out of range") }
        var path = url.path
        while path.hasSuffix("/") { path.removeLast() }
        prefix = path
    }
}

/// One keep-alive HTTP/1.1 connection with blocking I/O, one per load worker thread: the
/// simplest client whose own cost is a few syscalls per request, so the numbers are the
/// server's. Answers are read by Content-Length or chunked encoding, at most `maxBody`.
final class LoadConnection {
    struct Failure: Error, CustomStringConvertible {
        var description: String
        /// Nothing at all came back: the request may be retried on a fresh connection once
        /// when the connection was reused (the server closed it while it sat idle).
        var beforeResponse: Bool
    }

    struct Answer {
        var status: Int
        var body: [UInt8]
    }

    static let maxBody = 64 << 20

    private var fd: Int32 = -1
    private var pending: [UInt8] = []
    /// Answers read on this connection: a failure with none read is a broken new connection.
    private(set) var served = 0
    let target: LoadTarget
    let timeoutSeconds: Int

    init(target: LoadTarget, timeoutSeconds: Int) {
        self.target = target
        self.timeoutSeconds = timeoutSeconds
    }

    deinit { close() }

    var isOpen: Bool { fd >= 0 }

    func close() {
        if fd >= 0 { Glibc.close(fd) }
        fd = -1
        pending = []
        served = 0
    }

    func connect() throws(Failure) {
        close()
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var list: UnsafeMutablePointer<addrinfo>?
        let rc = getaddrinfo(target.host, String(target.port), &hints, &list)
        guard rc == 0, let first = list else {
            throw Failure(description: "cannot resolve \(target.host): \(String(cString: gai_strerror(rc)))", beforeResponse: true)
        }
        defer { freeaddrinfo(list) }
        var lastErrno: Int32 = 0
        var entry: UnsafeMutablePointer<addrinfo>? = first
        while let info = entry {
            entry = info.pointee.ai_next
            let candidate = socket(info.pointee.ai_family, info.pointee.ai_socktype | Int32(SOCK_CLOEXEC.rawValue), info.pointee.ai_protocol)
            guard candidate >= 0 else { lastErrno = errno; continue }
            if Glibc.connect(candidate, info.pointee.ai_addr, info.pointee.ai_addrlen) == 0 {
                var one: Int32 = 1
                setsockopt(candidate, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
                var timeout = timeval(tv_sec: timeoutSeconds, tv_usec: 0)
                setsockopt(candidate, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
                setsockopt(candidate, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
                fd = candidate
                return
            }
            lastErrno = errno
            Glibc.close(candidate)
        }
        throw Failure(description: "connect to \(target.host):\(target.port): \(Self.describe(lastErrno))", beforeResponse: true)
    }

    /// Sends one request and reads its answer; the connection stays open unless the server
    /// said `Connection: close`.
    func exchange(_ request: [UInt8]) throws(Failure) -> Answer {
        if fd < 0 { try connect() }
        var offset = 0
        while offset < request.count {
            let n = Interrupted.retry { request.withUnsafeBytes { send(fd, $0.baseAddress! + offset, $0.count - offset, Int32(MSG_NOSIGNAL)) } }
            guard n > 0 else { throw failed("send: \(Self.describe(errno))", beforeResponse: true) }
            offset += n
        }
        let head = try readHead()
        let body: [UInt8]
        if let length = head.contentLength {
            guard length <= Self.maxBody else { throw failed("answer of \(length) bytes is over the \(Self.maxBody) limit") }
            body = try readExactly(length)
        } else if head.chunked {
            body = try readChunked()
        } else {
            body = try readToEnd()
        }
        served += 1
        if head.close { close() }
        return Answer(status: head.status, body: body)
    }

    private struct Head {
        var status: Int
        var contentLength: Int?
        var chunked: Bool
        var close: Bool
    }

    private func readHead() throws(Failure) -> Head {
        var end: Int?
        while true {
            end = Self.find([13, 10, 13, 10], in: pending)
            if end != nil { break }
            guard pending.count < 64 << 10 else { throw failed("response head over 64 KiB") }
            let nothingYet = pending.isEmpty
            let more: Bool
            do {
                more = try fill()
            } catch {
                throw Failure(description: error.description, beforeResponse: nothingYet)
            }
            guard more else { throw failed("connection closed by the server", beforeResponse: nothingYet) }
        }
        let lines = String(decoding: pending[0..<end!], as: UTF8.self).components(separatedBy: "\r\n")
        pending.removeFirst(end! + 4)
        let parts = lines[0].split(separator: " ", maxSplits: 2)
        guard parts.count >= 2, parts[0].hasPrefix("HTTP/1."), let status = Int(parts[1]) else {
            throw failed("not an HTTP/1.x status line: \(lines[0].prefix(80))")
        }
        var head = Head(status: status, contentLength: nil, chunked: false, close: parts[0] == "HTTP/1.0")
        for line in lines.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            let name = line[..<colon].lowercased()
            let value = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces).lowercased()
            switch name {
            case "content-length": head.contentLength = Int(value)
            case "transfer-encoding": head.chunked = value.contains("chunked")
            case "connection": head.close = value.contains("close") ? true : value.contains("keep-alive") ? false : head.close
            default: break
            }
        }
        return head
    }

    private func readExactly(_ count: Int) throws(Failure) -> [UInt8] {
        while pending.count < count {
            guard try fill() else { throw failed("connection closed in the middle of an answer") }
        }
        let out = Array(pending[0..<count])
        pending.removeFirst(count)
        return out
    }

    private func readLine() throws(Failure) -> String {
        while true {
            if let end = Self.find([13, 10], in: pending) {
                let line = String(decoding: pending[0..<end], as: UTF8.self)
                pending.removeFirst(end + 2)
                return line
            }
            guard pending.count < 4096 else { throw failed("chunk header over 4 KiB") }
            guard try fill() else { throw failed("connection closed in the middle of an answer") }
        }
    }

    private func readChunked() throws(Failure) -> [UInt8] {
        var body: [UInt8] = []
        while true {
            let sizeText = try readLine().split(separator: ";").first.map { $0.trimmingCharacters(in: .whitespaces) } ?? ""
            guard let size = Int(sizeText, radix: 16), size >= 0 else { throw failed("bad chunk size \"\(sizeText.prefix(20))\"") }
            if size == 0 {
                while try !readLine().isEmpty {}  // trailers
                return body
            }
            guard body.count + size <= Self.maxBody else { throw failed("chunked answer over the \(Self.maxBody) limit") }
            body += try readExactly(size)
            _ = try readExactly(2)
        }
    }

    private func readToEnd() throws(Failure) -> [UInt8] {
        while try fill() {
            guard pending.count <= Self.maxBody else { throw failed("answer over the \(Self.maxBody) limit") }
        }
        let out = pending
        close()
        return out
    }

    /// Reads what is there into `pending`; false at end of stream.
    private func fill() throws(Failure) -> Bool {
        var buffer = [UInt8](repeating: 0, count: 65536)
        let n = Interrupted.retry { buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) } }
        if n > 0 {
            pending += buffer[0..<n]
            return true
        }
        if n == 0 { return false }
        let reason = errno == EAGAIN || errno == EWOULDBLOCK ? "no answer within \(timeoutSeconds) s" : Self.describe(errno)
        throw failed("recv: \(reason)")
    }

    private func failed(_ what: String, beforeResponse: Bool = false) -> Failure {
        close()
        return Failure(description: what, beforeResponse: beforeResponse)
    }

    static func describe(_ code: Int32) -> String {
        String(cString: strerror(code))
    }

    static func find(_ needle: [UInt8], in haystack: [UInt8]) -> Int? {
        guard haystack.count >= needle.count else { return nil }
        var start = 0
        while start <= haystack.count - needle.count {
            if haystack[start] == needle[0] && haystack[start..<(start + needle.count)].elementsEqual(needle) { return start }
            start += 1
        }
        return nil
    }
}
