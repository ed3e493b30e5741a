import Foundation
import Glibc

/// The broker process of `sealbox serve`: a separate `sealbox broker` holding the secrets of
/// the operator's tools and writing the effect log, so the API process never sees a secret.
/// It watches the server through a pidfd (`--exit-with`): a server killed with SIGKILL takes
/// its broker along, and the broker ends the grants it gave out.
public final class ServiceBroker: @unchecked Sendable {  // immutable after start; `process` is only stopped once
    public let controlSocket: String
    public let configPath: String
    private let process: Process
    private let logPath: String

    /// With no `toolsConfig`, a config with no tools: runs then get no broker grant, but the
    /// effect log and the broker are there for the operator's resolve/approve/deny.
    /// Async: waiting for the broker's socket sleeps the task, never a thread of the
    /// cooperative pool (a server's or a test runner's other tasks go on meanwhile).
    public static func start(executable: String, layout: ServiceLayout, toolsConfig: String?) async throws(ServiceStartError) -> ServiceBroker {
        let fm = FileManager.default
        let config: String
        if let toolsConfig {
            guard fm.isReadableFile(atPath: toolsConfig) else { throw ServiceStartError("--tools \(toolsConfig): no such readable file") }
            config = toolsConfig
        } else {
            config = layout.stateDirectory + "/broker-default.yaml"
            let text = "# Written by `sealbox serve` at every start: no tools. Pass --tools FILE to grant some.\ntools: {}\n"
            guard fm.createFile(atPath: config, contents: Data(text.utf8), attributes: [.posixPermissions: 0o600]) else {
                throw ServiceStartError("cannot write \(config)")
            }
        }
        let stateDirectory = layout.brokerStateDirectory
        // A broker of an earlier server that is gone left its sockets: start clean.
        try? fm.removeItem(atPath: stateDirectory)
        do {
            // 0711 like the per-run brokers' directories: jails reach their own run socket by
            // its full path, nobody can list the others.
            try fm.createDirectory(atPath: stateDirectory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o711])
        } catch {
            throw ServiceStartError("cannot create \(stateDirectory): \(error.localizedDescription)")
        }
        let logPath = layout.stateDirectory + "/broker.log"
        guard fm.createFile(atPath: logPath, contents: nil, attributes: [.posixPermissions: 0o600]),
              let log = FileHandle(forWritingAtPath: logPath) else {
            throw ServiceStartError("cannot create the broker's log \(logPath)")
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = ["broker", "--config", config, "--state-dir", stateDirectory, "--ledger", layout.ledgerPath,
                             "--exit-with", String(getpid())]
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = FileHandle.nullDevice
        process.standardError = log
        do {
            try process.run()
        } catch {
            throw ServiceStartError("cannot start the broker (\(executable)): \(error)")
        }
        let broker = ServiceBroker(controlSocket: stateDirectory + "/control.sock", configPath: config, process: process, logPath: logPath)
        // Up to 30 s: a large effect log on a loaded machine is slow to open and recover.
        for _ in 0..<3000 {
            if fm.fileExists(atPath: broker.controlSocket) { return broker }
            if !process.isRunning { break }
            try? await Task.sleep(for: .milliseconds(10))
        }
        broker.stop()
        throw ServiceStartError("the broker did not start: " + broker.logTail())
    }

    private init(controlSocket: String, configPath: String, process: Process, logPath: String) {
        self.controlSocket = controlSocket
        self.configPath = configPath
        self.process = process
        self.logPath = logPath
    }

    public var isRunning: Bool { process.isRunning }

    /// SIGTERM, then up to 10 s for calls in flight to seal (the broker itself gives them 5 s),
    /// then SIGKILL.
    public func stop() {
        guard process.isRunning else { return }
        process.terminate()
        for _ in 0..<1000 where process.isRunning { usleep(10_000) }
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
    }

    /// The last lines the broker wrote, for error messages.
    public func logTail(maxBytes: Int = 2000) -> String {
        let text = (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? ""
        let trimmed = text.trimmingCharacters(in: .whitespacesAndNewlines)
        return trimmed.isEmpty ? "no output (see \(logPath))" : String(trimmed.suffix(maxBytes))
    }
}

/// A start-up failure of the service, reported as one line.
public struct ServiceStartError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}
