import Foundation
import Synchronization
import Testing
@testable import SealboxBroker

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A fixed "now" for the pure token tests.
let tokenNow: Int64 = 1_700_000_000_000

/// The error `body` threw, or nil when it returned.
func tokenError<T>(_ body: () throws -> T) -> TokenError? {
    do {
        _ = try body()
        return nil
    } catch let error as TokenError {
        return error
    } catch {
        Issue.record("not a TokenError: \(error)")
        return nil
    }
}

/// The package's `client/` directory (holds sealbox.py and sealbox-call).
let tokenClientDirectory: String = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent()   // SealboxBrokerTests
    .deletingLastPathComponent()   // Tests
    .deletingLastPathComponent()   // package root
    .appendingPathComponent("client").path

let tokenSystemPython = "/usr/bin/python3"

struct TokenProcessOutput {
    var status: Int32
    var stdout: String
    var stderr: String
}

/// Runs a program to completion (killed after `timeout` seconds), output captured via files.
func tokenRunProcess(_ executable: String, _ arguments: [String], environment: [String: String],
                stdin: String = "", timeout: Double = 60) throws -> TokenProcessOutput {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("sbx-proc-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: dir) }
    let inURL = dir.appendingPathComponent("in"), outURL = dir.appendingPathComponent("out"), errURL = dir.appendingPathComponent("err")
    try Data(stdin.utf8).write(to: inURL)
    _ = FileManager.default.createFile(atPath: outURL.path, contents: nil)
    _ = FileManager.default.createFile(atPath: errURL.path, contents: nil)
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    process.environment = environment
    process.standardInput = try FileHandle(forReadingFrom: inURL)
    process.standardOutput = try FileHandle(forWritingTo: outURL)
    process.standardError = try FileHandle(forWritingTo: errURL)
    try process.run()
    let deadline = Date().addingTimeInterval(timeout)
    while process.isRunning && Date() < deadline { usleep(5_000) }
    if process.isRunning { process.terminate() }
    process.waitUntilExit()
    return TokenProcessOutput(
        status: process.terminationStatus,
        stdout: String(decoding: try Data(contentsOf: outURL), as: UTF8.self),
        stderr: String(decoding: try Data(contentsOf: errURL), as: UTF8.self)
    )
}

/// Base environment for the client: nothing from the host but a plain PATH.
func tokenClientEnvironment(token: String? = nil, broker: String? = nil) -> [String: String] {
    var env = ["PATH": "/usr/bin:/bin", "PYTHONPATH": tokenClientDirectory, "PYTHONDONTWRITEBYTECODE": "1", "LANG": "C.UTF-8"]
    if let token { env["SEALBOX_TOKEN"] = token }
    if let broker { env["SEALBOX_BROKER"] = broker }
    return env
}

/// Runs a Python snippet with the client on the path; fails the test on a non-zero exit.
func tokenRunPython(_ script: String, environment: [String: String] = tokenClientEnvironment(), stdin: String = "",
               python: String = tokenSystemPython) throws -> String {
    let out = try tokenRunProcess(python, ["-c", script], environment: environment, stdin: stdin)
    #expect(out.status == 0, "python failed: \(out.stderr)")
    return out.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
}

func tokenJSONObject(_ text: String) throws -> [String: Any] {
    let value = try JSONSerialization.jsonObject(with: Data(text.utf8))
    return try #require(value as? [String: Any], "not a JSON object: \(text)")
}

/// A one-shot broker stand-in: a real unix socket; a thread accepts one connection, reads one
/// line, answers with `answer` (sent as is: include the newline), and closes.
final class TokenFakeBroker: Sendable {
    let path: String
    private let directory: String
    private let listenFD: Int32
    private let answer: [UInt8]
    private let delayMs: Int32
    private let done = DispatchSemaphore(value: 0)
    private let received = Mutex<[UInt8]?>(nil)

    private init(answer: String, delayMs: Int32) throws {
        self.answer = Array(answer.utf8)
        self.delayMs = delayMs
        directory = "/tmp/sbxfb-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let socketPath = directory + "/broker.sock"
        path = socketPath
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw POSIXError(.EIO) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: Array(socketPath.utf8) + [0])
        }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard bound == 0, listen(fd, 4) == 0 else {
            close(fd)
            throw POSIXError(.EADDRINUSE)
        }
        listenFD = fd
    }

    /// Binds the socket and starts the serving thread.
    /// `delayMs`: wait that long (or until the client hangs up) before answering.
    static func start(answer: String, delayMs: Int32 = 0) throws -> TokenFakeBroker {
        let broker = try TokenFakeBroker(answer: answer, delayMs: delayMs)
        Thread.detachNewThread { broker.serveOnce() }
        return broker
    }

    private func serveOnce() {
        defer { done.signal() }
        var pfd = pollfd(fd: listenFD, events: Int16(POLLIN), revents: 0)
        guard poll(&pfd, 1, 30_000) == 1 else { return }
        let conn = accept(listenFD, nil, nil)
        guard conn >= 0 else { return }
        defer { close(conn) }
        var line: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while line.count < 2 << 20 {
            var cfd = pollfd(fd: conn, events: Int16(POLLIN), revents: 0)
            guard poll(&cfd, 1, 30_000) == 1 else { break }
            let n = read(conn, &buffer, buffer.count)
            if n <= 0 { break }
            line.append(contentsOf: buffer[0..<n])
            if buffer[0..<n].contains(UInt8(ascii: "\n")) { break }
        }
        received.withLock { $0 = line }
        if delayMs > 0 {
            var cfd = pollfd(fd: conn, events: Int16(POLLIN), revents: 0)
            _ = poll(&cfd, 1, delayMs)
        }
        var sent = 0
        while sent < answer.count {
            let n = answer.withUnsafeBytes { send(conn, $0.baseAddress! + sent, answer.count - sent, Int32(MSG_NOSIGNAL)) }
            if n <= 0 { break }
            sent += n
        }
    }

    /// The bytes the client sent (up to and including its newline), once the exchange is over.
    func request(timeout: Double = 30) -> String? {
        guard done.wait(timeout: .now() + timeout) == .success else { return nil }
        return received.withLock { $0.map { String(decoding: $0, as: UTF8.self) } }
    }

    deinit {
        close(listenFD)
        unlink(path)
        rmdir(directory)
    }
}
