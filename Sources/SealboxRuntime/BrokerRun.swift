import Foundation
import Glibc
import SealboxBase
import SealboxBroker
import SealboxJail

/// The broker side of one `sealbox run`: either a broker process started for this run
/// (`--tools FILE`), or a run opened on a running broker (`--broker SOCKET`). Secrets never
/// enter this process: a started broker is a separate process that reads them itself.
public final class BrokerRun: @unchecked Sendable {  // immutable after open
    public let runID: String
    public let grant: BrokerGrant
    private let controlSocket: String
    private let process: BrokerProcess?
    private let stateDirectory: String?

    private init(runID: String, grant: BrokerGrant, controlSocket: String, process: BrokerProcess?, stateDirectory: String?) {
        self.runID = runID
        self.grant = grant
        self.controlSocket = controlSocket
        self.process = process
        self.stateDirectory = stateDirectory
    }

    /// `sessionRoot`: the first session of `session`'s family (sessions forked from one
    /// another), whose irreversible effects bind every branch; nil when it is its own root.
    /// `ledgerPath`: the effect log of a broker started here (nil: its config's `ledger:`).
    /// `runID`: an id the caller already announced (a streamed API run names it first);
    /// nil for a fresh one. `traceparent`: the run's span, which the broker makes the parent of
    /// the run's tool-call spans (nil: tracing is off).
    public static func open(configPath: String?, controlSocket: String?, ledgerPath: String? = nil, allow: [String], session: String?, sessionRoot: String? = nil,
                     timeoutMs: Int, dataDirectory: String, runID: String? = nil, tenant: String? = nil,
                     traceparent: String? = nil) async throws -> BrokerRun {
        guard (configPath == nil) != (controlSocket == nil) else {
            throw RuntimeError(.badInput, configPath == nil ? "--allow needs --tools FILE or --broker SOCKET" : "give either --tools or --broker, not both", field: "tools")
        }
        guard !allow.isEmpty else { throw RuntimeError(.badInput, "grant at least one tool with --allow TOOL", field: "tools") }
        if let session, !BrokerServer.isIdentifier(session) {
            throw RuntimeError(.badInput, "a session id must be 1-64 letters, digits, - or _", field: "session")
        }
        if let runID, !BrokerServer.isIdentifier(runID) {
            throw RuntimeError(.badInput, "a run id must be 1-64 letters, digits, - or _", field: "id")
        }
        let runID = runID ?? RandomID.hex64(prefix: "r", padded: false)
        var process: BrokerProcess?
        var stateDirectory: String?
        var socket = controlSocket ?? ""
        if let configPath {
            guard FileManager.default.isReadableFile(atPath: configPath) else {
                throw RuntimeError(.badInput, "--tools \(configPath): no such readable file", field: "tools")
            }
            let base = StateLayout.runtimeDirectory
            sweepStaleStateDirectories(in: base)
            let dir = base + "/broker-\(runID)"
            do {
                try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o711])
            } catch {
                throw RuntimeError(.brokerUnavailable, "cannot create the broker's state directory \(dir): \(error.localizedDescription)")
            }
            let started = try await startBroker(configPath: configPath, stateDirectory: dir, ledgerPath: ledgerPath)
            process = started
            stateDirectory = dir
            socket = started.controlSocket
        }
        // The token outlives the run's timeout a little: teardown still needs no call.
        let request = ControlRequest(op: "open_run", runID: runID, sessionID: session ?? runID,
                                     sessionRoot: sessionRoot == session ? nil : sessionRoot, tools: allow, ttlMs: Int64(timeoutMs) + 5_000,
                                     tenant: tenant, traceparent: traceparent)
        let response: ControlResponse
        do {
            response = try await BrokerControlClient.ask(request, socket: socket)
        } catch {
            await stopBroker(process, stateDirectory)
            throw RuntimeError(.brokerUnavailable, error.description)
        }
        guard response.ok, let token = response.token, let path = response.socket else {
            await stopBroker(process, stateDirectory)
            if response.error?.code == .storageFull {
                throw RuntimeError(.storageFull, "the effect log's disk is full: no run with tools can start until space is freed", brokerCode: BrokerErrorCode.storageFull.rawValue)
            }
            throw RuntimeError(.brokerRefused, "broker refused the run: \(response.error?.message ?? "no reason given")",
                               brokerCode: response.error?.code.rawValue)
        }
        let client = dataDirectory + "/client"
        let grant = BrokerGrant(socketPath: path, token: token,
                                clientDirectory: FileManager.default.fileExists(atPath: client + "/sealbox.py") ? client : nil)
        return BrokerRun(runID: runID, grant: grant, controlSocket: socket, process: process, stateDirectory: stateDirectory)
    }

    /// What closing a run told: the last effect-log seq the run wrote, the calls it was
    /// refused because they wait on a decision, and `failure` when the broker's answer could
    /// not be had (then nothing about the run's effects is known, and a step is not sealed).
    public struct Closed: Sendable {
        public var lastSeq: Int64?
        public var blocked: [BlockedCall]
        public var blockedTotal: Int
        public var failure: String?
    }

    /// Where the open run's effects stand (its last effect-log seq) and the calls refused
    /// since the last look because they wait on a decision: a step of a run that goes on
    /// (a live sandbox's) is sealed on this. `failure` when the broker's answer could not be had.
    public func cursor() async -> Closed {
        do {
            let response = try await BrokerControlClient.ask(ControlRequest(op: "run_cursor", runID: runID), socket: controlSocket)
            guard response.ok else {
                return Closed(lastSeq: nil, blocked: [], blockedTotal: 0, failure: response.error?.message ?? "the broker refused run_cursor")
            }
            return Closed(lastSeq: response.lastSeq, blocked: response.blocked ?? [], blockedTotal: response.blockedTotal ?? response.blocked?.count ?? 0)
        } catch {
            return Closed(lastSeq: nil, blocked: [], blockedTotal: 0, failure: error.description)
        }
    }

    /// Revokes the run's token at once, then stops a broker started for this run.
    @discardableResult
    public func close() async -> Closed {
        let closed: Closed
        do {
            let response = try await BrokerControlClient.ask(ControlRequest(op: "close_run", runID: runID), socket: controlSocket)
            if response.ok {
                closed = Closed(lastSeq: response.lastSeq, blocked: response.blocked ?? [], blockedTotal: response.blockedTotal ?? response.blocked?.count ?? 0)
            } else {
                closed = Closed(lastSeq: nil, blocked: [], blockedTotal: 0, failure: response.error?.message ?? "the broker refused close_run")
            }
        } catch {
            closed = Closed(lastSeq: nil, blocked: [], blockedTotal: 0, failure: error.description)
        }
        await Self.stopBroker(process, stateDirectory)
        return closed
    }

    /// A runner killed before its broker could watch it (between creating the state
    /// directory and the broker's start) leaves the directory behind. Removes those older
    /// than a minute whose control socket answers nothing: no broker is using them.
    public static func sweepStaleStateDirectories(in base: String, prefix: String = "broker-r", minimumAge: TimeInterval = 60) {
        let fm = FileManager.default
        for name in (try? fm.contentsOfDirectory(atPath: base)) ?? [] where name.hasPrefix(prefix) {
            let dir = base + "/" + name
            guard let modified = (try? fm.attributesOfItem(atPath: dir))?[.modificationDate] as? Date,
                  Date().timeIntervalSince(modified) > minimumAge else { continue }
            if let fd = try? UnixSocket.connect(path: dir + "/control.sock") {
                Glibc.close(fd)  // a broker answers there: in use
                continue
            }
            try? fm.removeItem(atPath: dir)
        }
    }

    private static func startBroker(configPath: String, stateDirectory: String, ledgerPath: String?) async throws(RuntimeError) -> BrokerProcess {
        let broker: BrokerProcess
        do {
            broker = try BrokerProcess.start(
                executable: BrokerProcess.ownExecutable,
                .init(config: configPath, socketDirectory: stateDirectory, ledger: ledgerPath),
                logPath: stateDirectory + "/broker.log")
        } catch {
            throw RuntimeError(.brokerUnavailable, error.description)
        }
        if await broker.waitUntilListening() { return broker }
        let said = broker.logTail()
        await stopBroker(broker, stateDirectory)
        throw RuntimeError(.brokerUnavailable, said.isEmpty ? "the broker did not start within 30 s" : said)
    }

    /// A broker started for one run has nothing in flight once its run is closed: a short grace.
    private static func stopBroker(_ process: BrokerProcess?, _ stateDirectory: String?) async {
        await process?.stopped(grace: .seconds(10))
        if let stateDirectory { try? FileManager.default.removeItem(atPath: stateDirectory) }
    }
}
