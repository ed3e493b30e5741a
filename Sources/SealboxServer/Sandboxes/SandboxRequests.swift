import Foundation
import SealboxBase
import SealboxJail
import SealboxProfiles

/// `POST /v1/sandboxes`: a live sandbox, decoded strictly (as `RunRequest`: duplicate or
/// unknown members, wrong types are 400 naming the field).
///
///     {"profile": "default", "limits": {"memory_bytes": 268435456, "pids": 64, "timeout_ms": 30000, ...},
///      "env": {"K": "V"}, "files": [{"name": "data.csv", "content": "a,b\n"}],
///      "idle_timeout_ms": 300000}
///
/// `limits` are the jail's (memory, pids, disk, CPU for everything in it together); their
/// `timeout_ms` and `output_bytes` are the defaults of its commands. `env` is every command's
/// environment, under a command's own.
public struct SandboxCreateRequest: Sendable {
    var spec: JailSpec
    var profile: String
    var idleTimeoutMs: Int64
    /// The session it belongs to (its /work starts as the session's last seal).
    var session: String?
    /// Tools granted to everything it runs, for its whole life.
    var tools: [String]

    public struct Wire: Decodable, Sendable {
        var profile: String?
        var limits: RequestedLimits?
        var env: [String: String]?
        var files: [RunRequest.File]?
        var idle_timeout_ms: Int64?
        public var session: String?
        /// A new session of the caller's, made for it (its id is in the answer).
        public var new_session: Bool?
        public var tools: [String]?

        public init() {}

        enum CodingKeys: String, CodingKey, CaseIterable { case profile, limits, env, files, idle_timeout_ms, session, new_session, tools }
    }

    static func parse(_ wire: Wire?, defaultLimits: Limits, maxLimits: Limits, sandboxes limits: SandboxLimits) throws(APIError) -> SandboxCreateRequest {
        let wire = wire ?? Wire()
        let profile = wire.profile ?? "default"
        guard ProfileCatalog.isValidName(profile) else {
            throw APIError.badRequest("profile must be the name of a profile (GET /v1/profiles lists them), not a path", field: "profile")
        }
        var spec = JailSpec(command: [], limits: try RunRequest.limits(wire.limits, defaults: defaultLimits, max: maxLimits),
                            profile: .catalog(profile))
        spec.environment = try RunRequest.environment(wire.env ?? [:])
        let files = wire.files ?? []
        guard files.count <= SpecRules.maxFiles else {
            throw APIError.badRequest("files has \(files.count) entries, more than the \(SpecRules.maxFiles) a sandbox may be seeded with", field: "files")
        }
        spec.files = try files.enumerated().map { index, file throws(APIError) in try RunRequest.seedFile(file, field: "files[\(index)]") }
        try RunRequest.checkUniqueNames(spec.files)
        let seeded = spec.files.reduce(0) { $0 + $1.contents.count }
        guard seeded <= SpecRules.maxSeedBytes, UInt64(seeded) <= spec.limits.diskBytes else {
            throw APIError.badRequest("files total \(seeded) bytes, more than limits.disk_bytes (\(spec.limits.diskBytes)) or \(SpecRules.maxSeedBytes)", field: "files")
        }
        let idle = wire.idle_timeout_ms ?? limits.defaultIdleTimeoutMs
        guard idle >= 1000, idle <= limits.maxIdleTimeoutMs else {
            throw APIError.badRequest("idle_timeout_ms must be between 1000 and \(limits.maxIdleTimeoutMs)", field: "idle_timeout_ms")
        }
        try RunRequest.checkSession(wire.session)
        if wire.session != nil && wire.new_session == true {
            throw APIError.badRequest("give either session or new_session, not both", field: "new_session")
        }
        return SandboxCreateRequest(spec: spec, profile: profile, idleTimeoutMs: idle, session: wire.session, tools: try RunRequest.tools(wire.tools))
    }
}

/// `POST /v1/sandboxes/{id}/commands`: one command in the sandbox.
///
///     {"command": ["ls", "-l"]}  or  {"shell": "pytest -q 2>&1 | tail -5"},
///     "env": {"K": "V"}, "cwd": "/work/src", "stdin": "text",
///     "timeout_ms": 30000, "output_bytes": 1048576}
public struct SandboxCommandRequest: Sendable {
    var command: LiveCommand

    public struct Wire: Decodable, Sendable {
        var command: [String]?
        var shell: String?
        var env: [String: String]?
        var cwd: String?
        var stdin: String?
        var timeout_ms: Int64?
        var output_bytes: Int64?
        /// A step key of the sandbox's session: the command is sealed, and sent again answers from its seal.
        public var step: String?

        enum CodingKeys: String, CodingKey, CaseIterable { case command, shell, env, cwd, stdin, timeout_ms, output_bytes, step }
    }

    static func parse(_ wire: Wire, sandbox: Sandbox, maxLimits maxima: Limits) throws(APIError) -> SandboxCommandRequest {
        let argv: [String]
        switch (wire.command, wire.shell) {
        case (let command?, nil):
            guard !command.isEmpty, !command[0].isEmpty else { throw APIError.badRequest("command must name a program", field: "command") }
            argv = command
        case (nil, let line?):
            guard !line.isEmpty else { throw APIError.badRequest("shell must not be empty", field: "shell") }
            argv = ["/bin/sh", "-c", line]
        case (nil, nil):
            throw APIError.badRequest("nothing to run: give command (an argv array) or shell (a line for /bin/sh -c)", field: "command")
        default:
            throw APIError.badRequest("give either command or shell, not both", field: "command")
        }
        try RunRequest.checkArguments(argv, field: wire.command != nil ? "command" : "shell", room: SpecRules.maxArguments)
        let environment = sandbox.environment(under: try RunRequest.environment(wire.env ?? [:]))
        let cwd = wire.cwd ?? "/work"
        guard LiveJail.isWorkPath(cwd) else {
            throw APIError.badRequest("cwd must be /work or a directory below it, without empty, . or .. parts", field: "cwd")
        }
        let timeout = wire.timeout_ms ?? Int64(sandbox.limits.timeoutMs)
        guard timeout >= 1, timeout <= Int64(maxima.timeoutMs) else {
            throw APIError.badRequest("timeout_ms must be between 1 and \(maxima.timeoutMs)", field: "timeout_ms")
        }
        let output = wire.output_bytes ?? Int64(sandbox.limits.outputBytes)
        guard output >= 0, output <= Int64(maxima.outputBytes) else {
            throw APIError.badRequest("output_bytes must be between 0 and \(maxima.outputBytes)", field: "output_bytes")
        }
        let stdin: StdinSource = wire.stdin.map { .bytes(Array($0.utf8)) } ?? .null
        return SandboxCommandRequest(command: LiveCommand(
            command: argv, environment: environment, workingDirectory: cwd, stdin: stdin, timeoutMs: Int(timeout), outputBytes: Int(output)))
    }
}

/// `POST /v1/sandboxes/{id}/contexts`: `{"language": "python", "cwd": "/work", "env": {}}`.
public enum SandboxContextRequest {
    public struct Wire: Decodable, Sendable {
        public var language: String?
        var cwd: String?
        var env: [String: String]?

        public init() {}

        enum CodingKeys: String, CodingKey, CaseIterable { case language, cwd, env }
    }
}

/// `POST /v1/sandboxes/{id}/contexts/{ctx}/code`: `{"code": "df.describe()", "timeout_ms": 30000}`.
public enum SandboxChunkRequest {
    /// The most code one chunk may hold.
    public static let maximumCodeBytes = 4 << 20

    public struct Wire: Decodable, Sendable {
        public var code: String?
        public var timeout_ms: Int64?
        /// A step key of the sandbox's session: the chunk is sealed, and sent again answers from its seal.
        public var step: String?

        public init(code: String?) {
            self.code = code
        }

        enum CodingKeys: String, CodingKey, CaseIterable { case code, timeout_ms, step }
    }
}
