import ArgumentParser
import Foundation
import SealboxBase
import SealboxBroker
import SealboxLedger
import SealboxSQLite

struct LogCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "log",
        abstract: "Read and act on the effect log: list, show, verify, resolve, approve, deny.",
        subcommands: [LogList.self, LogShow.self, LogVerify.self, LogResolve.self, LogApprove.self, LogDeny.self]
    )
}

struct LedgerOptions: ParsableArguments {
    @OptionGroup var state: StateOptions
    @Option(name: .long, help: "Effect log path (default: effects.db in the state directory).")
    var ledger: String?

    @Flag(name: .long, help: "Print JSON.")
    var json = false

    func open() throws -> Ledger {
        let ledger = try state.ledgerPath(explicit: ledger)
        guard FileManager.default.fileExists(atPath: ledger) else {
            throw CLIFailure(message: "no effect log at \(ledger) (use --state-dir DIR or --ledger PATH; the broker creates it)")
        }
        do {
            return try StateStores.effectLog(file: ledger)
        } catch {
            throw CLIFailure(message: error.message)
        }
    }

    func printJSON<T: Encodable>(_ value: T) {
        JSONOutput.print(value)
    }

    static var actor: String {
        let env = ProcessInfo.processInfo.environment
        return "operator:" + (env["SUDO_USER"] ?? env["USER"] ?? "uid\(getuid())")
    }
}

struct LogList: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "List calls, newest last.")

    @OptionGroup var options: LedgerOptions
    @Option(name: .long, help: "Only this session.") var session: String?
    @Option(name: .customLong("run"), help: "Only this run.") var runID: String?
    @Option(name: .long, help: "Only this tool.") var tool: String?
    @Option(name: .long, help: "Only this state (pending, awaiting_approval, approved, denied, sealed, failed, in_doubt, interrupted, resolved_happened, resolved_not_happened).") var status: String?
    @Option(name: .long, help: "At most this many (1-10000).") var limit: Int = 100

    func run() throws {
        var state: CallState?
        if let status {
            guard let parsed = CallState(rawValue: status) else {
                throw CLIFailure(message: "unknown --status \"\(status)\"")
            }
            state = parsed
        }
        guard (1...10_000).contains(limit) else { throw CLIFailure(message: "--limit must be between 1 and 10000") }
        let ledger = try options.open()
        let calls: [CallSummary]
        do {
            calls = try ledger.list(ListFilter(sessionID: session, runID: runID, tool: tool, state: state, limit: limit))
        } catch {
            throw CLIFailure(message: error.message)
        }
        if options.json { return options.printJSON(calls) }
        let rows = [["SEQ", "STATE", "TOOL", "CLASS", "SESSION", "RUN", "KEY"]] + calls.map {
            ["\($0.intentSeq)", $0.state.rawValue, Printable.text($0.tool), $0.effectClass.rawValue, $0.sessionID, $0.runID, Printable.text($0.idempotencyKey)]
        }
        let widths = (0..<6).map { column in rows.map { $0[column].count }.max() ?? 0 }
        for row in rows {
            print((0..<6).map { row[$0].padding(toLength: widths[$0] + 2, withPad: " ", startingAt: 0) }.joined() + row[6])
        }
    }
}

struct LogShow: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "show", abstract: "Show a call: its intent and every record about it.")

    @OptionGroup var options: LedgerOptions
    @Argument(help: "Sequence number of the intent (or of any record).") var seq: Int64

    func run() throws {
        let ledger = try options.open()
        let records: [EffectRecord]
        do {
            guard let record = try ledger.record(seq: seq) else { throw CLIFailure(message: "no record \(seq)") }
            records = try ledger.records(forIntent: record.intentSeq ?? record.seq)
        } catch let failure as CLIFailure {
            throw failure
        } catch {
            throw CLIFailure(message: "\(error)")
        }
        if options.json { return options.printJSON(records) }
        // Keys, targets and responses come from jails: printed escaped, never raw.
        for r in records {
            var fields = ["seq \(r.seq)", r.kind]
            if let v = r.tool { fields.append("tool=\(Printable.text(v))") }
            if let v = r.effectClass { fields.append("class=\(v)") }
            if let v = r.idempotencyKey { fields.append("key=\(Printable.text(v))") }
            if let v = r.target { fields.append("target=\(Printable.text(v))") }
            if let v = r.status { fields.append("status=\(v)") }
            if let v = r.durationMs { fields.append(String(format: "duration=%.1fms", v)) }
            if let v = r.actor { fields.append("by=\(Printable.text(v))") }
            print(fields.joined(separator: "  "))
            if r.kind == "intent", let tool = r.tool, let key = r.idempotencyKey, let session = r.sessionID,
               let secret = try? ledger.worldKeySecret() {
                // What the world saw as Idempotency-Key: find the call in its logs by this.
                let root = (try? ledger.root(of: session)) ?? session
                print("    world key: \(WorldKey.derive(secret: secret, familyRoot: root, tool: tool, key: key))")
            }
            if let response = r.response { print("    response: \(Printable.text(String(response.prefix(2000))))") }
        }
    }
}

struct LogVerify: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "verify", abstract: "Walk the hash chain; name the first bad record. Exit 1 if broken.")

    @OptionGroup var options: LedgerOptions

    func run() throws {
        let ledger = try options.open()
        let report: VerifyReport
        do {
            report = try ledger.verify()
        } catch {
            throw CLIFailure(message: error.message)
        }
        if options.json {
            options.printJSON(report)
        } else if report.ok {
            print("ok: \(report.checked) records, hash chain intact")
        } else {
            print("BROKEN at seq \(report.firstBadSeq.map(String.init) ?? "?"): \(report.reason ?? "") (\(report.checked) records checked)")
        }
        if !report.ok { throw ExitCode(1) }
    }
}

struct LogResolve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "resolve", abstract: "Settle an in-doubt irreversible call: it happened, or it did not.")

    @OptionGroup var options: LedgerOptions
    @Argument(help: "Sequence number of the in-doubt intent.") var seq: Int64
    @Flag(name: .long, help: "The effect took place: later calls get a replayed answer.") var happened = false
    @Flag(name: .customLong("did-not-happen"), help: "It did not: the next call executes it.") var didNotHappen = false
    @Option(name: .long, help: "Why (kept in the log).") var note: String?

    func validate() throws {
        guard happened != didNotHappen else { throw ValidationError("give exactly one of --happened or --did-not-happen") }
    }

    func run() async throws {
        let ledger = try options.open()
        do {
            let record = try await ledger.resolve(intentSeq: seq, happened: happened, actor: LedgerOptions.actor, note: note)
            if options.json { options.printJSON(record) } else { print("seq \(seq) resolved: \(happened ? "happened" : "did not happen") (record \(record.seq))") }
        } catch {
            throw CLIFailure(message: error.message)
        }
    }
}

struct LogApprove: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "approve", abstract: "Approve a call that waits for a human; the next call with its key executes it.")

    @OptionGroup var options: LedgerOptions
    @Argument(help: "Sequence number of the awaiting intent.") var seq: Int64

    func run() async throws {
        let ledger = try options.open()
        do {
            let record = try await ledger.approve(intentSeq: seq, actor: LedgerOptions.actor)
            if options.json { options.printJSON(record) } else { print("seq \(seq) approved (record \(record.seq))") }
        } catch {
            throw CLIFailure(message: error.message)
        }
    }
}

struct LogDeny: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "deny", abstract: "Deny a call that waits for a human.")

    @OptionGroup var options: LedgerOptions
    @Argument(help: "Sequence number of the awaiting intent.") var seq: Int64
    @Option(name: .long, help: "Why (kept in the log).") var note: String?

    func run() async throws {
        let ledger = try options.open()
        do {
            let record = try await ledger.deny(intentSeq: seq, actor: LedgerOptions.actor, note: note)
            if options.json { options.printJSON(record) } else { print("seq \(seq) denied (record \(record.seq))") }
        } catch {
            throw CLIFailure(message: error.message)
        }
    }
}
