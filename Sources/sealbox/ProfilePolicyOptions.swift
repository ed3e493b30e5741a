import ArgumentParser
import Foundation
import SealboxJail
import SealboxServer

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
