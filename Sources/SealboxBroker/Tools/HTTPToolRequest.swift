import Foundation
import SealboxBase
import SealboxLedger

/// URL template splitting and host rules for http tools.
enum HTTPToolURL {
    struct Pieces {
        let scheme: String
        let host: String
        let port: Int?
        let path: String
        let query: String?
    }

    /// Splits a URL template into scheme, host, port, path and query (placeholders never contain
    /// '/', '?', ':', '@' or '#', so splitting the raw text is safe).
    static func split(_ text: String) throws(ConfigError) -> Pieces {
        let lower = text.lowercased()
        let scheme: String
        if lower.hasPrefix("https://") { scheme = "https" } else if lower.hasPrefix("http://") { scheme = "http" } else {
            throw ConfigError("must start with https:// or http://")
        }
        guard !text.contains("#") else { throw ConfigError("must not contain a fragment (#)") }
        let rest = text.dropFirst(scheme.count + 3)
        let authorityEnd = rest.firstIndex(where: { $0 == "/" || $0 == "?" }) ?? rest.endIndex
        let authority = String(rest[..<authorityEnd])
        guard !authority.contains("@") else { throw ConfigError("must not contain user information (user@host); put credentials in a header") }
        var host = authority
        var port: Int?
        if authority.hasPrefix("[") {
            guard let close = authority.firstIndex(of: "]") else { throw ConfigError("unterminated [ in the host") }
            host = String(authority[...close])
            let after = authority[authority.index(after: close)...]
            if !after.isEmpty {
                guard after.hasPrefix(":"), let p = Int(after.dropFirst()), (1...65535).contains(p) else { throw ConfigError("invalid port") }
                port = p
            }
        } else if let colon = authority.lastIndex(of: ":") {
            host = String(authority[..<colon])
            guard let p = Int(authority[authority.index(after: colon)...]), (1...65535).contains(p) else {
                throw ConfigError("invalid port \"\(authority[authority.index(after: colon)...])\"")
            }
            port = p
        }
        guard !host.isEmpty else { throw ConfigError("the URL has no host") }
        let afterAuthority = rest[authorityEnd...]
        var path = "/"
        var query: String?
        if let q = afterAuthority.firstIndex(of: "?") {
            let p = String(afterAuthority[..<q])
            if !p.isEmpty { path = p }
            let qs = String(afterAuthority[afterAuthority.index(after: q)...])
            if !qs.isEmpty { query = qs }
        } else if !afterAuthority.isEmpty {
            path = String(afterAuthority)
        }
        return Pieces(scheme: scheme, host: host, port: port, path: path, query: query)
    }

    /// A DNS name, an IPv4 address, or a bracketed IPv6 address.
    static func isValidHostName(_ host: String) -> Bool {
        guard !host.isEmpty, host.utf8.count <= 253 else { return false }
        if host.hasPrefix("[") {
            guard host.hasSuffix("]"), host.count > 2 else { return false }
            return host.dropFirst().dropLast().unicodeScalars.allSatisfy { $0.properties.isASCIIHexDigit || $0 == ":" || $0 == "." }
        }
        guard !host.hasPrefix("."), !host.hasPrefix("-"), !host.contains("..") else { return false }
        return host.unicodeScalars.allSatisfy {
            ($0 >= "a" && $0 <= "z") || ($0 >= "A" && $0 <= "Z") || ($0 >= "0" && $0 <= "9") || $0 == "-" || $0 == "."
        }
    }

    /// Exact match, or `*.example.com` for any name under example.com (not example.com itself).
    static func hostAllowed(_ host: String, _ allow: [String]) -> Bool {
        let h = host.lowercased()
        for entry in allow {
            if entry.hasPrefix("*.") {
                let suffix = String(entry.dropFirst(1))  // ".example.com"
                if h.hasSuffix(suffix) && h.count > suffix.count { return true }
            } else if h == entry {
                return true
            }
        }
        return false
    }

    /// RFC 3986 unreserved characters stay; every other byte is %XX.
    static func percentEncode(_ s: String) -> String {
        var out = ""
        out.reserveCapacity(s.utf8.count)
        for b in s.utf8 {
            switch b {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                 UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"):
                out.unicodeScalars.append(Unicode.Scalar(b))
            default:
                let hex = Array("0123456789ABCDEF".utf8)
                out.unicodeScalars.append("%")
                out.unicodeScalars.append(Unicode.Scalar(hex[Int(b >> 4)]))
                out.unicodeScalars.append(Unicode.Scalar(hex[Int(b & 0xF)]))
            }
        }
        return out
    }
}

/// An http tool call with every template expanded: what goes on the wire, and the secret-free
/// rendering of it for records.
struct HTTPToolRequest: Sendable {
    let method: String
    let url: URL
    /// "METHOD url" with any secret in the query shown as {secret:name}.
    let target: String
    let headers: [(name: String, value: String)]
    let body: Data?
    /// Which addresses the request may connect to.
    let egress: EgressGuard

    static func build(
        tool: ToolDefinition, spec: HTTPToolSpec, args: [String: JSONValue], secrets: SecretStore, idempotencyKey: String?
    ) throws(ToolError) -> HTTPToolRequest {
        func argument(_ name: String) throws(ToolError) -> JSONValue {
            guard let v = args[name] else { throw .badRequest("missing required argument \"\(name)\"") }
            return v
        }
        func secret(_ name: String) throws(ToolError) -> String {
            guard let v = secrets.reveal(name) else {
                throw ToolError(.toolFailed, "secret \"\(name)\" is not configured", happened: false)
            }
            return v
        }

        // Host.
        var host = ""
        for part in spec.host.parts {
            switch part {
            case .literal(let s): host += s
            case .argument(let name):
                let text = ToolArgumentValidator.text(try argument(name))
                guard !text.isEmpty, text.unicodeScalars.allSatisfy({
                    ($0 >= "a" && $0 <= "z") || ($0 >= "A" && $0 <= "Z") || ($0 >= "0" && $0 <= "9") || $0 == "-" || $0 == "."
                }) else {
                    throw .badRequest("argument \"\(name)\" is not valid in a host name")
                }
                host += text
            case .secret:
                throw ToolError(.toolFailed, "secrets cannot be placed in the host", happened: false)
            }
        }
        host = host.lowercased()
        guard HTTPToolURL.isValidHostName(host) else { throw .badRequest("invalid host name \"\(host)\"") }
        guard HTTPToolURL.hostAllowed(host, spec.allowHosts) else {
            throw .badRequest("host \(host) is not in allow_hosts for tool \(tool.name)")
        }

        // Path: argument values are percent-encoded path-segment text, so "/" and "?" in them
        // cannot change the path's shape; "." and ".." segments are refused.
        var path = ""
        for part in spec.path.parts {
            switch part {
            case .literal(let s): path += s
            case .argument(let name): path += HTTPToolURL.percentEncode(ToolArgumentValidator.text(try argument(name)))
            case .secret: throw ToolError(.toolFailed, "secrets cannot be placed in the path", happened: false)
            }
        }
        if path.split(separator: "/", omittingEmptySubsequences: false).contains(where: { $0 == "." || $0 == ".." }) {
            throw .badRequest("argument values may not form a \".\" or \"..\" path segment")
        }

        // Query: template, then (body: query) the remaining arguments.
        var query = ""
        var shownQuery = ""
        if let q = spec.query {
            for part in q.parts {
                switch part {
                case .literal(let s): query += s; shownQuery += s
                case .argument(let name):
                    let enc = HTTPToolURL.percentEncode(ToolArgumentValidator.text(try argument(name)))
                    query += enc; shownQuery += enc
                case .secret(let name):
                    query += HTTPToolURL.percentEncode(try secret(name)); shownQuery += "{secret:\(name)}"
                }
            }
        }
        let used = spec.templateArguments
        let remaining = args.filter { !used.contains($0.key) }
        var body: Data?
        switch spec.body {
        case .none:
            break
        case .query:
            var items: [String] = []
            for name in remaining.keys.sorted() {
                let key = HTTPToolURL.percentEncode(name)
                let values: [JSONValue]
                if case .array(let a) = remaining[name]! { values = a } else { values = [remaining[name]!] }
                for v in values { items.append(key + "=" + HTTPToolURL.percentEncode(ToolArgumentValidator.text(v))) }
            }
            if !items.isEmpty {
                let extra = items.joined(separator: "&")
                let sep = query.isEmpty ? "" : "&"
                query += sep + extra
                shownQuery += sep + extra
            }
        case .json:
            // Canonical v1: the bytes JSONEncoder (sorted keys) wrote before, and every digit
            // of a number past 2^53.
            body = Data(CanonicalJSON.v1.bytes(.object(remaining)))
        }

        let portText = spec.port.map { ":\($0)" } ?? ""
        let base = "\(spec.scheme)://\(host)\(portText)\(path)"
        let urlString = query.isEmpty ? base : base + "?" + query
        let shown = shownQuery.isEmpty ? base : base + "?" + shownQuery
        guard let url = URL(string: urlString), url.host?.lowercased() == host.trimmingCharacters(in: CharacterSet(charactersIn: "[]")) else {
            throw .badRequest("the expanded URL is not valid: \(shown)")
        }

        // Headers.
        var headers: [(name: String, value: String)] = []
        for h in spec.headers {
            var value = ""
            for part in h.value.parts {
                switch part {
                case .literal(let s): value += s
                case .argument(let name):
                    let text = ToolArgumentValidator.text(try argument(name))
                    // RFC 9110 §5.5: a field value is visible characters, spaces and tabs. Any
                    // other control character (not only CR, LF, NUL) is refused.
                    guard !ConfigNames.hasControlCharacter(text) else {
                        throw .badRequest("argument \"\(name)\" contains a control character and cannot go in header \(h.name)")
                    }
                    value += text
                case .secret(let name):
                    let v = try secret(name)
                    guard !ConfigNames.hasLineBreakOrNUL(v) else {
                        throw ToolError(.toolFailed, "secret \"\(name)\" contains a line break and cannot go in header \(h.name)", happened: false)
                    }
                    value += v
                }
            }
            headers.append((h.name, value))
        }
        if body != nil, !headers.contains(where: { $0.name.lowercased() == "content-type" }) {
            headers.append(("Content-Type", "application/json"))
        }
        if tool.effect != .read, let name = spec.idempotencyHeader, let key = idempotencyKey {
            guard !ConfigNames.hasLineBreakOrNUL(key) else {
                throw .badRequest("the idempotency key contains a line break")
            }
            headers.append((name, key))
        }
        return HTTPToolRequest(method: spec.method, url: url, target: "\(spec.method) \(shown)", headers: headers, body: body,
                               egress: EgressGuard(allowHosts: spec.allowHosts, allowPrivateNetworks: spec.allowPrivateNetworks))
    }
}
