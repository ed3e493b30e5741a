import ArgumentParser
import Foundation
import Histogram
import SealboxJail

struct BenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Benchmarks.",
        subcommands: [BenchSpawnCommand.self, BenchEffectsCommand.self, BenchLoadCommand.self]
    )
}

struct BenchSpawnCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "spawn",
        abstract: "Measure spawn-to-exit latency of jailed runs through the library API.",
        discussion: """
            Runs the command N times, one after another, each in a fresh jail with the same
            setup as `sealbox run` (namespaces, cgroup, seccomp, filesystem), and prints
            p50/p90/p99/max of the whole Executor.run call: cgroup creation, clone3, setup,
            execve, the program, wait and teardown. Warm-up runs are not recorded.
            """
    )

    @Option(name: [.customShort("n"), .long], help: "Number of recorded runs.")
    var count: Int = 200

    @Option(name: .long, help: "Unrecorded runs first (profile compile, page cache).")
    var warmup: Int = 5

    @Option(name: .long, help: "seccomp profile name or path.")
    var profile: String = "default"

    @Flag(name: .customLong("no-cgroup"), help: "Skip cgroups (no limits) to separate their cost from the spawn's.")
    var noCgroup = false

    @Flag(name: .long, help: "Print one JSON object (count, p50_ms, p90_ms, p99_ms, max_ms, ...).")
    var json = false

    @Argument(parsing: .postTerminator, help: "Command to run (default /bin/true).")
    var command: [String] = []

    func validate() throws {
        guard count >= 1, count <= 1_000_000 else { throw ValidationError("--count must be between 1 and 1000000") }
        guard warmup >= 0, warmup <= 10_000 else { throw ValidationError("--warmup must be between 0 and 10000") }
    }

    func run() throws {
        let executor: Executor
        do {
            executor = try Executor(configuration: .init(dataDirectory: try DataDirectory.locate()),
                                    cgroupDriver: noCgroup ? NoCgroupDriver(reason: "--no-cgroup") : nil)
        } catch {
            throw CLIFailure(message: error.description)
        }
        let spec = JailSpec(command: command.isEmpty ? ["/bin/true"] : command, profile: profile)
        var histogram = Histogram<UInt64>(numberOfSignificantValueDigits: .three)
        let progress = Progress(total: warmup + count)
        var failures = 0
        var firstFailure: String?
        for i in 0..<(warmup + count) {
            let started = DispatchTime.now().uptimeNanoseconds
            let result: RunResult
            do {
                result = try executor.runBlocking(spec)
            } catch {
                throw CLIFailure(message: error.description)
            }
            let micros = (DispatchTime.now().uptimeNanoseconds - started) / 1000
            if result.status != .ok {
                failures += 1
                if firstFailure == nil { firstFailure = "\(result.status.rawValue): \(result.error ?? result.stderr)" }
            }
            if i >= warmup { _ = histogram.record(max(micros, 1)) }
            progress.update(i + 1)
        }
        progress.finish()
        let ms = { (p: Double) in Double(histogram.valueAtPercentile(p)) / 1000 }
        let report = BenchReport(
            count: count, p50_ms: ms(50), p90_ms: ms(90), p99_ms: ms(99), max_ms: Double(histogram.max) / 1000,
            mean_ms: histogram.mean / 1000, failures: failures, command: spec.command,
            cgroup: executor.cgroupDriver.version.rawValue, profile: profile)
        if json {
            JSONOutput.print(report)
        } else {
            print(String(format: "spawn-to-exit over %d runs of %@ (cgroup %@, profile %@):", count,
                         spec.command.joined(separator: " "), report.cgroup, profile))
            print(String(format: "  p50 %.3f ms  p90 %.3f ms  p99 %.3f ms  max %.3f ms  mean %.3f ms",
                         report.p50_ms, report.p90_ms, report.p99_ms, report.max_ms, report.mean_ms))
            if failures > 0 { print("  \(failures) runs did not finish ok; first: \(firstFailure ?? "")") }
        }
        if failures > 0 { throw ExitCode(1) }
    }
}

struct BenchReport: Encodable {
    var count: Int
    var p50_ms: Double
    var p90_ms: Double
    var p99_ms: Double
    var max_ms: Double
    var mean_ms: Double
    var failures: Int
    var command: [String]
    var cgroup: String
    var profile: String
}

/// "spawn 57/200" on stderr: redrawn in place on a terminal, every 10% otherwise.
final class Progress {
    let total: Int
    let label: String
    let interactive = isatty(STDERR_FILENO) == 1
    private var lastDecile = -1

    init(total: Int, label: String = "spawn") {
        self.total = total
        self.label = label
    }

    func update(_ done: Int) {
        if interactive {
            if done == total || done % max(total / 100, 1) == 0 {
                FileHandle.standardError.write(Data("\r\(label) \(done)/\(total)".utf8))
            }
        } else {
            let decile = done * 10 / max(total, 1)
            if decile != lastDecile {
                lastDecile = decile
                FileHandle.standardError.write(Data("\(label) \(done)/\(total)\n".utf8))
            }
        }
    }

    func finish() {
        if interactive { FileHandle.standardError.write(Data("\n".utf8)) }
    }
}
