import ArgumentParser
import Foundation
import SealboxProfiles

struct ProfileCheckCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check",
        abstract: "Validate a profile and report every problem with its line and column.",
        discussion: """
            Prints one line per problem, like a compiler:
              FILE:LINE:COL: error|warning: PATH: message
            where PATH is the JSON path (syscalls[3].action) and LINE:COL where its value \
            starts, then a summary `N errors, M warnings`.

            Errors are what `sealbox run --profile` refuses: JSON syntax, unknown syscall names \
            (known on no architecture), unknown or unsupported actions, errnoRet out of range \
            or on a non-ERRNO action, bad argument comparisons (index, operator, the same \
            argument twice, a MASKED_EQ that can never match), unknown architectures, and \
            rules libseccomp would silently drop: an unconditional rule next to another rule \
            with a different action for the same syscall.

            Warnings load fine but do not do what they seem to: a syscall that exists only on \
            architectures the profile does not list, a syscall given the same action twice, a \
            rule with the default action (libseccomp drops it), a 64-bit comparison of an \
            argument the kernel reads as 32 bits (bypassed by setting high bits, \
            CVE-2019-10063), SCMP_ACT_LOG (allows, logs to the audit log only), rules that \
            `includes` capabilities (sealbox grants none, so they never apply), and unknown \
            keys (likely typos: "defaultaction").

            Exit status: 0 no errors (with --strict: no warnings either), 1 problems found, \
            2 the file is missing, unreadable or not text, or bad usage.
            """
    )

    @Argument(help: "The profile: a path, or a shipped profile name such as default.")
    var profile: String

    @Flag(name: .long, help: "Print {\"file\", \"ok\", \"diagnostics\": [{severity, line, column, path, message}]} instead.")
    var json = false

    @Flag(name: .long, help: "Treat warnings as errors for the exit status.")
    var strict = false

    func run() throws {
        let report: ProfileCheckReport
        do {
            report = try ProfileChecker.check(profile, profilesDirectory: try ProfileArgument.profilesDirectory(for: profile))
        } catch let error as ProfileError {
            throw CLIFailure(message: error.description, exitCode: ProfileCommand.usageExitStatus)
        }
        if json {
            JSONOutput.print(report.json(strict: strict))
        } else {
            FileHandle.standardOutput.write(Data(report.text().utf8))
        }
        let status = report.exitStatus(strict: strict)
        if status != 0 { throw ExitCode(status) }
    }
}
