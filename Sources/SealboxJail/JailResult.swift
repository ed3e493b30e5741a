/// What one jail did: its verdict, output, usage and phases. The runtime wraps it in a
/// `RunResult` (which adds what a session step and the service know); field names and values
/// are part of the `sealbox run --json` contract (DESIGN.md); do not rename.
public struct JailResult: Sendable, Codable, Equatable {
    public enum Status: String, Sendable, Codable {
        case ok
        case exitNonzero = "exit_nonzero"
        case signaled
        case timeout
        case memoryLimit = "memory_limit"
        case pidsLimit = "pids_limit"
        case outputLimit = "output_limit"
        case seccompViolation = "seccomp_violation"
        case spawnFailed = "spawn_failed"
        /// Killed because its caller cancelled it (`DELETE /v1/runs/{id}`).
        case cancelled
    }

    /// A syscall the profile denied, as the supervisor saw it (seccomp user notification).
    public struct Violation: Sendable, Codable, Equatable {
        public var syscall: String
        public var count: Int
        /// "errno" (the call failed with `errno`) or "kill" (the process was killed for it).
        public var action: String?
        public var errno: Int32?
        /// For a call through another ABI than the native one, libseccomp's name of it: "x86"
        /// (i386: `int $0x80`, a 32-bit binary) or "x32". A profile that does not list the
        /// ABI kills such a call (its bad-arch action), whatever the syscall.
        public var abi: String?

        public init(syscall: String, count: Int, action: String? = nil, errno: Int32? = nil, abi: String? = nil) {
            self.syscall = syscall
            self.count = count
            self.action = action
            self.errno = errno
            self.abi = abi
        }
    }

    /// Every notified syscall of a recording run (`sealbox profile learn`), allowed or not.
    public struct RecordedSyscall: Sendable, Codable, Equatable {
        public var syscall: String
        /// False for a call through another ABI (i386 `int 0x80`, x32).
        public var native: Bool
        public var count: Int
        /// "allow", "errno" or "kill": what the supervisor answered.
        public var answer: String
        public var errno: Int32?
        /// The arguments of the first such call (raw 64-bit values).
        public var firstArgs: [UInt64]

        enum CodingKeys: String, CodingKey {
            case syscall, native, count, answer, errno
            case firstArgs = "first_args"
        }
    }

    public var id: String
    public var status: Status
    /// The program's exit code; 128+N when killed by signal N; 125/126/127 when it never ran.
    public var exitCode: Int32
    public var signal: Int32?
    public var stdout: String
    public var stderr: String
    public var stdoutTruncated: Bool
    public var stderrTruncated: Bool
    /// Everything the program wrote, including what was drained past the cap.
    public var stdoutBytes: Int
    public var stderrBytes: Int
    public var wallMs: Double
    public var cpuMs: Double
    public var peakMemoryBytes: UInt64
    public var violations: [Violation]
    public var limits: AppliedLimits
    public var profile: String
    public var cgroup: String
    /// Why a run could not start (status spawn_failed), e.g. "mount /proc: EPERM (...)".
    public var error: String?
    /// The jail was killed by its owner (`LiveJails.killAll`: a service shutting down), not
    /// by anything the program did: the run did not finish, so a step must not be sealed
    /// with it. Not part of the JSON (`error` says why).
    public var interrupted = false
    /// Where the time went: setup (profile, filesystem plan, cgroup), spawn (clone3 to
    /// execve), run (execve to exit, output drained), teardown (cgroup kill and removal);
    /// the API adds the time the request waited for a slot.
    public var phases: Phases?
    /// Only for a recording run (`sealbox profile learn`): every syscall that reached the
    /// supervisor, with its answer.
    public var recordedSyscalls: [RecordedSyscall]?

    public struct Phases: Sendable, Codable, Equatable {
        public var queueMs: Double?
        public var setupMs: Double
        public var spawnMs: Double
        public var runMs: Double
        public var teardownMs: Double
        /// `spawnMs` taken apart, measured on both sides of the clone (see `SpawnSteps`).
        public var spawnSteps: SpawnSteps?

        /// true when the run took a prepared jail from the pool (its spawn is the handover
        /// and execve only); absent for a cold spawn.
        public var warm: Bool?

        public init(queueMs: Double? = nil, setupMs: Double, spawnMs: Double, runMs: Double, teardownMs: Double, spawnSteps: SpawnSteps? = nil,
                    warm: Bool? = nil) {
            self.warm = warm
            self.queueMs = queueMs
            self.setupMs = setupMs
            self.spawnMs = spawnMs
            self.runMs = runMs
            self.teardownMs = teardownMs
            self.spawnSteps = spawnSteps
        }

        enum CodingKeys: String, CodingKey {
            case queueMs = "queue_ms"
            case setupMs = "setup_ms"
            case spawnMs = "spawn_ms"
            case runMs = "run_ms"
            case teardownMs = "teardown_ms"
            case spawnSteps = "spawn_steps"
            case warm
        }
    }

    /// Where the spawn (clone3 to execve) went, in ms, in the child's fixed order
    /// (sbx_child.c): clone, the parent writing uid/gid maps and cgroup membership, identity,
    /// mounts, pivot_root, the rest of the setup (loopback, hostname, rlimits, stdio,
    /// capabilities), init starting the program, seccomp + execve until the parent sees it, and
    /// for a pooled jail (whose earlier steps happened before the run) the task's handover.
    public struct SpawnSteps: Sendable, Codable, Equatable {
        public static let names = ["clone", "maps", "identity", "mounts", "pivot", "setup", "fork", "exec", "activate"]
        /// In the order of `names`.
        public var milliseconds: [Double]

        public init(milliseconds: [Double]) {
            self.milliseconds = milliseconds
        }

        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: DynamicKey.self)
            // A step added later (activate) is absent from results sealed before it: 0.
            milliseconds = try Self.names.map { try c.decodeIfPresent(Double.self, forKey: DynamicKey($0 + "_ms")) ?? 0 }
        }

        public func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: DynamicKey.self)
            for (name, value) in zip(Self.names, milliseconds) { try c.encode(value, forKey: DynamicKey(name + "_ms")) }
        }

        struct DynamicKey: CodingKey {
            var stringValue: String
            var intValue: Int? { nil }
            init(_ s: String) { stringValue = s }
            init?(stringValue: String) { self.stringValue = stringValue }
            init?(intValue: Int) { nil }
        }
    }

    enum CodingKeys: String, CodingKey {
        case id, status
        case exitCode = "exit_code"
        case signal, stdout, stderr
        case stdoutTruncated = "stdout_truncated"
        case stderrTruncated = "stderr_truncated"
        case stdoutBytes = "stdout_bytes"
        case stderrBytes = "stderr_bytes"
        case wallMs = "wall_ms"
        case cpuMs = "cpu_ms"
        case peakMemoryBytes = "peak_memory_bytes"
        case violations, limits, profile, cgroup, error, phases
        case recordedSyscalls = "recorded_syscalls"
    }

    /// Encodes `signal` as an explicit null (the contract shows `"signal":null`).
    public func encode(to encoder: any Encoder) throws {
        try encode(to: encoder, afterError: { _ in })
    }

    /// The same object with a wrapper's members (`RunResult`: a step's and the service's)
    /// written by `afterError` where the contract has them, between `error` and `phases`.
    public func encode(to encoder: any Encoder, afterError: (any Encoder) throws -> Void) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(id, forKey: .id)
        try c.encode(status, forKey: .status)
        try c.encode(exitCode, forKey: .exitCode)
        try c.encode(signal, forKey: .signal)
        try c.encode(stdout, forKey: .stdout)
        try c.encode(stderr, forKey: .stderr)
        try c.encode(stdoutTruncated, forKey: .stdoutTruncated)
        try c.encode(stderrTruncated, forKey: .stderrTruncated)
        try c.encode(stdoutBytes, forKey: .stdoutBytes)
        try c.encode(stderrBytes, forKey: .stderrBytes)
        try c.encode(wallMs, forKey: .wallMs)
        try c.encode(cpuMs, forKey: .cpuMs)
        try c.encode(peakMemoryBytes, forKey: .peakMemoryBytes)
        try c.encode(violations, forKey: .violations)
        try c.encode(limits, forKey: .limits)
        try c.encode(profile, forKey: .profile)
        try c.encode(cgroup, forKey: .cgroup)
        try c.encodeIfPresent(error, forKey: .error)
        try afterError(encoder)
        try c.encodeIfPresent(phases, forKey: .phases)
        try c.encodeIfPresent(recordedSyscalls, forKey: .recordedSyscalls)
    }
}
