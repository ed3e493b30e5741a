import Foundation
import HTTPTypes
import Logging
import SealboxBase
import SealboxJail
import SealboxLedger
import SealboxRuntime
import Synchronization

/// One live sandbox of this server: a `LiveJail` with its owner, its clocks and why it ended.
public final class Sandbox: Sendable {
    public let id: String
    public let tenant: String
    public let profile: String
    public let limits: Limits
    /// Every command's environment, under the command's own.
    let environment: [(name: String, value: String)]
    public let createdAtMs: Int64
    public let idleTimeoutMs: Int64
    /// Ended at this instant, busy or not (the operator's maximum lifetime).
    public let expiresAtMs: Int64
    public let jail: LiveJail
    /// The session it belongs to: its /work started as the session's last seal, and its
    /// steps are sealed there.
    public let session: SandboxSession?
    /// The tools granted to everything it runs, and the broker run that holds their token
    /// (revoked when it ends).
    public let tools: [String]
    let broker: BrokerRun?

    private struct State {
        var contexts: [String: LiveContext] = [:]
        var lastActiveMs: Int64
        /// Commands and file transfers in flight: a sandbox is idle only when there are none.
        var busy = 0
        var endReason: String?
        var endedAtMs: Int64?
        /// A step is running: steps are one at a time, so each seal is of its own step.
        var stepping = false
    }
    private let state: Mutex<State>

    init(id: String, tenant: String, profile: String, limits: Limits, environment: [(name: String, value: String)],
         idleTimeoutMs: Int64, maxLifetimeMs: Int64, jail: LiveJail, nowMs: Int64,
         session: SandboxSession? = nil, tools: [String] = [], broker: BrokerRun? = nil) {
        self.session = session
        self.tools = tools
        self.broker = broker
        self.id = id
        self.tenant = tenant
        self.profile = profile
        self.limits = limits
        self.environment = environment
        self.createdAtMs = nowMs
        self.idleTimeoutMs = idleTimeoutMs
        self.expiresAtMs = nowMs + maxLifetimeMs
        self.jail = jail
        self.state = Mutex(State(lastActiveMs: nowMs))
    }

    /// The sandbox's environment with `own` (a command's, a context's) over it.
    func environment(under own: [(name: String, value: String)]) -> [(name: String, value: String)] {
        var merged = environment
        for (name, value) in own {
            if let i = merged.firstIndex(where: { $0.name == name }) { merged[i].value = value } else { merged.append((name, value)) }
        }
        return merged
    }

    /// nil while it lives.
    public var endReason: String? { state.withLock { $0.endReason } }

    /// 410 naming why it ended, once it has.
    public var endedError: APIError? {
        endReason.map { APIError(.gone, "sandbox_ended", "sandbox \(id) has ended: \($0)") }
    }

    /// 409: it is paused.
    public var pausedError: APIError {
        APIError(.conflict, "sandbox_paused", "sandbox \(id) is paused: resume it first")
    }

    /// Marks it in use for the length of `body` (the idle clock restarts when it ends).
    public func using<T>(_ body: () async throws -> T) async rethrows -> T {
        state.withLock { $0.busy += 1 }
        defer {
            state.withLock {
                $0.busy -= 1
                $0.lastActiveMs = SandboxRegistry.nowMs()
            }
        }
        return try await body()
    }

    /// Restarts the idle clock (a pause or a resume counts as use).
    func touch() {
        state.withLock { $0.lastActiveMs = SandboxRegistry.nowMs() }
    }

    /// Marks it in use until the returned function is called (once): for work that outlives
    /// the handler, a download's body.
    public func beginUse() -> @Sendable () -> Void {
        state.withLock { $0.busy += 1 }
        let once = Mutex(false)
        return { [self] in
            guard once.withLock({ done in defer { done = true }; return !done }) else { return }
            state.withLock {
                $0.busy -= 1
                $0.lastActiveMs = SandboxRegistry.nowMs()
            }
        }
    }

    /// Takes the sandbox's step turn, or false when another step runs now.
    func beginStep() -> Bool {
        state.withLock { state in
            guard !state.stepping else { return false }
            state.stepping = true
            return true
        }
    }

    func endStep() {
        state.withLock { $0.stepping = false }
    }

    /// Its code contexts, oldest first.
    public var contexts: [LiveContext] { state.withLock { Array($0.contexts.values) }.sorted { $0.id < $1.id } }

    /// Context `id`, or 404.
    public func context(_ id: String) throws(APIError) -> LiveContext {
        guard let context = state.withLock({ $0.contexts[id] }) else {
            throw APIError.notFound("sandbox \(self.id) has no context \(Printable.text(id, limit: 64))")
        }
        return context
    }

    /// Keeps `context`, unless it already holds `maximum`.
    func add(_ context: LiveContext, maximum: Int) -> Bool {
        state.withLock { state in
            guard state.contexts.count < maximum, state.endReason == nil else { return false }
            state.contexts[context.id] = context
            return true
        }
    }

    /// Forgets and closes context `id`.
    public func removeContext(_ id: String) throws(APIError) {
        let context = try context(id)
        state.withLock { _ = $0.contexts.removeValue(forKey: id) }
        context.close()
    }

    /// Why it should end at `nowMs`, if it should.
    func expiry(nowMs: Int64) -> String? {
        state.withLock { state in
            if state.endReason != nil { return nil }
            if nowMs >= expiresAtMs { return "its maximum lifetime of \(DurationText.format(milliseconds: Int(expiresAtMs - createdAtMs))) ran out" }
            // A paused sandbox is kept for its owner until resumed or its lifetime runs out.
            if state.busy == 0, !jail.isPaused, nowMs - state.lastActiveMs >= idleTimeoutMs {
                return "idle for \(DurationText.format(milliseconds: Int(idleTimeoutMs)))"
            }
            return nil
        }
    }

    /// The next instant it may have to end at.
    func nextDeadlineMs() -> Int64 {
        state.withLock { state in
            state.busy > 0 || jail.isPaused ? expiresAtMs : min(expiresAtMs, state.lastActiveMs + idleTimeoutMs)
        }
    }

    /// Ends its jail; the first reason is kept. Returns false when it had ended already.
    @discardableResult
    func end(reason: String) -> Bool {
        let first = state.withLock { state -> Bool in
            guard state.endReason == nil else { return false }
            state.endReason = reason
            state.endedAtMs = SandboxRegistry.nowMs()
            return true
        }
        if first {
            jail.end()
            for context in state.withLock({ Array($0.contexts.values) }) { context.close() }
            // The token dies with the sandbox.
            if let broker { Task { await broker.close() } }
        }
        return first
    }

    /// What `GET /v1/sandboxes/{id}` answers.
    public func view(nowMs: Int64) -> SandboxView {
        let (lastActive, busy, reason, endedAt) = state.withLock { ($0.lastActiveMs, $0.busy, $0.endReason, $0.endedAtMs) }
        let usage = reason == nil ? jail.usage() : nil
        return SandboxView(
            id: id, state: reason != nil ? "ended" : jail.isPaused ? "paused" : "running", profile: profile, createdAtMs: createdAtMs,
            ageMs: (endedAt ?? nowMs) - createdAtMs, idleMs: busy > 0 || reason != nil ? 0 : max(0, nowMs - lastActive),
            idleTimeoutMs: idleTimeoutMs, expiresAtMs: expiresAtMs, runningCommands: reason == nil ? jail.runningCommands : 0,
            fromPool: jail.fromPool, limits: JailResult.AppliedLimits(limits),
            usage: usage.map { SandboxView.Usage(cpuMs: $0.cpuNanos.map { Double($0 / 1000) / 1000 }, peakMemoryBytes: $0.peakMemoryBytes,
                                                  oomKills: $0.oomKills, pidsLimitHits: $0.pidsLimitHits) },
            endedAtMs: endedAt, endReason: reason, session: session?.info.id, tools: tools)
    }
}

/// A sandbox as the API shows it.
public struct SandboxView: Encodable, Sendable {
    struct Usage: Encodable, Sendable {
        var cpuMs: Double?
        var peakMemoryBytes: UInt64?
        var oomKills: Int
        var pidsLimitHits: Int

        enum CodingKeys: String, CodingKey {
            case cpuMs = "cpu_ms"
            case peakMemoryBytes = "peak_memory_bytes"
            case oomKills = "oom_kills"
            case pidsLimitHits = "pids_limit_hits"
        }
    }

    var id: String
    /// running, paused or ended.
    var state: String
    var profile: String
    var createdAtMs: Int64
    var ageMs: Int64
    var idleMs: Int64
    var idleTimeoutMs: Int64
    var expiresAtMs: Int64
    var runningCommands: Int
    var fromPool: Bool
    var limits: JailResult.AppliedLimits
    var usage: Usage?
    var endedAtMs: Int64?
    var endReason: String?
    /// The session its steps are sealed in.
    var session: String?
    var tools: [String]
    /// A hibernated sandbox: when, what its /work holds, and what ended with its jail.
    var hibernated: Hibernation?

    struct Hibernation: Encodable, Sendable {
        var atMs: Int64
        var files: Int
        var bytes: UInt64
        var lost: HibernatedSandbox.Lost

        enum CodingKeys: String, CodingKey {
            case files, bytes, lost
            case atMs = "at_ms"
        }
    }

    enum CodingKeys: String, CodingKey {
        case id, state, profile, limits, usage, session, tools, hibernated
        case createdAtMs = "created_at_ms"
        case ageMs = "age_ms"
        case idleMs = "idle_ms"
        case idleTimeoutMs = "idle_timeout_ms"
        case expiresAtMs = "expires_at_ms"
        case runningCommands = "running_commands"
        case fromPool = "from_pool"
        case endedAtMs = "ended_at_ms"
        case endReason = "end_reason"
    }
}

/// The live sandboxes of this server, by id: bounded in number (globally and per tenant), ended
/// when idle or past their lifetime by a reaper, and remembered for a while after they end so
/// that a caller learns why.
public final class SandboxRegistry: Sendable {
    public let limits: SandboxLimits
    private struct State {
        var live: [String: Sandbox] = [:]
        /// Places taken by sandboxes being made (counted against the maxima before the jail exists).
        var starting: [String: Int] = [:]
        var ended: [Sandbox] = []
        var closed = false
        var reaping = false
    }
    private let state = Mutex(State())
    private let logger: Logger
    /// Hibernated sandboxes, kept on disk; nil where nothing is kept (`sealbox mcp`).
    public let hibernation: HibernatedSandboxes?

    public init(limits: SandboxLimits, hibernation: HibernatedSandboxes? = nil, logger: Logger = Logger(label: "sealbox.sandboxes")) {
        self.limits = limits
        self.hibernation = hibernation
        self.logger = logger
    }

    public static func nowMs() -> Int64 { Int64(Date().timeIntervalSince1970 * 1000) }

    /// Takes a place for `tenant`'s new sandbox, or 429 / 503.
    func reserve(tenant: String) throws(APIError) {
        try state.withLock { state throws(APIError) in
            if state.closed {
                throw APIError(.serviceUnavailable, "shutting_down", "the server is shutting down and makes no new sandboxes", retryAfter: 5)
            }
            let starting = state.starting.values.reduce(0, +)
            guard state.live.count + starting < limits.maxLive else {
                throw APIError(.tooManyRequests, "busy", "\(limits.maxLive) sandboxes are live, the most this server keeps; end one (DELETE /v1/sandboxes/{id}) or retry later", retryAfter: 5)
            }
            let own = state.live.values.filter { $0.tenant == tenant }.count + state.starting[tenant, default: 0]
            guard own < limits.maxLivePerTenant else {
                throw APIError(.tooManyRequests, "busy", "tenant \(tenant) has \(limits.maxLivePerTenant) live sandboxes, its whole share; end one (DELETE /v1/sandboxes/{id}) first", retryAfter: 5)
            }
            state.starting[tenant, default: 0] += 1
        }
    }

    /// Gives back a place `reserve` took, with the sandbox it became (or nil when making it failed).
    func admit(_ sandbox: Sandbox?, tenant: String) {
        let refused = state.withLock { state -> Bool in
            state.starting[tenant, default: 1] -= 1
            if state.starting[tenant] == 0 { state.starting[tenant] = nil }
            guard let sandbox else { return false }
            if state.closed { return true }
            state.live[sandbox.id] = sandbox
            return false
        }
        if let sandbox, refused { sandbox.end(reason: "the server shut down") }
        if sandbox != nil { startReaper() }
    }

    /// The sandbox `id` as `identity` may see it (another tenant's is a 404 like a missing
    /// one); a hibernated one is a 409 saying to wake it.
    public func sandbox(_ id: String, visibleTo identity: APIIdentity, includingEnded: Bool = false) throws(APIError) -> Sandbox {
        let live = state.withLock { $0.live[id] }
        if let live, identity.canSee(ownedBy: live.tenant) { return live }
        if let record = hibernation?.record(id), identity.canSee(ownedBy: record.tenant) {
            throw APIError(.conflict, "sandbox_hibernated", "sandbox \(id) is hibernated: wake it first (POST /v1/sandboxes/\(id)/wake)")
        }
        let found = state.withLock { state in state.ended.first { $0.id == id } }
        guard let found, identity.canSee(ownedBy: found.tenant) else {
            throw APIError.notFound("no sandbox \(Printable.text(id, limit: 64))")
        }
        if !includingEnded, let ended = found.endedError { throw ended }
        return found
    }

    /// What `GET /v1/sandboxes/{id}` answers: a live, hibernated or recently ended sandbox.
    func view(_ id: String, visibleTo identity: APIIdentity) throws(APIError) -> SandboxView {
        let now = Self.nowMs()
        if let record = hibernation?.record(id), identity.canSee(ownedBy: record.tenant), state.withLock({ $0.live[id] == nil }) {
            return record.view(nowMs: now)
        }
        return try sandbox(id, visibleTo: identity, includingEnded: true).view(nowMs: now)
    }

    /// The sandboxes `identity` may see: live ones (oldest first), hibernated ones, then the
    /// ended ones kept (one that was woken again shows once, live).
    func list(visibleTo identity: APIIdentity) -> [SandboxView] {
        let now = Self.nowMs()
        let (live, ended) = state.withLock { state in
            (state.live.values.filter { identity.canSee(ownedBy: $0.tenant) }.sorted { ($0.createdAtMs, $0.id) < ($1.createdAtMs, $1.id) },
             state.ended.filter { identity.canSee(ownedBy: $0.tenant) })
        }
        let hibernated = hibernation?.list(visibleTo: identity) ?? []
        let shown = Set(live.map(\.id)).union(hibernated.map(\.id))
        return live.map { $0.view(nowMs: now) } + hibernated.map { $0.view(nowMs: now) }
            + ended.filter { !shown.contains($0.id) }.map { $0.view(nowMs: now) }
    }

    /// Deletes hibernated sandbox `id` (its record; its files' contents stay in the blob
    /// store, shared with checkpoints). Its last view, marked ended, or nil when it is not one
    /// `identity` may see.
    func deleteHibernated(_ id: String, by identity: APIIdentity) -> SandboxView? {
        guard let record = hibernation?.record(id), identity.canSee(ownedBy: record.tenant), hibernation?.remove(id) == true else { return nil }
        var view = record.view(nowMs: Self.nowMs())
        view.state = "ended"
        view.endReason = "deleted while hibernated by key \(identity.keyID)"
        logger.info("hibernated sandbox deleted", metadata: ["sandbox_id": .string(id), "tenant": .string(record.tenant)])
        return view
    }

    public var liveCount: Int { state.withLock { $0.live.count } }

    /// Ends `sandbox` (kills everything in it) and keeps it among the ended for a while.
    public func end(_ sandbox: Sandbox, reason: String) {
        guard sandbox.end(reason: reason) else { return }
        state.withLock { state in
            state.live[sandbox.id] = nil
            state.ended.insert(sandbox, at: 0)
            if state.ended.count > limits.endedKept { state.ended.removeLast(state.ended.count - limits.endedKept) }
        }
        logger.info("sandbox ended", metadata: ["sandbox_id": .string(sandbox.id), "tenant": .string(sandbox.tenant), "reason": .string(reason)])
    }

    /// Ends what is idle or past its lifetime at `nowMs`; returns the next deadline.
    @discardableResult
    func reap(nowMs: Int64 = SandboxRegistry.nowMs()) -> Int64? {
        let live = state.withLock { Array($0.live.values) }
        var next: Int64?
        for sandbox in live {
            if let reason = sandbox.expiry(nowMs: nowMs) {
                end(sandbox, reason: reason)
            } else {
                let deadline = sandbox.nextDeadlineMs()
                next = min(next ?? deadline, deadline)
            }
        }
        return next
    }

    /// Ends sandboxes when their time is up, from the first sandbox made until `shutdown` (or
    /// until nothing holds the registry any more). Wakes at the nearest deadline, and at least
    /// every second (no sandbox's idle timeout is shorter).
    private func startReaper() {
        let start = state.withLock { state -> Bool in
            defer { state.reaping = true }
            return !state.reaping && !state.closed
        }
        guard start else { return }
        Task { [weak self] in
            while let wait = self?.reapOnce() {
                try? await Task.sleep(for: .milliseconds(wait))
            }
        }
    }

    /// One pass of the reaper: how long to sleep, or nil once the registry is closed.
    private func reapOnce() -> Int64? {
        guard !state.withLock({ $0.closed }) else { return nil }
        let now = Self.nowMs()
        let next = reap(nowMs: now) ?? now + 1000
        return max(10, min(1000, next - now))
    }

    /// Makes no new sandbox, and ends every live one.
    public func shutdown(reason: String) {
        let live = state.withLock { state -> [Sandbox] in
            state.closed = true
            return Array(state.live.values)
        }
        for sandbox in live { end(sandbox, reason: reason) }
    }
}
