/// One problem `sealbox profile check` found, located in the file.
public struct ProfileDiagnostic: Sendable, Equatable, Codable, CustomStringConvertible {
    public enum Severity: String, Sendable, Codable {
        /// The profile is refused (`sealbox run --profile` fails with the same words).
        case error
        /// The profile loads, but something in it does not do what it seems to, or does nothing.
        case warning
    }

    public var severity: Severity
    /// 1-based line and column (in bytes) of the JSON value the problem is about.
    public var line: Int
    public var column: Int
    /// JSON path such as `syscalls[3].action`; "" for the file as a whole (a syntax error).
    public var path: String
    public var message: String

    public init(severity: Severity, line: Int, column: Int, path: String, message: String) {
        self.severity = severity
        self.line = line
        self.column = column
        self.path = path
        self.message = message
    }

    /// `LINE:COL: error: PATH: message` (prefix it with the file name for the compiler-style line).
    public var description: String {
        "\(line):\(column): \(severity.rawValue): \(path.isEmpty ? "" : "\(path): ")\(message)"
    }
}

/// Where reading and validation report problems. The same checks serve two callers:
/// `sealbox run` (and every other loader) wants the first error thrown, exactly as before, and
/// pays nothing for warnings; `sealbox profile check` wants every error and warning, so each
/// check records its problem and validation goes on with what is still usable.
struct DiagnosticCollector {
    enum Mode {
        case throwFirstError
        case collectAll
    }

    struct Entry: Equatable {
        var severity: ProfileDiagnostic.Severity
        var path: String
        var message: String
        /// Locate the member name rather than its value (unknown keys).
        var atKey = false
    }

    let mode: Mode
    private(set) var entries: [Entry] = []
    private(set) var errorCount = 0

    init(mode: Mode) {
        self.mode = mode
    }

    /// Warnings are only worth computing when they are kept.
    var collectsWarnings: Bool { mode == .collectAll }

    /// Throws `problem` in `.throwFirstError` mode; records it in `.collectAll` mode.
    mutating func error(_ problem: FieldError) throws(FieldError) {
        guard mode == .collectAll else { throw problem }
        errorCount += 1
        entries.append(Entry(severity: .error, path: problem.path, message: problem.problem))
    }

    mutating func warning(_ path: String, _ message: String, atKey: Bool = false) {
        guard mode == .collectAll else { return }
        entries.append(Entry(severity: .warning, path: path, message: message, atKey: atKey))
    }

    /// Runs `body`; if it fails, reports the problem (rethrown in `.throwFirstError` mode) and
    /// returns nil so the caller can go on without that value.
    mutating func recover<T>(_ body: () throws(FieldError) -> T) throws(FieldError) -> T? {
        do {
            return try body()
        } catch {
            try self.error(error)
            return nil
        }
    }
}
