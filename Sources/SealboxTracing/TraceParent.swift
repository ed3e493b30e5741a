import Tracing
import W3CTraceContext

/// The W3C `traceparent` of a trace context, to carry it where no HTTP request goes: from the
/// process that opens a run to its broker (the `open_run` control request), and from the broker
/// to the world (the http tool's request headers).
public enum TraceParent {
    /// The `traceparent` (and `tracestate`, when there is one) of `context`'s span, as the
    /// bootstrapped tracer writes them; empty when tracing is off or there is no span.
    public static func headers(of context: InstrumentationContext? = .current) -> [(name: String, value: String)] {
        guard let context else { return [] }
        var carrier: [(name: String, value: String)] = []
        InstrumentationSystem.instrument.inject(context, into: &carrier, using: PairInjector())
        return carrier
    }

    /// The `traceparent` of `context`'s span; nil when tracing is off or there is no span.
    public static func current(_ context: InstrumentationContext? = .current) -> String? {
        headers(of: context).first { $0.name == "traceparent" }?.value
    }

    /// The context whose spans are children of the span `value` names. A value that is not a
    /// well-formed version-00 traceparent (55 characters, lower-case hex, non-zero ids) is
    /// ignored: nil, never an error, since it may have come from anyone.
    public static func context(_ value: String?) -> InstrumentationContext? {
        guard let value, value.utf8.count == 55, value.utf8.allSatisfy({ isLowerHex($0) || $0 == UInt8(ascii: "-") }),
              (try? TraceContext(traceParentHeaderValue: value)) != nil else { return nil }
        var context = InstrumentationContext.topLevel
        InstrumentationSystem.instrument.extract(["traceparent": value], into: &context, using: DictionaryExtractor())
        return context
    }

    private static func isLowerHex(_ byte: UInt8) -> Bool {
        (byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9")) || (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "f"))
    }
}

struct PairInjector: Injector {
    func inject(_ value: String, forKey key: String, into carrier: inout [(name: String, value: String)]) {
        carrier.append((key, value))
    }
}

struct DictionaryExtractor: Extractor {
    func extract(key: String, from carrier: [String: String]) -> String? {
        carrier[key]
    }
}
