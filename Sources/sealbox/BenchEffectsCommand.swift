import ArgumentParser
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Glibc
import Histogram
import SealboxBroker

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
        let server = try LoopbackHTTPServer()
        defer { server.stop() }
        let base = ledgerDir ?? (geteuid() == 0 ? "/var/tmp" : NSTemporaryDirectory())
        let dir = base + "/sealbox-bench-\(UInt32.random(in: 0...UInt32.max))"
        try makeDirectories(dir)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let config = dir + "/broker.yaml"
        try """
            tools:
              noop:
                kind: http
                method: POST
                url: "http://127.0.0.1:\(server.port)/noop"
                allow_hosts: ["127.0.0.1"]
                body: json
                args:
                  n: { type: number }
                effect: idempotent
                approval: auto
            """.write(toFile: config, atomically: true, encoding: .utf8)
        let service: BrokerServer
        do {
            service = try BrokerServer(.init(configPath: config, stateDirectory: dir + "/state", ledgerPath: dir + "/ledger.sqlite"))
            try makeDirectories(dir + "/state")
            _ = try await service.start()
        } catch {
            throw CLIFailure(message: "bench: \(error)")
        }
        defer { service.stop() }

        if flood {
            try await runFlood(service)
            return
        }
        let baseline = try directHTTPLatency(port: server.port, calls: min(count, 2000))
        var rows: [BenchEffectsRow] = []
        for callerCount in callers {
            let runID = "bench\(callerCount)"
            let opened = try await openRun(service, runID, ttlMs: 3_600_000)
            let row = try measure(callers: callerCount, token: opened.token!, socket: opened.socket!, baselineP50: baseline)
            rows.append(row)
            await service.closeRun(runID: runID)
            if !json {
                print(String(format: "%3d caller(s): %8.0f sealed effects/s   per call p50 %.3f ms  p99 %.3f ms   added over direct HTTP p50 %.3f ms",
                             row.callers, row.effects_per_second, row.p50_ms, row.p99_ms, row.added_p50_ms))
            }
        }
        let revocation = try await revocationLatency(service: service)
        let report = BenchEffectsReport(count: count, direct_http_p50_ms: baseline, results: rows,
                                        revocation_p50_ms: revocation.p50, revocation_p99_ms: revocation.p99,
                                        world_requests: server.requestCount)
        if json {
            JSONOutput.print(report)
        } else {
            print(String(format: "direct HTTP p50 %.3f ms; revocation (revoke over the control socket -> next call refused) p50 %.3f ms  p99 %.3f ms",
                         baseline, revocation.p50, revocation.p99))
        }
    }

    private func runFlood(_ service: BrokerServer) async throws {
        let bench = EffectsFloodBench(service: service, victimCalls: victimCalls, connections: floodConnections) { runID, tenant in
            do throws(BrokerError) {
                return try await service.openRun(runID: runID, sessionID: runID, tools: ["noop"], ttlMs: 3_600_000, tenant: tenant)
            } catch {
                throw CLIFailure(message: "bench: \(error.message)")
            }
        }
        let report = try await bench.run(kinds: floodKinds.compactMap(EffectsFloodBench.Kind.init(rawValue:)))
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

    private func openRun(_ service: BrokerServer, _ runID: String, ttlMs: Int64) async throws -> ControlResponse {
        do {
            return try await service.openRun(runID: runID, sessionID: runID, tools: ["noop"], ttlMs: ttlMs)
        } catch {
            throw CLIFailure(message: "bench: \(error.message)")
        }
    }

    /// Per-call latency of the same request made straight to the server, same client library.
    private func directHTTPLatency(port: UInt16, calls: Int) throws -> Double {
        var histogram = Histogram<UInt64>(numberOfSignificantValueDigits: .three)
        let session = URLSession(configuration: .ephemeral)
        var request = URLRequest(url: URL(string: "http://127.0.0.1:\(port)/noop")!)
        request.httpMethod = "POST"
        request.httpBody = Data("{\"n\":1}".utf8)
        for _ in 0..<calls {
            let started = DispatchTime.now().uptimeNanoseconds
            let done = DispatchSemaphore(value: 0)
            session.dataTask(with: request) { _, _, _ in done.signal() }.resume()
            done.wait()
            _ = histogram.record(max((DispatchTime.now().uptimeNanoseconds - started) / 1000, 1))
        }
        return Double(histogram.valueAtPercentile(50)) / 1000
    }

    private func measure(callers: Int, token: String, socket: String, baselineP50: Double) throws -> BenchEffectsRow {
        let perCaller = max(count / callers, 1)
        let histograms = HistogramCollector()
        let failures = HistogramCollector()
        let started = DispatchTime.now().uptimeNanoseconds
        let group = DispatchGroup()
        for caller in 0..<callers {
            group.enter()
            let thread = Thread {
                defer { group.leave() }
                var local = Histogram<UInt64>(numberOfSignificantValueDigits: .three)
                var failed = 0
                guard let fd = try? UnixSocket.connect(path: socket) else {
                    failures.addFailures(perCaller)
                    return
                }
                defer { close(fd) }
                let reader = LineReader(fd: fd)
                for i in 0..<perCaller {
                    let line = "{\"token\":\"\(token)\",\"op\":\"call\",\"tool\":\"noop\",\"args\":{\"n\":\(i)},\"key\":\"c\(caller)-\(i)\"}"
                    let t0 = DispatchTime.now().uptimeNanoseconds
                    guard UnixSocket.writeLine(fd, Data(line.utf8)), case .line(let reply) = reader.next() else {
                        failed += perCaller - i
                        break
                    }
                    _ = local.record(max((DispatchTime.now().uptimeNanoseconds - t0) / 1000, 1))
                    if (try? JSONDecoder().decode(CallResponse.self, from: reply))?.ok != true { failed += 1 }
                }
                histograms.add(local)
                failures.addFailures(failed)
            }
            thread.start()
        }
        group.wait()
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9
        let merged = histograms.merged()
        guard failures.failureCount == 0 else {
            throw CLIFailure(message: "bench: \(failures.failureCount) calls failed with \(callers) callers")
        }
        let p50 = Double(merged.valueAtPercentile(50)) / 1000
        return BenchEffectsRow(callers: callers, calls: perCaller * callers, effects_per_second: Double(perCaller * callers) / seconds,
                               p50_ms: p50, p99_ms: Double(merged.valueAtPercentile(99)) / 1000,
                               max_ms: Double(merged.max) / 1000, added_p50_ms: p50 - baselineP50)
    }

    /// Revoke over the control socket, then call: time until the refusal comes back.
    private func revocationLatency(service: BrokerServer) async throws -> (p50: Double, p99: Double) {
        var histogram = Histogram<UInt64>(numberOfSignificantValueDigits: .three)
        for i in 0..<100 {
            let runID = "revoke\(i)"
            let opened = try await openRun(service, runID, ttlMs: 60_000)
            let fd = try UnixSocket.connect(path: opened.socket!)
            defer { close(fd) }
            let reader = LineReader(fd: fd)
            let call = Data("{\"token\":\"\(opened.token!)\",\"op\":\"call\",\"tool\":\"noop\",\"args\":{\"n\":\(i)},\"key\":\"r\(i)\"}".utf8)
            let started = DispatchTime.now().uptimeNanoseconds
            _ = try BrokerControlClient.send(ControlRequest(op: "revoke", tokenID: opened.tokenID), socket: service.controlSocketPath)
            guard UnixSocket.writeLine(fd, call), case .line(let reply) = reader.next(),
                  (try? JSONDecoder().decode(CallResponse.self, from: reply))?.error?.code == .revoked else {
                throw CLIFailure(message: "bench: a call after revocation was not refused")
            }
            _ = histogram.record(max((DispatchTime.now().uptimeNanoseconds - started) / 1000, 1))
            await service.closeRun(runID: runID)
        }
        return (Double(histogram.valueAtPercentile(50)) / 1000, Double(histogram.valueAtPercentile(99)) / 1000)
    }
}

struct BenchEffectsRow: Encodable {
    var callers: Int
    var calls: Int
    var effects_per_second: Double
    var p50_ms: Double
    var p99_ms: Double
    var max_ms: Double
    var added_p50_ms: Double
}

struct BenchEffectsReport: Encodable {
    var count: Int
    var direct_http_p50_ms: Double
    var results: [BenchEffectsRow]
    var revocation_p50_ms: Double
    var revocation_p99_ms: Double
    var world_requests: Int
}

final class HistogramCollector: @unchecked Sendable {  // guarded by lock
    private let lock = NSLock()
    private var histograms: [Histogram<UInt64>] = []
    private var failures = 0
    func add(_ h: Histogram<UInt64>) { lock.withLock { histograms.append(h) } }
    func addFailures(_ n: Int) { lock.withLock { failures += n } }
    var failureCount: Int { lock.withLock { failures } }
    func merged() -> Histogram<UInt64> {
        lock.withLock {
            var all = Histogram<UInt64>(numberOfSignificantValueDigits: .three)
            for h in histograms { all.add(h) }
            return all
        }
    }
}
