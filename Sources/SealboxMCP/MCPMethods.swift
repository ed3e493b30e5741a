import Foundation
import SealboxBase
import SealboxLedger
import SealboxServer

/// The MCP methods sealbox answers itself, registered as the SDK `Server`'s handlers
/// (MCPConnection): initialize and tools. Their params are the gate's strict reading of the
/// request, so their checks and error texts are sealbox's own; ping is the SDK's.
struct MCPMethods: Sendable {
    /// Newest first. A client asking for one of these gets it; any other gets the newest.
    static let protocolVersions = ["2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"]

    let tools: [any MCPTool]
    let instructions: String

    /// sealbox's tools over `backend` (runs, sessions, effects, sandboxes), and what the model is told about them.
    static func sealbox(backend: any MCPBackend) -> MCPMethods {
        MCPMethods(
            tools: [
                RunCodeTool(backend: backend),
                CreateSessionTool(backend: backend),
                SessionFactsTool(backend: backend),
                ListEffectsTool(backend: backend),
            ] + SandboxTools.all(backend: backend),
            instructions: """
                sealbox runs code in ephemeral, isolated Linux jails. Use run_code to execute python, node, bash or sh. \
                For a multi-step task, call create_session once and give every run_code its session and a step key: \
                /work carries over between steps, and a step already sealed is answered from its checkpoint instead of running again, \
                so after a crash re-run the plan from the top. session_facts tells what a session has already done and what is unresolved; \
                list_effects lists the tool calls recorded in the effect log. \
                For interactive work (install nothing, explore files, run several commands against the same state), create_sandbox makes a \
                jail that stays: sandbox_exec runs commands in it, sandbox_write_file, sandbox_read_file and sandbox_list_files move files, \
                kill_sandbox ends it.
                """)
    }

    /// The methods above, for MCPConnection to register.
    static let names = ["initialize", "tools/list", "tools/call"]

    func handle(method: String, params: JSONValue?, context: MCPCallContext) async -> Result<JSONValue, JSONRPCError> {
        switch method {
        case "initialize": return initialize(params)
        case "tools/list": return listTools(params)
        case "tools/call": return await callTool(params, context: context)
        default: return .failure(.methodNotFound(method))
        }
    }

    func initialize(_ params: JSONValue?) -> Result<JSONValue, JSONRPCError> {
        guard let fields = params?.objectValue else { return .failure(.invalidParams("initialize needs params {protocolVersion, capabilities, clientInfo}")) }
        guard case .string(let requested)? = fields["protocolVersion"] else {
            return .failure(.invalidParams("protocolVersion must be a string such as \"\(Self.protocolVersions[0])\""))
        }
        let version = Self.protocolVersions.contains(requested) ? requested : Self.protocolVersions[0]
        return .success(.object([
            "protocolVersion": .string(version),
            "capabilities": .object(["tools": .object(["listChanged": .bool(false)])]),
            "serverInfo": .object(["name": .string("sealbox"), "title": .string("sealbox: sandboxed code execution"), "version": .string(SealboxVersion.current)]),
            "instructions": .string(instructions),
        ]))
    }

    func listTools(_ params: JSONValue?) -> Result<JSONValue, JSONRPCError> {
        switch params {
        case nil, .object?: break  // a cursor is ignored: every tool fits on one page
        default: return .failure(.invalidParams("tools/list takes an object"))
        }
        return .success(.object(["tools": .array(tools.map { $0.definition.json })]))
    }

    func callTool(_ params: JSONValue?, context: MCPCallContext) async -> Result<JSONValue, JSONRPCError> {
        guard let fields = params?.objectValue else { return .failure(.invalidParams("tools/call needs params {name, arguments}")) }
        guard case .string(let name)? = fields["name"] else { return .failure(.invalidParams("name must be the name of a tool")) }
        guard let tool = tools.first(where: { $0.definition.name == name }) else {
            return .failure(.invalidParams("unknown tool \"\(name)\" (tools: \(tools.map(\.definition.name).joined(separator: ", ")))"))
        }
        let arguments: [String: JSONValue]
        switch fields["arguments"] {
        case nil, .null?: arguments = [:]
        case .object?: arguments = fields["arguments"]?.objectValue ?? [:]
        default: return .failure(.invalidParams("arguments must be an object"))
        }
        let started = ContinuousClock.now
        let result = await tool.call(MCPArguments(arguments), context: context)
        let elapsed = ContinuousClock.now - started
        let firstLine = result.text.prefix { $0 != "\n" }.prefix(200)
        MCPLog.write("\(name) \(result.isError ? "failed" : "answered") in \(elapsed.components.seconds * 1000 + elapsed.components.attoseconds / 1_000_000_000_000_000) ms: \(firstLine)")
        return .success(result.json)
    }
}
