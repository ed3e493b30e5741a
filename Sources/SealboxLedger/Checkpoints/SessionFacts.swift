import Foundation
import SealboxBase

/// The three recovery questions about a session, answered in one read of the checkpoint
/// store and the effect log: what is already true, what authority remains, what is unsafe
/// or unresolved. `sealbox session facts` prints it.
public struct SessionFacts: Sendable, Codable, Equatable {
    public var session: String
    public var forkedFrom: String?
    public var forkedAtStep: String?
    /// Every session of the family (forks of forks share the root).
    public var family: [String]
    public var whatIsTrue: TrueFacts
    public var authority: Authority
    public var unsafe: Unsafe
    /// True when nothing is unsafe or unresolved.
    public var clean: Bool
    public var generatedAtMs: Int64

    enum CodingKeys: String, CodingKey {
        case session
        case forkedFrom = "forked_from"
        case forkedAtStep = "forked_at_step"
        case family
        case whatIsTrue = "true"
        case authority, unsafe, clean
        case generatedAtMs = "generated_at_ms"
    }

    public struct TrueFacts: Sendable, Codable, Equatable {
        public var steps: [StepFact]
        public var effects: [EffectFact]
    }

    public struct Authority: Sendable, Codable, Equatable {
        public var tokens: [GrantSummary]
        public var approvals: [EffectFact]
        /// Grants the log still shows live whose broker is gone (killed): their tokens no
        /// longer verify, since a broker's signing key dies with it; the next broker to open
        /// the log records their end.
        public var tokensOfGoneBrokers: [GrantSummary]

        enum CodingKeys: String, CodingKey {
            case tokens, approvals
            case tokensOfGoneBrokers = "tokens_of_gone_brokers"
        }
    }

    public struct Unsafe: Sendable, Codable, Equatable {
        /// Irreversible calls that may or may not have happened.
        public var inDoubt: [EffectFact]
        /// Intents without a completion whose runner is gone: irreversible ones are in doubt
        /// (the next broker to open the log marks them so), others are safe to re-run.
        public var interrupted: [EffectFact]
        /// Intents whose runner is still alive: executing now.
        public var inFlight: [EffectFact]
        public var unsealedSteps: [UnsealedStep]

        enum CodingKeys: String, CodingKey {
            case inDoubt = "in_doubt"
            case interrupted
            case inFlight = "in_flight"
            case unsealedSteps = "unsealed_steps"
        }

        var isEmpty: Bool { inDoubt.isEmpty && interrupted.isEmpty && inFlight.isEmpty && unsealedSteps.isEmpty }
    }

    public struct StepFact: Sendable, Codable, Equatable {
        public var step: String
        public var checkpoint: Int64
        /// The session that sealed it (for a fork, the parent for inherited steps).
        public var session: String
        public var status: String
        public var exitCode: Int?
        public var runID: String?
        public var snapshot: String?
        public var ledgerCursor: Int64?
        public var sealedAtMs: Int64

        enum CodingKeys: String, CodingKey {
            case step, checkpoint, session, status
            case exitCode = "exit_code"
            case runID = "run_id"
            case snapshot
            case ledgerCursor = "ledger_cursor"
            case sealedAtMs = "sealed_at_ms"
        }
    }

    public struct EffectFact: Sendable, Codable, Equatable {
        public enum Origin: String, Sendable, Codable {
            /// A call of this session.
            case session
            /// A call of a parent session, made by a step this fork inherited.
            case inherited
            /// An irreversible call of another branch of the family: it binds this branch too.
            case sibling
        }

        public var seq: Int64
        public var completionSeq: Int64?
        public var tool: String
        public var effectClass: EffectClass
        public var state: CallState
        public var session: String
        public var runID: String
        /// The step whose run made the call, when known.
        public var step: String?
        public var origin: Origin
        /// What an operator can do about it, when anything.
        public var action: String?

        enum CodingKeys: String, CodingKey {
            case seq
            case completionSeq = "completion_seq"
            case tool
            case effectClass = "effect_class"
            case state, session
            case runID = "run_id"
            case step, origin, action
        }
    }

    public struct UnsealedStep: Sendable, Codable, Equatable {
        public var step: String
        public var runID: String?
        public var startedAtMs: Int64
        public var pid: Int32
        public var runnerAlive: Bool
        public var action: String

        enum CodingKeys: String, CodingKey {
            case step
            case runID = "run_id"
            case startedAtMs = "started_at_ms"
            case pid
            case runnerAlive = "runner_alive"
            case action
        }
    }

    /// At most this many calls are read per session family.
    public static let maximumCalls = 10_000

    /// Reads both stores. `ledger` may be nil when the session never used a broker.
    public static func gather(store: any CheckpointStore, ledger: Ledger?, session: String,
                              nowMs: Int64 = Int64(Date().timeIntervalSince1970 * 1000)) throws -> SessionFacts {
        guard let info = try store.session(session) else {
            throw CheckpointError(.unknownSession, "unknown session \(session)")
        }
        let family = try store.family(of: session)
        let sealed = try store.steps(session: session)
        let attempts = try store.unsealedAttempts(session: session)

        var stepOfRun: [String: String] = [:]
        var steps: [StepFact] = []
        for checkpoint in sealed {
            // The sealed run result, read by the one reader; only three of its members matter here.
            let result = (try? JSONReader.parse(Array(checkpoint.result.utf8))) ?? .null
            let runID = result["id"]?.stringValue
            if let runID { stepOfRun[runID] = checkpoint.stepKey }
            steps.append(StepFact(
                step: checkpoint.stepKey, checkpoint: checkpoint.seq, session: checkpoint.sessionID,
                status: result["status"]?.stringValue ?? "unknown", exitCode: result["exit_code"]?.numberLiteral.flatMap { Int($0) }, runID: runID,
                snapshot: checkpoint.snapshot, ledgerCursor: checkpoint.ledgerCursor, sealedAtMs: checkpoint.createdAtMs))
        }
        // Runs of attempts that never sealed (a killed runner's effects) belong to their step too.
        for attempt in try store.attempts(session: session) {
            if let runID = attempt.runID, stepOfRun[runID] == nil { stepOfRun[runID] = attempt.stepKey }
        }
        var runnerOfRun: [String: StepAttempt] = [:]
        for attempt in attempts {
            if let runID = attempt.runID {
                runnerOfRun[runID] = attempt
                stepOfRun[runID] = attempt.stepKey
            }
        }
        let inheritedRuns = Set(steps.filter { $0.session != session }.compactMap(\.runID))

        var facts = SessionFacts(
            session: session, forkedFrom: info.forkedFrom, forkedAtStep: info.forkedAtStep, family: family,
            whatIsTrue: TrueFacts(steps: steps, effects: []), authority: Authority(tokens: [], approvals: [], tokensOfGoneBrokers: []),
            unsafe: Unsafe(inDoubt: [], interrupted: [], inFlight: [], unsealedSteps: []), clean: true, generatedAtMs: nowMs)

        if let ledger {
            let calls = try ledger.calls(sessionIDs: family, limit: maximumCalls)
            for call in calls {
                let origin: EffectFact.Origin
                if call.sessionID == session {
                    origin = .session
                } else if inheritedRuns.contains(call.runID) {
                    origin = .inherited
                } else if call.effectClass == .irreversible {
                    origin = .sibling
                } else {
                    continue  // another branch's reversible work does not bind this one
                }
                var fact = EffectFact(
                    seq: call.intentSeq, completionSeq: call.completionSeq, tool: call.tool, effectClass: call.effectClass,
                    state: call.state, session: call.sessionID, runID: call.runID, step: stepOfRun[call.runID], origin: origin)
                switch call.state {
                case .sealed, .failed, .denied, .resolvedHappened, .resolvedNotHappened:
                    facts.whatIsTrue.effects.append(fact)
                case .awaitingApproval:
                    fact.action = "sealbox log approve \(call.intentSeq)  (or: sealbox log deny \(call.intentSeq))"
                    facts.authority.approvals.append(fact)
                case .approved:
                    fact.action = "approved, not executed yet: the next run of the step executes it"
                    facts.authority.approvals.append(fact)
                case .inDoubt:
                    fact.action = "check the world, then: sealbox log resolve \(call.intentSeq) --happened  (or --did-not-happen)"
                    facts.unsafe.inDoubt.append(fact)
                case .interrupted:
                    fact.action = "safe to re-run: the next run of the step executes it again under the same key"
                    facts.unsafe.interrupted.append(fact)
                case .pending:
                    if let runner = runnerOfRun[call.runID], runner.runnerAlive {
                        fact.action = "executing now (runner pid \(runner.pid))"
                        facts.unsafe.inFlight.append(fact)
                    } else if call.effectClass == .irreversible {
                        fact.action = "intent without completion and its runner is gone: in doubt. The next broker to open the log marks it in_doubt (re-running the step does, and refuses the call); then check the world and run: sealbox log resolve \(call.intentSeq) --happened  (or --did-not-happen)"
                        facts.unsafe.inDoubt.append(fact)
                    } else {
                        fact.action = "the runner stopped before completion; safe to re-run"
                        facts.unsafe.interrupted.append(fact)
                    }
                }
            }
            for grant in try ledger.liveGrants(sessionIDs: [session], nowMs: nowMs) {
                if let broker = grant.brokerID, ledger.leases.isRunning(broker) == false {
                    facts.authority.tokensOfGoneBrokers.append(grant)
                } else {
                    facts.authority.tokens.append(grant)
                }
            }
        }
        for attempt in attempts {
            let action: String
            if attempt.runnerAlive {
                action = "running now (pid \(attempt.pid)); wait for it"
            } else if let outcome = attempt.outcome {
                switch outcome {
                case "blocked": action = "stopped on a tool call that waits on a decision: decide it, then re-run the step"
                case "interrupted": action = "its run was killed before it finished (the service shut down): re-run the step"
                default: action = "ended without a seal (\(outcome)): re-run the step"
                }
            } else {
                action = "its runner is gone: re-run the step (sealed effects answer from the log; irreversible in-doubt ones refuse until resolved)"
            }
            facts.unsafe.unsealedSteps.append(UnsealedStep(
                step: attempt.stepKey, runID: attempt.runID, startedAtMs: attempt.startedAtMs, pid: attempt.pid,
                runnerAlive: attempt.runnerAlive, action: action))
        }
        facts.clean = facts.unsafe.isEmpty
        return facts
    }
}
