import Foundation
import Glibc

/// A `sealbox serve` process on a free loopback port with a state directory of its own,
/// stopped with SIGTERM; its stderr (JSON log lines) goes to a file the test can read.
public final class ServeProcess: @unchecked Sendable {  // set up in init, then used by one test at a time
    public let port: Int
    public let stateDirectory: String
    public let logPath: String
    private let process = Process()
    /// Removes the state directory when it goes (false for a directory the test reuses).
    private let ownsState: Bool

    /// `stateDirectory`/`port`: reuse them (a restart); by default fresh ones. `logName`:
    /// the log file in the state directory (a restarted server writes its own).
    /// `wrapper`: a command that runs sealbox (`["/usr/bin/prlimit", "--nofile=128"]`).
    public init(_ flags: [String] = [], stateDirectory: String? = nil, port: Int? = nil, environment: [String: String] = [:],
                logName: String = "serve.log", waitForBroker: Bool = true, wrapper: [String] = []) throws {
        self.port = try port ?? Self.freePort()
        ownsState = stateDirectory == nil
        self.stateDirectory = try stateDirectory ?? TemporaryDirectory.make("serve")
        try FileManager.default.createDirectory(atPath: self.stateDirectory, withIntermediateDirectories: true)
        logPath = self.stateDirectory + "/" + logName
        _ = FileManager.default.createFile(atPath: logPath, contents: nil)
        let serve = ["serve", "--listen", "127.0.0.1:\(self.port)", "--state-dir", self.stateDirectory] + flags
        if let program = wrapper.first {
            process.executableURL = URL(fileURLWithPath: program)
            process.arguments = Array(wrapper.dropFirst()) + [Binaries.sealbox] + serve
        } else {
            process.executableURL = URL(fileURLWithPath: Binaries.sealbox)
            process.arguments = serve
        }
        if !environment.isEmpty {
            process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        }
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = FileHandle.nullDevice
        process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath))
        try process.run()
        try waitUntilListening()
        // The broker starts once the port is bound: wait for /healthz to say it runs.
        if waitForBroker { try waitForHealth { $0.contains("\"broker\":\"ok\"") } }
        // A tenant's key, as a user of the service has (not the operator key serve made).
        if !FileManager.default.fileExists(atPath: keyPath) {
            let created = try CLI.runBlocking(["keys", "create", "--state-dir", self.stateDirectory, "--tenant", "load"])
            guard created.status == 0, !created.stdout.isEmpty else { throw CLIError("keys create failed: \(created.stderr)") }
            try created.stdout.write(toFile: keyPath, atomically: true, encoding: .utf8)
        }
    }

    public var pid: Int32 { process.processIdentifier }
    public var isRunning: Bool { process.isRunning }

    /// The tenant key made at start ("load"), and the operator key serve wrote.
    public var key: String { ((try? String(contentsOfFile: keyPath, encoding: .utf8)) ?? "").trimmingCharacters(in: .whitespacesAndNewlines) }
    public var operatorKey: String {
        ((try? String(contentsOfFile: stateDirectory + "/api-key", encoding: .utf8)) ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// SIGKILL and reap: the way a server dies on a bad day.
    public func kill9() {
        guard process.isRunning else { return }
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    /// Polls GET /healthz (every 20 ms, at most 30 s) until `accept` likes its body.
    public func waitForHealth(_ accept: (String) -> Bool) throws {
        var last = ""
        for _ in 0..<1500 {
            guard process.isRunning else { throw CLIError("serve exited with \(process.terminationStatus): \(logLines.suffix(5).joined(separator: "\n"))") }
            if let answer = try? RawHTTP.request(port: port, "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n") {
                last = answer.body
                if accept(answer.body) { return }
            }
            usleep(20_000)
        }
        throw CLIError("/healthz never became ready: \(last)")
    }

    public var keyPath: String { stateDirectory + "/load.key" }

    public var keyFlags: [String] { ["--key-file", keyPath] }

    public var url: String { "http://127.0.0.1:\(port)" }

    public var logLines: [String] {
        ((try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "").split(separator: "\n").map(String.init)
    }

    /// SIGTERM, then the exit status (nil if it did not exit within 30 s: then SIGKILL).
    public func stop() -> Int32? {
        guard process.isRunning else { return process.terminationStatus }
        kill(process.processIdentifier, SIGTERM)
        for _ in 0..<3000 where process.isRunning { usleep(10_000) }
        guard !process.isRunning else {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            return nil
        }
        return process.terminationStatus
    }

    deinit {
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        if ownsState { TemporaryDirectory.remove(stateDirectory) }
    }

    /// Connects until the port answers (serve starts its broker first), at most 30 s.
    private func waitUntilListening() throws {
        for _ in 0..<300 {
            guard process.isRunning else {
                throw CLIError("serve exited with \(process.terminationStatus): \(logLines.joined(separator: "\n"))")
            }
            if Self.connects(port) { return }
            usleep(100_000)
        }
        throw CLIError("serve did not listen on \(port) within 30 s: \(logLines.joined(separator: "\n"))")
    }

    public static func connects(_ port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        defer { close(fd) }
        var address = loopback(port)
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        } == 0
    }

    /// A port the kernel just handed out (bound to port 0, then released).
    public static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        defer { close(fd) }
        var address = loopback(0)
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer in
                bind(fd, pointer, length) == 0 && getsockname(fd, pointer, &length) == 0
            }
        }
        guard bound else { throw CLIError("cannot find a free port: errno \(errno)") }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    public static func loopback(_ port: Int) -> sockaddr_in {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        return address
    }
}

