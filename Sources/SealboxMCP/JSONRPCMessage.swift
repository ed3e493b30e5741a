import Foundation
import MCP
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
    /// What went wrong, without the code's name ("tools/call needs params ...").
    public var detail: String

    public init(code: Int, detail: String) {
        self.code = code
        self.detail = detail
    }

    /// "Invalid params: " + detail: the message a client sees.
    public var message: String {
        switch code {
        case -32700: "Parse error: " + detail
        case -32600: "Invalid Request: " + detail
        case -32601: "Method not found: " + detail
        case -32602: "Invalid params: " + detail
        default: "Internal error: " + detail
        }
    }

    public static func parseError(_ message: String) -> JSONRPCError { .init(code: -32700, detail: message) }
    public static func invalidRequest(_ message: String) -> JSONRPCError { .init(code: -32600, detail: message) }
    public static func methodNotFound(_ method: String) -> JSONRPCError { .init(code: -32601, detail: method) }
    public static func invalidParams(_ message: String) -> JSONRPCError { .init(code: -32602, detail: message) }
    public static func internalError(_ message: String) -> JSONRPCError { .init(code: -32603, detail: message) }

    /// The same error as the SDK sends it (its message is the same prefix + detail).
    var mcpError: MCPError {
        switch code {
        case -32700: .parseError(detail)
        case -32600: .invalidRequest(detail)
        case -32601: .methodNotFound(detail)
        case -32602: .invalidParams(detail)
        default: .internalError(detail)
        }
    }
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

extension Value {
    /// A tool result or schema as the SDK carries it. Whole numbers become integers (an
    /// exit code is 0, not 0.0), the rest doubles.
    init(sealbox json: JSONValue) {
        switch json {
        case .null: self = .null
        case .bool(let b): self = .bool(b)
        case .number(let literal):
            // The literal is exact; the SDK's Value holds an Int or a Double. An integer that
            // fits stays exact, another whole number below 9.0e15 (`1e3`, `2.0`) is an integer
            // too, the rest are doubles (a literal beyond a double's range, which JSON cannot
            // carry as a double, as null, like `JSONValue.number(_: Double)`).
            if let exact = Int(literal) {
                self = .int(exact)
            } else if let value = json.doubleValue {
                self = json.isWholeNumber && abs(value) < 9.0e15 ? .int(Int(value)) : .double(value)
            } else {
                self = .null
            }
        case .string(let s): self = .string(s)
        case .array(let items): self = .array(items.map { Value(sealbox: $0) })
        case .object(let members):
            var object: [String: Value] = [:]
            for (key, value) in members { object[key] = Value(sealbox: value) }
            self = .object(object)
        }
    }
}
