import ArgumentParser
import SealboxBase

/// `--state-dir` for every command that reads or writes sealbox's state: the same directory
/// `sealbox serve --state-dir` uses, so `serve --state-dir D` then `log list --state-dir D`
/// shows the server's records. An explicit --ledger or --checkpoints path still wins.
struct StateOptions: ParsableArguments {
    @Option(name: .customLong("state-dir"), help: ArgumentHelp(
        "sealbox's state directory: effects.db, checkpoints.db, keys.db (default: /var/lib/sealbox as root, ~/.local/state/sealbox otherwise).",
        valueName: "dir"))
    var stateDir: String?

    var layout: StateLayout { StateLayout(stateDirectory: stateDir) }

    /// The effect log: `explicit` when given, the layout's otherwise (refusing a directory
    /// whose files still have their earlier names, which would look empty).
    func ledgerPath(explicit: String?) throws -> String {
        if let explicit { return explicit }
        try refuseLegacy()
        return layout.ledgerPath
    }

    func checkpointsPath(explicit: String?) throws -> String {
        if let explicit { return explicit }
        try refuseLegacy()
        return layout.checkpointsPath
    }

    func refuseLegacy() throws {
        if let problem = layout.legacyProblem() { throw CLIFailure(message: problem) }
    }
}
