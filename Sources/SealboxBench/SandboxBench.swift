import Foundation
import Glibc
import SealboxBase
import SealboxJail

/// `sealbox bench sandbox`: what live sandboxes cost through the library (`LiveJail`,
/// `LiveFiles`), each figure beside its anchor in the same run, since this machine's speed
/// varies: a cold one-shot run of /bin/true.
///
/// - anchor: `Executor.run` of /bin/true, a fresh jail each time;
/// - create: `startLiveJail` taking a jail from a warm pool (waiting for the pool to refill
///   between samples, so each measures a request that finds a ready jail);
/// - command: `/bin/true` in one live jail;
/// - chunk: `1+1` in a warm Python context, and 10,000 `x += 1` in a row, the value checked;
/// - files: a `fileMB` upload into a live jail's /work and its download, in MB/s;
/// - idle: `idle` live jails left alone for two seconds: this process's CPU time meanwhile,
///   and its resident memory before and after making them.
public struct SandboxBench {
    public var count: Int
    public var warmup: Int
    public var fileMB: Int
    public var idle: Int

    public init(count: Int, warmup: Int, fileMB: Int, idle: Int) {
        self.count = count
        self.warmup = warmup
        self.fileMB = fileMB
        self.idle = idle
    }

    public struct Latency: Encodable {
        public var p50_ms: Double
        public var p99_ms: Double
        public var max_ms: Double

        init(_ samples: [Double]) {
            let sorted = samples.sorted()
            p50_ms = Percentile.of(sorted, 50)
            p99_ms = Percentile.of(sorted, 99)
            max_ms = sorted.last ?? 0
        }

        var text: String { String(format: "p50 %7.3f ms   p99 %7.3f ms   max %7.3f ms", p50_ms, p99_ms, max_ms) }
    }

    public struct Report: Encodable {
        public var count: Int
        public var anchor_cold_run: Latency
        public var create_from_pool: Latency
        public var command_true: Latency
        public var python_chunk: Latency
        /// 10,000 chunks `x += 1` in a row, in seconds (the value is checked at the end).
        public var python_increments_seconds: Double
        public var file_mb: Int
        public var upload_mb_per_s: Double
        public var download_mb_per_s: Double
        public var idle_sandboxes: Int
        /// This process's CPU time while they idled, as a share of one CPU.
        public var idle_cpu_percent: Double
        public var idle_rss_growth_mb: Double

        public var text: String {
            """
            sandbox bench: \(count) samples each (release figures in README.md; compare with the anchor)
              cold one-shot run of /bin/true (anchor)   \(anchor_cold_run.text)
              create a sandbox from the warm pool       \(create_from_pool.text)
              command /bin/true in a live sandbox       \(command_true.text)
              python chunk 1+1 in a warm context        \(python_chunk.text)
              10,000 chunks x += 1 in a row             \(String(format: "%.2f s (%.3f ms each)", python_increments_seconds, python_increments_seconds / 10))
              \(file_mb) MB upload into /work               \(String(format: "%8.0f MB/s", upload_mb_per_s))
              \(file_mb) MB download from /work             \(String(format: "%8.0f MB/s", download_mb_per_s))
              \(idle_sandboxes) idle sandboxes for 2 s: sealbox CPU \(String(format: "%.2f", idle_cpu_percent)) % of one core, RSS +\(String(format: "%.1f", idle_rss_growth_mb)) MB
            """
        }
    }

    public func run(executor: Executor) throws(BenchFailure) -> Report {
        do {
            return try measure(executor)
        } catch let failure as BenchFailure {
            throw failure
        } catch {
            throw BenchFailure(message: "\(error)")
        }
    }

    private func measure(_ executor: Executor) throws -> Report {
        let trueSpec = JailSpec(command: ["/bin/true"])
        // Anchor: a fresh jail each time.
        var anchor: [Double] = []
        for i in 0..<(warmup + count) {
            let began = Clock.now
            let r = try executor.runBlocking(trueSpec)
            guard r.status == .ok else { throw BenchFailure(message: "the anchor run failed: \(r.status) \(r.error ?? r.stderr)") }
            if i >= warmup { anchor.append(Clock.ms(since: began)) }
        }

        // Create from a warm pool of one, refilled between samples.
        let pool = try executor.startPool(JailPool.Configuration(size: 1))
        defer { executor.stopPool() }
        var creates: [Double] = []
        for i in 0..<(warmup + count) {
            guard pool.waitUntilFull(timeout: 30) else { throw BenchFailure(message: "the pool did not refill: \(pool.stats)") }
            let began = Clock.now
            let jail = try executor.startLiveJail(JailSpec(command: []))
            let took = Clock.ms(since: began)
            guard jail.fromPool else { throw BenchFailure(message: "a sandbox did not come from the pool") }
            jail.end()
            if i >= warmup { creates.append(took) }
        }

        // Commands in one sandbox.
        let jail = try executor.startLiveJail(JailSpec(command: []))
        defer { jail.end() }
        var commands: [Double] = []
        for i in 0..<(warmup + count) {
            let began = Clock.now
            let r = try jail.runBlocking(LiveCommand(command: ["/bin/true"]))
            guard r.status == .ok else { throw BenchFailure(message: "a command failed: \(r.status) \(r.error ?? r.stderr)") }
            if i >= warmup { commands.append(Clock.ms(since: began)) }
        }

        // Chunks in a warm Python context.
        let context = try LiveContext.start(in: jail, language: "python", id: "bench")
        defer { context.close() }
        var chunks: [Double] = []
        for i in 0..<(warmup + count) {
            let began = Clock.now
            let r = try context.run("1+1", timeoutMs: 10_000)
            guard r.value == "2" else { throw BenchFailure(message: "1+1 answered \(r.value ?? "nothing") \(r.error?.traceback ?? "")") }
            if i >= warmup { chunks.append(Clock.ms(since: began)) }
        }
        _ = try context.run("x = 0", timeoutMs: 10_000)
        let incrementsBegan = Clock.now
        for _ in 0..<10_000 { _ = try context.run("x += 1", timeoutMs: 10_000) }
        let increments = Clock.ms(since: incrementsBegan) / 1000
        let x = try context.run("x", timeoutMs: 10_000).value
        guard x == "10000" else { throw BenchFailure(message: "after 10,000 increments x is \(x ?? "nothing")") }

        // Files: a workspace with room for the file.
        var spec = JailSpec(command: [])
        spec.workspace = try Workspace(limitBytes: UInt64(fileMB + 16) << 20)
        let filesJail = try executor.startLiveJail(spec)
        defer { filesJail.end() }
        let chunk = [UInt8](repeating: 0x5a, count: 1 << 20)
        var began = Clock.now
        try filesJail.files.write("big.bin") { fd throws(LiveFileError) in
            for _ in 0..<fileMB { try LiveFiles.writeAll(fd, chunk, path: "big.bin") }
        }
        let upload = Double(fileMB) / (Clock.ms(since: began) / 1000)
        began = Clock.now
        let (fd, size) = try filesJail.files.openForReading("big.bin")
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        var total = 0
        while true {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            total += n
        }
        close(fd)
        let download = Double(fileMB) / (Clock.ms(since: began) / 1000)
        guard total == fileMB << 20, size == UInt64(total) else { throw BenchFailure(message: "downloaded \(total) bytes of \(size)") }

        // Idle sandboxes: what this process spends while they sit there.
        let rssBefore = Self.residentMB()
        var idlers: [LiveJail] = []
        defer { for idler in idlers { idler.end() } }
        for _ in 0..<idle { idlers.append(try executor.startLiveJail(JailSpec(command: []))) }
        let rssAfter = Self.residentMB()
        let cpuBefore = Self.cpuSeconds()
        Thread.sleep(forTimeInterval: 2)
        let cpu = (Self.cpuSeconds() - cpuBefore) / 2 * 100

        return Report(
            count: count, anchor_cold_run: Latency(anchor), create_from_pool: Latency(creates), command_true: Latency(commands),
            python_chunk: Latency(chunks), python_increments_seconds: increments,
            file_mb: fileMB, upload_mb_per_s: upload, download_mb_per_s: download, idle_sandboxes: idle, idle_cpu_percent: cpu,
            idle_rss_growth_mb: rssAfter - rssBefore)
    }

    static func cpuSeconds() -> Double {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        return Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) + Double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1_000_000
    }

    static func residentMB() -> Double {
        guard let text = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) else { return 0 }
        let fields = text.split(separator: " ")
        guard fields.count > 1, let pages = Double(fields[1]) else { return 0 }
        return pages * Double(sysconf(Int32(_SC_PAGESIZE))) / 1_048_576
    }
}

/// Monotonic time for the bench's samples.
private enum Clock {
    static var now: UInt64 { DispatchTime.now().uptimeNanoseconds }
    static func ms(since start: UInt64) -> Double { Double(now - start) / 1_000_000 }
}
