import Foundation
import Glibc
import SealboxBase

/// A `sealbox broker` process started by sealbox itself: for one `sealbox run --tools`, and
/// for `sealbox serve` and `sealbox mcp`. Its command line is defined here, beside the broker,
/// and `sealbox broker`'s flags take their names from `Arguments.Flag`, so the library
/// modules that start a broker never spell the CLI's flags themselves.
///
/// Secrets never enter the starting process: the broker reads them itself.
public final class BrokerProcess: Sendable {
    public struct Arguments: Sendable {
        /// The flag names of `sealbox broker` (BrokerCommand declares its options with these).
        public enum Flag {
            public static let config = "config"
            /// The directory of the control and per-run sockets (runtime, not the durable state).
            public static let socketDirectory = "state-dir"
            public static let ledger = "ledger"
            public static let exitWith = "exit-with"
        }

        public var config: String
        public var socketDirectory: String
        /// nil: the config's `ledger:`, else the default state directory's effects.db.
        public var ledger: String?
        /// The broker stops when this process exits (a pidfd): a starter killed with SIGKILL
        /// cannot stop its broker, so the broker watches it.
        public var exitWith: pid_t?

        public init(config: String, socketDirectory: String, ledger: String? = nil, exitWith: pid_t? = getpid()) {
            self.config = config
            self.socketDirectory = socketDirectory
            self.ledger = ledger
            self.exitWith = exitWith
        }

        public var argv: [String] {
            var argv = ["broker", "--" + Flag.config, config, "--" + Flag.socketDirectory, socketDirectory]
            if let ledger { argv += ["--" + Flag.ledger, ledger] }
            if let exitWith { argv += ["--" + Flag.exitWith, String(exitWith)] }
            return argv
        }
    }

    public let process: HostProcess
    public let controlSocket: String
    public let logPath: String

    /// The running sealbox binary (`/proc/self/exe`), which is `sealbox` when a CLI command or
    /// the server starts a broker.
    public static var ownExecutable: String {
        (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
    }

    private init(process: HostProcess, controlSocket: String, logPath: String) {
        self.process = process
        self.controlSocket = controlSocket
        self.logPath = logPath
    }

    /// Starts the broker with stderr to `logPath` (created 0600, truncated), stdin and stdout
    /// /dev/null, and no other descriptor of this process. Returns at once: `waitUntilListening`.
    public static func start(executable: String, _ arguments: Arguments, logPath: String) throws(BrokerFailure) -> BrokerProcess {
        let log = open(logPath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard log >= 0 else { throw BrokerFailure("cannot create the broker's log \(logPath): \(String(cString: strerror(errno)))") }
        defer { close(log) }
        let environment = ProcessInfo.processInfo.environment.map { "\($0.key)=\($0.value)" }
        do {
            let process = try HostProcess.spawn([executable] + arguments.argv, environment: environment, options: .init(stderr: log))
            return BrokerProcess(process: process, controlSocket: arguments.socketDirectory + "/control.sock", logPath: logPath)
        } catch {
            throw BrokerFailure("cannot start the broker (\(executable)): \(error.description)")
        }
    }

    /// Waits (sleeping the task, never a thread) until the control socket exists, or the broker
    /// exited, or `timeout` passed. Up to 30 s by default: a large effect log on a loaded
    /// machine is slow to open and recover.
    public func waitUntilListening(timeout: Duration = .seconds(30)) async -> Bool {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if FileManager.default.fileExists(atPath: controlSocket) { return true }
            if process.hasExited { return false }
            try? await Task.sleep(for: .milliseconds(10))
        }
        return FileManager.default.fileExists(atPath: controlSocket)
    }

    public var isRunning: Bool { !process.hasExited }

    /// SIGTERM, then up to `grace` for the calls in flight to seal (the broker itself gives them
    /// 5 s), then SIGKILL; reaped. Blocks the calling thread.
    public func stop(grace: Duration = .seconds(10)) {
        process.stop(grace: grace)
    }

    /// The same, from a task: on a thread of its own.
    public func stopped(grace: Duration = .seconds(10)) async {
        await onOwnThread("sealbox-broker-stop") { [self] in stop(grace: grace) }
    }

    /// The last lines the broker wrote ("sealbox: " turned into "broker: "), for error messages.
    public func logTail(maxBytes: Int = 2000) -> String {
        let text = ((try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
        return String(text.suffix(maxBytes)).replacingOccurrences(of: "sealbox: ", with: "broker: ")
    }
}

extension BrokerControlClient {
    /// `send`, from a task: the socket round trip blocks, so it runs on a thread of its own.
    public static func ask(_ request: ControlRequest, socket: String, timeoutSeconds: Int? = nil) async throws(BrokerFailure) -> ControlResponse {
        let answer: Result<ControlResponse, BrokerFailure> = await onOwnThread("sealbox-broker-control") {
            do throws(BrokerFailure) {
                return .success(try send(request, socket: socket, timeoutSeconds: timeoutSeconds))
            } catch {
                return .failure(error)
            }
        }
        return try answer.get()
    }
}
