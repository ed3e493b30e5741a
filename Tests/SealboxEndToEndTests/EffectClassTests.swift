import Crypto
import Foundation
import Glibc
import SealboxBase
import SealboxLedger
import SealboxTestSupport
import Testing
@testable import SealboxBroker

/// DESIGN.md's effect-class table, call by call, against a real broker and a real server.
@Suite("Effect classes and replay")
struct EffectClassTests {
    @Test("read: re-executed on every call")
    func read() async throws {
        let h = try await BrokerHarness(label: "read")
        defer { h.shutdown() }
        let run = try await h.openRun(session: "s-read", tools: ["lookup"])
        let first = try await BrokerHarness.call(run, "lookup", ["n": .number(1)], key: "k")
        let second = try await BrokerHarness.call(run, "lookup", ["n": .number(1)], key: "k")
        #expect(first.ok && second.ok)
        #expect(first.effect?.replayed == false && second.effect?.replayed == false)
        #expect(h.world.count("/lookup") == 2)
    }

    /// JSON numbers keep their literal: an integer past 2^53 (which a double would round,
    /// 9007199254740993 to ...992) reaches the world, the effect log and the jail's answer
    /// digit for digit, and its digest is that of its own digits.
    @Test("integers of 2^53 or more in arguments reach the tool and the effect log exactly")
    func largeIntegersStayExact() async throws {
        let h = try await BrokerHarness(label: "ints")
        defer { h.shutdown() }
        h.world.route("/lookup", .json(#"{"echo":18446744073709551615}"#))
        let run = try await h.openRun(session: "s-ints", tools: ["lookup"])
        let line = Data(#"{"token":"\#(run.token)","op":"call","tool":"lookup","args":{"n":18446744073709551615}}"#.utf8)
        let answer = try await BrokerHarness.rawCall(socket: run.socket, line: line)
        #expect(answer.ok, "\(String(describing: answer.error))")
        #expect(answer.result?["body"]?["echo"] == .number("18446744073709551615"))
        #expect(h.world.requests(to: "/lookup").first?.bodyText == #"{"n":18446744073709551615}"#)
        let ledger = try h.ledger()
        let intentSeq = try #require(answer.effect?.seq)
        let completionSeq = try #require(answer.effect?.completionSeq)
        let intent = try #require(try ledger.record(seq: intentSeq))
        #expect(intent.argsDigest == SHA256.hex(text: #"{"n":18446744073709551615}"#))
        let completion = try #require(try ledger.record(seq: completionSeq))
        #expect(completion.response?.contains(#""echo":18446744073709551615"#) == true, "\(completion.response ?? "nil")")

        let past53 = Data(#"{"token":"\#(run.token)","op":"call","tool":"lookup","args":{"n":9007199254740993}}"#.utf8)
        #expect(try await BrokerHarness.rawCall(socket: run.socket, line: past53).ok)
        #expect(h.world.requests(to: "/lookup").last?.bodyText == #"{"n":9007199254740993}"#)
        let huge = Data(#"{"token":"\#(run.token)","op":"call","tool":"lookup","args":{"n":-1e300}}"#.utf8)
        #expect(try await BrokerHarness.rawCall(socket: run.socket, line: huge).ok)
        #expect(h.world.requests(to: "/lookup").last?.bodyText == #"{"n":-1e300}"#)
        let exact = Data(#"{"token":"\#(run.token)","op":"call","tool":"lookup","args":{"n":9007199254740991}}"#.utf8)
        #expect(try await BrokerHarness.rawCall(socket: run.socket, line: exact).ok)
        #expect(h.world.count("/lookup") == 4)
    }

    @Test("idempotent: the sealed answer comes back, the world is asked once; the key reaches it")
    func idempotent() async throws {
        let h = try await BrokerHarness(label: "idem")
        defer { h.shutdown() }
        let run = try await h.openRun(session: "s-idem", tools: ["upsert"])
        let first = try await BrokerHarness.call(run, "upsert", ["n": .number(1)], key: "order-1")
        let again = try await BrokerHarness.call(run, "upsert", ["n": .number(1)], key: "order-1")
        #expect(first.ok && again.ok)
        #expect(again.effect?.replayed == true && again.effect?.seq == first.effect?.seq)
        #expect(again.result == first.result)
        #expect(h.world.count("/upsert") == 1)
        // The world sees the broker's key for (family, tool, key), never the jail's string.
        let secret = try h.ledger().worldKeySecret()
        #expect(h.world.requests(to: "/upsert").first?.header("Idempotency-Key") == WorldKey.derive(secret: secret, familyRoot: "s-idem", tool: "upsert", key: "order-1"))
        #expect(h.world.requests(to: "/upsert").first?.header("Idempotency-Key")?.contains("order-1") == false)
        _ = try await BrokerHarness.call(run, "upsert", ["n": .number(1)], key: "order-2")
        #expect(h.world.count("/upsert") == 2)
    }

    @Test("irreversible: sealed answer replayed; without a key the same arguments are the same effect")
    func irreversible() async throws {
        let h = try await BrokerHarness(label: "irrev")
        defer { h.shutdown() }
        let run = try await h.openRun(session: "s-irrev", tools: ["charge"])
        let first = try await BrokerHarness.call(run, "charge", ["n": .number(5)])
        // A new run of the same session: a re-run after a crash, with a new token.
        let rerun = try await h.openRun(session: "s-irrev", tools: ["charge"])
        let again = try await BrokerHarness.call(rerun, "charge", ["n": .number(5)])
        #expect(first.ok && again.ok)
        #expect(again.effect?.replayed == true)
        #expect(h.world.count("/charge") == 1)
        // Another session is another agent: its effects are its own.
        let other = try await h.openRun(session: "s-other", tools: ["charge"])
        #expect(try await BrokerHarness.call(other, "charge", ["n": .number(5)]).effect?.replayed == false)
        #expect(h.world.count("/charge") == 2)
        // The credential was injected by the broker on every request.
        #expect(h.world.requests(to: "/charge").allSatisfy { $0.header("Authorization") == "Bearer \(BrokerHarness.secret)" })
    }

    @Test("hybrid: the read that informed a decision is sealed; a fresh read must be asked for and is recorded")
    func hybrid() async throws {
        let h = try await BrokerHarness(label: "hybrid")
        defer { h.shutdown() }
        let run = try await h.openRun(session: "s-hyb", tools: ["decide"])
        let snapshot = try await BrokerHarness.call(run, "decide", key: "premise")
        h.world.route("/decide", .json("{\"path\":\"/decide\",\"version\":2}"))
        let resumed = try await BrokerHarness.call(run, "decide", key: "premise")
        #expect(resumed.effect?.replayed == true)
        #expect(resumed.result == snapshot.result, "a resumed run decides on the same premises")
        #expect(h.world.count("/decide") == 1)
        let fresh = try await BrokerHarness.call(run, "decide", key: "premise", fresh: true)
        #expect(fresh.effect?.replayed == false)
        #expect(h.world.count("/decide") == 2)
        let record = try #require(try h.ledger().record(seq: fresh.effect!.seq))
        #expect(record.fresh == true)
        // Later resumes get the newest sealed snapshot.
        #expect(try await BrokerHarness.call(run, "decide", key: "premise").result == fresh.result)
    }

    @Test("approval: human: waits as awaiting_approval until approved or denied")
    func approval() async throws {
        let h = try await BrokerHarness(label: "approve")
        defer { h.shutdown() }
        let run = try await h.openRun(session: "s-appr", tools: ["deploy"])
        let waiting = try await BrokerHarness.call(run, "deploy", ["note": .string("v1")], key: "d1")
        #expect(!waiting.ok && waiting.error?.code == .awaitingApproval)
        let seq = try #require(waiting.effect?.seq)
        #expect(try await BrokerHarness.call(run, "deploy", ["note": .string("v1")], key: "d1").error?.code == .awaitingApproval)
        #expect(h.world.count("/deploy") == 0)
        _ = try await h.ledger().approve(intentSeq: seq, actor: "operator:test")
        let done = try await BrokerHarness.call(run, "deploy", ["note": .string("v1")], key: "d1")
        #expect(done.ok, "\(done.error?.message ?? "")")
        #expect(h.world.count("/deploy") == 1)
        #expect(try await BrokerHarness.call(run, "deploy", ["note": .string("v1")], key: "d1").effect?.replayed == true)
        #expect(h.world.count("/deploy") == 1)

        let second = try await BrokerHarness.call(run, "deploy", ["note": .string("v2")], key: "d2")
        _ = try await h.ledger().deny(intentSeq: second.effect!.seq, actor: "operator:test", note: "not today")
        #expect(try await BrokerHarness.call(run, "deploy", ["note": .string("v2")], key: "d2").error?.code == .denied)
        #expect(h.world.count("/deploy") == 1)
    }

    @Test("a failed call: idempotent retries execute again; a failed irreversible call is not retried")
    func failures() async throws {
        let h = try await BrokerHarness(label: "fail")
        defer { h.shutdown() }
        let run = try await h.openRun(session: "s-fail", tools: ["flaky", "explode"])
        let first = try await BrokerHarness.call(run, "flaky", key: "f")
        #expect(first.error?.code == .toolFailed && first.error?.message.contains("503") == true)
        _ = try await BrokerHarness.call(run, "flaky", key: "f")
        #expect(h.world.count("/flaky") == 2)
        _ = try await BrokerHarness.call(run, "explode", key: "x")
        let again = try await BrokerHarness.call(run, "explode", key: "x")
        #expect(again.error?.code == .toolFailed && again.effect?.replayed == true)
        #expect(h.world.count("/explode") == 1)
    }

    @Test("every side effect has an intent and a sealed completion, hash-chained")
    func recorded() async throws {
        let h = try await BrokerHarness(label: "records")
        defer { h.shutdown() }
        let run = try await h.openRun(session: "s-rec", tools: ["charge", "upsert"])
        let r = try await BrokerHarness.call(run, "charge", ["n": .number(1)], key: "c")
        _ = try await BrokerHarness.call(run, "upsert", ["n": .number(1)], key: "u")
        let ledger = try h.ledger()
        let records = try ledger.records(forIntent: r.effect!.seq)
        #expect(records.map(\.kind) == ["intent", "completion"])
        #expect(records[0].target == "POST http://127.0.0.1:\(h.world.port)/charge")
        #expect(records[1].irreversible == true && records[1].status == "ok" && records[1].resourceVersion == "\"e1\"")
        #expect(records[1].prevHash == records[0].hash)
        #expect(try ledger.verify().ok)
        // No secret ever reaches the log.
        let all = try ledger.records(afterSeq: 0, limit: 1000)
        #expect(!all.contains { String(describing: $0).contains(BrokerHarness.secret) })
    }
}

@Suite("Tokens at the broker")
struct BrokerTokenTests {
    @Test("scope, run binding, revocation, expiry, malformed input: each refused with its code")
    func refusals() async throws {
        let h = try await BrokerHarness(label: "tokens")
        defer { h.shutdown() }
        let run = try await h.openRun(session: "s-tok", tools: ["lookup"])
        let other = try await h.openRun(session: "s-tok2", tools: ["lookup"])
        // A tool outside the token's scope.
        #expect(try await BrokerHarness.call(run, "charge", ["n": .number(1)]).error?.code == .denied)
        // Another run's token presented on this run's socket.
        #expect(try await BrokerHarness.call(run, "lookup", token: other.token).error?.code == .denied)
        // Attenuated offline to nothing useful.
        let narrowed = try TokenAttenuation.attenuate(run.token, tools: [], expiresAtMs: nil)
        #expect(try await BrokerHarness.call(run, "lookup", token: narrowed).error?.code == .denied)
        // Garbage and bad requests.
        #expect(try await BrokerHarness.call(run, "lookup", token: "sbx1.garbage.sig").error?.code == .denied)
        #expect(try await BrokerHarness.call(run, "lookup", ["bogus": .number(1)]).error?.code == .badRequest)
        #expect(try await BrokerHarness.rawCall(socket: run.socket, line: Data("not json".utf8)).error?.code == .badRequest)
        // Expiry.
        let short = try await h.openRun(session: "s-exp", tools: ["lookup"], ttlMs: 50)
        try await Task.sleep(for: .milliseconds(120))  // the event is the clock passing the expiry
        #expect(try await BrokerHarness.call(short, "lookup").error?.code == .expired)
        #expect(h.world.count("/lookup") == 0)
        // Revocation by the operator, then the run's end.
        #expect(try await BrokerHarness.call(run, "lookup").ok)
        let control = h.service.controlSocketPath
        let revoked = try await offPool { try BrokerControlClient.send(ControlRequest(op: "revoke", tokenID: run.tokenID), socket: control) }
        #expect(revoked.ok)
        #expect(try await BrokerHarness.call(run, "lookup").error?.code == .revoked)
        #expect(try await BrokerHarness.call(other, "lookup").ok)
        await h.service.closeRun(runID: other.id)
        #expect(!FileManager.default.fileExists(atPath: other.socket), "the run's socket is gone with the run")
        // Only the two calls that were allowed reached the world.
        #expect(h.world.count("/lookup") == 2)
    }

    @Test("revocations survive a broker restart")
    func persistentRevocation() async throws {
        let h = try await BrokerHarness(label: "persist")
        defer { h.shutdown() }
        let run = try await h.openRun(session: "s-p", tools: ["lookup"])
        await h.service.revoke(tokenID: run.tokenID, runID: nil, reason: "test")
        let known = try h.ledger().revocations()
        #expect(known.tokenIDs.contains(run.tokenID))
    }
}
