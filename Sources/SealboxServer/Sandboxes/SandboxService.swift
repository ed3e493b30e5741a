import Foundation
import HTTPTypes
import SealboxBase
import SealboxJail
import SealboxLedger
import SealboxProfiles
import SealboxRuntime
import SealboxSQLite

/// Every sandbox operation that does more than look one up, for the HTTP routes and MCP alike
/// (one path, as `RunService` is for runs): make one (profile grant, bounds, the jail), and run
/// a command in one (paused check, per-sandbox and admission slots, the jail). Who may see a
/// sandbox is the registry's (`SandboxRegistry.sandbox(_:visibleTo:)`).
public struct SandboxService: Sendable {
    public let registry: SandboxRegistry
    /// The executor, asked for on the first sandbox (`sealbox mcp` makes its own lazily).
    let executor: @Sendable () throws(JailError) -> Executor
    let runs: RunService
    let defaultLimits: Limits
    let maxLimits: Limits
    /// The jails of the service: a shutdown kills what is left.
    let liveJails: LiveJails
    /// An error as a tenant may see it (host paths replaced); identity for a local operator.
    let safe: @Sendable (APIError) -> APIError

    public init(registry: SandboxRegistry, executor: @escaping @Sendable () throws(JailError) -> Executor, runs: RunService, defaultLimits: Limits, maxLimits: Limits,
                liveJails: LiveJails, safe: @escaping @Sendable (APIError) -> APIError = { $0 }) {
        self.registry = registry
        self.executor = executor
        self.runs = runs
        self.defaultLimits = defaultLimits
        self.maxLimits = maxLimits
        self.liveJails = liveJails
        self.safe = safe
    }

    /// Makes a sandbox for `identity` as `wire` asks: 400 naming the field, 403 for a profile
    /// the caller may not name, 404 for a session it may not use, 429 past the bounds. In a
    /// session, /work starts as the session's last sealed workspace; with tools, the broker
    /// grants them for the sandbox's life.
    public func create(_ wire: SandboxCreateRequest.Wire?, for identity: APIIdentity, caller: RunCaller) async throws(APIError) -> Sandbox {
        let create = try SandboxCreateRequest.parse(wire, defaultLimits: defaultLimits, maxLimits: maxLimits, sandboxes: registry.limits)
        try runs.checkProfile(create.profile, for: caller)
        if let session = create.session { try caller.checkSession?(session) }
        return try await launch(Launch(id: "sbx-" + RandomID.hex64(prefix: ""), spec: create.spec, profile: create.profile,
                                       idleTimeoutMs: create.idleTimeoutMs, session: create.session, tools: create.tools),
                                tenant: identity.tenant, caller: caller) { session throws(RuntimeError) in
            try session?.restoreWorkspace()
        }
    }

    /// What makes a sandbox's jail, made new or woken.
    struct Launch {
        var id: String
        var spec: JailSpec
        var profile: String
        var idleTimeoutMs: Int64
        var session: String?
        var tools: [String]
        /// The broker run's id: the sandbox's own the first time, a fresh one when woken (a
        /// closed run is never opened again).
        var brokerRunID: String?
    }

    /// Starts `launch`'s jail for `tenant`, with /work as `workspace` makes it (nil: the
    /// jail's own), its session opened and its tools granted; admits it to the registry.
    private func launch(_ launch: Launch, tenant: String, caller: RunCaller,
                        workspace: (SandboxSession?) throws(RuntimeError) -> Workspace?) async throws(APIError) -> Sandbox {
        var spec = launch.spec
        let route = launch.tools.isEmpty ? nil : try runs.brokerRoute()
        try registry.reserve(tenant: tenant)
        var admitted = false
        defer { if !admitted { registry.admit(nil, tenant: tenant) } }
        spec.id = launch.id
        spec.liveJails = liveJails
        let session: SandboxSession?
        do throws(RuntimeError) {
            session = try launch.session.map { id throws(RuntimeError) in try SandboxSession.open(checkpointsPath: runs.pipeline.checkpointsPath, session: id) }
            spec.workspace = try workspace(session)
        } catch {
            throw safe(APIError(error))
        }
        var broker: BrokerRun?
        if let route {
            do {
                broker = try await BrokerRun.open(
                    configPath: route.configPath, controlSocket: route.controlSocket, ledgerPath: runs.ledgerPath, allow: launch.tools,
                    session: session?.info.id, sessionRoot: session?.info.root, timeoutMs: Int(registry.limits.maxLifetimeMs),
                    dataDirectory: runs.pipeline.dataDirectory, runID: launch.brokerRunID ?? launch.id, tenant: caller.tenant)
            } catch let error as RuntimeError {
                throw safe(APIError(error))
            } catch {
                throw safe(APIError(.serviceUnavailable, "broker_unavailable", "\(error)", retryAfter: 5))
            }
            spec.door = broker?.grant.door
        }
        let ready = spec
        let started: Result<LiveJail, JailError> = await onOwnThread("sealbox-sandbox") { [executor] in
            Result { () throws(JailError) in try executor().startLiveJail(ready) }
        }
        let jail: LiveJail
        switch started {
        case .success(let made):
            jail = made
        case .failure(let error):
            if let broker { await broker.close() }
            throw safe(APIError(error.code == .invalidSpec ? .badRequest : .internalServerError,
                                error.code == .invalidSpec ? "bad_request" : "jail_setup", error.description))
        }
        let sandbox = Sandbox(
            id: launch.id, tenant: tenant, profile: launch.profile, limits: spec.limits, environment: spec.environment,
            idleTimeoutMs: launch.idleTimeoutMs, maxLifetimeMs: registry.limits.maxLifetimeMs, jail: jail, nowMs: SandboxRegistry.nowMs(),
            session: session, tools: launch.tools, broker: broker)
        admitted = true
        registry.admit(sandbox, tenant: tenant)
        return sandbox
    }

    /// The checkpoint store's blobs, where hibernated /work is kept.
    private func blobs() throws(APIError) -> any BlobStore {
        do {
            return try StateStores.checkpoints(file: runs.pipeline.checkpointsPath).blobs
        } catch {
            throw safe(APIError(.internalServerError, "storage", "the checkpoint store cannot be opened: \(error)"))
        }
    }

    /// Hibernates `sandbox`: its /work (read with the sandbox frozen) into the blob store and
    /// its record to disk, then its jail ended; processes and code contexts are gone, and the
    /// answer says how many. 429 past the hibernated bounds; 400 where nothing is kept.
    public func hibernate(_ sandbox: Sandbox, by keyID: String) async throws(APIError) -> SandboxView {
        guard let store = registry.hibernation else {
            throw APIError.badRequest("this server keeps no hibernated sandboxes")
        }
        try store.checkRoom(tenant: sandbox.tenant)
        let blobs = try blobs()
        let contexts = sandbox.contexts.filter { $0.endReason == nil }.count
        let lost = HibernatedSandbox.Lost(commands: max(0, sandbox.jail.runningCommands - contexts), contexts: contexts)
        let jail = sandbox.jail
        let snapshot: Result<SnapshotManifest, RuntimeError> = await onOwnThread("sealbox-hibernate") {
            Result { () throws(RuntimeError) in try SandboxSession.snapshot(jail, blobs: blobs).0 }
        }
        let manifest: SnapshotManifest
        switch snapshot {
        case .success(let made): manifest = made
        case .failure(let error):
            if let ended = sandbox.endedError { throw ended }
            throw safe(APIError(error))
        }
        let record = HibernatedSandbox(
            id: sandbox.id, tenant: sandbox.tenant, profile: sandbox.profile, limits: .init(sandbox.limits),
            env: sandbox.environment.map { [$0.name, $0.value] }, idle_timeout_ms: sandbox.idleTimeoutMs, session: sandbox.session?.info.id,
            tools: sandbox.tools, created_at_ms: sandbox.createdAtMs, hibernated_at_ms: SandboxRegistry.nowMs(), manifest: manifest, lost: lost)
        try store.keep(record)
        registry.end(sandbox, reason: "hibernated by key \(keyID)")
        return record.view(nowMs: SandboxRegistry.nowMs())
    }

    /// Wakes hibernated sandbox `id` for `identity`: a new jail, its /work restored from the
    /// snapshot, in its session and with its tools as before. 404 for one it may not see.
    public func wake(_ id: String, for identity: APIIdentity, caller: RunCaller) async throws(APIError) -> Sandbox {
        guard let store = registry.hibernation, let record = store.record(id), identity.canSee(ownedBy: record.tenant) else {
            throw APIError.notFound("no hibernated sandbox \(Printable.text(id, limit: 64))")
        }
        let blobs = try blobs()
        var spec = JailSpec(command: [], limits: record.limits.limits, profile: .catalog(record.profile))
        spec.environment = record.environment
        let limit = record.limits.disk_bytes
        let woken = try await launch(Launch(id: id, spec: spec, profile: record.profile, idleTimeoutMs: record.idle_timeout_ms,
                                            session: record.session, tools: record.tools,
                                            brokerRunID: id + "-" + RandomID.hex64(prefix: "").prefix(8)),
                                     tenant: record.tenant, caller: caller) { _ throws(RuntimeError) in
            do {
                return try StepWorkspace.restore(record.manifest, limitBytes: limit, blobs: blobs, of: "sandbox \(id)")
            } catch let error as RuntimeError {
                throw error
            } catch {
                throw RuntimeError(.storage, "\(error)")
            }
        }
        store.remove(id)
        return woken
    }

    /// The command `wire` asks for in `sandbox`, checked (400 naming the field).
    public func command(_ wire: SandboxCommandRequest.Wire, in sandbox: Sandbox) throws(APIError) -> LiveCommand {
        try SandboxCommandRequest.parse(wire, sandbox: sandbox, maxLimits: maxLimits).command
    }

    /// Takes what a command needs before it runs: 409 when the sandbox is paused, 429 when it
    /// runs its most commands at once or the caller's run slots are taken. Returns the release
    /// of the run slot, to call once the command ended.
    public func admit(in sandbox: Sandbox, caller: RunCaller) async throws(APIError) -> @Sendable () -> Void {
        guard !sandbox.jail.isPaused else {
            throw sandbox.pausedError
        }
        guard sandbox.jail.runningCommands < registry.limits.maxCommandsPerSandbox else {
            throw APIError(.tooManyRequests, "busy", "sandbox \(sandbox.id) runs \(registry.limits.maxCommandsPerSandbox) commands already, the most at once; retry when one ended", retryAfter: 1)
        }
        _ = try await runs.admit(caller, whenGone: nil)
        let admission = runs.admission
        let tenant = caller.slotTenant
        return { Task { await admission.release(tenant: tenant) } }
    }

    /// Starts a code context in `sandbox` as `wire` asks (400 naming the field, 429 past the
    /// sandbox's maximum of contexts or commands).
    public func startContext(_ wire: SandboxContextRequest.Wire?, in sandbox: Sandbox) async throws(APIError) -> LiveContext {
        let wire = wire ?? SandboxContextRequest.Wire()
        let language = wire.language ?? "python"
        guard LiveContext.languages.contains(language) else {
            throw APIError.badRequest("language must be one of \(LiveContext.languages.joined(separator: ", "))", field: "language")
        }
        let cwd = wire.cwd ?? "/work"
        guard LiveJail.isWorkPath(cwd) else {
            throw APIError.badRequest("cwd must be /work or a directory below it, without empty, . or .. parts", field: "cwd")
        }
        let environment = sandbox.environment(under: try RunRequest.environment(wire.env ?? [:]))
        guard !sandbox.jail.isPaused else {
            throw sandbox.pausedError
        }
        guard sandbox.contexts.count < registry.limits.maxContextsPerSandbox,
              sandbox.jail.runningCommands < registry.limits.maxCommandsPerSandbox else {
            throw APIError(.tooManyRequests, "busy", "sandbox \(sandbox.id) keeps \(registry.limits.maxContextsPerSandbox) contexts (or runs \(registry.limits.maxCommandsPerSandbox) commands) already; delete one first", retryAfter: 1)
        }
        let id = "ctx-" + RandomID.hex64(prefix: "")
        let jail = sandbox.jail
        let started: Result<LiveContext, JailError> = await onOwnThread("sealbox-context") {
            Result { () throws(JailError) in try LiveContext.start(in: jail, language: language, id: id, environment: environment, workingDirectory: cwd) }
        }
        let context: LiveContext
        switch started {
        case .success(let made): context = made
        case .failure(let error):
            if let ended = sandbox.endedError { throw ended }
            throw safe(APIError(error.code == .invalidSpec ? .badRequest : .internalServerError, error.code == .invalidSpec ? "bad_request" : "jail_setup", error.message))
        }
        guard sandbox.add(context, maximum: registry.limits.maxContextsPerSandbox) else {
            context.close()
            throw APIError(.tooManyRequests, "busy", "sandbox \(sandbox.id) keeps \(registry.limits.maxContextsPerSandbox) contexts already", retryAfter: 1)
        }
        return context
    }

    /// Runs one chunk of `wire.code` in `context` (a run slot taken meanwhile): 409 when the
    /// sandbox is paused or the context has ended (the reason says why).
    public func runChunk(_ wire: SandboxChunkRequest.Wire, in context: LiveContext, of sandbox: Sandbox, caller: RunCaller) async throws(APIError) -> ContextChunkResult {
        guard let code = wire.code else { throw APIError.badRequest("code is required", field: "code") }
        let timeout = wire.timeout_ms ?? Int64(sandbox.limits.timeoutMs)
        guard timeout >= 1, timeout <= Int64(maxLimits.timeoutMs) else {
            throw APIError.badRequest("timeout_ms must be between 1 and \(maxLimits.timeoutMs)", field: "timeout_ms")
        }
        guard !sandbox.jail.isPaused else {
            throw sandbox.pausedError
        }
        _ = try await runs.admit(caller, whenGone: nil)
        let admission = runs.admission
        defer { Task { await admission.release(tenant: caller.slotTenant) } }
        return try await asStep(wire.step, inputs: SandboxSession.chunkInputs(language: context.language, code: code), in: sandbox) {
            () async throws(APIError) -> ContextChunkResult in
            let outcome: Result<ContextChunkResult, JailError> = await sandbox.using {
                await onOwnThread("sealbox-chunk") {
                    Result { () throws(JailError) in try context.run(code, timeoutMs: Int(timeout)) }
                }
            }
            switch outcome {
            case .success(let result): return result
            case .failure(let error) where error.code == .invalidSpec:
                throw APIError.badRequest(error.message, field: "code")
            case .failure(let error):
                if let ended = sandbox.endedError { throw ended }
                throw safe(APIError(.conflict, "context_ended", "context \(context.id): \(error.message); start another (POST /v1/sandboxes/\(sandbox.id)/contexts)"))
            }
        }
    }

    /// Runs `command` in `sandbox` as step `step` of its session (`asStep`; nil: plainly);
    /// its result as a run's, or its failure as the API answers it.
    public func execute(_ command: LiveCommand, step: String?, in sandbox: Sandbox, output: OutputObserver?) async -> Result<RunResult, APIError> {
        do throws(APIError) {
            return .success(try await asStep(step, inputs: SandboxSession.commandInputs(command), in: sandbox) { () async throws(APIError) -> RunResult in
                RunResult(jail: try await execute(command, in: sandbox, output: output).get())
            })
        } catch {
            return .failure(error)
        }
    }

    /// Runs `command` in `sandbox` (busy meanwhile); its failure as the API answers it.
    public func execute(_ command: LiveCommand, in sandbox: Sandbox, output: OutputObserver?) async -> Result<JailResult, APIError> {
        let outcome: Result<JailResult, JailError> = await sandbox.using {
            do throws(JailError) {
                return .success(try await sandbox.jail.run(command, output: output))
            } catch {
                return .failure(error)
            }
        }
        return outcome.mapError { error in
            if let ended = sandbox.endedError { return ended }
            if sandbox.jail.isPaused { return sandbox.pausedError }
            if error.code == .invalidSpec { return APIError.badRequest(error.message, field: "command") }
            return safe(APIError(.internalServerError, "jail_setup", error.description))
        }
    }
}
