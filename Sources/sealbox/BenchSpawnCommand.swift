import ArgumentParser
import Foundation
import SealboxJail
import SealboxBench

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
        let outcome = try SpawnBench(
            command: command.isEmpty ? ["/bin/true"] : command, profile: profile, count: count, warmup: warmup, concurrency: concurrency,
            pool: pool, poolRefillThreads: poolRefillThreads, poolRefillDelay: poolRefillDelay, leakCheck: leakCheck,
            inProcess: inProcess, noCgroup: noCgroup, svg: svg, samples: samples
        ).run()
        if json {
            JSONOutput.print(outcome.report)
        } else {
            print(outcome.report.text)
            if let first = outcome.firstFailure { print("  \(outcome.failures) runs did not finish ok; first: \(first)") }
        }
        if !outcome.leaked.isEmpty {
            FileHandle.standardError.write(Data("bench spawn: grew over the runs: \(outcome.leaked.joined(separator: ", "))\n".utf8))
        }
        if outcome.failures > 0 || !outcome.leaked.isEmpty { throw ExitCode(1) }
    }
}
