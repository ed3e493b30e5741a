/// The languages a snippet may be written in: where the snippet goes in /work and which
/// interpreter runs it. Shared by `sealbox run --lang` and the API's `language`.
public enum SnippetLanguage: String, Sendable, CaseIterable {
    case python, node, bash, sh

    public var fileName: String {
        switch self {
        case .python: return "main.py"
        case .node: return "main.js"
        case .bash, .sh: return "main.sh"
        }
    }

    public var interpreter: String {
        switch self {
        case .python: return "python3"
        case .node: return "node"
        case .bash: return "bash"
        case .sh: return "sh"
        }
    }

    /// The seed file and the command that runs `code` with `arguments`.
    public func program(code: [UInt8], arguments: [String]) -> (file: SeedFile, command: [String]) {
        (SeedFile(name: fileName, contents: code), [interpreter, "/work/" + fileName] + arguments)
    }

    public static var names: String { allCases.map(\.rawValue).joined(separator: ", ") }
}
