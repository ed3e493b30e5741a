import Foundation
import Glibc
import SealboxBase

/// Blocking AF_UNIX stream sockets with line framing. Used on dedicated threads only.
public enum UnixSocket {
    public struct Failure: Error, CustomStringConvertible, Sendable {
        public let description: String
    }

    /// Longest request or response line (1 MiB): a peer cannot make the broker buffer more.
    public static let maxLine = 1 << 20

    static func address(_ path: String) throws(Failure) -> sockaddr_un {
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        let capacity = MemoryLayout.size(ofValue: addr.sun_path)
        guard bytes.count < capacity else { throw Failure(description: "socket path too long (\(bytes.count) bytes, at most \(capacity - 1)): \(path)") }
        withUnsafeMutableBytes(of: &addr.sun_path) { raw in
            for (i, b) in bytes.enumerated() { raw[i] = b }
        }
        return addr
    }

    /// Listens on `path` (replacing a stale socket file) with the given mode and owner. The
    /// socket is bound under a temporary name and renamed into place once it listens, so a
    /// client that sees `path` never gets ECONNREFUSED from a socket not yet listening.
    public static func listen(path: String, mode: mode_t, owner: (uid_t, gid_t)? = nil) throws(Failure) -> Int32 {
        let staging = path + ".new"
        var addr = try address(staging)
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw Failure(description: "socket: \(String(cString: strerror(errno)))") }
        unlink(staging)
        let bound = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) } }
        guard bound == 0 else {
            let message = String(cString: strerror(errno))
            close(fd)
            throw Failure(description: "bind \(staging): \(message)")
        }
        guard chmod(staging, mode) == 0, owner.map({ chown(staging, $0.0, $0.1) == 0 }) ?? true,
              Glibc.listen(fd, 128) == 0, rename(staging, path) == 0 else {
            let message = String(cString: strerror(errno))
            close(fd)
            unlink(staging)
            throw Failure(description: "prepare \(path): \(message)")
        }
        return fd
    }

    public static func connect(path: String) throws(Failure) -> Int32 {
        var addr = try address(path)
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw Failure(description: "socket: \(String(cString: strerror(errno)))") }
        let rc = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) } }
        guard rc == 0 else {
            let message = String(cString: strerror(errno))
            close(fd)
            throw Failure(description: "connect \(path): \(message)")
        }
        return fd
    }

    /// Waits up to `timeoutMs` for a connection; nil on timeout (so accept loops can stop).
    static func accept(_ fd: Int32, timeoutMs: Int32) -> Int32? {
        var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        guard poll(&pfd, 1, timeoutMs) > 0 else { return nil }
        let client = Glibc.accept(fd, nil, nil)
        guard client >= 0 else { return nil }
        // Glibc's module map hides accept4; nothing forks between accept and here but the
        // executor's clone3, whose child closes every descriptor >= 3 anyway.
        _ = fcntl(client, F_SETFD, FD_CLOEXEC)
        return client
    }

    public static func writeLine(_ fd: Int32, _ data: Data) -> Bool {
        var bytes = [UInt8](data)
        bytes.append(UInt8(ascii: "\n"))
        var offset = 0
        while offset < bytes.count {
            let n = Interrupted.retry { bytes.withUnsafeBytes { send(fd, $0.baseAddress! + offset, $0.count - offset, Int32(MSG_NOSIGNAL)) } }
            if n < 0 { return false }
            offset += n
        }
        return true
    }
}

/// Reads newline-terminated lines from a socket, at most `UnixSocket.maxLine` each. Lines are
/// cut from the buffer by moving a start index, never by shifting the rest of the buffer: a
/// chunk of 64 KiB newlines costs 64 Ki steps, not 64 Ki times 64 KiB.
public final class LineReader {
    private let fd: Int32
    private var buffer: [UInt8] = []
    /// Where the unread part of `buffer` begins; `scanned`: how far it is known newline-free.
    private var start = 0
    private var scanned = 0
    private var chunk = [UInt8](repeating: 0, count: 65536)

    public init(fd: Int32) { self.fd = fd }

    public enum Line { case line(Data), eof, tooLong }

    public func next() -> Line {
        while true {
            if let newline = buffer[scanned...].firstIndex(of: UInt8(ascii: "\n")) {
                let line = Data(buffer[start..<newline])
                start = newline + 1
                scanned = start
                return .line(line)
            }
            scanned = buffer.count
            if buffer.count - start > UnixSocket.maxLine { return .tooLong }
            if start > 0 {
                // Everything before `start` was handed out: drop it once per read, not per line.
                buffer.removeSubrange(..<start)
                scanned -= start
                start = 0
            }
            let n = Interrupted.retry { chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) } }
            if n <= 0 {
                if buffer.isEmpty { return .eof }
                let rest = Data(buffer)
                buffer.removeAll()
                scanned = 0
                return .line(rest)
            }
            buffer.append(contentsOf: chunk[0..<n])
        }
    }
}

/// Runs async work from a dedicated (non-pool) thread and waits for it.
func waitForAsync<T: Sendable>(_ body: @escaping @Sendable () async -> T) -> T {
    let box = ResultBox<T>()
    let done = DispatchSemaphore(value: 0)
    Task {
        box.set(await body())
        done.signal()
    }
    done.wait()
    return box.take()
}

final class ResultBox<T: Sendable>: @unchecked Sendable {  // written once before the semaphore, read after
    private var value: T?
    func set(_ v: T) { value = v }
    func take() -> T { value! }
}
