import Crypto
import Foundation
import GRDB
import SealboxLedger

/// Migration v3: the log's own secrets. `world_key` keys the hash that turns a call's
/// idempotency key into the one the world sees (`WorldKey`): made once, at random, when the
/// log is created or upgraded, and never changed, so a call re-executed after a crash (or by
/// another broker on this log) sends the world the same key as the first attempt. It is not
/// a tool credential: it only makes world keys unguessable from inside a jail.
enum LedgerSchemaV3 {
    static let name = "v3-ledger-secrets"

    static func migrate(_ db: Database) throws {
        try db.execute(sql: """
            CREATE TABLE ledger_secrets (
                name TEXT PRIMARY KEY,
                value BLOB NOT NULL,
                created_at_ms INTEGER NOT NULL
            );
            """)
        let secret = SymmetricKey(size: .bits256).withUnsafeBytes { Data($0) }
        try db.execute(sql: "INSERT INTO ledger_secrets (name, value, created_at_ms) VALUES ('world_key', ?, ?)",
                       arguments: [secret, Ledger.nowMs()])
    }
}
