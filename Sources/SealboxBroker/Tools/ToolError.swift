import SealboxBase
import SealboxLedger

/// Why a tool call did not produce an outcome. Messages never contain secret values.
public struct ToolError: Error, Sendable, CustomStringConvertible, Equatable {
    public enum Code: String, Sendable {
        /// The call itself is wrong (arguments, host not allowed…). Nothing was sent.
        case badRequest = "bad_request"
        /// The tool could not be run to an answer (transport failure, timeout, spawn failure).
        case toolFailed = "tool_failed"
    }

    public let code: Code
    public let message: String
    /// false: definitely not sent / not started (validation, DNS failure, connection refused,
    /// spawn failure); true: it certainly ran; nil: unknown (e.g. a timeout after sending).
    public let happened: Bool?

    public init(_ code: Code, _ message: String, happened: Bool?) {
        self.code = code
        self.message = message
        self.happened = happened
    }

    static func badRequest(_ message: String) -> ToolError { ToolError(.badRequest, message, happened: false) }

    public var description: String { "\(code.rawValue): \(message)" }
}

/// What a tool call produced.
public struct ToolOutcome: Sendable {
    /// http: `{"status":201,"headers":{…selected, lower-case names},"body":<parsed JSON or text>,"body_truncated":false}`
    /// command: `{"exit_code":0,"signal":null,"stdout":"…","stderr":"…","stdout_truncated":false,"stderr_truncated":false}`
    /// (killed by signal N: exit_code 128+N, signal N)
    public var result: JSONValue
    /// ETag, else Last-Modified (http).
    public let resourceVersion: String?
    /// What was called, e.g. "POST https://api.github.com/repos/a/b/issues" or
    /// "/usr/bin/systemctl restart x". Never contains a secret value.
    public let target: String
    public let durationMs: Double

    public init(result: JSONValue, resourceVersion: String?, target: String, durationMs: Double) {
        self.result = result
        self.resourceVersion = resourceVersion
        self.target = target
        self.durationMs = durationMs
    }
}
