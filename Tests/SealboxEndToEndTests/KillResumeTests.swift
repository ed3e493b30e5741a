import Foundation
import Glibc
import SealboxBroker
import SealboxLedger
import SealboxSQLite
import SealboxTestSupport
import Testing
@testable import SealboxBroker

/// Issue 4, point 6: kill -9 at random points of a multi-step session that uses read,
/// idempotent and irreversible tools against a loopback world, then resume. After every trial:
/// the world received each irreversible request exactly once, every step sealed before the
/// kill is answered `"replayed": true` with no world request, every call sealed before the
/// kill is answered from the log, every irreversible intent left without a completion surfaces
/// as `in_doubt` (and nothing else does) and leaves its step unsealed until resolved, every
/// step ends sealed, both hash chains verify.
///
///     swift build && swift test --filter KillResumeTests                       # 8 trials (CI)
///     SEALBOX_KILL_TRIALS=100 swift test --filter KillResumeTests              # the full run (~7 min, 2 cores)
///     SEALBOX_KILL_SEED=<seed> SEALBOX_KILL_TRIALS=1 swift test --filter ...   # one trial again
///
/// Every failure names its trial's seed; the seed fixes the kill time and the world's delays
/// (not the machine's scheduling, so a replay lands near, not exactly on, the same instant).
///
/// Two kinds of kill -9. `randomKills` simulates a machine crash (`SEALBOX_KILL_MODE=tree`,
/// its default): SIGSTOP the runner, then every descendant (broker, jail init, the jailed
/// program) until the tree is frozen, then SIGKILL all of them (the kernel, and so the page
/// cache, survives: every sealbox process dies at once, not a power cut). `randomRunnerKills`
/// kills the runner alone, as when an agent's process is killed: its broker (watching it
/// through --exit-with) and its jail (parent-death signal) must die with it, and the trial
/// fails if either is still running when the resume starts.
@Suite("Kill -9 and resume", .needsRoot, .serialized)
struct KillResumeTests {
    @Test("random kill -9 points in a read/idempotent/irreversible session; resume; nothing irreversible twice")
    func randomKills() async throws {
        let env = ProcessInfo.processInfo.environment
        let trials = env["SEALBOX_KILL_TRIALS"].flatMap { Int($0) } ?? 8
        let seed = env["SEALBOX_KILL_SEED"].flatMap { UInt64($0) } ?? UInt64.random(in: 0...UInt64.max)
        let mode = KillRig.Mode(rawValue: env["SEALBOX_KILL_MODE"] ?? "tree") ?? .tree
        let outcome = try await offPool { try KillRig.run(trials: trials, seed: seed, mode: mode) }
        print(outcome.summary)
        for failure in outcome.failures { Issue.record(Comment(rawValue: failure)) }
        #expect(outcome.trialsRun == trials)
    }

    @Test("random kill -9 of the runner alone (an agent killed, the machine up); resume; nothing irreversible twice")
    func randomRunnerKills() async throws {
        let env = ProcessInfo.processInfo.environment
        // Half as many as the machine-crash trials by default; SEALBOX_KILL_TRIALS sets both.
        let trials = env["SEALBOX_KILL_TRIALS"].flatMap { Int($0) } ?? 4
        let seed = env["SEALBOX_KILL_SEED"].flatMap { UInt64($0) } ?? UInt64.random(in: 0...UInt64.max)
        let outcome = try await offPool { try KillRig.run(trials: trials, seed: seed, mode: .runner) }
        print(outcome.summary)
        for failure in outcome.failures { Issue.record(Comment(rawValue: failure)) }
        #expect(outcome.trialsRun == trials)
    }

    /// Found while writing the randomized test: the jail's init set PR_SET_PDEATHSIG before
    /// changing its uid (sbx_child.c steps 0 and 3), and the kernel clears the parent-death
    /// signal on a credential change, so the jail outlived a SIGKILLed runner; and the broker
    /// the runner started waited for a SIGTERM that never came. A jail killed "between two
    /// calls" went on and made its next call through the orphaned broker. Now the child arms
    /// the signal again after the uid change, and the broker watches its runner (--exit-with).
    @Test("kill -9 of the runner alone: its jail and its broker die with it; no call happens after")
    func runnerAloneLeavesNoOrphans() async throws {
        let seen = try await offPool { try KillRig.runnerAloneObservation() }
        #expect(!seen.brokerAlive, "the broker started by the killed runner is still running")
        #expect(!seen.jailAlive, "the killed runner's jail is still running")
        #expect(seen.cutoversAfterKill == 0, "the jailed code made an irreversible call after its runner was killed")
        #expect(seen.errors.isEmpty, "\(seen.errors)")
    }
}

// MARK: - the rig

enum KillRig {
    enum Mode: String { case tree, runner }

    /// When to kill: never, at a random time of the session, or a random instant after the
    /// world received the n-th request to a path (the intent is then durable; the route's delay
    /// keeps the completion from being written first).
    enum KillPlan {
        case never
        case at(Double)
        case afterArrival(path: String, nth: Int, offset: Double)
        /// A random instant after the call's intent became durable (read from the effect log).
        case afterIntent(tool: String, key: String, offset: Double)

        var description: String {
            switch self {
            case .never: return "no kill planned"
            case .at(let t): return String(format: "kill planned at t=%.3f s", t)
            case .afterArrival(let path, let nth, let offset): return "kill planned \(String(format: "%.3f", offset)) s after request #\(nth) to \(path) arrived"
            case .afterIntent(let tool, let key, let offset): return "kill planned \(String(format: "%.4f", offset)) s after the intent of \(tool) key \(key) was written"
            }
        }
    }

    struct Outcome {
        var trialsRun = 0
        var failures: [String] = []
        var summary = ""
    }

    // The tools: one per effect class that matters here, all against the loopback world.
    static let tools: [(name: String, effect: String, method: String)] = [
        ("inventory", "read", "GET"),
        ("upsert_record", "idempotent", "POST"),
        ("truncate_table", "irreversible", "POST"),
        ("dns_cutover", "irreversible", "POST"),
    ]
    static func effect(of tool: String) -> String { tools.first { $0.name == tool }!.effect }

    struct Step {
        let key: String
        /// (tool, idempotency key; nil: the broker derives one from the arguments)
        let calls: [(tool: String, key: String?)]
        /// Print each call's line at once (true), or all of them at the end.
        var printEach = true

        /// Each call prints one JSON line; a refused call prints its code and exits 3.
        var code: String {
            var lines = [
                "import json, sys, sealbox",
                "def call(tool, key):",
                "    try:",
                "        r, e = sealbox.call_with_effect(tool, {'note': \(Self.quote(self.key))}, key=key)",
                "    except sealbox.Error as err:",
                "        out.append(json.dumps({'tool': tool, 'key': key, 'ok': False, 'code': err.code, 'message': err.message}))",
                "        print('\\n'.join(out), flush=True)",
                "        sys.exit(3)",
                "    out.append(json.dumps({'tool': tool, 'key': key, 'ok': True, 'seq': e['seq'], 'replayed': e['replayed']}))",
                "    if \(printEach ? "True" : "False"): print(out.pop(), flush=True)",
            ]
            lines.insert("out = []", at: 1)
            for c in calls { lines.append("call(\(Self.quote(c.tool)), \(c.key.map(Self.quote) ?? "None"))") }
            lines.append("print('\\n'.join(out), flush=True) if out else None")
            return lines.joined(separator: "\n") + "\n"
        }

        static func quote(_ s: String) -> String { "'" + s + "'" }
    }

    static let steps: [Step] = [
        Step(key: "survey", calls: [("inventory", nil), ("upsert_record", "s1-upsert")]),
        Step(key: "truncate", calls: [("inventory", nil), ("truncate_table", "s2-truncate")]),
        Step(key: "cutover", calls: [("upsert_record", "s3-upsert"), ("dns_cutover", "s3-cutover"), ("inventory", nil)]),
        Step(key: "report", calls: [("inventory", nil)]),
    ]

    static var irreversibleKeys: [(tool: String, key: String)] {
        steps.flatMap { s in s.calls.compactMap { c in effect(of: c.tool) == "irreversible" ? (c.tool, c.key!) : nil } }
    }

    static var idempotentKeys: [(tool: String, key: String)] {
        steps.flatMap { s in s.calls.compactMap { c in effect(of: c.tool) == "idempotent" ? (c.tool, c.key!) : nil } }
    }

    static func run(trials: Int, seed: UInt64, mode: Mode) throws -> Outcome {
        var outcome = Outcome()
        var stats: [String: Int] = [:]
        let started = ContinuousClock.now
        // Calibration: one whole session, no kill, a quiet world; its length scales the kill times.
        let calibration = try Trial(label: "calibration", mode: mode, delays: [:])
        let baseSeconds = calibration.run(plan: .never)
        outcome.failures += calibration.failures
        guard calibration.failures.isEmpty else {
            outcome.summary = "kill/resume: the calibration session failed; no trials run"
            return outcome
        }
        for i in 0..<trials {
            let trialSeed = seed &+ UInt64(i)
            var rng = SeededRandom(seed: trialSeed)
            // A slow world widens the window between an intent and its completion.
            var delays: [String: Double] = [:]
            for tool in tools where Double.random(in: 0..<1, using: &rng) < 0.35 {
                delays[tool.name] = Double.random(in: 0.1...0.6, using: &rng)
            }
            let plan: KillPlan
            let choice = Double.random(in: 0..<1, using: &rng)
            if choice < 0.4 {
                // Anywhere: broker start-up, jail set-up, a call, teardown, sealing, between steps.
                var expected = baseSeconds
                for step in steps { for c in step.calls { expected += delays[c.tool] ?? 0 } }
                plan = .at(Double.random(in: 0...(expected * 1.05), using: &rng))
            } else if choice < 0.6 {
                // Right after a keyed call's intent is durable: before or just after its request left.
                let keyed = steps.flatMap { $0.calls.compactMap { c in c.key.map { (tool: c.tool, key: $0) } } }
                let target = keyed[Int.random(in: 0..<keyed.count, using: &rng)]
                delays[target.tool] = max(delays[target.tool] ?? 0, 0.3)
                plan = .afterIntent(tool: target.tool, key: target.key, offset: Double.random(in: 0...0.003, using: &rng))
            } else {
                let all = steps.flatMap { $0.calls.enumerated().map { (tool: $0.element.tool, firstOfStep: $0.offset == 0) } }
                let index = Int.random(in: 0..<all.count, using: &rng)
                let tool = all[index].tool
                let delay = max(delays[tool] ?? 0, Double.random(in: 0.2...0.5, using: &rng))
                delays[tool] = delay
                if !all[index].firstOfStep && effect(of: tool) != "read" && Bool.random(using: &rng) {
                    // Aimed just before a call: up to 25 ms after the previous call's answer (the next
                    // request follows it by 10-15 ms here), so the kill lands before this call's
                    // intent, between its intent and its request, or just after the request left.
                    let previous = all[index - 1].tool
                    let nth = all[...(index - 1)].filter { $0.tool == previous }.count
                    plan = .afterArrival(path: "/" + previous, nth: nth, offset: (delays[previous] ?? 0) + Double.random(in: 0...0.025, using: &rng))
                } else {
                    // Aimed at one call while the world holds it: between intent and completion.
                    let nth = all[...index].filter { $0.tool == tool }.count
                    plan = .afterArrival(path: "/" + tool, nth: nth, offset: Double.random(in: 0...(delay * 0.8), using: &rng))
                }
            }
            let trial = try Trial(label: "trial \(i) (SEALBOX_KILL_SEED=\(trialSeed))", mode: mode, delays: delays)
            _ = trial.run(plan: plan)
            outcome.failures += trial.failures
            outcome.trialsRun += 1
            for (k, v) in trial.stats { stats[k, default: 0] += v }
        }
        let seconds = Double((ContinuousClock.now - started).components.seconds)
        outcome.summary = "kill/resume (\(mode.rawValue) mode): \(trials) trials from seed \(seed) in \(Int(seconds)) s, calibration session \(String(format: "%.2f", baseSeconds)) s; "
            + stats.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
            + "; \(outcome.failures.count) failures"
        return outcome
    }

    // MARK: one trial

    struct CallLine {
        var tool: String
        var key: String?
        var ok: Bool
        var seq: Int64?
        var replayed: Bool?
        var code: String?
        var message: String?

        init?(_ line: Substring) {
            guard let o = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any], let tool = o["tool"] as? String else { return nil }
            self.tool = tool
            key = o["key"] as? String
            ok = o["ok"] as? Bool ?? false
            seq = (o["seq"] as? NSNumber)?.int64Value
            replayed = o["replayed"] as? Bool
            code = o["code"] as? String
            message = o["message"] as? String
        }
    }

    struct StepRun {
        var status: Int32
        var json: [String: Any]?
        var stderr: String
        var replayed: Bool? { json?["replayed"] as? Bool }
        /// Seqs of the calls the step was refused to wait on (it is then not sealed).
        var blocked: [Int64] { (json?["blocked"] as? [[String: Any]] ?? []).compactMap { ($0["seq"] as? NSNumber)?.int64Value } }
        var stdout: String { json?["stdout"] as? String ?? "" }
        var lines: [CallLine] { stdout.split(separator: "\n").compactMap(CallLine.init) }
        var describe: String { "exit \(status), stdout \(stdout.debugDescription), stderr \(stderr.suffix(600).debugDescription)" }
    }

    struct CallRow {
        var seq: Int64
        var state: String
        var tool: String
        var effect: String
        var key: String
    }

    final class Trial {
        let label: String
        let mode: Mode
        let delays: [String: Double]
        let dir: String
        let world: WorldServer
        let ledger: String
        let checkpoints: String
        let config: String
        let environment: [String: String]
        var session = ""
        var failures: [String] = []
        var stats: [String: Int] = [:]
        private var context = "before the kill"
        /// Processes a `runner`-mode kill left running; killed at the end of the trial.
        private var orphans: [pid_t] = []

        init(label: String, mode: Mode, delays: [String: Double]) throws {
            self.label = label
            self.mode = mode
            self.delays = delays
            dir = try TemporaryDirectory.make("kill")
            world = try WorldServer.startBlocking()
            ledger = dir + "/ledger.sqlite"
            checkpoints = dir + "/checkpoints.sqlite"
            config = dir + "/broker.yaml"
            for tool in KillRig.tools {
                let delay = Duration.milliseconds(Int((delays[tool.name] ?? 0) * 1000))
                world.route("/\(tool.name)", .json("{\"tool\":\"\(tool.name)\",\"done\":true}", headers: [("ETag", "\"v1\"")], delay: delay))
            }
            var yaml = "ledger: \(ledger)\nsecrets:\n  api: { env: HARNESS_API_TOKEN }\ntools:\n"
            for tool in KillRig.tools {
                yaml += """
                      \(tool.name):
                        kind: http
                        method: \(tool.method)
                        url: "http://127.0.0.1:\(world.port)/\(tool.name)"
                        allow_hosts: ["127.0.0.1"]
                        headers: { Authorization: "Bearer {secret:api}" }
                        args: { note: { type: string, optional: true } }
                        effect: \(tool.effect)
                        timeout: 20s

                    """
            }
            try yaml.write(toFile: config, atomically: true, encoding: .utf8)
            var env = ProcessInfo.processInfo.environment
            env["SEALBOX_DATA_DIR"] = Binaries.repoRoot
            env["HARNESS_API_TOKEN"] = BrokerHarness.secret
            environment = env
        }

        deinit {
            world.stop()
            TemporaryDirectory.remove(dir)
        }

        private var arrivedAt: ContinuousClock.Instant?
        /// Opened (once the first broker created it) only for `.afterIntent` plans.
        private var watchedLedger: Ledger?
        /// The running step's descendants, refreshed while it runs.
        private var known: [pid_t] = []

        func killDue(_ plan: KillPlan, since t0: ContinuousClock.Instant) -> Bool {
            switch plan {
            case .never:
                return false
            case .at(let t):
                return seconds(since: t0) >= t
            case .afterArrival(let path, let nth, let offset):
                if arrivedAt == nil, world.count(path) >= nth { arrivedAt = ContinuousClock.now }
                return arrivedAt.map { seconds(since: $0) >= offset } ?? false
            case .afterIntent(let tool, let key, let offset):
                if arrivedAt == nil {
                    // The world has been called, so a broker has created and migrated the log.
                    if watchedLedger == nil, !world.requests.isEmpty { watchedLedger = try? Ledger(path: ledger) }
                    if let call = try? watchedLedger?.latestCall(sessionID: session, tool: tool, idempotencyKey: key), call.state == .pending {
                        arrivedAt = ContinuousClock.now
                    }
                }
                return arrivedAt.map { seconds(since: $0) >= offset } ?? false
            }
        }

        func fail(_ message: String) {
            failures.append("\(label), \(context), world delays \(delays.mapValues { (($0 * 1000).rounded()) / 1000 }): \(message)")
        }

        func count(_ name: String, _ n: Int = 1) { stats[name, default: 0] += n }

        func stepArguments(_ key: String, _ step: Step) -> [String] {
            ["run", "--session", session, "--step", key, "--checkpoints", checkpoints, "--tools", config]
                + KillRig.tools.flatMap { ["--allow", $0.name] }
                + ["--timeout", "30", "--json", "--lang", "python", "--code", step.code]
        }

        /// Runs the session, killing it as planned, then resumes it and checks every invariant.
        /// Returns how long the crash phase took.
        func run(plan: KillPlan) -> Double {
            defer { cleanUp() }
            let created = try? Binaries.runBlocking(["session", "new", "--checkpoints", checkpoints])
            session = created?.stdout.trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
            guard created?.status == 0, session.hasPrefix("s") else {
                fail("session new: \(created?.stderr ?? "did not run")")
                return 0
            }

            // 1. The session, until the kill.
            let t0 = ContinuousClock.now
            var finished: [String: String] = [:]  // step → stdout of its first (sealed) run
            var killed: String?
            for step in KillRig.steps {
                let stepStart = ContinuousClock.now
                let runner: KillTestChild
                do {
                    runner = try KillTestChild(arguments: stepArguments(step.key, step), environment: environment, dir: dir)
                } catch {
                    fail("cannot start the runner: \(error)")
                    return 0
                }
                var status: Int32?
                var lastScan = ContinuousClock.now - .seconds(1)
                while status == nil {
                    status = runner.poll()
                    if status != nil { break }
                    if ContinuousClock.now - lastScan > .milliseconds(20) {
                        // Known in advance, the broker and the jail stop within a millisecond of the runner.
                        known = KillTestProcesses.descendants(of: runner.pid)
                        lastScan = ContinuousClock.now
                    }
                    if killDue(plan, since: t0) {
                        context = "killed -9 (\(mode.rawValue)) in step \(step.key) at +" + String(format: "%.3f s, session t=%.3f s", seconds(since: stepStart), seconds(since: t0)) + " (\(plan.description))"
                        crash(runner)
                        killed = step.key
                        break
                    }
                    if case .afterIntent = plan { usleep(100) } else { usleep(1000) }
                }
                if killed != nil { break }
                let result = runner.result(status: status!)
                guard result.status == 0, result.replayed == false else {
                    fail("step \(step.key) (not killed) did not succeed: \(result.describe)")
                    return 0
                }
                finished[step.key] = result.stdout
            }
            let crashSeconds = seconds(since: t0)
            watchedLedger = nil
            if killed == nil {
                context = "no kill (\(plan.description))"
                count("no_kill")
            } else {
                count("killed_in_\(killed!)")
            }

            // 2. What the crash left: the world has seen all it ever will once no connection to it is open.
            let left = calls()
            let sealedSteps = Set(sealedStepKeys())
            for key in finished.keys where !sealedSteps.contains(key) {
                fail("step \(key) finished before the kill but is not sealed")
            }
            if let killed, sealedSteps.contains(killed) { count("killed_after_seal") }
            checkIrreversibleAtMostOnce("after the kill")
            let expectedInDoubt = Set(left.filter { $0.state == "pending" && $0.effect == "irreversible" }.map(\.seq))
            let interrupted = left.filter { $0.state == "pending" && $0.effect != "irreversible" }
            count("pending_irreversible", expectedInDoubt.count)
            count("pending_other", interrupted.count)
            // Calls of unsealed steps already sealed in the effect log must be replayed, not re-run.
            var sealedCalls: [String: Int64] = [:]  // idempotency key → intent seq
            for c in left where c.state == "sealed" && c.effect != "read" { sealedCalls[c.key] = c.seq }
            // Idempotent calls left with only an intent are re-executed under that intent and key.
            var interruptedCalls: [String: Int64] = [:]
            for c in interrupted where c.effect == "idempotent" { interruptedCalls[c.key] = c.seq }
            for c in left where c.state != "sealed" && c.state != "pending" {
                // A runner killed while its broker lives on: the broker revokes the run, and a
                // call it had not sent yet fails with a completion saying it never happened.
                // Right, as long as the world indeed never saw it; the resumed step sends it anew.
                if c.state == "failed", completionHappened(c.seq) == false,
                   !world.requests(to: "/\(c.tool)").contains(where: { $0.header("Idempotency-Key") == worldKey(c.tool, c.key) }) {
                    count("failed_before_sent")
                    continue
                }
                fail("after the kill, call seq \(c.seq) \(c.tool) is \(c.state) (expected sealed or pending, or failed before it was sent)")
            }

            // 3. Resume: every step again, in order, acting as the operator when a call is in doubt.
            var observedInDoubt = Set<Int64>()
            for step in KillRig.steps {
                let before = world.requests.count
                let result = runStep(step.key, step)
                if sealedSteps.contains(step.key) {
                    if result.replayed != true || result.status != 0 {
                        fail("sealed step \(step.key) was not replayed on resume: \(result.describe)")
                    }
                    if world.requests.count != before {
                        fail("replaying sealed step \(step.key) reached the world: \(world.requests.dropFirst(before).map(\.target))")
                    }
                    if let first = finished[step.key], first != result.stdout {
                        fail("sealed step \(step.key) replayed \(result.stdout.debugDescription), first run printed \(first.debugDescription)")
                    }
                    count("steps_replayed")
                    continue
                }
                if result.replayed != false { fail("unsealed step \(step.key) was not run: \(result.describe)") }
                checkReplayedCalls(result.lines, sealedCalls, newRequests: Array(world.requests.dropFirst(before)), step: step.key)
                for line in result.lines {
                    guard let key = line.key, let seq = interruptedCalls[key] else { continue }
                    if !line.ok || line.replayed != false || line.seq != seq {
                        fail("step \(step.key): idempotent \(line.tool) key \(key) was interrupted (intent seq \(seq)) and answered \(line), expected a re-execution under seq \(seq)")
                    }
                    count("idempotent_reexecuted")
                }
                if result.status == 3, let refused = result.lines.last, refused.code == "in_doubt", let key = refused.key {
                    // The operator: is this call in doubt in the log, and did the world receive it?
                    let doubtful = calls().filter { $0.state == "in_doubt" && $0.key == key }
                    guard doubtful.count == 1, let seq = doubtful.first?.seq else {
                        fail("step \(step.key): \(refused.tool) refused in_doubt but the log has \(doubtful.count) in_doubt calls with key \(key)")
                        continue
                    }
                    observedInDoubt.insert(seq)
                    if refused.message?.contains("sealbox log resolve \(seq)") != true {
                        fail("the in_doubt refusal does not name seq \(seq): \(refused.message ?? "")")
                    }
                    let arrived = world.requests(to: "/\(refused.tool)").contains { $0.header("Idempotency-Key") == worldKey(refused.tool, key) }
                    count(arrived ? "resolved_happened" : "resolved_did_not_happen")
                    let resolve = try? Binaries.runBlocking(["log", "resolve", "\(seq)", arrived ? "--happened" : "--did-not-happen",
                                                     "--note", "world log checked by the kill test", "--ledger", ledger])
                    if resolve?.status != 0 { fail("log resolve \(seq): \(resolve?.stderr ?? "did not run")") }
                    // A step refused on an in-doubt call is blocked, not finished: it was not
                    // sealed, so once resolved the same step key runs again and carries on.
                    if result.replayed != false || result.blocked.first != seq {
                        fail("step \(step.key) refused in_doubt must come back unsealed and name seq \(seq) as blocking: \(result.describe)")
                    }
                    let retry = runStep(step.key, step)
                    if retry.status != 0 || retry.replayed != false {
                        fail("step \(step.key) after `log resolve \(seq) \(arrived ? "--happened" : "--did-not-happen")`: \(retry.describe)")
                    }
                    let settled = retry.lines.first { $0.key == key }
                    if settled?.ok != true || settled?.replayed != arrived {
                        fail("after resolving seq \(seq) (\(arrived ? "happened" : "did not happen")), the call answered \(String(describing: settled))")
                    }
                } else if result.status != 0 {
                    fail("resumed step \(step.key) failed: \(result.describe)")
                } else {
                    count("steps_rerun")
                }
            }

            // 4. Invariants of the finished session.
            if observedInDoubt != expectedInDoubt {
                fail("in_doubt surfaced for \(observedInDoubt.sorted()), but the irreversible intents left without completion were \(expectedInDoubt.sorted())")
            }
            checkIrreversibleAtMostOnce("at the end")
            for (tool, key) in KillRig.irreversibleKeys {
                let n = world.requests(to: "/\(tool)").filter { $0.header("Idempotency-Key") == worldKey(tool, key) }.count
                if n != 1 { fail("the world received \(tool) key \(key) \(n) times (expected exactly once)") }
            }
            for (tool, key) in KillRig.idempotentKeys where world.requests(to: "/\(tool)").allSatisfy({ $0.header("Idempotency-Key") != worldKey(tool, key) }) {
                fail("the idempotent \(tool) key \(key) never reached the world")
            }
            for (tool, _) in KillRig.idempotentKeys + KillRig.irreversibleKeys {
                for r in world.requests(to: "/\(tool)") where r.header("Authorization") != "Bearer \(BrokerHarness.secret)" || r.header("Idempotency-Key") == nil {
                    fail("a request to \(tool) came without the credential or the idempotency key: \(r.headers)")
                }
            }
            let final = calls()
            for c in final where c.state == "pending" || c.state == "in_doubt" || (c.state == "interrupted" && c.effect != "read") {
                fail("call seq \(c.seq) \(c.tool) key \(c.key) ended \(c.state)")
            }
            for (tool, key) in KillRig.idempotentKeys + KillRig.irreversibleKeys {
                let latest = final.filter { $0.tool == tool && $0.key == key }.max { $0.seq < $1.seq }
                if latest?.state != "sealed" && latest?.state != "resolved_happened" {
                    fail("\(tool) key \(key) ended \(latest?.state ?? "missing")")
                }
            }
            let stepsNow = Set(sealedStepKeys())
            for step in KillRig.steps where !stepsNow.contains(step.key) { fail("step \(step.key) is not sealed at the end") }
            let verify = try? Binaries.runBlocking(["log", "verify", "--ledger", ledger])
            if verify?.status != 0 { fail("log verify: \(verify?.stdout ?? "") \(verify?.stderr ?? "did not run")") }
            do {
                let report = try SQLiteCheckpointStore(path: checkpoints).verify()
                if !report.ok { fail("checkpoint chain broken at \(report.firstBadSeq ?? -1): \(report.reason ?? "")") }
            } catch {
                fail("checkpoint store: \(error)")
            }
            return crashSeconds
        }

        /// A call answered during the resume whose completion was sealed before the kill must be
        /// a replay of that intent, and must not have reached the world again.
        func checkReplayedCalls(_ lines: [CallLine], _ sealedCalls: [String: Int64], newRequests: [WorldServer.Request], step: String) {
            for line in lines {
                guard let key = line.key, let seq = sealedCalls[key] else { continue }
                if !line.ok || line.replayed != true || line.seq != seq {
                    fail("step \(step): \(line.tool) key \(key) was sealed (seq \(seq)) before the kill but answered \(line)")
                }
                if newRequests.contains(where: { $0.header("Idempotency-Key") == worldKey(line.tool, key) }) {
                    fail("step \(step): \(line.tool) key \(key) was sealed before the kill, yet the world received it again")
                }
                count("calls_replayed_in_rerun")
            }
        }

        /// The key the world sees for (tool, key) in this trial's session (`WorldKey`): the
        /// broker never sends the jail's key itself.
        func worldKey(_ tool: String, _ key: String) -> String {
            guard let log = try? Ledger(path: ledger), let secret = try? log.worldKeySecret() else { return "no world key secret" }
            return WorldKey.derive(secret: secret, familyRoot: (try? log.root(of: session)) ?? session, tool: tool, key: key)
        }

        func checkIrreversibleAtMostOnce(_ when: String) {
            for (tool, key) in KillRig.irreversibleKeys {
                let n = world.requests(to: "/\(tool)").filter { $0.header("Idempotency-Key") == worldKey(tool, key) }.count
                if n > 1 { fail("\(when): the world received the irreversible \(tool) key \(key) \(n) times") }
            }
        }

        func runStep(_ key: String, _ step: Step) -> StepRun {
            do {
                let runner = try KillTestChild(arguments: stepArguments(key, step), environment: environment, dir: dir)
                return runner.result(status: runner.wait())
            } catch {
                return StepRun(status: -1, json: nil, stderr: "cannot start: \(error)")
            }
        }

        func calls() -> [CallRow] {
            guard FileManager.default.fileExists(atPath: ledger) else { return [] }  // killed before any broker opened it
            guard let out = try? Binaries.runBlocking(["log", "list", "--session", session, "--limit", "10000", "--json", "--ledger", ledger]),
                  out.status == 0, let rows = try? JSONSerialization.jsonObject(with: Data(out.stdout.utf8)) as? [[String: Any]] else {
                fail("log list failed")
                return []
            }
            return rows.compactMap { r in
                guard let seq = (r["intent_seq"] as? NSNumber)?.int64Value, let state = r["state"] as? String, let tool = r["tool"] as? String,
                      let effect = r["effect_class"] as? String, let key = r["idempotency_key"] as? String else { return nil }
                return CallRow(seq: seq, state: state, tool: tool, effect: effect, key: key)
            }
        }

        /// What the completion of the call at `seq` says of the world: happened, did not, or nil
        /// (no completion, or it does not say).
        func completionHappened(_ seq: Int64) -> Bool? {
            guard let out = try? Binaries.runBlocking(["log", "show", "\(seq)", "--json", "--ledger", ledger]), out.status == 0,
                  let records = try? JSONSerialization.jsonObject(with: Data(out.stdout.utf8)) as? [[String: Any]] else {
                fail("log show \(seq) failed")
                return nil
            }
            return records.last { $0["kind"] as? String == "completion" }?["happened"] as? Bool
        }

        func sealedStepKeys() -> [String] {
            guard let out = try? Binaries.runBlocking(["session", "steps", session, "--json", "--checkpoints", checkpoints]), out.status == 0,
                  let rows = try? JSONSerialization.jsonObject(with: Data(out.stdout.utf8)) as? [[String: Any]] else {
                fail("session steps failed")
                return []
            }
            return rows.compactMap { $0["step_key"] as? String }
        }

        /// The kill: the whole tree frozen then SIGKILLed (a machine crash), or the runner alone.
        func crash(_ runner: KillTestChild) {
            switch mode {
            case .tree:
                let frozen = KillTestProcesses.freeze(root: runner.pid, alsoFirst: known)
                let stateDirs = frozen.compactMap(KillTestProcesses.brokerSocketsDirectory)
                for pid in frozen { kill(pid, SIGKILL) }
                _ = runner.wait()
                if let alive = KillTestProcesses.waitGone(frozen.filter { $0 != runner.pid }, seconds: 10) {
                    fail("processes \(alive) survived SIGKILL")
                }
                for d in stateDirs { try? FileManager.default.removeItem(atPath: d) }
                waitWorldQuiet()
            case .runner:
                let tree = KillTestProcesses.descendants(of: runner.pid)
                kill(runner.pid, SIGKILL)
                _ = runner.wait()
                // The broker stops gracefully: it lets a call in flight finish (5 s grace).
                if let alive = KillTestProcesses.waitGone(tree, seconds: 8) {
                    // A regression of runnerAloneLeavesNoOrphans: resume alongside them, clean up after.
                    let brokers = alive.filter { KillTestProcesses.brokerSocketsDirectory($0) != nil }
                    fail("\(alive.count) processes outlived the killed runner (broker \(brokers), jail \(alive.filter { !brokers.contains($0) })); resuming alongside them")
                    orphans = alive
                } else {
                    waitWorldQuiet()
                }
            }
        }

        /// A runner killed after its broker stopped, but before it removed the broker's state
        /// directory, leaves that directory behind (nothing sweeps them): remove ours.
        func sweepStateDirectories() {
            let base = geteuid() == 0 ? "/run/sealbox" : "/tmp/sealbox-\(getuid())"
            for name in (try? FileManager.default.contentsOfDirectory(atPath: base)) ?? [] where name.hasPrefix("broker-r") {
                let path = base + "/" + name
                guard let log = KillTestProcesses.read(path + "/broker.log"), log.contains(dir + "/") else { continue }
                count("leaked_broker_state_dirs")
                // A broker that outlives its runner removes its own state directory; only a
                // machine-crash kill (tree), which kills the broker too, may leave one.
                if mode == .runner { fail("the state directory \(path) of a killed runner's broker was left behind") }
                try? FileManager.default.removeItem(atPath: path)
            }
        }

        /// Once no connection to the world is open, it has recorded every request it will ever see.
        func waitWorldQuiet() {
            let until = ContinuousClock.now + .seconds(30)
            while ContinuousClock.now < until {
                if KillTestProcesses.openConnections(toLocalPort: world.port) == 0 { return }
                usleep(2000)
            }
            fail("connections to the world stayed open 30 s after the kill")
        }

        func cleanUp() {
            defer { sweepStateDirectories() }
            guard !orphans.isEmpty else { return }
            let all = orphans + orphans.flatMap(KillTestProcesses.descendants)
            let stateDirs = all.compactMap(KillTestProcesses.brokerSocketsDirectory)
            for pid in all { kill(pid, SIGKILL) }
            _ = KillTestProcesses.waitGone(all, seconds: 10)
            for d in stateDirs { try? FileManager.default.removeItem(atPath: d) }
            orphans = []
        }
    }

    static func seconds(since start: ContinuousClock.Instant) -> Double {
        let d = ContinuousClock.now - start
        return Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
    }

    // MARK: the runner-alone observation

    struct RunnerAloneObservation: Sendable {
        var brokerAlive = false
        var jailAlive = false
        var cutoversAfterKill = 0
        var errors: [String] = []
    }

    /// A step reads (the world takes 2 s to answer), then calls an irreversible tool. The runner
    /// is SIGKILLed while the read is in flight; what happens next is observed, then cleaned up.
    static func runnerAloneObservation() throws -> RunnerAloneObservation {
        var seen = RunnerAloneObservation()
        let trial = try Trial(label: "runner alone", mode: .runner, delays: ["inventory": 2])
        let session = try Binaries.runBlocking(["session", "new", "--checkpoints", trial.checkpoints])
        trial.session = session.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        // An ordinary script: two calls, then it prints (a print would die on the dead runner's pipe).
        let step = Step(key: "cutover", calls: [("inventory", nil), ("dns_cutover", "cut-1")], printEach: false)
        let runner = try KillTestChild(arguments: trial.stepArguments(step.key, step), environment: trial.environment, dir: trial.dir)
        let until = ContinuousClock.now + .seconds(30)
        while trial.world.count("/inventory") == 0 && ContinuousClock.now < until && runner.poll() == nil { usleep(2000) }
        guard trial.world.count("/inventory") == 1 else {
            seen.errors.append("the read never reached the world")
            for pid in KillTestProcesses.freeze(root: runner.pid) { kill(pid, SIGKILL) }
            _ = runner.wait()
            return seen
        }
        let tree = KillTestProcesses.descendants(of: runner.pid)
        kill(runner.pid, SIGKILL)
        _ = runner.wait()
        func alive() -> [pid_t] {
            let table = KillTestProcesses.table()
            return tree.filter { pid in table.contains { $0.pid == pid && !"ZX".contains($0.state) } }
        }
        let stateDirs = tree.compactMap(KillTestProcesses.brokerSocketsDirectory)
        // The jail dies with its runner (parent-death signal): wait for it to be gone.
        func jailAlive() -> Bool { alive().contains { KillTestProcesses.brokerSocketsDirectory($0) == nil } }
        _ = eventuallyBlocking(10) { !jailAlive() }
        seen.jailAlive = jailAlive()
        // The broker stops when it sees its runner gone, after letting the call it is
        // executing finish and seal (its shutdown grace is 5 s).
        let brokerDeadline = ContinuousClock.now + .seconds(8)
        while ContinuousClock.now < brokerDeadline && alive().contains(where: { KillTestProcesses.brokerSocketsDirectory($0) != nil }) { usleep(20_000) }
        seen.brokerAlive = alive().contains { KillTestProcesses.brokerSocketsDirectory($0) != nil }
        if !seen.brokerAlive, let left = stateDirs.first(where: { FileManager.default.fileExists(atPath: $0) }) {
            seen.errors.append("the stopped broker left its state directory \(left)")
        }
        if seen.jailAlive || seen.brokerAlive {
            // A regression: the read is answered 2 s after it arrived; wait for the call the
            // orphaned jail would make next.
            _ = eventuallyBlocking(4) { trial.world.count("/dns_cutover") > 0 }
        } else if !eventuallyBlocking(30, { KillTestProcesses.openConnections(toLocalPort: trial.world.port) == 0 }) {
            // Jail and broker are gone: once no connection to the world is open, it has seen
            // every request it ever will.
            seen.errors.append("connections to the world stayed open 30 s after the kill")
        }
        seen.cutoversAfterKill = trial.world.count("/dns_cutover")
        let all = tree + tree.flatMap(KillTestProcesses.descendants)
        for pid in all { kill(pid, SIGKILL) }
        if let left = KillTestProcesses.waitGone(all, seconds: 10) { seen.errors.append("could not clean up \(left)") }
        for d in stateDirs { try? FileManager.default.removeItem(atPath: d) }
        return seen
    }
}

// MARK: - processes

/// A `sealbox` child started with posix_spawn (so stops and kills are ours to observe), its
/// stdout and stderr in files.
final class KillTestChild {
    let pid: pid_t
    let stdoutPath: String
    let stderrPath: String

    init(arguments: [String], environment: [String: String], dir: String) throws {
        let tag = UUID().uuidString.prefix(8)
        stdoutPath = "\(dir)/out-\(tag)"
        stderrPath = "\(dir)/err-\(tag)"
        let exe = Binaries.sealbox
        guard FileManager.default.isExecutableFile(atPath: exe) else { throw FixtureFailure("sealbox not built at \(exe): run `swift build` first") }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, stdoutPath, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        posix_spawn_file_actions_addopen(&actions, 2, stderrPath, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var none = sigset_t()
        sigemptyset(&none)
        posix_spawnattr_setsigmask(&attributes, &none)
        var all = sigset_t()
        sigfillset(&all)
        posix_spawnattr_setsigdefault(&attributes, &all)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        let argv: [UnsafeMutablePointer<CChar>?] = ([exe] + arguments).map { strdup($0) } + [nil]
        let envp: [UnsafeMutablePointer<CChar>?] = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            for p in argv { free(p) }
            for p in envp { free(p) }
        }
        var child: pid_t = 0
        let rc = posix_spawn(&child, exe, &actions, &attributes, argv, envp)
        guard rc == 0 else { throw FixtureFailure("posix_spawn: \(String(cString: strerror(rc)))") }
        pid = child
    }

    /// The exit status (128+N for signal N) if it has exited, else nil.
    func poll() -> Int32? { reap(WNOHANG) }

    func wait() -> Int32 { reap(0) ?? -1 }

    private func reap(_ options: Int32) -> Int32? {
        var status: Int32 = 0
        while true {
            let r = waitpid(pid, &status, options)
            if r == pid { return (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f) }
            if r == 0 { return nil }
            if errno == EINTR { continue }
            return -1
        }
    }

    func result(status: Int32) -> KillRig.StepRun {
        let out = FileManager.default.contents(atPath: stdoutPath) ?? Data()
        let err = String(decoding: FileManager.default.contents(atPath: stderrPath) ?? Data(), as: UTF8.self)
        return KillRig.StepRun(status: status, json: try? JSONSerialization.jsonObject(with: out) as? [String: Any], stderr: err)
    }
}

enum KillTestProcesses {
    struct Entry {
        var pid: pid_t
        var ppid: pid_t
        var state: Character
    }

    static func read(_ path: String) -> String? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var data = [UInt8]()
        var chunk = [UInt8](repeating: 0, count: 8192)
        while true {
            let n = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            data += chunk[0..<n]
        }
        return String(decoding: data, as: UTF8.self)
    }

    /// Every process: pid, parent, state (from /proc/PID/stat; the command name may hold spaces).
    static func table() -> [Entry] {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: "/proc") else { return [] }
        return names.compactMap { pid_t($0).flatMap(entry) }
    }

    static func entry(_ pid: pid_t) -> Entry? {
        guard let stat = read("/proc/\(pid)/stat"), let close = stat.lastIndex(of: ")") else { return nil }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        guard fields.count > 2, let state = fields[0].first, let ppid = pid_t(fields[1]) else { return nil }
        return Entry(pid: pid, ppid: ppid, state: state)
    }

    static func descendants(of root: pid_t) -> [pid_t] {
        let t = table()
        var found: [pid_t] = []
        var frontier: Set<pid_t> = [root]
        while !frontier.isEmpty {
            let next = t.filter { frontier.contains($0.ppid) }.map(\.pid)
            found += next
            frontier = Set(next)
        }
        return found
    }

    /// SIGSTOPs `root`, then every descendant, until a few scans in a row find nothing new and
    /// everything stopped (a stopped process cannot fork). Returns root and its descendants.
    static func freeze(root: pid_t, alsoFirst known: [pid_t] = []) -> [pid_t] {
        var members: Set<pid_t> = [root]
        kill(root, SIGSTOP)
        // Descendants found earlier stop now, before the full scan below (each checked to still
        // be a child of root or of another known one, parents first).
        var family: Set<pid_t> = [root]
        for pid in known where entry(pid).map({ family.contains($0.ppid) }) == true {
            kill(pid, SIGSTOP)
            family.insert(pid)
        }
        var quiet = 0
        let until = ContinuousClock.now + .seconds(5)
        while quiet < 3 && ContinuousClock.now < until {
            let t = table()
            var added = false
            for e in t where members.contains(e.ppid) && !members.contains(e.pid) {
                kill(e.pid, SIGSTOP)
                members.insert(e.pid)
                added = true
            }
            let states = Dictionary(t.map { ($0.pid, $0.state) }, uniquingKeysWith: { a, _ in a })
            let settled = members.allSatisfy { states[$0].map { "TtZX".contains($0) } ?? true }
            quiet = !added && settled ? quiet + 1 : 0
            if quiet == 0 { usleep(200) }
        }
        return Array(members)
    }

    /// nil when every pid is gone (or a zombie); else the ones still running.
    static func waitGone(_ pids: [pid_t], seconds: Double) -> [pid_t]? {
        let until = ContinuousClock.now + .milliseconds(Int(seconds * 1000))
        while true {
            let t = table()
            let alive = pids.filter { pid in t.contains { $0.pid == pid && !"ZX".contains($0.state) } }
            if alive.isEmpty { return nil }
            if ContinuousClock.now >= until { return alive }
            usleep(2000)
        }
    }

    /// `--state-dir DIR` of a `sealbox broker` process, nil for any other process.
    static func brokerSocketsDirectory(_ pid: pid_t) -> String? {
        guard let cmdline = read("/proc/\(pid)/cmdline") else { return nil }
        let argv = cmdline.split(separator: "\0").map(String.init)
        guard argv.count > 1, argv[1] == "broker", let i = argv.firstIndex(of: "--state-dir"), i + 1 < argv.count else { return nil }
        return argv[i + 1]
    }

    /// Server-side TCP sockets on 127.0.0.1:port not yet closed by the server (established,
    /// close-wait, syn-received): the world may still be reading a request on one of them.
    static func openConnections(toLocalPort port: Int) -> Int {
        guard let text = read("/proc/net/tcp") else { return 0 }
        let local = String(format: ":%04X", port)
        return text.split(separator: "\n").dropFirst().filter { line in
            let f = line.split(separator: " ")
            return f.count > 3 && f[1].hasSuffix(local) && ["01", "03", "08"].contains(String(f[3]))
        }.count
    }
}
