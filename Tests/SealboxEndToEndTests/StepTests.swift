import Foundation
import Glibc
import SealboxTestSupport
import Testing
@testable import SealboxBroker

/// `sealbox run --session ID --step KEY`: sealed steps are replayed, never re-run.
@Suite("Session steps", .needsRoot, .serialized)
struct StepTests {
    @Test("a sealed step is replayed without a jail or a tool call; changed code is a step_conflict")
    func replayAndConflict() async throws {
        let dir = try TemporaryDirectory.make("steps")
        defer { TemporaryDirectory.remove(dir) }
        let world = try await WorldServer.start()
        defer { world.stop() }
        world.route("/lookup", .json("{\"rows\":3}"))
        let config = dir + "/broker.yaml"
        try BrokerHarness.configYAML(port: world.port, ledger: dir + "/ledger.sqlite").write(toFile: config, atomically: true, encoding: .utf8)
        let checkpoints = dir + "/checkpoints.sqlite"
        let env = ["HARNESS_API_TOKEN": BrokerHarness.secret]
        let session = try await Binaries.run(["session", "new", "--checkpoints", checkpoints]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(session.hasPrefix("s"))
        // A read tool is re-executed whenever it is called: if the step ran again, the world would know.
        let step = ["run", "--session", session, "--step", "count-rows", "--checkpoints", checkpoints, "--tools", config,
                    "--allow", "lookup", "--json", "--lang", "python", "--code", "import sealbox; print(sealbox.call('lookup', {})['body']['rows'])"]

        let first = try await offPool { try Binaries.runBlocking(step, environment: env) }
        let sealed = try #require(try JSONSerialization.jsonObject(with: Data(first.stdout.utf8)) as? [String: Any], "\(first.stderr)")
        #expect(sealed["stdout"] as? String == "3\n" && sealed["replayed"] as? Bool == false)
        let checkpoint = try #require(sealed["checkpoint"] as? Int)
        #expect(world.count("/lookup") == 1)

        let again = try await offPool { try Binaries.runBlocking(step, environment: env) }
        let replayed = try #require(try JSONSerialization.jsonObject(with: Data(again.stdout.utf8)) as? [String: Any])
        #expect(replayed["replayed"] as? Bool == true && replayed["checkpoint"] as? Int == checkpoint)
        #expect(replayed["stdout"] as? String == "3\n" && replayed["id"] as? String == sealed["id"] as? String)
        #expect(world.count("/lookup") == 1, "nothing executed")

        let changed = step.dropLast() + ["print('re-planned')"]
        let conflict = try await offPool { try Binaries.runBlocking(Array(changed), environment: env) }
        #expect(conflict.status == 125)
        #expect(conflict.stderr.contains("step_conflict") && conflict.stderr.contains("sha256:"), "\(conflict.stderr)")
        #expect(world.count("/lookup") == 1)

        let steps = try await Binaries.run(["session", "steps", session, "--json", "--checkpoints", checkpoints])
        let list = try #require(try JSONSerialization.jsonObject(with: Data(steps.stdout.utf8)) as? [[String: Any]])
        #expect(list.count == 1 && list[0]["step_key"] as? String == "count-rows" && list[0]["ledger_cursor"] is Int)
    }

    @Test("a step whose runner was killed mid-way has no seal and runs again")
    func killedStepRunsAgain() async throws {
        let dir = try TemporaryDirectory.make("steps-kill")
        defer { TemporaryDirectory.remove(dir) }
        let checkpoints = dir + "/checkpoints.sqlite"
        let session = try await Binaries.run(["session", "new", "--checkpoints", checkpoints]).stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        // The kill must land while the step runs, not before it started: wait for its program.
        let marker = "sleep 30.\(Int.random(in: 1000...9999))"
        let runner = Process()
        runner.executableURL = URL(fileURLWithPath: Binaries.sealbox)
        runner.arguments = ["run", "--session", session, "--step", "slow", "--checkpoints", checkpoints, "--", "/bin/sh", "-c", marker]
        var env = ProcessInfo.processInfo.environment
        env["SEALBOX_DATA_DIR"] = Binaries.repoRoot
        runner.environment = env
        runner.standardOutput = FileHandle.nullDevice
        runner.standardError = FileHandle.nullDevice
        try runner.run()
        // A loop that ends when the program shows (`for … where` would go on scanning /proc
        // after it did, past the run's own timeout).
        let deadline = ContinuousClock.now + .seconds(30)
        while Self.processes(containing: marker).isEmpty && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(25)) }
        #expect(!Self.processes(containing: marker).isEmpty, "the step's program started")
        kill(runner.processIdentifier, SIGKILL)
        try await offPool { runner.waitUntilExit() }
        #expect(try await Binaries.run(["session", "steps", session, "--json", "--checkpoints", checkpoints]).stdout == "[]\n")
        // The attempt is on record as started and never sealed.
        let facts = try await Binaries.run(["session", "facts", session, "--json", "--checkpoints", checkpoints, "--ledger", dir + "/none.sqlite"])
        #expect(facts.stdout.contains("\"slow\""), "\(facts.stdout.prefix(600)) \(facts.stderr)")
        // The same step, run again, now executes (and is sealed).
        let rerun = try await Binaries.run(["run", "--session", session, "--step", "slow", "--checkpoints", checkpoints, "--timeout", "0.5", "--json", "--", "/bin/sh", "-c", marker])
        let result = try #require(try JSONSerialization.jsonObject(with: Data(rerun.stdout.utf8)) as? [String: Any], "\(rerun.stderr)")
        #expect(result["status"] as? String == "timeout" && result["replayed"] as? Bool == false)
    }

    @Test("a runner killed with SIGKILL leaves no broker behind: its broker watches it and stops")
    func killedRunnerTakesItsBrokerAlong() async throws {
        let dir = try TemporaryDirectory.make("steps-orphan")
        defer { TemporaryDirectory.remove(dir) }
        let world = try await WorldServer.start()
        defer { world.stop() }
        world.route("/lookup", .json("{}"))
        let config = dir + "/broker.yaml"
        try BrokerHarness.configYAML(port: world.port, ledger: dir + "/ledger.sqlite").write(toFile: config, atomically: true, encoding: .utf8)
        let runner = Process()
        runner.executableURL = URL(fileURLWithPath: Binaries.sealbox)
        runner.arguments = ["run", "--tools", config, "--allow", "lookup", "--lang", "python", "--code",
                            "import sealbox, time; sealbox.call('lookup', {}); time.sleep(30)"]
        var env = ProcessInfo.processInfo.environment
        env["SEALBOX_DATA_DIR"] = Binaries.repoRoot
        env["HARNESS_API_TOKEN"] = BrokerHarness.secret
        runner.environment = env
        runner.standardOutput = FileHandle.nullDevice
        runner.standardError = FileHandle.nullDevice
        try runner.run()
        // The snippet has called its tool: the broker is up and serving the run.
        _ = try await eventually(15) { world.count("/lookup") > 0 }
        #expect(world.count("/lookup") == 1)
        let brokers = Self.children(of: runner.processIdentifier).filter { $0.cmdline.contains(" broker ") }
        #expect(brokers.count == 1, "the run's broker is running")
        kill(runner.processIdentifier, SIGKILL)
        try await offPool { runner.waitUntilExit() }
        _ = try await eventually(5) { !brokers.contains(where: { Self.alive($0.pid) }) }
        #expect(!brokers.contains(where: { Self.alive($0.pid) }), "the broker outlived its runner")
    }

    @Test("a runner killed with SIGKILL takes its jail along: the uid change must not disarm the parent-death signal")
    func killedRunnerTakesItsJailAlong() async throws {
        let marker = "sleep 31.\(Int.random(in: 1000...9999))"
        let runner = Process()
        runner.executableURL = URL(fileURLWithPath: Binaries.sealbox)
        runner.arguments = ["run", "--timeout", "60", "--", "/bin/sh", "-c", marker]
        var env = ProcessInfo.processInfo.environment
        env["SEALBOX_DATA_DIR"] = Binaries.repoRoot
        runner.environment = env
        runner.standardOutput = FileHandle.nullDevice
        runner.standardError = FileHandle.nullDevice
        try runner.run()
        func jailed() -> [Int32] { Self.processes(containing: marker) }
        let started = ContinuousClock.now + .seconds(30)
        while jailed().isEmpty && ContinuousClock.now < started { try await Task.sleep(for: .milliseconds(25)) }
        #expect(!jailed().isEmpty, "the jailed program started")
        kill(runner.processIdentifier, SIGKILL)
        try await offPool { runner.waitUntilExit() }
        let gone = ContinuousClock.now + .seconds(10)
        while !jailed().isEmpty && ContinuousClock.now < gone { try await Task.sleep(for: .milliseconds(50)) }
        #expect(jailed().isEmpty, "the jail outlived its runner: \(jailed())")
    }

    @Test("a run with --tools sweeps broker state directories that no broker uses, older than a minute")
    func staleStateDirectoriesAreSwept() async throws {
        let dir = try TemporaryDirectory.make("steps-sweep")
        defer { TemporaryDirectory.remove(dir) }
        let world = try await WorldServer.start()
        defer { world.stop() }
        let config = dir + "/broker.yaml"
        try BrokerHarness.configYAML(port: world.port, ledger: dir + "/ledger.sqlite").write(toFile: config, atomically: true, encoding: .utf8)
        let base = "/run/sealbox"
        let stale = base + "/broker-rstale\(UInt32.random(in: 0...UInt32.max))"
        let young = base + "/broker-ryoung\(UInt32.random(in: 0...UInt32.max))"
        for path in [stale, young] {
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
            FileManager.default.createFile(atPath: path + "/broker.log", contents: Data("left by a killed runner\n".utf8))
        }
        defer { try? FileManager.default.removeItem(atPath: young) }
        try FileManager.default.setAttributes([.modificationDate: Date(timeIntervalSinceNow: -120)], ofItemAtPath: stale)
        let run = try await offPool {
            try Binaries.runBlocking(["run", "--tools", config, "--allow", "lookup", "--", "/bin/true"], environment: ["HARNESS_API_TOKEN": BrokerHarness.secret])
        }
        #expect(run.status == 0, "\(run.stderr)")
        #expect(!FileManager.default.fileExists(atPath: stale), "a two-minute-old unused state directory was swept")
        #expect(FileManager.default.fileExists(atPath: young), "a fresh one may belong to a broker starting now: kept")
    }

    /// Running (not zombie) processes whose parent is `parent`.
    static func children(of parent: Int32) -> [(pid: Int32, cmdline: String)] {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return entries.compactMap { name -> (Int32, String)? in
            guard let pid = Int32(name), let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
                  let close = stat.lastIndex(of: ")") else { return nil }
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            guard fields.count > 1, Int32(fields[1]) == parent,
                  let data = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") else { return nil }
            return (pid, String(decoding: data.map { $0 == 0 ? 32 : $0 }, as: UTF8.self))
        }
    }

    /// Live processes whose command line contains `marker`, but for sealbox itself (the
    /// runner's own arguments name the marker too): the jailed program.
    static func processes(containing marker: String) -> [Int32] {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return entries.compactMap { name -> Int32? in
            guard let pid = Int32(name), alive(pid),
                  let data = FileManager.default.contents(atPath: "/proc/\(name)/cmdline") else { return nil }
            let argv = data.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
            guard let program = argv.first, !program.hasSuffix("sealbox") else { return nil }
            return argv.joined(separator: " ").contains(marker) ? pid : nil
        }
    }

    static func alive(_ pid: Int32) -> Bool {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8), let close = stat.lastIndex(of: ")") else { return false }
        return !stat[stat.index(after: close)...].hasPrefix(" Z")
    }
}
