import ArgumentParser
import CSealboxSpawn
import Foundation
import Glibc
import SealboxBase
import SealboxBroker
import SealboxTracing

struct BrokerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "broker",
        abstract: "The credential broker: holds secrets, runs tools for jails, writes the effect log.",
        subcommands: [BrokerServeCommand.self, BrokerRevokeCommand.self],
        defaultSubcommand: BrokerServeCommand.self
    )
}

struct BrokerServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Run the broker in the foreground (`sealbox broker --config FILE`).",
        discussion: """
            Loads tools and secrets from the config (YAML; see examples/broker.yaml), opens the
            effect log, and takes a lease on it (LEDGER.brokers/<broker-id>.lock, locked for the
            broker's life), so several brokers can share one effect log. Marks the calls that
            brokers which are gone left half-done (irreversible ones become in_doubt) and ends
            their grants; the work of brokers still running is left alone. Listens on
            STATE-DIR/control.sock (root only). `sealbox run --broker STATE-DIR/control.sock`
            opens a run on it; each run gets its own socket and token.
            Stops on SIGTERM or SIGINT (or when the --exit-with process exits): its live grants
            are recorded as revoked, calls in flight get up to 5 s to be sealed.
            """
    )

    @Option(name: .customLong(BrokerProcess.Arguments.Flag.config), help: "Broker config file (YAML).")
    var config: String

    @Option(name: .customLong(BrokerProcess.Arguments.Flag.socketDirectory), help: "Directory for the control and per-run sockets (runtime sockets only: the effect log is --ledger or the config's `ledger:`, else effects.db in the state directory).")
    var stateDir: String = StateLayout.standaloneBrokerDirectory

    @Option(name: .customLong(BrokerProcess.Arguments.Flag.ledger), help: "Effect log (SQLite) path; overrides the config's `ledger:`.")
    var ledger: String?

    @Option(name: .customLong(BrokerProcess.Arguments.Flag.exitWith), help: "Stop when the process with this pid exits (`sealbox run --tools` passes its own pid, so a killed runner leaves no broker behind).")
    var exitWith: Int32?

    /// Traced when the OTEL_* variables ask for it (a broker started by `serve`, `mcp` or `run`
    /// inherits them): a span per tool call, exported as a service of its own name.
    func run() async throws {
        try await TracingExport.whileRunning(serviceName: "sealbox-broker") { try await serve() }
    }

    private func serve() async throws {
        var watched: Int32?
        if let exitWith {
            // Opened before anything else: if the runner is already gone, there is nothing to serve.
            let fd = sbx_pidfd_open(exitWith)
            guard fd >= 0 else {
                // The runner that made our state directory died before we could watch it.
                if fd == -ESRCH { try? FileManager.default.removeItem(atPath: stateDir) }
                throw CLIFailure(message: "--exit-with \(exitWith): \(String(cString: strerror(-fd)))")
            }
            watched = fd
        }
        let service: BrokerServer
        do {
            try makeDirectories(stateDir)
            service = try BrokerServer(.init(configPath: config, stateDirectory: stateDir, ledgerPath: ledger))
        } catch {
            throw CLIFailure(message: "\(error)")
        }
        // What loads but deserves the operator's attention (a secret in a URL, a world-readable
        // secret file, a secret too short to redact).
        for warning in service.engine.config.warnings {
            writeStderr("sealbox broker: warning: \(warning)\n")
        }
        // A command tool's descendant that escapes its process group is reparented here, and
        // killed when its command ends.
        if !service.enableCommandOrphanReaping() {
            writeStderr("sealbox broker: warning: cannot become a child subreaper (\(String(cString: strerror(errno)))); a command tool's process that calls setsid may outlive its call\n")
        }
        let recovery: BrokerRecovery
        do {
            recovery = try await service.start()
        } catch {
            throw CLIFailure(message: error.description)
        }
        for call in recovery.calls {
            writeStderr("sealbox broker: seq \(call.intentSeq) \(call.tool) was left without completion by a broker that is gone: \(call.state.rawValue)\n")
        }
        if !recovery.grants.isEmpty {
            writeStderr("sealbox broker: ended \(recovery.grants.count) grant(s) left live by a broker that is gone (\(recovery.goneBrokers.isEmpty ? "recorded without a broker id" : recovery.goneBrokers.joined(separator: ", ")))\n")
        }
        if !recovery.liveBrokers.isEmpty {
            writeStderr("sealbox broker: \(recovery.liveBrokers.count) other broker(s) live on this effect log (\(recovery.liveBrokers.joined(separator: ", "))): left alone \(recovery.callsLeftAlone) executing call(s) and \(recovery.grantsLeftAlone) live grant(s)\n")
        }
        for (broker, why) in recovery.unprobedBrokers.sorted(by: { $0.key < $1.key }) {
            writeStderr("sealbox broker: cannot tell whether broker \(broker) is live (\(why)); its work is left alone\n")
        }
        writeStderr("sealbox broker: broker \(service.brokerID) listening on \(service.controlSocketPath) (\(service.engine.config.tools.count) tools, effect log \(service.engine.ledger.path))\n")
        let why = await waitForTermination(orExitOf: watched, pid: exitWith)
        let report = await service.shutdown(reason: why)
        if let failure = report.failure {
            writeStderr("sealbox broker: could not end this broker's grants in the effect log (a broker that starts later ends them): \(failure)\n")
        }
        if report.callsStillInFlight > 0 {
            writeStderr("sealbox broker: \(report.callsStillInFlight) call(s) still executing; left without completion, a broker that starts later marks them in doubt / interrupted\n")
        }
        writeStderr("sealbox broker: stopped (\(why); ended \(report.endedGrants.count) live grant(s))\n")
        if watched != nil {
            // A runner's own broker: the state directory is this run's alone. The runner removes
            // it too after we exit, but a runner killed just then (or already gone) cannot.
            try? FileManager.default.removeItem(atPath: stateDir)
        }
    }
}

import SealboxLedger

struct BrokerRevokeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "revoke",
        abstract: "Revoke a token or every token of a run, effective at the broker's next call.",
        discussion: "Prints how long the broker took to confirm the revocation."
    )

    @Option(name: .customLong("token-id"), help: "Token id to revoke.")
    var tokenID: String?

    @Option(name: .customLong("run"), help: "Run id whose tokens to revoke.")
    var runID: String?

    @Option(name: .long, help: "The broker's control socket.")
    var socket: String = StateLayout.standaloneBrokerDirectory + "/control.sock"

    func validate() throws {
        guard (tokenID == nil) != (runID == nil) else { throw ValidationError("give exactly one of --token-id or --run") }
    }

    func run() throws {
        let started = DispatchTime.now().uptimeNanoseconds
        let response: ControlResponse
        do throws(BrokerFailure) {
            response = try BrokerControlClient.send(ControlRequest(op: "revoke", runID: runID, tokenID: tokenID), socket: socket)
        } catch {
            throw CLIFailure(message: error.description)
        }
        guard response.ok else { throw CLIFailure(message: response.error?.message ?? "revoke failed") }
        let ms = Double(DispatchTime.now().uptimeNanoseconds - started) / 1_000_000
        print(String(format: "revoked %@ (confirmed by the broker in %.3f ms; calls after this are refused)", tokenID.map { "token \($0)" } ?? "run \(runID ?? "")", ms))
    }
}

func makeDirectories(_ path: String) throws {
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o711])
}

/// Returns on SIGTERM or SIGINT, or when the process behind `pidfd` exits (a pidfd becomes
/// readable then; pidfd_open(2)), saying which.
@discardableResult
func waitForTermination(orExitOf pidfd: Int32? = nil, pid: Int32? = nil) async -> String {
    signal(SIGTERM, SIG_IGN)
    signal(SIGINT, SIG_IGN)
    return await withCheckedContinuation { (continuation: CheckedContinuation<String, Never>) in
        let queue = DispatchQueue(label: "sealbox-signals")
        let once = OnceFlag()
        if let pidfd {
            let source = DispatchSource.makeReadSource(fileDescriptor: pidfd, queue: queue)
            source.setEventHandler {
                if once.claim() { continuation.resume(returning: "process \(pid.map(String.init) ?? "?") it was started for exited") }
            }
            source.resume()
            SignalSources.keepWatch(source)
        }
        for (sig, name) in [(SIGTERM, "SIGTERM"), (SIGINT, "SIGINT")] {
            let source = DispatchSource.makeSignalSource(signal: sig, queue: queue)
            source.setEventHandler {
                if once.claim() { continuation.resume(returning: name) }
            }
            source.resume()
            SignalSources.keep(source)
        }
    }
}

final class OnceFlag: @unchecked Sendable {  // guarded by lock
    private let lock = NSLock()
    private var done = false
    func claim() -> Bool { lock.withLock { defer { done = true }; return !done } }
}

enum SignalSources {
    nonisolated(unsafe) static var sources: [any DispatchSourceSignal] = []  // only touched during broker start-up, on one thread
    static func keep(_ source: any DispatchSourceSignal) { sources.append(source) }
    nonisolated(unsafe) static var watches: [any DispatchSourceRead] = []  // likewise
    static func keepWatch(_ source: any DispatchSourceRead) { watches.append(source) }
}
