import Hummingbird
import Logging

/// One log line per request: `method`, `path`, `status`, `duration_ms`. For a streamed body
/// (no Content-Length: NDJSON or SSE runs) the line is written when the body ends, so the
/// duration covers the whole stream; a body that could not be written (the client went
/// away and the kernel said so) shows as `aborted`.
struct RequestLogMiddleware<Context: RequestContext>: RouterMiddleware {
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let began = ContinuousClock.now
        let logger = context.logger
        let method = request.method.rawValue
        let path = request.uri.path
        var response: Response
        do {
            response = try await next(request, context)
        } catch {
            let status = (error as? any HTTPResponseError)?.status.code ?? 500
            Self.log(logger, method: method, path: path, status: status, since: began)
            throw error
        }
        let status = response.status.code
        guard response.body.contentLength == nil else {
            Self.log(logger, method: method, path: path, status: status, since: began)
            return response
        }
        let body = response.body
        response.body = ResponseBody { writer in
            do {
                try await body.write(writer)
                Self.log(logger, method: method, path: path, status: status, since: began)
            } catch {
                Self.log(logger, method: method, path: path, status: status, since: began, aborted: true)
                throw error
            }
        }
        return response
    }

    static func log(_ logger: Logger, method: String, path: String, status: Int, since began: ContinuousClock.Instant, aborted: Bool = false) {
        var metadata: Logger.Metadata = [
            "method": .string(method), "path": .string(path), "status": .stringConvertible(status),
            "duration_ms": .stringConvertible(milliseconds(ContinuousClock.now - began)),
        ]
        if aborted { metadata["aborted"] = .stringConvertible(true) }
        logger.info("request", metadata: metadata)
    }
}

/// A duration in milliseconds, to the microsecond.
func milliseconds(_ duration: Duration) -> Double {
    let (seconds, attoseconds) = duration.components
    return (Double(seconds) * 1_000_000 + Double(attoseconds / 1_000_000_000_000)) / 1000
}
