import Foundation
import Glibc
import SealboxBase
import SealboxLedger
import SealboxSQLite
import SealboxTestSupport
import Testing
@testable import SealboxBroker

/// kill -9 the broker process between intent and completion, and after completion; restart
/// it on the same effect log; check that nothing irreversible happens twice, nothing sealed
/// is lost, and the in-doubt call is surfaced until an operator resolves it.
@Suite("Broker crash and restart", .serialized)
struct BrokerCrashTests {
    /// A `sealbox broker` process on the harness's config and effect log.
    final class BrokerProcess {
        let process = Process()
        let control: String

        init(config: String, stateDirectory: String, environment: [String: String]) throws {
            control = stateDirectory + "/control.sock"
            unlink(control)
            process.executableURL = URL(fileURLWithPath: Binaries.sealbox)
            process.arguments = ["broker", "--config", config, "--state-dir", stateDirectory]
            var env = ProcessInfo.processInfo.environment
            for (k, v) in environment { env[k] = v }
            process.environment = env
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
            try process.run()
            let control = self.control
            guard eventuallyBlocking(30, { FileManager.default.fileExists(atPath: control) }) else { throw FixtureFailure("broker did not start") }
        }

        func killHard() {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }

        func openRun(session: String, tools: [String]) async throws -> BrokerHarness.Run {
            try await BrokerHarness.openRun(controlSocket: control, session: session, tools: tools)
        }
    }

    @Test("kill -9 between intent and completion: irreversible is in doubt until resolved, never repeated")
    func crashBetweenIntentAndCompletion() async throws {
        let dir = try TemporaryDirectory.make("crash", subdirectories: ["state"])
        defer { TemporaryDirectory.remove(dir) }
        let world = try await WorldServer.start()
        defer { world.stop() }
        // The world takes its time over charges: the broker dies while one is in flight.
        world.route("/charge", .json("{\"charged\":true}", delay: .seconds(30)))
        world.route("/upsert", .json("{\"stored\":true}", delay: .seconds(30)))
        let ledgerPath = dir + "/ledger.sqlite"
        let config = dir + "/broker.yaml"
        try BrokerHarness.configYAML(port: world.port, ledger: ledgerPath).write(toFile: config, atomically: true, encoding: .utf8)
        let env = ["HARNESS_API_TOKEN": BrokerHarness.secret]

        let first = try BrokerProcess(config: config, stateDirectory: dir + "/state", environment: env)
        let run = try await first.openRun(session: "agent-1", tools: ["charge", "upsert"])
        let inflight = Task { try? await BrokerHarness.call(run, "charge", ["n": .number(100)]) }
        let inflightIdem = Task { try? await BrokerHarness.call(run, "upsert", ["n": .number(1)], key: "u1") }
        // The world answers only after 30 s; wait (up to 30 s on a loaded machine) until both
        // requests arrived, i.e. both intents are durable and both calls are in flight.
        _ = try await eventually { world.count("/charge") >= 1 && world.count("/upsert") >= 1 }
        #expect(world.count("/charge") == 1 && world.count("/upsert") == 1, "the requests reached the world, so the intents are durable")
        first.killHard()
        _ = await inflight.value
        _ = await inflightIdem.value

        let second = try BrokerProcess(config: config, stateDirectory: dir + "/state", environment: env)
        defer { second.killHard() }
        let ledger = try Ledger(path: ledgerPath)
        let calls = try ledger.list(ListFilter(sessionID: "agent-1"))
        let charge = try #require(calls.first { $0.tool == "charge" })
        #expect(charge.state == .inDoubt)
        #expect(calls.first { $0.tool == "upsert" }?.state == .interrupted)

        // The agent re-runs its snippet: same session, new run and token.
        let rerun = try await second.openRun(session: "agent-1", tools: ["charge", "upsert"])
        let refused = try await BrokerHarness.call(rerun, "charge", ["n": .number(100)])
        #expect(refused.error?.code == .inDoubt)
        #expect(refused.error?.message.contains("sealbox log resolve \(charge.intentSeq)") == true)
        #expect(world.count("/charge") == 1, "never replayed blindly")
        // The idempotent one is safely re-executed under the same key.
        world.route("/upsert", .json("{\"stored\":true}"))
        let redone = try await BrokerHarness.call(rerun, "upsert", ["n": .number(1)], key: "u1")
        #expect(redone.ok && redone.effect?.seq == calls.first { $0.tool == "upsert" }?.intentSeq)
        // Re-executed with the same world key as the first attempt (derived from the log's secret).
        let worldKey = WorldKey.derive(secret: try Ledger(path: ledgerPath).worldKeySecret(), familyRoot: "agent-1", tool: "upsert", key: "u1")
        #expect(world.requests(to: "/upsert").map { $0.header("Idempotency-Key") } == [worldKey, worldKey])

        // An operator settles it (the CLI, as a person would).
        let resolved = try await Binaries.run(["log", "resolve", "\(charge.intentSeq)", "--happened", "--ledger", ledgerPath])
        #expect(resolved.status == 0, "\(resolved.stderr)")
        let after = try await BrokerHarness.call(rerun, "charge", ["n": .number(100)])
        #expect(after.ok && after.effect?.replayed == true)
        #expect(world.count("/charge") == 1)
        #expect(try ledger.verify().ok)
    }

    @Test("kill -9 after completion: nothing sealed is lost, the re-run is answered from the log")
    func crashAfterCompletion() async throws {
        let dir = try TemporaryDirectory.make("crash2", subdirectories: ["state"])
        defer { TemporaryDirectory.remove(dir) }
        let world = try await WorldServer.start()
        defer { world.stop() }
        world.route("/charge", .json("{\"charged\":true,\"receipt\":\"R-1\"}"))
        let ledgerPath = dir + "/ledger.sqlite"
        let config = dir + "/broker.yaml"
        try BrokerHarness.configYAML(port: world.port, ledger: ledgerPath).write(toFile: config, atomically: true, encoding: .utf8)
        let env = ["HARNESS_API_TOKEN": BrokerHarness.secret]

        let first = try BrokerProcess(config: config, stateDirectory: dir + "/state", environment: env)
        let run = try await first.openRun(session: "agent-2", tools: ["charge"])
        let done = try await BrokerHarness.call(run, "charge", ["n": .number(7)])
        #expect(done.ok)
        let recordsBefore = try Ledger(path: ledgerPath).records(afterSeq: 0, limit: 10_000).filter { $0.kind != "revocation" }
        first.killHard()

        let second = try BrokerProcess(config: config, stateDirectory: dir + "/state", environment: env)
        defer { second.killHard() }
        let ledger = try Ledger(path: ledgerPath)
        let recordsAfter = try ledger.records(afterSeq: 0, limit: 10_000).filter { $0.kind != "revocation" }
        #expect(recordsAfter == recordsBefore, "every sealed record survived the kill")
        let rerun = try await second.openRun(session: "agent-2", tools: ["charge"])
        let again = try await BrokerHarness.call(rerun, "charge", ["n": .number(7)])
        #expect(again.ok && again.effect?.replayed == true)
        #expect(again.result == done.result)
        #expect(world.count("/charge") == 1)
        #expect(try ledger.verify().ok)
    }

    @Test("tampering with one row makes `sealbox log verify` fail and name it")
    func tamper() async throws {
        let h = try await BrokerHarness(label: "tamper")
        defer { h.shutdown() }
        let run = try await h.openRun(session: "s-t", tools: ["charge"])
        for n in 1...3 { _ = try await BrokerHarness.call(run, "charge", ["n": .number(Double(n))]) }
        let ok = try await Binaries.run(["log", "verify", "--ledger", h.ledgerPath])
        #expect(ok.status == 0 && ok.stdout.hasPrefix("ok:"), "\(ok.stdout) \(ok.stderr)")
        // Someone with write access to the file edits a completion (the triggers that refuse
        // UPDATE are in the same file, so they can be dropped too).
        let edit = """
            import sqlite3, sys
            db = sqlite3.connect(sys.argv[1])
            for (name,) in db.execute("select name from sqlite_master where type='trigger'").fetchall():
                db.execute('drop trigger "%s"' % name)
            db.execute("update effects set response = '{\\"charged\\":false}' where seq = 4")
            db.commit()
            """
        let python = Process()
        python.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        python.arguments = ["-c", edit, h.ledgerPath]
        try python.run()
        python.waitUntilExit()
        #expect(python.terminationStatus == 0)
        let broken = try await Binaries.run(["log", "verify", "--ledger", h.ledgerPath])
        #expect(broken.status == 1)
        #expect(broken.stdout.contains("BROKEN at seq 4"), "\(broken.stdout)")
    }
}
