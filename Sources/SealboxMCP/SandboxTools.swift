import Foundation
import SealboxBase
import SealboxJail
import SealboxRuntime
import SealboxServer

/// The sandbox tools: a jail that stays between calls (docs/sandboxes.md), through the same
/// `SandboxService` as `POST /v1/sandboxes`. Each names its sandbox by the id create_sandbox
/// gave; the caller sees its own sandboxes only (as over HTTP).
enum SandboxTools {
    static func all(backend: any MCPBackend) -> [any MCPTool] {
        [CreateSandboxTool(backend: backend), SandboxExecTool(backend: backend), SandboxRunCodeTool(backend: backend), SandboxWriteFileTool(backend: backend),
         SandboxReadFileTool(backend: backend), SandboxListFilesTool(backend: backend), KillSandboxTool(backend: backend)]
    }

    /// The sandbox named by the `sandbox` argument, as the backend's caller may see it.
    static func sandbox(_ arguments: MCPArguments, _ backend: any MCPBackend) throws(MCPToolFailure) -> Sandbox {
        let id: String
        do throws(MCPToolInputError) {
            guard let given = try arguments.string("sandbox", maxBytes: 64) else {
                throw MCPToolInputError(field: "sandbox", message: "sandbox is required (the id create_sandbox gave)")
            }
            id = given
        } catch {
            throw MCPToolFailure(error)
        }
        do throws(APIError) {
            return try backend.sandboxes.registry.sandbox(id, visibleTo: backend.sandboxIdentity)
        } catch {
            throw MCPToolFailure(error)
        }
    }

    /// A `LiveFiles` call, its failure as the model reads it.
    static func files<T>(_ body: () throws(LiveFileError) -> T) throws(MCPToolFailure) -> T {
        do {
            return try body()
        } catch {
            throw MCPToolFailure(APIError(error))
        }
    }

    static func encoded(_ value: some Encodable) -> JSONValue {
        (try? JSONValue(encoding: value)) ?? .null
    }

    static let sandboxProperty = #""sandbox": {"type": "string", "description": "The id create_sandbox gave."}"#

    /// A sandbox as GET /v1/sandboxes/{id} shows it.
    static let sandboxSchema = MCPToolDefinition.schema("""
        {"type": "object", "required": ["id", "state", "idle_timeout_ms", "expires_at_ms"],
         "properties": {"id": {"type": "string"}, "state": {"type": "string", "enum": ["running", "paused", "hibernated", "ended"]},
                        "session": {"type": "string"}, "tools": {"type": "array", "items": {"type": "string"}},
                        "idle_timeout_ms": {"type": "integer"}, "expires_at_ms": {"type": "integer"}, "end_reason": {"type": "string"}}}
        """)

    static let fileInfoProperties = #""name": {"type": "string"}, "type": {"type": "string"}, "size": {"type": "integer"}, "mode": {"type": "integer"}, "modified_ms": {"type": "integer"}"#

    static let fileInfoSchema = MCPToolDefinition.schema("""
        {"type": "object", "required": ["name", "type", "size", "mode", "modified_ms"], "properties": {\(fileInfoProperties)}}
        """)
}

struct CreateSandboxTool: MCPTool {
    let backend: any MCPBackend

    var definition: MCPToolDefinition {
        MCPToolDefinition(
            name: "create_sandbox", title: "Create a sandbox",
            description: """
                Creates a sandbox: an isolated Linux jail that stays between calls, with a writable /work. Put files in with \
                sandbox_write_file, run commands with sandbox_exec (state in /work and background processes carry over), read results \
                with sandbox_read_file and sandbox_list_files, and end it with kill_sandbox. It ends by itself after idle_timeout_ms with \
                nothing running (default 5 minutes). No network, no credentials inside. With `session` (from create_session), /work \
                starts where the session's last sealed step left it, and a command or chunk given a `step` key is sealed: sent again, \
                it answers from the seal without running. `tools` are broker tools granted to everything it runs.
                """,
            inputSchema: MCPToolDefinition.schema("""
                {"type": "object", "additionalProperties": false, "properties": {
                  "env": {"type": "object", "additionalProperties": {"type": "string"}, "description": "Every command's environment."},
                  "limits": {"type": "object", "description": "The jail's limits, as run_code's (memory_bytes, pids, disk_bytes, cpus; timeout_ms and output_bytes are each command's default)."},
                  "profile": {"type": "string"},
                  "idle_timeout_ms": {"type": "integer", "minimum": 1000},
                  "session": {"type": "string", "description": "A session id from create_session."},
                  "tools": {"type": "array", "items": {"type": "string"}, "description": "Broker tools granted for the sandbox's life."}}}
                """),
            outputSchema: SandboxTools.sandboxSchema,
            annotations: ["readOnlyHint": false, "destructiveHint": false, "idempotentHint": false, "openWorldHint": false])
    }

    func call(_ arguments: MCPArguments, context: MCPCallContext) async -> MCPToolResult {
        let wire: SandboxCreateRequest.Wire
        do {
            wire = try StrictJSONDecoder.decode(SandboxCreateRequest.Wire.self, from: .object(arguments.values))
        } catch {
            return .failure(MCPToolFailure(APIError(decoding: error)))
        }
        if wire.new_session != nil {
            return .failure(MCPToolFailure(MCPToolInputError(field: "new_session", message: "new_session is not an argument here: call create_session and pass its id as session")))
        }
        do throws(APIError) {
            let sandbox = try await backend.sandboxes.create(wire, for: backend.sandboxIdentity, caller: backend.sandboxCaller)
            return .success("sandbox \(sandbox.id) created; pass it as `sandbox` to sandbox_exec and the file tools",
                            structured: SandboxTools.encoded(sandbox.view(nowMs: SandboxRegistry.nowMs())))
        } catch {
            return .failure(MCPToolFailure(error))
        }
    }
}

struct SandboxExecTool: MCPTool {
    let backend: any MCPBackend

    var definition: MCPToolDefinition {
        MCPToolDefinition(
            name: "sandbox_exec", title: "Run a command in a sandbox",
            description: """
                Runs a command in a sandbox and returns its result (status, exit_code, stdout, stderr, wall and CPU time), as run_code \
                does. Give `shell` (a line for /bin/sh -c, e.g. "pip list | head" or "python3 main.py") or `command` (an argv). \
                Files and background processes from earlier commands are still there.
                """,
            inputSchema: MCPToolDefinition.schema("""
                {"type": "object", "additionalProperties": false, "required": ["sandbox"], "properties": {
                  \(SandboxTools.sandboxProperty),
                  "shell": {"type": "string"}, "command": {"type": "array", "items": {"type": "string"}, "minItems": 1},
                  "env": {"type": "object", "additionalProperties": {"type": "string"}}, "cwd": {"type": "string"},
                  "stdin": {"type": "string"}, "timeout_ms": {"type": "integer", "minimum": 1}, "output_bytes": {"type": "integer", "minimum": 0},
                  "step": {"type": "string", "description": "A step key of the sandbox's session: sealed once it ran; sent again, answered from the seal."}}}
                """),
            outputSchema: RunCodeTool.outputSchema,
            annotations: ["readOnlyHint": false, "destructiveHint": true, "idempotentHint": false, "openWorldHint": false])
    }

    func call(_ arguments: MCPArguments, context: MCPCallContext) async -> MCPToolResult {
        do throws(MCPToolFailure) {
            let sandbox = try SandboxTools.sandbox(arguments, backend)
            var rest = arguments.values
            rest["sandbox"] = nil
            let wire: SandboxCommandRequest.Wire
            do {
                wire = try StrictJSONDecoder.decode(SandboxCommandRequest.Wire.self, from: .object(rest))
            } catch {
                throw MCPToolFailure(APIError(decoding: error))
            }
            let service = backend.sandboxes
            do throws(APIError) {
                let command = try service.command(wire, in: sandbox)
                let release = try await service.admit(in: sandbox, caller: backend.sandboxCaller)
                defer { release() }
                let result = try await service.execute(command, step: wire.step, in: sandbox, output: nil).get()
                return .success(RunCodeTool.summary(result), structured: SandboxTools.encoded(result))
            } catch {
                throw MCPToolFailure(error)
            }
        } catch {
            return .failure(error)
        }
    }
}

struct SandboxWriteFileTool: MCPTool {
    let backend: any MCPBackend
    static let maximumBytes = 8 << 20

    var definition: MCPToolDefinition {
        MCPToolDefinition(
            name: "sandbox_write_file", title: "Write a file into a sandbox",
            description: "Creates or replaces a file of the sandbox's /work (its directories are made). `content` is text, or base64 with encoding \"base64\"; at most 8 MiB.",
            inputSchema: MCPToolDefinition.schema("""
                {"type": "object", "additionalProperties": false, "required": ["sandbox", "path", "content"], "properties": {
                  \(SandboxTools.sandboxProperty), "path": {"type": "string", "description": "Relative to /work."},
                  "content": {"type": "string"}, "encoding": {"type": "string", "enum": ["utf8", "base64"]},
                  "executable": {"type": "boolean"}}}
                """),
            outputSchema: SandboxTools.fileInfoSchema,
            annotations: ["readOnlyHint": false, "destructiveHint": true, "idempotentHint": true, "openWorldHint": false])
    }

    func call(_ arguments: MCPArguments, context: MCPCallContext) async -> MCPToolResult {
        do throws(MCPToolFailure) {
            let sandbox = try SandboxTools.sandbox(arguments, backend)
            let path: String, bytes: [UInt8], executable: Bool
            do throws(MCPToolInputError) {
                try arguments.checkNames(["sandbox", "path", "content", "encoding", "executable"])
                guard let given = try arguments.string("path", maxBytes: 4096) else { throw MCPToolInputError(field: "path", message: "path is required") }
                path = given
                guard let content = try arguments.string("content", maxBytes: Self.maximumBytes * 4 / 3 + 4) else {
                    throw MCPToolInputError(field: "content", message: "content is required")
                }
                switch try arguments.string("encoding", maxBytes: 16) ?? "utf8" {
                case "utf8": bytes = Array(content.utf8)
                case "base64":
                    guard let data = Data(base64Encoded: content) else { throw MCPToolInputError(field: "content", message: "content is not valid base64") }
                    bytes = [UInt8](data)
                default: throw MCPToolInputError(field: "encoding", message: "encoding must be utf8 or base64")
                }
                guard bytes.count <= Self.maximumBytes else { throw MCPToolInputError(field: "content", message: "content is more than 8 MiB") }
                switch arguments.values["executable"] {
                case nil, .null: executable = false
                case .bool(let flag): executable = flag
                default: throw MCPToolInputError(field: "executable", message: "executable must be true or false")
                }
            } catch {
                throw MCPToolFailure(error)
            }
            let done = sandbox.beginUse()
            defer { done() }
            let info = try SandboxTools.files { () throws(LiveFileError) in
                try sandbox.jail.files.write(path, bytes: bytes, mode: executable ? 0o755 : 0o644)
                return try sandbox.jail.files.stat(path)
            }
            return .success("wrote \(info.size) bytes to /work/\(path)", structured: SandboxTools.encoded(info))
        } catch {
            return .failure(error)
        }
    }
}

struct SandboxReadFileTool: MCPTool {
    let backend: any MCPBackend
    static let maximumBytes = 1 << 20

    var definition: MCPToolDefinition {
        MCPToolDefinition(
            name: "sandbox_read_file", title: "Read a file of a sandbox",
            description: "Reads a file of the sandbox's /work: its text, or base64 when it is not UTF-8. At most max_bytes (default and most 1 MiB); `truncated` says when there was more.",
            inputSchema: MCPToolDefinition.schema("""
                {"type": "object", "additionalProperties": false, "required": ["sandbox", "path"], "properties": {
                  \(SandboxTools.sandboxProperty), "path": {"type": "string", "description": "Relative to /work."},
                  "max_bytes": {"type": "integer", "minimum": 1, "maximum": \(Self.maximumBytes)}}}
                """),
            outputSchema: MCPToolDefinition.schema("""
                {"type": "object", "required": ["path", "size", "truncated", "content", "encoding"],
                 "properties": {"path": {"type": "string"}, "size": {"type": "integer"}, "truncated": {"type": "boolean"},
                                "content": {"type": "string"}, "encoding": {"type": "string", "enum": ["utf8", "base64"]}}}
                """),
            annotations: ["readOnlyHint": true, "destructiveHint": false, "idempotentHint": true, "openWorldHint": false])
    }

    func call(_ arguments: MCPArguments, context: MCPCallContext) async -> MCPToolResult {
        do throws(MCPToolFailure) {
            let sandbox = try SandboxTools.sandbox(arguments, backend)
            let path: String, limit: Int
            do throws(MCPToolInputError) {
                try arguments.checkNames(["sandbox", "path", "max_bytes"])
                guard let given = try arguments.string("path", maxBytes: 4096) else { throw MCPToolInputError(field: "path", message: "path is required") }
                path = given
                limit = try arguments.integer("max_bytes", in: 1...Self.maximumBytes) ?? Self.maximumBytes
            } catch {
                throw MCPToolFailure(error)
            }
            let (fd, size) = try SandboxTools.files { () throws(LiveFileError) in try sandbox.jail.files.openForReading(path) }
            defer { close(fd) }
            var bytes = [UInt8](repeating: 0, count: Int(min(UInt64(limit), size)))
            var filled = 0
            while filled < bytes.count {
                let n = bytes[filled...].withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { break }
                filled += n
            }
            bytes.removeLast(bytes.count - filled)
            struct Read: Encodable {
                var path: String
                var size: UInt64
                var truncated: Bool
                var content: String
                var encoding: String
            }
            let text = String(validating: bytes, as: UTF8.self)
            let read = Read(path: path, size: size, truncated: UInt64(filled) < size, content: text ?? Data(bytes).base64EncodedString(),
                            encoding: text == nil ? "base64" : "utf8")
            return .success(text.map { "/work/\(path) (\(size) bytes\(read.truncated ? ", first \(filled) shown" : "")):\n" + $0 }
                            ?? "/work/\(path) is \(size) bytes of binary data (base64 in the structured result)", structured: SandboxTools.encoded(read))
        } catch {
            return .failure(error)
        }
    }
}

struct SandboxListFilesTool: MCPTool {
    let backend: any MCPBackend

    var definition: MCPToolDefinition {
        MCPToolDefinition(
            name: "sandbox_list_files", title: "List a directory of a sandbox",
            description: "Lists a directory of the sandbox's /work (name, type, size, mode, modified_ms), in byte order of the names, at most `limit` (default 200); pass `next` back as `after` for more.",
            inputSchema: MCPToolDefinition.schema("""
                {"type": "object", "additionalProperties": false, "required": ["sandbox"], "properties": {
                  \(SandboxTools.sandboxProperty), "dir": {"type": "string", "description": "Relative to /work; empty or absent for /work."},
                  "after": {"type": "string"}, "limit": {"type": "integer", "minimum": 1, "maximum": \(LiveFiles.maximumPageSize)}}}
                """),
            outputSchema: MCPToolDefinition.schema("""
                {"type": "object", "required": ["entries", "skipped"],
                 "properties": {"entries": {"type": "array", "items": {"type": "object", "properties": {\(SandboxTools.fileInfoProperties)}}},
                                "next": {"type": "string"}, "skipped": {"type": "integer"}}}
                """),
            annotations: ["readOnlyHint": true, "destructiveHint": false, "idempotentHint": true, "openWorldHint": false])
    }

    func call(_ arguments: MCPArguments, context: MCPCallContext) async -> MCPToolResult {
        do throws(MCPToolFailure) {
            let sandbox = try SandboxTools.sandbox(arguments, backend)
            let dir: String, after: String?, limit: Int
            do throws(MCPToolInputError) {
                try arguments.checkNames(["sandbox", "dir", "after", "limit"])
                dir = try arguments.string("dir", maxBytes: 4096) ?? ""
                after = try arguments.string("after", maxBytes: 4096)
                limit = try arguments.integer("limit", in: 1...LiveFiles.maximumPageSize) ?? 200
            } catch {
                throw MCPToolFailure(error)
            }
            let page = try SandboxTools.files { () throws(LiveFileError) in try sandbox.jail.files.list(dir, after: after, limit: limit) }
            struct Page: Encodable {
                var entries: [LiveFileInfo]
                var next: String?
                var skipped: Int
            }
            let lines = page.entries.map { "\($0.type == "directory" ? "d" : $0.type == "symlink" ? "l" : "-") \($0.size)\t\($0.name)" }
            return .success((lines.isEmpty ? "(empty)" : lines.joined(separator: "\n")) + (page.next.map { "\n(more: pass after=\"\($0)\")" } ?? ""),
                            structured: SandboxTools.encoded(Page(entries: page.entries, next: page.next, skipped: page.skipped)))
        } catch {
            return .failure(error)
        }
    }
}

struct KillSandboxTool: MCPTool {
    let backend: any MCPBackend

    var definition: MCPToolDefinition {
        MCPToolDefinition(
            name: "kill_sandbox", title: "End a sandbox",
            description: "Ends a sandbox: everything running in it is killed and its /work is gone.",
            inputSchema: MCPToolDefinition.schema("""
                {"type": "object", "additionalProperties": false, "required": ["sandbox"], "properties": {\(SandboxTools.sandboxProperty)}}
                """),
            outputSchema: SandboxTools.sandboxSchema,
            annotations: ["readOnlyHint": false, "destructiveHint": true, "idempotentHint": true, "openWorldHint": false])
    }

    func call(_ arguments: MCPArguments, context: MCPCallContext) async -> MCPToolResult {
        do throws(MCPToolFailure) {
            do throws(MCPToolInputError) {
                try arguments.checkNames(["sandbox"])
            } catch {
                throw MCPToolFailure(error)
            }
            let sandbox = try SandboxTools.sandbox(arguments, backend)
            backend.sandboxes.registry.end(sandbox, reason: "ended by kill_sandbox")
            return .success("sandbox \(sandbox.id) ended", structured: SandboxTools.encoded(sandbox.view(nowMs: SandboxRegistry.nowMs())))
        } catch {
            return .failure(error)
        }
    }
}

struct SandboxRunCodeTool: MCPTool {
    let backend: any MCPBackend

    var definition: MCPToolDefinition {
        MCPToolDefinition(
            name: "sandbox_run_code", title: "Run Python in a sandbox's live interpreter",
            description: """
                Runs a chunk of code in a sandbox's code context: an interpreter kept between calls (python, node, or bash as a \
                persistent shell), so variables, imports and the working directory carry over (load a CSV in one call, describe \
                it in the next). Answers the chunk's stdout, stderr, the value of its last expression, the traceback when it \
                raised (a shell: its exit_code), and a PNG of each matplotlib figure left open. Without `context`, the sandbox's \
                first context of `language` (default python) is used, made on first use. A chunk past timeout_ms is interrupted \
                (KeyboardInterrupt, SIGINT) and the context lives on.
                """,
            inputSchema: MCPToolDefinition.schema("""
                {"type": "object", "additionalProperties": false, "required": ["sandbox", "code"], "properties": {
                  \(SandboxTools.sandboxProperty), "code": {"type": "string"},
                  "context": {"type": "string", "description": "A context id; absent: the sandbox's first one of `language`."},
                  "language": {"type": "string", "enum": ["python", "node", "bash"], "description": "Without `context`: which interpreter (default python)."},
                  "step": {"type": "string", "description": "A step key of the sandbox's session: sealed once it ran; sent again, answered from the seal."},
                  "timeout_ms": {"type": "integer", "minimum": 1}}}
                """),
            outputSchema: MCPToolDefinition.schema("""
                {"type": "object", "required": ["stdout", "stderr", "display", "duration_ms", "timed_out"],
                 "properties": {"value": {"type": "string"}, "stdout": {"type": "string"}, "stderr": {"type": "string"},
                                "error": {"type": "object"}, "display": {"type": "array"}, "exit_code": {"type": "integer"},
                                "duration_ms": {"type": "number"},
                                "timed_out": {"type": "boolean"}, "context": {"type": "string"}, "replayed": {"type": "boolean"},
                                "checkpoint": {"type": "integer"}, "unsealed": {"type": "string"}}}
                """),
            annotations: ["readOnlyHint": false, "destructiveHint": true, "idempotentHint": false, "openWorldHint": false])
    }

    func call(_ arguments: MCPArguments, context: MCPCallContext) async -> MCPToolResult {
        do throws(MCPToolFailure) {
            let sandbox = try SandboxTools.sandbox(arguments, backend)
            let code: String, contextID: String?, language: String, timeout: Int?, step: String?
            do throws(MCPToolInputError) {
                try arguments.checkNames(["sandbox", "code", "context", "language", "timeout_ms", "step"])
                step = try arguments.string("step", maxBytes: 256)
                guard let given = try arguments.string("code", maxBytes: SandboxChunkRequest.maximumCodeBytes) else {
                    throw MCPToolInputError(field: "code", message: "code is required")
                }
                code = given
                contextID = try arguments.string("context", maxBytes: 64)
                language = try arguments.string("language", maxBytes: 16) ?? "python"
                guard LiveContext.languages.contains(language) else {
                    throw MCPToolInputError(field: "language", message: "language must be one of \(LiveContext.languages.joined(separator: ", "))")
                }
                timeout = try arguments.integer("timeout_ms", in: 1...Int(Int32.max))
            } catch {
                throw MCPToolFailure(error)
            }
            let service = backend.sandboxes
            do throws(APIError) {
                let live: LiveContext
                if let contextID {
                    live = try sandbox.context(contextID)
                } else if let first = sandbox.contexts.first(where: { $0.language == language && $0.endReason == nil }) {
                    live = first
                } else {
                    var start = SandboxContextRequest.Wire()
                    start.language = language
                    live = try await service.startContext(start, in: sandbox)
                }
                var wire = SandboxChunkRequest.Wire(code: code)
                wire.timeout_ms = timeout.map(Int64.init)
                wire.step = step
                let result = try await service.runChunk(wire, in: live, of: sandbox, caller: backend.sandboxCaller)
                var structured = SandboxTools.encoded(result)
                if case .object(var members) = structured {
                    members.append((key: "context", value: .string(live.id)))
                    structured = .object(members)
                }
                var text: [String] = []
                if !result.stdout.isEmpty { text.append(result.stdout) }
                if !result.stderr.isEmpty { text.append("stderr:\n" + result.stderr) }
                if let value = result.value { text.append(value) }
                if let error = result.error { text.append(error.traceback) }
                if let exitCode = result.exitCode, exitCode != 0 { text.append("(exit code \(exitCode))") }
                if !result.display.isEmpty { text.append("(\(result.display.count) figure(s) as PNG in the structured result)") }
                if result.timedOut { text.append("(interrupted: past its timeout)") }
                return .success(text.isEmpty ? "(no output)" : text.joined(separator: "\n"), structured: structured)
            } catch {
                throw MCPToolFailure(error)
            }
        } catch {
            return .failure(error)
        }
    }
}
