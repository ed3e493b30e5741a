import HTTPTypes
import SealboxAccess
import SealboxJail
import SealboxRuntime
import SealboxLedger

/// The two checks every session route makes, in API terms (the table is `TenantDirectory`):
///
///     // POST /v1/sessions, a fork's new session, a one-shot run (its run id is its session):
///     try claimSession(id, for: identity)             // 409 session_taken if another tenant has it
///     // a run in a session, its facts, a fork of it:
///     try requireSession(id, visibleTo: identity)     // 404 unless the caller's tenant owns it
extension SealboxAPI {
    /// Claims `session` for the caller's tenant (claiming one's own again is fine). 409
    /// `session_taken` when another tenant owns it: the id is chosen by the client, so it has to
    /// learn that it is taken; nothing else about that session is revealed.
    public func claimSession(_ session: String, for identity: APIIdentity) throws(APIError) {
        do {
            try access.tenants.claim(session: session, tenant: identity.tenant)
        } catch {
            switch error.code {
            case .ownedByAnotherTenant: throw APIError(.conflict, "session_taken", "session id \(session) is taken; choose another")
            case .invalidInput: throw APIError.badRequest(error.message, field: "session")
            default:
                if StorageFull.isFull(message: error.message) { throw APIError.storageFull("the key store's disk is full: no session can be created until space is freed") }
                throw APIError(.internalServerError, "key_store", error.message)
            }
        }
    }

    /// A one-shot run with tools records its calls under its run id as the session (the broker
    /// grant makes the id, inside the pipeline, so it can only be claimed once the run is
    /// back): claimed here for the caller's tenant. Until then, and if the claim fails, those
    /// calls are visible to operators only, never to another tenant. Runs without tools make no
    /// effects and are not recorded (the table would grow with every run for nothing).
    func claimOneShotRun(_ run: RunRequest, _ result: RunResult, _ identity: APIIdentity) {
        guard run.session == nil, !run.tools.isEmpty else { return }
        _ = try? access.tenants.claim(session: result.id, tenant: identity.tenant)
    }

    /// 404 unless the caller's tenant owns `session`; operators pass for any session.
    public func requireSession(_ session: String, visibleTo identity: APIIdentity) throws(APIError) {
        if identity.isOperator { return }
        // The same answer as for a session that does not exist.
        guard identity.canSee(ownedBy: try sessionOwner(session)) else { throw Self.unknownSession(session) }
    }
}

extension SealboxAPI {
    /// What a server killed with SIGKILL leaves behind, cleaned at the next start: partial
    /// blobs of writers that are gone, and sessions nobody owns that nothing refers to (made
    /// by servers that created a session before recording its owner). `RunStore` sorts out the
    /// last server's results itself. Returns what was removed, for the log.
    public func sweepLeftovers() -> (partialBlobs: Int, unownedSessions: Int) {
        let blobs = checkpoints.blobs.sweepTemporaries()
        var sessions = 0
        if let unused = try? checkpoints.unusedSessions(limit: TenantDirectory.maxBatch),
           let owners = try? access.tenants.owners(of: Set(unused)) {
            for id in unused where owners[id] == nil {
                if (try? checkpoints.removeUnusedSession(id)) == true { sessions += 1 }
            }
        }
        return (blobs, sessions)
    }
}
