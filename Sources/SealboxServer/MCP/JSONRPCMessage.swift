import Foundation
import SealboxBase
import SealboxLedger

/// A JSON-RPC 2.0 request id. MCP allows only strings and integers (never null), so a
/// response can echo exactly what the client sent.
public enum JSONRPCID: Sendable, Hashable, Codable, CustomStringConvertible {
    case number(Int64)
    case string(String)

    init?(_ value: JSONValue) {
        switch value {
        case .string(let text): self = .string(text)
        case .number(let literal) where Int64(literal) != nil: self = .number(Int64(literal)!)
        case .number where value.isWholeNumber && abs(value.doubleValue ?? .infinity) < 9.0e15: self = .number(Int64(value.doubleValue!))
        default: return nil
        }
    }

    var json: JSONValue {
        switch self {
        case .number(let n): return .number(n)
        case .string(let s): return .string(s)
        }
    }

    public var description: String {
        switch self {
        case .number(let n): return String(n)
        case .string(let s): return "\"\(s)\""
        }
    }
}

/// The error codes of JSON-RPC 2.0 that this server answers with.
public struct JSONRPCError: Error, Sendable, Equatable {
    public var code: Int
    public var message: String

    public init(code: Int, message: String) {
        self.code = code
        self.message = message
    }

    public static func parseError(_ message: String) -> JSONRPCError { .init(code: -32700, message: "Parse error: " + message) }
    public static func invalidRequest(_ message: String) -> JSONRPCError { .init(code: -32600, message: "Invalid Request: " + message) }
    public static func methodNotFound(_ method: String) -> JSONRPCError { .init(code: -32601, message: "Method not found: \(method)") }
    public static func invalidParams(_ message: String) -> JSONRPCError { .init(code: -32602, message: "Invalid params: " + message) }
    public static func internalError(_ message: String) -> JSONRPCError { .init(code: -32603, message: "Internal error: " + message) }
}

/// One line from the client, classified. Anything that is not a well-formed request or
/// notification becomes `.invalid` with the error to answer (and the id, when one could be read).
enum JSONRPCIncoming: Sendable {
    case request(id: JSONRPCID, method: String, params: JSONValue?)
    case notification(method: String, params: JSONValue?)
    /// A response to a request of ours. This server sends none, so it is only logged.
    case response(id: JSONValue?)
    case invalid(JSONRPCError, id: JSONRPCID?)

    static func parse(_ line: Data) -> JSONRPCIncoming {
        let value: JSONValue
        do {
            // The strict reader: a duplicate member name anywhere in the message is refused,
            // so the arguments a tool sees are the ones every check saw.
            value = try StrictJSONDecoder.decode(JSONValue.self, from: [UInt8](line))
        } catch {
            return .invalid(.parseError(error.syntax ? "the line is " + error.message : "the line is not valid JSON"), id: nil)
        }
        guard let message = value.objectValue else {
            if case .array = value {
                return .invalid(.invalidRequest("batches are not supported: send one JSON-RPC message per line"), id: nil)
            }
            return .invalid(.invalidRequest("a message must be a JSON object"), id: nil)
        }
        // An id that is present but not a string or an integer cannot be echoed: answer with null.
        var id: JSONRPCID?
        if let raw = message["id"] {
            guard let parsed = JSONRPCID(raw) else {
                return .invalid(.invalidRequest("id must be a string or an integer"), id: nil)
            }
            id = parsed
        }
        guard message["jsonrpc"] == .string("2.0") else {
            return .invalid(.invalidRequest("jsonrpc must be \"2.0\""), id: id)
        }
        guard let methodValue = message["method"] else {
            if message["result"] != nil || message["error"] != nil { return .response(id: message["id"]) }
            return .invalid(.invalidRequest("method is required"), id: id)
        }
        guard case .string(let method) = methodValue, !method.isEmpty else {
            return .invalid(.invalidRequest("method must be a non-empty string"), id: id)
        }
        let params = message["params"]
        if let params {
            switch params {
            case .object, .array: break
            default: return .invalid(.invalidRequest("params must be an object or an array"), id: id)
            }
        }
        guard let id else { return .notification(method: method, params: params) }
        return .request(id: id, method: method, params: params)
    }
}

/// What goes back to the client: one JSON object per line, sorted keys.
enum JSONRPCOutgoing {
    static func result(id: JSONRPCID, _ result: JSONValue) -> Data {
        encode(.object(["jsonrpc": .string("2.0"), "id": id.json, "result": result]))
    }

    static func error(id: JSONRPCID?, _ error: JSONRPCError) -> Data {
        encode(.object([
            "jsonrpc": .string("2.0"), "id": id?.json ?? .null,
            "error": .object(["code": .number(error.code), "message": .string(error.message)]),
        ]))
    }

    static func encode(_ value: JSONValue) -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        // JSONEncoder never writes a raw newline (it escapes them in strings), so one message is one line.
        return ((try? encoder.encode(value)) ?? Data(#"{"error":{"code":-32603,"message":"Internal error: cannot encode the response"},"id":null,"jsonrpc":"2.0"}"#.utf8)) + Data("\n".utf8)
    }
}

extension JSONValue {
    /// Any Encodable as a JSON value (through its JSON bytes): tool results embed the very
    /// objects `sealbox ... --json` prints.
    init(encoding value: some Encodable) throws {
        let data = try JSONEncoder().encode(value)
        self = try JSONDecoder().decode(JSONValue.self, from: data)
    }
}
