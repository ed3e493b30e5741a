import SealboxBase
import Foundation
import Glibc
import SealboxBroker
import SealboxRuntime
import Synchronization

/// The broker process `sealbox serve` starts, watches and stops: a separate `sealbox broker`
/// holding the secrets of the operator's tools and writing the effect log, so the API process
/// never sees a secret.
/// It watches the server through a pidfd (`--exit-with`): a server killed with SIGKILL takes
/// its broker along, and the broker ends the grants it gave out.
///
/// Each broker owns a directory of its own under the service's socket directory
/// (`/run/sealbox/serve-<hash>/b-<pid>-<n>/`), and removes only that one when it stops. A
/// server killed with SIGKILL leaves its broker a few seconds to seal the calls in flight;
/// a server restarted meanwhile starts a broker in another directory, so the old one
/// removing its own never takes the new one's sockets away.
public final class ManagedBroker: Sendable {
    public let configPath: String
    public let stateDirectory: String
    private let process: BrokerProcess

    /// With no `toolsConfig`, a config with no tools: runs then get no broker grant, but the
    /// effect log and the broker are there for the operator's resolve/approve/deny.
    /// Async: waiting for the broker's socket sleeps the task, never a thread of the
    /// cooperative pool (a server's or a test runner's other tasks go on meanwhile).
    public static func start(executable: String, layout: StateLayout, toolsConfig: String?) async throws(ServiceStartError) -> ManagedBroker {
        let fm = FileManager.default
        let config: String
        if let toolsConfig {
            guard fm.isReadableFile(atPath: toolsConfig) else { throw ServiceStartError("--tools \(toolsConfig): no such readable file") }
            config = toolsConfig
        } else {
            config = layout.defaultBrokerConfigPath
            let text = "# Written by `sealbox serve` at every start: no tools. Pass --tools FILE to grant some.\ntools: {}\n"
            guard fm.createFile(atPath: config, contents: Data(text.utf8), attributes: [.posixPermissions: 0o600]) else {
                throw ServiceStartError("cannot write \(config)")
            }
        }
        let base = layout.brokerSocketsDirectory
        do {
            // 0711 like the per-run brokers' directories: jails reach their own run socket by
            // its full path, nobody can list the others.
            try fm.createDirectory(atPath: base, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o711])
        } catch {
            throw ServiceStartError("cannot create \(base): \(error.localizedDescription)")
        }
        // Directories of brokers that are gone (their control socket answers nothing). A
        // broker of a killed server still sealing its calls answers, and is left alone.
        BrokerRun.sweepStaleStateDirectories(in: base, prefix: "b-", minimumAge: 0)
        let stateDirectory = base + "/b-\(getpid())-\(String(UInt32.random(in: 0...UInt32.max), radix: 16))"
        // Each start keeps the previous broker's log as broker.log.1.
        let logPath = layout.brokerLogPath
        if fm.fileExists(atPath: logPath) {
            _ = rename(logPath, logPath + ".1")
        }
        // The broker makes its directory itself (0711) and removes it when it stops.
        let process: BrokerProcess
        do {
            process = try BrokerProcess.start(
                executable: executable, .init(config: config, socketDirectory: stateDirectory, ledger: layout.ledgerPath), logPath: logPath)
        } catch {
            throw ServiceStartError(error.description)
        }
        let broker = ManagedBroker(configPath: config, stateDirectory: stateDirectory, process: process)
        if await process.waitUntilListening() { return broker }
        await process.stopped()
        throw ServiceStartError("the broker did not start: " + broker.logTail())
    }

    private init(configPath: String, stateDirectory: String, process: BrokerProcess) {
        self.configPath = configPath
        self.stateDirectory = stateDirectory
        self.process = process
    }

    public var controlSocket: String { process.controlSocket }
    public var isRunning: Bool { process.isRunning }
    public var processIdentifier: Int32 { process.process.pid }

    /// Whether the broker answers on its control socket now (a connect, nothing sent).
    public var isReachable: Bool {
        process.isRunning && Self.answers(controlSocket)
    }

    /// Whether something listens on the Unix socket at `path`.
    static func answers(_ path: String) -> Bool {
        guard let fd = try? UnixSocket.connect(path: path) else { return false }
        close(fd)
        return true
    }

    /// SIGTERM, then up to 10 s for calls in flight to seal (the broker itself gives them 5 s),
    /// then SIGKILL. Blocks the calling thread; `stopped()` from a task.
    public func stop() {
        process.stop()
    }

    public func stopped() async {
        await process.stopped()
    }

    /// The last lines the broker wrote, for error messages.
    public func logTail(maxBytes: Int = 2000) -> String {
        let tail = process.logTail(maxBytes: maxBytes)
        return tail.isEmpty ? "no output (see \(process.logPath))" : tail
    }
}

/// The service's broker as the API sees it: not configured, starting (the server listens
/// before it starts its broker, so a second server on a busy port never starts one), running,
/// or failed. Tools runs read the control socket from here at the time they start.
public final class BrokerSlot: Sendable {
    public enum State: Sendable {
        case none
        case starting
        /// The service's own broker process.
        case running(ManagedBroker)
        /// A broker someone else runs, by its control socket (tests, embedding).
        case external(String)
        case failed(String)
    }

    private let state: Mutex<State>

    public init(_ state: State) {
        self.state = Mutex(state)
    }

    public var current: State { state.withLock { $0 } }

    public func set(_ new: State) {
        state.withLock { $0 = new }
    }

    /// The control socket of a running broker.
    public var controlSocket: String? {
        switch current {
        case .running(let broker): broker.controlSocket
        case .external(let socket): socket
        default: nil
        }
    }

    /// What /healthz says: ok, starting, unreachable, failed or none.
    public var health: String {
        switch current {
        case .none: "none"
        case .starting: "starting"
        case .running(let broker): broker.isReachable ? "ok" : "unreachable"
        case .external(let socket): ManagedBroker.answers(socket) ? "ok" : "unreachable"
        case .failed: "failed"
        }
    }
}

/// A start-up failure of the service, reported as one line.
public struct ServiceStartError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}
