import GRDB
import SealboxLedger

/// Migration v2: session families and token grants. v1 stays as released; nothing here touches
/// the `effects` columns, so every v1 record keeps its hash.
enum LedgerSchemaV2 {
    static let name = "v2-session-family-grants"

    static func migrate(_ db: Database) throws {
        try db.execute(sql: """
            -- A forked session's history is its parent's prefix, but the world does not fork: an
            -- irreversible effect sealed in any session of a family is a fact for all of them.
            -- root_id groups the family; a root maps to itself. Written once per session, never
            -- changed (a conflicting root is refused), so readers may cache it.
            CREATE TABLE session_family (
                session_id TEXT PRIMARY KEY,
                root_id TEXT NOT NULL,
                created_at_ms INTEGER NOT NULL
            );
            CREATE INDEX session_family_by_root ON session_family(root_id);

            -- Index of the chain's `grant` records: which token was minted for which run and
            -- session, for which tools, until when. A grant ends when its token or its run is
            -- revoked (`revocations`; closing a run revokes it) or when it expires.
            CREATE TABLE grants (
                token_id TEXT PRIMARY KEY,
                run_id TEXT NOT NULL,
                session_id TEXT NOT NULL,
                tools TEXT NOT NULL,
                expires_at_ms INTEGER NOT NULL,
                created_at_ms INTEGER NOT NULL,
                record_seq INTEGER NOT NULL REFERENCES effects(seq)
            );
            CREATE INDEX grants_by_session ON grants(session_id, record_seq);
            -- A starting broker revokes every grant still live: only unexpired ones are read.
            CREATE INDEX grants_by_expiry ON grants(expires_at_ms);

            -- liveGrants asks "was this token or this run revoked?" once per grant.
            CREATE INDEX revocations_by_token ON revocations(token_id) WHERE token_id IS NOT NULL;
            CREATE INDEX revocations_by_run ON revocations(run_id) WHERE run_id IS NOT NULL;
            """)
    }
}
