import ArgumentParser
import Foundation
import Glibc
import SealboxJail
import SealboxProfiles

/// `sealbox profile learn`: record what a workload needs, write the allowlist, prove it.
struct ProfileLearnCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "learn",
        abstract: "Run a workload under a recording filter and write the minimal profile that lets it run.",
        discussion: """
            The workload runs once in a jail whose filter sends every syscall to sealbox \
            (seccomp user notification). sealbox answers each call the way the base profile \
            (--base, default: default) would, with one change: what the base would deny only \
            by its default action is allowed and recorded. The base's argument conditions \
            (clone without namespace flags, unix and IP sockets only, no TIOCSTI) and its \
            explicit answers (clone3 fails with ENOSYS) stay in force, and dangerous syscalls \
            (ptrace, mount, bpf, unshare, keyctl, io_uring, ...) are denied with EPERM and \
            reported, never learned.

            The learned profile (OCI JSON) allows exactly the syscalls the workload made, \
            plus the five sealbox's own jail start needs (execve, exit_group, sendmsg, umask, \
            write), keeps the base's rules for the argument-checked ones, and denies the rest \
            with the base's errno. Then the workload runs a second time under the learned \
            profile to show that it behaves the same (skip with --no-verify).

            Exit status: 0 when the verifying run ended like the recording run with no \
            denial beyond those reported; 1 when it did not; 125 when sealbox failed.

            Examples:
              sealbox profile learn -o hello.json --lang python --code 'print(42)'
              sealbox profile learn -o tool.json -- /usr/bin/sort --version
              sealbox profile check hello.json && sealbox run --profile ./hello.json --lang python --code 'print(42)'
            """
    )

    @Option(name: [.short, .customLong("output")], help: "Write the learned profile here ('-' for stdout).")
    var output: String

    @Option(name: .long, help: "Profile whose argument conditions and explicit rules stay in force (a name in profiles/ or a path).")
    var base: String = "default"

    @Option(name: .long, help: "Also allow what this earlier learned profile allows (learn several workloads into one profile; may be the -o file itself).")
    var merge: String?

    @Option(name: .customLong("allow"), help: "Also allow these syscalls (comma-separated), e.g. the variants another libc may use (stat,lstat,statx). Dangerous ones are refused.")
    var extraAllowed: [String] = []

    @Option(name: .long, help: "Text that opens the profile's `comment` field (what the profile is for); sealbox appends how it was learned.")
    var comment: String?

    @Flag(name: .customLong("no-verify"), help: "Skip the second run under the learned profile.")
    var noVerify = false

    @Flag(name: .long, help: "Print the findings as one JSON object on stdout (needs -o FILE).")
    var json = false

    @OptionGroup var workload: WorkloadOptions

    struct Report: Encodable {
        var profile: String
        var workload: String
        var recording: RunSummary
        var syscallsAllowed: Int
        var findings: ProfileLearner.Findings
        var verify: RunSummary?
        var verified: Bool?

        enum CodingKeys: String, CodingKey {
            case profile, workload, recording
            case syscallsAllowed = "syscalls_allowed"
            case findings, verify, verified
        }
    }

    struct RunSummary: Encodable {
        var status: String
        var exitCode: Int32
        var wallMs: Double
        var violations: [JailResult.Violation]

        init(_ r: JailResult) {
            status = r.status.rawValue
            exitCode = r.exitCode
            wallMs = r.wallMs
            violations = r.violations
        }

        enum CodingKeys: String, CodingKey {
            case status
            case exitCode = "exit_code"
            case wallMs = "wall_ms"
            case violations
        }
    }

    func validate() throws {
        if json && output == "-" {
            throw ValidationError("--json prints the findings on stdout; write the profile to a file with -o FILE")
        }
        if output != "-" {
            var isDirectory: ObjCBool = false
            if FileManager.default.fileExists(atPath: output, isDirectory: &isDirectory), isDirectory.boolValue {
                throw ValidationError("-o \(output) is a directory")
            }
            // Checked before the workload runs, not after.
            let parent = (output as NSString).deletingLastPathComponent
            let directory = parent.isEmpty ? "." : parent
            guard FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory), isDirectory.boolValue else {
                throw ValidationError("-o \(output): no such directory \(directory)")
            }
            guard FileManager.default.isWritableFile(atPath: directory) else {
                throw ValidationError("-o \(output): cannot write in \(directory)")
            }
        }
    }

    func run() async throws {
        let spec = try JailSpecBuilder(options: workload, profile: base).build()
        let session = try ProfileSession.open()
        let learner: ProfileLearner
        do {
            let loaded = try ProfileLoader.load(base, profilesDirectory: session.executor.profilesDirectory)
            learner = try ProfileLearner(base: loaded, dangerous: SyscallCatalog.dangerousNames)
        } catch {
            throw CLIFailure(message: error.description)
        }

        var recordingSpec = spec
        do {
            recordingSpec.compiledFilter = try learner.recordingFilter()
        } catch {
            throw CLIFailure(message: error.description)
        }
        let recording = try await session.run(recordingSpec)
        if recording.status == .spawnFailed {
            throw CLIFailure(message: "the workload could not start: \(recording.error ?? "unknown error")")
        }
        if recording.status != .ok { writeStderr(recording.stderr) }  // why the workload failed
        let recorded = (recording.recordedSyscalls ?? []).map {
            ProfileLearner.Recorded(syscall: $0.syscall, native: $0.native, count: $0.count, answer: $0.answer, firstArgs: $0.firstArgs)
        }
        var findings = learner.findings(recorded)
        let extra = extraAllowed.flatMap { $0.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) } }.filter { !$0.isEmpty }
        do {
            findings = try learner.allowing(extra, in: findings)
        } catch {
            throw CLIFailure(message: "--allow: \(error.description)")
        }
        if let merge {
            do {
                let earlier = try ProfileLoader.load(merge, profilesDirectory: session.executor.profilesDirectory)
                findings = try learner.merging(findings, with: earlier)
            } catch {
                throw CLIFailure(message: "--merge: \(error.description)")
            }
        }
        let calls = recorded.reduce(0) { $0 + $1.count }
        let comment = (self.comment.map { $0 + " " } ?? "") + """
            Learned by `sealbox profile learn` on \(ISO8601DateFormatter().string(from: Date())) from: \(workload.summary)\(merge.map { " (merged with the earlier \($0))" } ?? ""). \
            Base: \(base). \(findings.allowed.count) syscalls allowed, \(findings.conditional.count) under the base's argument conditions. \
            Dangerous syscalls seen and left denied: \(findings.dangerous.isEmpty ? "none" : findings.dangerous.map(\.syscall).joined(separator: ", ")).
            """
        let text = learner.profileJSON(findings, comment: comment)
        if output == "-" {
            FileHandle.standardOutput.write(Data(text.utf8))
        } else {
            do {
                try Data(text.utf8).write(to: URL(fileURLWithPath: output), options: .atomic)
            } catch {
                throw CLIFailure(message: "cannot write \(output): \(error.localizedDescription)")
            }
        }

        var report = Report(profile: output, workload: workload.summary, recording: RunSummary(recording),
                            syscallsAllowed: findings.allowed.count + findings.conditional.count, findings: findings)
        if !noVerify {
            let learned: LoadedProfile
            do {
                learned = try ProfileLoader.parse(Array(text.utf8), name: output == "-" ? "learned" : output)
            } catch {
                throw CLIFailure(message: "the learned profile does not load (a sealbox bug): \(error.description)")
            }
            var verifySpec = spec
            do {
                verifySpec.compiledFilter = try session.executor.compiler.compile(learned, tracking: .denials)
            } catch {
                throw CLIFailure(message: error.description)
            }
            let verify = try await session.run(verifySpec)
            report.verify = RunSummary(verify)
            let expected = Set(findings.dangerous.map(\.syscall) + findings.outsideConditions.map(\.syscall))
            let unexpected = verify.violations.filter { !expected.contains($0.syscall) }
            report.verified = verify.status == recording.status && verify.exitCode == recording.exitCode && unexpected.isEmpty
        }

        if json {
            JSONOutput.print(report)
        } else {
            writeStderr(Self.describe(report, calls: calls, stdout: output == "-"))
        }
        if report.verified == false { throw ExitCode(1) }
    }

    static func describe(_ r: Report, calls: Int, stdout: Bool) -> String {
        let f = r.findings
        var lines: [String] = []
        lines.append("sealbox: learned profile \(stdout ? "written to stdout" : "written to \(r.profile)"): \(f.allowed.count) syscalls allowed, \(f.conditional.count) under the base's argument conditions, \(f.answeredByBase.count) answered by its explicit rules")
        lines.append("  recording run: \(r.recording.status) (exit \(r.recording.exitCode)), \(calls) syscalls seen by the supervisor in \(String(format: "%.0f", r.recording.wallMs)) ms")
        if r.recording.status != "ok" {
            lines.append("  note: the workload itself did not succeed; the profile reproduces that run, so fix the workload first")
        }
        lines.append("  not allowed by the base: \(f.beyondBase.isEmpty ? "none" : f.beyondBase.joined(separator: ", "))")
        if !f.answeredByBase.isEmpty { lines.append("  answered by the base's explicit rules (kept): \(f.answeredByBase.joined(separator: ", "))") }
        lines.append("  DANGEROUS, denied and not learned: \(f.dangerous.isEmpty ? "none" : f.dangerous.map { "\($0.syscall) ×\($0.count)" }.joined(separator: ", "))")
        if !f.outsideConditions.isEmpty {
            lines.append("  denied by the base's argument conditions (not learned): " + f.outsideConditions.map {
                "\($0.syscall) ×\($0.count) (first args \($0.firstArgs.prefix(3).map { "0x" + String($0, radix: 16) }.joined(separator: ", ")))"
            }.joined(separator: ", "))
        }
        if let v = r.verify {
            let denied = v.violations.isEmpty ? "no denials" : "denied: " + v.violations.map { "\($0.syscall) ×\($0.count)" }.joined(separator: ", ")
            lines.append("  verify: a second run under the learned profile: \(v.status) (exit \(v.exitCode)), \(denied) -> \(r.verified == true ? "same as the recording run" : "DIFFERENT from the recording run")")
        }
        return lines.joined(separator: "\n") + "\n"
    }
}

/// An executor for the profile commands, with the same data directory lookup as `run`.
struct ProfileSession {
    let executor: Executor

    static func open() throws -> ProfileSession {
        do {
            let dataDirectory = try DataDirectory.locate()
            let executor = try Executor(configuration: .init(dataDirectory: dataDirectory))
            if executor.cgroupDriver.version == .none {
                writeStderr("sealbox: warning: no usable cgroups on this host; memory and pids limits are not enforced\n")
            }
            return ProfileSession(executor: executor)
        } catch {
            throw CLIFailure(message: error.description)
        }
    }

    func run(_ spec: JailSpec) async throws -> JailResult {
        do {
            return try await executor.run(spec)
        } catch {
            throw CLIFailure(message: error.description)
        }
    }
}
