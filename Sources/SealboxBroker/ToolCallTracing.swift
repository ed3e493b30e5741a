import SealboxTracing
import Tracing

/// The span of each call a run's jail makes: `sealbox.tool_call`, a child of the run's span
/// when `open_run` named it (else a root of its own), with the run id, the tool and its effect
/// class (set by the engine once the token allows that tool), and what the call came to: ok or
/// the error code, the effect-log seq, whether it was replayed. Never the arguments or the
/// result. The http tool's request to the world carries this span as its `traceparent`.
struct ToolCallTracing: Sendable {
    let runID: String
    let parent: InstrumentationContext?

    func call(_ body: (any Span) async -> CallResponse) async -> CallResponse {
        await withSpan(SealboxSpan.toolCall, context: parent ?? .topLevel, ofKind: .server) { span in
            span.attributes[SealboxSpan.Attribute.runID] = runID
            let response = await body(span)
            if let effect = response.effect {
                span.attributes[SealboxSpan.Attribute.effectSeq] = effect.seq
                span.attributes[SealboxSpan.Attribute.effectReplayed] = effect.replayed
            }
            if let error = response.error {
                span.attributes[SealboxSpan.Attribute.errorCode] = error.code.rawValue
                span.setStatus(SpanStatus(code: .error))
            }
            return response
        }
    }
}
