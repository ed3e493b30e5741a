import SealboxLedger

/// One operator-declared tool.
public struct ToolDefinition: Sendable {
    public let name: String
    public let kind: ToolKind
    public let effect: EffectClass
    public let approval: Approval
    public let args: [String: ArgumentSpec]
    public let timeoutMs: Int
    public let maxResponseBytes: Int
    /// Free text for the agent (`description:` in the config), if any.
    public let description: String?

    public init(
        name: String, kind: ToolKind, effect: EffectClass, approval: Approval, args: [String: ArgumentSpec],
        timeoutMs: Int = ToolDefinition.defaultTimeoutMs, maxResponseBytes: Int = ToolDefinition.defaultMaxResponseBytes,
        description: String? = nil
    ) {
        self.name = name
        self.kind = kind
        self.effect = effect
        self.approval = approval
        self.args = args
        self.timeoutMs = timeoutMs
        self.maxResponseBytes = maxResponseBytes
        self.description = description
    }

    public static let defaultTimeoutMs = 30_000
    public static let maxTimeoutMs = 600_000
    public static let defaultMaxResponseBytes = 1 << 20
    public static let maxMaxResponseBytes = 64 << 20
}

public enum ToolKind: Sendable {
    case http(HTTPToolSpec)
    case command(CommandToolSpec)
}

/// `kind: http`.
public struct HTTPToolSpec: Sendable {
    public enum BodyMode: String, Sendable, CaseIterable {
        /// Arguments not used in the URL or headers go as a JSON object body.
        case json
        /// No body; every argument must be used in the URL or headers.
        case none
        /// Arguments not used in the URL or headers go in the query string.
        case query
    }

    public struct Header: Sendable, Equatable {
        public let name: String
        public let value: ToolTemplate
    }

    /// Upper-case: GET, HEAD, POST, PUT, PATCH, DELETE.
    public let method: String
    /// The whole URL template as written.
    public let url: ToolTemplate
    public let scheme: String
    /// The host part; placeholders allowed (their values must be host-name characters).
    public let host: ToolTemplate
    public let port: Int?
    /// Path template, starting with "/"; argument values are percent-encoded as path-segment text.
    public let path: ToolTemplate
    /// Query template (without "?"), if the URL has one; argument values are percent-encoded.
    public let query: ToolTemplate?
    /// Lower-case host names or `*.suffix` patterns; the expanded URL's host must match one.
    /// Addresses and CIDR ranges here also allow connecting to them (`EgressGuard`).
    public let allowHosts: [String]
    /// Connections to loopback, private and link-local addresses are allowed (default: only to
    /// those `allow_hosts` names).
    public let allowPrivateNetworks: Bool
    public let headers: [Header]
    public let body: BodyMode
    /// Lower-case names of the response headers copied into the result.
    public let responseHeaders: [String]
    /// The header carrying the call's idempotency key on non-read tools; nil: not sent.
    public let idempotencyHeader: String?

    public static let defaultResponseHeaders = ["content-type", "etag", "last-modified", "location", "retry-after"]
    public static let methods = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]

    /// Arguments placed in the URL or the headers (the rest go to the body or query).
    public var templateArguments: Set<String> {
        var names = Set(host.argumentNames + path.argumentNames + (query?.argumentNames ?? []))
        for h in headers { names.formUnion(h.value.argumentNames) }
        return names
    }
}

/// `kind: command`: a program run directly with posix_spawn, never through a shell.
public struct CommandToolSpec: Sendable {
    public struct EnvVar: Sendable, Equatable {
        public let name: String
        public let value: ToolTemplate
    }

    /// argv[0] is an absolute program path with no placeholders.
    public let argv: [ToolTemplate]
    /// The command's whole environment, besides PATH=/usr/bin:/bin (unless PATH is set here).
    public let env: [EnvVar]
    /// Absolute; default "/".
    public let workingDirectory: String

    public static let defaultPath = "/usr/bin:/bin"

    public var templateArguments: Set<String> {
        var names = Set(argv.flatMap(\.argumentNames))
        for e in env { names.formUnion(e.value.argumentNames) }
        return names
    }
}
