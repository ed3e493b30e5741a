/// A string from the config with `{arg}` and `{secret:name}` placeholders. `{{` and `}}` stand
/// for literal braces.
public struct ToolTemplate: Sendable, Equatable, CustomStringConvertible {
    public enum Part: Sendable, Equatable {
        case literal(String)
        case argument(String)
        case secret(String)
    }

    public let parts: [Part]
    /// The text as the operator wrote it (placeholders and all; never a secret value).
    public let source: String

    public var description: String { source }

    public var argumentNames: [String] {
        parts.compactMap { if case .argument(let n) = $0 { return n }; return nil }
    }

    public var secretNames: [String] {
        parts.compactMap { if case .secret(let n) = $0 { return n }; return nil }
    }

    public var isLiteral: Bool { argumentNames.isEmpty && secretNames.isEmpty }

    /// The text with no placeholders, when it has none.
    public var literalText: String? {
        guard isLiteral else { return nil }
        return parts.map { if case .literal(let s) = $0 { return s }; return "" }.joined()
    }

    init(parts: [Part], source: String) {
        self.parts = parts
        self.source = source
    }

    /// Parses `text`; the error is a bare message (the caller adds file, line and key path).
    static func parse(_ text: String) throws(ConfigError) -> ToolTemplate {
        var parts: [Part] = []
        var literal = ""
        var i = text.startIndex
        func flush() {
            if !literal.isEmpty { parts.append(.literal(literal)); literal = "" }
        }
        while i < text.endIndex {
            let c = text[i]
            let next = text.index(after: i)
            if c == "{" {
                if next < text.endIndex && text[next] == "{" {
                    literal.append("{"); i = text.index(after: next); continue
                }
                guard let close = text[next...].firstIndex(of: "}") else {
                    throw ConfigError("unterminated placeholder in \"\(text)\" (write {{ for a literal brace)")
                }
                let inner = String(text[next..<close])
                flush()
                if inner.hasPrefix("secret:") {
                    let name = String(inner.dropFirst("secret:".count))
                    guard ConfigNames.isIdentifier(name) else {
                        throw ConfigError("invalid secret placeholder {\(inner)} (expected {secret:NAME})")
                    }
                    parts.append(.secret(name))
                } else {
                    guard ConfigNames.isIdentifier(inner) else {
                        throw ConfigError("invalid placeholder {\(inner)} (expected {ARGUMENT} or {secret:NAME}; write {{ for a literal brace)")
                    }
                    parts.append(.argument(inner))
                }
                i = text.index(after: close)
            } else if c == "}" {
                if next < text.endIndex && text[next] == "}" {
                    literal.append("}"); i = text.index(after: next); continue
                }
                throw ConfigError("unmatched } in \"\(text)\" (write }} for a literal brace)")
            } else {
                literal.append(c)
                i = next
            }
        }
        flush()
        return ToolTemplate(parts: parts, source: text)
    }
}

enum ConfigNames {
    /// `[A-Za-z_][A-Za-z0-9_]*`, at most 64 characters: argument, secret names.
    static func isIdentifier(_ s: String) -> Bool {
        guard let first = s.unicodeScalars.first, s.unicodeScalars.count <= 64 else { return false }
        func letter(_ u: Unicode.Scalar) -> Bool { (u >= "A" && u <= "Z") || (u >= "a" && u <= "z") || u == "_" }
        return letter(first) && s.unicodeScalars.allSatisfy { letter($0) || ($0 >= "0" && $0 <= "9") }
    }

    /// `[A-Za-z0-9_.-]{1,64}`, not starting with a dot or dash: tool names.
    static func isToolName(_ s: String) -> Bool {
        guard let first = s.unicodeScalars.first, s.unicodeScalars.count <= 64, first != ".", first != "-" else { return false }
        return s.unicodeScalars.allSatisfy {
            ($0 >= "A" && $0 <= "Z") || ($0 >= "a" && $0 <= "z") || ($0 >= "0" && $0 <= "9") || $0 == "_" || $0 == "." || $0 == "-"
        }
    }

    /// An HTTP header field name (RFC 9110 token).
    static func isHeaderName(_ s: String) -> Bool {
        !s.isEmpty && s.unicodeScalars.allSatisfy {
            ($0 >= "A" && $0 <= "Z") || ($0 >= "a" && $0 <= "z") || ($0 >= "0" && $0 <= "9") || "!#$%&'*+-.^_`|~".unicodeScalars.contains($0)
        }
    }

    /// CR, LF or NUL anywhere (by Unicode scalar: "\r\n" is one Character, so Character
    /// comparisons would miss it).
    static func hasLineBreakOrNUL(_ s: String) -> Bool {
        s.unicodeScalars.contains { $0 == "\r" || $0 == "\n" || $0 == "\0" }
    }

    static func hasNUL(_ s: String) -> Bool { s.unicodeScalars.contains("\0") }

    /// C0 controls but horizontal tab, DEL, and C1 controls: not allowed in a header value.
    static func hasControlCharacter(_ s: String) -> Bool {
        s.unicodeScalars.contains { ($0.value < 0x20 && $0 != "\t") || $0.value == 0x7F || (0x80..<0xA0).contains($0.value) }
    }

    /// An environment variable name.
    static func isEnvName(_ s: String) -> Bool { isIdentifier(s) }
}
