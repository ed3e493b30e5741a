import ArgumentParser
import Foundation
import SealboxProfiles

struct ProfileExplainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "explain",
        abstract: "Show what a profile allows and denies, by category.",
        discussion: """
            Reads the profile the way `sealbox run` compiles it (rules for capabilities or \
            other architectures and kernels left out, rules with the default action dropped) \
            and describes every syscall of the native architecture, grouped into categories \
            (file, network, process, memory, namespaces, tracing, system, ...):
              allowed      every call runs
              conditional  runs when its argument comparisons hold, e.g. socket: arg0 == 1 (AF_UNIX)
              denied       stopped, with the action (ERRNO, KILL_PROCESS, ...)
            then the dangerous syscalls (ptrace, mount, unshare, bpf, io_uring, keyctl, \
            kexec, modules, ...) that the profile allows, loudly, or "none".

            Exit status: 0 explained; 2 the profile is missing, unreadable or invalid (see \
            `sealbox profile check`), or bad usage.
            """
    )

    @Argument(help: "The profile: a path, or a shipped profile name such as default.")
    var profile: String

    @Flag(name: .long, help: "Print the explanation as one JSON object.")
    var json = false

    func run() throws {
        let (loaded, path) = try ProfileArgument.load(profile)
        let explanation: ProfileExplanation
        do {
            explanation = try ProfileAnalysis.explain(loaded, file: path)
        } catch {
            throw CLIFailure(message: error.description, exitCode: ProfileCommand.usageExitStatus)
        }
        if json {
            JSONOutput.print(explanation)
        } else {
            FileHandle.standardOutput.write(Data(explanation.text().utf8))
        }
    }
}
