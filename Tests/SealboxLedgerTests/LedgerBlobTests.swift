import Foundation
import Testing
@testable import SealboxLedger
@testable import SealboxSQLite

@Suite("Ledger: large responses as blobs, grants' tenants")
struct LedgerBlobTests {
    /// A read tool answering the same megabyte a thousand times must not grow the log by a
    /// gigabyte: large responses are kept once, by digest, and read back and verified whole.
    @Test("a large response is stored once by digest, read back whole, and the chain verifies")
    func largeResponsesAreBlobs() async throws {
        let dir = TempLedgerDir()
        defer { dir.cleanup() }
        let ledger = try Ledger(path: dir.ledgerPath)
        let big = "\"" + String(repeating: "x", count: 200_000) + "\""
        var completions: [EffectRecord] = []
        for i in 0..<5 {
            let intent = try await ledger.appendIntent(makeIntent(key: "k\(i)"), state: .pending)
            completions.append(try await ledger.appendCompletion(makeCompletion(intent.seq, response: big)))
        }
        // A small one stays in its row.
        let small = try await ledger.appendIntent(makeIntent(key: "small"), state: .pending)
        let smallDone = try await ledger.appendCompletion(makeCompletion(small.seq))
        for completion in completions {
            #expect(try ledger.record(seq: completion.seq)?.response == big)
            #expect(try ledger.record(seq: completion.seq) == completion)
        }
        #expect(try ledger.record(seq: smallDone.seq) == smallDone)
        #expect(try ledger.verify().ok)
        let raw = try RawConnection(path: dir.ledgerPath)
        #expect(try raw.int("SELECT count(*) FROM response_blobs") == 1)
        #expect(try raw.int("SELECT count(*) FROM effects WHERE response_blob IS NOT NULL AND response IS NULL") == 5)
        #expect(try raw.int("SELECT count(*) FROM effects WHERE response IS NOT NULL") == 1)
        // Five copies of 200 KB would be 1 MB; the file holds one.
        let size = (try FileManager.default.attributesOfItem(atPath: dir.ledgerPath)[.size] as? Int ?? 0)
            + ((try? FileManager.default.attributesOfItem(atPath: dir.ledgerPath + "-wal")[.size] as? Int) ?? 0)
        #expect(size < 700_000, "\(size) bytes")
        // Blobs are append-only like the records that refer to them.
        #expect(throws: (any Error).self) { try raw.execute("UPDATE response_blobs SET body = '\"y\"'") }
        #expect(throws: (any Error).self) { try raw.execute("DELETE FROM response_blobs") }
    }

    @Test("calls waiting for approval are counted per run and per tenant across runs")
    func awaitingApprovalsByTenant() async throws {
        let dir = TempLedgerDir()
        defer { dir.cleanup() }
        let ledger = try Ledger(path: dir.ledgerPath)
        for (run, tenant) in [("r1", "acme"), ("r2", "acme"), ("r3", "other")] {
            _ = try await ledger.appendGrant(GrantInput(tokenID: "t-\(run)", runID: run, sessionID: "s-\(run)", tools: ["send_mail"],
                                                        expiresAtMs: Ledger.nowMs() + 60_000, tenant: tenant))
        }
        for (run, count) in [("r1", 2), ("r2", 1), ("r3", 4)] {
            for i in 0..<count {
                _ = try await ledger.appendIntent(makeIntent(session: "s-\(run)", run: run, key: "\(run)-\(i)", approval: .human), state: .awaitingApproval)
            }
        }
        #expect(try ledger.awaitingApprovals(runID: "r1") == 2)
        #expect(try ledger.awaitingApprovals(tenant: "acme") == 3)
        #expect(try ledger.awaitingApprovals(tenant: "other") == 4)
        #expect(try ledger.awaitingApprovals(tenant: "nobody") == 0)
    }
}
