import Foundation

/// A step that started running: written before the jail starts, so a step that never sealed
/// (the runner was killed, the machine went down) can be reported by `session facts`.
public struct StepAttempt: Sendable, Codable, Equatable {
    public var id: Int64
    public var sessionID: String
    public var stepKey: String
    public var codeDigest: String
    public var runID: String?
    public var pid: Int32
    /// The runner's start time (/proc/PID/stat field 22), so a recycled pid is not mistaken
    /// for the runner.
    public var pidStart: String
    public var startedAtMs: Int64

    enum CodingKeys: String, CodingKey {
        case id
        case sessionID = "session_id"
        case stepKey = "step_key"
        case codeDigest = "code_digest"
        case runID = "run_id"
        case pid
        case pidStart = "pid_start"
        case startedAtMs = "started_at_ms"
    }

    /// Whether the process that started this attempt is still running.
    public var runnerAlive: Bool {
        ProcessStart.of(pid) == pidStart
    }
}

public enum ProcessStart {
    /// Field 22 (starttime) of /proc/PID/stat, or nil when the process is gone.
    public static func of(_ pid: Int32) -> String? {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = text.lastIndex(of: ")") else { return nil }
        // Fields after the command name (which may contain spaces) start at field 3.
        let fields = text[text.index(after: close)...].split(separator: " ")
        return fields.count > 19 ? String(fields[19]) : nil
    }

    public static var current: String { of(getpid()) ?? "unknown" }
}
