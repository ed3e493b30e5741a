import Foundation
import SealboxBase
import SealboxLedger

/// A tool as `tools/list` shows it: name, what it does, and JSON Schemas of its arguments
/// and of its `structuredContent`.
struct MCPToolDefinition: Sendable {
    var name: String
    var title: String
    var description: String
    var inputSchema: JSONValue
    var outputSchema: JSONValue?
    /// MCP's behaviour hints (readOnlyHint, destructiveHint, idempotentHint, openWorldHint).
    var annotations: [String: Bool]

    var json: JSONValue {
        var object: [String: JSONValue] = [
            "name": .string(name), "title": .string(title), "description": .string(description), "inputSchema": inputSchema,
        ]
        if let outputSchema { object["outputSchema"] = outputSchema }
        var hints: [String: JSONValue] = ["title": .string(title)]
        for (key, value) in annotations { hints[key] = .bool(value) }
        object["annotations"] = .object(hints)
        return .object(object)
    }

    /// Schemas are written as JSON text, which reads like the schema it is. A typo is a bug
    /// the tests catch at once (every tool is listed by them).
    static func schema(_ text: String) -> JSONValue {
        do {
            return try JSONDecoder().decode(JSONValue.self, from: Data(text.utf8))
        } catch {
            preconditionFailure("a tool schema is not valid JSON: \(error)\n\(text)")
        }
    }
}

/// What a tools/call answers. A tool that ran but failed is still a result, with
/// `isError: true` and a message the model can read and act on (MCP keeps protocol errors
/// for calls that could not be made at all).
struct MCPToolResult: Sendable {
    var text: String
    var structured: JSONValue?
    var isError: Bool

    static func success(_ text: String, structured: JSONValue) -> MCPToolResult {
        MCPToolResult(text: text, structured: structured, isError: false)
    }

    static func failure(_ message: String) -> MCPToolResult {
        MCPToolResult(text: message, structured: nil, isError: true)
    }

    static func failure(_ error: MCPToolInputError) -> MCPToolResult {
        failure(MCPToolFailure(error))
    }

    static func failure(_ error: MCPToolFailure) -> MCPToolResult {
        failure(error.text)
    }

    var json: JSONValue {
        var object: [String: JSONValue] = [
            "content": .array([.object(["type": .string("text"), "text": .string(text)])]),
            "isError": .bool(isError),
        ]
        if let structured { object["structuredContent"] = structured }
        return .object(object)
    }
}

protocol MCPTool: Sendable {
    var definition: MCPToolDefinition { get }
    func call(_ arguments: MCPArguments, context: MCPCallContext) async -> MCPToolResult
}

/// A tool argument that is missing, unknown or of the wrong shape.
struct MCPToolInputError: Error, Sendable {
    var field: String
    var message: String
}

/// A tool's arguments, read strictly: unknown names and wrong types are errors naming the
/// field, never silently ignored (a typo such as "timeout" must not run with the default).
struct MCPArguments: Sendable {
    let values: [String: JSONValue]

    init(_ values: [String: JSONValue]) {
        self.values = values
    }

    func checkNames(_ known: [String]) throws(MCPToolInputError) {
        for key in values.keys.sorted() where !known.contains(key) {
            throw MCPToolInputError(field: key, message: "unknown argument \"\(key)\" (known: \(known.sorted().joined(separator: ", ")))")
        }
    }

    func string(_ key: String, maxBytes: Int = 4096) throws(MCPToolInputError) -> String? {
        guard let value = values[key], value != .null else { return nil }
        guard case .string(let text) = value else { throw MCPToolInputError(field: key, message: "\(key) must be a string") }
        guard text.utf8.count <= maxBytes else { throw MCPToolInputError(field: key, message: "\(key) is longer than \(maxBytes) bytes") }
        return text
    }

    func strings(_ key: String, maxCount: Int) throws(MCPToolInputError) -> [String]? {
        guard let value = values[key], value != .null else { return nil }
        guard case .array(let items) = value else { throw MCPToolInputError(field: key, message: "\(key) must be an array of strings") }
        guard items.count <= maxCount else { throw MCPToolInputError(field: key, message: "\(key) has more than \(maxCount) items") }
        var texts: [String] = []
        for (index, item) in items.enumerated() {
            guard case .string(let text) = item else {
                throw MCPToolInputError(field: "\(key)[\(index)]", message: "\(key)[\(index)] must be a string")
            }
            texts.append(text)
        }
        return texts
    }

    func integer(_ key: String, in range: ClosedRange<Int>) throws(MCPToolInputError) -> Int? {
        guard let value = values[key], value != .null else { return nil }
        guard value.isWholeNumber, let n = value.doubleValue, abs(n) < 9.0e15 else {
            throw MCPToolInputError(field: key, message: "\(key) must be a whole number")
        }
        guard range.contains(Int(n)) else {
            throw MCPToolInputError(field: key, message: "\(key) must be between \(range.lowerBound) and \(range.upperBound)")
        }
        return Int(n)
    }
}
