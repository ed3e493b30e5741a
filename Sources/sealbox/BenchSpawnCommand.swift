import ArgumentParser
import Foundation
import Histogram
import SealboxJail
import SealboxProfiles
import Synchronization

struct BenchSpawnCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "spawn",
        abstract: "Measure spawn-to-exit latency of jailed runs through the library API.",
        discussion: """
            Runs the command N times, each in a fresh jail with the same setup as `sealbox run` \
            (namespaces, cgroup, seccomp, filesystem), and prints p50/p90/p99/max of the whole \
            Executor.run call: cgroup creation, clone3, setup, execve, the program, wait and \
            teardown. Warm-up runs are not recorded. With --concurrency, that many runs are in \
            flight at once (each on a thread of its own).

            Phases: where the time went, p50 and p99 of each: setup (profile, filesystem plan, \
            cgroup creation), the spawn's steps as the child measures them (clone, maps: uid/gid \
            maps and v1 cgroup.procs written by the parent, identity, mounts, pivot, setup: \
            loopback/hostname/rlimits/caps, fork of the program by the jail's init, exec: \
            seccomp install and execve), run (execve to exit) and teardown (cgroup kill and \
            removal).

            --pool N keeps N jails prepared ahead (everything but the program: namespaces, \
            cgroup, mounts, limits, capabilities dropped), each used once; a run that finds \
            one pays only the handover of its program and stdio, the execve, the program and \
            the teardown (spawn.activate, spawn.fork, spawn.exec). With --concurrency 1 each \
            recorded run waits until the pool has refilled, so it measures a request arriving \
            at a ready pool; with more, runs that find the pool empty spawn cold, and the \
            report says how many did (pool hits and misses).

            --leak-check counts this process's descriptors, mounts and child processes, \
            sealbox's task cgroups and the memory controller's cgroups (dying ones included) \
            after the warm-up and again after the runs (and the pool's shutdown), and fails \
            if any but the last grew.

            --json keeps the top-level count, p50_ms, p90_ms, p99_ms, max_ms fields and adds \
            phases (and pool, leaks). --svg FILE writes the latency distribution as a percentile curve.
            """
    )

    @Option(name: [.customShort("n"), .long], help: "Number of recorded runs.")
    var count: Int = 200

    @Option(name: .long, help: "Unrecorded runs first (profile compile, page cache).")
    var warmup: Int = 5

    @Option(name: .long, help: "Runs in flight at once.")
    var concurrency: Int = 1

    @Option(name: .long, help: "seccomp profile name or path.")
    var profile: String = "default"

    @Option(name: .long, help: "Keep this many jails prepared ahead (a warm pool); 0 spawns every jail cold.")
    var pool: Int = 0

    @Option(name: .customLong("pool-refill-threads"), help: "Threads refilling the pool.")
    var poolRefillThreads: Int = 1

    @Option(name: .customLong("pool-refill-delay"), help: "Refill the pool only after no jail was taken for this many ms.")
    var poolRefillDelay: Int = 0

    @Flag(name: .customLong("leak-check"), help: "Count descriptors, mounts, child processes, task cgroups and memory cgroups (dying ones included) before and after; exit 1 if any but the last grew.")
    var leakCheck = false

    @Flag(name: .customLong("in-process"), help: "Clone jails in this process rather than through the sealbox-spawner helper, to compare the two.")
    var inProcess = false

    @Flag(name: .customLong("no-cgroup"), help: "Skip cgroups (no limits) to separate their cost from the spawn's.")
    var noCgroup = false

    @Flag(name: .long, help: "Print one JSON object (count, p50_ms, p90_ms, p99_ms, max_ms, phases, ...).")
    var json = false

    @Option(name: .long, help: "Write the latency distribution (a percentile curve) as an SVG image to this file.")
    var svg: String?

    @Option(name: .long, help: "Also write every recorded latency (ms, one per line, in completion order) to this file, for other tools to combine (scripts/bench-compare.sh).")
    var samples: String?

    @Argument(parsing: .postTerminator, help: "Command to run (default /bin/true).")
    var command: [String] = []

    func validate() throws {
        guard count >= 1, count <= 1_000_000 else { throw ValidationError("--count must be between 1 and 1000000") }
        guard warmup >= 0, warmup <= 10_000 else { throw ValidationError("--warmup must be between 0 and 10000") }
        guard concurrency >= 1, concurrency <= 1024 else { throw ValidationError("--concurrency must be between 1 and 1024") }
        guard pool >= 0, pool <= JailPool.maximumSize else { throw ValidationError("--pool must be between 0 and \(JailPool.maximumSize)") }
        guard poolRefillThreads >= 1, poolRefillThreads <= JailPool.maximumRefillThreads else {
            throw ValidationError("--pool-refill-threads must be between 1 and \(JailPool.maximumRefillThreads)")
        }
    }

    func run() throws {
        let executor: Executor
        do {
            executor = try Executor(configuration: .init(dataDirectory: try DataDirectory.locate(), spawner: inProcess ? .inProcess : .automatic),
                                    cgroupDriver: noCgroup ? NoCgroupDriver(reason: "--no-cgroup") : nil)
        } catch {
            throw CLIFailure(message: error.description)
        }
        let spec = JailSpec(command: command.isEmpty ? ["/bin/true"] : command, profile: ProfileReference(commandLine: profile))
        let taskParents = executor.cgroupDriver.version == .none ? [] : executor.cgroupDriver.taskParentDirectories
        // Warm-up, one at a time: compiles the profile once, fills the page cache.
        for _ in 0..<warmup {
            do {
                _ = try executor.runBlocking(spec)
            } catch {
                throw CLIFailure(message: error.description)
            }
        }
        // After the warm-up: one-time state (the pidfd on ourselves every jail inherits, caches)
        // is not a leak.
        let leaksBefore = leakCheck ? LeakSnapshot.take(taskParents: taskParents) : nil
        var jailPool: JailPool?
        if pool > 0 {
            do {
                jailPool = try executor.startPool(JailPool.Configuration(size: pool, refillThreads: poolRefillThreads, profile: ProfileReference(commandLine: profile),
                                                                         refillDelayMs: poolRefillDelay))
            } catch {
                throw CLIFailure(message: error.description)
            }
            guard jailPool?.waitUntilFull(timeout: 60) == true else {
                let failure = jailPool?.stats.lastFailure ?? "timed out"
                executor.stopPool()
                throw CLIFailure(message: "the pool did not fill: \(failure)")
            }
        }
        let before = jailPool?.stats
        let recorded = try SpawnSampler(executor: executor, spec: spec, count: count, concurrency: concurrency,
                                        refilled: concurrency == 1 ? jailPool : nil).run()
        var report = SpawnBenchReport(recorded, spec: spec, cgroup: executor.cgroupDriver.version.rawValue, profile: profile,
                                      concurrency: concurrency)
        report.spawner = executor.cloner.usesHelper ? "sealbox-spawner" : "in-process"
        if let jailPool, let before {
            let after = jailPool.stats
            report.pool = .init(size: pool, refill_threads: poolRefillThreads, hits: after.hits - before.hits,
                                misses: after.misses - before.misses, prepare_failures: after.failures - before.failures)
        }
        executor.stopPool()
        jailPool = nil  // its /dev/null descriptor closes with it, before the leak count
        var leaked: [String] = []
        if let leaksBefore {
            let after = LeakSnapshot.take(taskParents: taskParents)
            report.leaks = Dictionary(uniqueKeysWithValues: LeakSnapshot.rows(leaksBefore, after))
            leaked = LeakSnapshot.leaked(leaksBefore, after)
        }
        if let svg {
            do {
                try PercentileCurve(title: "sealbox spawn-to-exit, \(spec.command.joined(separator: " ")), \(count) runs, concurrency \(concurrency)",
                                    latenciesMs: recorded.totalsMs).svg().write(toFile: svg, atomically: true, encoding: .utf8)
            } catch {
                throw CLIFailure(message: "cannot write --svg \(svg): \(error.localizedDescription)")
            }
        }
        if let path = samples {
            let text = recorded.totalsMs.map { String(format: "%.4f", $0) }.joined(separator: "\n") + "\n"
            do {
                try text.write(toFile: path, atomically: true, encoding: .utf8)
            } catch {
                throw CLIFailure(message: "cannot write --samples \(path): \(error.localizedDescription)")
            }
        }
        if json {
            JSONOutput.print(report)
        } else {
            print(report.text)
            if let first = recorded.firstFailure { print("  \(recorded.failures) runs did not finish ok; first: \(first)") }
        }
        if !leaked.isEmpty {
            FileHandle.standardError.write(Data("bench spawn: grew over the runs: \(leaked.joined(separator: ", "))\n".utf8))
        }
        if recorded.failures > 0 || !leaked.isEmpty { throw ExitCode(1) }
    }
}

/// The recorded runs: total latency of each, and its phases.
struct SpawnSamples {
    var totalsMs: [Double] = []
    /// phase name → one value per run that reported it.
    var phasesMs: [String: [Double]] = [:]
    var failures = 0
    var firstFailure: String?
    var elapsedSeconds: Double = 0

    static let phaseOrder = ["setup"] + JailResult.SpawnSteps.names.map { "spawn." + $0 } + ["run", "teardown"]

    mutating func add(totalMs: Double, result: JailResult) {
        totalsMs.append(totalMs)
        if result.status != .ok {
            failures += 1
            if firstFailure == nil { firstFailure = "\(result.status.rawValue): \(result.error ?? result.stderr)" }
        }
        guard let phases = result.phases else { return }
        phasesMs["setup", default: []].append(phases.setupMs)
        phasesMs["run", default: []].append(phases.runMs)
        phasesMs["teardown", default: []].append(phases.teardownMs)
        if let steps = phases.spawnSteps {
            for (name, value) in zip(JailResult.SpawnSteps.names, steps.milliseconds) { phasesMs["spawn." + name, default: []].append(value) }
        }
    }

    mutating func merge(_ other: SpawnSamples) {
        totalsMs += other.totalsMs
        for (k, v) in other.phasesMs { phasesMs[k, default: []] += v }
        failures += other.failures
        firstFailure = firstFailure ?? other.firstFailure
    }
}

/// Runs `count` spawns with `concurrency` threads, each taking the next run from a shared counter.
struct SpawnSampler {
    let executor: Executor
    let spec: JailSpec
    let count: Int
    let concurrency: Int
    /// When set, each run first waits until this pool is full again.
    var refilled: JailPool?

    func run() throws -> SpawnSamples {
        let next = Atomic<Int>(0)
        let collected = Mutex<(samples: SpawnSamples, error: String?)>((SpawnSamples(), nil))
        let progress = Progress(total: count)
        let done = Atomic<Int>(0)
        let started = DispatchTime.now().uptimeNanoseconds
        let group = DispatchGroup()
        for _ in 0..<concurrency {
            group.enter()
            let thread = Thread { [executor, spec, count, refilled] in
                var local = SpawnSamples()
                defer {
                    collected.withLock { $0.samples.merge(local) }
                    group.leave()
                }
                while next.add(1, ordering: .relaxed).oldValue < count {
                    refilled?.waitUntilFull(timeout: 60)
                    let t0 = DispatchTime.now().uptimeNanoseconds
                    do {
                        let result = try executor.runBlocking(spec)
                        local.add(totalMs: Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e6, result: result)
                    } catch {
                        collected.withLock { $0.error = $0.error ?? "\(error)" }
                        return
                    }
                    progress.update(done.add(1, ordering: .relaxed).newValue)
                }
            }
            thread.name = "sealbox-bench-spawn"
            thread.start()
        }
        group.wait()
        progress.finish()
        var result = collected.withLock { $0 }
        if let error = result.error { throw CLIFailure(message: error) }
        result.samples.elapsedSeconds = Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9
        return result.samples
    }
}

struct SpawnBenchReport: Encodable {
    struct PhaseStats: Encodable {
        var p50_ms: Double
        var p99_ms: Double
    }

    struct PoolStats: Encodable {
        var size: Int
        var refill_threads: Int
        /// Recorded runs that took a prepared jail, and those that found none and spawned cold.
        var hits: Int
        var misses: Int
        var prepare_failures: Int
    }

    var count: Int
    var p50_ms: Double
    var p90_ms: Double
    var p99_ms: Double
    var max_ms: Double
    var mean_ms: Double
    var runs_per_second: Double
    var concurrency: Int
    var failures: Int
    var command: [String]
    var cgroup: String
    var profile: String
    /// Phase name ("setup", "spawn.clone", ..., "run", "teardown") → p50/p99.
    var phases: [String: PhaseStats]
    /// Who cloned the jails: "sealbox-spawner" (the helper) or "in-process".
    var spawner = "in-process"
    /// Only with --pool.
    var pool: PoolStats?
    /// Only with --leak-check: name → counts before and after.
    var leaks: [String: LeakSnapshot.Row]?

    init(_ s: SpawnSamples, spec: JailSpec, cgroup: String, profile: String, concurrency: Int) {
        let sorted = s.totalsMs.sorted()
        count = sorted.count
        p50_ms = Percentile.of(sorted, 50)
        p90_ms = Percentile.of(sorted, 90)
        p99_ms = Percentile.of(sorted, 99)
        max_ms = sorted.last ?? 0
        mean_ms = sorted.isEmpty ? 0 : sorted.reduce(0, +) / Double(sorted.count)
        runs_per_second = s.elapsedSeconds > 0 ? Double(sorted.count) / s.elapsedSeconds : 0
        self.concurrency = concurrency
        failures = s.failures
        command = spec.command
        self.cgroup = cgroup
        self.profile = profile
        phases = s.phasesMs.mapValues { values in
            let v = values.sorted()
            return PhaseStats(p50_ms: Percentile.of(v, 50), p99_ms: Percentile.of(v, 99))
        }
    }

    var text: String {
        var lines = [String(format: "spawn-to-exit over %d runs of %@ (cgroup %@, profile %@, %@, concurrency %d, %.0f runs/s):",
                            count, command.joined(separator: " "), cgroup, profile, spawner, concurrency, runs_per_second)]
        lines.append(String(format: "  p50 %.3f ms  p90 %.3f ms  p99 %.3f ms  max %.3f ms  mean %.3f ms", p50_ms, p90_ms, p99_ms, max_ms, mean_ms))
        lines.append("  phases (ms)          p50       p99")
        if let pool {
            lines.insert(String(format: "  pool of %d (%d refill thread%@): %d runs took a prepared jail, %d spawned cold; %d failed preparations",
                                pool.size, pool.refill_threads, pool.refill_threads == 1 ? "" : "s", pool.hits, pool.misses, pool.prepare_failures), at: 2)
        }
        if let leaks {
            lines.insert("  leak check (before -> after): " + LeakSnapshot.counts.compactMap { count in
                leaks[count.name].map { "\(count.name) \($0.before) -> \($0.after)" }
            }
                .joined(separator: ", "), at: lines.count - 1)
        }
        for name in SpawnSamples.phaseOrder {
            // A step no run went through (a pooled run's clone .. setup) is left out.
            guard let p = phases[name], p.p99_ms > 0 else { continue }
            lines.append("    " + name.padding(toLength: 16, withPad: " ", startingAt: 0) + String(format: " %8.3f  %8.3f", p.p50_ms, p.p99_ms))
        }
        return lines.joined(separator: "\n")
    }
}

enum Percentile {
    /// Nearest-rank percentile of sorted values.
    static func of(_ sorted: [Double], _ p: Double) -> Double {
        guard !sorted.isEmpty else { return 0 }
        let rank = Int((p / 100 * Double(sorted.count)).rounded(.up))
        return sorted[min(max(rank, 1), sorted.count) - 1]
    }
}
