import ArgumentParser
import Foundation
import SealboxBench

struct BenchEffectsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "effects",
        abstract: "Measure sealed effects per second and the latency the broker adds per call.",
        discussion: """
            Starts a no-op HTTP server on 127.0.0.1 ("the world"), a broker with one idempotent
            http tool pointing at it and a fresh effect log (fsync'd, WAL), and calls the tool
            through a run socket exactly as a jail does: each call is an intent (durable), the
            HTTP request, and a sealed completion (durable) before the answer. Reports, for each
            caller count, effects/s and per-call latency, and the latency added over calling the
            server directly. Also measures revocation latency: revoke over the control socket,
            then the next call is refused.

            With --flood, measures instead what one run's flood of its own socket does to another
            run's calls: a victim's sequential calls, idle (the anchor) and while a flooder (another
            tenant) sends blank lines, malformed JSON or calls as fast as it can over every
            connection the broker allows (see docs/broker.md, "Limits").
            """
    )

    @Option(name: [.customShort("n"), .long], help: "Calls per caller count.")
    var count: Int = 2000

    @Option(name: .long, parsing: .upToNextOption, help: "Concurrent caller counts to measure.")
    var callers: [Int] = [1, 32]

    @Option(name: .customLong("ledger-dir"), help: "Directory for the bench's effect log (default: a temporary directory on the same disk as /var/lib).")
    var ledgerDir: String?

    @Flag(name: .long, help: "Measure a victim run's call latency while another run floods the broker (instead of throughput).")
    var flood = false

    @Option(name: .customLong("flood-kinds"), parsing: .upToNextOption, help: "Floods to measure with --flood: blank, malformed, calls.")
    var floodKinds: [String] = EffectsFloodBench.Kind.allCases.map(\.rawValue)

    @Option(name: .customLong("victim-calls"), help: "The victim's sequential calls per measurement with --flood.")
    var victimCalls: Int = 500

    @Option(name: .customLong("flood-connections"), help: "Connections the flooder opens with --flood (the broker allows 64 per run).")
    var floodConnections: Int = 64

    @Flag(name: .long, help: "Print one JSON object.")
    var json = false

    func validate() throws {
        guard (1...1_000_000).contains(count) else { throw ValidationError("--count must be between 1 and 1000000") }
        guard !callers.isEmpty, callers.allSatisfy({ (1...256).contains($0) }) else { throw ValidationError("--callers must be between 1 and 256") }
        guard (10...100_000).contains(victimCalls) else { throw ValidationError("--victim-calls must be between 10 and 100000") }
        guard (1...64).contains(floodConnections) else { throw ValidationError("--flood-connections must be between 1 and 64") }
        for kind in floodKinds where EffectsFloodBench.Kind(rawValue: kind) == nil {
            throw ValidationError("--flood-kinds: unknown flood \"\(kind)\" (blank, malformed, calls)")
        }
    }

    func run() async throws {
        let bench = EffectsBench(count: count, callers: callers, ledgerDir: ledgerDir)
        if flood {
            try await runFlood(bench)
            return
        }
        let report = try await bench.throughput { row in
            if !json {
                print(String(format: "%3d caller(s): %8.0f sealed effects/s   per call p50 %.3f ms  p99 %.3f ms   added over direct HTTP p50 %.3f ms",
                             row.callers, row.effects_per_second, row.p50_ms, row.p99_ms, row.added_p50_ms))
            }
        }
        if json {
            JSONOutput.print(report)
        } else {
            print(String(format: "direct HTTP p50 %.3f ms; revocation (revoke over the control socket -> next call refused) p50 %.3f ms  p99 %.3f ms",
                         report.direct_http_p50_ms, report.revocation_p50_ms, report.revocation_p99_ms))
        }
    }

    private func runFlood(_ bench: EffectsBench) async throws {
        let report = try await bench.flood(kinds: floodKinds.compactMap(EffectsFloodBench.Kind.init(rawValue:)),
                                           victimCalls: victimCalls, connections: floodConnections)
        if json {
            JSONOutput.print(report)
            return
        }
        print(String(format: "victim idle: p50 %.3f ms  p99 %.3f ms (%d sequential calls); CPU %.2f cores", report.idle_p50_ms, report.idle_p99_ms, report.victim_calls, report.idle_cpu_cores))
        for row in report.floods {
            print(String(format: "flood %-9@ x%d connections: victim p50 %.3f ms  p99 %.3f ms (%.2fx idle p99); flooder got %d answers; CPU %.2f cores (broker %.2f)",
                         row.flood as NSString, report.flood_connections, row.victim_p50_ms, row.victim_p99_ms, row.p99_ratio, row.flood_answers, row.process_cpu_cores, row.broker_cpu_cores))
        }
    }
}
