import Foundation
import Glibc

/// A bare HTTP/1.1 client on a real socket that timestamps each line of a chunked body as it
/// arrives (HummingbirdTesting's clients hand over the body only once it is complete, which
/// would hide whether a run's output was streamed or sent at the end). Blocking reads run on
/// a thread of their own, never on the test's cooperative pool.
struct StreamedResponse {
    var status: Int
    var headers: [String: String]
    /// Body lines (without "\n") and when the line's newline arrived.
    var lines: [(at: ContinuousClock.Instant, text: String)]
    /// The whole body, for responses that are not line-oriented.
    var body: [UInt8]
}

enum StreamClient {
    struct Failure: Error, CustomStringConvertible { let description: String }

    /// POSTs `body` to 127.0.0.1:`port``path`. `stopWhen` is asked about each line; true
    /// closes the connection right there, as a client that goes away mid-stream does.
    static func post(port: Int, path: String = "/v1/runs", accept: String, body: String,
                     stopWhen: @escaping @Sendable (String) -> Bool = { _ in false }) async throws -> StreamedResponse {
        let outcome: Result<StreamedResponse, Failure> = await withCheckedContinuation { continuation in
            let thread = Thread {
                continuation.resume(returning: Result { () throws(Failure) in
                    try exchange(port: port, path: path, accept: accept, body: body, stopWhen: stopWhen)
                })
            }
            thread.start()
        }
        return try outcome.get()
    }

    private static func exchange(port: Int, path: String, accept: String, body: String,
                                 stopWhen: (String) -> Bool) throws(Failure) -> StreamedResponse {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw Failure(description: "socket: errno \(errno)") }
        defer { close(fd) }
        // Never hang a test: 20 s without a byte is a failure.
        var timeout = timeval(tv_sec: 20, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else { throw Failure(description: "connect to port \(port): errno \(errno)") }
        let payload = Array(body.utf8)
        let head = "POST \(path) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nAccept: \(accept)\r\nContent-Type: application/json\r\n"
            + "Content-Length: \(payload.count)\r\nConnection: close\r\n\r\n"
        let request = Array(head.utf8) + payload
        guard request.withUnsafeBytes({ send(fd, $0.baseAddress, $0.count, 0) }) == request.count else {
            throw Failure(description: "send: errno \(errno)")
        }

        var raw: [UInt8] = []
        var response: StreamedResponse?
        var chunked = false
        var decoded: [UInt8] = []      // body bytes so far
        var lineStart = 0
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n < 0 && errno == EINTR { continue }
            if n < 0 { throw Failure(description: "recv: errno \(errno) (timeout?)") }
            let now = ContinuousClock.now
            raw += buffer[0..<max(n, 0)]
            if response == nil, let end = find([13, 10, 13, 10], in: raw) {
                let lines = String(decoding: raw[0..<end], as: UTF8.self).components(separatedBy: "\r\n")
                let status = Int(lines[0].split(separator: " ").dropFirst().first ?? "") ?? 0
                var headers: [String: String] = [:]
                for line in lines.dropFirst() {
                    guard let colon = line.firstIndex(of: ":") else { continue }
                    headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
                }
                chunked = headers["transfer-encoding"]?.lowercased() == "chunked"
                response = StreamedResponse(status: status, headers: headers, lines: [], body: [])
                raw.removeFirst(end + 4)
            }
            if response != nil {
                if chunked {
                    decodeChunks(&raw, into: &decoded)
                } else {
                    decoded += raw
                    raw.removeAll()
                }
                while let newline = decoded[lineStart...].firstIndex(of: 10) {
                    let text = String(decoding: decoded[lineStart..<newline], as: UTF8.self)
                    response!.lines.append((now, text))
                    lineStart = newline + 1
                    if stopWhen(text) {
                        response!.body = decoded
                        return response!
                    }
                }
            }
            if n == 0 { break }
        }
        guard var response else { throw Failure(description: "connection closed before a response head") }
        response.body = decoded
        return response
    }

    /// Moves complete chunks of `raw` (size CRLF data CRLF) into `body`.
    private static func decodeChunks(_ raw: inout [UInt8], into body: inout [UInt8]) {
        while let sizeEnd = find([13, 10], in: raw) {
            let sizeText = String(decoding: raw[0..<sizeEnd], as: UTF8.self).split(separator: ";").first ?? ""
            guard let size = Int(sizeText.trimmingCharacters(in: .whitespaces), radix: 16) else { return }
            guard raw.count >= sizeEnd + 2 + size + 2 else { return }
            body += raw[(sizeEnd + 2)..<(sizeEnd + 2 + size)]
            raw.removeFirst(sizeEnd + 2 + size + 2)
            if size == 0 { return }
        }
    }

    private static func find(_ needle: [UInt8], in haystack: [UInt8]) -> Int? {
        guard haystack.count >= needle.count else { return nil }
        for start in 0...(haystack.count - needle.count) where haystack[start..<(start + needle.count)].elementsEqual(needle) {
            return start
        }
        return nil
    }
}
