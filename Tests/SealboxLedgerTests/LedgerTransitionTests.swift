import Foundation
import Testing
@testable import SealboxLedger
@testable import SealboxSQLite

/// One step applied to the call whose intent is seq 1.
enum Step: Sendable, CustomStringConvertible {
    case complete(String)
    case approve
    case deny
    case resolve(happened: Bool)
    case interruptAll

    var description: String {
        switch self {
        case .complete(let status): "complete(\(status))"
        case .approve: "approve"
        case .deny: "deny"
        case .resolve(let happened): "resolve(\(happened ? "happened" : "did_not_happen"))"
        case .interruptAll: "markInterrupted"
        }
    }

    /// Applies the step to intent seq 1.
    func apply(_ ledger: Ledger, effect: EffectClass) async throws(LedgerError) {
        switch self {
        case .complete(let status):
            _ = try await ledger.appendCompletion(makeCompletion(1, status: status, irreversible: effect == .irreversible))
        case .approve:
            _ = try await ledger.approve(intentSeq: 1, actor: "operator:alice")
        case .deny:
            _ = try await ledger.deny(intentSeq: 1, actor: "operator:alice", note: "not today")
        case .resolve(let happened):
            _ = try await ledger.resolve(intentSeq: 1, happened: happened, actor: "operator:alice", note: "checked upstream")
        case .interruptAll:
            _ = try await ledger.markInterrupted(actor: "broker")
        }
    }
}

struct Scenario: Sendable, CustomTestStringConvertible {
    var effect: EffectClass
    var start: CallState
    var steps: [Step]
    /// The state after all steps (valid scenarios).
    var expected: CallState?
    /// The last step must fail with exactly this message (invalid scenarios), leaving state and chain as they were.
    var failure: String?

    var testDescription: String {
        "\(effect.rawValue) \(start.rawValue) → \(steps.map(\.description).joined(separator: " → "))"
    }
}

@Suite("Ledger: call state machine")
struct LedgerTransitionTests {
    static let valid: [Scenario] = [
        Scenario(effect: .idempotent, start: .pending, steps: [.complete("ok")], expected: .sealed),
        Scenario(effect: .idempotent, start: .pending, steps: [.complete("tool_failed")], expected: .failed),
        Scenario(effect: .irreversible, start: .awaitingApproval, steps: [.approve], expected: .approved),
        Scenario(effect: .irreversible, start: .awaitingApproval, steps: [.approve, .complete("ok")], expected: .sealed),
        Scenario(effect: .irreversible, start: .awaitingApproval, steps: [.approve, .complete("tool_failed")], expected: .failed),
        Scenario(effect: .irreversible, start: .awaitingApproval, steps: [.deny], expected: .denied),
        Scenario(effect: .irreversible, start: .pending, steps: [.interruptAll], expected: .inDoubt),
        Scenario(effect: .idempotent, start: .pending, steps: [.interruptAll], expected: .interrupted),
        Scenario(effect: .hybrid, start: .pending, steps: [.interruptAll], expected: .interrupted),
        Scenario(effect: .read, start: .pending, steps: [.interruptAll], expected: .interrupted),
        Scenario(effect: .idempotent, start: .pending, steps: [.interruptAll, .complete("ok")], expected: .sealed),
        Scenario(effect: .irreversible, start: .pending, steps: [.interruptAll, .resolve(happened: true)], expected: .resolvedHappened),
        Scenario(effect: .irreversible, start: .pending, steps: [.interruptAll, .resolve(happened: false)], expected: .resolvedNotHappened),
        // markInterrupted touches only pending calls.
        Scenario(effect: .irreversible, start: .awaitingApproval, steps: [.interruptAll], expected: .awaitingApproval),
        Scenario(effect: .irreversible, start: .pending, steps: [.complete("ok"), .interruptAll], expected: .sealed),
    ]

    static let invalid: [Scenario] = [
        Scenario(effect: .idempotent, start: .pending, steps: [.complete("ok"), .approve],
                 failure: "seq 1 is sealed, not awaiting approval"),
        Scenario(effect: .idempotent, start: .pending, steps: [.approve],
                 failure: "seq 1 is pending, not awaiting approval"),
        Scenario(effect: .irreversible, start: .awaitingApproval, steps: [.approve, .deny],
                 failure: "seq 1 is approved, not awaiting approval"),
        Scenario(effect: .irreversible, start: .awaitingApproval, steps: [.deny, .approve],
                 failure: "seq 1 is denied, not awaiting approval"),
        Scenario(effect: .irreversible, start: .awaitingApproval, steps: [.complete("ok")],
                 failure: "seq 1 is awaiting approval, not pending, approved or interrupted"),
        Scenario(effect: .idempotent, start: .pending, steps: [.complete("ok"), .complete("ok")],
                 failure: "seq 1 is sealed, not pending, approved or interrupted"),
        Scenario(effect: .idempotent, start: .pending, steps: [.complete("tool_failed"), .complete("ok")],
                 failure: "seq 1 is failed, not pending, approved or interrupted"),
        Scenario(effect: .irreversible, start: .awaitingApproval, steps: [.deny, .complete("ok")],
                 failure: "seq 1 is denied, not pending, approved or interrupted"),
        // An in-doubt call is never completed blindly: only an operator's resolve moves it.
        Scenario(effect: .irreversible, start: .pending, steps: [.interruptAll, .complete("ok")],
                 failure: "seq 1 is in doubt, not pending, approved or interrupted"),
        Scenario(effect: .irreversible, start: .pending, steps: [.resolve(happened: true)],
                 failure: "seq 1 is pending, not in doubt"),
        Scenario(effect: .idempotent, start: .pending, steps: [.interruptAll, .resolve(happened: false)],
                 failure: "seq 1 is interrupted, not in doubt"),
        Scenario(effect: .irreversible, start: .pending, steps: [.complete("ok"), .resolve(happened: true)],
                 failure: "seq 1 is sealed, not in doubt"),
        Scenario(effect: .irreversible, start: .pending, steps: [.interruptAll, .resolve(happened: true), .resolve(happened: false)],
                 failure: "seq 1 is resolved happened, not in doubt"),
    ]

    @Test("valid transitions", arguments: valid)
    func validTransition(_ scenario: Scenario) async throws {
        let dir = TempLedgerDir()
        defer { dir.cleanup() }
        let ledger = try Ledger(path: dir.ledgerPath)
        let intent = try await ledger.appendIntent(
            makeIntent(effect: scenario.effect, approval: scenario.start == .awaitingApproval ? .human : .auto),
            state: scenario.start)
        #expect(intent.seq == 1)
        for step in scenario.steps {
            try await step.apply(ledger, effect: scenario.effect)
        }
        let call = try #require(try ledger.call(intentSeq: 1))
        #expect(call.state == scenario.expected)
        #expect(try ledger.verify().ok)
        // Every record about the call refers to it; the kinds say what happened.
        let records = try ledger.records(forIntent: 1)
        #expect(records.first?.kind == "intent")
        #expect(records.dropFirst().allSatisfy { $0.intentSeq == 1 })
    }

    @Test("invalid transitions throw a clear LedgerError and write nothing", arguments: invalid)
    func invalidTransition(_ scenario: Scenario) async throws {
        let dir = TempLedgerDir()
        defer { dir.cleanup() }
        let ledger = try Ledger(path: dir.ledgerPath)
        _ = try await ledger.appendIntent(
            makeIntent(effect: scenario.effect, approval: scenario.start == .awaitingApproval ? .human : .auto),
            state: scenario.start)
        for step in scenario.steps.dropLast() {
            try await step.apply(ledger, effect: scenario.effect)
        }
        let before = try #require(try ledger.call(intentSeq: 1))
        let checkedBefore = try ledger.verify().checked
        let error = await ledgerError { try await scenario.steps.last!.apply(ledger, effect: scenario.effect) }
        #expect(error?.code == .invalidTransition)
        #expect(error?.message == scenario.failure)
        #expect(try ledger.call(intentSeq: 1) == before)
        #expect(try ledger.verify() == VerifyReport(ok: true, checked: checkedBefore, firstBadSeq: nil, reason: nil))
    }

    @Test("steps on something that is not an intent")
    func notAnIntent() async throws {
        let dir = TempLedgerDir()
        defer { dir.cleanup() }
        let ledger = try Ledger(path: dir.ledgerPath)
        let intent = try await ledger.appendIntent(makeIntent(), state: .pending)
        let completion = try await ledger.appendCompletion(makeCompletion(intent.seq))
        let e1 = await ledgerError { try await ledger.approve(intentSeq: completion.seq, actor: "operator:a") }
        #expect(e1 == LedgerError(.notFound, "seq 2 is a completion record, not an intent"))
        let e2 = await ledgerError { try await ledger.resolve(intentSeq: 99, happened: true, actor: "operator:a", note: nil) }
        #expect(e2 == LedgerError(.notFound, "no record with seq 99"))
        let e3 = await ledgerError { try await ledger.appendIntent(makeIntent(), state: .sealed) }
        #expect(e3 == LedgerError(.invalidInput, "an intent starts pending or awaiting_approval, not sealed"))
    }

    @Test("markInterrupted: pending irreversible → in_doubt, pending idempotent → interrupted, others untouched")
    func markInterrupted() async throws {
        let dir = TempLedgerDir()
        defer { dir.cleanup() }
        let ledger = try Ledger(path: dir.ledgerPath)
        let pay = try await ledger.appendIntent(makeIntent(tool: "pay", effect: .irreversible), state: .pending)
        let put = try await ledger.appendIntent(makeIntent(tool: "put", effect: .idempotent), state: .pending)
        let done = try await ledger.appendIntent(makeIntent(tool: "get", effect: .read), state: .pending)
        _ = try await ledger.appendCompletion(makeCompletion(done.seq))
        let waiting = try await ledger.appendIntent(makeIntent(tool: "wire", effect: .irreversible, approval: .human), state: .awaitingApproval)

        let moved = try await ledger.markInterrupted(actor: "broker")
        #expect(moved.map(\.intentSeq) == [pay.seq, put.seq])
        #expect(moved.map(\.state) == [.inDoubt, .interrupted])
        #expect(try ledger.call(intentSeq: pay.seq)?.state == .inDoubt)
        #expect(try ledger.call(intentSeq: put.seq)?.state == .interrupted)
        #expect(try ledger.call(intentSeq: done.seq)?.state == .sealed)
        #expect(try ledger.call(intentSeq: waiting.seq)?.state == .awaitingApproval)
        let interruption = try #require(try ledger.records(forIntent: pay.seq).last)
        #expect(interruption.kind == "interruption")
        #expect(interruption.status == "in_doubt")
        #expect(interruption.actor == "broker")

        // A second restart finds nothing pending.
        #expect(try await ledger.markInterrupted(actor: "broker").isEmpty)

        // resolve works only on in_doubt.
        let wrong = await ledgerError { try await ledger.resolve(intentSeq: put.seq, happened: true, actor: "operator:a", note: nil) }
        #expect(wrong?.message == "seq \(put.seq) is interrupted, not in doubt")
        let resolution = try await ledger.resolve(intentSeq: pay.seq, happened: false, actor: "operator:alice", note: "bank says no")
        #expect(resolution.kind == "resolution")
        #expect(resolution.status == "did_not_happen")
        #expect(resolution.happened == false)
        #expect(resolution.note == "bank says no")
        #expect(try ledger.call(intentSeq: pay.seq)?.state == .resolvedNotHappened)
        #expect(try ledger.verify().ok)
    }
}
