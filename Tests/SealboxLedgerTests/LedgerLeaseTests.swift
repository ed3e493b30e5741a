import Foundation
import Glibc
import Testing
@testable import SealboxLedger
@testable import SealboxSQLite

/// Broker leases (`BrokerLeases`; on one machine `FileBrokerLeases`) and the recovery that respects them: several brokers share one
/// effect log, and a starting broker recovers only the work of brokers that are gone.
@Suite("Ledger: broker leases")
struct LedgerLeaseTests {
    static let far = Int64(Date().timeIntervalSince1970 * 1000) + 3_600_000

    static func grant(_ token: String, run: String, session: String = "s", broker: String?) -> GrantInput {
        GrantInput(tokenID: token, runID: run, sessionID: session, tools: ["pay"], expiresAtMs: far, brokerID: broker)
    }

    static func intent(token: String, run: String, effect: EffectClass, key: String) -> IntentInput {
        IntentInput(runID: run, sessionID: "s", tool: "pay", effectClass: effect, idempotencyKey: key,
                    target: "POST https://api.example.com/pay", argsDigest: String(repeating: "ab", count: 32),
                    approval: .auto, tokenID: token, fresh: false)
    }

    /// A broker that died: its lock file stays, its lock is free (the kernel dropped it).
    static func crashedLease(_ ledger: Ledger) throws -> String {
        let lease = try ledger.leases.acquire()
        return lease.brokerID  // deinit closes the descriptor without removing the file, as a crash would
    }

    /// A lease with its file's path, for the tests that look at the files.
    static func fileLease(_ ledger: Ledger) throws -> FileBrokerLease {
        try #require(try ledger.leases.acquire() as? FileBrokerLease)
    }

    static func lockFiles(_ dir: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).sorted()
    }

    @Test("a lease is a locked file in <ledger>.brokers; ids differ; release removes it")
    func leaseFile() throws {
        let dir = TempLedgerDir()
        defer { dir.cleanup() }
        let ledger = try Ledger(path: dir.ledgerPath)
        let a = try Self.fileLease(ledger)
        let b = try Self.fileLease(ledger)
        #expect(a.directory == ledger.path + ".brokers" && a.path == a.directory + "/\(a.brokerID).lock")
        #expect(a.brokerID.count == 17 && a.brokerID.hasPrefix("b") && a.brokerID != b.brokerID)
        #expect(Self.lockFiles(a.directory) == ["\(a.brokerID).lock", "\(b.brokerID).lock"].sorted(), "no temporary files left")
        var info = stat()
        #expect(stat(a.directory, &info) == 0 && info.st_mode & 0o777 == 0o700)
        // Held: another open file description cannot take the lock.
        let fd = open(a.path, O_RDWR)
        #expect(fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) == -1 && errno == EWOULDBLOCK)
        close(fd)
        a.release()
        a.release()
        #expect(!a.isHeld && !FileManager.default.fileExists(atPath: a.path))
        #expect(Self.lockFiles(a.directory) == ["\(b.brokerID).lock"])
    }

    @Test("recoverAbandonedWork moves only the calls and grants of gone brokers (and ownerless ones), once")
    func recoverOnlyGone() async throws {
        let dir = TempLedgerDir()
        defer { dir.cleanup() }
        let ledger = try Ledger(path: dir.ledgerPath)
        let live = try Self.fileLease(ledger)
        let dead = try Self.crashedLease(ledger)
        let me = try Self.fileLease(ledger)
        let gracefullyStopped = try Self.fileLease(ledger)
        let stoppedID = gracefullyStopped.brokerID
        gracefullyStopped.release()

        _ = try await ledger.appendGrant(Self.grant("t-live", run: "r-live", broker: live.brokerID))
        _ = try await ledger.appendGrant(Self.grant("t-dead", run: "r-dead", broker: dead))
        _ = try await ledger.appendGrant(Self.grant("t-stopped", run: "r-stopped", broker: stoppedID))
        _ = try await ledger.appendGrant(Self.grant("t-legacy", run: "r-legacy", broker: nil))
        let liveCall = try await ledger.appendIntent(Self.intent(token: "t-live", run: "r-live", effect: .irreversible, key: "k1"), state: .pending)
        // Not the grant's token (say, minted before the grant was indexed): found through its run.
        let liveByRun = try await ledger.appendIntent(Self.intent(token: "t-other", run: "r-live", effect: .irreversible, key: "k2"), state: .pending)
        let deadCall = try await ledger.appendIntent(Self.intent(token: "t-dead", run: "r-dead", effect: .idempotent, key: "k3"), state: .pending)
        let deadIrreversible = try await ledger.appendIntent(Self.intent(token: "t-dead", run: "r-dead", effect: .irreversible, key: "k4"), state: .pending)
        let legacyCall = try await ledger.appendIntent(Self.intent(token: "t-legacy", run: "r-legacy", effect: .irreversible, key: "k5"), state: .pending)
        let noGrant = try await ledger.appendIntent(Self.intent(token: "t-none", run: "r-none", effect: .read, key: "k6"), state: .pending)
        let waiting = try await ledger.appendIntent(Self.intent(token: "t-dead", run: "r-dead", effect: .irreversible, key: "k7"), state: .awaitingApproval)

        let recovery = try await ledger.recoverAbandonedWork(lease: me)
        #expect(recovery.calls.map(\.intentSeq) == [deadCall.seq, deadIrreversible.seq, legacyCall.seq, noGrant.seq])
        #expect(recovery.calls.map(\.state) == [.interrupted, .inDoubt, .inDoubt, .interrupted])
        #expect(recovery.grants.map(\.tokenID) == ["t-dead", "t-stopped", "t-legacy"])
        #expect(recovery.grants.map(\.brokerID) == [dead, stoppedID, nil])
        #expect(recovery.goneBrokers == [dead, stoppedID].sorted())
        #expect(recovery.liveBrokers == [live.brokerID])
        #expect(recovery.unprobedBrokers.isEmpty)
        #expect(recovery.callsLeftAlone == 2 && recovery.grantsLeftAlone == 1)

        #expect(try ledger.call(intentSeq: liveCall.seq)?.state == .pending)
        #expect(try ledger.call(intentSeq: liveByRun.seq)?.state == .pending)
        #expect(try ledger.call(intentSeq: waiting.seq)?.state == .awaitingApproval, "only pending calls are touched")
        #expect(try ledger.liveGrants(sessionIDs: ["s"], nowMs: Self.far - 1).map(\.tokenID) == ["t-live"])
        #expect(try ledger.liveGrants(sessionIDs: ["s"], nowMs: Self.far - 1).first?.brokerID == live.brokerID)

        // The records say whose work it was.
        let interruption = try #require(try ledger.records(forIntent: deadIrreversible.seq).last)
        #expect(interruption.kind == "interruption" && interruption.actor == "broker" && interruption.status == "in_doubt")
        #expect(interruption.note == "broker \(dead) stopped between intent and completion")
        #expect(try ledger.records(forIntent: legacyCall.seq).last?.note == nil)
        let revocations = try ledger.records(afterSeq: 0, limit: 100).filter { $0.kind == "revocation" }
        #expect(revocations.map(\.note) == [
            "broker \(dead) is gone: its tokens no longer verify",
            "broker \(stoppedID) is gone: its tokens no longer verify",
            "broker restarted: tokens of the previous broker no longer verify",
        ])
        // The dead broker's lock file is removed; the live one's and mine stay.
        #expect(Self.lockFiles(me.directory) == ["\(live.brokerID).lock", "\(me.brokerID).lock"].sorted())

        // Once: a second recovery finds nothing more.
        let again = try await ledger.recoverAbandonedWork(lease: me)
        #expect(again.calls.isEmpty && again.grants.isEmpty && again.goneBrokers.isEmpty && again.callsLeftAlone == 2)

        #expect(try ledger.verify().ok)
        withExtendedLifetime(live) {}
    }

    @Test("a broker that dies is recovered by the next one; records without a lease file count as gone")
    func deadThenRecovered() async throws {
        let dir = TempLedgerDir()
        defer { dir.cleanup() }
        let ledger = try Ledger(path: dir.ledgerPath)
        var first: FileBrokerLease? = try Self.fileLease(ledger)
        let firstID = first!.brokerID
        _ = try await ledger.appendGrant(Self.grant("t1", run: "r1", broker: firstID))
        let call = try await ledger.appendIntent(Self.intent(token: "t1", run: "r1", effect: .irreversible, key: "k"), state: .pending)
        let second = try Self.fileLease(ledger)
        #expect(try await ledger.recoverAbandonedWork(lease: second).callsLeftAlone == 1, "alive: left alone")
        first = nil  // dies (kill -9: the kernel drops the lock, the file stays)
        #expect(FileManager.default.fileExists(atPath: second.directory + "/\(firstID).lock"))
        // A jail being spawned by a concurrent test is a fork of this process and holds a copy
        // of every descriptor (so of the lock) until it closes them during its setup: wait
        // until the lock is really free, as it is at once for a broker killed alone.
        let deadline = ContinuousClock.now + .seconds(5)
        while ledger.leases.isRunning(firstID) != false, ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(10))
        }
        let recovery = try await ledger.recoverAbandonedWork(lease: second)
        #expect(recovery.calls.map(\.intentSeq) == [call.seq] && recovery.calls.first?.state == .inDoubt)
        #expect(recovery.goneBrokers == [firstID] && recovery.grants.map(\.tokenID) == ["t1"])
        #expect(!FileManager.default.fileExists(atPath: second.directory + "/\(firstID).lock"))
        // A broker id whose lock file is missing (removed) and a malformed one are gone too.
        _ = try await ledger.appendGrant(Self.grant("t2", run: "r2", broker: "b0000000000000001"))
        _ = try await ledger.appendGrant(Self.grant("t3", run: "r3", broker: "../../etc/passwd"))
        let more = try await ledger.recoverAbandonedWork(lease: second)
        #expect(more.grants.map(\.tokenID) == ["t2", "t3"])
        #expect(try ledger.verify().ok)
    }

    @Test("a grant records its broker in the note; revokeLiveGrants(ofBroker:) ends only that broker's grants")
    func grantBrokerID() async throws {
        let dir = TempLedgerDir()
        defer { dir.cleanup() }
        let ledger = try Ledger(path: dir.ledgerPath)
        let record = try await ledger.appendGrant(GrantInput(tokenID: "t1", runID: "r1", sessionID: "s", tools: ["pay"],
                                                             expiresAtMs: 5_000, brokerID: "b00c0ffee0ddf00d"))
        #expect(record.note == #"{"broker_id":"b00c0ffee0ddf00d","expires_at_ms":5000,"session_root":"s"}"#)
        _ = try await ledger.appendGrant(Self.grant("t2", run: "r2", broker: "b1111111111111111"))
        _ = try await ledger.appendGrant(Self.grant("t3", run: "r3", broker: "b00c0ffee0ddf00d"))
        _ = try await ledger.appendGrant(Self.grant("t4", run: "r4", broker: nil))
        let ended = try await ledger.revokeLiveGrants(ofBroker: "b00c0ffee0ddf00d", reason: "broker b00c0ffee0ddf00d stopped: SIGTERM")
        #expect(ended.map(\.tokenID) == ["t3"], "t1 had expired already")
        #expect(try ledger.liveGrants(sessionIDs: ["s"], nowMs: 6_000).map(\.tokenID) == ["t2", "t4"])
        #expect(try ledger.records(afterSeq: 0, limit: 100).last?.note == "broker b00c0ffee0ddf00d stopped: SIGTERM")
        #expect(await ledgerError { try await ledger.revokeLiveGrants(ofBroker: "", reason: "x") }?.code == .invalidInput)
    }

    /// Computed by the same independent Python implementation of EffectHash's documented
    /// encoding as the other known answers: a note with `broker_id` is just another note text.
    @Test("known-answer hash of a grant record with a broker id")
    func knownAnswer() {
        let grant = EffectRecord(
            seq: 3, kind: "grant", createdAtMs: 1_700_000_000_456, prevHash: String(repeating: "11", count: 32),
            runID: "run-2", sessionID: "fork-1", tool: "charge,lookup", tokenID: "0123456789abcdef0123456789abcdef",
            actor: "broker", note: #"{"broker_id":"b00c0ffee0ddf00d","expires_at_ms":1700000600456,"session_root":"sess-1"}"#)
        #expect(EffectHash.compute(grant) == "eeab45350d67af787f9aa86b3d189956e190b096bc3d3332c6c2bf7400151529")
    }
}
