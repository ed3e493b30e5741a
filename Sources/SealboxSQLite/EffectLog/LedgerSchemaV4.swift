import Crypto
import Foundation
import GRDB
import SealboxBase
import SealboxLedger

/// Migration v4, for the broker's quotas:
/// - `grants.tenant`: who a run's calls count against (`sealbox serve` names the API key's
///   tenant); pending approvals are counted per tenant across all its runs.
/// - `response_blobs`: a large tool response is stored once by its SHA-256 and the record
///   refers to it (`effects.response_blob`), so a tool answering the same megabyte a thousand
///   times grows the log by one megabyte. A record's hash still covers the response itself,
///   so `log verify` and existing logs' hashes are unchanged.
enum LedgerSchemaV4 {
    static let name = "v4-tenants-response-blobs"

    static func migrate(_ db: Database) throws {
        try db.execute(sql: """
            ALTER TABLE grants ADD COLUMN tenant TEXT;
            CREATE INDEX grants_by_tenant ON grants(tenant, run_id) WHERE tenant IS NOT NULL;
            ALTER TABLE effects ADD COLUMN response_blob TEXT;
            CREATE TABLE response_blobs (
                digest TEXT PRIMARY KEY,
                body TEXT NOT NULL
            ) WITHOUT ROWID;
            CREATE TRIGGER response_blobs_no_update BEFORE UPDATE ON response_blobs
                BEGIN SELECT RAISE(ABORT, 'response_blobs is append-only'); END;
            CREATE TRIGGER response_blobs_no_delete BEFORE DELETE ON response_blobs
                BEGIN SELECT RAISE(ABORT, 'response_blobs is append-only'); END;
            """)
    }
}

/// Where a record's response is kept: in its row when small, else in `response_blobs`.
enum ResponseBlobs {
    /// Responses longer than this (UTF-8 bytes) go to a blob.
    static let inlineLimit = 4096

    /// The response column's value expression for reads: the row's own, or its blob's.
    static let responseColumn = "COALESCE(response, (SELECT body FROM response_blobs WHERE digest = effects.response_blob)) AS response"

    /// Stores `response` as a blob when it is large; returns the digest the row refers to, or
    /// nil when the row keeps the response itself.
    static func store(_ response: String?, _ db: Database) throws -> String? {
        guard let response, response.utf8.count > inlineLimit else { return nil }
        let digest = SHA256.hex(text: response)
        try db.execute(sql: "INSERT OR IGNORE INTO response_blobs (digest, body) VALUES (?, ?)", arguments: [digest, response])
        return digest
    }
}
