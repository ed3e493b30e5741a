import Foundation
import SealboxJail
import SealboxBroker
import SealboxLedger
import SealboxSQLite
import SealboxBase
import SealboxTracing
import Tracing

/// What one run asks for beyond its jail: the session it belongs to, the step it is, and
/// the tools granted to it through a broker.
public struct RunPlan: Sendable {
    public var spec: JailSpec
    /// A session id: runs of one session share their effects (replay after a crash).
    public var session: String?
    /// A step key of `session`: sealed steps are replayed, /work carries from step to step.
    public var step: String?
    /// Tools to grant; empty means no broker at all.
    public var allow: [String]
    /// Broker config for a broker started for this one run (CLI `--tools`).
    public var brokerConfigPath: String?
    /// Control socket of a running broker (CLI `--broker`, and `sealbox serve`'s own broker).
    public var brokerControlSocket: String?
    /// Effect log for a broker started for this run, instead of its config's `ledger:`
    /// (`sealbox mcp` keeps it in its state directory).
    public var brokerLedgerPath: String?
    /// Who the run's tool calls count against in the broker's limits (`sealbox serve`: the API
    /// key's tenant); nil: the session's family.
    public var tenant: String?

    public init(spec: JailSpec, session: String? = nil, step: String? = nil, allow: [String] = [],
                brokerConfigPath: String? = nil, brokerControlSocket: String? = nil, brokerLedgerPath: String? = nil) {
        self.spec = spec
        self.session = session
        self.step = step
        self.allow = allow
        self.brokerConfigPath = brokerConfigPath
        self.brokerControlSocket = brokerControlSocket
        self.brokerLedgerPath = brokerLedgerPath
    }

    var wantsBroker: Bool { brokerConfigPath != nil || !allow.isEmpty }
}

/// One run end to end, the same for `sealbox run`, `POST /v1/runs` and MCP's `run_code`:
/// answer a sealed step from its checkpoint; otherwise open a broker grant, restore the
/// session's /work, run the jail, close the grant, capture /work and seal the step. A step
/// refused on a call that waits on a decision stays unsealed ("blocked"); a run sealbox
/// could not start (exit 125) stays unsealed too, so running it again executes it.
public struct RunPipeline: Sendable {
    public let checkpointsPath: String
    public let dataDirectory: String
    /// Made on first use: a replayed step needs no jail, so no cgroups either.
    public let executor: @Sendable () throws(JailError) -> Executor

    public init(checkpointsPath: String, dataDirectory: String, executor: @escaping @Sendable () throws(JailError) -> Executor) {
        self.checkpointsPath = checkpointsPath
        self.dataDirectory = dataDirectory
        self.executor = executor
    }

    /// `output` sees the jail's stdout and stderr as they arrive (`Executor.run`); a replayed
    /// step executes nothing, so it sees nothing.
    /// Traced as one `sealbox.run` span under the caller's (the HTTP request's, when there is
    /// one), with a span per phase of the jail (`RunTracing`).
    public func run(_ plan: RunPlan, output: OutputObserver? = nil) async throws(RuntimeError) -> RunResult {
        let span = RunTracing.start(plan)
        defer { span.end() }
        do {
            let result = try await runUnchecked(plan, output: output, trace: span.context)
            RunTracing.finished(result, on: span)
            return result
        } catch let error as RuntimeError {
            RunTracing.failed(error, on: span)
            throw error
        } catch {
            let error = RuntimeError(.storage, "\(error)")
            RunTracing.failed(error, on: span)
            throw error
        }
    }

    private func runUnchecked(_ plan: RunPlan, output: OutputObserver?, trace: InstrumentationContext) async throws -> RunResult {
        var spec = plan.spec
        var checkpoint: StepCheckpoint?
        if let step = plan.step {
            spec.stdin = try await StepStdin.read(spec.stdin)
            let opened = try StepCheckpoint.open(path: checkpointsPath, session: plan.session, step: step, spec: spec)
            if let sealed = try opened.sealedResult() {
                return sealed  // sealed: answered from the checkpoint; no jail, no tool call
            }
            checkpoint = opened
        }
        let executor: Executor
        do {
            executor = try self.executor()
        } catch {
            throw RuntimeError(.jailSetup, error.description)
        }
        // The step's lease comes first: a second simultaneous run of the step is refused
        // before it opens a broker grant or touches the workspace.
        var attempt: Int64?
        if let checkpoint {
            if spec.id == nil { spec.id = RandomID.run() }
            guard let started = try checkpoint.recordStart(runID: spec.id) else {
                // Sealed by another run between the look above and the lease.
                if let sealed = try checkpoint.sealedResult() { return sealed }
                throw RuntimeError(.stepRunning, "step \(checkpoint.step) of session \(checkpoint.session) was just sealed by another run; ask again", field: "step")
            }
            attempt = started
        }
        // Whatever ends this run without a seal ends its attempt, so the step can run again.
        var outcome = "failed"
        var sealed = false
        defer {
            if let checkpoint, let attempt, !sealed { checkpoint.end(attempt: attempt, outcome: outcome) }
        }
        var brokerRun: BrokerRun?
        if plan.wantsBroker {
            outcome = "not_started"
            brokerRun = try await BrokerRun.open(
                configPath: plan.brokerConfigPath, controlSocket: plan.brokerControlSocket, ledgerPath: plan.brokerLedgerPath,
                allow: plan.allow, session: plan.session,
                sessionRoot: checkpoint?.info.root ?? knownSessionRoot(plan.session),
                timeoutMs: spec.limits.timeoutMs, dataDirectory: dataDirectory, runID: spec.id, tenant: plan.tenant,
                traceparent: TraceParent.current(trace))
            spec.id = brokerRun?.runID
            spec.door = brokerRun?.grant.door
        }
        if let checkpoint {
            do {
                spec.workspace = try StepWorkspace.restore(store: checkpoint.store, session: checkpoint.info)
            } catch {
                outcome = "not_started"
                _ = await brokerRun?.close()
                throw error
            }
        }
        let ran: Result<RunResult, JailError>
        do throws(JailError) {
            ran = .success(RunResult(jail: try await executor.run(spec, output: output)))
        } catch {
            ran = .failure(error)
        }
        // The token dies with the run, whatever happened to it.
        let closed = await brokerRun?.close()
        var result: RunResult
        switch ran {
        case .success(let r):
            result = r
            RunTracing.phases(of: r, context: trace)
        case .failure(let error):
            outcome = "not_started"
            switch error.code {
            case .invalidSpec, .profile, .rootfs: throw RuntimeError(.badInput, error.description, field: error.field)
            case .workspace: throw RuntimeError(.workspaceConflict, error.description, field: error.field)
            case .cgroup, .unsupportedHost, .setup: throw RuntimeError(.jailSetup, error.description)
            }
        }
        let blocked = closed?.blocked ?? []
        if checkpoint != nil, let failure = closed?.failure {
            // What the run's calls came to is unknown: never seal on a missing answer.
            outcome = "failed"
            result.replayed = false
            result.blocked = [.init(seq: nil, code: "broker_unreachable", message: "the step is not sealed: closing its broker grant failed (\(failure)); run it again")]
        } else if checkpoint != nil, !blocked.isEmpty {
            // Waiting on an operator or on the world is not an outcome: leave the step
            // unsealed so that, once decided, running it again carries on.
            outcome = "blocked"
            result.replayed = false
            result.blocked = blocked.map { .init(seq: $0.seq, code: $0.code.rawValue, message: $0.message) }
        } else if checkpoint != nil, result.interrupted {
            // Killed by the service shutting down: the step did not finish, and sealing the
            // kill would replay it forever. Running the step again carries on.
            outcome = "interrupted"
            result.replayed = false
        } else if let checkpoint, !(result.status == .spawnFailed && result.exitCode == 125) {
            result.replayed = false
            var snapshot: SnapshotManifest?
            if let workspace = spec.workspace {
                let (manifest, summary) = try StepWorkspace.capture(workspace, store: checkpoint.store)
                snapshot = manifest
                result.workspace = summary
            }
            let json = String(decoding: (try? JSONEncoder().encode(result)) ?? Data(), as: UTF8.self)
            result.checkpoint = try checkpoint.seal(resultJSON: json, ledgerCursor: closed?.lastSeq, snapshot: snapshot)
            sealed = true
        }
        return result
    }

    /// The family root of a session known to the checkpoint store (a fork's runs share the
    /// family's irreversible effects even outside steps); nil for a free-form session id.
    func knownSessionRoot(_ session: String?) -> String? {
        guard let session, let store = try? StateStores.existingCheckpoints(file: checkpointsPath) else { return nil }
        return try? store.session(session)?.root
    }
}
