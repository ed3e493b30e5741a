import Logging

/// The logs of `sealbox serve`: JSON lines on stderr (`JSONLogHandler`), for the server's
/// own lines and Hummingbird's alike.
public enum ServerLogging {
    public static let levelNames = Logger.Level.allCases.map(\.rawValue).joined(separator: ", ")

    /// Makes JSON lines at `level` the process-wide default (so every `Logger` a library
    /// creates writes them too) and returns the server's logger; nil for an unknown level.
    /// Call once per process: swift-log allows one bootstrap.
    public static func bootstrap(level name: String) -> Logger? {
        guard let level = Logger.Level(rawValue: name.lowercased()) else { return nil }
        LoggingSystem.bootstrap { _ in JSONLogHandler(level: level) }
        return Logger(label: "sealbox")
    }

    /// One notice line, for callers that do not import Logging themselves (the CLI).
    public static func notice(_ message: String, to logger: Logger, metadata: [String: String] = [:]) {
        logger.notice("\(message)", metadata: metadata.mapValues { .string($0) })
    }

    /// One error line, for the CLI's start-up failures.
    public static func error(_ message: String, to logger: Logger, metadata: [String: String] = [:]) {
        logger.error("\(message)", metadata: metadata.mapValues { .string($0) })
    }

    /// A logger writing JSON lines to `sink`, without touching the process-wide default.
    public static func logger(level: Logger.Level = .info, sink: LogSink) -> Logger {
        Logger(label: "sealbox") { _ in JSONLogHandler(level: level, sink: sink) }
    }
}
