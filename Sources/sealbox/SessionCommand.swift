import ArgumentParser
import Foundation
import SealboxJail
import SealboxLedger

struct SessionCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "session",
        abstract: "Sessions: an agent's task as a sequence of sealed steps (`sealbox run --session ID --step KEY`).",
        subcommands: [SessionNew.self, SessionSteps.self]
    )
}

struct CheckpointOptions: ParsableArguments {
    @Option(name: .long, help: "Checkpoint store (SQLite).")
    var checkpoints: String = CheckpointStore.defaultPath

    func open() throws -> CheckpointStore {
        do {
            return try CheckpointStore(path: checkpoints)
        } catch {
            throw CLIFailure(message: error.message)
        }
    }
}

struct SessionNew: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "new", abstract: "Create a session; prints its id.")

    @OptionGroup var options: CheckpointOptions

    func run() throws {
        do {
            print(try options.open().createSession())
        } catch let error as CheckpointError {
            throw CLIFailure(message: error.message)
        }
    }
}

struct SessionSteps: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "steps", abstract: "List a session's sealed steps, in order.")

    @OptionGroup var options: CheckpointOptions
    @Argument(help: "Session id.") var session: String
    @Flag(name: .long, help: "Print JSON.") var json = false

    func run() throws {
        let store = try options.open()
        do {
            guard try store.sessionExists(session) else { throw CLIFailure(message: "unknown session \(session)") }
            let steps = try store.steps(session: session)
            if json { return JSONOutput.print(steps) }
            for step in steps {
                print("checkpoint \(step.seq)  step \(step.stepKey)  code \(step.codeDigest.prefix(19))…  ledger cursor \(step.ledgerCursor.map(String.init) ?? "-")")
            }
        } catch let error as CheckpointError {
            throw CLIFailure(message: error.message)
        }
    }
}

/// The checkpoint side of `sealbox run --session ID --step KEY`.
struct StepCheckpoint {
    let store: CheckpointStore
    let session: String
    let step: String
    let codeDigest: String

    /// What a step runs: its argv, its files and its environment.
    static func digest(_ spec: JailSpec) -> String {
        var parts: [[UInt8]] = [Array("argv".utf8)] + spec.command.map { Array($0.utf8) }
        parts.append(Array("files".utf8))
        for file in spec.files.sorted(by: { $0.name < $1.name }) {
            parts.append(Array(file.name.utf8))
            parts.append(file.contents)
        }
        parts.append(Array("env".utf8))
        for (name, value) in spec.environment { parts.append(Array("\(name)=\(value)".utf8)) }
        return CheckpointStore.codeDigest(parts)
    }

    static func open(path: String, session: String?, step: String, spec: JailSpec) throws -> StepCheckpoint {
        guard let session else { throw CLIFailure(message: "--step needs --session ID (create one with `sealbox session new`)") }
        guard !step.isEmpty, step.utf8.count <= 200, !step.contains("\n") else {
            throw CLIFailure(message: "--step must be 1-200 characters on one line")
        }
        let store: CheckpointStore
        do {
            store = try CheckpointStore(path: path)
            guard try store.sessionExists(session) else {
                throw CLIFailure(message: "unknown session \(session) (create one with `sealbox session new`)")
            }
        } catch let error as CheckpointError {
            throw CLIFailure(message: error.message)
        }
        return StepCheckpoint(store: store, session: session, step: step, codeDigest: digest(spec))
    }

    /// The sealed result of this step, marked replayed, if sealed with the same code;
    /// step_conflict otherwise.
    func sealedResult() throws -> RunResult? {
        let sealed: Checkpoint?
        do {
            sealed = try store.sealed(session: session, step: step)
        } catch {
            throw CLIFailure(message: error.message)
        }
        guard let sealed else { return nil }
        guard sealed.codeDigest == codeDigest else {
            throw CLIFailure(message: "step_conflict: step \"\(step)\" of session \(session) was sealed (checkpoint \(sealed.seq)) with code \(sealed.codeDigest), but this run submits \(codeDigest); a re-planned step needs a new --step key (or a fork of the session)")
        }
        guard var result = try? JSONDecoder().decode(RunResult.self, from: Data(sealed.result.utf8)) else {
            throw CLIFailure(message: "checkpoint \(sealed.seq) holds an unreadable result")
        }
        result.replayed = true
        result.checkpoint = sealed.seq
        return result
    }

    func seal(resultJSON: String, ledgerCursor: Int64?) throws -> Int64 {
        do {
            return try store.seal(session: session, step: step, codeDigest: codeDigest, result: resultJSON, ledgerCursor: ledgerCursor).seq
        } catch {
            throw CLIFailure(message: "the step ran but could not be sealed: \(error.message)")
        }
    }
}
