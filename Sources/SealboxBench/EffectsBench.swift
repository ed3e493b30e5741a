import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Glibc
import Histogram
import SealboxBroker

/// `sealbox bench effects`: a no-op HTTP server on 127.0.0.1 ("the world"), a broker with one
/// idempotent http tool pointing at it and a fresh effect log (fsync'd, WAL), and calls through
/// a run socket exactly as a jail makes them. `throughput` measures sealed effects/s and the
/// latency the broker adds for each caller count, and revocation latency; `flood` what one
/// run's flood of its own socket does to another run's calls (`EffectsFloodBench`).
public struct EffectsBench {
    /// Calls per caller count.
    public var count: Int
    /// Concurrent caller counts to measure.
    public var callers: [Int]
    /// Where the bench's effect log goes (default: a temporary directory on the same disk as /var/lib).
    public var ledgerDir: String?

    public init(count: Int, callers: [Int], ledgerDir: String?) {
        self.count = count
        self.callers = callers
        self.ledgerDir = ledgerDir
    }

    /// Each caller count's row goes to `row` as soon as it is measured, then the whole report.
    public func throughput(row report: (BenchEffectsRow) -> Void) async throws -> BenchEffectsReport {
        try await withBroker { service, server in
            let baseline = try directHTTPLatency(port: server.port, calls: min(count, 2000))
            var rows: [BenchEffectsRow] = []
            for callerCount in callers {
                let runID = "bench\(callerCount)"
                let opened = try await openRun(service, runID, ttlMs: 3_600_000)
                let row = try measure(callers: callerCount, token: opened.token!, socket: opened.socket!, baselineP50: baseline)
                rows.append(row)
                await service.closeRun(runID: runID)
                report(row)
            }
            let revocation = try await revocationLatency(service: service)
            return BenchEffectsReport(count: count, direct_http_p50_ms: baseline, results: rows,
                                      revocation_p50_ms: revocation.p50, revocation_p99_ms: revocation.p99,
                                      world_requests: server.requestCount)
        }
    }

    /// A victim run's sequential calls, idle and under each flood of `kinds`.
    public func flood(kinds: [EffectsFloodBench.Kind], victimCalls: Int, connections: Int) async throws -> EffectsFloodBench.Report {
        try await withBroker { service, _ in
            let bench = EffectsFloodBench(service: service, victimCalls: victimCalls, connections: connections) { runID, tenant in
                do throws(BrokerError) {
                    return try await service.openRun(runID: runID, sessionID: runID, tools: ["noop"], ttlMs: 3_600_000, tenant: tenant)
                } catch {
                    throw BenchFailure(message: "bench: \(error.message)")
                }
            }
            return try await bench.run(kinds: kinds)
        }
    }

    /// The world, the broker's config and state in a directory of their own, the broker
    /// started; all gone when `body` returns.
    private func withBroker<T>(_ body: (BrokerServer, LoopbackHTTPServer) async throws -> T) async throws -> T {
        let server = try LoopbackHTTPServer()
        defer { server.stop() }
        let base = ledgerDir ?? (geteuid() == 0 ? "/var/tmp" : NSTemporaryDirectory())
        let dir = base + "/sealbox-bench-\(UInt32.random(in: 0...UInt32.max))"
        try Self.makeDirectory(dir)
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
            try Self.makeDirectory(dir + "/state")
            _ = try await service.start()
        } catch {
            throw BenchFailure(message: "bench: \(error)")
        }
        defer { service.stop() }
        return try await body(service, server)
    }

    private static func makeDirectory(_ path: String) throws {
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o711])
    }

    private func openRun(_ service: BrokerServer, _ runID: String, ttlMs: Int64) async throws -> ControlResponse {
        do {
            return try await service.openRun(runID: runID, sessionID: runID, tools: ["noop"], ttlMs: ttlMs)
        } catch {
            throw BenchFailure(message: "bench: \(error.message)")
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
            throw BenchFailure(message: "bench: \(failures.failureCount) calls failed with \(callers) callers")
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
                throw BenchFailure(message: "bench: a call after revocation was not refused")
            }
            _ = histogram.record(max((DispatchTime.now().uptimeNanoseconds - started) / 1000, 1))
            await service.closeRun(runID: runID)
        }
        return (Double(histogram.valueAtPercentile(50)) / 1000, Double(histogram.valueAtPercentile(99)) / 1000)
    }
}


public struct BenchEffectsRow: Encodable {
    public var callers: Int
    public var calls: Int
    public var effects_per_second: Double
    public var p50_ms: Double
    public var p99_ms: Double
    public var max_ms: Double
    public var added_p50_ms: Double
}

public struct BenchEffectsReport: Encodable {
    public var count: Int
    public var direct_http_p50_ms: Double
    public var results: [BenchEffectsRow]
    public var revocation_p50_ms: Double
    public var revocation_p99_ms: Double
    public var world_requests: Int
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
