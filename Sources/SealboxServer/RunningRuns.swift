import Foundation
import SealboxBase
import SealboxJail
import Synchronization

/// The runs this server executes now, by id, each with the set of its jails: listed by
/// `GET /v1/runs?state=running` and cancelled by `DELETE /v1/runs/{id}` (its jails killed; its
/// result then says `cancelled`). A run is here from its admission request to its result.
public final class RunningRuns: Sendable {
    struct Entry: Sendable {
        var id: String
        var tenant: String
        var startedAtMs: Int64
        var session: String?
        var step: String?
        var live: LiveJails
        var cancelledBy: String?
    }

    private let entries = Mutex<[String: Entry]>([:])

    public init() {}

    /// Registers run `id`; its jails go into `live`.
    func begin(_ id: String, tenant: String, session: String?, step: String?, live: LiveJails) {
        entries.withLock { $0[id] = Entry(id: id, tenant: tenant, startedAtMs: Int64(Date().timeIntervalSince1970 * 1000),
                                          session: session, step: step, live: live) }
    }

    /// The run is over; returns who cancelled it, if anyone did.
    func end(_ id: String) -> String? {
        entries.withLock { $0.removeValue(forKey: id)?.cancelledBy }
    }

    /// Kills the jails of run `id` if `identity` may see it; false when there is no such
    /// running run (or another tenant's).
    func cancel(_ id: String, by identity: APIIdentity) -> Bool {
        let live = entries.withLock { entries -> LiveJails? in
            guard var entry = entries[id], identity.canSee(ownedBy: entry.tenant) else { return nil }
            entry.cancelledBy = entry.cancelledBy ?? "key \(identity.keyID)"
            entries[id] = entry
            return entry.live
        }
        guard let live else { return false }
        live.close(reason: "cancelled by key \(identity.keyID)")
        return true
    }

    struct View: Encodable {
        var id: String
        var state = "running"
        var startedAtMs: Int64
        var session: String?
        var step: String?

        enum CodingKeys: String, CodingKey {
            case id, state, session, step
            case startedAtMs = "started_at_ms"
        }
    }

    /// The running runs `identity` may see, oldest first.
    func list(visibleTo identity: APIIdentity) -> [View] {
        entries.withLock { entries in
            entries.values.filter { identity.canSee(ownedBy: $0.tenant) }.sorted { ($0.startedAtMs, $0.id) < ($1.startedAtMs, $1.id) }
                .map { View(id: $0.id, startedAtMs: $0.startedAtMs, session: $0.session, step: $0.step) }
        }
    }
}
