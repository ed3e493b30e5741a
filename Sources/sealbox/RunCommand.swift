import SealboxBase
import ArgumentParser
import SealboxTracing
import Foundation
import Glibc
import SealboxProfiles
import SealboxBroker
import SealboxJail
import SealboxLedger
import SealboxRuntime

struct RunCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run a command or a code snippet in a fresh jail.",
        discussion: """
            Examples:
              sealbox run --lang python --code 'print(6*7)' --json
              sealbox run --lang bash --file script.sh --timeout 2.5 --memory 128M
              sealbox run --env GREETING=hi -- /bin/sh -c 'echo $GREETING'

            With --lang, the snippet is written to /work/main.{py,js,sh} and run
            with the interpreter; arguments after -- are passed to it. Without
            --lang, the words after -- are the command. Sizes take K, M, G
            suffixes (binary). The jail sees only PATH, HOME=/work, LANG and the
            --env values.

            --json prints one result object: id, status (ok, exit_nonzero,
            signaled, timeout, memory_limit, pids_limit, output_limit,
            seccomp_violation, spawn_failed), exit_code, signal, stdout, stderr,
            *_truncated, *_bytes, wall_ms, cpu_ms, peak_memory_bytes, violations,
            limits, profile, cgroup. A session step (--session ID --step KEY)
            adds replayed, checkpoint, workspace (snapshot, files, bytes,
            limit_bytes, full) and, when a call waited on a decision, blocked
            (the step is then not sealed). See `sealbox session --help`.
            """
    )

    @OptionGroup var workload: WorkloadOptions

    @Option(name: .long, help: "seccomp profile: a name in profiles/ or a path to an OCI JSON profile.")
    var profile: String = "default"

    @Option(name: .long, help: "Broker config (YAML): start a broker for this run with these tools and secrets.")
    var tools: String?

    @Option(name: .long, help: "Grant this tool to the run (repeatable; needs --tools or --broker).")
    var allow: [String] = []

    @Option(name: .long, help: "Use a running broker's control socket instead of starting one.")
    var broker: String?

    @Option(name: .long, help: "Session id: runs of one agent session share their effects (replay after a crash).")
    var session: String?

    @Option(name: .long, help: "Run as this step of --session: a sealed step is replayed, not re-run; /work is the session's workspace, carried from step to step.")
    var step: String?

    @Option(name: .long, help: "Checkpoint store for --step (default: checkpoints.db in the state directory).")
    var checkpoints: String?

    @OptionGroup var state: StateOptions

    @Flag(name: .long, help: "Print the result as one JSON object on stdout.")
    var json = false

    func run() async throws {
        let spec = try JailSpecBuilder(options: workload, profile: profile).build()
        let dataDirectory: String
        do {
            dataDirectory = try DataDirectory.locate()
        } catch {
            throw CLIFailure(message: error.description)
        }
        // Only a step reads the checkpoint store: a plain run never refuses an old directory.
        let checkpointsPath = step == nil ? state.layout.checkpointsPath : try state.checkpointsPath(explicit: checkpoints)
        let pipeline = RunPipeline(checkpointsPath: checkpointsPath, dataDirectory: dataDirectory) { () throws(JailError) in
            let executor = try Executor(configuration: .init(dataDirectory: dataDirectory))
            if executor.cgroupDriver.version == .none {
                writeStderr("sealbox: warning: no usable cgroups on this host; memory and pids limits are not enforced\n")
            }
            return executor
        }
        // A broker started here writes the state directory's effect log when --state-dir is
        // given (as `serve --state-dir` does), the config's `ledger:` otherwise.
        let plan = RunPlan(spec: spec, session: session, step: step, allow: allow, brokerConfigPath: tools, brokerControlSocket: broker,
                           brokerLedgerPath: state.stateDir == nil ? nil : state.layout.ledgerPath)
        // Traced (and exported before exit) when the OTEL_* variables ask for it.
        let ran = try await TracingExport.whileRunning(serviceName: "sealbox") { () async -> Result<RunResult, RuntimeError> in
            do throws(RuntimeError) {
                return .success(try await pipeline.run(plan))
            } catch {
                return .failure(error)
            }
        }
        let result: RunResult
        do {
            result = try ran.get()
        } catch {
            throw CLIFailure(message: error.message)
        }
        ResultPrinter.print(result, json: json)
        throw ExitCode(result.exitCode)
    }
}

/// Turns the flags into a `JailSpec`, with a readable error for every bad input.
struct JailSpecBuilder {
    let options: WorkloadOptions
    /// The seccomp profile the command chose (`--profile`, learn's `--base`, test's PROFILE).
    let profile: String

    func build() throws -> JailSpec {
        let o = options
        let limits = try o.limits.limits()

        let environment = try environmentPairs(o.env, flag: "--env")

        var spec = JailSpec(command: [], environment: environment, limits: limits, profile: ProfileReference(commandLine: profile))
        spec.stdin = try Self.stdin(o.stdinFile)
        if let rootfs = o.rootfs { spec.rootfs = .directory(rootfs) }

        if let lang = o.lang {
            guard let language = SnippetLanguage(rawValue: lang) else {
                throw CLIFailure(message: "unknown --lang \"\(lang)\" (use \(SnippetLanguage.names))")
            }
            let source: [UInt8]
            switch (o.file, o.code) {
            case (nil, nil):
                throw CLIFailure(message: "--lang \(lang) needs --file PATH or --code TEXT")
            case (.some, .some):
                throw CLIFailure(message: "give either --file or --code, not both")
            case (let path?, nil):
                guard let data = FileManager.default.contents(atPath: path) else {
                    throw CLIFailure(message: "--file \(path): no such readable file")
                }
                source = [UInt8](data)
            case (nil, let text?):
                source = Array(text.utf8)
            }
            let program = language.program(code: source, arguments: o.command)
            spec.files = [program.file]
            spec.command = program.command
        } else {
            guard o.file == nil, o.code == nil else {
                throw CLIFailure(message: "--file and --code need --lang (python, node, bash or sh)")
            }
            guard !o.command.isEmpty else {
                throw CLIFailure(message: "nothing to run: give --lang with --code/--file, or a command after --")
            }
            spec.command = o.command
        }
        return spec
    }
}

extension JailSpecBuilder {
    /// The Unix convention: `--stdin-file -` is sealbox's own stdin, and so is a stdin that is
    /// a pipe, a file or a socket (`echo hi | sealbox run ...`, `sealbox run ... < data`); a
    /// terminal or /dev/null gives the program /dev/null, so an interactive shell never
    /// hands its keyboard to a jail that is not asking.
    static func stdin(_ stdinFile: String?, standardInput: Int32 = STDIN_FILENO) throws -> StdinSource {
        if let stdinFile {
            if stdinFile == "-" { return .descriptor(standardInput) }
            guard FileManager.default.isReadableFile(atPath: stdinFile) else {
                throw CLIFailure(message: "--stdin-file \(stdinFile): no such readable file")
            }
            return .file(stdinFile)
        }
        var st = stat()
        guard isatty(standardInput) == 0, fstat(standardInput, &st) == 0 else { return .null }
        switch st.st_mode & S_IFMT {
        case S_IFIFO, S_IFREG, S_IFSOCK: return .descriptor(standardInput)
        default: return .null
        }
    }
}

enum ResultPrinter {
    static func print(_ result: RunResult, json: Bool) {
        if json {
            JSONOutput.print(result)
            return
        }
        if result.replayed == true {
            // The output below is the sealed step's, from its checkpoint: nothing ran now.
            FileHandle.standardError.write(Data("sealbox: replayed: the step was sealed at checkpoint \(result.checkpoint.map(String.init) ?? "?") (run \(result.id)); nothing ran, the output is the sealed one\n".utf8))
        }
        FileHandle.standardOutput.write(Data(result.stdout.utf8))
        FileHandle.standardError.write(Data(result.stderr.utf8))
        if let note = summary(result) {
            FileHandle.standardError.write(Data("sealbox: \(note)\n".utf8))
        }
        for call in result.blocked ?? [] {
            FileHandle.standardError.write(Data("sealbox: step not sealed: a call waits on a decision (\(call.code)\(call.seq.map { ", seq \($0)" } ?? "")): \(call.message) Run the step again once it is decided.\n".utf8))
        }
        if let workspace = result.workspace, workspace.full {
            FileHandle.standardError.write(Data("sealbox: the session workspace is full (limit \(ByteSize.format(workspace.limitBytes))): writes to /work failed with ENOSPC; raise it with `sealbox session new --workspace-limit`\n".utf8))
        }
    }

    /// One line on stderr when something other than the program's own exit ended the run.
    static func summary(_ r: RunResult) -> String? {
        switch r.status {
        case .ok, .exitNonzero: return nil
        case .signaled: return "killed by signal \(r.signal ?? 0)"
        case .timeout: return "timed out after \(DurationText.format(milliseconds: r.limits.timeoutMs))"
        case .memoryLimit: return "memory limit (\(ByteSize.format(r.limits.memoryBytes))) exceeded: OOM-killed"
        case .pidsLimit: return "process limit (\(r.limits.pids)) reached"
        case .outputLimit: return "output truncated at \(ByteSize.format(UInt64(r.limits.outputBytes))) (stdout \(r.stdoutBytes) bytes, stderr \(r.stderrBytes) bytes)"
        case .seccompViolation:
            let killers = r.violations.filter { $0.action == "kill" }
            let foreign = Set(killers.compactMap(\.abi)).sorted().map(abiDescription)
            return "killed by seccomp profile \(r.profile)"
                + (killers.isEmpty ? "" : " for calling \(killers.map(\.syscall).joined(separator: ", "))")
                + (foreign.isEmpty ? "" : " (through \(foreign.joined(separator: " and ")), which the profile does not list)")
                + violationList(r)
        case .spawnFailed: return r.error ?? "could not start"
        case .cancelled: return r.error ?? "cancelled"
        }
    }

    /// What a violation's `abi` means, for people.
    static func abiDescription(_ abi: String) -> String {
        switch abi {
        case "x86": return "the 32-bit i386 ABI (int $0x80)"
        case "x32": return "the x32 ABI"
        default: return "the \(abi) ABI"
        }
    }

    private static func violationList(_ r: RunResult) -> String {
        let denied = r.violations.filter { $0.action != "kill" }
        return denied.isEmpty ? "" : " (denied: " + denied.map { "\($0.syscall)×\($0.count)" }.joined(separator: ", ") + ")"
    }
}
