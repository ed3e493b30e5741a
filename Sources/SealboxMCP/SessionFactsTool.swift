import Foundation
import SealboxBase
import SealboxLedger
import SealboxServer

/// `session_facts`: where a session stands, the same object as `sealbox session facts ID --json`
/// (what is true, what authority remains, what is unsafe), read from the state directory's
/// checkpoint store and effect log.
struct SessionFactsTool: MCPTool {
    let backend: any MCPBackend

    var definition: MCPToolDefinition {
        MCPToolDefinition(
            name: "session_facts",
            title: "Where a session stands",
            description: """
                Answers the recovery questions for a session in one call: what is already true (sealed steps and sealed tool effects, in order), \
                what authority remains (live tokens, calls awaiting approval) and what is unsafe or unresolved (in-doubt effects, \
                interrupted calls, steps that started and never sealed), each with what to do about it. `clean` is true when nothing is unsafe.
                """,
            inputSchema: MCPToolDefinition.schema("""
                {"type": "object", "additionalProperties": false, "required": ["session"],
                 "properties": {"session": {"type": "string", "description": "Session id (from create_session)."}}}
                """),
            outputSchema: MCPToolDefinition.schema("""
                {"type": "object", "required": ["session", "family", "true", "authority", "unsafe", "clean", "generated_at_ms"],
                 "properties": {
                  "session": {"type": "string"}, "forked_from": {"type": "string"}, "forked_at_step": {"type": "string"},
                  "family": {"type": "array", "items": {"type": "string"}},
                  "true": {"type": "object", "required": ["steps", "effects"],
                   "properties": {"steps": {"type": "array", "items": {"type": "object"}}, "effects": {"type": "array", "items": {"type": "object"}}}},
                  "authority": {"type": "object", "required": ["tokens", "approvals"],
                   "properties": {"tokens": {"type": "array"}, "approvals": {"type": "array"}, "tokens_of_gone_brokers": {"type": "array"}}},
                  "unsafe": {"type": "object", "required": ["in_doubt", "interrupted", "in_flight", "unsealed_steps"],
                   "properties": {"in_doubt": {"type": "array"}, "interrupted": {"type": "array"}, "in_flight": {"type": "array"}, "unsealed_steps": {"type": "array"}}},
                  "clean": {"type": "boolean"}, "generated_at_ms": {"type": "integer"}}}
                """),
            annotations: ["readOnlyHint": true, "openWorldHint": false])
    }

    func call(_ arguments: MCPArguments, context: MCPCallContext) async -> MCPToolResult {
        let session: String
        do throws(MCPToolInputError) {
            try arguments.checkNames(["session"])
            guard let given = try arguments.string("session", maxBytes: 64), !given.isEmpty else {
                throw MCPToolInputError(field: "session", message: "session is required (an id from create_session)")
            }
            session = given
        } catch {
            return .failure(error)
        }
        let facts: SessionFacts
        switch backend.facts(session) {
        case .success(let found): facts = found
        case .failure(let failure): return .failure(failure)
        }
        do {
            return .success(Self.summary(facts), structured: try JSONValue(encoding: facts))
        } catch {
            return .failure("internal: cannot encode the facts: \(error)")
        }
    }

    static func summary(_ f: SessionFacts) -> String {
        var lines = ["session \(f.session): \(f.whatIsTrue.steps.count) step(s) sealed, \(f.whatIsTrue.effects.count) effect(s) sealed; "
                     + (f.clean ? "nothing unsafe or unresolved" : "something is unsafe or unresolved")]
        for s in f.whatIsTrue.steps { lines.append("step \"\(s.step)\" sealed: \(s.status) (exit \(s.exitCode.map(String.init) ?? "?"))") }
        for e in f.whatIsTrue.effects { lines.append("effect \(e.seq): \(e.tool) (\(e.effectClass.rawValue)) \(e.state.rawValue)") }
        for t in f.authority.tokens { lines.append("live token \(t.tokenID): tools \(t.tools.joined(separator: ", "))") }
        for a in f.authority.approvals { lines.append("awaiting approval: effect \(a.seq) \(a.tool) -> \(a.action ?? "")") }
        for e in f.unsafe.inDoubt + f.unsafe.interrupted + f.unsafe.inFlight { lines.append("unsafe: effect \(e.seq) \(e.tool) \(e.state.rawValue) -> \(e.action ?? "")") }
        for s in f.unsafe.unsealedSteps { lines.append("unsealed step \"\(s.step)\" -> \(s.action)") }
        return lines.joined(separator: "\n")
    }
}
