import ArgumentParser
import AsyncHTTPClient
import Foundation
import Glibc
import NIOCore
import NIOHTTP1
import SealboxBase
import SealboxJail

/// `sealbox sandbox …`: live sandboxes on a running `sealbox serve`, over its HTTP API
/// (docs/sandboxes.md). Every subcommand is one or two requests; nothing runs locally.
struct SandboxCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sandbox",
        abstract: "Work in live sandboxes on a running sealbox server: files, commands, code contexts.",
        discussion: """
            A sandbox is a jail that stays between calls: its /work, the processes it left \
            running and its code contexts carry over. These commands are a client of \
            `sealbox serve` (--url or SEALBOX_URL; --key or SEALBOX_API_KEY, else the local \
            server's bootstrap key).

              S=$(sealbox sandbox create --memory 512M)
              sealbox sandbox files $S put data.csv data.csv
              sealbox sandbox exec $S --shell 'wc -l data.csv'
              sealbox sandbox code $S "rows = open('data.csv').read().split()"
              sealbox sandbox code $S "len(rows)"
              sealbox sandbox files $S get out.png --output out.png
              sealbox sandbox kill $S

            Exit status: exec's is the command's own (128+N when killed by signal N); code \
            exits 1 when the chunk raised (or a shell chunk's status); 125 when sealbox or the \
            server failed.
            """,
        subcommands: [SandboxCreate.self, SandboxExec.self, SandboxCode.self, SandboxFiles.self, SandboxList.self, SandboxRemove.self,
                      SandboxPause.self, SandboxResume.self, SandboxHibernate.self, SandboxWake.self, SandboxKill.self]
    )
}

/// The sandbox a subcommand works on.
struct SandboxID: ParsableArguments {
    @Argument(help: ArgumentHelp("The sandbox's id (sbx-…), as create printed it.", valueName: "sandbox"))
    var id: String

    var path: String { "/v1/sandboxes/" + ServiceClient.pathPart(id) }
}

/// `NAME=VALUE` flags as a JSON object.
func environmentObject(_ pairs: [String], flag: String) throws -> [String: String] {
    Dictionary(try environmentPairs(pairs, flag: flag).map { ($0.name, $0.value) }) { $1 }
}

/// Milliseconds of a duration flag (90s, 5m, 1500ms), at most 30 days.
func milliseconds(_ text: String?, flag: String) throws -> Int? {
    try text.map { Int(try SandboxOptions.duration($0, flag: flag, at: 1...(30 * 86_400_000))) }
}

/// Prints a reply: its JSON as the server sent it, or `line` for people.
func printReply(_ object: [String: Any], json: Bool, line: @autoclosure () -> String) {
    if json, let data = try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]) {
        writeAll(STDOUT_FILENO, data + [0x0A])
    } else {
        writeAll(STDOUT_FILENO, Array((line() + "\n").utf8))
    }
}

struct SandboxCreate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "create", abstract: "Make a sandbox; prints its id.",
        discussion: "Limits hold for everything in the sandbox together; --timeout and --output are each command's defaults.")

    @OptionGroup var service: ServiceOptions
    @OptionGroup(title: "Limits") var limits: RunLimitFlags

    @Option(name: .customLong("profile"), help: "A seccomp profile of the server's catalog (GET /v1/profiles).")
    var profile: String?

    @Option(name: .customLong("env"), help: ArgumentHelp("Every command's environment (repeat).", valueName: "NAME=VALUE"))
    var env: [String] = []

    @Option(name: .customLong("idle-timeout"), help: "Ended after this long with nothing running, e.g. 10m (the server's default: 5m).")
    var idleTimeout: String?

    @Option(name: .customLong("session"), help: "A session id: /work starts as its last sealed workspace, and --step commands are sealed in it.")
    var session: String?

    @Flag(name: .customLong("new-session"), help: "Make a new session for it (its id is shown with --json).")
    var newSession = false

    @Option(name: .customLong("tool"), help: ArgumentHelp("A broker tool granted for the sandbox's life (repeat).", valueName: "name"))
    var tools: [String] = []

    @Flag(name: .customLong("json"), help: "Print the sandbox as JSON.")
    var json = false

    func run() async throws {
        let client = try service.client()
        var body: [String: Any] = [:]
        let asked = try limits.limits()
        var limitsObject: [String: Any] = [:]
        for key in limits.given.keys {
            switch asked[key] {
            case .whole(let value)?: limitsObject[key.rawValue] = value
            case .cores(let value)?: limitsObject[key.rawValue] = value
            case nil: break
            }
        }
        if !limitsObject.isEmpty { body["limits"] = limitsObject }
        if let profile { body["profile"] = profile }
        if !env.isEmpty { body["env"] = try environmentObject(env, flag: "--env") }
        if let idle = try milliseconds(idleTimeout, flag: "--idle-timeout") { body["idle_timeout_ms"] = idle }
        if let session { body["session"] = session }
        if newSession { body["new_session"] = true }
        if !tools.isEmpty { body["tools"] = tools }
        let made = try await client.call(.POST, "/v1/sandboxes", json: body)
        printReply(made, json: json, line: made["id"] as? String ?? "")
    }
}

struct SandboxExec: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "exec", abstract: "Run a command in a sandbox, its output as it comes; exits with its status.",
        discussion: """
            Give the command after -- (an argv: sealbox sandbox exec $S -- ls -l) or as \
            --shell LINE (for /bin/sh -c). Background processes it starts keep running until \
            the sandbox ends.
            """)

    @OptionGroup var sandbox: SandboxID
    @OptionGroup var service: ServiceOptions

    @Option(name: .customLong("shell"), help: "A line for /bin/sh -c, instead of an argv.")
    var shell: String?

    @Option(name: .customLong("cwd"), help: "Where it starts: /work or a directory below it.")
    var cwd: String?

    @Option(name: .customLong("env"), help: ArgumentHelp("Its environment, over the sandbox's (repeat).", valueName: "NAME=VALUE"))
    var env: [String] = []

    @Option(name: .customLong("stdin-file"), help: "A file whose contents are its stdin: UTF-8 text, at most 16 MiB.")
    var stdinFile: String?

    @Option(name: .customLong("timeout"), help: "Its wall-clock limit, e.g. 30s (default: the sandbox's).")
    var timeout: String?

    @Option(name: .customLong("step"), help: "A step key of the sandbox's session: sealed once it ran; run again, answered from the seal.")
    var step: String?

    @Flag(name: .customLong("json"), help: "Print the result object as JSON instead of the output.")
    var json = false

    @Argument(parsing: .postTerminator, help: ArgumentHelp("The command and its arguments, after --.", valueName: "command"))
    var command: [String] = []

    func run() async throws {
        let client = try service.client()
        var body: [String: Any] = [:]
        switch (shell, command.isEmpty) {
        case (let line?, true): body["shell"] = line
        case (nil, false): body["command"] = command
        case (nil, true): throw CLIFailure(message: "nothing to run: give a command after -- or --shell LINE")
        default: throw CLIFailure(message: "give either a command after -- or --shell, not both")
        }
        if let cwd { body["cwd"] = cwd }
        if !env.isEmpty { body["env"] = try environmentObject(env, flag: "--env") }
        if let stdinFile {
            guard case .success(let bytes) = SmallFile.read(stdinFile, limit: 16 << 20) else {
                throw CLIFailure(message: "--stdin-file \(stdinFile): cannot read it (at most 16 MiB)")
            }
            guard let text = String(validating: bytes, as: UTF8.self) else { throw CLIFailure(message: "--stdin-file \(stdinFile): not UTF-8 text") }
            body["stdin"] = text
        }
        if let ms = try milliseconds(timeout, flag: "--timeout") { body["timeout_ms"] = ms }
        if let step { body["step"] = step }
        let result: [String: Any]
        if json {
            result = try await client.call(.POST, sandbox.path + "/commands", json: body)
            printReply(result, json: true, line: "")
        } else {
            result = try await Self.stream(client, sandbox.path + "/commands", body)
        }
        throw ExitCode(Self.exitStatus(result))
    }

    /// Sends the command with `Accept: application/x-ndjson` and copies its output to this
    /// process's stdout and stderr as it comes; returns its result object.
    static func stream(_ client: ServiceClient, _ path: String, _ body: [String: Any]) async throws -> [String: Any] {
        let response = try await client.open(try client.request(.POST, path, json: body, accept: "application/x-ndjson"))
        var pending: [UInt8] = []
        for try await part in response.body {
            pending += part.readableBytesView
            while let newline = pending.firstIndex(of: 0x0A) {
                let line = Array(pending[..<newline])
                pending.removeSubrange(...newline)
                guard let event = try? JSONSerialization.jsonObject(with: Data(line)) as? [String: Any] else { continue }
                switch event["event"] as? String {
                case "stdout", "stderr":
                    let fd = event["event"] as? String == "stdout" ? STDOUT_FILENO : STDERR_FILENO
                    if let text = event["data"] as? String {
                        writeAll(fd, Array(text.utf8))
                    } else if let encoded = event["data_base64"] as? String, let bytes = Data(base64Encoded: encoded) {
                        writeAll(fd, bytes)
                    }
                case "result":
                    let result = event["result"] as? [String: Any] ?? [:]
                    if result["replayed"] as? Bool == true {
                        // Nothing ran, so nothing streamed: the sealed output is the answer.
                        writeAll(STDOUT_FILENO, Array((result["stdout"] as? String ?? "").utf8))
                        writeAll(STDERR_FILENO, Array((result["stderr"] as? String ?? "").utf8))
                    }
                    return result
                case "error":
                    throw ServiceClient.failure(.init(status: 500, body: (try? JSONSerialization.data(withJSONObject: event)) ?? Data()))
                default:
                    continue
                }
            }
        }
        throw CLIFailure(message: "the server ended the stream without the command's result")
    }

    /// `sealbox run`'s convention: the program's code, 128+N when killed by signal N, 125
    /// when it never ran. A status other than ok or a signal is said on stderr.
    static func exitStatus(_ result: [String: Any]) -> Int32 {
        let status = result["status"] as? String ?? "unknown"
        if result["replayed"] as? Bool == true {
            writeStderr("sealbox: step replayed from checkpoint \(result["checkpoint"] as? Int ?? 0); nothing ran\n")
        }
        if !["ok", "exited", "signaled", "nonzero_exit"].contains(status) {
            writeStderr("sealbox: the command ended with status \(status)\n")
        }
        return Int32(clamping: result["exit_code"] as? Int ?? 125)
    }
}

struct SandboxCode: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "code", abstract: "Run a chunk of code in a sandbox's code context (python, node or bash, kept between chunks).",
        discussion: """
            Without --context, the sandbox's first context of --language is used (made on \
            first use). Prints what the chunk printed, then its value; a traceback goes to \
            stderr and the exit status is 1 (a bash chunk: its exit status).
            """)

    @OptionGroup var sandbox: SandboxID
    @OptionGroup var service: ServiceOptions

    @Argument(help: ArgumentHelp("The code; - or none reads it from stdin (or give --file).", valueName: "code"))
    var code: String?

    @Option(name: .customLong("file"), help: "Read the code from this file.")
    var file: String?

    @Option(name: .customLong("language"), help: "python (default), node or bash: which context, without --context.")
    var language: String = "python"

    @Option(name: .customLong("context"), help: "A context id (from --json); default: the sandbox's first of --language.")
    var context: String?

    @Option(name: .customLong("timeout"), help: "Interrupt the chunk after this long, e.g. 30s (the context lives on).")
    var timeout: String?

    @Option(name: .customLong("step"), help: "A step key of the sandbox's session: sealed once it ran; run again, answered from the seal.")
    var step: String?

    @Flag(name: .customLong("json"), help: "Print the chunk's result object as JSON.")
    var json = false

    func run() async throws {
        let client = try service.client()
        let source: String
        if let file {
            guard case .success(let bytes) = SmallFile.read(file, limit: 4 << 20), let text = String(validating: bytes, as: UTF8.self) else {
                throw CLIFailure(message: "--file \(file): cannot read it as UTF-8 text of at most 4 MiB")
            }
            source = text
        } else if let code, code != "-" {
            source = code
        } else {
            guard case .success(let bytes) = SmallFile.read(descriptor: STDIN_FILENO, limit: 4 << 20), let text = String(validating: bytes, as: UTF8.self) else {
                throw CLIFailure(message: "the code on stdin is not UTF-8 text of at most 4 MiB")
            }
            source = text
        }
        let contextID: String
        if let context { contextID = context } else { contextID = try await Self.context(for: language, in: sandbox, client) }
        var body: [String: Any] = ["code": source]
        if let ms = try milliseconds(timeout, flag: "--timeout") { body["timeout_ms"] = ms }
        if let step { body["step"] = step }
        var result = try await client.call(.POST, sandbox.path + "/contexts/" + ServiceClient.pathPart(contextID) + "/code", json: body)
        if json {
            result["context"] = contextID
            printReply(result, json: true, line: "")
        } else {
            writeAll(STDOUT_FILENO, Array((result["stdout"] as? String ?? "").utf8))
            writeAll(STDERR_FILENO, Array((result["stderr"] as? String ?? "").utf8))
            if let value = result["value"] as? String { writeAll(STDOUT_FILENO, Array((value + "\n").utf8)) }
            if let error = result["error"] as? [String: Any] { writeAll(STDERR_FILENO, Array((error["traceback"] as? String ?? "").utf8)) }
            if result["timed_out"] as? Bool == true { writeStderr("sealbox: the chunk ran past its timeout and was interrupted\n") }
            if let unsealed = result["unsealed"] as? String { writeStderr("sealbox: \(unsealed)\n") }
        }
        if let exitCode = result["exit_code"] as? Int { throw ExitCode(Int32(clamping: exitCode)) }
        if result["error"] is [String: Any] { throw ExitCode(1) }
    }

    /// The sandbox's first live context of `language`, or a new one.
    static func context(for language: String, in sandbox: SandboxID, _ client: ServiceClient) async throws -> String {
        let listed = try await client.call(.GET, sandbox.path + "/contexts")
        if let found = (listed["contexts"] as? [[String: Any]])?.first(where: { $0["language"] as? String == language && $0["state"] as? String == "running" }),
           let id = found["id"] as? String {
            return id
        }
        let made = try await client.call(.POST, sandbox.path + "/contexts", json: ["language": language])
        guard let id = made["id"] as? String else { throw CLIFailure(message: "the server made a context without an id") }
        return id
    }
}

struct SandboxFiles: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "files", abstract: "A sandbox's /work: ls, get, put, rm, mkdir, stat.",
        discussion: """
            Paths are relative to /work.
              sealbox sandbox files $S ls [DIR]
              sealbox sandbox files $S put LOCAL PATH     (streamed, any size up to the workspace)
              sealbox sandbox files $S get PATH [--output FILE]   (stdout without --output)
              sealbox sandbox files $S rm PATH [--recursive]
              sealbox sandbox files $S mkdir PATH
              sealbox sandbox files $S stat PATH
            """)

    @OptionGroup var sandbox: SandboxID

    @Argument(help: ArgumentHelp("ls, get, put, rm, mkdir or stat.", valueName: "action"))
    var action: String

    @Argument(help: ArgumentHelp("put: the local file, then the path; the others: the path.", valueName: "path"))
    var paths: [String] = []

    @OptionGroup var service: ServiceOptions

    @Option(name: .customLong("output"), help: "get: write to this file instead of stdout.")
    var output: String?

    @Flag(name: .customLong("recursive"), help: "rm: a directory with what is in it.")
    var recursive = false

    @Flag(name: .customLong("json"), help: "ls, stat: print JSON.")
    var json = false

    func run() async throws {
        let client = try service.client()
        func path(_ index: Int, _ what: String) throws -> String {
            guard paths.count > index else { throw CLIFailure(message: "files \(action) needs \(what)") }
            return paths[index]
        }
        let files = sandbox.path + "/files/"
        switch action {
        case "ls":
            let dir = paths.first ?? ""
            var after: String?
            repeat {
                var query = "?dir=" + ServiceClient.query(dir) + "&limit=1000"
                if let after { query += "&after=" + ServiceClient.query(after) }
                let page = try await client.call(.GET, sandbox.path + "/files" + query)
                for entry in page["entries"] as? [[String: Any]] ?? [] {
                    if json {
                        printReply(entry, json: true, line: "")
                    } else {
                        let kind = entry["type"] as? String ?? "?"
                        let size = entry["size"] as? Int ?? 0
                        writeAll(STDOUT_FILENO, Array("\(kind.padding(toLength: 9, withPad: " ", startingAt: 0)) \(String(size).leftPadded(12))  \(entry["name"] as? String ?? "")\n".utf8))
                    }
                }
                after = page["next"] as? String
            } while after != nil
        case "get":
            let remote = try path(0, "the path to download")
            let response = try await client.open(try client.request(.GET, files + ServiceClient.pathPart(remote)))
            let fd = output.map { open($0, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644) } ?? STDOUT_FILENO
            guard fd >= 0 else { throw CLIFailure(message: "--output \(output ?? ""): \(String(cString: strerror(errno)))") }
            defer { if output != nil { close(fd) } }
            for try await part in response.body { writeAll(fd, part.readableBytesView) }
        case "put":
            let local = try path(0, "the local file, then the path in /work")
            let remote = try path(1, "the path in /work after the local file")
            guard let handle = FileHandle(forReadingAtPath: local), let size = (try? FileManager.default.attributesOfItem(atPath: local))?[.size] as? Int else {
                throw CLIFailure(message: "\(local): no such readable file")
            }
            defer { try? handle.close() }
            var request = try client.request(.PUT, files + ServiceClient.pathPart(remote))
            request.headers.add(name: "Content-Type", value: "application/octet-stream")
            request.body = .stream(Self.chunks(of: handle), length: .known(Int64(size)))
            let stat = try await client.send(request).object()
            printReply(stat, json: json, line: "\(remote): \(stat["size"] as? Int ?? size) bytes")
        case "rm":
            let remote = try path(0, "the path to remove")
            _ = try await client.send(try client.request(.DELETE, files + ServiceClient.pathPart(remote) + (recursive ? "?recursive=true" : "")))
        case "mkdir":
            let remote = try path(0, "the directory to make")
            _ = try await client.send(try client.request(.PUT, sandbox.path + "/directories/" + ServiceClient.pathPart(remote)))
        case "stat":
            let remote = try path(0, "the path")
            let stat = try await client.call(.GET, sandbox.path + "/stat/" + ServiceClient.pathPart(remote))
            printReply(stat, json: true, line: "")
        default:
            throw CLIFailure(message: "files: the action is one of ls, get, put, rm, mkdir, stat, not \"\(Printable.text(action, limit: 32))\"")
        }
    }

    /// A local file as an upload's body, 1 MiB at a time.
    static func chunks(of handle: FileHandle) -> AsyncThrowingStream<ByteBuffer, any Error> {
        AsyncThrowingStream { continuation in
            do {
                while let data = try handle.read(upToCount: 1 << 20), !data.isEmpty {
                    continuation.yield(ByteBuffer(bytes: data))
                }
                continuation.finish()
            } catch {
                continuation.finish(throwing: error)
            }
        }
    }
}

extension String {
    func leftPadded(_ width: Int) -> String {
        count >= width ? self : String(repeating: " ", count: width - count) + self
    }
}

struct SandboxList: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "ls", abstract: "The sandboxes of your key's tenant: live, hibernated, recently ended.")

    @OptionGroup var service: ServiceOptions

    @Flag(name: .customLong("json"), help: "Print the list as JSON.")
    var json = false

    func run() async throws {
        let listed = try await service.client().call(.GET, "/v1/sandboxes")
        let sandboxes = listed["sandboxes"] as? [[String: Any]] ?? []
        if json {
            printReply(listed, json: true, line: "")
            return
        }
        writeAll(STDOUT_FILENO, Array("ID                    STATE       AGE       IDLE      SESSION\n".utf8))
        for box in sandboxes {
            let age = DurationText.format(milliseconds: box["age_ms"] as? Int ?? 0)
            let idle = DurationText.format(milliseconds: box["idle_ms"] as? Int ?? 0)
            let line = [(box["id"] as? String ?? "", 21), (box["state"] as? String ?? "", 11), (age, 9), (idle, 9)]
                .map { $0.0.padding(toLength: max($0.1, $0.0.count), withPad: " ", startingAt: 0) }.joined(separator: " ")
            writeAll(STDOUT_FILENO, Array((line + " " + (box["session"] as? String ?? "-") + "\n").utf8))
        }
    }
}

/// What the subcommands that are one POST or DELETE on a sandbox take.
struct SandboxActionOptions: ParsableArguments {
    @OptionGroup var sandbox: SandboxID
    @OptionGroup var service: ServiceOptions
    @Flag(name: .customLong("json"), help: "Print the sandbox as JSON.") var json = false
}

/// The subcommands that are one POST or DELETE on a sandbox and print it.
protocol SandboxAction: AsyncParsableCommand {
    var options: SandboxActionOptions { get }
    var method: HTTPMethod { get }
    var suffix: String { get }
}

extension SandboxAction {
    func run() async throws {
        let view = try await options.service.client().call(method, options.sandbox.path + suffix)
        var line = "\(view["id"] as? String ?? options.sandbox.id): \(view["state"] as? String ?? "?")"
        if let reason = view["end_reason"] as? String { line += " (\(reason))" }
        if let hibernated = view["hibernated"] as? [String: Any] {
            let lost = hibernated["lost"] as? [String: Any] ?? [:]
            line += ", \(hibernated["files"] as? Int ?? 0) files kept; ended: \(lost["commands"] as? Int ?? 0) commands, \(lost["contexts"] as? Int ?? 0) contexts"
        }
        printReply(view, json: options.json, line: line)
    }
}

struct SandboxRemove: SandboxAction {
    static let configuration = CommandConfiguration(
        commandName: "rm", abstract: "End a sandbox and discard its /work; with --keep-workspace, hibernate it instead (wake brings it back).")
    @OptionGroup var options: SandboxActionOptions
    @Flag(name: .customLong("keep-workspace"), help: "Keep /work (the sandbox is hibernated, not deleted).")
    var keepWorkspace = false
    var method: HTTPMethod { .DELETE }
    var suffix: String { keepWorkspace ? "?keep_workspace=true" : "" }
}

struct SandboxKill: SandboxAction {
    static let configuration = CommandConfiguration(commandName: "kill", abstract: "End a sandbox now: everything in it is killed, its /work discarded.")
    @OptionGroup var options: SandboxActionOptions
    var method: HTTPMethod { .DELETE }
    var suffix: String { "" }
}

struct SandboxPause: SandboxAction {
    static let configuration = CommandConfiguration(commandName: "pause", abstract: "Freeze a sandbox: no CPU, memory kept.")
    @OptionGroup var options: SandboxActionOptions
    var method: HTTPMethod { .POST }
    var suffix: String { "/pause" }
}

struct SandboxResume: SandboxAction {
    static let configuration = CommandConfiguration(commandName: "resume", abstract: "Thaw a paused sandbox.")
    @OptionGroup var options: SandboxActionOptions
    var method: HTTPMethod { .POST }
    var suffix: String { "/resume" }
}

struct SandboxHibernate: SandboxAction {
    static let configuration = CommandConfiguration(
        commandName: "hibernate", abstract: "Keep a sandbox's /work on the server's disk and end its jail (processes and contexts end).")
    @OptionGroup var options: SandboxActionOptions
    var method: HTTPMethod { .POST }
    var suffix: String { "/hibernate" }
}

struct SandboxWake: SandboxAction {
    static let configuration = CommandConfiguration(commandName: "wake", abstract: "Make a hibernated sandbox again from its kept /work.")
    @OptionGroup var options: SandboxActionOptions
    var method: HTTPMethod { .POST }
    var suffix: String { "/wake" }
}
