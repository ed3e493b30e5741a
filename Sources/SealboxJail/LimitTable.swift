import Glibc

/// Every limit a run can ask for, declared once. `sealbox run`'s flags and the operator's
/// `--max-*` flags of `serve` and `mcp`, the HTTP and MCP request decoders and their checks,
/// the schemas (OpenAPI, MCP), `SpecValidator`, the pool's fit test, the rlimits of the C
/// request and the result's `limits` echo all derive from these rows (`LimitRules.swift`).
/// A new limit enforced by an rlimit is one row here and nothing else.
public enum LimitTable {
    public static let rows: [LimitRow] = [
        LimitRow(
            key: .timeoutMs, flag: "timeout", unit: .milliseconds, minimum: .whole(1), ceiling: .whole(86_400_000),
            defaultValue: .whole(10_000), maximum: .operatorFlag("max-timeout", default: .whole(300_000)),
            enforcement: .supervisor, shapesPooledJail: false,
            title: "timeout", about: "Wall-clock limit."),
        LimitRow(
            key: .memoryBytes, flag: "memory", unit: .bytes, minimum: .whole(4 << 20),
            defaultValue: .whole(256 << 20), maximum: .operatorFlag("max-memory", default: .whole(2 << 30)),
            enforcement: .cgroup, shapesPooledJail: true,
            title: "memory limit", about: "Memory limit of the whole jail (its cgroup)."),
        LimitRow(
            key: .pids, flag: "pids", unit: .count, minimum: .whole(1), ceiling: .whole(100_000),
            defaultValue: .whole(64), maximum: .operatorFlag("max-pids", default: .whole(512)),
            enforcement: .cgroup, shapesPooledJail: true,
            title: "pids limit", about: "Maximum number of processes and threads."),
        LimitRow(
            key: .diskBytes, flag: "disk", unit: .bytes, minimum: .whole(64 << 10),
            defaultValue: .whole(64 << 20), maximum: .operatorFlag("max-disk", default: .whole(1 << 30)),
            enforcement: .tmpfs, shapesPooledJail: true,
            title: "disk limit",
            about: "Size of the writable /work + /tmp tmpfs (for a session step, /tmp only: /work is the session's workspace)."),
        LimitRow(
            key: .outputBytes, flag: "output-limit", unit: .bytes, minimum: .whole(0),
            defaultValue: .whole(1 << 20), maximum: .operatorFlag("max-output", default: .whole(16 << 20)),
            enforcement: .supervisor, shapesPooledJail: false,
            title: "output limit", about: "Cap on captured stdout and on stderr, each."),
        LimitRow(
            key: .cpus, flag: "cpus", unit: .cpus, minimum: .cores(0.01), ceiling: .cores(1024),
            defaultValue: nil, maximum: .hostCPUs,
            enforcement: .cgroup, shapesPooledJail: true,
            title: "cpus", about: "CPU bandwidth in cores (default: unthrottled)."),
        LimitRow(
            key: .shmBytes, flag: "shm", unit: .bytes, minimum: .whole(64 << 10),
            defaultValue: nil, maximum: .otherLimit(.memoryBytes, because: "/dev/shm's pages are charged to the memory limit"),
            enforcement: .tmpfs, shapesPooledJail: true,
            title: "/dev/shm size",
            about: "Size of the jail's /dev/shm (POSIX shared memory, semaphores); at most the memory limit, which its pages count against (default: a quarter of the memory limit).",
            derivedDefault: { .whole(Limits.defaultShmBytes(memory: $0.memoryBytes)) }),
        LimitRow(
            key: .maxOpenFiles, flag: "max-open-files", unit: .count, minimum: .whole(16), ceiling: .whole(1 << 20),
            defaultValue: .whole(1024), maximum: .operatorFlag("max-open-files", default: .whole(65_536)),
            enforcement: .rlimit(Int32(RLIMIT_NOFILE.rawValue)), shapesPooledJail: true,
            title: "open files limit", about: "Most files a process of the jail may have open at once (RLIMIT_NOFILE; at most sealbox's own hard limit)."),
    ]
}

extension LimitKey {
    public static let timeoutMs: LimitKey = "timeout_ms"
    public static let memoryBytes: LimitKey = "memory_bytes"
    public static let pids: LimitKey = "pids"
    public static let diskBytes: LimitKey = "disk_bytes"
    public static let outputBytes: LimitKey = "output_bytes"
    public static let cpus: LimitKey = "cpus"
    public static let shmBytes: LimitKey = "shm_bytes"
    public static let maxOpenFiles: LimitKey = "max_open_files"
}
