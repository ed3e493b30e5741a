import Foundation
import SealboxJail
import Synchronization

/// The server's Prometheus metrics, kept in memory and rendered in the text exposition format
/// (version 0.0.4) for GET /metrics: runs by verdict, phase latency histograms (spawn is the
/// number that matters for a jail), rejected requests by reason; the live load comes from
/// the admission control at render time.
public final class ServerMetrics: Sendable {
    /// Upper bounds in seconds: 1 ms to 10 s, roughly 1-2-5 steps.
    static let bounds: [Double] = [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10]

    struct Histogram {
        var counts = [Int](repeating: 0, count: ServerMetrics.bounds.count)
        var sum = 0.0
        var count = 0

        mutating func observe(_ seconds: Double) {
            for (index, bound) in ServerMetrics.bounds.enumerated() where seconds <= bound { counts[index] += 1 }
            sum += seconds
            count += 1
        }
    }

    struct State {
        var runs: [String: Int] = [:]
        var rejected: [String: Int] = [:]
        var spawn = Histogram()
        var queue = Histogram()
        var wall = Histogram()
    }

    private let state = Mutex(State())

    public init() {}

    public func record(_ result: RunResult) {
        state.withLock { s in
            s.runs[result.status.rawValue, default: 0] += 1
            s.wall.observe(result.wallMs / 1000)
            if let phases = result.phases {
                s.spawn.observe(phases.spawnMs / 1000)
                if let queue = phases.queueMs { s.queue.observe(queue / 1000) }
            }
        }
    }

    /// A request refused before it ran: bad_request, payload_too_large, busy, …
    public func rejected(_ reason: String) {
        state.withLock { $0.rejected[reason, default: 0] += 1 }
    }

    public func render(running: Int, queued: Int, maxRunning: Int, maxQueued: Int) -> String {
        let s = state.withLock { $0 }
        var out = ""
        func family(_ name: String, _ type: String, _ help: String) {
            out += "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n"
        }
        family("sealbox_runs_total", "counter", "Finished runs by verdict (the result's status).")
        for (status, count) in s.runs.sorted(by: { $0.key < $1.key }) { out += "sealbox_runs_total{status=\"\(status)\"} \(count)\n" }
        family("sealbox_requests_rejected_total", "counter", "Run requests refused before running, by reason.")
        for (reason, count) in s.rejected.sorted(by: { $0.key < $1.key }) { out += "sealbox_requests_rejected_total{reason=\"\(reason)\"} \(count)\n" }
        histogram(&out, "sealbox_spawn_seconds", "Jail spawn latency: clone3 to execve.", s.spawn)
        histogram(&out, "sealbox_queue_seconds", "Time a run waited for a slot.", s.queue)
        histogram(&out, "sealbox_run_wall_seconds", "Wall time of runs, spawn to exit.", s.wall)
        family("sealbox_jails_live", "gauge", "Runs executing now (live jails).")
        out += "sealbox_jails_live \(running)\n"
        family("sealbox_queue_depth", "gauge", "Runs waiting for a slot.")
        out += "sealbox_queue_depth \(queued)\n"
        family("sealbox_jails_max", "gauge", "Runs allowed to execute at once.")
        out += "sealbox_jails_max \(maxRunning)\n"
        family("sealbox_queue_max", "gauge", "Runs allowed to wait before requests get 429.")
        out += "sealbox_queue_max \(maxQueued)\n"
        return out
    }

    /// The warm pool's gauges and counters (serve --pool); empty without a pool.
    public static func render(pool: JailPool.Statistics?, size: Int) -> String {
        guard let pool else { return "" }
        return """
            # HELP sealbox_pool_size Jails the warm pool keeps prepared.
            # TYPE sealbox_pool_size gauge
            sealbox_pool_size \(size)
            # HELP sealbox_pool_ready Prepared jails ready now.
            # TYPE sealbox_pool_ready gauge
            sealbox_pool_ready \(pool.ready)
            # HELP sealbox_pool_runs_total Runs that fit the pool, by whether a prepared jail was ready (hit) or they spawned cold (miss).
            # TYPE sealbox_pool_runs_total counter
            sealbox_pool_runs_total{outcome="hit"} \(pool.hits)
            sealbox_pool_runs_total{outcome="miss"} \(pool.misses)
            # HELP sealbox_pool_prepare_failures_total Jail preparations that failed (retried with backoff).
            # TYPE sealbox_pool_prepare_failures_total counter
            sealbox_pool_prepare_failures_total \(pool.failures)

            """
    }

    /// What GET /v1/runs/{id} keeps, against its bounds.
    public static func render(results stats: RunStore.Stats, limits: RunStore.Limits) -> String {
        """
        # HELP sealbox_results_stored Finished results kept for GET /v1/runs/{id}.
        # TYPE sealbox_results_stored gauge
        sealbox_results_stored \(stats.stored)
        # HELP sealbox_results_bytes Bytes of kept results, in memory and on disk.
        # TYPE sealbox_results_bytes gauge
        sealbox_results_bytes{place="memory"} \(stats.memoryBytes)
        sealbox_results_bytes{place="disk"} \(stats.diskBytes)
        # HELP sealbox_results_limit_bytes The bounds: memory, disk, and each tenant's share.
        # TYPE sealbox_results_limit_bytes gauge
        sealbox_results_limit_bytes{place="memory"} \(limits.memoryBytes)
        sealbox_results_limit_bytes{place="disk"} \(limits.diskBytes)
        sealbox_results_limit_bytes{place="tenant"} \(limits.perTenantBytes)
        # HELP sealbox_results_evicted_total Results forgotten to stay within the bounds (oldest first).
        # TYPE sealbox_results_evicted_total counter
        sealbox_results_evicted_total \(stats.evicted)
        # HELP sealbox_results_output_dropped_total Results kept without their output: no room left for it.
        # TYPE sealbox_results_output_dropped_total counter
        sealbox_results_output_dropped_total \(stats.outputDropped)

        """
    }

    private func histogram(_ out: inout String, _ name: String, _ help: String, _ h: Histogram) {
        out += "# HELP \(name) \(help)\n# TYPE \(name) histogram\n"
        for (index, bound) in Self.bounds.enumerated() {
            out += "\(name)_bucket{le=\"\(Self.format(bound))\"} \(h.counts[index])\n"
        }
        out += "\(name)_bucket{le=\"+Inf\"} \(h.count)\n"
        out += "\(name)_sum \(Self.format(h.sum))\n\(name)_count \(h.count)\n"
    }

    static func format(_ value: Double) -> String {
        value == value.rounded() && abs(value) < 1e15 ? String(Int(value)) : String(value)
    }
}
