import Foundation
import Glibc
import Histogram
import SealboxBase
import SealboxBroker
import Synchronization

/// `sealbox bench effects --flood`: what one run's flood of its broker socket does to another
/// run's calls on the same broker. The victim makes sequential calls (a jail calling a tool in a
/// loop), first with the broker idle — the anchor, measured in the same run because this
/// machine's speed varies — then while a second run (another session, another tenant) floods
/// its own socket over every connection the broker lets it have, in each way a hostile jail
/// can: blank lines, malformed JSON, and valid calls as fast as they are answered.
public struct EffectsFloodBench {
    public enum Kind: String, CaseIterable, Sendable {
        /// Newlines only: nothing to answer, nothing to decode.
        case blank
        /// Lines that are not a request: each is answered with bad_request.
        case malformed
        /// Real calls with new keys: each reaches the world and the effect log.
        case calls
    }

    public struct Row: Encodable {
        public var flood: String
        public var victim_p50_ms: Double
        public var victim_p99_ms: Double
        /// Victim p99 under this flood over its idle p99.
        public var p99_ratio: Double
        /// Answers the flooder got while the victim measured (blank lines get none).
        public var flood_answers: Int
        /// CPU this process used per second of wall time during the flood (broker and flooder).
        public var process_cpu_cores: Double
        /// The same without the flooder's own threads: what the broker (and the victim's client)
        /// spent.
        public var broker_cpu_cores: Double
    }

    public struct Report: Encodable {
        public var victim_calls: Int
        public var flood_connections: Int
        public var idle_p50_ms: Double
        public var idle_p99_ms: Double
        /// CPU per second of wall time while the victim alone called (the anchor for the rows).
        public var idle_cpu_cores: Double
        public var floods: [Row]
    }

    let service: BrokerServer
    let victimCalls: Int
    let connections: Int
    /// Opens a run on `service` with the bench's tool; the tenant keeps runs' budgets apart.
    let openRun: @Sendable (_ runID: String, _ tenant: String) async throws -> ControlResponse

    public func run(kinds: [Kind]) async throws -> Report {
        let victim = try await openRun("victim", "victim-tenant")
        guard let token = victim.token, let socket = victim.socket else { throw BenchFailure(message: "bench: the victim's run did not open") }
        // Warm up (first connections, first effect-log pages), then the anchor.
        _ = try victimLatency(token: token, socket: socket, calls: min(50, victimCalls), prefix: "warm")
        let idleCPU0 = Self.processCPUSeconds(), idleWall0 = ContinuousClock.now
        let idle = try victimLatency(token: token, socket: socket, calls: victimCalls, prefix: "idle")
        let idleCPU = (Self.processCPUSeconds() - idleCPU0) / max((ContinuousClock.now - idleWall0).inSeconds, 0.001)
        var rows: [Row] = []
        for kind in kinds {
            let flooderRun = "flood-\(kind.rawValue)"
            let flooder = try await openRun(flooderRun, "flood-tenant-\(kind.rawValue)")
            guard let floodToken = flooder.token, let floodSocket = flooder.socket else { throw BenchFailure(message: "bench: the flooder's run did not open") }
            let flood = Flood(kind: kind, token: floodToken, socket: floodSocket, connections: connections)
            flood.start()
            defer { flood.stop() }
            // Let every connection get going before the victim measures.
            try flood.waitUntilFlowing(timeout: .seconds(10))
            let cpu0 = Self.processCPUSeconds(), flooder0 = Self.threadCPUSeconds(named: "bench-flood"), wall0 = ContinuousClock.now, answers0 = flood.answers
            let under = try victimLatency(token: token, socket: socket, calls: victimCalls, prefix: "under-\(kind.rawValue)")
            let wall = ContinuousClock.now - wall0
            let seconds = wall.inSeconds
            rows.append(Row(flood: kind.rawValue, victim_p50_ms: under.p50, victim_p99_ms: under.p99, p99_ratio: under.p99 / max(idle.p99, 0.001),
                            flood_answers: flood.answers - answers0, process_cpu_cores: (Self.processCPUSeconds() - cpu0) / max(seconds, 0.001),
                            broker_cpu_cores: (Self.processCPUSeconds() - cpu0 - (Self.threadCPUSeconds(named: "bench-flood") - flooder0)) / max(seconds, 0.001)))
            flood.stop()
            await service.closeRun(runID: flooderRun)
        }
        await service.closeRun(runID: "victim")
        return Report(victim_calls: victimCalls, flood_connections: connections, idle_p50_ms: idle.p50, idle_p99_ms: idle.p99, idle_cpu_cores: idleCPU, floods: rows)
    }

    /// Sequential calls on one connection, as a jail's loop makes them; every answer must be ok.
    func victimLatency(token: String, socket: String, calls: Int, prefix: String) throws -> (p50: Double, p99: Double) {
        let fd: Int32
        do { fd = try UnixSocket.connect(path: socket) } catch { throw BenchFailure(message: "bench: victim: \(error.description)") }
        defer { close(fd) }
        let reader = LineReader(fd: fd)
        var histogram = Histogram<UInt64>(numberOfSignificantValueDigits: .three)
        for i in 0..<calls {
            let line = "{\"token\":\"\(token)\",\"op\":\"call\",\"tool\":\"noop\",\"args\":{\"n\":\(i)},\"key\":\"\(prefix)-\(i)\"}"
            let t0 = DispatchTime.now().uptimeNanoseconds
            guard UnixSocket.writeLine(fd, Data(line.utf8)), case .line(let reply) = reader.next() else {
                throw BenchFailure(message: "bench: the victim's connection failed at call \(i) (\(prefix))")
            }
            _ = histogram.record(max((DispatchTime.now().uptimeNanoseconds - t0) / 1000, 1))
            guard let answer = try? JSONDecoder().decode(CallResponse.self, from: reply), answer.ok else {
                throw BenchFailure(message: "bench: the victim's call \(i) (\(prefix)) was refused: \(String(decoding: reply.prefix(300), as: UTF8.self))")
            }
        }
        return (Double(histogram.valueAtPercentile(50)) / 1000, Double(histogram.valueAtPercentile(99)) / 1000)
    }

    /// CPU of this process's live threads whose name starts with `prefix` (/proc/self/task).
    static func threadCPUSeconds(named prefix: String) -> Double {
        let ticks = Double(sysconf(Int32(_SC_CLK_TCK)))
        var total = 0.0
        for task in (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/task")) ?? [] {
            guard let comm = try? String(contentsOfFile: "/proc/self/task/\(task)/comm", encoding: .utf8), comm.hasPrefix(prefix),
                  let stat = try? String(contentsOfFile: "/proc/self/task/\(task)/stat", encoding: .utf8),
                  let close = stat.lastIndex(of: ")") else { continue }
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            // After "pid (comm)": state is field 0, utime 11, stime 12.
            if fields.count > 12, let user = Double(fields[11]), let system = Double(fields[12]) { total += (user + system) / ticks }
        }
        return total
    }

    static func processCPUSeconds() -> Double {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        return Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) + Double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6
    }
}

/// The flooder: one thread per connection writing its lines as fast as the broker takes them
/// and reading whatever comes back, until stopped (and at most a minute).
final class Flood: Sendable {
    let kind: EffectsFloodBench.Kind
    let token: String
    let socket: String
    let connections: Int
    private let stopped = Atomic<Bool>(false)
    private let sent = Atomic<Int>(0)
    private let answered = Atomic<Int>(0)
    private let running = Atomic<Int>(0)
    private let finished = DispatchGroup()

    init(kind: EffectsFloodBench.Kind, token: String, socket: String, connections: Int) {
        self.kind = kind
        self.token = token
        self.socket = socket
        self.connections = connections
    }

    var linesSent: Int { sent.load(ordering: .relaxed) }
    var answers: Int { answered.load(ordering: .relaxed) }

    /// Reads whatever answers are waiting, without blocking; counts them.
    private func drain(_ fd: Int32, _ scratch: inout [UInt8]) {
        while true {
            let n = scratch.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
            guard n > 0 else { return }
            answered.wrappingAdd(scratch[0..<n].reduce(0) { $0 + ($1 == UInt8(ascii: "\n") ? 1 : 0) }, ordering: .relaxed)
        }
    }

    func start() {
        for connection in 0..<connections {
            finished.enter()
            let thread = Thread { [self] in
                defer { finished.leave() }
                flood(connection)
            }
            thread.name = "bench-flood-\(connection)"
            thread.start()
        }
    }

    /// Waits until every connection is open and some lines went through.
    func waitUntilFlowing(timeout: Duration) throws {
        let deadline = ContinuousClock.now + timeout
        while running.load(ordering: .relaxed) < connections || linesSent == 0 {
            guard ContinuousClock.now < deadline else { throw BenchFailure(message: "bench: the flood did not start (\(running.load(ordering: .relaxed)) of \(connections) connections)") }
            usleep(10_000)
        }
        usleep(200_000)
    }

    func stop() {
        stopped.store(true, ordering: .relaxed)
        finished.wait()
    }

    private func payload(_ connection: Int, _ round: Int) -> (bytes: [UInt8], lines: Int) {
        switch kind {
        case .blank:
            return ([UInt8](repeating: UInt8(ascii: "\n"), count: 65536), 65536)
        case .malformed:
            let line = Array("{\"op\":\n".utf8)
            let count = 65536 / line.count
            return (Array([[UInt8]](repeating: line, count: count).joined()), count)
        case .calls:
            var text = ""
            for i in 0..<64 {
                text += "{\"token\":\"\(token)\",\"op\":\"call\",\"tool\":\"noop\",\"args\":{\"n\":\(i)},\"key\":\"f\(connection)-\(round)-\(i)\"}\n"
            }
            return (Array(text.utf8), 64)
        }
    }

    private func flood(_ connection: Int) {
        guard let fd = try? UnixSocket.connect(path: socket) else { return }
        defer { close(fd) }
        // Short send timeouts, so a broker that stops reading never keeps this thread past stop().
        var timeout = timeval(tv_sec: 0, tv_usec: 100_000)
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        running.wrappingAdd(1, ordering: .relaxed)
        let deadline = ContinuousClock.now + .seconds(60)
        var scratch = [UInt8](repeating: 0, count: 65536)
        var round = 0
        // Made once: a jail's flood costs the jail, and the bench must not spend its CPU on it.
        let fixed = kind == .calls ? nil : payload(connection, 0)
        while !stopped.load(ordering: .relaxed) && ContinuousClock.now < deadline {
            let (bytes, lines) = fixed ?? payload(connection, round)
            round += 1
            var offset = 0
            while offset < bytes.count && !stopped.load(ordering: .relaxed) {
                let n = bytes.withUnsafeBytes { send(fd, $0.baseAddress! + offset, $0.count - offset, Int32(MSG_NOSIGNAL)) }
                if n > 0 { offset += n; continue }
                if n < 0 && (errno == EAGAIN || errno == EINTR) {
                    // The broker is not reading this connection: answers may be what it waits on.
                    drain(fd, &scratch)
                    continue
                }
                return
            }
            if offset == bytes.count { sent.wrappingAdd(lines, ordering: .relaxed) }
            drain(fd, &scratch)
        }
    }
}
