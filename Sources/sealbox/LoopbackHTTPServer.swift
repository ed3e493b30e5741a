import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import Synchronization

/// The no-op "world" for `sealbox bench effects`: Hummingbird on 127.0.0.1 (port chosen by the
/// kernel), answering every request `200 {}` with keep-alive, counting requests.
final class LoopbackHTTPServer: Sendable {
    let port: UInt16
    private let counter: Counter
    private let serving: Task<Void, Never>

    private final class Counter: Sendable {
        let requests = Atomic<Int>(0)
    }

    /// Starts serving; returns once it listens.
    static func start() async throws -> LoopbackHTTPServer {
        let counter = Counter()
        let (bound, continuation) = AsyncStream<Result<Int, any Error>>.makeStream()
        let app = Application(
            responder: CallbackResponder<BasicRequestContext> { request, _ in
                // The whole body is read (the broker sends a small JSON one), then answered.
                _ = try await request.body.collect(upTo: 1 << 20)
                counter.requests.add(1, ordering: .relaxed)
                var headers = HTTPFields()
                headers[.contentType] = "application/json"
                return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(string: "{}")))
            },
            configuration: .init(address: .hostname("127.0.0.1", port: 0), serverName: nil),
            onServerRunning: { channel in continuation.yield(.success(channel.localAddress?.port ?? 0)) },
            logger: Logger(label: "sealbox-bench-world", factory: { _ in SwiftLogNoOpLogHandler() })
        )
        let serving = Task {
            do {
                try await app.run()
                continuation.yield(.failure(CLIFailure(message: "bench: the loopback server stopped before it listened")))
            } catch {
                continuation.yield(.failure(CLIFailure(message: "bench: cannot listen on 127.0.0.1: \(error)")))
            }
            continuation.finish()
        }
        var results = bound.makeAsyncIterator()
        guard case .success(let port)? = await results.next(), let port = UInt16(exactly: port), port != 0 else {
            serving.cancel()
            throw CLIFailure(message: "bench: cannot listen on 127.0.0.1")
        }
        return LoopbackHTTPServer(port: port, counter: counter, serving: serving)
    }

    private init(port: UInt16, counter: Counter, serving: Task<Void, Never>) {
        self.port = port
        self.counter = counter
        self.serving = serving
    }

    var requestCount: Int { counter.requests.load(ordering: .relaxed) }

    func stop() { serving.cancel() }
}
