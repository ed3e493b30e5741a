import Foundation
import HTTPTypes
import SealboxBase
import SealboxBroker
import SealboxJail
import SealboxRuntime

/// What a sandbox's command or chunk answers, as a step of the sandbox's session marks it.
protocol SandboxStepAnswer: Codable, Sendable {
    /// Whether what happened is an outcome worth sealing (false: it never started, or the
    /// service cut it short), so that sending the step again runs it rather than replaying that.
    var isOutcome: Bool { get }
    /// Answered from checkpoint `seq` (`replayed`), or just sealed as it (`!replayed`).
    mutating func markStep(replayed: Bool, checkpoint: Int64)
    /// The /work the step left, as its seal keeps it.
    mutating func keep(workspace: RunResult.WorkspaceSummary)
    /// It ran but was not sealed: why, and the tool calls that wait on a decision.
    mutating func markUnsealed(_ why: String, blocked: [RunResult.BlockedEffect])
}

extension RunResult: SandboxStepAnswer {
    var isOutcome: Bool {
        !(jail.status == .spawnFailed && jail.exitCode == 125) && !jail.interrupted && jail.status != .cancelled
    }

    mutating func markStep(replayed: Bool, checkpoint: Int64) {
        self.replayed = replayed
        self.checkpoint = checkpoint
    }

    mutating func keep(workspace: RunResult.WorkspaceSummary) {
        replayed = false
        self.workspace = workspace
    }

    mutating func markUnsealed(_ why: String, blocked: [RunResult.BlockedEffect]) {
        replayed = false
        self.blocked = blocked.isEmpty ? [.init(seq: nil, code: "not_sealed", message: why)] : blocked
    }
}

extension ContextChunkResult: SandboxStepAnswer {
    /// A chunk that did not finish throws instead of answering.
    var isOutcome: Bool { true }

    mutating func markStep(replayed: Bool, checkpoint: Int64) {
        self.replayed = replayed
        self.checkpoint = checkpoint
    }

    mutating func keep(workspace: RunResult.WorkspaceSummary) {
        replayed = false
    }

    mutating func markUnsealed(_ why: String, blocked: [RunResult.BlockedEffect]) {
        replayed = false
        unsealed = blocked.isEmpty ? why : why + ": " + blocked.map { "\($0.code) (\($0.message))" }.joined(separator: "; ")
    }
}

extension SandboxService {
    /// Runs `body` as step `key` of `sandbox`'s session, or plainly when `key` is nil.
    ///
    /// Sealed before with the same `inputs`: answered from the seal, nothing runs (other
    /// inputs: 409 `step_conflict`). Otherwise one step at a time per sandbox (409
    /// `step_running`): it runs, and is then sealed with a snapshot of /work (taken with the
    /// sandbox frozen) and the effect log's cursor of the sandbox's broker run. Not sealed,
    /// so that sending it again runs it: what never started or was cut short, a step whose
    /// tool calls wait on a decision, a step whose sandbox ended meanwhile.
    func asStep<Answer: SandboxStepAnswer>(_ key: String?, inputs: [[UInt8]], in sandbox: Sandbox,
                                           _ body: () async throws(APIError) -> Answer) async throws(APIError) -> Answer {
        guard let key else { return try await body() }
        guard let session = sandbox.session else {
            throw APIError.badRequest("step needs a sandbox made in a session (POST /v1/sandboxes with session or new_session)", field: "step")
        }
        let step: StepCheckpoint
        do throws(RuntimeError) {
            step = try session.step(key, inputs: inputs)
            if let sealed = try step.sealedJSON() { return try Self.replay(sealed) }
        } catch {
            throw safe(APIError(error))
        }
        guard sandbox.beginStep() else {
            throw APIError(.conflict, "step_running", "sandbox \(sandbox.id) runs a step now; its steps run one at a time", field: "step", retryAfter: 1)
        }
        defer { sandbox.endStep() }
        let attempt: Int64
        do throws(RuntimeError) {
            let recorded: Int64?
            do {
                recorded = try step.recordStart(runID: sandbox.id)
            } catch let error as RuntimeError {
                throw error
            } catch {
                throw RuntimeError(.storage, "\(error)")
            }
            guard let started = recorded else {
                // Sealed by another sandbox of the session between the look and the lease.
                guard let sealed = try step.sealedJSON() else {
                    throw RuntimeError(.stepRunning, "step \(key) was just sealed; ask again", field: "step")
                }
                return try Self.replay(sealed)
            }
            attempt = started
        } catch {
            throw safe(APIError(error))
        }
        var sealed = false
        var outcome = "not_started"
        defer { if !sealed { step.end(attempt: attempt, outcome: outcome) } }
        // Calls refused before this step are not this step's.
        if let broker = sandbox.broker { _ = await broker.cursor() }
        var answer = try await body()
        outcome = "failed"
        guard answer.isOutcome, sandbox.endReason == nil else {
            answer.markUnsealed("the step did not finish (it never started, or the sandbox or service ended it); send it again", blocked: [])
            return answer
        }
        let cursor = await sandbox.broker?.cursor()
        if let failure = cursor?.failure {
            answer.markUnsealed("the step is not sealed: where its tool calls stand is unknown (\(failure)); send it again", blocked: [])
            return answer
        }
        if let blocked = cursor?.blocked, !blocked.isEmpty {
            outcome = "blocked"
            answer.markUnsealed("tool calls wait on a decision; send the step again once decided",
                                blocked: blocked.map { .init(seq: $0.seq, code: $0.code.rawValue, message: $0.message) })
            return answer
        }
        do throws(RuntimeError) {
            let kept = answer
            let (seq, summary) = try session.seal(step, jail: sandbox.jail, ledgerCursor: cursor?.lastSeq) { summary in
                var stored = kept
                stored.keep(workspace: summary)
                return String(decoding: (try? JSONEncoder().encode(stored)) ?? Data(), as: UTF8.self)
            }
            sealed = true
            answer.keep(workspace: summary)
            answer.markStep(replayed: false, checkpoint: seq)
            return answer
        } catch {
            throw safe(APIError(error))
        }
    }

    private static func replay<Answer: SandboxStepAnswer>(_ sealed: (json: String, seq: Int64)) throws(RuntimeError) -> Answer {
        guard var answer = try? JSONDecoder().decode(Answer.self, from: Data(sealed.json.utf8)) else {
            throw RuntimeError(.storage, "checkpoint \(sealed.seq) holds an unreadable result")
        }
        answer.markStep(replayed: true, checkpoint: sealed.seq)
        return answer
    }
}
