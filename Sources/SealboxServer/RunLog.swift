import Logging
import SealboxJail
import SealboxRuntime

/// Who a run was for, as far as the log line is concerned.
struct RunLogContext: Sendable {
    var session: String?
    var step: String?
    var tenant: String?
    /// "ndjson" or "sse" for a streamed run.
    var stream: String?

    init(session: String? = nil, step: String? = nil, tenant: String? = nil, stream: String? = nil) {
        self.session = session
        self.step = step
        self.tenant = tenant
        self.stream = stream
    }
}

extension Logger {
    /// One line per finished run: its id, verdict and where the time went, so a slow run can
    /// be told apart from a slow queue without the metrics endpoint:
    ///   run_id, session?, step?, tenant?, status, exit_code, queue_ms, setup_ms, spawn_ms,
    ///   run_ms, teardown_ms, wall_ms
    func runFinished(_ result: RunResult, _ context: RunLogContext) {
        var metadata: Logger.Metadata = [
            "run_id": .string(result.id),
            "status": .string(result.status.rawValue),
            "exit_code": .stringConvertible(Int(result.exitCode)),
            "wall_ms": .stringConvertible(result.wallMs),
        ]
        if let phases = result.phases {
            if let queue = phases.queueMs { metadata["queue_ms"] = .stringConvertible(queue) }
            metadata["setup_ms"] = .stringConvertible(phases.setupMs)
            metadata["spawn_ms"] = .stringConvertible(phases.spawnMs)
            metadata["run_ms"] = .stringConvertible(phases.runMs)
            metadata["teardown_ms"] = .stringConvertible(phases.teardownMs)
        }
        if let session = context.session { metadata["session"] = .string(session) }
        if let step = context.step { metadata["step"] = .string(step) }
        if let tenant = context.tenant { metadata["tenant"] = .string(tenant) }
        if let stream = context.stream { metadata["stream"] = .string(stream) }
        if let replayed = result.replayed { metadata["replayed"] = .stringConvertible(replayed) }
        if let error = result.error { metadata["error"] = .string(error) }
        info("run finished", metadata: metadata)
    }
}
