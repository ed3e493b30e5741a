import ArgumentParser
import Foundation
import Glibc
import SealboxBase
import SealboxBench

/// Entry point. Bad flags exit 125, not ArgumentParser's 64: Docker's convention, so a
/// caller can tell "sealbox failed" (125) from "your program failed" (its own code).
@main
struct Sealbox: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sealbox",
        abstract: "Run untrusted code in an ephemeral Linux jail (namespaces, cgroups, seccomp).",
        discussion: """
            Each run gets fresh user, pid, mount, network, ipc, uts and cgroup namespaces, a \
            read-only root filesystem, a size-capped writable /work and /tmp, no capabilities, \
            no host environment, and a default-deny seccomp profile.

            Exit status of `sealbox run`: the program's own code; 128+N if killed by signal N; \
            125 if sealbox itself failed; 126 if the program cannot be executed; 127 if not found.
            """,
        subcommands: [RunCommand.self, ServeCommand.self, SandboxCommand.self, McpCommand.self, KeysCommand.self, SessionCommand.self, BrokerCommand.self, LogCommand.self, BenchCommand.self, ProfileCommand.self]
    )

    static func main() async {
        do {
            var command = try parseAsRoot()
            if var asyncCommand = command as? any AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch let exit as ExitCode {
            Glibc.exit(exit.rawValue)
        } catch let failure as CLIFailure {
            writeStderr("sealbox: \(failure.message)\n")
            Glibc.exit(failure.exitCode)
        } catch let failure as BenchFailure {
            writeStderr("sealbox: \(failure.message)\n")
            Glibc.exit(CLIFailure(message: failure.message).exitCode)
        } catch {
            let code = exitCode(for: error)
            if code == .success {
                self.exit(withError: error)  // --help, --version
            }
            writeStderr(fullMessage(for: error) + "\n")
            Glibc.exit(usageExitStatus(CommandLine.arguments))
        }
    }
}

/// The exit status for a command line sealbox cannot parse: 125 (Docker's "the runtime
/// failed"), except under `sealbox profile`, whose commands report results with 0 and 1 and
/// bad usage with 2, the convention of diff(1) and of linters.
func usageExitStatus(_ arguments: [String]) -> Int32 {
    arguments.dropFirst().first == ProfileCommand.configuration.commandName ? ProfileCommand.usageExitStatus : 125
}

/// A failure sealbox reports itself, with the exit status to use.
struct CLIFailure: Error {
    var message: String
    var exitCode: Int32 = 125
}

func writeStderr(_ text: String) {
    writeAll(STDERR_FILENO, text.utf8)
}

/// Every --json output: one object per line, sorted keys, so scripts and diffs are stable.
enum JSONOutput {
    static func print<T: Encodable>(_ value: T) {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let data = (try? encoder.encode(value)) ?? Data("{}".utf8)
        FileHandle.standardOutput.write(data + Data("\n".utf8))
    }
}
