import Foundation
import Testing
@testable import SealboxLedger
@testable import SealboxSQLite

/// Grant records (v2): what authority was handed out, and what of it remains.
@Suite("Ledger: token grants")
struct LedgerGrantTests {
    static func grant(_ token: String, run: String, session: String, root: String? = nil, tools: [String] = ["pay", "get"],
                      expires: Int64 = 2_000_000_000_000) -> GrantInput {
        GrantInput(tokenID: token, runID: run, sessionID: session, sessionRoot: root, tools: tools, expiresAtMs: expires)
    }

    @Test("a grant is a hash-chained record; live until expired, revoked by token, or its run revoked/closed")
    func liveUntilEnded() async throws {
        let dir = TempLedgerDir()
        defer { dir.cleanup() }
        let ledger = try Ledger(path: dir.ledgerPath)
        let record = try await ledger.appendGrant(Self.grant("t1", run: "r1", session: "s", tools: ["pay", "get"], expires: 5_000))
        #expect(record.kind == "grant" && record.seq == 1)
        #expect(record.tokenID == "t1" && record.runID == "r1" && record.sessionID == "s")
        #expect(record.tool == "get,pay", "sorted, joined with commas")
        #expect(record.note == #"{"expires_at_ms":5000,"session_root":"s"}"#)
        #expect(record.actor == "broker" && record.hash == EffectHash.compute(record))
        _ = try await ledger.appendGrant(Self.grant("t2", run: "r2", session: "f", root: "s", expires: 9_000))
        _ = try await ledger.appendGrant(Self.grant("t3", run: "r3", session: "f", root: "s", expires: 9_000))
        _ = try await ledger.appendGrant(Self.grant("t4", run: "r4", session: "other", expires: 9_000))
        #expect(try ledger.family(of: "f") == ["s", "f"], "the grant recorded the family")

        let family = try ledger.family(of: "s")
        var live = try ledger.liveGrants(sessionIDs: family, nowMs: 1_000)
        #expect(live.map(\.tokenID) == ["t1", "t2", "t3"])
        #expect(live[0] == GrantSummary(tokenID: "t1", runID: "r1", sessionID: "s", tools: ["get", "pay"], expiresAtMs: 5_000,
                                         createdAtMs: live[0].createdAtMs, recordSeq: 1))
        // Expiry is the token's own, compared with the time the caller gives.
        #expect(try ledger.liveGrants(sessionIDs: family, nowMs: 5_000).map(\.tokenID) == ["t2", "t3"])
        // Revoked by token id; its run closed (the broker revokes the run id).
        _ = try await ledger.recordRevocation(tokenID: "t2", runID: nil, reason: "operator")
        _ = try await ledger.recordRevocation(tokenID: nil, runID: "r3", reason: "run ended")
        live = try ledger.liveGrants(sessionIDs: family, nowMs: 1_000)
        #expect(live.map(\.tokenID) == ["t1"])
        #expect(try ledger.liveGrants(sessionIDs: ["other"], nowMs: 1_000).map(\.tokenID) == ["t4"])
        #expect(try ledger.liveGrants(sessionIDs: [], nowMs: 1_000).isEmpty)
        #expect(try ledger.verify() == VerifyReport(ok: true, checked: 6, firstBadSeq: nil, reason: nil))
    }

    @Test("revokeLiveGrants ends every live grant with a revocation record, once")
    func revokeLive() async throws {
        let dir = TempLedgerDir()
        defer { dir.cleanup() }
        let ledger = try Ledger(path: dir.ledgerPath)
        let far = Int64(Date().timeIntervalSince1970 * 1000) + 3_600_000
        _ = try await ledger.appendGrant(Self.grant("t1", run: "r1", session: "s", expires: far))
        _ = try await ledger.appendGrant(Self.grant("t2", run: "r2", session: "s", expires: far))
        _ = try await ledger.appendGrant(Self.grant("t3", run: "r3", session: "s", expires: 1))
        _ = try await ledger.recordRevocation(tokenID: nil, runID: "r2", reason: "run ended")
        let ended = try await ledger.revokeLiveGrants(reason: "broker restarted")
        #expect(ended.map(\.tokenID) == ["t1"])
        #expect(try await ledger.revokeLiveGrants(reason: "broker restarted").isEmpty)
        #expect(try ledger.liveGrants(sessionIDs: ["s"], nowMs: far - 1).isEmpty)
        let last = try #require(try ledger.records(afterSeq: 0, limit: 100).last)
        #expect(last.kind == "revocation" && last.tokenID == "t1" && last.note == "broker restarted")
        #expect(try ledger.revocations().tokenIDs.contains("t1"))
        #expect(try ledger.verify().ok)
    }

    @Test("refused grants write nothing: family conflict, duplicate token, bad tool names")
    func refusals() async throws {
        let dir = TempLedgerDir()
        defer { dir.cleanup() }
        let ledger = try Ledger(path: dir.ledgerPath)
        _ = try await ledger.appendGrant(Self.grant("t1", run: "r1", session: "f", root: "s"))
        let conflict = await ledgerError { try await ledger.appendGrant(Self.grant("t2", run: "r2", session: "f", root: "x")) }
        #expect(conflict?.code == .invalidInput && conflict?.message.contains("family of root s") == true)
        #expect(await ledgerError { try await ledger.appendGrant(Self.grant("t1", run: "r3", session: "f", root: "s")) }?.message == "token t1 was already granted")
        #expect(await ledgerError { try await ledger.appendGrant(Self.grant("t4", run: "r4", session: "s", tools: ["a,b"])) }?.code == .invalidInput)
        #expect(await ledgerError { try await ledger.appendGrant(Self.grant("t5", run: "r5", session: "s", tools: [""])) }?.code == .invalidInput)
        #expect(await ledgerError { try await ledger.appendGrant(Self.grant("", run: "r6", session: "s")) }?.code == .invalidInput)
        #expect(try ledger.records(afterSeq: 0, limit: 100).count == 1)
        #expect(try ledger.family(of: "x") == ["x"])
        // An empty grant (no tools) is representable.
        let none = try await ledger.appendGrant(Self.grant("t7", run: "r7", session: "s", tools: []))
        #expect(none.tool == "")
        #expect(try ledger.liveGrants(sessionIDs: ["s"], nowMs: 0).first { $0.tokenID == "t7" }?.tools == [])
    }

    /// Computed by an independent Python implementation of the encoding documented in
    /// EffectHash.swift (the same one that produced the v1 known answers): the grant kind uses
    /// the v1 encoding unchanged.
    @Test("known-answer hash of a grant record")
    func knownAnswer() {
        let grant = EffectRecord(
            seq: 3, kind: "grant", createdAtMs: 1_700_000_000_456, prevHash: String(repeating: "11", count: 32),
            runID: "run-2", sessionID: "fork-1", tool: "charge,lookup", tokenID: "0123456789abcdef0123456789abcdef",
            actor: "broker", note: #"{"expires_at_ms":1700000600456,"session_root":"sess-1"}"#)
        #expect(EffectHash.compute(grant) == "86496fcba9654290722cb946eac59e48c9e92f1c575dc18a1f37db8457b1511a")
    }
}
