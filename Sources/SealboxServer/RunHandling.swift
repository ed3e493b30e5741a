import Foundation
import Hummingbird
import Logging
import NIOCore
import SealboxBase
import SealboxJail
import SealboxRuntime
import SealboxProfiles

/// What the API adds to `RunService` for every run it takes, `POST /v1/runs` (plain or
/// streamed) or MCP at /mcp: the body read strictly, the key as the caller, and once the jail
/// is done the result recorded (store, metrics, log line).
extension SealboxAPI {
    /// The body, parsed strictly: 413 beyond `maxBodyBytes`, 400 naming the bad field.
    func readRun(_ request: inout Request) async throws(APIError) -> RunRequest {
        let body: ByteBuffer
        do {
            body = try await request.collectBody(upTo: configuration.maxBodyBytes)
        } catch {
            throw APIError(.contentTooLarge, "payload_too_large", "the request body is larger than \(ByteSize.format(UInt64(configuration.maxBodyBytes)))")
        }
        return try RunRequest.parse(Data(body.readableBytesView), configuration: configuration)
    }

    /// The profiles `identity` may name: its key's grant, else the server's.
    func profileGrant(for identity: APIIdentity) -> ProfileGrant {
        identity.profiles ?? configuration.profiles
    }

    /// A key as the run service's caller: its tenant's slots and sessions, its profile grant.
    public func caller(_ identity: APIIdentity) -> RunCaller {
        RunCaller(tenant: identity.tenant, profiles: profileGrant(for: identity), name: "key \(identity.keyID)") { session throws(APIError) in
            try requireSession(session, visibleTo: identity)
        }
    }

    /// Runs `run` for `identity` through the run service (400/403 for its profile, 404 for a
    /// session the caller's tenant does not own, 429/503 for a slot) and records the result.
    /// Returns the result and its bytes as the store keeps them. `stream`: how a streamed run
    /// was sent, for the log; `whenGone`, `admitted`, `live`, `output`: as for `RunService.run`.
    public func run(_ run: RunRequest, for identity: APIIdentity, live: LiveJails? = nil, output: OutputObserver? = nil,
                    whenGone: (@Sendable (_ abandon: @escaping @Sendable () -> Void) -> Void)? = nil,
                    admitted: (@Sendable () -> Void)? = nil, logger: Logger, stream: String? = nil) async -> Result<(RunResult, Data), APIError> {
        // Known before the run starts, so `DELETE /v1/runs/{id}` can reach its jails.
        var run = run
        let id = run.spec.id ?? RandomID.run()
        run.spec.id = id
        let jails = live ?? LiveJails(parent: liveJails)
        running.begin(id, tenant: identity.tenant, session: run.session, step: run.step, live: jails)
        let outcome = await runs.run(run, for: caller(identity), live: jails, output: output, whenGone: whenGone, admitted: admitted)
        let cancelledBy = running.end(id)
        switch outcome {
        case .success(var outcome):
            if cancelledBy != nil, outcome.result.replayed != true, outcome.result.status != .ok {
                outcome.result.jail.status = .cancelled
            }
            return .success(finish(outcome, of: run, for: identity, logger: logger, stream: stream))
        case .failure(.refused(let error)):
            return .failure(error)
        case .failure(.pipeline(let error)):
            return .failure(tenantSafe(APIError(error)))
        }
    }

    /// Stamps the queue time, then keeps the result for GET /v1/runs/{id} (the caller's
    /// tenant's), counts it in the metrics and writes its log line.
    private func finish(_ outcome: RunService.Outcome, of run: RunRequest, for identity: APIIdentity, logger: Logger,
                        stream: String?) -> (RunResult, Data) {
        var result = outcome.result
        result.phases?.queueMs = milliseconds(outcome.waited)
        metrics.record(result)
        let encoded = store.put(result, tenant: identity.tenant)
        claimOneShotRun(run, result, identity)
        logger.runFinished(result, RunLogContext(session: run.session, step: run.step, tenant: identity.tenant, stream: stream))
        return (result, encoded)
    }
}
