import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import Synchronization

/// A span as the receiver decoded it from OTLP/JSON: ids in lower-case hex.
struct ExportedSpan: Sendable, CustomStringConvertible {
    var service: String
    var name: String
    var traceID: String
    var spanID: String
    var parentSpanID: String
    var attributes: [String: String]

    var description: String { "\(service) \(name) trace=\(traceID) span=\(spanID) parent=\(parentSpanID) \(attributes)" }
}

/// A loopback HTTP server (Hummingbird) for the tests: an OTLP/HTTP receiver at POST
/// /v1/traces (JSON: `sealbox serve` is started with OTEL_EXPORTER_OTLP_PROTOCOL=http/json),
/// and a "world" at GET /hello for the broker's http tool, which records the `traceparent` it
/// was sent. Tests wait on what arrived (`waitForSpans`), never on a fixed sleep.
final class LoopbackReceiver: Sendable {
    private let spans = Mutex<[ExportedSpan]>([])
    private let exports = Atomic<Int>(0)
    private let worldTraceparents = Mutex<[String]>([])
    /// Woken whenever something arrives.
    private let waiters = Mutex<[UInt64: CheckedContinuation<Void, Never>]>([:])
    private let nextWaiter = Atomic<UInt64>(0)

    var received: [ExportedSpan] { spans.withLock { $0 } }
    var exportRequests: Int { exports.load(ordering: .acquiring) }
    var traceparentsSeenByWorld: [String] { worldTraceparents.withLock { $0 } }

    /// Runs the server on a free loopback port for the duration of `body`.
    static func with<T: Sendable>(_ body: @Sendable (LoopbackReceiver, Int) async throws -> T) async throws -> T {
        let receiver = LoopbackReceiver()
        let router = Router()
        router.post("v1/traces") { request, _ -> Response in
            let bytes = try await request.body.collect(upTo: 16 << 20)
            receiver.accept(Data(bytes.readableBytesView))
            return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: "{}")))
        }
        router.get("hello") { request, _ -> Response in
            receiver.worldTraceparents.withLock { $0.append(request.headers[HTTPField.Name("traceparent")!] ?? "") }
            receiver.wake()
            return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: #"{"hello":"world"}"#)))
        }
        let bound = AsyncStream<Int>.makeStream()
        var logger = Logger(label: "receiver")
        logger.logLevel = .critical
        let app = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)),
                              onServerRunning: { channel in bound.continuation.yield(channel.localAddress?.port ?? 0) }, logger: logger)
        return try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await app.run() }
            var ports = bound.stream.makeAsyncIterator()
            guard let port = await ports.next(), port > 0 else { throw ReceiverError("the receiver did not bind a port") }
            defer { group.cancelAll() }
            return try await body(receiver, port)
        }
    }

    /// Waits until `done` holds for what arrived (true), or `timeout` passed (false).
    func waitUntil(timeout: Duration, _ done: @Sendable (LoopbackReceiver) -> Bool) async -> Bool {
        let deadline = ContinuousClock.now + timeout
        while !done(self) {
            guard ContinuousClock.now < deadline else { return false }
            let id = nextWaiter.wrappingAdd(1, ordering: .relaxed).oldValue
            // Woken by the next arrival, or by the deadline's own wake-up.
            let timer = Task {
                try? await Task.sleep(until: deadline, clock: .continuous)
                self.wake()
            }
            await withCheckedContinuation { continuation in
                waiters.withLock { $0[id] = continuation }
                // Something may have arrived between the check above and registering.
                if done(self) || ContinuousClock.now >= deadline { wake() }
            }
            timer.cancel()
        }
        return true
    }

    private func wake() {
        let all = waiters.withLock { list in defer { list = [:] }; return Array(list.values) }
        for waiter in all { waiter.resume() }
    }

    private func accept(_ body: Data) {
        exports.wrappingAdd(1, ordering: .releasing)
        let decoded = Self.decode(body)
        spans.withLock { $0 += decoded }
        wake()
    }

    /// OTLP/JSON `ExportTraceServiceRequest`, as much as the tests read.
    static func decode(_ body: Data) -> [ExportedSpan] {
        guard let root = try? JSONSerialization.jsonObject(with: body) as? [String: Any] else { return [] }
        var out: [ExportedSpan] = []
        for resourceSpans in root["resourceSpans"] as? [[String: Any]] ?? [] {
            let resource = attributes((resourceSpans["resource"] as? [String: Any])?["attributes"])
            for scope in resourceSpans["scopeSpans"] as? [[String: Any]] ?? [] {
                for span in scope["spans"] as? [[String: Any]] ?? [] {
                    out.append(ExportedSpan(
                        service: resource["service.name"] ?? "", name: span["name"] as? String ?? "",
                        traceID: hexID(span["traceId"]), spanID: hexID(span["spanId"]), parentSpanID: hexID(span["parentSpanId"]),
                        attributes: attributes(span["attributes"])))
                }
            }
        }
        return out
    }

    /// Attribute values as text (strings, numbers and booleans are all the tests compare).
    static func attributes(_ list: Any?) -> [String: String] {
        var out: [String: String] = [:]
        for attribute in list as? [[String: Any]] ?? [] {
            guard let key = attribute["key"] as? String, let value = attribute["value"] as? [String: Any], let first = value.first else { continue }
            out[key] = "\(first.value)"
        }
        return out
    }

    /// An id as lower-case hex: the OTLP/JSON spec writes hex, protobuf's JSON mapping base64.
    static func hexID(_ value: Any?) -> String {
        guard let text = value as? String, !text.isEmpty else { return "" }
        if (text.count == 32 || text.count == 16), text.allSatisfy(\.isHexDigit) { return text.lowercased() }
        guard let bytes = Data(base64Encoded: text) else { return "?" + text }
        return bytes.map { String(format: "%02x", $0) }.joined()
    }
}

struct ReceiverError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
