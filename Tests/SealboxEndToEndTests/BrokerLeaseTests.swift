import Foundation
import Glibc
import SealboxBase
import SealboxLedger
import SealboxSQLite
import SealboxTestSupport
import Testing
@testable import SealboxBroker

/// Several brokers on ONE effect log (`sealbox run --tools CONFIG` starts a broker per run, and
/// concurrent runs share the config's `ledger:`). A broker that starts must not take another
/// live broker's work for abandoned: neither its in-flight calls (in doubt / interrupted) nor
/// its tokens (revoked). Only the work of brokers that are really gone is recovered.
@Suite("Brokers sharing one effect log", .serialized)
struct BrokerLeaseTests {
    static let environment = ["HARNESS_API_TOKEN": BrokerHarness.secret]

    @Test("a broker starting while another executes an irreversible call leaves that call and its token alone")
    func secondBrokerLeavesLiveWorkAlone() async throws {
        let h = try await BrokerHarness(label: "lease-two")
        defer { h.shutdown() }
        // The world takes 2 s over these: broker B starts while A's calls are in flight.
        h.world.route("/charge", .json("{\"charged\":true}", delay: .seconds(2)))
        h.world.route("/upsert", .json("{\"stored\":true}", delay: .seconds(2)))
        let run = try await h.openRun(session: "lease-a", tools: ["charge", "upsert"])
        let charge = Task { try await BrokerHarness.call(run, "charge", ["n": .number(1)]) }
        let upsert = Task { try await BrokerHarness.call(run, "upsert", ["n": .number(1)], key: "u1") }
        #expect(try await eventually { h.world.count("/charge") == 1 && h.world.count("/upsert") == 1 },
                "both requests reached the world: both intents are durable and pending")
        let ledger = try h.ledger()

        let b = try BrokerServer(.init(configPath: h.configPath, stateDirectory: h.dir + "/state-b", environment: Self.environment))
        defer { b.stop() }
        let recovered = try await b.start()
        #expect(recovered.calls.isEmpty, "B marked A's in-flight calls: \(recovered.calls.map { "seq \($0.intentSeq) \($0.tool) -> \($0.state.rawValue)" })")
        #expect(recovered.grants.isEmpty, "B ended A's grant")
        #expect(recovered.liveBrokers == [h.service.brokerID] && recovered.callsLeftAlone == 2 && recovered.grantsLeftAlone == 1)
        let calls = try ledger.list(ListFilter(sessionID: "lease-a"))
        #expect(calls.map(\.state) == [.pending, .pending], "A's calls are still executing")
        let now = EffectEngine.nowMs()
        #expect(try ledger.liveGrants(sessionIDs: ["lease-a"], nowMs: now).map(\.tokenID) == [run.tokenID],
                "A's token is still live authority")
        #expect(!(try ledger.records(afterSeq: 0, limit: 1000).contains { $0.kind == "revocation" || $0.kind == "interruption" }))

        // A's calls complete and are sealed as if B had never started.
        let charged = try await charge.value
        let stored = try await upsert.value
        #expect(charged.ok && charged.effect?.replayed == false, "\(charged.error?.message ?? "")")
        #expect(stored.ok && stored.effect?.replayed == false, "\(stored.error?.message ?? "")")
        #expect(try ledger.list(ListFilter(sessionID: "lease-a")).map(\.state) == [.sealed, .sealed])
        // A re-run of A's snippet (through B) gets the sealed answer, not in_doubt.
        let rerun = try await openRun(b, session: "lease-a", tools: ["charge"])
        let again = try await BrokerHarness.call(rerun, "charge", ["n": .number(1)])
        #expect(again.ok && again.effect?.replayed == true, "\(again.error?.message ?? "")")
        #expect(h.world.count("/charge") == 1)
        #expect(try ledger.verify().ok)
    }

    @Test("graceful shutdown ends the broker's live grants in the log, waits for calls in flight, releases the lease")
    func gracefulShutdown() async throws {
        let h = try await BrokerHarness(label: "lease-stop")
        defer { h.shutdown() }
        h.world.route("/upsert", .json("{\"stored\":true}", delay: .milliseconds(800)))
        let open = try await h.openRun(session: "stop-s", tools: ["upsert", "lookup"])
        let closed = try await h.openRun(session: "stop-s", tools: ["lookup"])
        #expect(try await h.control(ControlRequest(op: "close_run", runID: closed.id)).ok)
        let ledger = try h.ledger()
        let inflight = Task { try await BrokerHarness.call(open, "upsert", ["n": .number(1)], key: "u-stop") }
        #expect(try await eventually { h.world.count("/upsert") == 1 })
        let lease = try #require(h.service.lease as? FileBrokerLease)
        #expect(FileManager.default.fileExists(atPath: lease.path))

        let report = await h.service.shutdown(reason: "test")
        #expect(report.failure == nil && report.callsStillInFlight == 0)
        #expect(report.endedGrants.map(\.tokenID) == [open.tokenID], "only the grant still live")
        let answer = try await inflight.value
        #expect(answer.ok, "the call in flight was sealed before the broker let go: \(answer.error?.message ?? "")")
        #expect(try ledger.list(ListFilter(sessionID: "stop-s")).map(\.state) == [.sealed])
        #expect(try ledger.liveGrants(sessionIDs: ["stop-s"], nowMs: EffectEngine.nowMs()).isEmpty)
        let last = try #require(try ledger.records(afterSeq: 0, limit: 1000).last { $0.kind == "revocation" })
        #expect(last.tokenID == open.tokenID && last.note == "broker \(h.service.brokerID) stopped: test")
        #expect(!lease.isHeld && !FileManager.default.fileExists(atPath: lease.path))
        // Its run sockets are gone at once.
        await #expect(throws: (any Error).self) { try await BrokerHarness.call(open, "lookup") }
        #expect(try ledger.verify().ok)
    }

    @Test("a stopping broker keeps its lease while a call is still running after the grace period")
    func shutdownKeepsLeaseForRunningCall() async throws {
        let h = try await BrokerHarness(label: "lease-grace")
        defer { h.shutdown() }
        h.world.route("/charge", .json("{\"charged\":true}", delay: .seconds(2)))
        let run = try await h.openRun(session: "grace-s", tools: ["charge"])
        let inflight = Task { try await BrokerHarness.call(run, "charge", ["n": .number(1)]) }
        #expect(try await eventually { h.world.count("/charge") == 1 })
        let report = await h.service.shutdown(reason: "test", grace: .milliseconds(100))
        #expect(report.callsStillInFlight == 1 && h.service.lease.isHeld, "no other broker may take the running call for abandoned")
        // Another broker starting now leaves the call alone; it completes and is sealed.
        let b = try BrokerServer(.init(configPath: h.configPath, stateDirectory: h.dir + "/state-b", environment: Self.environment))
        defer { b.stop() }
        let recovery = try await b.start()
        #expect(recovery.calls.isEmpty && recovery.callsLeftAlone == 1)
        let answer = try await inflight.value
        #expect(answer.ok, "\(answer.error?.message ?? "")")
        #expect(try h.ledger().list(ListFilter(sessionID: "grace-s")).map(\.state) == [.sealed])
    }

    @Test("two `sealbox broker` processes on one log: B leaves A's call alone; A killed: its call in doubt, its grant ended; B on SIGTERM ends its grants; facts show no live token")
    func processes() async throws {
        let dir = try TemporaryDirectory.make("lease")
        defer { TemporaryDirectory.remove(dir) }
        let world = try await WorldServer.start()
        defer { world.stop() }
        // A's first charge is answered only once B has started (and found it executing).
        let bStarted = WorldServer.Gate()
        world.route("/charge", .json("{\"charged\":true}", gate: bStarted))
        let ledgerPath = dir + "/ledger.sqlite"
        let config = dir + "/broker.yaml"
        let checkpoints = dir + "/checkpoints.sqlite"
        try BrokerHarness.configYAML(port: world.port, ledger: ledgerPath).write(toFile: config, atomically: true, encoding: .utf8)
        let made = try await offPool { try Binaries.runBlocking(["session", "new", "--checkpoints", checkpoints]) }
        #expect(made.status == 0, "\(made.stderr)")
        let session = made.stdout.trimmingCharacters(in: .whitespacesAndNewlines)

        let a = try await BrokerProcess.start(config: config, dir: dir + "/a")
        let runA = try await a.openRun(session: session, tools: ["charge"])
        let first = Task { try await BrokerHarness.call(runA, "charge", ["n": .number(1)]) }
        #expect(try await eventually { world.count("/charge") == 1 })
        let b = try await BrokerProcess.start(config: config, dir: dir + "/b")
        bStarted.open()
        #expect(b.log.contains("1 other broker(s) live on this effect log") && b.log.contains("left alone 1 executing call(s) and 1 live grant(s)"), "\(b.log)")
        let sealed = try await first.value
        #expect(sealed.ok && sealed.effect?.replayed == false, "A's call completed and was sealed: \(sealed.error?.message ?? "")")

        // A is killed (-9) while a second charge is in flight.
        world.route("/charge", .json("{\"charged\":true}", delay: .seconds(30)))
        let second = Task { try? await BrokerHarness.call(runA, "charge", ["n": .number(2)]) }
        #expect(try await eventually { world.count("/charge") == 2 })
        let ledger = try Ledger(path: ledgerPath)
        let grantA = try #require(try ledger.liveGrants(sessionIDs: [session], nowMs: EffectEngine.nowMs()).first)
        let brokerA = try #require(grantA.brokerID)
        try await a.kill9()
        _ = await second.value
        // The agent re-runs through B: B finds A gone, settles A's call (in doubt) and ends A's grant.
        let runB = try await b.openRun(session: session, tools: ["charge"])
        let again = try await BrokerHarness.call(runB, "charge", ["n": .number(2)])
        #expect(again.error?.code == .inDoubt && again.error?.message.contains("sealbox log resolve") == true, "\(again.error?.message ?? "")")
        #expect(try ledger.list(ListFilter(sessionID: session)).map(\.state) == [.sealed, .inDoubt])
        #expect(try ledger.records(afterSeq: 0, limit: 1000).contains { $0.kind == "revocation" && $0.tokenID == runA.tokenID && $0.note == "broker \(brokerA) is gone: its tokens no longer verify" })
        #expect(!FileManager.default.fileExists(atPath: ledgerPath + ".brokers/\(brokerA).lock"), "A's lock file is removed once its work is recovered")
        let replayed = try await BrokerHarness.call(runB, "charge", ["n": .number(1)])
        #expect(replayed.ok && replayed.effect?.replayed == true)
        #expect(world.count("/charge") == 2)

        // Facts while B runs: B's token is the only live authority.
        let live = try await Self.facts(session, checkpoints: checkpoints, ledger: ledgerPath)
        #expect(live.map { $0["token_id"] as? String } == [runB.tokenID], "\(live)")
        #expect(live.first?["broker_id"] as? String != nil)

        // B stops gracefully: its grants are ended in the log, its lease removed.
        try await b.terminate()
        #expect(b.log.contains("stopped (SIGTERM; ended 1 live grant(s))"), "\(b.log)")
        #expect(try await Self.facts(session, checkpoints: checkpoints, ledger: ledgerPath).isEmpty, "no dead broker's token is listed as live authority")
        #expect(Self.lockFiles(ledgerPath).isEmpty)
        #expect(try ledger.verify().ok)
    }

    @Test("a broker started with --exit-with ends its grants when that process dies")
    func exitWith() async throws {
        let dir = try TemporaryDirectory.make("lease-x")
        defer { TemporaryDirectory.remove(dir) }
        let world = try await WorldServer.start()
        defer { world.stop() }
        let ledgerPath = dir + "/ledger.sqlite"
        let config = dir + "/broker.yaml"
        try BrokerHarness.configYAML(port: world.port, ledger: ledgerPath).write(toFile: config, atomically: true, encoding: .utf8)
        let runner = Process()
        runner.executableURL = URL(fileURLWithPath: "/bin/sleep")
        runner.arguments = ["60"]
        try runner.run()
        let broker = try await BrokerProcess.start(config: config, dir: dir + "/b", exitWith: runner.processIdentifier)
        let run = try await broker.openRun(session: "x-s", tools: ["lookup"])
        let ledger = try Ledger(path: ledgerPath)
        #expect(try ledger.liveGrants(sessionIDs: ["x-s"], nowMs: EffectEngine.nowMs()).map(\.tokenID) == [run.tokenID])
        kill(runner.processIdentifier, SIGKILL)
        try await offPool { runner.waitUntilExit() }
        #expect(try await eventually { !broker.process.isRunning }, "the broker stops when its runner dies")
        #expect(try ledger.liveGrants(sessionIDs: ["x-s"], nowMs: EffectEngine.nowMs()).isEmpty)
        let revocation = try #require(try ledger.records(afterSeq: 0, limit: 100).last)
        #expect(revocation.kind == "revocation" && revocation.tokenID == run.tokenID)
        #expect(revocation.note?.contains("process \(runner.processIdentifier) it was started for exited") == true, "\(revocation.note ?? "")")
        #expect(Self.lockFiles(ledgerPath).isEmpty)
    }

    static func lockFiles(_ ledgerPath: String) -> [String] {
        (try? FileManager.default.contentsOfDirectory(atPath: ledgerPath + ".brokers")) ?? []
    }

    /// `sealbox session facts --json`'s live tokens.
    static func facts(_ session: String, checkpoints: String, ledger: String) async throws -> [[String: Any]] {
        let out = try await offPool { try Binaries.runBlocking(["session", "facts", session, "--json", "--checkpoints", checkpoints, "--ledger", ledger]) }
        let object = try #require(try JSONSerialization.jsonObject(with: Data(out.stdout.utf8)) as? [String: Any], "\(out.stderr)")
        let authority = try #require(object["authority"] as? [String: Any])
        return authority["tokens"] as? [[String: Any]] ?? []
    }

    /// A `sealbox broker` process; every blocking wait runs on a thread of its own.
    final class BrokerProcess: @unchecked Sendable {  // set up in start, then read only
        let process = Process()
        let control: String
        let logPath: String

        private init(control: String, logPath: String) {
            self.control = control
            self.logPath = logPath
        }

        var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

        static func start(config: String, dir: String, exitWith: Int32? = nil) async throws -> BrokerProcess {
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            let broker = BrokerProcess(control: dir + "/control.sock", logPath: dir + "/broker.log")
            _ = FileManager.default.createFile(atPath: broker.logPath, contents: nil)
            broker.process.executableURL = URL(fileURLWithPath: Binaries.sealbox)
            broker.process.arguments = ["broker", "--config", config, "--state-dir", dir] + (exitWith.map { ["--exit-with", String($0)] } ?? [])
            var env = ProcessInfo.processInfo.environment
            for (k, v) in BrokerLeaseTests.environment { env[k] = v }
            broker.process.environment = env
            broker.process.standardOutput = FileHandle.nullDevice
            broker.process.standardError = FileHandle(forWritingAtPath: broker.logPath)
            try broker.process.run()
            let ready = try await eventually { broker.log.contains("listening on") || !broker.process.isRunning }
            guard ready, broker.process.isRunning else { throw FixtureFailure("broker did not start: \(broker.log)") }
            return broker
        }

        func openRun(session: String, tools: [String]) async throws -> BrokerHarness.Run {
            try await BrokerHarness.openRun(controlSocket: control, session: session, tools: tools)
        }

        func kill9() async throws {
            kill(process.processIdentifier, SIGKILL)
            let process = self.process
            try await offPool { process.waitUntilExit() }
        }

        func terminate() async throws {
            kill(process.processIdentifier, SIGTERM)
            let process = self.process
            try await offPool { process.waitUntilExit() }
        }
    }

    func openRun(_ service: BrokerServer, session: String, tools: [String]) async throws -> BrokerHarness.Run {
        let id = "run\(UUID().uuidString.prefix(8).lowercased())"
        let r = try await service.openRun(runID: id, sessionID: session, tools: tools, ttlMs: 60_000)
        guard r.ok, let token = r.token, let tokenID = r.tokenID, let socket = r.socket else {
            throw FixtureFailure("open_run refused: \(r.error?.message ?? "?")")
        }
        return BrokerHarness.Run(id: id, token: token, tokenID: tokenID, socket: socket)
    }
}
