import ArgumentParser
import Foundation
import SealboxProfiles

struct ProfileDiffCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "diff",
        abstract: "Show how two profiles treat syscalls differently.",
        discussion: """
            Compares what the two profiles do, not their text: each syscall of the native \
            architecture (and every name either profile lists) is evaluated as `sealbox run` \
            would compile it, and the differences are grouped by category:
              + newly allowed   denied by A, allowed by B
              - newly denied    allowed by A, denied by B
              ~ changed         another action (ERRNO(1) -> KILL_PROCESS) or other conditions
            plus default action and architecture changes, and a warning for dangerous \
            syscalls B allows where A did not.

            Exit status, like diff(1): 0 equivalent, 1 different, 2 a profile is missing, \
            unreadable or invalid, or bad usage.
            """
    )

    @Argument(help: "The old profile (a path or a shipped name).")
    var a: String

    @Argument(help: "The new profile (a path or a shipped name).")
    var b: String

    @Flag(name: .long, help: "Print the differences as one JSON object.")
    var json = false

    func run() throws {
        let (first, _) = try ProfileArgument.load(a)
        let (second, _) = try ProfileArgument.load(b)
        let diff: ProfileDiff
        do {
            diff = try ProfileAnalysis.diff(first, second)
        } catch {
            throw CLIFailure(message: error.description, exitCode: ProfileCommand.usageExitStatus)
        }
        if json {
            JSONOutput.print(diff)
        } else {
            FileHandle.standardOutput.write(Data(diff.text().utf8))
        }
        if !diff.equivalent { throw ExitCode(1) }
    }
}
