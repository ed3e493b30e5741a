import ArgumentParser
import SealboxJail
import SealboxProfiles

/// `sealbox profile ...`: operator tools for seccomp profiles. The logic lives in
/// SealboxProfiles (ProfileChecker, ProfileAnalysis); these commands only resolve arguments,
/// print and pick the exit status.
struct ProfileCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "profile",
        abstract: "Learn, test, check, explain and compare seccomp profiles.",
        discussion: """
            A profile is an OCI / Docker seccomp JSON file (what `docker run --security-opt \
            seccomp=FILE` accepts): a defaultAction, the architectures, and syscall rules, each \
            an action for a list of names, optionally only when argument comparisons hold. \
            sealbox compiles it with libseccomp and installs it as the jail's last step.

            PROFILE is a path (anything containing "/" or ending in .json) or the name of a \
            shipped profile (default, strict, python, node, permissive), resolved like             `sealbox run --profile`.

            The operator's loop: learn a profile from a workload, check it, explain it, diff it             against another, run under it; `test` reports every syscall a profile denies.

            Examples:
              sealbox profile learn -o mine.json --lang python --file job.py
              sealbox profile check ./mine.json
              sealbox profile explain default
              sealbox profile diff default ./mine.json
              sealbox profile test ./mine.json --lang python --file job.py

            The format, the rules libseccomp applies silently and how to write your own: \
            profiles/README.md.
            """,
        subcommands: [
            ProfileLearnCommand.self,
            ProfileTestCommand.self,
            ProfileCheckCommand.self,
            ProfileExplainCommand.self,
            ProfileDiffCommand.self,
        ]
    )

    /// Exit status of every profile subcommand for a bad invocation or an unreadable profile
    /// (0 and 1 are results: clean / problems found, equivalent / different).
    static let usageExitStatus: Int32 = 2
}

/// Resolving PROFILE arguments the way `sealbox run --profile` does.
enum ProfileArgument {
    /// The profiles directory for a name; paths need none (and must work without a data
    /// directory, e.g. on a machine with only the binary).
    static func profilesDirectory(for nameOrPath: String) throws -> String {
        guard !ProfileLoader.isPath(nameOrPath) else { return "" }
        do {
            return try DataDirectory.locate() + "/profiles"
        } catch {
            throw CLIFailure(
                message: "cannot resolve the profile name \"\(nameOrPath)\": \(error.description); or give a path such as ./\(nameOrPath).json",
                exitCode: ProfileCommand.usageExitStatus)
        }
    }

    /// Reads and validates a profile for explain and diff. Any failure is exit status 2.
    static func load(_ nameOrPath: String) throws -> (profile: LoadedProfile, path: String) {
        let source: (path: String, bytes: [UInt8])
        do {
            source = try ProfileLoader.readSource(nameOrPath, profilesDirectory: try profilesDirectory(for: nameOrPath))
        } catch let error as ProfileError {
            throw CLIFailure(message: error.description, exitCode: ProfileCommand.usageExitStatus)
        }
        do {
            return (try ProfileLoader.parse(source.bytes, name: nameOrPath), source.path)
        } catch {
            throw CLIFailure(
                message: "\(error.description)\n(`sealbox profile check \(nameOrPath)` lists every problem with its line and column)",
                exitCode: ProfileCommand.usageExitStatus)
        }
    }
}
