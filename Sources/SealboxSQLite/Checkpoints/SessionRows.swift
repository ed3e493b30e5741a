import GRDB
import SealboxLedger

extension SessionInfo {
    /// A row of the `sessions` table, its `root` not yet known (the session itself): the root
    /// follows from the fork edges (`Lineage.root`), it is not stored. (Files made before
    /// 2026-12 have a `root_id` column, written at fork time; nothing reads it any more.)
    static func from(_ row: Row) -> SessionInfo {
        let id: String = row["id"]
        let limit: Int64? = row["workspace_limit_bytes"]
        return SessionInfo(
            id: id, createdAtMs: row["created_at_ms"], forkedFrom: row["forked_from"], forkedAtStep: row["forked_at_step"],
            forkedAtSeq: row["forked_at_seq"], root: id,
            workspaceLimitBytes: limit.map { UInt64($0) } ?? defaultWorkspaceLimit)
    }

    /// The session `id` with its family's root, or nil when unknown.
    static func fetch(_ id: String, in db: Database) throws -> SessionInfo? {
        guard var info = try Row.fetchOne(db, sql: "SELECT * FROM sessions WHERE id = ?", arguments: [id]).map(SessionInfo.from) else {
            return nil
        }
        if info.forkedFrom != nil, let lineage = try Lineage.of(id, in: db) { info.root = lineage.root }
        return info
    }
}

/// Which checkpoints a session sees: its own, and for a fork, its parent's up to the fork
/// point, recursively. Each element bounds one session's checkpoints by seq.
struct Lineage {
    struct Segment {
        var session: String
        var maxSeq: Int64?
    }

    var segments: [Segment]

    /// The family's root: the oldest session of the lineage (the one not forked from another).
    /// A session's family is recorded once, as the fork edges; the effect log keeps the root a
    /// broker was told (`session_family`), which the runtime takes from here.
    var root: String { segments[segments.count - 1].session }

    /// Forks nest at most this deep; a longer chain is a corrupt store, not a real history.
    static let maximumDepth = 1000

    static func of(_ session: String, in db: Database) throws -> Lineage? {
        guard var info = try Row.fetchOne(db, sql: "SELECT * FROM sessions WHERE id = ?", arguments: [session]).map(SessionInfo.from) else {
            return nil
        }
        var segments = [Segment(session: session, maxSeq: nil)]
        var bound: Int64?
        while let parent = info.forkedFrom, segments.count < maximumDepth {
            if let at = info.forkedAtSeq { bound = bound.map { min($0, at) } ?? at }
            guard let next = try Row.fetchOne(db, sql: "SELECT * FROM sessions WHERE id = ?", arguments: [parent]).map(SessionInfo.from) else { break }
            segments.append(Segment(session: parent, maxSeq: bound))
            info = next
        }
        return Lineage(segments: segments)
    }

    /// A WHERE clause selecting the checkpoints this lineage sees.
    var condition: (sql: String, arguments: StatementArguments) {
        var parts: [String] = []
        var arguments: [(any DatabaseValueConvertible)?] = []
        for segment in segments {
            if let maxSeq = segment.maxSeq {
                parts.append("(session_id = ? AND seq <= ?)")
                arguments.append(segment.session)
                arguments.append(maxSeq)
            } else {
                parts.append("(session_id = ?)")
                arguments.append(segment.session)
            }
        }
        return ("(" + parts.joined(separator: " OR ") + ")", StatementArguments(arguments))
    }
}
