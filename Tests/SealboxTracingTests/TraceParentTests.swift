import SealboxTracing
import Testing

/// What a process accepts as a trace context from outside: well-formed W3C version-00
/// traceparents only; anything else is ignored, never an error.
@Suite struct TraceParentTests {
    @Test(arguments: [
        "", "00", "garbage",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1",  // short
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-01",  // upper-case hex
        "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",  // another version
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",  // zero trace id
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",  // zero span id
        "00_4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7_01",  // delimiters
        "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",  // not hex
        " 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",  // padded
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\n",
    ])
    func malformedIsIgnored(_ value: String) {
        #expect(TraceParent.context(value) == nil)
    }

    @Test func wellFormedIsAccepted() {
        #expect(TraceParent.context("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01") != nil)
        #expect(TraceParent.context(nil) == nil)
    }

    @Test("export is on only when the standard variables ask for it", arguments: [
        ([:], false),
        (["OTEL_SERVICE_NAME": "x"], false),
        (["OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"], true),
        (["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4318/v1/traces"], true),
        (["OTEL_EXPORTER_OTLP_ENDPOINT": ""], false),
        (["OTEL_TRACES_EXPORTER": "otlp"], true),
        (["OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"], false),
        (["OTEL_SDK_DISABLED": "true", "OTEL_TRACES_EXPORTER": "otlp"], false),
    ] as [([String: String], Bool)])
    func requested(_ environment: [String: String], _ expected: Bool) {
        #expect(TracingExport.isRequested(environment) == expected)
    }
}
