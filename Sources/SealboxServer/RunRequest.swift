import Foundation
import SealboxBase
import SealboxJail
import SealboxLedger
import SealboxProfiles

/// `POST /v1/runs`: what to run, decoded once and strictly (`StrictJSONDecoder`: duplicate
/// member names, unknown fields and wrong types are refused) and then checked field by field,
/// so every refusal is a 400 naming the field, and what was checked is what runs. A typo
/// such as `"timeout"` for `"limits.timeout_ms"` is never silently ignored.
///
///     {"language": "python", "code": "print(6*7)", "args": [],
///      "files": [{"name": "data.csv", "content": "a,b\n", "encoding": "utf8", "executable": false}],
///      "env": {"K": "V"}, "stdin": "text", "profile": "default",
///      "limits": {"timeout_ms": 10000, "memory_bytes": 268435456, "pids": 64,
///                 "disk_bytes": 67108864, "output_bytes": 1048576, "cpus": 0.5, "shm_bytes": 67108864}}
///
/// (`limits` holds the rows of `LimitTable`.)
///
/// or `"command": ["/bin/sh", "-c", "..."]` instead of language + code.
public struct RunRequest: Sendable {
    public var spec: JailSpec
    /// Bytes for the program's stdin (none: /dev/null).
    public var stdin: [UInt8]?
    /// A session made with POST /v1/sessions: its runs share their effects.
    public var session: String?
    /// A step key of `session`: a sealed step is replayed, /work carries from step to step.
    public var step: String?
    /// Tools of the server's broker to grant to the run.
    public var tools: [String]
    /// The catalog profile the run names (`default` when it names none). Only a name: the
    /// spec's profile is `.catalog(profile)`, and the API checks it against the key's policy.
    public var profile: String

    /// At most this many tools per run; a name is at most 64 characters.
    public static let maximumTools = 64

    struct Wire: Decodable {
        var language: String?
        var code: String?
        var args: [String]?
        var command: [String]?
        var files: [File]?
        var env: [String: String]?
        var stdin: String?
        var profile: String?
        var limits: RequestedLimits?
        var session: String?
        var step: String?
        var tools: [String]?

        enum CodingKeys: String, CodingKey, CaseIterable {
            case language, code, args, command, files, env, stdin, profile, limits, session, step, tools
        }
    }

    struct File: Decodable {
        var name: String
        var content: String
        var encoding: String?
        var executable: Bool?

        enum CodingKeys: String, CodingKey, CaseIterable { case name, content, encoding, executable }
    }

    public static func parse(_ body: Data, configuration: ServerConfiguration) throws(APIError) -> RunRequest {
        try parse(body, defaultLimits: configuration.defaultLimits, maxLimits: configuration.maxLimits)
    }

    /// The same parse with the limits given directly.
    public static func parse(_ body: Data, defaultLimits: Limits, maxLimits: Limits) throws(APIError) -> RunRequest {
        let wire: Wire
        do {
            wire = try StrictJSONDecoder.decode(Wire.self, from: [UInt8](body))
        } catch {
            throw APIError(decoding: error)
        }
        return try make(wire, defaultLimits: defaultLimits, maxLimits: maxLimits)
    }

    /// A request already read as one JSON value (MCP's run_code arguments, read once by its
    /// strict gate): the same decoder and the same checks as a body, without writing it back
    /// to bytes.
    public static func parse(_ value: JSONValue, defaultLimits: Limits, maxLimits: Limits) throws(APIError) -> RunRequest {
        let wire: Wire
        do {
            wire = try StrictJSONDecoder.decode(Wire.self, from: value)
        } catch {
            throw APIError(decoding: error)
        }
        return try make(wire, defaultLimits: defaultLimits, maxLimits: maxLimits)
    }

    static func make(_ wire: Wire, defaultLimits: Limits, maxLimits: Limits) throws(APIError) -> RunRequest {
        let profile = wire.profile ?? "default"
        guard ProfileCatalog.isValidName(profile) else {
            // A name is looked up in the operator's catalog; it can never be a path.
            throw APIError.badRequest("profile must be the name of a profile (GET /v1/profiles lists them), not a path", field: "profile")
        }
        var spec = JailSpec(command: [], limits: try limits(wire.limits, defaults: defaultLimits, max: maxLimits), profile: .catalog(profile))
        spec.environment = try environment(wire.env ?? [:])
        let files = wire.files ?? []
        guard files.count <= SpecRules.maxFiles else {
            throw APIError.badRequest("files has \(files.count) entries, more than the \(SpecRules.maxFiles) a run may seed", field: "files")
        }
        spec.files = try files.enumerated().map { index, file throws(APIError) in
            try seedFile(file, field: "files[\(index)]")
        }
        try checkUniqueNames(spec.files)
        switch (wire.language, wire.code, wire.command) {
        case (let language?, let code?, nil):
            guard let snippet = SnippetLanguage(rawValue: language) else {
                throw APIError.badRequest("unknown language \"\(Printable.text(language, limit: 32))\" (use \(SnippetLanguage.names))", field: "language")
            }
            let arguments = wire.args ?? []
            try checkArguments(arguments, field: "args", room: SpecRules.maxArguments - 2)
            let program = snippet.program(code: Array(code.utf8), arguments: arguments)
            guard !spec.files.contains(where: { $0.name == program.file.name }) else {
                throw APIError.badRequest("files may not contain \(program.file.name): the snippet goes there", field: "files")
            }
            spec.files.append(program.file)
            spec.command = program.command
        case (nil, nil, let command?):
            guard !command.isEmpty, !command[0].isEmpty else { throw APIError.badRequest("command must name a program", field: "command") }
            guard wire.args == nil else { throw APIError.badRequest("args goes with language + code; put arguments in command", field: "args") }
            try checkArguments(command, field: "command", room: SpecRules.maxArguments)
            spec.command = command
        case (.some, nil, _):
            throw APIError.badRequest("language needs code", field: "code")
        case (nil, .some, _):
            throw APIError.badRequest("code needs language (\(SnippetLanguage.names))", field: "language")
        case (nil, nil, nil):
            throw APIError.badRequest("nothing to run: give language + code, or command", field: "command")
        default:
            throw APIError.badRequest("give either language + code or command, not both", field: "command")
        }
        let seeded = spec.files.reduce(0) { $0 + $1.contents.count }
        guard seeded <= SpecRules.maxSeedBytes, UInt64(seeded) <= spec.limits.diskBytes else {
            throw APIError.badRequest("files and code total \(seeded) bytes, more than limits.disk_bytes (\(spec.limits.diskBytes)) or \(SpecRules.maxSeedBytes)", field: "files")
        }
        try Self.checkSession(wire.session)
        if let step = wire.step {
            guard wire.session != nil else { throw APIError.badRequest("step needs session (create one with POST /v1/sessions)", field: "session") }
            try Self.checkStep(step)
        }
        let tools = try Self.tools(wire.tools)
        return RunRequest(spec: spec, stdin: wire.stdin.map { Array($0.utf8) }, session: wire.session, step: wire.step, tools: tools,
                          profile: profile)
    }

    /// A session id as a request gives it (400 naming `session` when it is not one).
    static func checkSession(_ session: String?) throws(APIError) {
        if let session, !isIdentifier(session) { throw APIError.badRequest("session must be 1-64 letters, digits, - or _", field: "session") }
    }

    /// A step key as a request gives it (400 naming `step`).
    static func checkStep(_ step: String) throws(APIError) {
        if let problem = StepKey.problem(step) { throw APIError.badRequest("step \(problem)", field: "step") }
    }

    /// The tools a request grants: at most `maximumTools` names (400 naming the one that is bad).
    static func tools(_ given: [String]?) throws(APIError) -> [String] {
        let tools = given ?? []
        guard tools.count <= maximumTools else { throw APIError.badRequest("at most \(maximumTools) tools", field: "tools") }
        for (index, tool) in tools.enumerated() where !isToolName(tool) {
            throw APIError.badRequest("tools[\(index)] must be 1-64 letters, digits, _ . or -", field: "tools[\(index)]")
        }
        return tools
    }

    static func isIdentifier(_ text: String) -> Bool {
        (1...64).contains(text.utf8.count) && text.utf8.allSatisfy { c in
            (c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c == 45 || c == 95
        }
    }

    /// The broker's tool names: letters, digits, `_ . -`, at most 64.
    static func isToolName(_ text: String) -> Bool {
        (1...64).contains(text.utf8.count) && text.utf8.allSatisfy { c in
            (c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c == 45 || c == 95 || c == 46
        }
    }

    static func checkArguments(_ arguments: [String], field: String, room: Int) throws(APIError) {
        guard arguments.count <= room else {
            throw APIError.badRequest("\(field) has \(arguments.count) entries, more than the \(room) allowed", field: field)
        }
        for (index, argument) in arguments.enumerated() where argument.utf8.contains(0) {
            throw APIError.badRequest("\(field)[\(index)] contains a NUL character", field: "\(field)[\(index)]")
        }
    }

    /// Sorted by name, so a run's identity does not depend on the order the client wrote them.
    static func environment(_ env: [String: String]) throws(APIError) -> [(name: String, value: String)] {
        guard env.count <= SpecRules.maxEnvironment else {
            throw APIError.badRequest("env has \(env.count) variables, more than the \(SpecRules.maxEnvironment) allowed", field: "env")
        }
        var result: [(name: String, value: String)] = []
        for (name, value) in env.sorted(by: { $0.key < $1.key }) {
            let field = "env." + Printable.text(name, limit: 64)
            guard SpecRules.isEnvironmentName(name) else {
                throw APIError.badRequest("\(field): an environment variable name is letters, digits and _, not starting with a digit", field: field)
            }
            guard !SpecRules.reservedEnvironment.contains(name) else {
                throw APIError.badRequest("\(field) is reserved for sealbox", field: field)
            }
            guard !value.utf8.contains(0) else { throw APIError.badRequest("\(field) contains a NUL character", field: field) }
            result.append((name, value))
        }
        return result
    }

    /// The request's limits: `LimitTable`'s rows, each checked, every refusal naming its field.
    static func limits(_ requested: RequestedLimits?, defaults: Limits, max: Limits) throws(APIError) -> Limits {
        do {
            return try LimitTable.resolve(requested, defaults: defaults, maxima: max)
        } catch {
            throw .badRequest(error.message, field: error.field)
        }
    }

    static func seedFile(_ file: File, field: String) throws(APIError) -> SeedFile {
        guard SpecRules.isFileName(file.name) else {
            throw .badRequest("\(field).name must be a plain file name for /work (1-\(SpecRules.maxFileNameBytes) bytes, no / or NUL, not . or ..)", field: "\(field).name")
        }
        let contents: [UInt8]
        switch file.encoding ?? "utf8" {
        case "utf8":
            contents = Array(file.content.utf8)
        case "base64":
            guard let data = Data(base64Encoded: file.content) else {
                throw .badRequest("\(field).content is not valid base64", field: "\(field).content")
            }
            contents = [UInt8](data)
        case let other:
            throw .badRequest("\(field).encoding \"\(Printable.text(other, limit: 32))\" is not utf8 or base64", field: "\(field).encoding")
        }
        return SeedFile(name: file.name, contents: contents, executable: file.executable ?? false)
    }
}

extension RunRequest {
    /// Seed file names must be unique; checked here so the 400 names the second one.
    static func checkUniqueNames(_ files: [SeedFile]) throws(APIError) {
        var seen = Set<String>()
        for (index, file) in files.enumerated() where !seen.insert(file.name).inserted {
            throw .badRequest("files[\(index)].name \"\(Printable.text(file.name, limit: 64))\" is given twice", field: "files[\(index)].name")
        }
    }
}
