import Foundation
import SealboxBase
import Glibc
import SealboxLedger
import SealboxSQLite
import SealboxTracing
import Synchronization

public struct BrokerFailure: Error, CustomStringConvertible, Sendable {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// The broker process's long-lived part: a control socket for the operator and the executor
/// (open a run, close it, revoke), and one socket per open run for the jail, all answered by
/// the `EffectEngine`. Secrets stay in this process's memory.
public final class BrokerServer: Sendable {
    public struct Configuration: Sendable {
        public var configPath: String
        /// Sockets: control.sock and runs/<run>.sock.
        public var stateDirectory: String
        /// Overrides the config's `ledger:`.
        public var ledgerPath: String?
        public var environment: [String: String]

        public init(configPath: String, stateDirectory: String = StateLayout.standaloneBrokerDirectory,
                    ledgerPath: String? = nil, environment: [String: String] = ProcessInfo.processInfo.environment) {
            self.configPath = configPath
            self.stateDirectory = stateDirectory
            self.ledgerPath = ledgerPath
            self.environment = environment
        }
    }


    /// Most concurrent connections per run; more are refused, not queued without bound.
    static let maxConnectionsPerRun = 64
    /// Host uid the jail's user maps to; run sockets belong to it so only that run can connect.
    static let jailHostUID: uid_t = geteuid() == 0 ? 65534 : getuid()
    static let jailHostGID: gid_t = geteuid() == 0 ? 65534 : getgid()

    public let engine: EffectEngine
    public let controlSocketPath: String
    /// Held for this broker's life: see `BrokerLeases`.
    let lease: any BrokerLease
    let configuration: Configuration
    private let state = Mutex(State())

    struct RunEntry: Sendable {
        var sessionID: String
        var tokenID: String
        var socketPath: String
        var listener: Listener
    }

    struct State: Sendable {
        var runs: [String: RunEntry] = [:]
        /// Per run: calls refused to wait on a decision (reported by close_run).
        var blocked: [String: BlockedSummary] = [:]
        /// Run ids between the checks of `openRun` and their entry in `runs`.
        var opening: Set<String> = []
        var control: Listener?
        var connections: [String: Int] = [:]
    }

    /// A listening socket owned by its accept thread: others only ask it to stop, and the
    /// thread closes the descriptor, so a reused fd number is never accepted on by mistake.
    final class Listener: Sendable {
        let fd: Int32
        let path: String
        private let stopped = Atomic<Bool>(false)

        init(fd: Int32, path: String) {
            self.fd = fd
            self.path = path
        }

        var isStopped: Bool { stopped.load(ordering: .acquiring) }

        func stop() {
            stopped.store(true, ordering: .releasing)
            unlink(path)
        }
    }

    public init(_ configuration: Configuration) throws(BrokerFailure) {
        self.configuration = configuration
        let config: BrokerConfig
        do {
            config = try BrokerConfigLoader.load(path: configuration.configPath, environment: configuration.environment)
        } catch {
            throw BrokerFailure("config \(configuration.configPath): \(error.message)")
        }
        let ledgerPath = configuration.ledgerPath ?? config.ledgerPath ?? StateLayout.default.ledgerPath
        let ledger: Ledger
        do {
            ledger = try StateStores.effectLog(file: ledgerPath)
        } catch {
            throw BrokerFailure("effect log \(ledgerPath): \(error.message)")
        }
        let known: (tokenIDs: Set<String>, runIDs: Set<String>)
        let lease: any BrokerLease
        do {
            known = try ledger.revocations()
            // Before anything is written under this broker's id (see BrokerLeases).
            lease = try ledger.leases.acquire()
        } catch {
            throw BrokerFailure("effect log \(ledgerPath): \(error.message)")
        }
        self.engine = EffectEngine(
            config: config, ledger: ledger, authority: TokenAuthority(key: TokenAuthority.randomKey()),
            revocations: RevocationList(tokenIDs: known.tokenIDs, runIDs: known.runIDs), lease: lease)
        self.lease = lease
        self.controlSocketPath = configuration.stateDirectory + "/control.sock"
    }

    /// Makes this process the reaper of command tools' escaped descendants (`CommandOrphans`).
    /// Only for a process of its own (`sealbox broker`): every child it has is then a command.
    public func enableCommandOrphanReaping() -> Bool {
        CommandOrphans.enable()
    }

    /// This broker's id on the effect log: recorded in every grant it writes, and the name of
    /// its lease (on one machine `<ledger>.brokers/<id>.lock`).
    public var brokerID: String { lease.brokerID }

    /// Recovers what brokers that are GONE left half-done — their calls without completion
    /// become in doubt (irreversible) or interrupted, their live grants are ended (their token
    /// key died with them) — and leaves the work of live brokers sharing the effect log alone.
    /// Then listens.
    @discardableResult
    public func start() async throws(BrokerFailure) -> BrokerRecovery {
        let recovery: BrokerRecovery
        do {
            recovery = try await engine.ledger.recoverAbandonedWork(lease: lease)
        } catch {
            throw BrokerFailure("effect log: \(error.message)")
        }
        for dir in [configuration.stateDirectory, configuration.stateDirectory + "/runs"] {
            if mkdir(dir, 0o711) != 0 && errno != EEXIST {
                throw BrokerFailure("mkdir \(dir): \(String(cString: strerror(errno)))")
            }
            chmod(dir, 0o711)
        }
        let fd: Int32
        do {
            fd = try UnixSocket.listen(path: controlSocketPath, mode: 0o600)
        } catch {
            throw BrokerFailure(error.description)
        }
        let listener = Listener(fd: fd, path: controlSocketPath)
        state.withLock { $0.control = listener }
        startAcceptLoop(listener, name: "control") { [self] line in
            let response = await self.control(line)
            return (try? JSONEncoder().encode(response)) ?? Data()
        }
        return recovery
    }

    /// Stops listening; every open run's token is revoked in memory. The effect log is not
    /// written (use `shutdown`): the grants stay live there until a broker that starts later
    /// finds this one gone. The lease is released when no call is in flight.
    public func stop() {
        stopListening()
        if engine.callsInFlight == 0 { lease.release() }
    }

    public struct ShutdownReport: Sendable {
        /// This broker's grants that were live and are now ended in the effect log.
        public var endedGrants: [GrantSummary]
        /// Calls still executing when the grace period ran out: left pending, they become in
        /// doubt / interrupted when the next broker starts.
        public var callsStillInFlight: Int
        /// Why the grants could not be ended in the log, if they could not.
        public var failure: String?
    }

    /// A graceful stop: stops listening and refuses every token at once, records this broker's
    /// still-live grants as revoked (`reason`) so the log does not show a dead broker's tokens as
    /// live authority, waits up to `grace` for calls in flight to be sealed, then releases the
    /// lease. A call still running after `grace` keeps the lease until the process exits, so no
    /// other broker takes it for abandoned while it may still complete.
    public func shutdown(reason: String = "broker stopped", grace: Duration = .seconds(5)) async -> ShutdownReport {
        stopListening()
        var report = ShutdownReport(endedGrants: [], callsStillInFlight: 0, failure: nil)
        do {
            report.endedGrants = try await engine.ledger.revokeLiveGrants(ofBroker: lease.brokerID, reason: "broker \(lease.brokerID) stopped: \(reason)")
        } catch {
            report.failure = error.message
        }
        let deadline = ContinuousClock.now + grace
        while engine.callsInFlight > 0 && ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(20))
        }
        report.callsStillInFlight = engine.callsInFlight
        if report.callsStillInFlight == 0 { lease.release() }
        return report
    }

    private func stopListening() {
        let (control, runs) = state.withLock { s in
            let result = (s.control, s.runs)
            s.runs = [:]
            s.control = nil
            return result
        }
        control?.stop()
        for (runID, run) in runs {
            engine.revocations.revoke(runID: runID)
            run.listener.stop()
        }
    }

    // MARK: control operations

    func control(_ line: Data) async -> ControlResponse {
        let request: ControlRequest
        do {
            request = try StrictJSONDecoder.decode(ControlRequest.self, from: [UInt8](line))
        } catch {
            return ControlResponse(ok: false, error: BrokerError(.badRequest, "control request is not a JSON object with op: \(error.message)"))
        }
        switch request.op {
        case "open_run":
            do {
                return try await openRun(runID: request.runID ?? "", sessionID: request.sessionID ?? "", sessionRoot: request.sessionRoot,
                                         tools: request.tools ?? [], ttlMs: request.ttlMs ?? 600_000, tenant: request.tenant,
                                         traceparent: request.traceparent)
            } catch {
                return ControlResponse(ok: false, error: error)
            }
        case "close_run":
            guard let runID = request.runID else { return ControlResponse(ok: false, error: BrokerError(.badRequest, "close_run needs run_id")) }
            await closeRun(runID: runID)
            let blocked = state.withLock { $0.blocked.removeValue(forKey: runID) }
            let lastSeq: Int64?
            do {
                lastSeq = try engine.ledger.lastSeq(runID: runID)
            } catch {
                // Without the cursor the step cannot be sealed truthfully: say so.
                return ControlResponse(ok: false, error: BrokerError(.toolFailed, "run \(runID) closed, but its last effect-log seq is unreadable: \(error.message)"))
            }
            return ControlResponse(ok: true, lastSeq: lastSeq, blocked: blocked.map(\.calls), blockedTotal: blocked?.total)
        case "run_cursor":
            // A run that outlives its steps (a live sandbox): where its effects stand now, and
            // the calls refused since the last look because they wait on a decision.
            guard let runID = request.runID else { return ControlResponse(ok: false, error: BrokerError(.badRequest, "run_cursor needs run_id")) }
            guard state.withLock({ $0.runs[runID] != nil }) else {
                return ControlResponse(ok: false, error: BrokerError(.badRequest, "run \(runID) is not open"))
            }
            let blocked = state.withLock { $0.blocked.removeValue(forKey: runID) }
            do {
                return ControlResponse(ok: true, lastSeq: try engine.ledger.lastSeq(runID: runID), blocked: blocked.map(\.calls), blockedTotal: blocked?.total)
            } catch {
                return ControlResponse(ok: false, error: BrokerError(.toolFailed, "run \(runID): its last effect-log seq is unreadable: \(error.message)"))
            }
        case "revoke":
            guard request.runID != nil || request.tokenID != nil else {
                return ControlResponse(ok: false, error: BrokerError(.badRequest, "revoke needs token_id or run_id"))
            }
            await revoke(tokenID: request.tokenID, runID: request.runID, reason: "operator")
            return ControlResponse(ok: true)
        case "status":
            return ControlResponse(ok: true, tools: engine.config.tools.keys.sorted(), runs: state.withLock { $0.runs.count }, limits: engine.usage.counters)
        default:
            return ControlResponse(ok: false, error: BrokerError(.badRequest, "unknown control op \"\(request.op)\" (open_run, close_run, run_cursor, revoke, status)"))
        }
    }

    /// Mints the run's token for exactly `tools` and opens the run's own socket.
    ///
    /// Before the token is handed out, the effect log records the grant and the session's family
    /// (`sessionRoot`: the family's root when the session is a fork; nil: its own root). A
    /// session already recorded under another root is refused (`bad_request`). `tenant`: who
    /// the run's calls count against (`BrokerLimits.perTenant`); nil: the session's family.
    /// `traceparent`: the run's span; each call on the run's socket is traced as its child
    /// (`ToolCallTracing`). Only this control request sets it: nothing a jail sends on its own
    /// socket can choose the trace its calls join.
    public func openRun(runID: String, sessionID: String, sessionRoot: String? = nil, tools: [String], ttlMs: Int64,
                        tenant: String? = nil, traceparent: String? = nil) async throws(BrokerError) -> ControlResponse {
        guard Self.isIdentifier(runID), Self.isIdentifier(sessionID) else {
            throw BrokerError(.badRequest, "run_id and session_id must be 1-64 letters, digits, - or _")
        }
        if let tenant, !Self.isIdentifier(tenant) {
            throw BrokerError(.badRequest, "tenant must be 1-64 letters, digits, - or _")
        }
        // "session:" cannot start a tenant name: the two never share quotas.
        let accountable = tenant ?? "session:" + (sessionRoot ?? sessionID)
        if let sessionRoot, !Self.isIdentifier(sessionRoot) {
            throw BrokerError(.badRequest, "session_root must be 1-64 letters, digits, - or _")
        }
        guard ttlMs > 0, ttlMs <= 7 * 86_400_000 else { throw BrokerError(.badRequest, "ttl_ms must be between 1 ms and 7 days") }
        let unknown = tools.filter { engine.config.tools[$0] == nil }
        guard unknown.isEmpty else {
            // Neither the config's path nor its other tools: the answer may reach a tenant
            // (through `sealbox serve`), and the operator has the config at hand.
            throw BrokerError(.unknownTool, "no tool named \(unknown.map { "\"\(Printable.text($0, limit: 64))\"" }.joined(separator: ", ")) in this broker's config")
        }
        // Reserved under the lock: the awaits below must not let a second open_run of the same id in.
        let reserved = !engine.revocations.isRevoked(tokenID: "", runID: runID) && state.withLock { s in
            guard s.runs[runID] == nil, !s.opening.contains(runID) else { return false }
            s.opening.insert(runID)
            return true
        }
        guard reserved else { throw BrokerError(.badRequest, "run \(runID) was already opened") }
        defer { state.withLock { _ = $0.opening.remove(runID) } }

        let expiresAtMs = EffectEngine.nowMs() + ttlMs
        let minted: (token: String, tokenID: String)
        do {
            minted = try engine.authority.tryMint(runID: runID, sessionID: sessionID, tools: tools, expiresAtMs: expiresAtMs)
        } catch {
            throw BrokerError(.badRequest, "cannot mint a token for this run: \(error.message)")
        }
        let grant = GrantInput(tokenID: minted.tokenID, runID: runID, sessionID: sessionID, sessionRoot: sessionRoot,
                               tools: tools, expiresAtMs: expiresAtMs, brokerID: lease.brokerID, tenant: accountable)
        do {
            _ = try await engine.ledger.appendGrant(grant)
        } catch {
            // Nothing was handed out: the token only ever existed in this function.
            if error.code == .invalidInput { throw BrokerError(.badRequest, "run \(runID) refused: \(error.message)") }
            if error.code == .storageFull { throw BrokerError(.storageFull, "run \(runID) refused: the effect log's disk is full") }
            throw BrokerError(.toolFailed, "run \(runID) refused: could not record its grant in the effect log: \(error.message)")
        }
        let path = configuration.stateDirectory + "/runs/\(runID).sock"
        let fd: Int32
        do {
            fd = try UnixSocket.listen(path: path, mode: 0o600, owner: (Self.jailHostUID, Self.jailHostGID))
        } catch {
            // The grant is in the log: end it, or the log would show authority nobody holds.
            await revoke(tokenID: minted.tokenID, runID: runID, reason: "run could not be opened")
            throw BrokerError(.toolFailed, error.description)
        }
        let listener = Listener(fd: fd, path: path)
        let budget = engine.usage.open(runID: runID, tenant: accountable)
        state.withLock { $0.runs[runID] = RunEntry(sessionID: sessionID, tokenID: minted.tokenID, socketPath: path, listener: listener) }
        let trace = ToolCallTracing(runID: runID, parent: TraceParent.context(traceparent))
        startAcceptLoop(listener, name: "run-\(runID)", budget: budget) { [self] line in
            let response = await trace.call { span in await self.engine.handle(line: line, runID: runID, span: span) }
            if let error = response.error, BlockedCall.isBlocking(error.code) {
                let call = BlockedCall(seq: response.effect?.seq, code: error.code, message: error.message)
                self.state.withLock { $0.blocked[runID, default: BlockedSummary()].add(call) }
            }
            return response.encodedLine()
        }
        return ControlResponse(ok: true, token: minted.token, tokenID: minted.tokenID, socket: path)
    }

    /// Revokes the run's tokens the instant the run ends and removes its socket. The revocation
    /// record (by run id, "run ended") is the log's fact that the run's grant ended.
    public func closeRun(runID: String) async {
        await revoke(tokenID: nil, runID: runID, reason: "run ended")
        state.withLock { $0.runs.removeValue(forKey: runID) }?.listener.stop()
        engine.usage.close(runID: runID)
    }

    public func revoke(tokenID: String?, runID: String?, reason: String) async {
        // Memory first: the next call is refused from this instant; then the durable record.
        if let tokenID { engine.revocations.revoke(tokenID: tokenID) }
        if let runID { engine.revocations.revoke(runID: runID) }
        _ = try? await engine.ledger.recordRevocation(tokenID: tokenID, runID: runID, reason: reason)
    }

    // MARK: sockets

    /// `budget`: what each request line is charged (a run's socket); nil: the control socket.
    private func startAcceptLoop(_ listener: Listener, name: String, budget: FlowBudget? = nil, handler: @escaping @Sendable (Data) async -> Data) {
        let thread = Thread { [self] in
            defer { close(listener.fd) }
            while !listener.isStopped {
                guard let client = UnixSocket.accept(listener.fd, timeoutMs: 100) else { continue }
                let admitted = state.withLock { s -> Bool in
                    let count = s.connections[name, default: 0]
                    guard count < Self.maxConnectionsPerRun else { return false }
                    s.connections[name] = count + 1
                    return true
                }
                guard admitted else {
                    let busy = CallResponse.failure(BrokerError(.badRequest, "too many connections to this run (at most \(Self.maxConnectionsPerRun))"))
                    _ = UnixSocket.writeLine(client, (try? JSONEncoder().encode(busy)) ?? Data())
                    close(client)
                    continue
                }
                let worker = Thread { [self] in
                    serve(client: client, listener: listener, budget: budget, handler: handler)
                    state.withLock { $0.connections[name, default: 1] -= 1 }
                }
                worker.name = "sealbox-broker-\(name)-conn"
                worker.start()
            }
        }
        thread.name = "sealbox-broker-\(name)"
        thread.start()
    }

    /// Answers one connection's lines in order. Each line (blank and malformed ones too) is
    /// charged to the run's and tenant's budgets first; a connection that sent too fast is not
    /// read again until its debt is paid, so its flood waits in its own socket buffer and
    /// costs the broker nothing. Blank lines get no answer.
    private func serve(client: Int32, listener: Listener, budget: FlowBudget?, handler: @escaping @Sendable (Data) async -> Data) {
        defer { close(client) }
        let reader = LineReader(fd: client)
        while !listener.isStopped {
            switch reader.next() {
            case .eof:
                return
            case .tooLong:
                let error = CallResponse.failure(BrokerError(.badRequest, "request line longer than \(UnixSocket.maxLine) bytes"))
                _ = UnixSocket.writeLine(client, (try? JSONEncoder().encode(error)) ?? Data())
                return
            case .line(let line):
                if let budget {
                    let wait = budget.charge(byteCount: line.count + 1)
                    if wait > .zero {
                        engine.usage.countThrottled()
                        guard Self.sleep(wait, unless: listener) else { return }
                    }
                }
                if line.allSatisfy({ $0 == UInt8(ascii: " ") || $0 == UInt8(ascii: "\r") }) { continue }
                let response = waitForAsync { await handler(line) }
                guard UnixSocket.writeLine(client, response) else { return }
            }
        }
    }

    /// Sleeps `duration` in short slices; false when the listener stopped meanwhile (the run
    /// ended: its connections are dropped rather than read on).
    static func sleep(_ duration: Duration, unless listener: Listener) -> Bool {
        let deadline = ContinuousClock.now + duration
        while ContinuousClock.now < deadline {
            if listener.isStopped { return false }
            let slice = min(deadline - ContinuousClock.now, .milliseconds(100))
            let micros = UInt32(max(0, slice.inSeconds * 1_000_000))
            if micros > 0 { usleep(micros) }
        }
        return !listener.isStopped
    }

    public static func isIdentifier(_ text: String) -> Bool {
        !text.isEmpty && text.utf8.count <= 64 && text.utf8.allSatisfy {
            ($0 >= 48 && $0 <= 57) || ($0 >= 65 && $0 <= 90) || ($0 >= 97 && $0 <= 122) || $0 == 45 || $0 == 95
        }
    }
}

/// A client of a broker's control socket (for `sealbox run --broker`, `sealbox broker revoke`).
public enum BrokerControlClient {
    /// `timeoutSeconds`: how long to wait for the answer (nil: as long as it takes).
    public static func send(_ request: ControlRequest, socket: String, timeoutSeconds: Int? = nil) throws(BrokerFailure) -> ControlResponse {
        let fd: Int32
        do {
            fd = try UnixSocket.connect(path: socket)
        } catch {
            throw BrokerFailure("broker control socket \(socket): \(error.description)")
        }
        defer { close(fd) }
        if let timeoutSeconds {
            var limit = timeval(tv_sec: timeoutSeconds, tv_usec: 0)
            guard setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size)) == 0 else {
                throw BrokerFailure("broker control socket \(socket): setsockopt: \(String(cString: strerror(errno)))")
            }
        }
        guard let body = try? JSONEncoder().encode(request), UnixSocket.writeLine(fd, body) else {
            throw BrokerFailure("broker control socket \(socket): write failed")
        }
        guard case .line(let line) = LineReader(fd: fd).next(),
              let response = try? JSONDecoder().decode(ControlResponse.self, from: line) else {
            throw BrokerFailure("broker control socket \(socket): no valid answer")
        }
        return response
    }
}
