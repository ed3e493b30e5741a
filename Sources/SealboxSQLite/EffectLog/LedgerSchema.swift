import GRDB
import SealboxLedger

/// Schema of the ledger file, applied by a GRDB `DatabaseMigrator`.
///
/// - `effects`: the append-only, hash-chained log (see `EffectHash` for the hash). seq is the
///   rowid, assigned by the writer as last seq + 1 inside a `BEGIN IMMEDIATE` transaction.
///   Triggers refuse UPDATE and DELETE, so only a deliberate tamperer (who drops them) edits it,
///   and `verify` catches that.
/// - `calls`: one row per intent, NOT chained: a cache of where each call stands, rewritten in the
///   same transaction as every record that moves it.
/// - `revocations`: persisted token/run revocations (each also a `revocation` record in the chain).
///
/// v2 (sessions can be forked, see `LedgerSchemaV2`):
/// - `session_family`: session id -> root session id, NOT chained (an index, like `calls`).
/// - `grants`: one row per minted token (each also a `grant` record in the chain), so "what
///   authority remains" is a query.
///
/// A migration, once released, is never edited: a ledger written by it must still verify and
/// migrate. Changes go into a new migration.
enum LedgerSchema {
    /// `PRAGMA application_id` of a sealbox ledger: "SBLG". Lets `init` tell a ledger from any
    /// other SQLite file.
    static let applicationID: Int32 = 0x5342_4C47

    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1-effects-calls-revocations") { db in
            try db.execute(sql: """
                CREATE TABLE effects (
                    seq INTEGER PRIMARY KEY,
                    kind TEXT NOT NULL,
                    created_at_ms INTEGER NOT NULL,
                    prev_hash TEXT NOT NULL,
                    hash TEXT NOT NULL,
                    intent_seq INTEGER REFERENCES effects(seq),
                    run_id TEXT,
                    session_id TEXT,
                    tool TEXT,
                    effect_class TEXT,
                    idempotency_key TEXT,
                    target TEXT,
                    args_digest TEXT,
                    approval TEXT,
                    token_id TEXT,
                    fresh INTEGER,
                    status TEXT,
                    response TEXT,
                    response_digest TEXT,
                    resource_version TEXT,
                    irreversible INTEGER,
                    happened INTEGER,
                    duration_ms REAL,
                    actor TEXT,
                    note TEXT
                );
                CREATE INDEX effects_by_intent ON effects(intent_seq) WHERE intent_seq IS NOT NULL;
                CREATE TRIGGER effects_no_update BEFORE UPDATE ON effects
                    BEGIN SELECT RAISE(ABORT, 'effects is append-only'); END;
                CREATE TRIGGER effects_no_delete BEFORE DELETE ON effects
                    BEGIN SELECT RAISE(ABORT, 'effects is append-only'); END;

                CREATE TABLE calls (
                    intent_seq INTEGER PRIMARY KEY REFERENCES effects(seq),
                    session_id TEXT NOT NULL,
                    run_id TEXT NOT NULL,
                    tool TEXT NOT NULL,
                    effect_class TEXT NOT NULL,
                    idempotency_key TEXT NOT NULL,
                    approval TEXT NOT NULL,
                    state TEXT NOT NULL,
                    completion_seq INTEGER REFERENCES effects(seq),
                    created_at_ms INTEGER NOT NULL,
                    updated_at_ms INTEGER NOT NULL
                );
                CREATE INDEX calls_by_key ON calls(session_id, tool, idempotency_key, intent_seq);
                CREATE INDEX calls_by_run ON calls(run_id, intent_seq);
                CREATE INDEX calls_by_state ON calls(state, intent_seq);

                CREATE TABLE revocations (
                    id INTEGER PRIMARY KEY,
                    token_id TEXT,
                    run_id TEXT,
                    reason TEXT NOT NULL,
                    created_at_ms INTEGER NOT NULL,
                    record_seq INTEGER NOT NULL REFERENCES effects(seq),
                    CHECK (token_id IS NOT NULL OR run_id IS NOT NULL)
                );
                PRAGMA application_id = \(applicationID);
                """)
        }
        migrator.registerMigration(LedgerSchemaV2.name, migrate: LedgerSchemaV2.migrate)
        migrator.registerMigration(LedgerSchemaV3.name, migrate: LedgerSchemaV3.migrate)
        migrator.registerMigration(LedgerSchemaV4.name, migrate: LedgerSchemaV4.migrate)
        return migrator
    }
}
