import Foundation
import SealboxBase
import SealboxLedger

/// Removes every secret value the broker holds from what leaves it: a tool's result (headers
/// and body of an http answer, stdout and stderr of a command) and error messages, before the
/// jail sees them and before the effect log stores them. A world that answers a request whose
/// URL held `key={secret:tok}` with `301 Location: …&key=…` (or echoes its URL in a body)
/// would otherwise hand the credential to the jail and write it into the log.
///
/// Each value is matched raw, percent-encoded (as a URL query carries it) and in base64 (as a
/// Basic credential carries it), and replaced by `[redacted:NAME]`. Values shorter than
/// `minimumLength` are not matched (they would redact ordinary text); config loading warns
/// about them.
public struct SecretRedactor: Sendable {
    public static let minimumLength = 6

    private let patterns: [(text: String, name: String)]

    public init(_ secrets: SecretStore) {
        var patterns: [(String, String)] = []
        for name in secrets.names {
            guard let value = secrets.reveal(name), value.count >= Self.minimumLength else { continue }
            var forms: Set<String> = [value]
            if let encoded = value.addingPercentEncoding(withAllowedCharacters: .urlQueryValueAllowed) { forms.insert(encoded) }
            if let encoded = value.addingPercentEncoding(withAllowedCharacters: .alphanumerics) { forms.insert(encoded) }
            forms.insert(Data(value.utf8).base64EncodedString())
            for form in forms { patterns.append((form, name)) }
        }
        // Longest first, so a value that contains another is replaced whole.
        self.patterns = patterns.sorted { $0.0.count > $1.0.count }
    }

    public var isEmpty: Bool { patterns.isEmpty }

    public func redact(_ text: String) -> String {
        guard !patterns.isEmpty else { return text }
        var out = text
        for (pattern, name) in patterns where out.contains(pattern) {
            out = out.replacingOccurrences(of: pattern, with: "[redacted:\(name)]")
        }
        return out
    }

    public func redact(_ value: JSONValue) -> JSONValue {
        guard !patterns.isEmpty else { return value }
        switch value {
        case .string(let text): return .string(redact(text))
        case .array(let items): return .array(items.map(redact))
        case .object(let members):
            var out: [String: JSONValue] = [:]
            for (key, member) in members { out[redact(key)] = redact(member) }
            return .object(out)
        default: return value
        }
    }

    public func redact(_ error: ToolError) -> ToolError {
        guard !patterns.isEmpty else { return error }
        return ToolError(error.code, redact(error.message), happened: error.happened)
    }
}

extension CharacterSet {
    /// What a query value may hold unencoded (RFC 3986 unreserved).
    static let urlQueryValueAllowed = CharacterSet(charactersIn: "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
}
