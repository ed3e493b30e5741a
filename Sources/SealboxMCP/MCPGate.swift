import Foundation
import MCP
import SealboxBase
import SealboxLedger

/// What a transport does with one message from the client.
enum MCPInbound {
    /// Hand these bytes to the SDK: sealbox's own encoding of what its strict reader read.
    /// `request`: the id of a request, whose answer will follow (MCPCalls tracks it until
    /// then); nil for a notification.
    case forward(Data, request: JSONRPCID?)
    /// Answer the client with these bytes (a JSON-RPC error) and hand the SDK nothing.
    case answer(Data)
    /// Nothing to do (a response to a request this server never sent).
    case ignore
}

/// Every message between a client and the SDK's `Server` passes here, whatever the transport
/// (stdio lines, Streamable HTTP bodies):
///   - in: read once by the strict reader (duplicate member names refused, the error naming
///     where); a message that is not a well-formed JSON-RPC request or notification is answered
///     here with the error sealbox has always given, and never reaches the SDK. What the SDK
///     gets is re-encoded from that one reading, so it cannot read anything else into it, and
///     each request carries a token (`_meta["sealbox.dev/call"]`) under which its handler finds
///     the request in `MCPCalls`. A `notifications/cancelled` marks its request there first.
///   - out: the answer to a cancelled request is dropped.
final class MCPGate: Sendable {
    static let tokenKey = "sealbox.dev/call"

    let calls: MCPCalls

    init(calls: MCPCalls) {
        self.calls = calls
    }

    func inbound(_ message: Data) -> MCPInbound {
        switch JSONRPCIncoming.parse(message) {
        case .invalid(let error, let id):
            return .answer(JSONRPCOutgoing.error(id: id, error))
        case .response(let id):
            MCPLog.write("ignoring a response (id \(id.map { "\($0)" } ?? "none")): this server sends no requests")
            return .ignore
        case .notification(let method, let params):
            if method == "notifications/cancelled", let raw = params?.objectValue?["requestId"], let id = JSONRPCID(raw) {
                calls.cancel(id)
            }
            var message: [String: JSONValue] = ["jsonrpc": .string("2.0"), "method": .string(method)]
            if let params { message["params"] = params }
            return .forward(JSONRPCOutgoing.encode(.object(message)), request: nil)
        case .request(let id, let method, let params):
            let token = calls.begin(id: id, method: method, params: params)
            // Array params (JSON-RPC allows them, MCP uses none) stay in the table only: the
            // handler reads them from there and refuses them with its own message.
            var stamped = params?.objectValue ?? [:]
            var meta = stamped["_meta"]?.objectValue ?? [:]
            meta[Self.tokenKey] = .string(token)
            stamped["_meta"] = .object(meta)
            return .forward(JSONRPCOutgoing.encode(.object([
                "jsonrpc": .string("2.0"), "id": id.json, "method": .string(method), "params": .object(stamped),
            ])), request: id)
        }
    }

    /// Delivers a message of the SDK's with `deliver`, or drops it (the answer to a cancelled
    /// request). By default an answered request leaves `calls` only once its answer is
    /// delivered, so a server waiting for every answer (end of stdin) never stops before the
    /// last is written; `endFirst` ends it before (HTTP: a client that has its answer finds
    /// the request ended).
    func outbound(_ data: Data, endFirst: Bool = false, deliver: @Sendable (Data) async throws -> Void) async rethrows {
        struct Head: Decodable {
            var id: JSONValue?
            var method: String?
        }
        guard let head = try? JSONDecoder().decode(Head.self, from: data), head.method == nil,
              let raw = head.id, let id = JSONRPCID(raw) else {
            try await deliver(data)
            return
        }
        if calls.isCancelled(id: id) {
            if let method = calls.answered(id) {
                MCPLog.write("request \(id) (\(method)) was cancelled by the client: its answer is dropped")
            }
            return
        }
        if endFirst { _ = calls.answered(id) }
        defer { if !endFirst { _ = calls.answered(id) } }
        try await deliver(data)
    }

    /// The token `inbound` stamped into a request's params.
    static func token(_ params: Value) -> String? {
        params.objectValue?["_meta"]?.objectValue?[tokenKey]?.stringValue
    }
}
