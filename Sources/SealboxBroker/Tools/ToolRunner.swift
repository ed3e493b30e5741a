import Foundation
import SealboxBase
import SealboxLedger

/// Runs operator-declared tools with the broker's secrets. The runner decides nothing about
/// effects or approval: it validates, expands, injects, runs, and reports.
public struct ToolRunner: Sendable {
    public let config: BrokerConfig
    /// Every secret value is taken out of results and errors before they leave the runner.
    let redactor: SecretRedactor

    public init(config: BrokerConfig) {
        self.config = config
        self.redactor = SecretRedactor(config.secrets)
    }

    /// The arguments as the tool will use them (defaults filled in), or bad_request
    /// (happened=false) naming the first problem.
    public func validate(_ tool: ToolDefinition, args: [String: JSONValue]) throws(ToolError) -> [String: JSONValue] {
        try ToolArgumentValidator.validate(tool, args)
    }

    /// Validates args against the definition (bad_request with a precise message, happened=false),
    /// expands templates, injects secrets, runs.
    ///
    /// http: adds the idempotency header (default `Idempotency-Key: <key>`) on non-read tools;
    /// a non-2xx status is returned in the outcome, not thrown; transport failures throw
    /// tool_failed (happened=false when nothing can have been sent: DNS failure, connection
    /// refused, TLS failure; nil otherwise, e.g. a timeout).
    ///
    /// command: posix_spawn (no shell), stdin /dev/null, stdout/stderr captured and capped at
    /// maxResponseBytes, killed at the timeout (tool_failed, happened=nil); a non-zero exit is
    /// returned in the outcome.
    public func run(_ tool: ToolDefinition, args: [String: JSONValue], idempotencyKey: String) async throws(ToolError) -> ToolOutcome {
        do {
            var outcome = try await runUnredacted(tool, args: args, idempotencyKey: idempotencyKey)
            outcome.result = redactor.redact(outcome.result)
            return outcome
        } catch {
            throw redactor.redact(error)
        }
    }

    private func runUnredacted(_ tool: ToolDefinition, args: [String: JSONValue], idempotencyKey: String) async throws(ToolError) -> ToolOutcome {
        let values = try validate(tool, args: args)
        let clock = ContinuousClock()
        let start = clock.now
        func elapsedMs() -> Double {
            let d = clock.now - start
            return Double(d.components.seconds) * 1000 + Double(d.components.attoseconds) / 1e15
        }
        switch tool.kind {
        case .http(let spec):
            let request = try HTTPToolRequest.build(
                tool: tool, spec: spec, args: values, secrets: config.secrets, idempotencyKey: idempotencyKey
            )
            let response = try await HTTPToolTransport.perform(request, timeoutMs: tool.timeoutMs, maxBytes: tool.maxResponseBytes)
            var headers: [String: JSONValue] = [:]
            for name in spec.responseHeaders {
                if let v = response.headers[name] { headers[name] = .string(v) }
            }
            let result: JSONValue = .object([
                "status": .number(response.status),
                "headers": .object(headers),
                "body": Self.decodeBody(response.body, contentType: response.headers["content-type"], truncated: response.truncated),
                "body_truncated": .bool(response.truncated),
            ])
            let version = response.headers["etag"] ?? response.headers["last-modified"]
            return ToolOutcome(result: result, resourceVersion: version, target: request.target, durationMs: elapsedMs())

        case .command(let spec):
            let (argv, env) = try Self.expand(spec, values, secrets: config.secrets, arguments: Array(tool.args.values))
            let target = Self.render(argv)
            let outcome = await CommandToolProcess.run(
                argv: argv, environment: env, workingDirectory: spec.workingDirectory,
                timeoutMs: tool.timeoutMs, maxBytes: tool.maxResponseBytes
            )
            switch outcome {
            case .success(let r):
                let result: JSONValue = .object([
                    // Killed by signal N: 128+N, the shell's (and `sealbox run`'s) convention.
                    "exit_code": .number(r.exitCode ?? (128 + (r.signal ?? 0))),
                    "signal": r.signal.map { .number($0) } ?? .null,
                    "stdout": .string(String(decoding: r.stdout, as: UTF8.self)),
                    "stderr": .string(String(decoding: r.stderr, as: UTF8.self)),
                    "stdout_truncated": .bool(r.stdoutTruncated),
                    "stderr_truncated": .bool(r.stderrTruncated),
                ])
                return ToolOutcome(result: result, resourceVersion: nil, target: target, durationMs: elapsedMs())
            case .failure(.timedOut):
                throw ToolError(.toolFailed, "\(target): timed out after \(DurationText.format(milliseconds: tool.timeoutMs)) (killed)", happened: nil)
            case .failure(.cancelled):
                throw ToolError(.toolFailed, "\(target): cancelled (killed)", happened: nil)
            case .failure(.spawn(let code)):
                throw ToolError(.toolFailed, "\(target): cannot start \(argv[0]): \(String(cString: strerror(code)))", happened: false)
            case .failure(.pipe(let code)):
                throw ToolError(.toolFailed, "\(target): cannot create pipes: \(String(cString: strerror(code)))", happened: false)
            }
        }
    }

    /// The target string without running (for the intent record). Validates the arguments
    /// (and, for http, the host allowlist) like `run`.
    public func describeTarget(_ tool: ToolDefinition, args: [String: JSONValue]) throws(ToolError) -> String {
        let values = try validate(tool, args: args)
        switch tool.kind {
        case .http(let spec):
            return try HTTPToolRequest.build(tool: tool, spec: spec, args: values, secrets: config.secrets, idempotencyKey: nil).target
        case .command(let spec):
            return Self.render(try Self.expand(spec, values, secrets: config.secrets, arguments: Array(tool.args.values)).argv)
        }
    }

    // MARK: - helpers

    static func decodeBody(_ data: Data, contentType: String?, truncated: Bool) -> JSONValue {
        if data.isEmpty { return .string("") }
        if !truncated, let type = contentType?.lowercased().split(separator: ";").first?.trimmingCharacters(in: .whitespaces),
           type == "application/json" || type.hasSuffix("+json"),
           let value = try? JSONReader.parse([UInt8](data)) {
            return value
        }
        return .string(String(decoding: data, as: UTF8.self))
    }

    static func expand(_ spec: CommandToolSpec, _ args: [String: JSONValue], secrets: SecretStore,
                       arguments declared: [ArgumentSpec] = []) throws(ToolError) -> (argv: [String], env: [String]) {
        func fill(_ t: ToolTemplate, secretsOK: Bool, what: String) throws(ToolError) -> String {
            var s = ""
            for part in t.parts {
                switch part {
                case .literal(let l): s += l
                case .argument(let name):
                    guard let v = args[name] else { throw .badRequest("missing required argument \"\(name)\"") }
                    let text = ToolArgumentValidator.text(v)
                    guard !ConfigNames.hasNUL(text) else { throw .badRequest("argument \"\(name)\" contains NUL") }
                    s += text
                case .secret(let name):
                    guard secretsOK, let v = secrets.reveal(name) else {
                        throw ToolError(.toolFailed, "secret \"\(name)\" is not available for \(what)", happened: false)
                    }
                    s += v
                }
            }
            return s
        }
        var argv: [String] = []
        // Options end before the first element holding a positional argument (`--`, unless
        // the config already has one there); an argument that starts an element before that
        // may not look like an option.
        let positional = Set(declared.filter(\.positional).map(\.name))
        var optionsEnded = false
        for (i, t) in spec.argv.enumerated() {
            let names = t.argumentNames
            if i > 0, !optionsEnded, names.contains(where: positional.contains) {
                if argv.last != "--" { argv.append("--") }
                optionsEnded = true
            }
            if i > 0, argv.last == "--" { optionsEnded = true }
            let text = try fill(t, secretsOK: false, what: "argv[\(i)]")
            if i > 0, !optionsEnded, case .argument(let name)? = t.parts.first, text.hasPrefix("-") {
                throw .badRequest("argument \"\(name)\" starts with \"-\", which \(spec.argv[0].literalText ?? "the program") would read as an option; a value for it may not (an operator declares an operand `positional: true`, and the broker then ends the options with --)")
            }
            argv.append(text)
        }
        var env: [String] = []
        if !spec.env.contains(where: { $0.name == "PATH" }) { env.append("PATH=\(CommandToolSpec.defaultPath)") }
        for e in spec.env { env.append("\(e.name)=\(try fill(e.value, secretsOK: true, what: "env \(e.name)"))") }
        return (argv, env)
    }

    /// argv for humans: elements joined by spaces, shell-quoted where they need it.
    static func render(_ argv: [String]) -> String {
        argv.map { arg -> String in
            let plain = !arg.isEmpty && arg.unicodeScalars.allSatisfy {
                ($0 >= "a" && $0 <= "z") || ($0 >= "A" && $0 <= "Z") || ($0 >= "0" && $0 <= "9") || "@%_+=:,./-".unicodeScalars.contains($0)
            }
            return plain ? arg : "'" + arg.replacingOccurrences(of: "'", with: "'\\''") + "'"
        }.joined(separator: " ")
    }
}
