import ArgumentParser
import Foundation
import SealboxBase
import SealboxBroker
import SealboxLedger
import SealboxSQLite

struct SessionFactsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "facts",
        abstract: "Where a session stands: what is true, what authority remains, what is unsafe.",
        discussion: """
            Answers the three recovery questions in one call, from the checkpoint
            store and the effect log:

            What is already true: sealed steps and sealed effects, in order. For a
            fork, also the inherited prefix and the irreversible effects of other
            branches, which bind it too (the world does not fork).

            What authority remains: live tokens, pending approvals.

            What is unsafe or unresolved: in-doubt effects, intents without a
            completion, steps that started and never sealed; each with what to do.

            --json prints one object with the keys "true", "authority", "unsafe"
            and "clean" (false when anything is unsafe or unresolved).
            """)

    @OptionGroup var options: CheckpointOptions
    @Argument(help: "Session id.") var session: String
    @Option(name: .long, help: "Effect log (default: effects.db in the state directory; the `ledger:` path of the broker config the steps used, if it names another).")
    var ledger: String?
    @Flag(name: .long, help: "Print JSON.") var json = false

    func run() throws {
        let store = try options.open()
        let ledger = try options.state.ledgerPath(explicit: ledger)
        let facts: SessionFacts
        do {
            let log = try StateStores.existingEffectLog(file: ledger)
            facts = try SessionFacts.gather(store: store, ledger: log, session: session)
            if log == nil && !json {
                print("(no effect log at \(ledger): effects are not shown; pass --ledger PATH if the steps used tools)\n")
            }
        } catch let error as CheckpointError {
            throw CLIFailure(message: error.message)
        } catch let error as LedgerError {
            throw CLIFailure(message: error.message)
        }
        if json { return JSONOutput.print(facts) }
        FactsPrinter.print(facts)
    }
}

/// The human form of `session facts`.
enum FactsPrinter {
    static func print(_ f: SessionFacts) {
        let unsafeCount = f.unsafe.inDoubt.count + f.unsafe.interrupted.count + f.unsafe.inFlight.count + f.unsafe.unsealedSteps.count
        Swift.print("session \(f.session): \(f.whatIsTrue.steps.count) step(s) sealed; " +
                    (f.clean ? "nothing unsafe or unresolved" : "\(unsafeCount) thing(s) unsafe or unresolved"))
        if let parent = f.forkedFrom {
            Swift.print("forked from \(parent) at step \(quoted(f.forkedAtStep ?? "?")); family: \(f.family.joined(separator: ", "))")
        }

        Swift.print("\nWHAT IS TRUE")
        if f.whatIsTrue.steps.isEmpty && f.whatIsTrue.effects.isEmpty { Swift.print("  nothing sealed yet") }
        for s in f.whatIsTrue.steps {
            let origin = s.session == f.session ? "" : "  (inherited from \(s.session))"
            Swift.print("  step \(quoted(s.step))  sealed at checkpoint \(s.checkpoint), \(time(s.sealedAtMs)): \(s.status) (exit \(s.exitCode.map(String.init) ?? "?"))\(origin)")
        }
        for e in f.whatIsTrue.effects { Swift.print("  " + effect(e)) }

        Swift.print("\nWHAT AUTHORITY REMAINS")
        if f.authority.tokens.isEmpty && f.authority.approvals.isEmpty { Swift.print("  none: no live token, no pending approval") }
        for t in f.authority.tokens {
            let left = max(0, t.expiresAtMs - f.generatedAtMs) / 1000
            let broker = t.brokerID.map { " (broker \($0))" } ?? ""
            Swift.print("  token \(t.tokenID) of run \(t.runID)\(broker): tools \(t.tools.joined(separator: ", ")); expires in \(left) s unless revoked")
        }
        for a in f.authority.approvals { Swift.print("  " + effect(a) + "\n      -> " + (a.action ?? "")) }
        for t in f.authority.tokensOfGoneBrokers {
            Swift.print("  (token \(t.tokenID) of run \(t.runID) is not authority any more: its broker \(t.brokerID ?? "?") is gone, and its tokens no longer verify; the next broker to open the log records the end)")
        }

        Swift.print("\nWHAT IS UNSAFE OR UNRESOLVED")
        if f.clean { Swift.print("  nothing") }
        for e in f.unsafe.inDoubt + f.unsafe.interrupted + f.unsafe.inFlight {
            Swift.print("  " + effect(e) + "\n      -> " + (e.action ?? ""))
        }
        for s in f.unsafe.unsealedSteps {
            Swift.print("  step \(quoted(s.step)) started \(time(s.startedAtMs))\(s.runID.map { " (run \($0))" } ?? ""), never sealed\n      -> \(s.action)")
        }
    }

    static func effect(_ e: SessionFacts.EffectFact) -> String {
        let origin: String
        switch e.origin {
        case .session: origin = ""
        case .inherited: origin = ", inherited from \(e.session)"
        case .sibling: origin = ", sibling branch \(e.session)"
        }
        let step = e.step.map { " in step \(quoted($0))" } ?? ""
        return "effect \(e.seq): \(e.tool) (\(e.effectClass.rawValue)) \(e.state.phrase)\(step)\(origin)"
    }

    /// Step keys are chosen by agents: escaped, so one cannot rewrite the operator's terminal.
    static func quoted(_ text: String) -> String { "\"\(Printable.text(text))\"" }

    static func time(_ ms: Int64) -> String {
        let formatter = DateFormatter()
        formatter.dateFormat = "yyyy-MM-dd HH:mm:ss 'UTC'"
        formatter.timeZone = TimeZone(identifier: "UTC")
        return formatter.string(from: Date(timeIntervalSince1970: Double(ms) / 1000))
    }
}
