import HTTPTypes
import SealboxBroker
import SealboxJail
import SealboxProfiles
import SealboxRuntime
import SealboxTracing
import Tracing

/// One run for a caller, the same for every way in: `POST /v1/runs` (plain and streamed), MCP
/// at /mcp on `sealbox serve` and `sealbox mcp` on stdio. Decoding the request and encoding
/// the answer are the callers'; everything between is here, once:
///
///     profile grant → session check → admission slot → broker → pipeline → release
///
/// The slot is always released once it was taken, whatever the pipeline answers and whether
/// or not the caller is still there; a caller cancelled while its run waits for a slot is
/// dropped from the queue and never started.
public struct RunService: Sendable {
    public let admission: RunAdmission
    /// One run end to end: step replay, workspace, broker grant, seal (the CLI's own code).
    public let pipeline: RunPipeline
    /// Where the catalog profiles a run may name live (looked up by name, never by path).
    public let profilesDirectory: String
    public let broker: RunBroker
    /// Every jail of this service's runs: a caller's own set (one MCP call's) has it as parent,
    /// so a shutdown that kills what is left reaches every run.
    public let liveJails = LiveJails()

    public init(admission: RunAdmission, pipeline: RunPipeline, profilesDirectory: String, broker: RunBroker) {
        self.admission = admission
        self.pipeline = pipeline
        self.profilesDirectory = profilesDirectory
        self.broker = broker
    }

    /// A run the service carried out: its result and how long it waited for its slot.
    public struct Outcome: Sendable {
        public var result: RunResult
        public var waited: Duration
    }

    /// Why a run has no result.
    public enum Failure: Error, Sendable {
        /// The service refused it (profile, session, slot, broker), or `RunCaller`'s checks did.
        case refused(APIError)
        /// The pipeline could not carry it out; the caller words it (the API hides host paths).
        case pipeline(RuntimeError)
    }

    /// Runs `request` for `caller`.
    /// - `live`: the set the run's jail registers in (an MCP call's, closed when the call is
    ///   cancelled, which kills the jail); by default the service's own.
    /// - `output`: sees stdout and stderr as they arrive (streamed runs, MCP progress).
    /// - `whenGone`: registers a callback for when the caller goes away (its connection
    ///   closes); called only if the run has to wait for a slot, so a waiting run whose caller
    ///   left is dropped before it starts.
    /// - `admitted`: called once the slot is taken, before anything runs (a streamed run
    ///   answers 200 then).
    public func run(_ request: RunRequest, for caller: RunCaller, live: LiveJails? = nil, output: OutputObserver? = nil,
                    whenGone: (@Sendable (_ abandon: @escaping @Sendable () -> Void) -> Void)? = nil,
                    admitted: (@Sendable () -> Void)? = nil) async -> Result<Outcome, Failure> {
        let waited: Duration
        do throws(APIError) {
            try checkProfile(request.profile, for: caller)
            if let session = request.session { try caller.checkSession?(session) }
            waited = try await admit(caller, whenGone: whenGone)
        } catch {
            return .failure(.refused(error))
        }
        admitted?()
        let outcome = await execute(request, for: caller, live: live ?? liveJails, output: output)
        await admission.release(tenant: caller.slotTenant)
        return outcome.map { Outcome(result: $0, waited: waited) }
    }

    /// 400 for a name that is not in the catalog, 403 for one the caller may not use.
    public func checkProfile(_ name: String, for caller: RunCaller) throws(APIError) {
        do {
            try caller.profiles.check(name, catalog: ProfileCatalog(directory: profilesDirectory), who: caller.name)
        } catch {
            throw error.forbidden ? APIError(.forbidden, "profile_not_allowed", error.message, field: "profile") : .badRequest(error.message, field: "profile")
        }
    }

    /// Takes a slot for the caller's tenant, waiting in the queue if need be; 429 when the
    /// queue (or the tenant's share of it) is full, 503 once the service is shutting down, 499
    /// when the caller went away (or was cancelled) while the run waited. Returns how long the
    /// run waited.
    func admit(_ caller: RunCaller, whenGone: (@Sendable (_ abandon: @escaping @Sendable () -> Void) -> Void)?) async throws(APIError) -> Duration {
        // The queue phase, traced under the request (beside the run's own span).
        let span = startSpan(SealboxSpan.queue)
        defer { span.end() }
        let arrived = ContinuousClock.now
        let tenant = caller.slotTenant
        if await admission.tryAcquire(tenant: tenant) { return .zero }
        let slots = admission
        let ticket = await slots.ticket()
        // Registered only for a run that waits: a keep-alive connection's many quick runs
        // add nothing to its close callbacks.
        whenGone? { Task { await slots.abandon(ticket) } }
        let refusal = await withTaskCancellationHandler { () async -> RunAdmission.Busy? in
            do throws(RunAdmission.Busy) {
                try await slots.acquire(tenant: tenant, ticket: ticket)
                return nil
            } catch {
                return error
            }
        } onCancel: {
            Task { await slots.abandon(ticket) }
        }
        if let refusal {
            if refusal.shuttingDown {
                throw APIError(.serviceUnavailable, "shutting_down", "the server is shutting down and takes no new runs; retry on another instance or after its restart", retryAfter: 5)
            }
            if refusal.abandoned {
                throw APIError(.init(code: 499, reasonPhrase: "Client Closed Request"), "client_closed", "the caller went away while the run waited for a slot; it was not started")
            }
            if refusal.tenantShare {
                throw APIError(.tooManyRequests, "busy", "tenant \(tenant) has \(admission.maxQueuedPerTenant) runs waiting, its whole share of the queue; retry later", retryAfter: 1)
            }
            throw APIError(.tooManyRequests, "busy", "\(refusal.running) runs are executing and \(refusal.queued) are waiting, the most this server takes; retry later", retryAfter: 1)
        }
        return ContinuousClock.now - arrived
    }

    /// The admitted run through the pipeline, its broker chosen by `broker`.
    private func execute(_ request: RunRequest, for caller: RunCaller, live: LiveJails, output: OutputObserver?) async -> Result<RunResult, Failure> {
        var plan = RunPlan(spec: request.spec, session: request.session, step: request.step, allow: request.tools)
        plan.tenant = caller.tenant
        plan.spec.liveJails = live
        // A broker only when tools are granted: `RunPlan` starts one whenever a config is set.
        if !request.tools.isEmpty {
            do throws(APIError) {
                (plan.brokerConfigPath, plan.brokerControlSocket) = try brokerRoute()
            } catch {
                return .failure(.refused(error))
            }
        }
        plan.brokerLedgerPath = ledgerPath
        // A sealed memfd, never a file: a server killed mid-run leaves no tenant's stdin behind.
        if let bytes = request.stdin { plan.spec.stdin = .bytes(bytes) }
        do throws(RuntimeError) {
            return .success(try await pipeline.run(plan, output: output))
        } catch {
            return .failure(.pipeline(error))
        }
    }

    /// The effect log of a broker started per run (`sealbox mcp`); nil: the broker's own.
    var ledgerPath: String? {
        if case .perRun(_, _, let ledgerPath) = broker { return ledgerPath }
        return nil
    }

    /// Where a run (or a sandbox) that is granted tools gets them: a broker config to start one
    /// from, or a running broker's control socket; 503 while the server's broker is not up,
    /// 400 when there is none.
    func brokerRoute() throws(APIError) -> (configPath: String?, controlSocket: String?) {
        switch broker {
        case .service(let slot):
            guard let socket = slot.controlSocket else { throw Self.noBroker(slot) }
            return (nil, socket)
        case .perRun(let configPath, let controlSocket, _):
            return (configPath, controlSocket)
        }
    }

    /// Why a run that asks for tools cannot have them from the server's broker right now.
    private static func noBroker(_ slot: BrokerSlot) -> APIError {
        switch slot.current {
        case .starting:
            APIError(.serviceUnavailable, "broker_unavailable", "the server's broker is starting; retry in a moment", retryAfter: 1)
        case .failed:
            APIError(.serviceUnavailable, "broker_unavailable", "the server's broker is not running; the operator has to restart the server", retryAfter: 30)
        default:
            .badRequest("this server has no broker: start `sealbox serve --tools FILE` to grant tools", field: "tools")
        }
    }
}

/// Where a run's broker tools come from.
public enum RunBroker: Sendable {
    /// The service's own broker (`sealbox serve`), which may be starting or have failed: a run
    /// that asks for tools then is refused, never kept waiting.
    case service(BrokerSlot)
    /// A broker per run (`sealbox mcp`): started from `configPath`, or the one listening on
    /// `controlSocket`; its effects go to `ledgerPath`.
    case perRun(configPath: String?, controlSocket: String?, ledgerPath: String)
}

/// Who a run is for, as the run service checks it.
public struct RunCaller: Sendable {
    /// The tenant whose share of the slots the run takes and whose broker limits its tool
    /// calls count against; nil for `sealbox mcp`'s one operator (the session's family counts).
    public var tenant: String?
    /// The catalog profiles the caller may name.
    public var profiles: ProfileGrant
    /// How a profile refusal names the caller: "key k_1", "this MCP server".
    public var name: String
    /// Refuses a session the caller may not use (the API: 404 unless its tenant owns it);
    /// nil when every session is the caller's.
    public var checkSession: (@Sendable (String) throws(APIError) -> Void)?

    public init(tenant: String?, profiles: ProfileGrant, name: String, checkSession: (@Sendable (String) throws(APIError) -> Void)? = nil) {
        self.tenant = tenant
        self.profiles = profiles
        self.name = name
        self.checkSession = checkSession
    }

    /// The admission's tenant: the one operator of `sealbox mcp` has the empty name.
    var slotTenant: String { tenant ?? "" }
}
