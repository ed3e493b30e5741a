import Foundation
import Hummingbird
import Logging
import NIOCore
import SealboxBase
import SealboxJail
import SealboxRuntime
import SealboxProfiles
import SealboxTracing
import Tracing

/// The steps every `POST /v1/runs` goes through, streamed or not: read the body, take an
/// admission slot, and once the jail is done record the result (store, metrics, log line).
extension SealboxAPI {
    /// The body, parsed strictly: 413 beyond `maxBodyBytes`, 400 naming the bad field; 404
    /// for a session the caller's tenant does not own.
    func readRun(_ request: inout Request, _ identity: APIIdentity) async throws(APIError) -> RunRequest {
        let body: ByteBuffer
        do {
            body = try await request.collectBody(upTo: configuration.maxBodyBytes)
        } catch {
            throw APIError(.contentTooLarge, "payload_too_large", "the request body is larger than \(ByteSize.format(UInt64(configuration.maxBodyBytes)))")
        }
        let run = try RunRequest.parse(Data(body.readableBytesView), configuration: configuration)
        try requireProfile(run.profile, for: identity)
        if let session = run.session { try requireSession(session, visibleTo: identity) }
        return run
    }

    /// The profiles `identity` may name: its key's grant, else the server's.
    func profileGrant(for identity: APIIdentity) -> ProfileGrant {
        identity.profiles ?? configuration.profiles
    }

    /// 400 for a name that is not in the catalog, 403 for one the key may not use. The
    /// catalog is looked up by name: never a path, never relative to the working directory.
    public func requireProfile(_ name: String, for identity: APIIdentity) throws(APIError) {
        do {
            try profileGrant(for: identity).check(name, catalog: ProfileCatalog(directory: executor.profilesDirectory), who: "key \(identity.keyID)")
        } catch {
            throw error.forbidden ? APIError(.forbidden, "profile_not_allowed", error.message, field: "profile") : .badRequest(error.message, field: "profile")
        }
    }

    /// Takes a slot for the caller's tenant, waiting in the queue if need be; 429 when the
    /// queue (or the tenant's share of it) is full, 503 once the server is shutting down.
    /// `connection`: when it closes while the run waits, the run is dropped before it starts
    /// (a streamed run passes nil: it belongs to the server once admitted). Returns how long
    /// the run waited. The caller must `admission.release(tenant:)` once the jail is gone.
    public func admit(_ identity: APIIdentity, connection: (any Channel)?) async throws(APIError) -> Duration {
        // The queue phase, traced under the request (beside the run's own span).
        let span = startSpan(SealboxSpan.queue)
        defer { span.end() }
        let arrived = ContinuousClock.now
        if await admission.tryAcquire(tenant: identity.tenant) { return .zero }
        let ticket = await admission.ticket()
        // Registered only for a run that waits: a keep-alive connection's many quick runs
        // add nothing to its close callbacks.
        if let connection {
            connections.whenGone(connection) {
                Task { await self.admission.abandon(ticket) }
            }
        }
        do {
            try await admission.acquire(tenant: identity.tenant, ticket: ticket)
        } catch {
            if error.shuttingDown {
                throw APIError(.serviceUnavailable, "shutting_down", "the server is shutting down and takes no new runs; retry on another instance or after its restart", retryAfter: 5)
            }
            if error.abandoned {
                throw APIError(.init(code: 499, reasonPhrase: "Client Closed Request"), "client_closed", "the caller went away while the run waited for a slot; it was not started")
            }
            if error.tenantShare {
                throw APIError(.tooManyRequests, "busy", "tenant \(identity.tenant) has \(admission.maxQueuedPerTenant) runs waiting, its whole share of the queue; retry later", retryAfter: 1)
            }
            throw APIError(.tooManyRequests, "busy", "\(error.running) runs are executing and \(error.queued) are waiting, the most this server takes; retry later", retryAfter: 1)
        }
        return ContinuousClock.now - arrived
    }

    /// Stamps the queue time, then keeps the result for GET /v1/runs/{id} (the caller's
    /// tenant's), counts it in the metrics and writes its log line. `stream`: how a streamed
    /// run was sent, for the log.
    public func finish(_ result: RunResult, of run: RunRequest, for identity: APIIdentity, waited: Duration, logger: Logger,
                stream: String? = nil) -> (RunResult, Data) {
        var result = result
        result.phases?.queueMs = milliseconds(waited)
        metrics.record(result)
        let encoded = store.put(result, tenant: identity.tenant)
        claimOneShotRun(run, result, identity)
        logger.runFinished(result, RunLogContext(session: run.session, step: run.step, tenant: identity.tenant, stream: stream))
        return (result, encoded)
    }
}
