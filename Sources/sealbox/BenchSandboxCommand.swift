import ArgumentParser
import Foundation
import SealboxBench
import SealboxJail

struct BenchSandboxCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sandbox",
        abstract: "Measure live sandboxes through the library API: create, command, files, idle cost.",
        discussion: """
            Each figure is measured beside its anchor in the same run, a cold one-shot run of \
            /bin/true (a fresh jail each time), since this machine's speed varies:

              create    a sandbox from a warm pool of one (refilled between samples)
              command   /bin/true in one live sandbox
              chunk     1+1 in a warm Python context; then 10,000 chunks x += 1, checked
              files     an upload of --file-mb MB into /work and its download, in MB/s
              idle      --idle sandboxes left alone for 2 s: this process's CPU and memory

            Warm-up samples are not recorded. --json prints one object with the same fields.
            """)

    @Option(name: [.customShort("n"), .long], help: "Recorded samples of each latency.")
    var count: Int = 200

    @Option(name: .long, help: "Unrecorded samples first.")
    var warmup: Int = 5

    @Option(name: .customLong("file-mb"), help: "Size of the file uploaded and downloaded, in MB.")
    var fileMB: Int = 100

    @Option(name: .long, help: "Idle sandboxes made for the idle cost.")
    var idle: Int = 50

    @Flag(name: .long, help: "Print one JSON object.")
    var json = false

    func validate() throws {
        guard (1...100_000).contains(count) else { throw ValidationError("--count must be between 1 and 100000") }
        guard (0...10_000).contains(warmup) else { throw ValidationError("--warmup must be between 0 and 10000") }
        guard (1...4096).contains(fileMB) else { throw ValidationError("--file-mb must be between 1 and 4096") }
        guard (0...256).contains(idle) else { throw ValidationError("--idle must be between 0 and 256") }
    }

    func run() throws {
        let executor: Executor
        do {
            executor = try Executor(configuration: .init(dataDirectory: try DataDirectory.locate()))
        } catch {
            throw CLIFailure(message: "\(error)")
        }
        let report: SandboxBench.Report
        do {
            report = try SandboxBench(count: count, warmup: warmup, fileMB: fileMB, idle: idle).run(executor: executor)
        } catch {
            throw CLIFailure(message: "bench sandbox: \(error.message)")
        }
        if json { JSONOutput.print(report) } else { print(report.text) }
    }
}
