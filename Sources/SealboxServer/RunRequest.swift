import Foundation
import SealboxJail

/// `POST /v1/runs`: what to run, parsed strictly. Unknown fields, wrong types and limits
/// above the operator's maxima are refused with 400 naming the field, so a typo such as
/// `"timeout"` for `"limits.timeout_ms"` is never silently ignored.
///
///     {"language": "python", "code": "print(6*7)", "args": [],
///      "files": [{"name": "data.csv", "content": "a,b\n", "encoding": "utf8", "executable": false}],
///      "env": {"K": "V"}, "stdin": "text", "profile": "default",
///      "limits": {"timeout_ms": 10000, "memory_bytes": 268435456, "pids": 64,
///                 "disk_bytes": 67108864, "output_bytes": 1048576, "cpus": 0.5}}
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
        var limits: WireLimits?
        var session: String?
        var step: String?
        var tools: [String]?
    }

    struct File: Decodable {
        var name: String
        var content: String
        var encoding: String?
        var executable: Bool?
    }

    struct WireLimits: Decodable {
        var timeout_ms: Int?
        var memory_bytes: UInt64?
        var pids: Int?
        var disk_bytes: UInt64?
        var output_bytes: Int?
        var cpus: Double?
    }

    static let fields: Set = ["language", "code", "args", "command", "files", "env", "stdin", "profile", "limits", "session", "step", "tools"]
    static let fileFields: Set = ["name", "content", "encoding", "executable"]
    static let limitFields: Set = ["timeout_ms", "memory_bytes", "pids", "disk_bytes", "output_bytes", "cpus"]

    public static func parse(_ body: Data, configuration: ServerConfiguration) throws(APIError) -> RunRequest {
        try parse(body, defaultLimits: configuration.defaultLimits, maxLimits: configuration.maxLimits)
    }

    /// The same parse with the limits given directly (`sealbox mcp`'s run_code uses it).
    public static func parse(_ body: Data, defaultLimits: Limits, maxLimits: Limits) throws(APIError) -> RunRequest {
        try checkFieldNames(body)
        let wire: Wire
        do {
            wire = try JSONDecoder().decode(Wire.self, from: body)
        } catch let error as DecodingError {
            throw describe(error)
        } catch {
            throw APIError.badRequest("the body is not valid JSON: \(error)")
        }
        var spec = JailSpec(command: [], limits: try limits(wire.limits, defaults: defaultLimits, max: maxLimits), profile: wire.profile ?? "default")
        for (name, value) in (wire.env ?? [:]).sorted(by: { $0.key < $1.key }) {
            spec.environment.append((name, value))
        }
        spec.files = try (wire.files ?? []).enumerated().map { index, file throws(APIError) in
            try seedFile(file, field: "files[\(index)]")
        }
        switch (wire.language, wire.code, wire.command) {
        case (let language?, let code?, nil):
            guard let snippet = SnippetLanguage(rawValue: language) else {
                throw APIError.badRequest("unknown language \"\(language)\" (use \(SnippetLanguage.names))", field: "language")
            }
            let program = snippet.program(code: Array(code.utf8), arguments: wire.args ?? [])
            guard !spec.files.contains(where: { $0.name == program.file.name }) else {
                throw APIError.badRequest("files may not contain \(program.file.name): the snippet goes there", field: "files")
            }
            spec.files.append(program.file)
            spec.command = program.command
        case (nil, nil, let command?):
            guard !command.isEmpty, !command[0].isEmpty else { throw APIError.badRequest("command must name a program", field: "command") }
            guard wire.args == nil else { throw APIError.badRequest("args goes with language + code; put arguments in command", field: "args") }
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
        if let session = wire.session {
            guard Self.isIdentifier(session) else { throw APIError.badRequest("session must be 1-64 letters, digits, - or _", field: "session") }
        }
        if let step = wire.step {
            guard wire.session != nil else { throw APIError.badRequest("step needs session (create one with POST /v1/sessions)", field: "session") }
            guard !step.isEmpty, step.utf8.count <= 200, !step.contains("\n") else {
                throw APIError.badRequest("step must be 1-200 characters on one line", field: "step")
            }
        }
        let tools = wire.tools ?? []
        guard tools.count <= Self.maximumTools else { throw APIError.badRequest("at most \(Self.maximumTools) tools per run", field: "tools") }
        for (index, tool) in tools.enumerated() where !(1...64).contains(tool.utf8.count) {
            throw APIError.badRequest("tools[\(index)] must be 1-64 characters", field: "tools[\(index)]")
        }
        return RunRequest(spec: spec, stdin: wire.stdin.map { Array($0.utf8) }, session: wire.session, step: wire.step, tools: tools)
    }

    static func isIdentifier(_ text: String) -> Bool {
        (1...64).contains(text.utf8.count) && text.utf8.allSatisfy { c in
            (c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c == 45 || c == 95
        }
    }

    /// Unknown fields, at the top level, in limits and in each file.
    static func checkFieldNames(_ body: Data) throws(APIError) {
        guard let object = try? JSONSerialization.jsonObject(with: body) else {
            throw APIError.badRequest("the body is not valid JSON")
        }
        guard let top = object as? [String: Any] else { throw APIError.badRequest("the body must be a JSON object") }
        for key in top.keys.sorted() where !fields.contains(key) {
            throw APIError.badRequest("unknown field \"\(key)\" (known: \(fields.sorted().joined(separator: ", ")))", field: key)
        }
        if let limits = top["limits"] as? [String: Any] {
            for key in limits.keys.sorted() where !limitFields.contains(key) {
                throw APIError.badRequest("unknown field \"limits.\(key)\" (known: \(limitFields.sorted().joined(separator: ", ")))", field: "limits.\(key)")
            }
            // Named here: the decoder would call 1e30 or 2.5 for an integer "not valid JSON".
            for (key, value) in limits.sorted(by: { $0.key < $1.key }) where key != "cpus" && !(value is Bool) {
                if let number = value as? Double, !(number.rounded() == number && abs(number) < 9.0e15) {
                    throw APIError.badRequest("limits.\(key) must be a whole number", field: "limits.\(key)")
                }
            }
        }
        if let profile = top["profile"] as? String, profile.contains("/") || profile.hasPrefix(".") || profile.isEmpty {
            // A path would let a caller make sealbox read any host file as a profile.
            throw APIError.badRequest("profile must be the name of a profile (GET /v1/profiles), not a path", field: "profile")
        }
        if let files = top["files"] as? [Any] {
            for (index, file) in files.enumerated() {
                guard let fields = file as? [String: Any] else { continue }  // the decoder names the type error
                for key in fields.keys.sorted() where !fileFields.contains(key) {
                    throw APIError.badRequest("unknown field \"files[\(index)].\(key)\" (known: \(fileFields.sorted().joined(separator: ", ")))", field: "files[\(index)].\(key)")
                }
            }
        }
    }

    static func describe(_ error: DecodingError) -> APIError {
        func path(_ codingPath: [any CodingKey]) -> String {
            var text = ""
            for key in codingPath {
                if let index = key.intValue { text += "[\(index)]" } else { text += (text.isEmpty ? "" : ".") + key.stringValue }
            }
            return text
        }
        switch error {
        case .typeMismatch(let type, let context):
            let field = path(context.codingPath)
            return .badRequest("\(field.isEmpty ? "the body" : field) must be \(describe(type))", field: field)
        case .valueNotFound(let type, let context):
            let field = path(context.codingPath)
            return .badRequest("\(field) must be \(describe(type)), not null", field: field)
        case .keyNotFound(let key, let context):
            let field = path(context.codingPath + [key])
            return .badRequest("\(field) is required", field: field)
        case .dataCorrupted(let context):
            let field = path(context.codingPath)
            return .badRequest(field.isEmpty ? "the body is not valid JSON" : "\(field) is not valid: \(context.debugDescription)", field: field.isEmpty ? nil : field)
        @unknown default:
            return .badRequest("the body does not match the run schema")
        }
    }

    static func describe(_ type: Any.Type) -> String {
        switch type {
        case is String.Type: return "a string"
        case is Bool.Type: return "true or false"
        case is Int.Type, is UInt64.Type: return "a whole number"
        case is Double.Type: return "a number"
        case is [String].Type: return "an array of strings"
        case is [String: String].Type: return "an object of strings"
        default: return "of another type (\(type))"
        }
    }

    static func limits(_ wire: WireLimits?, defaults: Limits, max: Limits) throws(APIError) -> Limits {
        var limits = defaults
        func check<T: Comparable>(_ value: T?, _ field: String, min: T, max: T, _ apply: (T) -> Void) throws(APIError) {
            guard let value else { return }
            guard value >= min else { throw .badRequest("limits.\(field) must be at least \(min)", field: "limits.\(field)") }
            guard value <= max else {
                throw .badRequest("limits.\(field) \(value) is above the operator's maximum of \(max)", field: "limits.\(field)")
            }
            apply(value)
        }
        try check(wire?.timeout_ms, "timeout_ms", min: 1, max: max.timeoutMs) { limits.timeoutMs = $0 }
        try check(wire?.memory_bytes, "memory_bytes", min: 4 << 20, max: max.memoryBytes) { limits.memoryBytes = $0 }
        try check(wire?.pids, "pids", min: 1, max: max.pids) { limits.pids = $0 }
        try check(wire?.disk_bytes, "disk_bytes", min: 64 << 10, max: max.diskBytes) { limits.diskBytes = $0 }
        try check(wire?.output_bytes, "output_bytes", min: 1, max: max.outputBytes) { limits.outputBytes = $0 }
        if let cpus = wire?.cpus {
            guard cpus.isFinite, cpus >= 0.01, cpus <= Double(ProcessInfo.processInfo.activeProcessorCount) else {
                throw .badRequest("limits.cpus must be between 0.01 and \(ProcessInfo.processInfo.activeProcessorCount)", field: "limits.cpus")
            }
            limits.cpus = cpus
        }
        // The defaults never exceed the maxima either.
        limits.timeoutMs = min(limits.timeoutMs, max.timeoutMs)
        limits.memoryBytes = min(limits.memoryBytes, max.memoryBytes)
        limits.pids = min(limits.pids, max.pids)
        limits.diskBytes = min(limits.diskBytes, max.diskBytes)
        limits.outputBytes = min(limits.outputBytes, max.outputBytes)
        return limits
    }

    static func seedFile(_ file: File, field: String) throws(APIError) -> SeedFile {
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
            throw .badRequest("\(field).encoding \"\(other)\" is not utf8 or base64", field: "\(field).encoding")
        }
        return SeedFile(name: file.name, contents: contents, executable: file.executable ?? false)
    }
}
