import ArgumentParser
import Foundation
import SealboxBase
import SealboxJail
import SealboxLedger
import SealboxSQLite

struct SessionCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "session",
        abstract: "Sessions: an agent's task as a sequence of sealed steps (`sealbox run --session ID --step KEY`).",
        subcommands: [SessionNew.self, SessionSteps.self, SessionFork.self, SessionFactsCommand.self]
    )
}

struct CheckpointOptions: ParsableArguments {
    @OptionGroup var state: StateOptions
    @Option(name: .long, help: "Checkpoint store (SQLite; default: checkpoints.db in the state directory).")
    var checkpoints: String?

    func open() throws -> any CheckpointStore {
        let path = try state.checkpointsPath(explicit: checkpoints)
        do {
            return try StateStores.checkpoints(file: path)
        } catch {
            throw CLIFailure(message: error.message)
        }
    }
}

struct SessionNew: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "new", abstract: "Create a session; prints its id.",
        discussion: """
            Each step of the session (sealbox run --session ID --step KEY) sees
            the session's workspace as /work, as the last sealed step left it.
            The workspace is a tmpfs capped at --workspace-limit; a program that
            fills it gets ENOSPC.
            """)

    @OptionGroup var options: CheckpointOptions
    @Option(name: .customLong("workspace-limit"), help: "Cap on the session's /work, e.g. 256M (1M to 16G).")
    var workspaceLimit: String = "64M"

    func run() throws {
        let limit: UInt64
        do {
            limit = try ByteSize.parse(workspaceLimit, flag: "--workspace-limit")
        } catch {
            throw CLIFailure(message: error.description)
        }
        do {
            print(try options.open().createSession(workspaceLimitBytes: limit))
        } catch let error as CheckpointError {
            throw CLIFailure(message: error.message)
        }
    }
}

struct SessionFork: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fork", abstract: "Branch a session at a sealed step; prints the new session's id.",
        discussion: """
            The fork's history is the original's up to and including STEP (those
            steps are replayed, not re-run), and its /work starts as STEP's
            workspace snapshot. The world does not fork: an irreversible effect
            that the original (or any other branch) sealed is a fact for the fork
            too, answered from the effect log and never executed again.
            """)

    @OptionGroup var options: CheckpointOptions
    @Argument(help: "Session to branch.") var session: String
    @Option(name: .long, help: "The sealed step the fork starts after.") var at: String
    @Flag(name: .long, help: "Print JSON.") var json = false

    func run() throws {
        do {
            let fork = try options.open().fork(session: session, atStep: at)
            if json { return JSONOutput.print(fork) }
            print(fork.id)
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
                let origin = step.sessionID == session ? "" : "  (from \(step.sessionID))"
                print("checkpoint \(step.seq)  step \(step.stepKey)  code \(step.codeDigest.prefix(19))…  ledger cursor \(step.ledgerCursor.map(String.init) ?? "-")  workspace \(step.snapshot.map { String($0.prefix(19)) + "…" } ?? "-")\(origin)")
            }
        } catch let error as CheckpointError {
            throw CLIFailure(message: error.message)
        }
    }
}
