import ArgumentParser
import Foundation
import SealboxBase
import SealboxJail
import SealboxServer

/// The most a request may ask for, set by the operator: `--max-timeout`, `--max-memory`, ….
/// A request above one of them is refused with an error naming the field, not clamped.
struct OperatorLimitOptions: ParsableArguments {
    @Option(name: .customLong("max-timeout"), help: "Longest timeout a request may ask for, in seconds.")
    var maxTimeout: Double = 300

    @Option(name: .customLong("max-memory"), help: "Most memory a request may ask for, e.g. 2G.")
    var maxMemory: String = "2G"

    @Option(name: .customLong("max-pids"), help: "Most processes a request may ask for.")
    var maxPids: Int = 512

    @Option(name: .customLong("max-disk"), help: "Largest /work + /tmp a request may ask for, e.g. 1G.")
    var maxDisk: String = "1G"

    @Option(name: .customLong("max-output"), help: "Largest output cap a request may ask for, e.g. 16M.")
    var maxOutput: String = "16M"

    func limits() throws -> Limits {
        guard maxTimeout.isFinite, maxTimeout >= 0.001, maxTimeout <= 86_400 else {
            throw CLIFailure(message: "--max-timeout must be between 0.001 and 86400 seconds")
        }
        guard (1...100_000).contains(maxPids) else { throw CLIFailure(message: "--max-pids must be between 1 and 100000") }
        do {
            return Limits(
                timeoutMs: Int((maxTimeout * 1000).rounded()), memoryBytes: try ByteSize.parse(maxMemory, flag: "--max-memory"),
                pids: maxPids, diskBytes: try ByteSize.parse(maxDisk, flag: "--max-disk"),
                outputBytes: Int(try ByteSize.parse(maxOutput, flag: "--max-output")))
        } catch {
            throw CLIFailure(message: error.description)
        }
    }
}

/// Which seccomp profiles a request may name: `serve` and `mcp` take the same flag.
struct ProfilePolicyOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp(
        "Profiles a request may name: NAME,NAME, all, or all-but:NAME,NAME. For serve, the policy of keys created without --profiles.",
        valueName: "POLICY"))
    var profiles: String = ProfileGrant.serverDefault.description

    func grant() throws -> ProfileGrant {
        guard let grant = ProfileGrant(text: profiles) else {
            throw CLIFailure(message: "--profiles expects NAME,NAME (letters, digits, _ -), all, or all-but:NAME,NAME; got \"\(profiles)\"")
        }
        return grant
    }
}
