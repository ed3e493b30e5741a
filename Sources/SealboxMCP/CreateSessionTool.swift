import Foundation
import SealboxJail
import SealboxBase
import SealboxLedger
import SealboxServer

/// `create_session`: a new resumable session in the state directory's checkpoint store, as
/// `sealbox session new` makes one. Its id goes into run_code's `session` with a `step`.
struct CreateSessionTool: MCPTool {
    let backend: any MCPBackend

    var definition: MCPToolDefinition {
        MCPToolDefinition(
            name: "create_session",
            title: "Start a resumable session",
            description: """
                Creates a session: a sequence of steps (run_code with session + step). Each step sees the session's /work as the last sealed \
                step left it (a workspace capped at workspace_limit_bytes, default 64 MiB), and running a sealed step again returns its \
                sealed result without executing anything, so an agent that crashed can re-run its plan from the top.
                """,
            inputSchema: MCPToolDefinition.schema("""
                {"type": "object", "additionalProperties": false,
                 "properties": {"workspace_limit_bytes": {"type": "integer", "minimum": \(1 << 20), "maximum": \(SessionInfo.maximumWorkspaceLimit),
                  "default": \(SessionInfo.defaultWorkspaceLimit)}}}
                """),
            outputSchema: MCPToolDefinition.schema("""
                {"type": "object", "required": ["session", "workspace_limit_bytes", "created_at_ms"],
                 "properties": {"session": {"type": "string"}, "workspace_limit_bytes": {"type": "integer"}, "created_at_ms": {"type": "integer"}}}
                """),
            annotations: ["readOnlyHint": false, "destructiveHint": false, "idempotentHint": false, "openWorldHint": false])
    }

    func call(_ arguments: MCPArguments, context: MCPCallContext) async -> MCPToolResult {
        let limit: UInt64
        do throws(MCPToolInputError) {
            try arguments.checkNames(["workspace_limit_bytes"])
            limit = UInt64(try arguments.integer("workspace_limit_bytes", in: (1 << 20)...Int(SessionInfo.maximumWorkspaceLimit))
                           ?? Int(SessionInfo.defaultWorkspaceLimit))
        } catch {
            return .failure(error)
        }
        let info: SessionInfo
        switch backend.createSession(workspaceLimitBytes: limit) {
        case .success(let created): info = created
        case .failure(let failure): return .failure(failure)
        }
        struct Created: Encodable {
            var session: String
            var workspaceLimitBytes: UInt64
            var createdAtMs: Int64
            enum CodingKeys: String, CodingKey {
                case session
                case workspaceLimitBytes = "workspace_limit_bytes"
                case createdAtMs = "created_at_ms"
            }
        }
        do {
            return .success(
                "session \(info.id) created (workspace limit \(ByteSize.format(info.workspaceLimitBytes))); pass it as `session` to run_code with a `step` key",
                structured: try JSONValue(encoding: Created(session: info.id, workspaceLimitBytes: info.workspaceLimitBytes, createdAtMs: info.createdAtMs)))
        } catch {
            return .failure("internal: cannot encode the session: \(error)")
        }
    }
}
