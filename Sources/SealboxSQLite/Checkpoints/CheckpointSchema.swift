import GRDB
import SealboxLedger

/// The checkpoint store's tables. v1 is what the first release wrote; later versions only add.
enum CheckpointSchema {
    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1-sessions-checkpoints") { db in
            try db.execute(sql: """
                CREATE TABLE sessions (
                    id TEXT PRIMARY KEY,
                    created_at_ms INTEGER NOT NULL,
                    forked_from TEXT,
                    forked_at_step TEXT
                );
                CREATE TABLE checkpoints (
                    seq INTEGER PRIMARY KEY,
                    session_id TEXT NOT NULL REFERENCES sessions(id),
                    step_key TEXT NOT NULL,
                    code_digest TEXT NOT NULL,
                    result TEXT NOT NULL,
                    ledger_cursor INTEGER,
                    snapshot TEXT,
                    parent_seq INTEGER REFERENCES checkpoints(seq),
                    created_at_ms INTEGER NOT NULL,
                    prev_hash TEXT NOT NULL,
                    hash TEXT NOT NULL,
                    UNIQUE (session_id, step_key)
                );
                CREATE TRIGGER checkpoints_append_only_update BEFORE UPDATE ON checkpoints
                    BEGIN SELECT RAISE(ABORT, 'checkpoints are append-only'); END;
                CREATE TRIGGER checkpoints_append_only_delete BEFORE DELETE ON checkpoints
                    BEGIN SELECT RAISE(ABORT, 'checkpoints are append-only'); END;
                """)
        }
        // Forks (a session's history is a prefix of its parent's, up to forked_at_seq; root_id
        // was written at fork time and is no longer read: a family's root follows from the
        // fork edges, see `Lineage.root`), workspace
        // snapshots (content-addressed manifests; the file contents live in the blob store)
        // and step attempts (a step that started, so one that never sealed can be reported).
        migrator.registerMigration("v2-forks-snapshots-attempts") { db in
            try db.execute(sql: """
                ALTER TABLE sessions ADD COLUMN forked_at_seq INTEGER REFERENCES checkpoints(seq);
                ALTER TABLE sessions ADD COLUMN root_id TEXT;
                ALTER TABLE sessions ADD COLUMN workspace_limit_bytes INTEGER;
                CREATE TABLE snapshots (
                    id TEXT PRIMARY KEY,
                    manifest TEXT NOT NULL,
                    files INTEGER NOT NULL,
                    bytes INTEGER NOT NULL,
                    created_at_ms INTEGER NOT NULL
                );
                CREATE TABLE step_attempts (
                    id INTEGER PRIMARY KEY,
                    session_id TEXT NOT NULL REFERENCES sessions(id),
                    step_key TEXT NOT NULL,
                    code_digest TEXT NOT NULL,
                    run_id TEXT,
                    pid INTEGER NOT NULL,
                    pid_start TEXT NOT NULL,
                    started_at_ms INTEGER NOT NULL
                );
                CREATE INDEX step_attempts_by_session ON step_attempts(session_id, step_key, id);
                """)
        }
        // Attempts as leases: a runner ends its attempt when the step stops without a seal, so
        // a server (many attempts, one pid) never reports a finished attempt as running.
        migrator.registerMigration("v3-attempt-ends") { db in
            try db.execute(sql: """
                ALTER TABLE step_attempts ADD COLUMN ended_at_ms INTEGER;
                ALTER TABLE step_attempts ADD COLUMN outcome TEXT;
                """)
        }
        return migrator
    }
}
