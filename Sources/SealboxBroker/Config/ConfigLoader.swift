import Foundation
import SealboxBase
import SealboxLedger
import Yams

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The broker's operator config: tools, the secrets they use, the ledger location, limits.
public struct BrokerConfig: Sendable {
    public let ledgerPath: String?
    public let tools: [String: ToolDefinition]
    public let secrets: SecretStore
    public let limits: BrokerLimits
    /// Things the operator should fix that do not stop the broker (e.g. a secret file readable by
    /// group or others). Never contain secret values.
    public let warnings: [String]

    public init(ledgerPath: String? = nil, tools: [String: ToolDefinition], secrets: SecretStore, limits: BrokerLimits = BrokerLimits(), warnings: [String] = []) {
        self.ledgerPath = ledgerPath
        self.tools = tools
        self.secrets = secrets
        self.limits = limits
        self.warnings = warnings
    }
}

/// Reads and validates the YAML config file (format: examples/broker.yaml).
public enum BrokerConfigLoader {
    public static func load(
        path: String, environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws(ConfigError) -> BrokerConfig {
        let data: Data
        switch ConfigFiles.read(path, limit: 4 << 20) {
        case .success(let d): data = d
        case .failure(let problem): throw ConfigError("\(path): cannot read the config file: \(problem)")
        }
        guard let yaml = String(data: data, encoding: .utf8) else {
            throw ConfigError("\(path): the config file is not UTF-8 text")
        }
        let absolute = path.hasPrefix("/") ? path : FileManager.default.currentDirectoryPath + "/" + path
        let base = (absolute as NSString).deletingLastPathComponent
        return try parse(yaml: yaml, source: path, environment: environment, baseDirectory: base)
    }

    /// `source` names the text in messages (usually the file path); relative paths in the config
    /// (ledger, secret files) are resolved against `baseDirectory`.
    public static func parse(
        yaml: String, source: String, environment: [String: String], baseDirectory: String
    ) throws(ConfigError) -> BrokerConfig {
        var reader = ConfigReader(source: source, environment: environment, baseDirectory: baseDirectory)
        return try reader.read(yaml)
    }
}

// MARK: - The reader

private struct Entry {
    let key: String
    let keyNode: Node
    let value: Node
}

private struct ConfigReader {
    let source: String
    let environment: [String: String]
    let baseDirectory: String
    var warnings: [String] = []
    var secretValues: [String: String] = [:]

    init(source: String, environment: [String: String], baseDirectory: String) {
        self.source = source
        self.environment = environment
        self.baseDirectory = baseDirectory
    }

    // MARK: errors

    func error(_ node: Node?, _ path: String, _ message: String) -> ConfigError {
        var text = source
        if let line = node?.mark?.line { text += ":\(line)" }
        text += ": "
        if !path.isEmpty { text += path + ": " }
        return ConfigError(text + message)
    }

    func yamlError(_ error: any Error) -> ConfigError {
        guard let y = error as? YamlError else { return ConfigError("\(source): invalid YAML") }
        switch y {
        case .scanner(let context, let problem, let mark, _), .parser(let context, let problem, let mark, _),
             .composer(let context, let problem, let mark, _):
            let ctx = context.map { " (\($0.text))" } ?? ""
            return ConfigError("\(source):\(mark.line): invalid YAML: \(problem)\(ctx)")
        case .duplicatedKeysInMapping(let duplicates, let context):
            return ConfigError("\(source):\(context.mark.line): duplicate key \(duplicates.sorted().map { "\"\($0)\"" }.joined(separator: ", "))")
        case .reader(let problem, _, _, _):
            return ConfigError("\(source): invalid YAML: \(problem)")
        default:
            return ConfigError("\(source): invalid YAML")
        }
    }

    // MARK: node helpers

    static func tagName(_ node: Node) -> Tag.Name { Tag.Name(rawValue: node.tag.rawValue) }

    static func kindName(_ node: Node) -> String {
        switch node {
        case .mapping: return "a mapping"
        case .sequence: return "a list"
        case .scalar: return "a scalar"
        case .alias: return "an alias"
        }
    }

    static func isNull(_ node: Node) -> Bool {
        if case .scalar = node { return ConfigReader.tagName(node) == .null }
        return false
    }

    func entries(_ node: Node, _ path: String, allowed: [String]? = nil) throws(ConfigError) -> [Entry] {
        guard case .mapping(let mapping) = node else {
            throw error(node, path, "expected a mapping, got \(Self.isNull(node) ? "nothing" : Self.kindName(node))")
        }
        var result: [Entry] = []
        var seen = Set<String>()
        for (k, v) in mapping {
            guard case .scalar(let s) = k else { throw error(k, path, "keys must be plain strings") }
            let key = s.string
            guard seen.insert(key).inserted else { throw error(k, path, "duplicate key \"\(key)\"") }
            if let allowed, !allowed.contains(key) {
                throw error(k, path, "unknown key \"\(key)\" (expected one of: \(allowed.joined(separator: ", ")))")
            }
            result.append(Entry(key: key, keyNode: k, value: v))
        }
        return result
    }

    func string(_ node: Node, _ path: String) throws(ConfigError) -> String {
        guard case .scalar(let s) = node, !Self.isNull(node) else {
            throw error(node, path, "expected a string, got \(Self.isNull(node) ? "nothing" : Self.kindName(node))")
        }
        return s.string
    }

    /// A value with units ("10s", "1M") that must be positive and at most `max`; `default`
    /// when absent. One rule for every such setting, with the same messages.
    fileprivate func bounded(_ entry: Entry?, _ path: String, default fallback: Int, max: Int,
                             parse: (String) -> Int?, format: (Int) -> String, kind: String, example: String) throws(ConfigError) -> Int {
        guard let entry else { return fallback }
        let text = try string(entry.value, path)
        guard let parsed = parse(text), parsed > 0 else {
            throw error(entry.value, path, "invalid \(kind) \"\(text)\" (e.g. \(example))")
        }
        guard parsed <= max else {
            throw error(entry.value, path, "\(text) is more than the maximum \(format(max))")
        }
        return parsed
    }

    func stringList(_ node: Node, _ path: String) throws(ConfigError) -> [(String, Node)] {
        guard case .sequence(let seq) = node else {
            throw error(node, path, "expected a list, got \(Self.kindName(node))")
        }
        var out: [(String, Node)] = []
        for (i, item) in seq.enumerated() { out.append((try string(item, "\(path)[\(i)]"), item)) }
        return out
    }

    func bool(_ node: Node, _ path: String) throws(ConfigError) -> Bool {
        guard case .scalar = node, ConfigReader.tagName(node) == .bool, let b = node.bool else {
            throw error(node, path, "expected true or false, got \(describe(node))")
        }
        return b
    }

    func integer(_ node: Node, _ path: String, minimum: Int = 0) throws(ConfigError) -> Int {
        guard case .scalar = node, ConfigReader.tagName(node) == .int, let n = node.int, n >= minimum else {
            throw error(node, path, "expected an integer of at least \(minimum), got \(describe(node))")
        }
        return n
    }

    func number(_ node: Node, _ path: String) throws(ConfigError) -> Double {
        guard case .scalar = node, ConfigReader.tagName(node) == .int || ConfigReader.tagName(node) == .float, let n = node.float, n.isFinite else {
            throw error(node, path, "expected a number, got \(describe(node))")
        }
        return n
    }

    func describe(_ node: Node) -> String {
        if case .scalar(let s) = node { return Self.isNull(node) ? "nothing" : "\"\(s.string)\"" }
        return Self.kindName(node)
    }

    /// A YAML value as JSON (for `default` and `enum`).
    func json(_ node: Node, _ path: String) throws(ConfigError) -> JSONValue {
        switch node {
        case .scalar(let s):
            switch ConfigReader.tagName(node) {
            case .null: return .null
            case .bool: if let b = node.bool { return .bool(b) }
            case .int: if let i = node.int { return .number(i) }
            case .float: if let f = node.float, f.isFinite { return .number(f) }
            default: break
            }
            return .string(s.string)
        case .sequence(let seq):
            var items: [JSONValue] = []
            for (i, item) in seq.enumerated() { items.append(try json(item, "\(path)[\(i)]")) }
            return .array(items)
        case .mapping:
            var object: [String: JSONValue] = [:]
            for e in try entries(node, path) { object[e.key] = try json(e.value, "\(path).\(e.key)") }
            return .object(object)
        case .alias:
            throw error(node, path, "YAML aliases are not supported")
        }
    }

    func template(_ node: Node, _ path: String) throws(ConfigError) -> ToolTemplate {
        let text = try string(node, path)
        do { return try ToolTemplate.parse(text) } catch let e { throw error(node, path, e.message) }
    }

    func resolvePath(_ p: String) -> String {
        p.hasPrefix("/") ? p : (baseDirectory as NSString).appendingPathComponent(p)
    }

    // MARK: top level

    mutating func read(_ yaml: String) throws(ConfigError) -> BrokerConfig {
        let root: Node?
        do { root = try Yams.compose(yaml: yaml) } catch let e { throw yamlError(e) }
        guard let root, !Self.isNull(root) else { throw ConfigError("\(source): the config is empty") }
        let top = try entries(root, "", allowed: ["ledger", "secrets", "tools", "limits"])

        var ledger: String?
        if let e = top.first(where: { $0.key == "ledger" }), !Self.isNull(e.value) {
            let p = try string(e.value, "ledger")
            guard !p.isEmpty else { throw error(e.value, "ledger", "must not be empty") }
            ledger = resolvePath(p)
        }
        if let e = top.first(where: { $0.key == "secrets" }), !Self.isNull(e.value) {
            try readSecrets(e.value)
        }
        var tools: [String: ToolDefinition] = [:]
        if let e = top.first(where: { $0.key == "tools" }), !Self.isNull(e.value) {
            for t in try entries(e.value, "tools") {
                let path = "tools.\(t.key)"
                guard ConfigNames.isToolName(t.key) else {
                    throw error(t.keyNode, path, "invalid tool name (letters, digits, _ . -; at most 64)")
                }
                tools[t.key] = try readTool(name: t.key, t.value, path)
            }
        }
        var limits = BrokerLimits()
        if let e = top.first(where: { $0.key == "limits" }), !Self.isNull(e.value) {
            limits = try readLimits(e.value)
        }
        return BrokerConfig(ledgerPath: ledger, tools: tools, secrets: SecretStore(secretValues), limits: limits, warnings: warnings)
    }

    // MARK: limits

    func readLimits(_ node: Node) throws(ConfigError) -> BrokerLimits {
        var limits = BrokerLimits()
        for scope in try entries(node, "limits", allowed: ["per_run", "per_tenant"]) where !Self.isNull(scope.value) {
            let path = "limits.\(scope.key)"
            var values = scope.key == "per_run" ? limits.perRun : limits.perTenant
            for e in try entries(scope.value, path, allowed: BrokerLimits.keys) {
                let key = "\(path).\(e.key)"
                switch e.key {
                case "lines_per_second": values.linesPerSecond = try count(e, key, max: 1_000_000)
                case "calls_per_second": values.callsPerSecond = try count(e, key, max: 1_000_000)
                case "calls": values.calls = try count(e, key, max: 1_000_000_000)
                case "pending_approvals": values.pendingApprovals = try count(e, key, max: 1_000_000)
                case "bytes_per_second":
                    values.bytesPerSecond = try bounded(e, key, default: values.bytesPerSecond, max: 1 << 30, parse: { ByteSize.parse($0, below: 1e15) },
                                                        format: ByteSize.format, kind: "size", example: "4M")
                    guard values.bytesPerSecond >= UnixSocket.maxLine else {
                        throw error(e.value, key, "must be at least \(ByteSize.format(UnixSocket.maxLine)) (the longest request line)")
                    }
                case "effect_bytes":
                    values.effectBytes = try bounded(e, key, default: values.effectBytes, max: 1 << 40, parse: { ByteSize.parse($0, below: 1e15) },
                                                     format: ByteSize.format, kind: "size", example: "64M, 1G")
                default:
                    break  // `entries` refused every key not in BrokerLimits.keys
                }
            }
            if scope.key == "per_run" { limits.perRun = values } else { limits.perTenant = values }
        }
        return limits
    }

    /// A positive whole number of at most `max`.
    func count(_ entry: Entry, _ path: String, max: Int) throws(ConfigError) -> Int {
        let n = try integer(entry.value, path, minimum: 1)
        guard n <= max else { throw error(entry.value, path, "\(n) is more than the maximum \(max)") }
        return n
    }

    // MARK: secrets

    mutating func readSecrets(_ node: Node) throws(ConfigError) {
        for s in try entries(node, "secrets") {
            let path = "secrets.\(s.key)"
            guard ConfigNames.isIdentifier(s.key) else {
                throw error(s.keyNode, path, "invalid secret name (letters, digits and _, not starting with a digit)")
            }
            let spec = try entries(s.value, path, allowed: ["env", "file"])
            guard spec.count == 1, let source = spec.first else {
                throw error(s.value, path, "expected exactly one of env: VARIABLE or file: PATH")
            }
            let value: String
            switch source.key {
            case "env":
                let variable = try string(source.value, "\(path).env")
                guard let v = environment[variable] else {
                    throw error(source.value, path, "environment variable \(variable) is not set")
                }
                guard !v.isEmpty else { throw error(source.value, path, "environment variable \(variable) is empty") }
                value = v
            default:
                let file = resolvePath(try string(source.value, "\(path).file"))
                let data: Data
                switch ConfigFiles.read(file, limit: 64 << 10) {
                case .success(let d): data = d
                case .failure(let problem): throw error(source.value, path, "cannot read \(file): \(problem)")
                }
                guard var text = String(data: data, encoding: .utf8) else {
                    throw error(source.value, path, "\(file) is not UTF-8 text")
                }
                while let last = text.unicodeScalars.last, last == "\n" || last == "\r" { text.unicodeScalars.removeLast() }
                guard !text.isEmpty else { throw error(source.value, path, "\(file) is empty") }
                if let mode = ConfigFiles.mode(file), mode & 0o044 != 0 {
                    warnings.append("\(self.source): \(path): \(file) is readable by group or others (mode \(String(mode & 0o777, radix: 8))); chmod 600 it")
                }
                value = text
            }
            if value.count < SecretRedactor.minimumLength {
                warnings.append("\(self.source): \(path): the value is shorter than \(SecretRedactor.minimumLength) characters, too short to be redacted from tool answers")
            }
            secretValues[s.key] = value
        }
    }

    // MARK: tools

    static let commonKeys = ["kind", "description", "effect", "approval", "args", "timeout", "max_response_bytes"]
    static let httpKeys = ["method", "url", "allow_hosts", "allow_private_networks", "headers", "body", "response_headers", "idempotency_header"]
    static let commandKeys = ["argv", "env", "cwd"]

    mutating func readTool(name: String, _ node: Node, _ path: String) throws(ConfigError) -> ToolDefinition {
        let all = try entries(node, path)
        func value(_ key: String) -> Entry? { all.first { $0.key == key && !Self.isNull($0.value) } }
        guard let kindEntry = value("kind") else {
            throw error(node, path, "missing required key \"kind\" (http or command)")
        }
        let kindName = try string(kindEntry.value, "\(path).kind")
        let kindKeys: [String]
        switch kindName {
        case "http": kindKeys = Self.httpKeys
        case "command": kindKeys = Self.commandKeys
        default: throw error(kindEntry.value, "\(path).kind", "unknown kind \"\(kindName)\" (http, command)")
        }
        let allowed = Self.commonKeys + kindKeys
        for e in all where !allowed.contains(e.key) {
            throw error(e.keyNode, path, "unknown key \"\(e.key)\" for \(kindName == "http" ? "an" : "a") \(kindName) tool (expected one of: \(allowed.joined(separator: ", ")))")
        }

        var args: [String: ArgumentSpec] = [:]
        var argNodes: [String: Node] = [:]
        if let a = value("args") {
            for e in try entries(a.value, "\(path).args") {
                let apath = "\(path).args.\(e.key)"
                guard ConfigNames.isIdentifier(e.key) else {
                    throw error(e.keyNode, apath, "invalid argument name (letters, digits and _, not starting with a digit)")
                }
                args[e.key] = try readArgument(name: e.key, e.value, apath)
                argNodes[e.key] = e.keyNode
            }
        }

        guard let effectEntry = value("effect") else {
            throw error(node, path, "missing required key \"effect\" (\(EffectClass.allCases.map(\.rawValue).joined(separator: ", ")))")
        }
        let effectText = try string(effectEntry.value, "\(path).effect")
        guard let effect = EffectClass(rawValue: effectText) else {
            throw error(effectEntry.value, "\(path).effect", "unknown effect class \"\(effectText)\" (\(EffectClass.allCases.map(\.rawValue).joined(separator: ", ")))")
        }
        var approval = Approval.auto
        if let e = value("approval") {
            let text = try string(e.value, "\(path).approval")
            guard let a = Approval(rawValue: text) else {
                throw error(e.value, "\(path).approval", "unknown approval \"\(text)\" (\(Approval.allCases.map(\.rawValue).joined(separator: ", ")))")
            }
            approval = a
        }
        let timeoutMs = try bounded(
            value("timeout"), "\(path).timeout", default: ToolDefinition.defaultTimeoutMs, max: ToolDefinition.maxTimeoutMs,
            parse: DurationText.milliseconds, format: { DurationText.format(milliseconds: $0) }, kind: "duration", example: "500ms, 10s, 2m")
        let maxBytes = try bounded(
            value("max_response_bytes"), "\(path).max_response_bytes", default: ToolDefinition.defaultMaxResponseBytes,
            max: ToolDefinition.maxMaxResponseBytes, parse: { ByteSize.parse($0, below: 1e15) }, format: ByteSize.format, kind: "size", example: "64K, 1M")
        var description: String?
        if let e = value("description") { description = try string(e.value, "\(path).description") }

        let context = ToolContext(path: path, args: args, argNodes: argNodes, node: node)
        let kind: ToolKind
        if kindName == "http" {
            kind = .http(try readHTTP(context, value))
        } else {
            kind = .command(try readCommand(context, value))
        }
        return ToolDefinition(
            name: name, kind: kind, effect: effect, approval: approval, args: args,
            timeoutMs: timeoutMs, maxResponseBytes: maxBytes, description: description
        )
    }

    struct ToolContext {
        let path: String
        let args: [String: ArgumentSpec]
        let argNodes: [String: Node]
        let node: Node
    }

    func readArgument(name: String, _ node: Node, _ path: String) throws(ConfigError) -> ArgumentSpec {
        let types = ArgumentSpec.ValueType.allCases.map(\.rawValue).joined(separator: ", ")
        // Shorthand: `title: string`.
        if case .scalar = node, !Self.isNull(node) {
            let text = try string(node, path)
            guard let type = ArgumentSpec.ValueType(rawValue: text) else {
                throw error(node, path, "unknown argument type \"\(text)\" (\(types))")
            }
            return ArgumentSpec(name: name, type: type)
        }
        let all = try entries(node, path, allowed: [
            "type", "optional", "default", "pattern", "min_length", "max_length",
            "minimum", "maximum", "max_items", "enum", "description", "positional",
        ])
        func value(_ key: String) -> Entry? { all.first { $0.key == key && !Self.isNull($0.value) } }
        guard let typeEntry = value("type") else {
            throw error(node, path, "missing required key \"type\" (\(types))")
        }
        let typeText = try string(typeEntry.value, "\(path).type")
        guard let type = ArgumentSpec.ValueType(rawValue: typeText) else {
            throw error(typeEntry.value, "\(path).type", "unknown argument type \"\(typeText)\" (\(types))")
        }
        func only(_ key: String, _ types: [ArgumentSpec.ValueType]) throws(ConfigError) {
            if let e = value(key), !types.contains(type) {
                throw error(e.keyNode, "\(path).\(key)", "applies only to \(types.map(\.rawValue).joined(separator: " and ")) arguments")
            }
        }
        try only("pattern", [.string])
        try only("min_length", [.string])
        try only("max_length", [.string])
        try only("minimum", [.integer, .number])
        try only("maximum", [.integer, .number])
        try only("max_items", [.array])

        var optional = false
        if let e = value("optional") { optional = try bool(e.value, "\(path).optional") }
        var pattern: String?
        if let e = value("pattern") {
            let p = try string(e.value, "\(path).pattern")
            do { _ = try Regex(p) } catch let problem {
                throw error(e.value, "\(path).pattern", "invalid regular expression: \(problem)")
            }
            pattern = p
        }
        let minLength = try value("min_length").map { (e) throws(ConfigError) in try integer(e.value, "\(path).min_length") }
        let maxLength = try value("max_length").map { (e) throws(ConfigError) in try integer(e.value, "\(path).max_length") }
        let minimum = try value("minimum").map { (e) throws(ConfigError) in try number(e.value, "\(path).minimum") }
        let maximum = try value("maximum").map { (e) throws(ConfigError) in try number(e.value, "\(path).maximum") }
        let maxItems = try value("max_items").map { (e) throws(ConfigError) in try integer(e.value, "\(path).max_items") }
        var allowedValues: [JSONValue]?
        if let e = value("enum") {
            guard case .array(let items) = try json(e.value, "\(path).enum"), !items.isEmpty else {
                throw error(e.value, "\(path).enum", "expected a non-empty list")
            }
            allowedValues = items
        }
        var description: String?
        if let e = value("description") { description = try string(e.value, "\(path).description") }
        var positional = false
        if let e = value("positional") {
            positional = try bool(e.value, "\(path).positional")
            if positional && !type.isScalar { throw error(e.keyNode, "\(path).positional", "applies only to scalar arguments") }
        }

        let base = ArgumentSpec(
            name: name, type: type, optional: optional, defaultValue: nil, pattern: pattern,
            minLength: minLength, maxLength: maxLength, minimum: minimum, maximum: maximum,
            maxItems: maxItems, allowedValues: allowedValues, description: description, positional: positional
        )
        if let e = value("enum"), let items = allowedValues {
            for item in items {
                if let problem = ToolArgumentValidator.check(base, item, checkEnum: false) {
                    throw error(e.value, "\(path).enum", "value \(ToolArgumentValidator.render(item)) is not allowed by the argument's own spec: \(problem)")
                }
            }
        }
        guard let d = value("default") else { return base }
        let defaultValue = try json(d.value, "\(path).default")
        if let problem = ToolArgumentValidator.check(base, defaultValue) {
            throw error(d.value, "\(path).default", problem)
        }
        return ArgumentSpec(
            name: name, type: type, optional: true, defaultValue: defaultValue, pattern: pattern,
            minLength: minLength, maxLength: maxLength, minimum: minimum, maximum: maximum,
            maxItems: maxItems, allowedValues: allowedValues, description: description, positional: positional
        )
    }

    /// Checks a template's placeholders: declared secrets (when `secretsAllowed`), declared scalar
    /// arguments that are always present.
    func checkPlaceholders(
        _ t: ToolTemplate, _ node: Node, _ path: String, _ ctx: ToolContext,
        where place: String, secretsAllowed: String?
    ) throws(ConfigError) {
        for name in t.secretNames {
            if let refusal = secretsAllowed { throw error(node, path, refusal) }
            guard secretValues[name] != nil else { throw error(node, path, "unknown secret \"\(name)\"") }
        }
        for name in t.argumentNames {
            guard let spec = ctx.args[name] else {
                throw error(node, path, "placeholder {\(name)} is not a declared argument")
            }
            guard spec.type.isScalar else {
                throw error(node, path, "placeholder {\(name)} refers to \(spec.type == .array ? "an array" : "an object") argument; only string, integer, number and boolean arguments can be placed in \(place)")
            }
            guard spec.alwaysPresent else {
                throw error(node, path, "placeholder {\(name)} refers to an optional argument without a default")
            }
        }
    }

    // MARK: http

    mutating func readHTTP(_ ctx: ToolContext, _ value: (String) -> Entry?) throws(ConfigError) -> HTTPToolSpec {
        let path = ctx.path
        guard let methodEntry = value("method") else {
            throw error(ctx.node, path, "missing required key \"method\" (\(HTTPToolSpec.methods.joined(separator: ", ")))")
        }
        let methodText = try string(methodEntry.value, "\(path).method")
        let method = methodText.uppercased()
        guard HTTPToolSpec.methods.contains(method) else {
            throw error(methodEntry.value, "\(path).method", "unknown method \"\(methodText)\" (\(HTTPToolSpec.methods.joined(separator: ", ")))")
        }

        // allow_hosts first: the URL's literal host is checked against it.
        guard let hostsEntry = value("allow_hosts") else {
            throw error(ctx.node, path, "missing required key \"allow_hosts\" (the hosts this tool may reach)")
        }
        var allowHosts: [String] = []
        for (i, (h, n)) in try stringList(hostsEntry.value, "\(path).allow_hosts").enumerated() {
            let host = h.lowercased()
            let bare = host.hasPrefix("*.") ? String(host.dropFirst(2)) : host
            // A range ("10.0.0.0/8") allows connecting to its addresses; it names no host.
            guard host.contains("/") ? IPRange(host) != nil : HTTPToolURL.isValidHostName(bare) else {
                throw error(n, "\(path).allow_hosts[\(i)]", "invalid host \"\(h)\" (a host name, an IP address, a CIDR range, or *.domain)")
            }
            allowHosts.append(host)
        }
        guard !allowHosts.isEmpty else { throw error(hostsEntry.value, "\(path).allow_hosts", "must list at least one host") }

        guard let urlEntry = value("url") else { throw error(ctx.node, path, "missing required key \"url\"") }
        let urlPath = "\(path).url"
        let urlText = try string(urlEntry.value, urlPath)
        let pieces: HTTPToolURL.Pieces
        do { pieces = try HTTPToolURL.split(urlText) } catch let e { throw error(urlEntry.value, urlPath, e.message) }
        let urlTemplate: ToolTemplate
        do { urlTemplate = try ToolTemplate.parse(urlText) } catch let e { throw error(urlEntry.value, urlPath, e.message) }
        try checkPlaceholders(urlTemplate, urlEntry.value, urlPath, ctx, where: "a URL", secretsAllowed: nil)
        let host: ToolTemplate, pathT: ToolTemplate, query: ToolTemplate?
        do {
            host = try ToolTemplate.parse(pieces.host)
            pathT = try ToolTemplate.parse(pieces.path)
            query = try pieces.query.map { (q) throws(ConfigError) in try ToolTemplate.parse(q) }
        } catch let e {
            throw error(urlEntry.value, urlPath, "placeholders must not span URL parts (\(e.message))")
        }
        if !host.secretNames.isEmpty || !pathT.secretNames.isEmpty {
            throw error(urlEntry.value, urlPath, "secrets may appear only in the query string of a URL (or in headers)")
        }
        if let query, !query.secretNames.isEmpty {
            // Worlds echo URLs (redirects, error pages, logs): the broker redacts the value
            // from answers, but a header keeps it out of URLs altogether.
            warnings.append("\(source): \(urlPath): secret \(query.secretNames.joined(separator: ", ")) is templated into the URL; worlds echo URLs (redirects, error pages, their logs): prefer a header. The broker redacts it from answers and the effect log")
        }
        // A host the jail chooses under a wildcard is a name the broker resolves for it: DNS
        // carries whatever the jail puts in it to whoever serves that zone. Only names the
        // policy can allow are ever resolved (allow_hosts is checked first); an enum narrows
        // them to a list.
        let openHostArguments = host.argumentNames.filter { ctx.args[$0]?.allowedValues == nil }
        if !openHostArguments.isEmpty, allowHosts.contains(where: { $0.hasPrefix("*.") }) {
            warnings.append("\(source): \(urlPath): the host comes from argument \(openHostArguments.map { "{\($0)}" }.joined(separator: ", ")) under a wildcard allow_hosts: every name the jail picks there is resolved by the broker's DNS (a channel out to whoever serves the zone); give the argument an enum of hosts")
        }
        if let literal = host.literalText {
            guard HTTPToolURL.isValidHostName(literal) else {
                throw error(urlEntry.value, urlPath, "invalid host \"\(literal)\"")
            }
            guard HTTPToolURL.hostAllowed(literal.lowercased(), allowHosts) else {
                throw error(urlEntry.value, urlPath, "host \(literal.lowercased()) is not in allow_hosts")
            }
        }
        let sample = urlTemplate.parts.map { part -> String in
            if case .literal(let text) = part { return text }
            return "x"
        }.joined()
        guard URL(string: sample) != nil, !sample.unicodeScalars.contains(where: { $0 == " " || $0.value < 0x21 || $0.value > 0x7E }) else {
            throw error(urlEntry.value, urlPath, "not a valid URL (percent-encode spaces and other special characters in the template)")
        }
        for segment in pieces.path.split(separator: "/", omittingEmptySubsequences: false) where segment == "." || segment == ".." {
            throw error(urlEntry.value, urlPath, "the path must not contain \".\" or \"..\" segments")
        }

        var headers: [HTTPToolSpec.Header] = []
        var idempotencyHeader: String? = "Idempotency-Key"
        if let e = value("idempotency_header") {
            if case .scalar = e.value, ConfigReader.tagName(e.value) == .bool, e.value.bool == false {
                idempotencyHeader = nil
            } else {
                let name = try string(e.value, "\(path).idempotency_header")
                guard ConfigNames.isHeaderName(name) else {
                    throw error(e.value, "\(path).idempotency_header", "invalid header name \"\(name)\"")
                }
                idempotencyHeader = name
            }
        }
        if let e = value("headers") {
            var seen = Set<String>()
            for h in try entries(e.value, "\(path).headers") {
                let hpath = "\(path).headers.\(h.key)"
                guard ConfigNames.isHeaderName(h.key) else { throw error(h.keyNode, hpath, "invalid header name") }
                let lower = h.key.lowercased()
                guard seen.insert(lower).inserted else { throw error(h.keyNode, hpath, "header given twice") }
                if ["host", "content-length", "transfer-encoding", "connection", "expect", "upgrade", "te"].contains(lower) {
                    throw error(h.keyNode, hpath, "this header is set by the HTTP client and cannot be configured")
                }
                if let idem = idempotencyHeader, lower == idem.lowercased() {
                    throw error(h.keyNode, hpath, "the broker sets \(idem) itself (the call's idempotency key); set idempotency_header to rename or disable it")
                }
                let t = try template(h.value, hpath)
                try checkPlaceholders(t, h.value, hpath, ctx, where: "a header", secretsAllowed: nil)
                for name in t.secretNames {
                    if let v = secretValues[name], ConfigNames.hasLineBreakOrNUL(v) {
                        throw error(h.value, hpath, "secret \"\(name)\" contains a line break or NUL and cannot go in a header")
                    }
                }
                if let literal = t.literalText, ConfigNames.hasLineBreakOrNUL(literal) {
                    throw error(h.value, hpath, "a header value cannot contain a line break")
                }
                headers.append(HTTPToolSpec.Header(name: h.key, value: t))
            }
        }

        let defaultBody: HTTPToolSpec.BodyMode = ["GET", "HEAD", "DELETE"].contains(method) ? .query : .json
        var body = defaultBody
        if let e = value("body") {
            let text = try string(e.value, "\(path).body")
            guard let b = HTTPToolSpec.BodyMode(rawValue: text) else {
                throw error(e.value, "\(path).body", "unknown body mode \"\(text)\" (json, none, query)")
            }
            if b == .json && (method == "GET" || method == "HEAD") {
                throw error(e.value, "\(path).body", "a \(method) request cannot carry a JSON body (use query or none)")
            }
            body = b
        }
        var responseHeaders = HTTPToolSpec.defaultResponseHeaders
        if let e = value("response_headers") {
            for (i, (name, n)) in try stringList(e.value, "\(path).response_headers").enumerated() {
                guard ConfigNames.isHeaderName(name) else {
                    throw error(n, "\(path).response_headers[\(i)]", "invalid header name \"\(name)\"")
                }
                if !responseHeaders.contains(name.lowercased()) { responseHeaders.append(name.lowercased()) }
            }
        }

        let spec = HTTPToolSpec(
            method: method, url: urlTemplate, scheme: pieces.scheme, host: host, port: pieces.port,
            path: pathT, query: query, allowHosts: allowHosts,
            allowPrivateNetworks: try value("allow_private_networks").map { e throws(ConfigError) in try bool(e.value, "\(path).allow_private_networks") } ?? false,
            headers: headers, body: body,
            responseHeaders: responseHeaders, idempotencyHeader: idempotencyHeader
        )
        let used = spec.templateArguments
        for name in ctx.args.keys.sorted() where !used.contains(name) {
            let spec = ctx.args[name]!
            let node = ctx.argNodes[name]
            switch body {
            case .none:
                throw error(node, "\(path).args.\(name)", "argument is not used in the URL or headers (body: none sends nothing else)")
            case .query:
                if spec.type == .object {
                    throw error(node, "\(path).args.\(name)", "an object argument cannot go in a query string (body: query)")
                }
            case .json:
                break
            }
        }
        return spec
    }

    // MARK: command

    func readCommand(_ ctx: ToolContext, _ value: (String) -> Entry?) throws(ConfigError) -> CommandToolSpec {
        let path = ctx.path
        guard let argvEntry = value("argv") else {
            throw error(ctx.node, path, "missing required key \"argv\" (the program's absolute path and its arguments)")
        }
        let list = try stringList(argvEntry.value, "\(path).argv")
        guard !list.isEmpty else { throw error(argvEntry.value, "\(path).argv", "must not be empty") }
        var argv: [ToolTemplate] = []
        for (i, (_, node)) in list.enumerated() {
            let epath = "\(path).argv[\(i)]"
            let t = try template(node, epath)
            if i == 0 {
                guard let program = t.literalText else {
                    throw error(node, epath, "the program path must not contain placeholders")
                }
                guard program.hasPrefix("/") else {
                    throw error(node, epath, "the program must be an absolute path, got \"\(program)\"")
                }
                guard ConfigFiles.exists(program) else { throw error(node, epath, "\(program) does not exist") }
                guard ConfigFiles.isExecutable(program) else { throw error(node, epath, "\(program) is not an executable file") }
            }
            try checkPlaceholders(
                t, node, epath, ctx, where: "argv",
                secretsAllowed: "secrets may not be placed in argv (any local user can read a process's arguments); pass them in env"
            )
            if let literal = t.literalText, ConfigNames.hasNUL(literal) { throw error(node, epath, "contains NUL") }
            argv.append(t)
        }
        var env: [CommandToolSpec.EnvVar] = []
        if let e = value("env") {
            for v in try entries(e.value, "\(path).env") {
                let vpath = "\(path).env.\(v.key)"
                guard ConfigNames.isEnvName(v.key) else { throw error(v.keyNode, vpath, "invalid environment variable name") }
                let t = try template(v.value, vpath)
                try checkPlaceholders(t, v.value, vpath, ctx, where: "env", secretsAllowed: nil)
                for name in t.secretNames where secretValues[name].map(ConfigNames.hasNUL) == true {
                    throw error(v.value, vpath, "secret \"\(name)\" contains NUL and cannot go in the environment")
                }
                env.append(CommandToolSpec.EnvVar(name: v.key, value: t))
            }
        }
        var cwd = "/"
        if let e = value("cwd") {
            cwd = try string(e.value, "\(path).cwd")
            guard cwd.hasPrefix("/") else { throw error(e.value, "\(path).cwd", "must be an absolute path") }
            guard ConfigFiles.isDirectory(cwd) else { throw error(e.value, "\(path).cwd", "\(cwd) is not a directory") }
        }
        let spec = CommandToolSpec(argv: argv, env: env, workingDirectory: cwd)
        let used = spec.templateArguments
        for name in ctx.args.keys.sorted() where !used.contains(name) {
            throw error(ctx.argNodes[name], "\(path).args.\(name)", "argument is not used in argv or env")
        }
        return spec
    }
}

// MARK: - Files

enum ConfigFiles {
    enum ReadResult { case success(Data), failure(String) }

    static func read(_ path: String, limit: Int) -> ReadResult {
        // O_NONBLOCK: a FIFO must not hang the broker at start-up (it is refused just below).
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
        guard fd >= 0 else { return .failure(String(cString: strerror(errno))) }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { return .failure(String(cString: strerror(errno))) }
        guard (st.st_mode & S_IFMT) == S_IFREG else { return .failure("not a regular file") }
        switch SmallFile.read(descriptor: fd, limit: limit) {
        case .success(let bytes): return .success(Data(bytes))
        case .failure(.errno(let code)): return .failure(String(cString: strerror(code)))
        case .failure(.tooLarge): return .failure("larger than \(ByteSize.format(limit))")
        }
    }

    static func mode(_ path: String) -> UInt32? {
        var st = stat()
        guard stat(path, &st) == 0 else { return nil }
        return UInt32(st.st_mode)
    }

    static func exists(_ path: String) -> Bool { mode(path) != nil }

    static func isExecutable(_ path: String) -> Bool {
        guard let m = mode(path), (m & UInt32(S_IFMT)) == UInt32(S_IFREG) else { return false }
        return access(path, X_OK) == 0
    }

    static func isDirectory(_ path: String) -> Bool {
        guard let m = mode(path) else { return false }
        return (m & UInt32(S_IFMT)) == UInt32(S_IFDIR)
    }
}
