import Tracing

/// The names of sealbox's spans and of their attributes, in one place (docs/tracing.md lists
/// them). Attributes name and count things, never carry code, stdin, environment values,
/// file contents, tool arguments or secrets.
public enum SealboxSpan {
    /// One run through the pipeline (`RunPipeline.run`), under the request that asked for it.
    public static let run = "sealbox.run"
    /// The time a run waited for an admission slot (`sealbox serve`).
    public static let queue = "sealbox.phase.queue"
    /// "setup", "spawn", "run", "teardown": the phases a result reports, under the run.
    public static func phase(_ name: String) -> String { "sealbox.phase." + name }
    /// One call a jail made on its broker socket, under the run that was granted the tool.
    public static let toolCall = "sealbox.tool_call"

    public enum Attribute {
        public static let runID = "sealbox.run.id"
        public static let session = "sealbox.session.id"
        public static let step = "sealbox.step"
        public static let status = "sealbox.run.status"
        public static let exitCode = "sealbox.run.exit_code"
        public static let replayed = "sealbox.run.replayed"
        public static let warm = "sealbox.run.warm"
        public static let errorCode = "sealbox.error.code"
        public static let tool = "sealbox.tool.name"
        public static let effectClass = "sealbox.tool.effect_class"
        public static let effectSeq = "sealbox.effect.seq"
        public static let effectReplayed = "sealbox.effect.replayed"
    }

    /// Spans for parts of work that was timed as it happened but traced only after it ended
    /// (the jail leaf times its phases and imports no tracing): laid end to end, in order,
    /// the last ending at `end` (nanoseconds since the epoch), children of `context`.
    public static func recordSequence(_ parts: [(name: String, milliseconds: Double)], endingAt end: UInt64,
                                      context: InstrumentationContext) {
        var cursor = end
        var laid: [(name: String, start: UInt64, end: UInt64)] = []
        for part in parts.reversed() {
            let length = UInt64(max(0, part.milliseconds) * 1_000_000)
            let start = cursor >= length ? cursor - length : 0
            laid.append((part.name, start, cursor))
            cursor = start
        }
        for part in laid.reversed() {
            let span = startSpan(part.name, at: DefaultTracerClock.Timestamp(nanosecondsSinceEpoch: part.start), context: context)
            span.end(at: DefaultTracerClock.Timestamp(nanosecondsSinceEpoch: part.end))
        }
    }
}
