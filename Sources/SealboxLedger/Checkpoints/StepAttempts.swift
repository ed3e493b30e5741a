import Foundation

/// A step that started running: written before the jail starts, so a step that never sealed
/// (the runner was killed, the machine went down) can be reported by `session facts`. It is
/// also the step's lease: while an attempt runs, another run of the same step is refused
/// (`step_running`), so two simultaneous requests never execute a step twice. It runs until
/// its runner ends it (`endedAtMs`, with the outcome) or the runner process is gone; a
/// server runs many attempts under one pid, so the end mark, not the pid, is what says a
/// finished attempt is over.
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
    /// When the runner ended the attempt without a seal (nil while it runs, or when its
    /// runner died first).
    public var endedAtMs: Int64?
    /// Why it ended without a seal: `blocked`, `failed`, `interrupted`, `not_started`.
    public var outcome: String?

    /// Every field as given (what a store reads back from its rows).
    public init(id: Int64, sessionID: String, stepKey: String, codeDigest: String, runID: String? = nil, pid: Int32, pidStart: String, startedAtMs: Int64, endedAtMs: Int64? = nil, outcome: String? = nil) {
        self.id = id
        self.sessionID = sessionID
        self.stepKey = stepKey
        self.codeDigest = codeDigest
        self.runID = runID
        self.pid = pid
        self.pidStart = pidStart
        self.startedAtMs = startedAtMs
        self.endedAtMs = endedAtMs
        self.outcome = outcome
    }

    enum CodingKeys: String, CodingKey {
        case id
        case sessionID = "session_id"
        case stepKey = "step_key"
        case codeDigest = "code_digest"
        case runID = "run_id"
        case pid
        case pidStart = "pid_start"
        case startedAtMs = "started_at_ms"
        case endedAtMs = "ended_at_ms"
        case outcome
    }

    /// Whether the attempt is still running: not ended, and its runner process is alive.
    public var runnerAlive: Bool {
        endedAtMs == nil && ProcessStart.of(pid) == pidStart
    }
}

public enum ProcessStart {
    /// Field 22 (starttime) of /proc/PID/stat, or nil when the process is gone. A zombie
    /// (killed, not yet reaped: state Z or X) counts as gone: it runs nothing any more.
    public static func of(_ pid: Int32) -> String? {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = text.lastIndex(of: ")") else { return nil }
        // Fields after the command name (which may contain spaces) start at field 3 (state).
        let fields = text[text.index(after: close)...].split(separator: " ")
        guard fields.count > 19, fields[0] != "Z", fields[0] != "X" else { return nil }
        return String(fields[19])
    }

    public static var current: String { of(getpid()) ?? "unknown" }
}
