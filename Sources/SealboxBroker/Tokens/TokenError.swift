/// Why a capability token was refused. `code` maps one-to-one onto the broker protocol's
/// error codes (`denied`, `expired`, `revoked`); `message` is safe to send back into the jail:
/// it never contains key material or signatures.
public struct TokenError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Code: String, Sendable {
        case denied, expired, revoked
    }

    public let code: Code
    public let message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { "\(code.rawValue): \(message)" }

    static func denied(_ message: String) -> TokenError { TokenError(.denied, message) }
    static func malformed(_ reason: String) -> TokenError { TokenError(.denied, "malformed token: \(reason)") }
}

/// What a verified token allows. `tools` and `expiresAtMs` are the *effective* values: the root's
/// scope intersected with every caveat's tools, and the earliest of all expiries.
public struct TokenClaims: Sendable, Equatable {
    public let tokenID: String
    public let runID: String
    public let sessionID: String
    public let tools: Set<String>
    public let expiresAtMs: Int64
    public let caveatCount: Int

    public init(tokenID: String, runID: String, sessionID: String, tools: Set<String>, expiresAtMs: Int64, caveatCount: Int) {
        self.tokenID = tokenID
        self.runID = runID
        self.sessionID = sessionID
        self.tools = tools
        self.expiresAtMs = expiresAtMs
        self.caveatCount = caveatCount
    }
}
