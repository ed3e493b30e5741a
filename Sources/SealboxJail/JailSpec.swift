import SealboxProfiles
/// What to run and under which limits. Values are validated by `Executor` before anything is
/// spawned; every violation is a `JailError(.invalidSpec)` with a readable message.
public struct JailSpec: Sendable {
    /// argv of the program. argv[0] without a "/" is searched in the jail's PATH.
    public var command: [String]
    /// Extra environment variables (`--env`). The jail sees exactly PATH, HOME, LANG and these.
    public var environment: [(name: String, value: String)]
    /// Files written into /work before the program starts (the snippet for `--lang`).
    public var files: [SeedFile]
    public var stdin: StdinSource
    public var limits: Limits
    /// A profile of the catalog by name ("default"), or an OCI JSON file the operator named.
    public var profile: ProfileReference
    public var rootfs: RootfsSource
    /// Extra host paths bound into the jail, read-only.
    public var binds: [BindMount]
    /// Caller-chosen run id (letters, digits, "-", "_"); generated when nil.
    public var id: String?
    /// The way out to the broker, when the run is granted tools.
    public var door: JailDoor?
    /// A session's persistent /work (instead of a fresh one): the seed files are written into
    /// it, and after the run it holds what the program left there.
    public var workspace: Workspace?
    /// Where the running jail is registered, so its owner can kill it on shutdown: a service
    /// passes its own set, so that draining it never touches another's jails.
    public var liveJails: LiveJails = .shared
    /// How denied syscalls are recorded for this run; nil: the executor's configuration
    /// (`.denials` when it tracks violations, else `.off`). `sealbox profile test` asks for
    /// `.everything`.
    public var violationTracking: ViolationTracking?
    /// A filter built by the caller instead of `profile` (the recording filter of
    /// `sealbox profile learn`); `profile` is then only the name the result shows.
    public var compiledFilter: CompiledSeccompFilter?

    public init(
        command: [String],
        environment: [(name: String, value: String)] = [],
        files: [SeedFile] = [],
        stdin: StdinSource = .null,
        limits: Limits = Limits(),
        profile: ProfileReference = "default",
        rootfs: RootfsSource = .host,
        binds: [BindMount] = [],
        id: String? = nil,
        door: JailDoor? = nil
    ) {
        self.command = command
        self.environment = environment
        self.files = files
        self.stdin = stdin
        self.limits = limits
        self.profile = profile
        self.rootfs = rootfs
        self.binds = binds
        self.id = id
        self.door = door
    }
}

/// The jail's one way out: the Unix socket of a service outside it (sealbox's broker), bound
/// read-only at `jailSocketPath`, the variables that tell the program where it is and what to
/// present (`environment`), and the service's client programs, copied in (never bound: a
/// bind's mountinfo line would show the host's path) at `jailClientPath`, put on PATH and on
/// python's path. The jail knows no more of the service than that; the runtime says what
/// the door is for (`BrokerGrant` in SealboxRuntime).
public struct JailDoor: Sendable, Equatable {
    /// The host socket (the service's, for this run only).
    public var socketPath: String
    public var jailSocketPath: String
    /// Added to the jail's environment after PATH, HOME and LANG (the caller's `--env` values
    /// still win).
    public var environment: [String: String]
    /// A host directory of small client files (at most 1 MiB each), or nil for none.
    public var clientDirectory: String?
    public var jailClientPath: String

    public init(socketPath: String, jailSocketPath: String, environment: [String: String], clientDirectory: String?, jailClientPath: String) {
        self.socketPath = socketPath
        self.jailSocketPath = jailSocketPath
        self.environment = environment
        self.clientDirectory = clientDirectory
        self.jailClientPath = jailClientPath
    }
}

public struct SeedFile: Sendable, Equatable {
    /// A plain file name inside /work (no "/", not "." or "..").
    public var name: String
    public var contents: [UInt8]
    public var executable: Bool

    public init(name: String, contents: [UInt8], executable: Bool = false) {
        self.name = name
        self.contents = contents
        self.executable = executable
    }
}

public enum StdinSource: Sendable, Equatable {
    /// /dev/null.
    case null
    /// A host file opened read-only by sealbox; the jail gets only the open descriptor.
    case file(String)
    /// These bytes, in a sealed memfd: nothing on disk to leave behind (a request's stdin).
    case bytes([UInt8])
    /// A descriptor the caller owns, duplicated for the jail (`sealbox run` passes its own
    /// stdin through when it is not a terminal). The caller keeps and closes its own.
    case descriptor(Int32)
}

public enum RootfsSource: Sendable, Equatable {
    /// The host's /usr, /bin, /lib, /lib64 read-only plus the synthetic /etc from rootfs/etc.
    case host
    /// A standalone root filesystem directory (scripts/build-rootfs.sh), bound read-only.
    case directory(String)
}

public struct BindMount: Sendable, Equatable {
    public var hostPath: String
    /// Absolute path inside the jail, e.g. /run/sealbox/broker.sock.
    public var jailPath: String
    public var readOnly: Bool

    public init(hostPath: String, jailPath: String, readOnly: Bool = true) {
        self.hostPath = hostPath
        self.jailPath = jailPath
        self.readOnly = readOnly
    }
}
