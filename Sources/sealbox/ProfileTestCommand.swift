import ArgumentParser
import Foundation
import Glibc
import SealboxJail
import SealboxProfiles

/// `sealbox profile test FILE -- CMD`: run under a profile and report every denied syscall.
struct ProfileTestCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "test",
        abstract: "Run a workload under a profile and report every syscall it denied.",
        discussion: """
            Runs the workload in a jail under PROFILE with full tracking: every call the \
            profile denies reaches sealbox (seccomp user notification) and is answered exactly \
            as the profile says (its errno, or a kill), including explicit ERRNO rules such as \
            clone3 → ENOSYS that an ordinary run does not list. The program's output is passed \
            through; the report goes to stderr (or stdout with --json).

            Exit status: 0 when the program succeeded and nothing was denied; 1 when something \
            was denied or the program did not succeed; 125 when sealbox failed (bad profile, \
            bad flags).

            Examples:
              sealbox profile test strict --lang python --code 'import os; os.fork()'
              sealbox profile test ./mine.json -- /usr/bin/ls /
            """
    )

    @Argument(help: "The profile: a name in profiles/ (default, strict, python, node, ...) or a path to an OCI JSON file.")
    var profile: String

    @Flag(name: .long, help: "Print the run result (with its full violations list) as one JSON object on stdout.")
    var json = false

    @OptionGroup var workload: WorkloadOptions

    func run() async throws {
        var spec = try JailSpecBuilder(options: workload, profile: profile).build()
        spec.violationTracking = .everything
        let session = try ProfileSession.open()
        let result = try await session.run(spec)
        if json {
            JSONOutput.print(result)
        } else {
            FileHandle.standardOutput.write(Data(result.stdout.utf8))
            writeStderr(result.stderr)
            writeStderr(Self.describe(result))
        }
        if result.status == .spawnFailed && !json { throw ExitCode(125) }
        let clean = result.violations.isEmpty && result.status == .ok
        throw ExitCode(clean ? 0 : 1)
    }

    static func describe(_ r: JailResult) -> String {
        var lines: [String] = []
        let outcome: String
        switch r.status {
        case .ok: outcome = "exited 0"
        case .exitNonzero: outcome = "exited \(r.exitCode)"
        case .seccompViolation: outcome = "was killed by the profile (SIGSYS)"
        case .spawnFailed: outcome = "could not start: \(r.error ?? "unknown error")"
        default: outcome = "ended \(r.status.rawValue)" + (r.signal.map { " (signal \($0))" } ?? "")
        }
        if r.violations.isEmpty {
            lines.append("sealbox: profile \(r.profile): nothing denied; the program \(outcome)")
        } else {
            let total = r.violations.reduce(0) { $0 + $1.count }
            lines.append("sealbox: profile \(r.profile) denied \(r.violations.count) syscall\(r.violations.count == 1 ? "" : "s") (\(total) call\(total == 1 ? "" : "s")); the program \(outcome)")
            let width = r.violations.map(\.syscall.count).max() ?? 0
            for v in r.violations {
                let name = v.syscall.padding(toLength: width, withPad: " ", startingAt: 0)
                let action = v.action == "kill" ? "killed the process" : "failed with \(ErrnoName.name(v.errno ?? EPERM))"
                lines.append("  \(name)  ×\(v.count)  \(action)")
            }
        }
        return lines.joined(separator: "\n") + "\n"
    }
}
