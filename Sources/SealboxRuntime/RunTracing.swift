import SealboxJail
import SealboxTracing
import Tracing

/// The spans of one run: `sealbox.run` (ids, session and step, the verdict) and, for a run
/// that executed, one span per phase its result reports. The jail times the phases itself
/// (it imports no tracing), so their spans are laid end to end after the fact, the last ending
/// when the jail's result came back.
enum RunTracing {
    static func start(_ plan: RunPlan) -> any Span {
        let span = startSpan(SealboxSpan.run)
        if let session = plan.session { span.attributes[SealboxSpan.Attribute.session] = session }
        if let step = plan.step { span.attributes[SealboxSpan.Attribute.step] = step }
        return span
    }

    static func finished(_ result: RunResult, on span: any Span) {
        span.attributes[SealboxSpan.Attribute.runID] = result.id
        span.attributes[SealboxSpan.Attribute.status] = result.status.rawValue
        span.attributes[SealboxSpan.Attribute.exitCode] = Int64(result.exitCode)
        if let replayed = result.replayed { span.attributes[SealboxSpan.Attribute.replayed] = replayed }
        if let warm = result.phases?.warm { span.attributes[SealboxSpan.Attribute.warm] = warm }
    }

    /// The code only: a message may name host paths.
    static func failed(_ error: RuntimeError, on span: any Span) {
        span.attributes[SealboxSpan.Attribute.errorCode] = error.code.rawValue
        span.setStatus(SpanStatus(code: .error))
    }

    static func phases(of result: RunResult, context: InstrumentationContext) {
        guard let phases = result.phases else { return }
        SealboxSpan.recordSequence([
            (SealboxSpan.phase("setup"), phases.setupMs), (SealboxSpan.phase("spawn"), phases.spawnMs),
            (SealboxSpan.phase("run"), phases.runMs), (SealboxSpan.phase("teardown"), phases.teardownMs),
        ], endingAt: DefaultTracerClock.now.nanosecondsSinceEpoch, context: context)
    }
}
