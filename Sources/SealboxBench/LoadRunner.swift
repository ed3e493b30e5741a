import Foundation
import Histogram
import Synchronization

/// `bench load`'s engine: `concurrency` worker threads, each with one keep-alive connection,
/// take request numbers from a shared counter until `count` have been sent. Blocking I/O on
/// threads of their own keeps the client's overhead small and out of the measurement.
public struct LoadPlan: Sendable {
    public var request: LoadRequest
    public var count: Int
    public var concurrency: Int
    public var timeoutSeconds: Int

    public init(request: LoadRequest, count: Int, concurrency: Int, timeoutSeconds: Int) {
        self.request = request
        self.count = count
        self.concurrency = concurrency
        self.timeoutSeconds = timeoutSeconds
    }

    /// What the workers saw, merged.
    public struct Tally: Sendable {
        /// Microseconds, request sent to answer read, of answers with status 201.
        var latency = Histogram<UInt64>(numberOfSignificantValueDigits: .three)
        var httpStatus: [Int: Int] = [:]
        var runStatus: [String: Int] = [:]
        var connectionErrors = 0
        var firstError: String?
        /// Requests sent again on a fresh connection because a kept-alive one was closed
        /// before any answer (not counted as errors).
        var reconnects = 0
        var elapsedSeconds = 0.0

        mutating func merge(_ other: Tally) {
            latency.add(other.latency)
            httpStatus.merge(other.httpStatus, uniquingKeysWith: +)
            runStatus.merge(other.runStatus, uniquingKeysWith: +)
            connectionErrors += other.connectionErrors
            firstError = firstError ?? other.firstError
            reconnects += other.reconnects
        }
    }

    public func run(progress: sending Progress) -> Tally {
        let next = Atomic<Int>(0)
        let tallies = Mutex<[Tally]>([])
        let shownProgress = Mutex(progress)
        let group = DispatchGroup()
        let started = DispatchTime.now().uptimeNanoseconds
        for index in 0..<concurrency {
            group.enter()
            let thread = Thread {
                let tally = worker(next: next, progress: shownProgress)
                tallies.withLock { $0.append(tally) }
                group.leave()
            }
            thread.name = "load-\(index)"
            thread.start()
        }
        group.wait()
        var total = Tally()
        total.elapsedSeconds = Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9
        for tally in tallies.withLock({ $0 }) { total.merge(tally) }
        shownProgress.withLock { $0.finish() }
        return total
    }

    private struct RunStatus: Decodable { var status: String }

    private func worker(next: borrowing Atomic<Int>, progress: borrowing Mutex<Progress>) -> Tally {
        var tally = Tally()
        let connection = LoadConnection(target: request.target, timeoutSeconds: timeoutSeconds)
        let decoder = JSONDecoder()
        while true {
            let number = next.wrappingAdd(1, ordering: .relaxed).oldValue
            guard number < count else { break }
            let began = DispatchTime.now().uptimeNanoseconds
            do {
                let reused = connection.isOpen && connection.served > 0
                let answer: LoadConnection.Answer
                do {
                    answer = try connection.exchange(request.bytes)
                } catch where reused && error.beforeResponse {
                    // The server closed the idle connection; nothing reached it.
                    tally.reconnects += 1
                    answer = try connection.exchange(request.bytes)
                }
                tally.httpStatus[answer.status, default: 0] += 1
                if answer.status == 201 {
                    _ = tally.latency.record(max((DispatchTime.now().uptimeNanoseconds - began) / 1000, 1))
                    let status = (try? decoder.decode(RunStatus.self, from: Data(answer.body)))?.status ?? "unreadable"
                    tally.runStatus[status, default: 0] += 1
                }
            } catch {
                tally.connectionErrors += 1
                if tally.firstError == nil { tally.firstError = error.description }
            }
            progress.withLock { $0.update(number + 1) }
        }
        return tally
    }
}

/// `bench load`'s report; `--json` prints it with sorted keys.
public struct LoadReport: Encodable {
    public var url: String
    public var workload: String
    public var count: Int
    public var concurrency: Int
    public var elapsed_s: Double
    /// Completed runs (201) per second of the whole load.
    public var runs_per_s: Double
    /// Answers of any status per second.
    public var requests_per_s: Double
    public var p50_ms: Double
    public var p90_ms: Double
    public var p99_ms: Double
    public var max_ms: Double
    public var mean_ms: Double
    public var http_status: [String: Int]
    public var run_status: [String: Int]
    public var connection_errors: Int
    public var first_error: String?
    public var reconnects: Int

    public init(_ tally: LoadPlan.Tally, plan: LoadPlan, url: String, workload: String) {
        self.url = url
        self.workload = workload
        count = plan.count
        concurrency = plan.concurrency
        elapsed_s = tally.elapsedSeconds
        let completed = tally.httpStatus[201] ?? 0
        let answered = tally.httpStatus.values.reduce(0, +)
        runs_per_s = tally.elapsedSeconds > 0 ? Double(completed) / tally.elapsedSeconds : 0
        requests_per_s = tally.elapsedSeconds > 0 ? Double(answered) / tally.elapsedSeconds : 0
        let ms = { (p: Double) in completed == 0 ? 0 : Double(tally.latency.valueAtPercentile(p)) / 1000 }
        p50_ms = ms(50)
        p90_ms = ms(90)
        p99_ms = ms(99)
        max_ms = completed == 0 ? 0 : Double(tally.latency.max) / 1000
        mean_ms = completed == 0 ? 0 : tally.latency.mean / 1000
        http_status = Dictionary(uniqueKeysWithValues: tally.httpStatus.map { (String($0.key), $0.value) })
        run_status = tally.runStatus
        connection_errors = tally.connectionErrors
        first_error = tally.firstError
        reconnects = tally.reconnects
    }

    public func printText() {
        print("load: \(count) runs of \(workload), \(concurrency) in flight, against \(url)")
        print(String(format: "  throughput  %.1f runs/s (%.1f answers/s) over %.2f s", runs_per_s, requests_per_s, elapsed_s))
        print(String(format: "  latency of completed runs: p50 %.1f ms  p90 %.1f ms  p99 %.1f ms  max %.1f ms  mean %.1f ms",
                     p50_ms, p90_ms, p99_ms, max_ms, mean_ms))
        print("  HTTP status: " + Self.counts(http_status))
        print("  run status:  " + (run_status.isEmpty ? "none" : Self.counts(run_status)))
        print("  connection errors: \(connection_errors)" + (first_error.map { " (first: \($0))" } ?? ""))
    }

    static func counts(_ values: [String: Int]) -> String {
        values.isEmpty ? "none" : values.sorted { $0.key < $1.key }.map { "\($0.key) ×\($0.value)" }.joined(separator: "  ")
    }
}

/// The bytes of one POST /v1/runs, the same for every run of a load.
public struct LoadRequest: Sendable {
    let target: LoadTarget
    let bytes: [UInt8]

    /// The run: a snippet (language, code, args) or a command.
    public struct Body: Encodable {
        var language: String?
        var code: String?
        var args: [String]?
        var command: [String]?

        public init(language: String? = nil, code: String? = nil, args: [String]? = nil, command: [String]? = nil) {
            self.language = language
            self.code = code
            self.args = args
            self.command = command
        }
    }

    public init(target: LoadTarget, body: Body, key: String?) throws(BenchFailure) {
        self.target = target
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        guard let json = try? encoder.encode(body) else { throw BenchFailure(message: "cannot encode the run request") }
        let hostHeader = target.host.contains(":") ? "[\(target.host)]:\(target.port)" : "\(target.host):\(target.port)"
        var head = "POST \(target.prefix)/v1/runs HTTP/1.1\r\nHost: \(hostHeader)\r\nContent-Type: application/json\r\n"
            + "Accept: application/json\r\nContent-Length: \(json.count)\r\n"
        if let key { head += "Authorization: Bearer \(key)\r\n" }
        bytes = Array((head + "\r\n").utf8) + json
    }
}
