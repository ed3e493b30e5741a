import Foundation
import SealboxBase
import SealboxLedger
import SealboxServer

/// `list_effects`: tool calls from the effect log, oldest first, like `sealbox log list --json`.
struct ListEffectsTool: MCPTool {
    let backend: any MCPBackend

    static let maximumLimit = 1000

    var definition: MCPToolDefinition {
        let states = CallState.allCases.map { "\"\($0.rawValue)\"" }.joined(separator: ", ")
        return MCPToolDefinition(
            name: "list_effects",
            title: "List recorded tool calls",
            description: """
                Lists tool calls from the effect log, oldest first: each with its state (sealed, failed, in_doubt, awaiting_approval, ...), \
                tool, effect class, session, run and idempotency key. Filter by session, run, tool or state; page with after_seq \
                (the last intent_seq of the previous page).
                """,
            inputSchema: MCPToolDefinition.schema("""
                {"type": "object", "additionalProperties": false,
                 "properties": {
                  "session": {"type": "string"}, "run": {"type": "string", "description": "Run id (the id of a run_code result)."},
                  "tool": {"type": "string"}, "state": {"type": "string", "enum": [\(states)]},
                  "limit": {"type": "integer", "minimum": 1, "maximum": \(Self.maximumLimit), "default": 100},
                  "after_seq": {"type": "integer", "minimum": 0}}}
                """),
            outputSchema: MCPToolDefinition.schema("""
                {"type": "object", "required": ["calls"],
                 "properties": {"calls": {"type": "array", "items": {"type": "object",
                  "required": ["intent_seq", "state", "session_id", "run_id", "tool", "effect_class", "idempotency_key"],
                  "properties": {"intent_seq": {"type": "integer"}, "completion_seq": {"type": "integer"}, "state": {"type": "string"},
                   "session_id": {"type": "string"}, "run_id": {"type": "string"}, "tool": {"type": "string"}, "effect_class": {"type": "string"},
                   "idempotency_key": {"type": "string"}, "approval": {"type": "string"},
                   "created_at_ms": {"type": "integer"}, "updated_at_ms": {"type": "integer"}}}}}}
                """),
            annotations: ["readOnlyHint": true, "openWorldHint": false])
    }

    func call(_ arguments: MCPArguments, context: MCPCallContext) async -> MCPToolResult {
        let filter: ListFilter
        do throws(MCPToolInputError) {
            filter = try makeFilter(arguments)
        } catch {
            return .failure(error)
        }
        let calls: [CallSummary]
        switch backend.effects(filter) {
        case .success(let found): calls = found
        case .failure(let failure): return .failure(failure)
        }
        struct Listing: Encodable { var calls: [CallSummary] }
        do {
            return .success(Self.summary(calls), structured: try JSONValue(encoding: Listing(calls: calls)))
        } catch {
            return .failure("internal: cannot encode the calls: \(error)")
        }
    }

    func makeFilter(_ arguments: MCPArguments) throws(MCPToolInputError) -> ListFilter {
        try arguments.checkNames(["session", "run", "tool", "state", "limit", "after_seq"])
        var state: CallState?
        if let name = try arguments.string("state") {
            guard let parsed = CallState(rawValue: name) else {
                throw MCPToolInputError(field: "state", message: "unknown state \"\(name)\" (use \(CallState.allCases.map(\.rawValue).joined(separator: ", ")))")
            }
            state = parsed
        }
        return ListFilter(
            sessionID: try arguments.string("session", maxBytes: 64), runID: try arguments.string("run", maxBytes: 64),
            tool: try arguments.string("tool", maxBytes: 256), state: state,
            limit: try arguments.integer("limit", in: 1...Self.maximumLimit) ?? 100,
            afterSeq: try arguments.integer("after_seq", in: 0...Int(Int64.max >> 12)).map { Int64($0) })
    }

    static func summary(_ calls: [CallSummary]) -> String {
        guard !calls.isEmpty else { return "no recorded tool calls match" }
        return (["\(calls.count) call(s):"] + calls.map {
            "seq \($0.intentSeq) \($0.state.rawValue) \($0.tool) (\($0.effectClass.rawValue)) session \($0.sessionID) run \($0.runID) key \($0.idempotencyKey)"
        }).joined(separator: "\n")
    }
}
