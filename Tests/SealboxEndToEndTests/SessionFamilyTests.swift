import Foundation
import Glibc
import SealboxBase
import SealboxLedger
import SealboxTestSupport
import Testing
@testable import SealboxBroker

/// Forked sessions against a real broker and a real loopback "world": the world does not fork.
@Suite("Session families: forks share the world")
struct SessionFamilyTests {
    @Test("an irreversible call sealed in a session is replayed in its forks, never executed again")
    func forkReplaysSealedIrreversible() async throws {
        let h = try await BrokerHarness(label: "fam-replay")
        defer { h.shutdown() }
        let root = try await h.openRun(session: "fam-root", tools: ["charge"])
        let first = try await BrokerHarness.call(root, "charge", ["n": .number(5)], key: "c1")
        #expect(first.ok && first.effect?.replayed == false && first.effect?.fromSession == nil)
        #expect(h.world.count("/charge") == 1)

        let fork = try await h.openRun(session: "fam-fork", root: "fam-root", tools: ["charge"])
        let again = try await BrokerHarness.call(fork, "charge", ["n": .number(5)], key: "c1")
        #expect(again.ok, "\(again.error?.message ?? "")")
        #expect(again.effect == EffectInfo(seq: first.effect!.seq, replayed: true, completionSeq: first.effect!.completionSeq, fromSession: "fam-root"))
        #expect(again.result == first.result)
        // A fork of the fork names its parent and still belongs to the family.
        let grandchild = try await h.openRun(session: "fam-fork2", root: "fam-fork", tools: ["charge"])
        #expect(try await BrokerHarness.call(grandchild, "charge", ["n": .number(5)], key: "c1").effect?.fromSession == "fam-root")
        #expect(h.world.count("/charge") == 1, "the world was asked once")

        // Without a key the same arguments are the same effect, across the family too; the
        // fork's own seal is then a fact for its parent.
        let forkFirst = try await BrokerHarness.call(fork, "charge", ["n": .number(7)])
        #expect(forkFirst.effect?.replayed == false)
        #expect(try await BrokerHarness.call(root, "charge", ["n": .number(7)]).effect?.fromSession == "fam-fork")
        #expect(h.world.count("/charge") == 2)

        // Another family is another agent.
        let stranger = try await h.openRun(session: "fam-stranger", tools: ["charge"])
        #expect(try await BrokerHarness.call(stranger, "charge", ["n": .number(5)], key: "c1").effect?.replayed == false)
        #expect(h.world.count("/charge") == 3)
        #expect(try h.ledger().verify().ok)
    }

    @Test("a sibling's call that is executing, in doubt or awaiting approval refuses the fork, naming the sibling")
    func siblingInFlightRefuses() async throws {
        let h = try await BrokerHarness(label: "fam-doubt")
        defer { h.shutdown() }
        let root = try await h.openRun(session: "fam-s", tools: ["charge", "deploy"])
        let fork = try await h.openRun(session: "fam-f", root: "fam-s", tools: ["charge", "deploy"])
        let ledger = try h.ledger()
        // The parent's broker wrote the intent and had not sealed it yet.
        let intent = try await ledger.appendIntent(
            IntentInput(runID: root.id, sessionID: "fam-s", tool: "charge", effectClass: .irreversible, idempotencyKey: "k-doubt",
                        target: "POST http://127.0.0.1:\(h.world.port)/charge", argsDigest: "", approval: .auto, tokenID: root.tokenID, fresh: false),
            state: .pending)
        let executing = try await BrokerHarness.call(fork, "charge", key: "k-doubt")
        #expect(executing.error?.code == .inDoubt && executing.error?.message.contains("being executed in session fam-s") == true)
        #expect(executing.effect?.seq == intent.seq && executing.effect?.fromSession == "fam-s")
        // Then it crashed: in doubt, for the fork as for the parent.
        _ = try await ledger.markInterrupted(actor: "broker")
        let doubt = try await BrokerHarness.call(fork, "charge", key: "k-doubt")
        #expect(doubt.error?.code == .inDoubt, "\(doubt.error?.message ?? "")")
        #expect(doubt.error?.message.contains("in session fam-s") == true && doubt.error?.message.contains("sealbox log resolve \(intent.seq)") == true)
        #expect(h.world.count("/charge") == 0)
        // The operator says it did not happen: the fork may do it, in its own session.
        _ = try await ledger.resolve(intentSeq: intent.seq, happened: false, actor: "operator:test", note: nil)
        let done = try await BrokerHarness.call(fork, "charge", key: "k-doubt")
        #expect(done.ok && done.effect?.replayed == false && done.effect?.fromSession == nil)
        #expect(h.world.count("/charge") == 1)

        // Approval: waiting in the parent blocks the fork; approved-but-not-run still does.
        let waiting = try await BrokerHarness.call(root, "deploy", key: "d1")
        #expect(waiting.error?.code == .awaitingApproval)
        let blocked = try await BrokerHarness.call(fork, "deploy", key: "d1")
        #expect(blocked.error?.code == .awaitingApproval && blocked.effect?.fromSession == "fam-s")
        #expect(blocked.error?.message.contains("sealbox log approve \(waiting.effect!.seq)") == true)
        _ = try await ledger.approve(intentSeq: waiting.effect!.seq, actor: "operator:test")
        let approved = try await BrokerHarness.call(fork, "deploy", key: "d1")
        #expect(approved.error?.code == .awaitingApproval && approved.error?.message.contains("has not run yet") == true)
        #expect(try await BrokerHarness.call(root, "deploy", key: "d1").ok)
        let replayed = try await BrokerHarness.call(fork, "deploy", key: "d1")
        #expect(replayed.ok && replayed.effect?.fromSession == "fam-s")
        #expect(h.world.count("/deploy") == 1)
        // A denial in the parent does not bind the fork: it asks for its own approval.
        let second = try await BrokerHarness.call(root, "deploy", key: "d2")
        _ = try await ledger.deny(intentSeq: second.effect!.seq, actor: "operator:test", note: nil)
        let own = try await BrokerHarness.call(fork, "deploy", key: "d2")
        #expect(own.error?.code == .awaitingApproval && own.effect?.fromSession == nil && own.effect?.seq != second.effect?.seq)
    }

    @Test("a failed irreversible call: retried by a fork only when it never reached the world")
    func siblingFailure() async throws {
        let h = try await BrokerHarness(label: "fam-fail")
        defer { h.shutdown() }
        let root = try await h.openRun(session: "fam-s", tools: ["explode", "charge"])
        let fork = try await h.openRun(session: "fam-f", root: "fam-s", tools: ["explode", "charge"])
        // HTTP 500: the request reached the world, which may have acted on it.
        _ = try await BrokerHarness.call(root, "explode", key: "x")
        let forked = try await BrokerHarness.call(fork, "explode", key: "x")
        #expect(forked.error?.code == .toolFailed && forked.effect?.replayed == true && forked.effect?.fromSession == "fam-s")
        #expect(h.world.count("/explode") == 1)
        // Sealed as never having left the broker: the fork executes.
        let ledger = try h.ledger()
        let intent = try await ledger.appendIntent(
            IntentInput(runID: root.id, sessionID: "fam-s", tool: "charge", effectClass: .irreversible, idempotencyKey: "never",
                        target: "", argsDigest: "", approval: .auto, tokenID: root.tokenID, fresh: false),
            state: .pending)
        _ = try await ledger.appendCompletion(CompletionInput(
            intentSeq: intent.seq, status: "tool_failed", response: "null", responseDigest: "", resourceVersion: nil,
            irreversible: true, happened: false, durationMs: 1))
        let retried = try await BrokerHarness.call(fork, "charge", key: "never")
        #expect(retried.ok && retried.effect?.replayed == false)
        #expect(h.world.count("/charge") == 1)
    }

    @Test("idempotent, read and hybrid tools keep per-session rules in a fork")
    func otherClassesUnaffected() async throws {
        let h = try await BrokerHarness(label: "fam-idem")
        defer { h.shutdown() }
        let root = try await h.openRun(session: "fam-s", tools: ["upsert", "lookup", "decide"])
        let fork = try await h.openRun(session: "fam-f", root: "fam-s", tools: ["upsert", "lookup", "decide"])
        for tool in ["upsert", "lookup", "decide"] {
            #expect(try await BrokerHarness.call(root, tool, key: "k").effect?.replayed == false)
            let forked = try await BrokerHarness.call(fork, tool, key: "k")
            #expect(forked.ok && forked.effect?.replayed == false && forked.effect?.fromSession == nil, "\(tool)")
            #expect(h.world.count("/\(tool)") == 2, "\(tool): the fork executed it again")
        }
        // The fork's own seal still counts for the fork.
        #expect(try await BrokerHarness.call(fork, "upsert", key: "k").effect?.replayed == true)
        #expect(h.world.count("/upsert") == 2)
    }

    @Test("two forks calling the same irreversible effect at once: the world is asked once")
    func concurrentForks() async throws {
        let h = try await BrokerHarness(label: "fam-race")
        defer { h.shutdown() }
        h.world.route("/charge", .json("{\"charged\":true}", delay: .milliseconds(300)))
        let root = try await h.openRun(session: "fam-s", tools: ["charge"])
        let fork = try await h.openRun(session: "fam-f", root: "fam-s", tools: ["charge"])
        async let a = BrokerHarness.call(root, "charge", key: "race")
        async let b = BrokerHarness.call(fork, "charge", key: "race")
        let answers = try await [a, b]
        #expect(answers.allSatisfy { $0.ok })
        #expect(answers.filter { $0.effect?.replayed == true }.count == 1)
        #expect(h.world.count("/charge") == 1)
    }

    @Test("open_run refuses a session recorded under another root, and records nothing for it")
    func conflictingRoot() async throws {
        let h = try await BrokerHarness(label: "fam-conflict")
        defer { h.shutdown() }
        _ = try await h.openRun(session: "fam-s", tools: ["lookup"])
        _ = try await h.openRun(session: "fam-f", root: "fam-s", tools: ["lookup"])
        _ = try await h.openRun(session: "fam-f", root: "fam-s", tools: ["lookup"])  // a re-run of the fork
        _ = try await h.openRun(session: "other", tools: ["lookup"])
        let before = try h.ledger().records(afterSeq: 0, limit: 1000).count

        let elsewhere = try await h.control(ControlRequest(op: "open_run", runID: "r-conflict", sessionID: "fam-f", sessionRoot: "other", tools: ["lookup"], ttlMs: 60_000))
        #expect(!elsewhere.ok && elsewhere.error?.code == .badRequest && elsewhere.token == nil)
        #expect(elsewhere.error?.message.contains("session fam-f is recorded in the family of root fam-s") == true, "\(elsewhere.error?.message ?? "")")
        let asRoot = try await h.control(ControlRequest(op: "open_run", runID: "r-conflict2", sessionID: "fam-f", tools: ["lookup"], ttlMs: 60_000))
        #expect(!asRoot.ok && asRoot.error?.code == .badRequest && asRoot.error?.message.contains("as its own root") == true)
        let badRoot = try await h.control(ControlRequest(op: "open_run", runID: "r-conflict3", sessionID: "x", sessionRoot: "not an id", tools: ["lookup"], ttlMs: 60_000))
        #expect(!badRoot.ok && badRoot.error?.message.contains("session_root") == true)

        let ledger = try h.ledger()
        #expect(try ledger.records(afterSeq: 0, limit: 1000).count == before, "no grant for a refused run")
        #expect(try ledger.family(of: "fam-f") == ["fam-s", "fam-f"])
        #expect(try ledger.family(of: "other") == ["other"])
        #expect(!FileManager.default.fileExists(atPath: h.dir + "/state/runs/r-conflict.sock"))
        // The refused run id is not burnt: once the request is right, it opens.
        #expect(try await h.control(ControlRequest(op: "open_run", runID: "r-conflict", sessionID: "fam-f", sessionRoot: "fam-s", tools: ["lookup"], ttlMs: 60_000)).ok)
    }

    @Test("grants are in the log: live while the run is open, gone after revoke, close_run, expiry; verify passes")
    func grants() async throws {
        let h = try await BrokerHarness(label: "fam-grants")
        defer { h.shutdown() }
        let r1 = try await h.openRun(session: "g-s", tools: ["lookup", "charge"])
        let r2 = try await h.openRun(session: "g-f", root: "g-s", tools: ["lookup"])
        let r3 = try await h.openRun(session: "g-s", tools: ["upsert"], ttlMs: 60_000)
        let ledger = try h.ledger()
        let family = try ledger.family(of: "g-f")
        #expect(family == ["g-s", "g-f"])
        let now = EffectEngine.nowMs()
        let live = try ledger.liveGrants(sessionIDs: family, nowMs: now)
        #expect(live.map(\.tokenID) == [r1.tokenID, r2.tokenID, r3.tokenID])
        #expect(live.map(\.runID) == [r1.id, r2.id, r3.id])
        #expect(live[0].tools == ["charge", "lookup"] && live[0].sessionID == "g-s")
        // The recorded expiry is the one signed into the token.
        let claims = try h.service.engine.authority.verify(r3.token, tool: "upsert", runID: r3.id, nowMs: now, revocations: RevocationList())
        #expect(live[2].expiresAtMs == claims.expiresAtMs)
        let record = try #require(try ledger.record(seq: live[1].recordSeq))
        #expect(record.kind == "grant" && record.tokenID == r2.tokenID && record.tool == "lookup")
        #expect(record.note?.contains(#""session_root":"g-s""#) == true)

        #expect(try await h.control(ControlRequest(op: "revoke", tokenID: r1.tokenID)).ok)
        #expect(try await h.control(ControlRequest(op: "close_run", runID: r2.id)).ok)
        #expect(try ledger.liveGrants(sessionIDs: family, nowMs: now).map(\.tokenID) == [r3.tokenID])
        // close_run left its fact in the chain.
        let all = try ledger.records(afterSeq: 0, limit: 1000)
        #expect(all.contains { $0.kind == "revocation" && $0.runID == r2.id && $0.note == "run ended" })
        #expect(try ledger.liveGrants(sessionIDs: family, nowMs: claims.expiresAtMs).isEmpty, "expired")
        #expect(all.filter { $0.kind == "grant" }.count == 3)

        let report = try ledger.verify()
        #expect(report.ok && report.checked == all.count)
        let ledgerPath = h.ledgerPath
        let cli = try await offPool { try Binaries.runBlocking(["log", "verify", "--ledger", ledgerPath]) }
        #expect(cli.status == 0 && cli.stdout.contains("hash chain intact"), "\(cli.stdout)\(cli.stderr)")
    }

    @Test("a broker starting after the previous one is gone ends the grants it left live, not those of a live one")
    func restartEndsGrants() async throws {
        let h = try await BrokerHarness(label: "fam-restart")
        defer { h.shutdown() }
        let run = try await h.openRun(session: "g-s", tools: ["lookup"])
        let ledger = try h.ledger()
        #expect(try ledger.liveGrants(sessionIDs: ["g-s"], nowMs: EffectEngine.nowMs()).map(\.tokenID) == [run.tokenID])
        let environment = ["HARNESS_API_TOKEN": BrokerHarness.secret]
        // The first broker is still running: its token is live authority, left alone.
        let beside = try BrokerServer(.init(configPath: h.configPath, stateDirectory: h.dir + "/state2", ledgerPath: nil, environment: environment))
        let found = try await beside.start()
        beside.stop()
        #expect(found.grants.isEmpty && found.liveBrokers.contains(h.service.brokerID) && found.grantsLeftAlone == 1)
        #expect(try ledger.liveGrants(sessionIDs: ["g-s"], nowMs: EffectEngine.nowMs()).map(\.tokenID) == [run.tokenID])
        // It stops without writing to the log (as a crash would leave it): the next broker ends its grant.
        h.service.stop()
        let next = try BrokerServer(.init(configPath: h.configPath, stateDirectory: h.dir + "/state3", ledgerPath: nil, environment: environment))
        let recovery = try await next.start()
        defer { next.stop() }
        #expect(recovery.grants.map(\.tokenID) == [run.tokenID] && recovery.goneBrokers.contains(h.service.brokerID))
        #expect(try ledger.liveGrants(sessionIDs: ["g-s"], nowMs: EffectEngine.nowMs()).isEmpty)
        #expect(try ledger.verify().ok)
    }
}
