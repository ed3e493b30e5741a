import Foundation
import Histogram
import SealboxJail
import SealboxProfiles
import Synchronization

/// `sealbox bench spawn`: `count` jailed runs of `command` through the library API (after
/// `warmup` unrecorded ones), `concurrency` in flight, optionally from a warm pool and with a
/// leak check around them; the latency report, and the SVG and samples files when asked for.
public struct SpawnBench {
    public var command: [String]
    public var profile: String
    public var count: Int
    public var warmup: Int
    public var concurrency: Int
    public var pool: Int
    public var poolRefillThreads: Int
    public var poolRefillDelay: Int
    public var leakCheck: Bool
    public var inProcess: Bool
    public var noCgroup: Bool
    public var svg: String?
    public var samples: String?

    public init(command: [String], profile: String, count: Int, warmup: Int, concurrency: Int, pool: Int, poolRefillThreads: Int,
                poolRefillDelay: Int, leakCheck: Bool, inProcess: Bool, noCgroup: Bool, svg: String?, samples: String?) {
        self.command = command
        self.profile = profile
        self.count = count
        self.warmup = warmup
        self.concurrency = concurrency
        self.pool = pool
        self.poolRefillThreads = poolRefillThreads
        self.poolRefillDelay = poolRefillDelay
        self.leakCheck = leakCheck
        self.inProcess = inProcess
        self.noCgroup = noCgroup
        self.svg = svg
        self.samples = samples
    }

    /// The report, the recorded runs that did not finish ok, and the counts that grew.
    public struct Outcome {
        public var report: SpawnBenchReport
        public var failures: Int
        public var firstFailure: String?
        public var leaked: [String]
    }

    public func run() throws(BenchFailure) -> Outcome {
        let executor: Executor
        do {
            executor = try Executor(configuration: .init(dataDirectory: try DataDirectory.locate(), spawner: inProcess ? .inProcess : .automatic),
                                    cgroupDriver: noCgroup ? NoCgroupDriver(reason: "--no-cgroup") : nil)
        } catch {
            throw BenchFailure(message: error.description)
        }
        let spec = JailSpec(command: command, profile: ProfileReference(commandLine: profile))
        let taskParents = executor.cgroupDriver.version == .none ? [] : executor.cgroupDriver.taskParentDirectories
        // Warm-up, one at a time: compiles the profile once, fills the page cache.
        for _ in 0..<warmup {
            do {
                _ = try executor.runBlocking(spec)
            } catch {
                throw BenchFailure(message: error.description)
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
                throw BenchFailure(message: error.description)
            }
            guard jailPool?.waitUntilFull(timeout: 60) == true else {
                let failure = jailPool?.stats.lastFailure ?? "timed out"
                executor.stopPool()
                throw BenchFailure(message: "the pool did not fill: \(failure)")
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
                throw BenchFailure(message: "cannot write --svg \(svg): \(error.localizedDescription)")
            }
        }
        if let path = samples {
            let text = recorded.totalsMs.map { String(format: "%.4f", $0) }.joined(separator: "\n") + "\n"
            do {
                try text.write(toFile: path, atomically: true, encoding: .utf8)
            } catch {
                throw BenchFailure(message: "cannot write --samples \(path): \(error.localizedDescription)")
            }
        }
        return Outcome(report: report, failures: recorded.failures, firstFailure: recorded.firstFailure, leaked: leaked)
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

    func run() throws(BenchFailure) -> SpawnSamples {
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
        if let error = result.error { throw BenchFailure(message: error) }
        result.samples.elapsedSeconds = Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9
        return result.samples
    }
}

public struct SpawnBenchReport: Encodable {
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

    public var text: String {
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
