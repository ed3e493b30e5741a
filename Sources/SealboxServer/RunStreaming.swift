import Hummingbird
import Logging
import SealboxJail
import SealboxRuntime
import SealboxBase
import Synchronization

/// `POST /v1/runs` with `Accept: application/x-ndjson` or `text/event-stream`: 200 and a
/// chunked stream of `RunEvent`s — `started`, then `stdout`/`stderr` as the program writes
/// them, and last `result` (the object a plain POST answers with 201) or `error`.
///
/// Everything before the 200 is the same as for a plain run: 400/413 for the body, 429 when
/// the admission queue is full. A jail that cannot be set up after the 200 ends the stream
/// with an `error` event carrying the code and message the plain POST would have answered.
///
/// The run belongs to the server, not to the connection: a client that goes away does not
/// cancel it. The jail runs to its end (or its own timeout kills it), frees its admission
/// slot, and lands in the run store, the metrics and the log like any other run; output
/// after the client left is dropped instead of buffered.
extension SealboxAPI {
    func streamRun(_ request: inout Request, _ identity: APIIdentity, format: RunStreamFormat, logger: Logger) async throws(APIError) -> Response {
        var run = try await readRun(&request)
        // The id is fixed here so that `started` can name it before the jail exists.
        let id = run.spec.id ?? RandomID.run()
        run.spec.id = id
        // Unbounded, yet bounded by the run: the executor hands over at most the output
        // limit of each stream, so at most twice `limits.output_bytes` can wait here.
        let (events, sink) = AsyncStream.makeStream(of: RunEvent.self)
        let gate = AdmissionGate()
        Task { [run] in
            let outcome = await self.run(run, for: identity, output: { chunk in sink.yield(.output(chunk.stream, chunk.bytes)) },
                                         admitted: {
                                             sink.yield(.started(id: id))
                                             gate.open()
                                         }, logger: logger, stream: format.logName)
            switch outcome {
            case .success(let (result, _)):
                sink.yield(.result(result))
            case .failure(let error) where gate.isOpen:
                metrics.rejected(error.code)
                logger.warning("run failed", metadata: ["run_id": .string(id), "code": .string(error.code), "error": .string(error.message)])
                sink.yield(.failed(error))
            case .failure(let error):
                // Refused before a slot was taken: the handler answers it with its status.
                gate.refuse(error)
            }
            sink.finish()
        }
        try await gate.wait()
        return Self.eventStream(events, closing: sink, format: format)
    }

    /// 200 and `events` framed as `format`, until `result` or `error`: the body of every
    /// streamed answer (runs, sandbox commands). Output is passed on in whole UTF-8 characters.
    static func eventStream(_ events: AsyncStream<RunEvent>, closing sink: AsyncStream<RunEvent>.Continuation, format: RunStreamFormat) -> Response {
        let headers: HTTPFields = [.contentType: format.contentType, .cacheControl: "no-store"]
        return Response(status: .ok, headers: headers, body: ResponseBody { writer in
            // Runs when the body ends for any reason; after a write failed (the client went
            // away) it makes the producer's further yields no-ops instead of a growing buffer.
            defer { sink.finish() }
            var joiners: [OutputChunk.Stream: UTF8ChunkJoiner] = [.stdout: .init(), .stderr: .init()]
            for await event in events {
                switch event {
                case .output(let stream, let bytes):
                    let ready = joiners[stream, default: .init()].take(bytes)
                    if !ready.isEmpty { try await writer.write(format.frame(.output(stream, ready))) }
                case .result, .failed:
                    for stream in [OutputChunk.Stream.stdout, .stderr] {
                        let rest = joiners[stream, default: .init()].flush()
                        if !rest.isEmpty { try await writer.write(format.frame(.output(stream, rest))) }
                    }
                    try await writer.write(format.frame(event))
                case .started:
                    try await writer.write(format.frame(event))
                }
            }
            try await writer.finish(nil)
        })
    }
}

extension RunStreamFormat {
    /// How the run's log line names the format.
    var logName: String {
        switch self {
        case .ndjson: "ndjson"
        case .serverSentEvents: "sse"
        }
    }
}

/// Whether a streamed run got its slot, for the handler that waits to answer 200 or the
/// refusal's status: the run itself goes on in a task of its own, so that it belongs to the
/// server and not to the connection.
final class AdmissionGate: Sendable {
    private let outcomes: AsyncStream<APIError?>
    private let outcome: AsyncStream<APIError?>.Continuation
    private let opened = Mutex(false)

    init() {
        // The first word is the one that counts: admitted (nil) or refused.
        (outcomes, outcome) = AsyncStream.makeStream(bufferingPolicy: .bufferingOldest(1))
    }

    var isOpen: Bool { opened.withLock { $0 } }

    func open() {
        opened.withLock { $0 = true }
        outcome.yield(nil)
        outcome.finish()
    }

    func refuse(_ error: APIError) {
        outcome.yield(error)
        outcome.finish()
    }

    /// Returns once the run has its slot; throws the refusal.
    func wait() async throws(APIError) {
        for await refusal in outcomes {
            if let refusal { throw refusal }
            return
        }
    }
}
