import Foundation
import Logging
import MCP
import SealboxBase
import SealboxLedger
import SealboxServer

/// One MCP connection (a stdio session, or one Streamable HTTP session): the SDK's `Server`,
/// speaking through a transport that passes every message through `gate`, with sealbox's
/// methods as its handlers.
enum MCPConnection {
    /// Nothing of the SDK's logging reaches stdout (the protocol's) or stderr (sealbox's own
    /// lines): sealbox logs what it decides itself.
    static let quietLogger = Logger(label: "sealbox.mcp.sdk", factory: { _ in SwiftLogNoOpLogHandler() })

    static func start(methods: MCPMethods, gate: MCPGate, transport: any Transport) async throws -> Server {
        let server = Server(
            name: "sealbox", version: SealboxVersion.current, title: "sealbox: sandboxed code execution",
            instructions: methods.instructions, capabilities: .init(tools: .init(listChanged: false)))
        try await server.start(transport: transport)
        // After start, which registers the SDK's own initialize: sealbox's replaces it (a second
        // initialize renegotiates the version, as sealbox always allowed; the SDK refuses it).
        // Transports hand the SDK nothing before `start` returns and these are registered.
        // Progress goes straight to the transport: a handler holding the server would keep it
        // (and its transport) alive through the server's own table of handlers.
        let notify: @Sendable (ProgressNotification.Parameters) async -> Void = { parameters in
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
            guard let data = try? encoder.encode(ProgressNotification.message(parameters)) else { return }
            try? await transport.send(data)
        }
        await register(MCPInitializeMethod.self, server, methods, gate, notify)
        await register(MCPListToolsMethod.self, server, methods, gate, notify)
        await register(MCPCallToolMethod.self, server, methods, gate, notify)
        return server
    }

    private static func register<M: Method>(_ method: M.Type, _ server: Server, _ methods: MCPMethods, _ gate: MCPGate,
                                            _ notify: @escaping @Sendable (ProgressNotification.Parameters) async -> Void)
        async where M.Parameters == Value, M.Result == Value {
        await server.withMethodHandler(M.self) { params in
            guard let token = MCPGate.token(params), let call = gate.calls.call(token) else {
                throw MCPError.internalError("the request did not come through sealbox's reader")
            }
            let progressToken: ProgressToken? = Self.progressToken(call.params?.objectValue?["_meta"]?.objectValue?["progressToken"])
            let context = MCPCallContext(token: token, calls: gate.calls, progressToken: progressToken, notify: notify)
            let outcome = await methods.handle(method: call.method, params: call.params, context: context)
            if gate.calls.isCancelled(token) {
                // MCP: no response to a cancelled request; the SDK sends none for this error.
                gate.calls.abandon(token)
                MCPLog.write("request \(call.id) (\(call.method)) was cancelled by the client: its answer is dropped")
                throw CancellationError()
            }
            switch outcome {
            case .success(let result): return Value(sealbox: result)
            case .failure(let error): throw error.mcpError
            }
        }
    }
}

extension MCPConnection {
    /// A request's `_meta.progressToken`: a string, or an integer (exactly as written when it
    /// fits, or a whole number such as `1e3` below 9.0e15); anything else is no token.
    static func progressToken(_ value: JSONValue?) -> ProgressToken? {
        switch value {
        case .string(let text)?: return .string(text)
        case .number(let literal)?:
            if let exact = Int(literal) { return .integer(exact) }
            guard let value, value.isWholeNumber, let double = value.doubleValue, abs(double) < 9.0e15 else { return nil }
            return .integer(Int(double))
        default: return nil
        }
    }
}

/// The methods sealbox answers itself, with the params left as the SDK read them: the handler
/// only takes the gate's token from them, and the request from `MCPCalls`.
enum MCPInitializeMethod: Method {
    typealias Parameters = Value
    typealias Result = Value
    static let name = "initialize"
}

enum MCPListToolsMethod: Method {
    typealias Parameters = Value
    typealias Result = Value
    static let name = "tools/list"
}

enum MCPCallToolMethod: Method {
    typealias Parameters = Value
    typealias Result = Value
    static let name = "tools/call"
}
