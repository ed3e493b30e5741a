import Foundation
import SealboxJail
import SealboxProfiles
import SealboxBase
import SealboxLedger
import SealboxRuntime
import SealboxServer

/// `run_code`: one run through `RunPipeline`, the same code as `sealbox run` and the HTTP API
/// (step replay, session workspace, broker grant, seal). The arguments are the HTTP API's run
/// request (parsed by `RunRequest`, capped by the operator's maxima) plus session, step and tools.
/// Cancelling the call kills its jail; with a progress token, stdout comes as progress.
struct RunCodeTool: MCPTool {
    let backend: any MCPBackend

    static let fields = ["language", "code", "args", "files", "env", "stdin", "profile", "limits", "session", "step", "tools"]

    var definition: MCPToolDefinition {
        let max = backend.maxLimits
        let defaults = backend.defaultLimits
        let languages = SnippetLanguage.allCases.map { "\"\($0.rawValue)\"" }.joined(separator: ", ")
        let tools = backend.hasBroker
            ? "Tools the broker offers may be granted with `tools`: the code then calls them with `import sealbox; sealbox.call(\"tool\", {...})` (python) or `sealbox-call tool k=v` (shell); credentials never enter the jail, and every call is recorded in the effect log."
            : "This server has no broker (start it with --tools FILE or --broker SOCKET to grant tools)."
        return MCPToolDefinition(
            name: "run_code",
            title: "Run code in a sealbox jail",
            description: """
                Runs a snippet in a fresh, ephemeral Linux jail: no network, a read-only root, a writable /work (the current directory) and /tmp, \
                memory/process/time limits, a default-deny seccomp profile. Returns status (ok, exit_nonzero, timeout, memory_limit, ...), \
                exit_code, stdout and stderr. With `session` (from create_session) and `step`, the run is a resumable step: /work carries over \
                from step to step, and calling a sealed step again returns its sealed result (replayed: true) without executing anything. \
                \(tools)
                """,
            inputSchema: MCPToolDefinition.schema("""
                {"type": "object", "additionalProperties": false, "required": ["language", "code"],
                 "properties": {
                  "language": {"type": "string", "enum": [\(languages)], "description": "Interpreter: the code is written to /work/main.{py,js,sh}."},
                  "code": {"type": "string", "description": "The program text."},
                  "args": {"type": "array", "items": {"type": "string"}, "description": "Arguments for the program."},
                  "files": {"type": "array", "description": "Files written to /work before the run.",
                   "items": {"type": "object", "additionalProperties": false, "required": ["name", "content"],
                    "properties": {"name": {"type": "string"}, "content": {"type": "string"},
                     "encoding": {"type": "string", "enum": ["utf8", "base64"], "default": "utf8"}, "executable": {"type": "boolean"}}}},
                  "env": {"type": "object", "additionalProperties": {"type": "string"}, "description": "Environment variables for the program."},
                  "stdin": {"type": "string", "description": "Text fed to the program's standard input (default: empty)."},
                  "profile": {"type": "string", "description": "seccomp profile name (default: \\"default\\")."},
                  "limits": \(LimitSchema.request(defaults: defaults, maxima: max).jsonText),
                  "session": {"type": "string", "description": "Session id from create_session (with step), or any id grouping tool calls."},
                  "step": {"type": "string", "description": "Step key within the session: a sealed step is replayed, not run again."},
                  "tools": {"type": "array", "items": {"type": "string"}, "description": "Broker tools to grant to this run."}}}
                """),
            outputSchema: Self.outputSchema,
            annotations: ["readOnlyHint": false, "destructiveHint": backend.hasBroker, "idempotentHint": false, "openWorldHint": backend.hasBroker])
    }

    /// The `sealbox run --json` object.
    static let outputSchema = MCPToolDefinition.schema("""
        {"type": "object",
         "required": ["id", "status", "exit_code", "signal", "stdout", "stderr", "stdout_truncated", "stderr_truncated",
                      "stdout_bytes", "stderr_bytes", "wall_ms", "cpu_ms", "peak_memory_bytes", "violations", "limits", "profile", "cgroup"],
         "properties": {
          "id": {"type": "string"},
          "status": {"type": "string", "enum": ["ok", "exit_nonzero", "signaled", "timeout", "memory_limit", "pids_limit", "output_limit", "seccomp_violation", "spawn_failed", "cancelled"]},
          "exit_code": {"type": "integer"}, "signal": {"type": ["integer", "null"]},
          "stdout": {"type": "string"}, "stderr": {"type": "string"},
          "stdout_truncated": {"type": "boolean"}, "stderr_truncated": {"type": "boolean"},
          "stdout_bytes": {"type": "integer"}, "stderr_bytes": {"type": "integer"},
          "wall_ms": {"type": "number"}, "cpu_ms": {"type": "number"}, "peak_memory_bytes": {"type": "integer"},
          "violations": {"type": "array", "items": {"type": "object", "required": ["syscall", "count"],
           "properties": {"syscall": {"type": "string"}, "count": {"type": "integer"},
            "action": {"type": "string", "enum": ["errno", "kill"]}, "errno": {"type": "integer"},
            "abi": {"type": "string", "description": "A call through another ABI than the native one: x86 (i386, int $0x80) or x32."}}}},
          "limits": \(LimitSchema.echo.jsonText),
          "profile": {"type": "string"}, "cgroup": {"type": "string"}, "error": {"type": "string"},
          "replayed": {"type": "boolean"}, "checkpoint": {"type": "integer"},
          "workspace": {"type": "object", "properties": {"snapshot": {"type": "string"}, "files": {"type": "integer"},
           "bytes": {"type": "integer"}, "limit_bytes": {"type": "integer"}, "new_blobs": {"type": "integer"}, "full": {"type": "boolean"},
           "skipped": {"type": "array", "items": {"type": "string"}}}},
          "blocked": {"type": "array", "items": {"type": "object", "required": ["code", "message"],
           "properties": {"seq": {"type": "integer"}, "code": {"type": "string"}, "message": {"type": "string"}}}},
          "phases": {"type": "object", "properties": {"spawn_steps": {"type": "object", "additionalProperties": {"type": "number"}},
                                                      "warm": {"type": "boolean"}},
           "additionalProperties": {"type": "number"}}}}
        """)

    func call(_ arguments: MCPArguments, context: MCPCallContext) async -> MCPToolResult {
        let request: RunRequest
        do throws(MCPToolInputError) {
            request = try makeRequest(arguments)
        } catch {
            return .failure(error)
        }
        // The call's own jails: a cancellation closes the set, which kills a jail running now
        // and one that registers later (the cancellation came while it was being spawned).
        let live = backend.liveJails()
        context.onCancel { live.close(reason: "killed: the MCP client cancelled the call (notifications/cancelled)") }
        let progress = context.progress()
        let outcome = await backend.run(request, live: live, output: progress?.observer)
        await progress?.finish()
        switch outcome {
        case .failure(let failure):
            return .failure(failure)
        case .success(let result):
            do {
                return .success(Self.summary(result), structured: try JSONValue(encoding: result))
            } catch {
                return .failure("internal: cannot encode the result: \(error)")
            }
        }
    }

    /// The run request as `RunRequest` parses it for `POST /v1/runs` (session, step and tools
    /// included), less `command`: a model gets one way to run code, and one schema to learn.
    func makeRequest(_ arguments: MCPArguments) throws(MCPToolInputError) -> RunRequest {
        try arguments.checkNames(Self.fields)
        guard let language = try arguments.string("language") else {
            throw MCPToolInputError(field: "language", message: "language is required (\(SnippetLanguage.names))")
        }
        guard SnippetLanguage(rawValue: language) != nil else {
            throw MCPToolInputError(field: "language", message: "unknown language \"\(language)\" (use \(SnippetLanguage.names))")
        }
        guard arguments.values["code"] != nil else {
            throw MCPToolInputError(field: "code", message: "code is required: the program text to run")
        }
        if arguments.values["step"] != nil && arguments.values["session"] == nil {
            throw MCPToolInputError(field: "session", message: "a step needs a session: create one with create_session and pass its id as session")
        }
        let request: RunRequest
        do {
            request = try RunRequest.parse(JSONValue.object(arguments.values), defaultLimits: backend.defaultLimits, maxLimits: backend.maxLimits)
        } catch {
            throw MCPToolInputError(field: error.field ?? "arguments", message: error.message)
        }
        try backend.checkProfile(request.profile)
        if !request.tools.isEmpty, let refusal = backend.brokerRefusal {
            throw MCPToolInputError(field: "tools", message: refusal)
        }
        return request
    }

    /// A short text for the model: the verdict, then stdout and stderr.
    static func summary(_ result: RunResult) -> String {
        var lines = ["status: \(result.status.rawValue) (exit code \(result.exitCode))" + (result.replayed == true ? ", replayed from the sealed step (nothing ran)" : "")]
        if let error = result.error { lines.append("error: \(error)") }
        for call in result.blocked ?? [] {
            lines.append("blocked: a tool call waits on a decision (\(call.code)\(call.seq.map { ", seq \($0)" } ?? "")): \(call.message); the step is not sealed, run it again once decided")
        }
        if let workspace = result.workspace, workspace.full {
            lines.append("the session workspace is full (\(workspace.limitBytes) bytes): writes to /work failed with ENOSPC")
        }
        lines.append("stdout:" + (result.stdoutTruncated ? " (truncated, \(result.stdoutBytes) bytes in all)" : ""))
        lines.append(result.stdout)
        lines.append("stderr:" + (result.stderrTruncated ? " (truncated, \(result.stderrBytes) bytes in all)" : ""))
        lines.append(result.stderr)
        return lines.joined(separator: "\n")
    }
}
