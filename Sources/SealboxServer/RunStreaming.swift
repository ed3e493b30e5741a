import Hummingbird
import Logging
import SealboxJail
import SealboxRuntime
import SealboxBase

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
        var run = try await readRun(&request, identity)
        // The id is fixed here so that `started` can name it before the jail exists.
        let id = run.spec.id ?? RandomID.run()
        run.spec.id = id
        let waited = try await admit(identity, connection: nil)
        // Unbounded, yet bounded by the run: the executor hands over at most the output
        // limit of each stream, so at most twice `limits.output_bytes` can wait here.
        let (events, sink) = AsyncStream.makeStream(of: RunEvent.self)
        sink.yield(.started(id: id))
        Task { [run] in
            let outcome = await execute(run, tenant: identity.tenant, output: { chunk in sink.yield(.output(chunk.stream, chunk.bytes)) })
            await admission.release(tenant: identity.tenant)
            switch outcome {
            case .success(let result):
                sink.yield(.result(finish(result, of: run, for: identity, waited: waited, logger: logger, stream: format.logName).0))
            case .failure(let error):
                metrics.rejected(error.code)
                logger.warning("run failed", metadata: ["run_id": .string(id), "code": .string(error.code), "error": .string(error.message)])
                sink.yield(.failed(error))
            }
            sink.finish()
        }
        let headers: HTTPFields = [.contentType: format.contentType, .cacheControl: "no-store"]
        return Response(status: .ok, headers: headers, body: ResponseBody { writer in
            // Runs when the body ends for any reason; after a write failed (the client went
            // away) it makes the run's further yields no-ops instead of a growing buffer.
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
