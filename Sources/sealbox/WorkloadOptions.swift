import ArgumentParser
import SealboxBase

/// The flags that describe a workload and its limits, shared by `sealbox run`, `profile learn`
/// and `profile test` (each adds how it chooses the profile).
struct WorkloadOptions: ParsableArguments {
    @Option(name: .long, help: "Snippet language: python, node, bash or sh.")
    var lang: String?

    @Option(name: .long, help: "Read the snippet from this file.")
    var file: String?

    @Option(name: .long, help: "The snippet itself.")
    var code: String?

    @Option(name: .customLong("stdin-file"), help: "Feed this host file to the program's stdin; - is sealbox's own stdin. Default: sealbox's stdin when it is a pipe or a file (echo hi | sealbox run ...), else /dev/null.")
    var stdinFile: String?

    /// --timeout, --memory, --pids, …: the rows of `LimitTable`.
    @OptionGroup var limits: RunLimitFlags

    @Option(name: .long, help: "Environment variable for the jail, K=V (repeatable).")
    var env: [String] = []

    @Option(name: .long, help: "Root filesystem directory (see scripts/build-rootfs.sh); default: the host's /usr read-only.")
    var rootfs: String?

    @Argument(parsing: .postTerminator, help: "With --lang: arguments for the snippet. Otherwise: the command and its arguments.")
    var command: [String] = []

    /// What the workload is, for messages and a learned profile's comment.
    var summary: String {
        if let lang {
            if let code { return "--lang \(lang) --code \(code.count > 60 ? String(code.prefix(57)) + "..." : code)" }
            if let file { return "--lang \(lang) --file \(file)" }
        }
        return command.joined(separator: " ")
    }
}

/// `NAME=VALUE` flags (`--env`), in order.
func environmentPairs(_ pairs: [String], flag: String) throws -> [(name: String, value: String)] {
    try pairs.map { pair in
        guard let equals = pair.firstIndex(of: "="), equals != pair.startIndex else {
            throw CLIFailure(message: "\(flag) expects NAME=VALUE, got \"\(Printable.text(pair, limit: 64))\"")
        }
        return (String(pair[..<equals]), String(pair[pair.index(after: equals)...]))
    }
}
