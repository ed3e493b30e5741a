import CoreMetrics
import Foundation
import Prometheus
import SealboxBroker
import SealboxJail
import SealboxRuntime
import SealboxLedger
import Synchronization

/// The server's Prometheus metrics in one swift-prometheus registry, rendered in the text
/// exposition format for GET /metrics: runs by verdict, phase latency histograms (spawn is the
/// number that matters for a jail), rejected requests by reason, and gauges set at scrape time
/// from what other parts keep (admission load, the warm pool, kept results, the effect log, the
/// broker's limit counters). `sealbox serve` also bootstraps swift-metrics with this registry,
/// so Hummingbird's `MetricsMiddleware` adds per-route HTTP metrics (`httpSanitizer`).
public final class ServerMetrics: Sendable {
    public let registry: PrometheusCollectorRegistry
    /// Upper bounds in seconds: 1 ms to 10 s, roughly 1-2-5 steps.
    static let bounds: [Duration] = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1_000, 2_000, 5_000, 10_000].map { .milliseconds($0) }

    /// Counters kept by others (the pool's, the result store's, the broker's), as last seen, so
    /// a scrape adds only what grew; a smaller value means its keeper restarted, and all of it
    /// is new.
    private let mirrored = Mutex<[String: Int]>([:])
    /// The effect gauges, removed when the log cannot be read (no stale counts).
    private let effectGauges = Mutex<[Prometheus.Gauge]>([])

    public init(registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry()) {
        self.registry = registry
    }

    /// The metrics of a process that serves one API (`sealbox serve`): swift-metrics is
    /// bootstrapped with this registry, so metrics emitted through swift-metrics (Hummingbird's
    /// per-route ones) appear on the same /metrics. swift-metrics allows one bootstrap per
    /// process: call this once.
    public static func bootstrapProcessWide() -> ServerMetrics {
        let metrics = ServerMetrics()
        var factory = PrometheusMetricsFactory(registry: metrics.registry)
        factory.nameAndLabelSanitizer = httpSanitizer
        MetricsSystem.bootstrap(factory)
        return metrics
    }

    public func record(_ result: RunResult) {
        registry.makeCounter(name: "sealbox_runs_total", labels: [("status", result.status.rawValue)],
                             help: "Finished runs by verdict (the result's status).").increment()
        histogram("sealbox_run_wall_seconds", "Wall time of runs, spawn to exit.").recordSeconds(result.wallMs / 1000)
        if let phases = result.phases {
            histogram("sealbox_spawn_seconds", "Jail spawn latency: clone3 to execve.").recordSeconds(phases.spawnMs / 1000)
            if let queue = phases.queueMs { histogram("sealbox_queue_seconds", "Time a run waited for a slot.").recordSeconds(queue / 1000) }
        }
    }

    /// A request refused before it ran: bad_request, payload_too_large, busy, …
    public func rejected(_ reason: String) {
        registry.makeCounter(name: "sealbox_requests_rejected_total", labels: [("reason", reason)],
                             help: "Run requests refused before running, by reason.").increment()
    }

    /// Sets the admission gauges and renders the whole registry.
    public func render(running: Int, queued: Int, maxRunning: Int, maxQueued: Int) -> String {
        gauge("sealbox_jails_live", "Runs executing now (live jails).").set(Int64(running))
        gauge("sealbox_queue_depth", "Runs waiting for a slot.").set(Int64(queued))
        gauge("sealbox_jails_max", "Runs allowed to execute at once.").set(Int64(maxRunning))
        gauge("sealbox_queue_max", "Runs allowed to wait before requests get 429.").set(Int64(maxQueued))
        return registry.emitToString()
    }

    /// The warm pool's gauges and counters (serve --pool); nothing without a pool.
    func update(pool: JailPool.Statistics?, size: Int) {
        guard let pool else { return }
        gauge("sealbox_pool_size", "Jails the warm pool keeps prepared.").set(Int64(size))
        gauge("sealbox_pool_ready", "Prepared jails ready now.").set(Int64(pool.ready))
        let runsHelp = "Runs that fit the pool, by whether a prepared jail was ready (hit) or they spawned cold (miss)."
        mirror("sealbox_pool_runs_total", [("outcome", "hit")], runsHelp, pool.hits)
        mirror("sealbox_pool_runs_total", [("outcome", "miss")], runsHelp, pool.misses)
        mirror("sealbox_pool_prepare_failures_total", [], "Jail preparations that failed (retried with backoff).", pool.failures)
    }

    /// What GET /v1/runs/{id} keeps, against its bounds.
    func update(results stats: RunStore.Stats, limits: RunStore.Limits) {
        gauge("sealbox_results_stored", "Finished results kept for GET /v1/runs/{id}.").set(Int64(stats.stored))
        let bytesHelp = "Bytes of kept results, in memory and on disk."
        gauge("sealbox_results_bytes", bytesHelp, [("place", "memory")]).set(Int64(stats.memoryBytes))
        gauge("sealbox_results_bytes", bytesHelp, [("place", "disk")]).set(Int64(stats.diskBytes))
        let limitHelp = "The bounds: memory, disk, and each tenant's share."
        gauge("sealbox_results_limit_bytes", limitHelp, [("place", "memory")]).set(Int64(limits.memoryBytes))
        gauge("sealbox_results_limit_bytes", limitHelp, [("place", "disk")]).set(Int64(limits.diskBytes))
        gauge("sealbox_results_limit_bytes", limitHelp, [("place", "tenant")]).set(Int64(limits.perTenantBytes))
        mirror("sealbox_results_evicted_total", [], "Results forgotten to stay within the bounds (oldest first).", stats.evicted)
        mirror("sealbox_results_output_dropped_total", [], "Results kept without their output: no room left for it.", stats.outputDropped)
    }

    /// `sealbox_effects{class,state}`: calls in the effect log, counted at scrape time with one
    /// GROUP BY (`Ledger.callCounts`), so the numbers are exact and survive restarts. Every
    /// class × state pair is set, zeros included, so a series never vanishes and reappears.
    /// nil (the log could not be read): `sealbox_effect_log_up` 0 and no counts.
    func update(effects counts: [CallCount]?) {
        let up = gauge("sealbox_effect_log_up", "Whether the effect log could be read for this scrape.")
        guard let counts else {
            up.set(Int64(0))
            for gauge in effectGauges.withLock({ gauges in defer { gauges = [] }; return gauges }) { registry.unregisterGauge(gauge) }
            return
        }
        var table: [String: Int] = [:]
        for count in counts { table[count.effectClass + "\u{0}" + count.state, default: 0] += count.count }
        var made: [Prometheus.Gauge] = []
        for effectClass in EffectClass.allCases {
            for state in CallState.allCases {
                let g = gauge("sealbox_effects", "Calls in the effect log by effect class and state.",
                              [("class", effectClass.rawValue), ("state", state.rawValue)])
                g.set(Int64(table[effectClass.rawValue + "\u{0}" + state.rawValue, default: 0]))
                made.append(g)
            }
        }
        effectGauges.withLock { $0 = made }
        up.set(Int64(1))
    }

    /// The broker's limit counters (`BrokerLimits`), asked over its control socket at each
    /// scrape; nothing when there is no broker or it does not answer.
    func update(broker counters: UsageBook.Counters?) {
        guard let counters else { return }
        mirror("sealbox_broker_throttled_total", [],
               "Times a run's connection was read later, or its call held back, because the run or its tenant sent faster than the broker's limits.",
               counters.throttled)
        for quota in ["calls", "effect_bytes", "pending_approvals"] {
            mirror("sealbox_broker_quota_refusals_total", [("quota", quota)],
                   "Tool calls refused with quota_exceeded, by quota (nothing recorded or sent).", counters.refused[quota, default: 0])
        }
    }

    private func gauge(_ name: String, _ help: String, _ labels: [(String, String)] = []) -> Prometheus.Gauge {
        registry.makeGauge(name: name, labels: labels, help: help)
    }

    private func histogram(_ name: String, _ help: String) -> DurationHistogram {
        registry.makeDurationHistogram(name: name, labels: [], buckets: Self.bounds, help: help)
    }

    private func mirror(_ name: String, _ labels: [(String, String)], _ help: String, _ value: Int) {
        let counter = registry.makeCounter(name: name, labels: labels, help: help)
        let key = name + labels.map { "\u{0}\($0.0)=\($0.1)" }.joined()
        let grew = mirrored.withLock { seen -> Int in
            let last = seen[key] ?? 0
            seen[key] = value
            return value >= last ? value - last : value
        }
        counter.increment(by: Int64(grew))
    }

    /// swift-metrics names from Hummingbird's `MetricsMiddleware` (OpenTelemetry-style, with
    /// dots) as Prometheus names under sealbox's prefix; label values stay as they are.
    public static let httpSanitizer: @Sendable (String, [(String, String)]) -> (String, [(String, String)]) = { name, labels in
        let names = [
            "hb.requests": "sealbox_http_requests_total",
            "hb.request.errors": "sealbox_http_request_errors_total",
            "http.server.request.duration": "sealbox_http_request_duration_seconds",
            "http.server.active_requests": "sealbox_http_active_requests",
        ]
        let labelNames = ["http.route": "route", "http.request.method": "method", "http.response.status_code": "status", "error.type": "status"]
        func clean(_ text: String) -> String {
            String(text.map { $0.isLetter || $0.isNumber || $0 == "_" ? $0 : "_" })
        }
        return (names[name] ?? clean(name), labels.map { (labelNames[$0.0] ?? clean($0.0), $0.1) })
    }
}

extension DurationHistogram {
    func recordSeconds(_ seconds: Double) {
        record(.nanoseconds(Int64(max(0, seconds) * 1e9)))
    }
}
