import Foundation
import Glibc

/// A minimal HTTP/1.1 server on 127.0.0.1 answering every request `200 {}` (keep-alive),
/// counting requests: the no-op "world" for `sealbox bench effects`.
final class LoopbackHTTPServer: @unchecked Sendable {  // count guarded by lock; fd owned by the accept thread
    let port: UInt16
    private let fd: Int32
    private let lock = NSLock()
    private var requests = 0
    private var stopped = false

    init() throws {
        let sock = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        var one: Int32 = 1
        setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        let ok = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(sock, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } } == 0
        guard ok, listen(sock, 256) == 0 else { throw BenchFailure(message: "bench: cannot listen on 127.0.0.1") }
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(sock, $0, &len) } }
        fd = sock
        port = UInt16(bigEndian: addr.sin_port)
        let thread = Thread { [self] in acceptLoop() }
        thread.start()
    }

    var requestCount: Int { lock.withLock { requests } }

    func stop() { lock.withLock { stopped = true } }

    private func acceptLoop() {
        defer { close(fd) }
        while !lock.withLock({ stopped }) {
            var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&pfd, 1, 100) > 0 else { continue }
            let client = accept(fd, nil, nil)
            guard client >= 0 else { continue }
            _ = fcntl(client, F_SETFD, FD_CLOEXEC)
            let t = Thread { [self] in serve(client) }
            t.start()
        }
    }

    private func serve(_ client: Int32) {
        defer { close(client) }
        var buffer: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 16384)
        let reply = Array("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}".utf8)
        while true {
            // One request: headers, then Content-Length bytes of body.
            guard let headerEnd = readUntilHeaderEnd(client, &buffer, &chunk) else { return }
            let head = String(decoding: buffer[..<headerEnd], as: UTF8.self).lowercased()
            let length = head.split(separator: "\r\n").first { $0.hasPrefix("content-length:") }
                .flatMap { Int($0.dropFirst("content-length:".count).trimmingCharacters(in: .whitespaces)) } ?? 0
            let total = headerEnd + 4 + length
            while buffer.count < total {
                let n = recv(client, &chunk, chunk.count, 0)
                if n <= 0 { return }
                buffer.append(contentsOf: chunk[0..<n])
            }
            buffer.removeSubrange(0..<total)
            lock.withLock { requests += 1 }
            guard send(client, reply, reply.count, Int32(MSG_NOSIGNAL)) == reply.count else { return }
            if head.contains("connection: close") { return }
        }
    }

    private func readUntilHeaderEnd(_ client: Int32, _ buffer: inout [UInt8], _ chunk: inout [UInt8]) -> Int? {
        let marker: [UInt8] = [13, 10, 13, 10]
        while true {
            if buffer.count >= 4 {
                for i in 0...(buffer.count - 4) where buffer[i] == 13 && Array(buffer[i..<(i + 4)]) == marker { return i }
            }
            guard buffer.count < 65536 else { return nil }
            let n = recv(client, &chunk, chunk.count, 0)
            if n <= 0 { return nil }
            buffer.append(contentsOf: chunk[0..<n])
        }
    }
}
