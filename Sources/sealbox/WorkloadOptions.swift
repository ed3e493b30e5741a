import ArgumentParser

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

    @Option(name: .long, help: "Wall-clock limit in seconds (millisecond resolution).")
    var timeout: Double = 10

    @Option(name: .long, help: "Memory limit, e.g. 256M.")
    var memory: String = "256M"

    @Option(name: .long, help: "Maximum number of processes and threads.")
    var pids: Int = 64

    @Option(name: .long, help: "Size of the writable /work + /tmp tmpfs, e.g. 64M (for a --step of `run`, /tmp only: /work is the session's workspace).")
    var disk: String = "64M"

    @Option(name: .long, help: "Size of the jail's /dev/shm (POSIX shared memory, semaphores), e.g. 64M; at most --memory, whose limit its pages count against (default: a quarter of --memory).")
    var shm: String?

    @Option(name: .customLong("output-limit"), help: "Cap on captured stdout and on stderr, each, e.g. 1M.")
    var outputLimit: String = "1M"

    @Option(name: .long, help: "CPU bandwidth in cores, e.g. 0.5 (default: unthrottled).")
    var cpus: Double?

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
