import Crypto
import Foundation
import SealboxBase
import SealboxLedger
import SealboxTracing
import Synchronization
import Tracing

/// Applies the effect-class rules of DESIGN.md to one call: verify the token, look up what the
/// effect log already knows under (session, tool, idempotency key) — for irreversible tools also
/// in the other sessions of the session's family (`EffectEngineFamily.swift`) — and then either
/// answer from the log (replay), refuse (in doubt, awaiting approval, denied), or run the tool
/// with an intent durably written before and a sealed completion after.
public final class EffectEngine: Sendable {
    public let config: BrokerConfig
    public let ledger: Ledger
    public let authority: TokenAuthority
    public let revocations: RevocationList
    /// This broker's lease on the effect log (see `BrokerLeases`); nil: an engine that never
    /// recovers other brokers' work.
    public let lease: (any BrokerLease)?
    private let runner: ToolRunner
    /// What each open run and tenant used of `config.limits`.
    public let usage: UsageBook
    private let keyLocks = KeyedLocks()
    /// Who computes next when calls of several tenants wait (`FairTurns`).
    public let turns: FairTurns
    private let inFlight = Atomic<Int>(0)
    /// The effect log's world-key secret, read once (`WorldKey`).
    private let worldSecret = Mutex<[UInt8]?>(nil)
    /// How long a world call keeps its turn (`FairTurns.holding`): a loopback world answers a
    /// debug build's call in a few milliseconds even on a loaded machine.
    static let worldCallSlice: Duration = .milliseconds(50)
    /// Longest caller-chosen idempotency key.
    static let maxKeyLength = 256
    /// Keys the broker makes itself (`auto:` from a call's tool and arguments); a jail may
    /// not choose one, or it could claim the key an honest later call will derive.
    static let reservedKeyPrefixes = ["auto:", WorldKey.version]

    public init(config: BrokerConfig, ledger: Ledger, authority: TokenAuthority, revocations: RevocationList, lease: (any BrokerLease)? = nil,
                turns: FairTurns = FairTurns()) {
        self.turns = turns
        self.config = config
        self.ledger = ledger
        self.authority = authority
        self.revocations = revocations
        self.lease = lease
        self.runner = ToolRunner(config: config)
        self.usage = UsageBook(limits: config.limits)
    }

    /// Calls being decided or executed right now (a stopping broker waits for them: an intent
    /// it leaves without completion becomes in doubt).
    public var callsInFlight: Int { inFlight.load(ordering: .sequentiallyConsistent) }

    /// Handles one request line that arrived on the socket of `runID`. `span`: the call's
    /// span (`ToolCallTracing`), which learns the tool and its effect class once the token is
    /// verified for that tool (before that, the name is only what the jail wrote).
    public func handle(line: Data, runID: String, span: (any Span)? = nil) async -> CallResponse {
        let request: CallRequest
        do {
            // One strict reading: a duplicate member name ("tool" twice) is refused, never
            // read one way by a check and another way by the call.
            request = try StrictJSONDecoder.decode(CallRequest.self, from: [UInt8](line))
        } catch {
            return .failure(BrokerError(.badRequest, "request is not a JSON object with token, op, tool: \(error.message)"))
        }
        return await handle(request, runID: runID, span: span)
    }

    public func handle(_ request: CallRequest, runID: String, span: (any Span)? = nil) async -> CallResponse {
        // Counted before the token is checked: a stopping broker revokes every token first and
        // then waits for this count, so no call it missed can still write an intent.
        inFlight.wrappingAdd(1, ordering: .sequentiallyConsistent)
        defer { inFlight.wrappingSubtract(1, ordering: .sequentiallyConsistent) }
        guard request.op == "call" else {
            return .failure(BrokerError(.badRequest, "unknown op \"\(request.op)\" (the only op is \"call\")"))
        }
        // A run calling faster than its budget waits here, its connection with it; the wait
        // holds no thread (`BrokerLimits.Scope.callsPerSecond`).
        let wait = usage.chargeCall(runID: runID)
        if wait > .zero { try? await Task.sleep(for: wait) }
        // A run not opened through a server (tests) counts as its own tenant.
        let tenant = usage.tenant(of: runID) ?? "run:" + runID
        turns.enter(tenant)
        defer { turns.leave(tenant) }
        await turns.acquire(tenant)
        let prepared = prepare(request, runID: runID, tenant: tenant, span: span)
        turns.release(tenant)
        let call: PreparedCall
        switch prepared {
        case .success(let ready): call = ready
        case .failure(let refusal): return refusal.response
        }
        // Calls with the same key wait for each other, so the second one sees the first's seal.
        // Irreversible calls consult the whole session family, so they wait across the family:
        // two forks calling at once must not both find nothing and both execute.
        let scope = call.tool.effect == .irreversible ? familyRoot(of: call.claims.sessionID) : call.claims.sessionID
        return await keyLocks.withLock("\(scope)\n\(call.tool.name)\n\(call.key)") {
            // The turn after the key: whoever holds the key may be waiting for a turn.
            await self.turns.acquire(tenant)
            defer { self.turns.release(tenant) }
            // Checked again once the key is ours: a call that waited behind another with the
            // same key must not run after its token was revoked (its run ended meanwhile).
            if let refusal = self.revokedRefusal(call.claims) { return refusal }
            return await self.decide(call)
        }
    }

    /// A refusal, as the error of a `Result`.
    struct Refusal: Error {
        var response: CallResponse
        init(_ response: CallResponse) { self.response = response }
    }

    /// Checks the call's token, tool, target and key, and names its key (`auto:` when the
    /// caller gave none): everything decided from the request alone.
    private func prepare(_ request: CallRequest, runID: String, tenant: String, span: (any Span)?) -> Result<PreparedCall, Refusal> {
        let claims: TokenClaims
        do {
            claims = try authority.verify(request.token, tool: request.tool, runID: runID, nowMs: Self.nowMs(), revocations: revocations)
        } catch {
            return .failure(Refusal(.failure(BrokerError(BrokerErrorCode(rawValue: error.code.rawValue) ?? .denied, error.message))))
        }
        guard let tool = config.tools[request.tool] else {
            return .failure(Refusal(.failure(BrokerError(.unknownTool, "no tool named \"\(request.tool)\""))))
        }
        span?.attributes[SealboxSpan.Attribute.tool] = tool.name
        span?.attributes[SealboxSpan.Attribute.effectClass] = tool.effect.rawValue
        let args = request.args ?? [:]
        let target: String
        do {
            target = try runner.describeTarget(tool, args: args)
        } catch {
            return .failure(Refusal(.failure(BrokerError(.badRequest, error.message))))
        }
        if let key = request.key {
            guard !key.isEmpty, key.utf8.count <= Self.maxKeyLength, !key.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) else {
                return .failure(Refusal(.failure(BrokerError(.badRequest, "key must be 1-\(Self.maxKeyLength) printable characters"))))
            }
            if let reserved = Self.reservedKeyPrefixes.first(where: { key.hasPrefix($0) }) {
                return .failure(Refusal(.failure(BrokerError(.badRequest, "keys starting with \"\(reserved)\" are the broker's own; choose another key"))))
            }
        }
        let argsJSON = CanonicalJSON.v1.string(.object(args))
        // Without a caller key, the same tool with the same arguments in the same session is
        // the same effect: a crashed agent that re-runs its snippet does not repeat it.
        let key = request.key ?? "auto:" + SHA256.hex(text: request.tool + "\n" + argsJSON)
        return .success(PreparedCall(tool: tool, args: args, target: target, key: key, argsDigest: SHA256.hex(text: argsJSON),
                                     claims: claims, fresh: request.fresh ?? false, tenant: tenant))
    }

    /// A refusal when the call's token or run was revoked since it was verified.
    func revokedRefusal(_ claims: TokenClaims) -> CallResponse? {
        guard revocations.isRevoked(tokenID: claims.tokenID, runID: claims.runID) else { return nil }
        return .failure(BrokerError(.revoked, "the token of run \(claims.runID) was revoked before this call was sent; nothing was done"))
    }

    /// The world's idempotency key for `call` (`WorldKey`); nil when the secret cannot be read.
    func worldKey(for call: PreparedCall) -> String? {
        let secret: [UInt8]? = worldSecret.withLock { cached in
            if cached == nil { cached = try? ledger.worldKeySecret() }
            return cached
        }
        guard let secret else { return nil }
        return WorldKey.derive(secret: secret, familyRoot: familyRoot(of: call.claims.sessionID), tool: call.tool.name, key: call.key)
    }

    /// The same key with other arguments names another call: refused (`key_conflict`), never
    /// answered with the first call's result. Returns nil when the arguments match.
    func keyConflict(_ call: PreparedCall, _ previous: CallSummary) -> CallResponse? {
        // An intent without a digest (written by hand, in tests) says nothing either way.
        guard let intent = try? ledger.record(seq: previous.intentSeq), let digest = intent.argsDigest, !digest.isEmpty,
              digest != call.argsDigest else { return nil }
        let place = previous.sessionID == call.claims.sessionID ? "" : " in session \(previous.sessionID) of this session's family"
        return .failure(BrokerError(.keyConflict, "key \"\(call.key)\" of \(call.tool.name) was used at seq \(previous.intentSeq)\(place) with arguments sha256:\(digest); this call's arguments are sha256:\(call.argsDigest). A key names one call: use a new key for a new call"),
                        effect: EffectInfo(seq: previous.intentSeq, replayed: true))
    }

    struct PreparedCall: Sendable {
        var tool: ToolDefinition
        var args: [String: JSONValue]
        var target: String
        var key: String
        var argsDigest: String
        var claims: TokenClaims
        var fresh: Bool
        /// Whose turns the call computes in (`FairTurns`).
        var tenant: String
    }

    /// `recovered`: the log was already checked for the work of brokers that are gone.
    private func decide(_ call: PreparedCall, recovered: Bool = false) async -> CallResponse {
        let tool = call.tool
        let previous: CallSummary?
        do {
            previous = try ledger.latestCall(sessionID: call.claims.sessionID, tool: tool.name, idempotencyKey: call.key)
        } catch {
            return .failure(BrokerError(.toolFailed, "effect log unavailable: \(error.message)"))
        }
        guard let previous, tool.effect != .read, !(tool.effect == .hybrid && call.fresh) else {
            return await startNew(call)
        }
        if let conflict = keyConflict(call, previous) { return conflict }
        let seq = previous.intentSeq
        switch previous.state {
        case .sealed, .resolvedHappened:
            return replay(previous)
        case .failed:
            return await retryAfterFailure(call, previous)
        case .interrupted:
            // Only the intent exists and re-running is safe (not irreversible): execute under
            // the same intent and key.
            if let verdict = familyVerdict(call) { return verdict }
            return await execute(call, intentSeq: seq)
        case .approved:
            // An operator approved it. Execution gets a pending intent of its own, so a crash
            // while it runs is surfaced (in doubt) like any other, not taken for "approved".
            return await startNew(call, approvedAt: seq)
        case .inDoubt:
            return .failure(BrokerError(.inDoubt, "\(tool.name) (seq \(seq)) is irreversible and may or may not have happened: the broker stopped between intent and completion. An operator must run `sealbox log resolve \(seq) --happened` or `--did-not-happen`."), effect: EffectInfo(seq: seq, replayed: true))
        case .pending:
            // Another broker's intent without completion (this broker's own calls with this key
            // wait for each other). If that broker is gone, recovery settles it (in doubt or
            // interrupted) and the rules above apply; if it is live, the call is still running.
            if !recovered, await recoverAbandonedWork() {
                return await decide(call, recovered: true)
            }
            return .failure(BrokerError(.inDoubt, "\(tool.name) (seq \(seq)) is being executed by another broker on this effect log, which is still running: call again once it has finished"), effect: EffectInfo(seq: seq, replayed: true))
        case .awaitingApproval:
            return .failure(BrokerError(.awaitingApproval, "\(tool.name) (seq \(seq)) waits for an operator: `sealbox log approve \(seq)` or `sealbox log deny \(seq)`"), effect: EffectInfo(seq: seq, replayed: true))
        case .denied:
            return .failure(BrokerError(.denied, "\(tool.name) (seq \(seq)) was denied by an operator"), effect: EffectInfo(seq: seq, replayed: true))
        case .resolvedNotHappened:
            return await startNew(call)
        }
    }

    /// Recovers what brokers that are gone left open (`Ledger.recoverAbandonedWork`); true when
    /// it changed anything.
    func recoverAbandonedWork() async -> Bool {
        guard let lease else { return false }
        guard let recovery = try? await ledger.recoverAbandonedWork(lease: lease) else { return false }
        return !recovery.calls.isEmpty
    }

    /// A sealed answer, with no external call. `fromSession`: the family member that sealed it.
    func replay(_ summary: CallSummary, fromSession: String? = nil) -> CallResponse {
        let effect = EffectInfo(seq: summary.intentSeq, replayed: true, completionSeq: summary.completionSeq, fromSession: fromSession)
        if summary.state == .resolvedHappened {
            return .success(.object(["resolved": .string("happened"), "seq": .number(summary.intentSeq)]), effect)
        }
        guard let completionSeq = summary.completionSeq, let record = try? ledger.record(seq: completionSeq) else {
            return .failure(BrokerError(.toolFailed, "sealed completion of seq \(summary.intentSeq) is missing from the effect log"), effect: effect)
        }
        let result = record.response.flatMap { try? JSONReader.parse(Array($0.utf8)) } ?? .null
        if record.status == "ok" { return .success(result, effect) }
        return .failure(BrokerError(.toolFailed, "\(summary.tool) failed (sealed at seq \(completionSeq)); not retried"), result: result, effect: effect)
    }

    private func retryAfterFailure(_ call: PreparedCall, _ previous: CallSummary) async -> CallResponse {
        if call.tool.effect == .irreversible {
            // A failed irreversible call is only retried when it certainly never left the broker.
            guard certainlyNotHappened(previous) else { return replay(previous) }
        }
        return await startNew(call)
    }

    /// A failed call whose completion says the request never reached the world.
    func certainlyNotHappened(_ failed: CallSummary) -> Bool {
        failed.completionSeq.flatMap { try? ledger.record(seq: $0) }?.happened == false
    }

    /// Every new execution starts here (an interrupted intent aside), so this is where the family
    /// is consulted: an irreversible effect sealed in a fork or its parent is not done again.
    private func startNew(_ call: PreparedCall, approvedAt: Int64? = nil) async -> CallResponse {
        if let verdict = familyVerdict(call) { return verdict }
        let needsApproval = call.tool.approval == .human && approvedAt == nil
        if let refusal = quotaRefusal(call, needsApproval: needsApproval) { return refusal }
        // The call's response may be as large as its tool allows: held against the run's
        // effect_bytes until the completion says how large it was, so calls running at once
        // cannot all pass the quota.
        let reserved = needsApproval ? 0 : call.tool.maxResponseBytes
        usage.reserve(reserved, runID: call.claims.runID)
        var handedOver = false
        defer { if !handedOver { usage.settle(reserved: reserved, recorded: 0, runID: call.claims.runID) } }
        let intent = IntentInput(
            runID: call.claims.runID, sessionID: call.claims.sessionID, tool: call.tool.name,
            effectClass: call.tool.effect, idempotencyKey: call.key, target: call.target,
            argsDigest: call.argsDigest, approval: call.tool.approval, tokenID: call.claims.tokenID, fresh: call.fresh)
        let record: EffectRecord
        do {
            record = try await turns.committing(call.tenant) { () async throws(LedgerError) in
                try await ledger.appendIntent(intent, state: needsApproval ? .awaitingApproval : .pending)
            }
        } catch {
            return .failure(BrokerError(.toolFailed, "could not record the intent, nothing was done: \(error.message)"))
        }
        if needsApproval {
            return .failure(BrokerError(.awaitingApproval, "\(call.tool.name) (seq \(record.seq)) waits for an operator: `sealbox log approve \(record.seq)` or `sealbox log deny \(record.seq)`; call again with the same key afterwards"), effect: EffectInfo(seq: record.seq, replayed: false))
        }
        handedOver = true
        return await execute(call, intentSeq: record.seq, reserved: reserved)
    }

    /// Runs the tool for an intent already durable, seals the completion, then answers.
    /// `reserved`: effect bytes held for it (`UsageBook.reserve`), settled here.
    private func execute(_ call: PreparedCall, intentSeq: Int64, reserved: Int = 0) async -> CallResponse {
        let started = DispatchTime.now().uptimeNanoseconds
        var status = "ok"
        var result: JSONValue = .null
        var resourceVersion: String?
        var happened: Bool? = true
        var failure: BrokerError?
        do throws(ToolError) {
            // Revoked since the intent was written: never sent (the completion says so).
            if revokedRefusal(call.claims) != nil {
                throw ToolError(.toolFailed, "the token of run \(call.claims.runID) was revoked before the call was sent; nothing was done", happened: false)
            }
            guard let worldKey = worldKey(for: call) else {
                throw ToolError(.toolFailed, "the effect log's world key secret is unreadable; the call was not sent", happened: false)
            }
            let outcome = try await turns.holding(call.tenant, atMost: Self.worldCallSlice) { () async throws(ToolError) in
                try await runner.run(call.tool, args: call.args, idempotencyKey: worldKey)
            }
            result = outcome.result
            resourceVersion = outcome.resourceVersion
            if let problem = Self.failureInOutcome(outcome.result) {
                status = "tool_failed"
                failure = BrokerError(.toolFailed, "\(call.tool.name): \(problem)")
            }
        } catch {
            status = "tool_failed"
            happened = error.happened
            failure = BrokerError(error.code == .badRequest ? .badRequest : .toolFailed, error.message)
        }
        let durationMs = Double(DispatchTime.now().uptimeNanoseconds - started) / 1_000_000
        let response = CanonicalJSON.v1.string(result)
        usage.settle(reserved: reserved, recorded: response.utf8.count, runID: call.claims.runID)
        let completion = CompletionInput(
            intentSeq: intentSeq, status: status, response: response, responseDigest: SHA256.hex(text: response),
            resourceVersion: resourceVersion, irreversible: call.tool.effect == .irreversible, happened: happened,
            durationMs: durationMs)
        let sealed: EffectRecord
        do {
            sealed = try await turns.committing(call.tenant) { () async throws(LedgerError) in
                try await ledger.appendCompletion(completion)
            }
        } catch {
            // The effect happened but could not be sealed: the intent stays without completion,
            // which a restart surfaces as in doubt. Never claim success here.
            return .failure(BrokerError(.toolFailed, "\(call.tool.name) ran but its completion could not be recorded: \(error.message)"), effect: EffectInfo(seq: intentSeq, replayed: false))
        }
        let effect = EffectInfo(seq: intentSeq, replayed: false, completionSeq: sealed.seq)
        if let failure { return .failure(failure, result: result, effect: effect) }
        return .success(result, effect)
    }

    /// A refusal when the call would pass a quota of its run or tenant (`BrokerLimits`); else
    /// the call is counted. Checked before the intent is written: a refused call leaves no
    /// record and reaches no world.
    func quotaRefusal(_ call: PreparedCall, needsApproval: Bool) -> CallResponse? {
        let runID = call.claims.runID
        if needsApproval, let tenant = usage.tenant(of: runID) {
            let limits = usage.limits
            let waiting: (run: Int, tenant: Int)
            do {
                waiting = (try ledger.awaitingApprovals(runID: runID), try ledger.awaitingApprovals(tenant: tenant))
            } catch {
                return .failure(BrokerError(.toolFailed, "effect log unavailable: \(error.message)"))
            }
            var message: String?
            if waiting.run >= limits.perRun.pendingApprovals {
                message = "run \(runID) has \(waiting.run) calls waiting for an operator (limits.per_run.pending_approvals is \(limits.perRun.pendingApprovals))"
            } else if waiting.tenant >= limits.perTenant.pendingApprovals {
                message = "this tenant has \(waiting.tenant) calls waiting for an operator (limits.per_tenant.pending_approvals is \(limits.perTenant.pendingApprovals))"
            }
            if let message {
                usage.countRefusal("pending_approvals")
                return .failure(BrokerError(.quotaExceeded, message + "; nothing was recorded. An operator approves or denies them with `sealbox log approve|deny SEQ`"))
            }
        }
        if let refusal = usage.admitCall(runID: runID) {
            return .failure(BrokerError(.quotaExceeded, refusal.message + "; nothing was recorded or sent"))
        }
        return nil
    }

    /// An HTTP status outside 2xx or a non-zero exit: the call ran but did not succeed.
    static func failureInOutcome(_ result: JSONValue) -> String? {
        if let status = result["status"], let code = status.doubleValue, !(200..<300).contains(code) {
            return "HTTP \(JSONNumber.canonicalText(status.numberLiteral ?? ""))"
        }
        if let exit = result["exit_code"], let code = exit.doubleValue, code != 0 {
            return "exit code \(JSONNumber.canonicalText(exit.numberLiteral ?? ""))"
        }
        return nil
    }

    static func nowMs() -> Int64 {
        Int64(Date().timeIntervalSince1970 * 1000)
    }
}

/// Serialises work per key: a second call with the same idempotency key waits for the first.
actor KeyedLocks {
    private var waiters: [String: [CheckedContinuation<Void, Never>]] = [:]

    func withLock<T: Sendable>(_ key: String, _ body: @Sendable () async -> T) async -> T {
        await acquire(key)
        let value = await body()
        release(key)
        return value
    }

    private func acquire(_ key: String) async {
        if waiters[key] == nil {
            waiters[key] = []
            return
        }
        await withCheckedContinuation { waiters[key]!.append($0) }
    }

    private func release(_ key: String) {
        guard var queue = waiters[key] else { return }
        if queue.isEmpty {
            waiters[key] = nil
        } else {
            let next = queue.removeFirst()
            waiters[key] = queue
            next.resume()
        }
    }
}
