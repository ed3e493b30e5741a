import Foundation
import SealboxTestSupport
import Testing
@testable import SealboxBroker
import SealboxBase
import SealboxLedger

#if canImport(Glibc)
import Glibc
#endif

private let apiKey = "cmd-SEALBOX-TEST-SECRET-5d1e"

/// command tools: posix_spawn, no shell, declared environment only.
@Suite struct CommandToolTests {
    /// A jail's value that starts an argv element with "-" would be an option to the program
    /// (git, as root, wrote a host file through `--output=`): refused, unless the operator
    /// declares the argument an operand, and then the options end with `--` before it.
    @Test func argumentsThatLookLikeOptionsAreRefusedOrFollowDoubleDash() async throws {
        let (runner, tool) = try ToolTestSupport.tool("show", """
        tools:
          show:
            kind: command
            argv: [/bin/echo, "{flag}", "x-{tail}"]
            args: { flag: string, tail: string }
            effect: read
        """)
        let refused = await ToolTestSupport.toolError { () async throws(ToolError) in
            try await runner.run(tool, args: ["flag": .string("--output=/etc/x"), "tail": .string("-y")], idempotencyKey: "k")
        }
        #expect(refused?.code == .badRequest && refused?.message.contains("argument \"flag\" starts with \"-\"") == true, "\(String(describing: refused))")
        // Not at the start of an element: harmless, passed as it is.
        let fine = try await runner.run(tool, args: ["flag": .string("plain"), "tail": .string("-y")], idempotencyKey: "k")
        #expect(ToolTestSupport.field(fine.result, "stdout") == .string("plain x--y\n"))
        let (operandRunner, operandTool) = try ToolTestSupport.tool("show", """
        tools:
          show:
            kind: command
            argv: [/bin/echo, "-n", "{path}"]
            args: { path: { type: string, positional: true } }
            effect: read
        """)
        let operand = try await operandRunner.run(operandTool, args: ["path": .string("--help")], idempotencyKey: "k")
        #expect(operand.target == "/bin/echo -n -- --help", "\(operand.target)")
        #expect(ToolTestSupport.field(operand.result, "stdout") == .string("-- --help"))
    }

    /// A result whose JSON is larger than the client reads is replaced by a note of its size
    /// (the effect log keeps it), so the jail never gets `bad_response` for a sealed call.
    @Test func answersLargerThanALineAreReplacedByTheirSize() throws {
        let big = String(repeating: "\u{1}", count: 300_000)  // six bytes each in JSON
        let response = CallResponse.success(.object(["stdout": .string(big)]), EffectInfo(seq: 7, replayed: false))
        let line = response.encodedLine()
        #expect(line.count <= CallResponse.maxLineBytes)
        let decoded = try JSONDecoder().decode(CallResponse.self, from: line)
        #expect(decoded.ok && decoded.effect?.seq == 7)
        #expect(decoded.result?.objectValue?["answer_too_large"] == .bool(true))
        let small = CallResponse.success(.object(["stdout": .string("hi")]), EffectInfo(seq: 8, replayed: false))
        // A small answer goes out as it is (compared decoded: dictionary order is not stable).
        #expect(try JSONDecoder().decode(CallResponse.self, from: small.encodedLine()) == small)
    }

    @Test func argumentsArriveAsLiteralArgvElementsWithoutAShell() async throws {
        let (runner, tool) = try ToolTestSupport.tool("say", """
        tools:
          say:
            kind: command
            argv: ["/usr/bin/printf", "%s\\\\n", "{a}", "prefix-{b}", "{n}"]
            args: { a: string, b: string, n: integer }
            effect: read
        """)
        let hostile = "; rm -rf / #"
        let tricky = "$(id) `id` | cat > /tmp/x && echo '\"*"
        let outcome = try await runner.run(tool, args: ["a": .string(hostile), "b": .string(tricky), "n": .number(7)], idempotencyKey: "k")
        #expect(ToolTestSupport.field(outcome.result, "exit_code") == .number(0))
        #expect(ToolTestSupport.field(outcome.result, "signal") == .null)
        #expect(ToolTestSupport.field(outcome.result, "stdout") == .string("\(hostile)\nprefix-\(tricky)\n7\n"))
        #expect(ToolTestSupport.field(outcome.result, "stderr") == .string(""))
        #expect(outcome.target == #"/usr/bin/printf '%s\n' '; rm -rf / #' 'prefix-$(id) `id` | cat > /tmp/x && echo '\''"*' 7"#)
        #expect(outcome.resourceVersion == nil)
        #expect(try runner.describeTarget(tool, args: ["a": .string(hostile), "b": .string(tricky), "n": .number(7)]) == outcome.target)
    }

    @Test func environmentIsOnlyPathAndTheDeclaredVariables() async throws {
        setenv("SEALBOX_TEST_HOST_SECRET", "host-value-must-not-leak", 1)
        defer { unsetenv("SEALBOX_TEST_HOST_SECRET") }
        let (runner, tool) = try ToolTestSupport.tool("show_env", """
        secrets:
          dns_key: { env: DNS_KEY }
        tools:
          show_env:
            kind: command
            argv: [/usr/bin/env]
            env:
              API_KEY: "{secret:dns_key}"
              MODE: "mode-{mode}"
            args: { mode: { type: string, enum: [fast, slow] } }
            effect: read
        """, environment: ["DNS_KEY": apiKey])
        let outcome = try await runner.run(tool, args: ["mode": .string("fast")], idempotencyKey: "k")
        let stdout = ToolTestSupport.field(outcome.result, "stdout")?.stringValue ?? ""
        let lines = stdout.split(separator: "\n").map(String.init).sorted()
        // The command got the secret; its output, which goes back to a jail, has it redacted.
        #expect(lines == ["API_KEY=[redacted:dns_key]", "MODE=mode-fast", "PATH=/usr/bin:/bin"])
        #expect(!stdout.contains(apiKey))
        #expect(!stdout.contains("host-value-must-not-leak"))
        #expect(!outcome.target.contains(apiKey))
        #expect(outcome.target == "/usr/bin/env")
    }

    @Test func exitCodeStdoutAndStderrAreReturned() async throws {
        let (runner, tool) = try ToolTestSupport.tool("fail", """
        tools:
          fail:
            kind: command
            argv: [/bin/sh, -c, "echo out; echo err >&2; exit {code}", sh]
            args: { code: { type: integer, minimum: 0, maximum: 255 } }
            effect: idempotent
        """)
        let outcome = try await runner.run(tool, args: ["code": .number(3)], idempotencyKey: "k")
        #expect(outcome.result == .object([
            "exit_code": .number(3), "signal": .null, "stdout": .string("out\n"), "stderr": .string("err\n"),
            "stdout_truncated": .bool(false), "stderr_truncated": .bool(false),
        ]))
    }

    @Test func aSignalIsReported() async throws {
        let (runner, tool) = try ToolTestSupport.tool("die", """
        tools:
          die: { kind: command, argv: [/bin/sh, -c, "kill -TERM $$"], effect: read }
        """)
        let outcome = try await runner.run(tool, args: [:], idempotencyKey: "k")
        #expect(ToolTestSupport.field(outcome.result, "exit_code") == .number(Double(128 + SIGTERM)))
        #expect(ToolTestSupport.field(outcome.result, "signal") == .number(Double(SIGTERM)))
    }

    @Test func timeoutKillsTheProcessGroup() async throws {
        let dir = try TemporaryDirectory.make("tools")
        defer { TemporaryDirectory.remove(dir) }
        let (runner, tool) = try ToolTestSupport.tool("hang", """
        tools:
          hang:
            kind: command
            argv: [/bin/sh, -c, "sleep 90 & echo $! > {dir}/child.pid; sleep 90"]
            args: { dir: string }
            effect: idempotent
            timeout: 500ms
        """)
        let start = ContinuousClock.now
        let failure = await ToolTestSupport.toolError { () async throws(ToolError) in
            try await runner.run(tool, args: ["dir": .string(dir)], idempotencyKey: "k")
        }
        let elapsed = ContinuousClock.now - start
        let error = try #require(failure)
        #expect(error.code == .toolFailed)
        #expect(error.happened == nil)
        #expect(error.message.hasSuffix("timed out after 500ms (killed)"), "\(error.message)")
        // The command would run for 90 s; ending far earlier shows the timeout killed it (the
        // bound is loose on purpose: the whole suite on a 2-core machine delays wake-ups by
        // tens of seconds at times).
        #expect(elapsed >= .milliseconds(450) && elapsed < .seconds(60), "\(elapsed)")

        // The background child in the same process group is gone too (or a zombie awaiting init).
        let pidText = try String(contentsOfFile: dir + "/child.pid", encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        let pid = try #require(Int32(pidText))
        var gone = false
        for _ in 0..<100 {
            if Self.isGoneOrZombie(pid) { gone = true; break }
            usleep(10_000)
        }
        #expect(gone, "background child \(pid) survived the timeout")
    }

    static func isGoneOrZombie(_ pid: Int32) -> Bool {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8) else { return true }
        guard let close = stat.lastIndex(of: ")") else { return true }
        let state = stat[stat.index(close, offsetBy: 2)]
        return state == "Z" || state == "X"
    }

    @Test func outputIsCappedAndTheProgramStillFinishes() async throws {
        let (runner, tool) = try ToolTestSupport.tool("loud", """
        tools:
          loud:
            kind: command
            argv: [/bin/sh, -c, "head -c 300000 /dev/zero | tr '\\\\0' x; head -c 5000 /dev/zero | tr '\\\\0' e >&2; echo done >&2"]
            effect: read
            max_response_bytes: 1K
        """)
        let outcome = try await runner.run(tool, args: [:], idempotencyKey: "k")
        #expect(ToolTestSupport.field(outcome.result, "exit_code") == .number(0))
        #expect(ToolTestSupport.field(outcome.result, "stdout") == .string(String(repeating: "x", count: 1024)))
        #expect(ToolTestSupport.field(outcome.result, "stdout_truncated") == .bool(true))
        #expect(ToolTestSupport.field(outcome.result, "stderr") == .string(String(repeating: "e", count: 1024)))
        #expect(ToolTestSupport.field(outcome.result, "stderr_truncated") == .bool(true))
    }

    @Test func stdinIsDevNullAndCwdIsRoot() async throws {
        let config = try ToolTestSupport.config("""
        tools:
          cat: { kind: command, argv: [/bin/cat], effect: read, timeout: 5s }
          pwd: { kind: command, argv: [/bin/pwd], effect: read }
          tmp: { kind: command, argv: [/bin/pwd], cwd: /tmp, effect: read }
        """)
        let runner = ToolRunner(config: config)
        let cat = try await runner.run(config.tools["cat"]!, args: [:], idempotencyKey: "k")
        #expect(ToolTestSupport.field(cat.result, "exit_code") == .number(0))
        #expect(ToolTestSupport.field(cat.result, "stdout") == .string(""))
        // exit 0 with empty output: cat saw EOF at once (a terminal or pipe left open would
        // have kept it waiting until the 5 s timeout killed it, a tool_failed error).
        let pwd = try await runner.run(config.tools["pwd"]!, args: [:], idempotencyKey: "k")
        #expect(ToolTestSupport.field(pwd.result, "stdout") == .string("/\n"))
        let tmp = try await runner.run(config.tools["tmp"]!, args: [:], idempotencyKey: "k")
        #expect(ToolTestSupport.field(tmp.result, "stdout") == .string("/tmp\n"))
    }

    @Test func noDescriptorsLeakIntoTheCommand() async throws {
        // Hold an extra descriptor open in this process while the command runs.
        let extra = open("/dev/null", O_RDONLY)
        defer { close(extra) }
        let (runner, tool) = try ToolTestSupport.tool("fds", """
        tools:
          fds: { kind: command, argv: [/bin/sh, -c, "ls /proc/$$/fd"], effect: read }
        """)
        let outcome = try await runner.run(tool, args: [:], idempotencyKey: "k")
        #expect(ToolTestSupport.field(outcome.result, "stdout") == .string("0\n1\n2\n"))
    }

    @Test func aProgramThatVanishedIsToolFailedAndDidNotHappen() async throws {
        let dir = try TemporaryDirectory.make("tools")
        defer { TemporaryDirectory.remove(dir) }
        let program = dir + "/tool.sh"
        try Data("#!/bin/sh\necho hi\n".utf8).write(to: URL(fileURLWithPath: program))
        chmod(program, 0o755)
        let (runner, tool) = try ToolTestSupport.tool("t", """
        tools:
          t: { kind: command, argv: ["\(program)"], effect: irreversible }
        """)
        let first = try await runner.run(tool, args: [:], idempotencyKey: "k")
        #expect(ToolTestSupport.field(first.result, "stdout") == .string("hi\n"))
        unlink(program)
        let failure = await ToolTestSupport.toolError { () async throws(ToolError) in
            try await runner.run(tool, args: [:], idempotencyKey: "k")
        }
        #expect(failure == ToolError(.toolFailed, "\(program): cannot start \(program): No such file or directory", happened: false))
    }

    @Test func nulInAnArgumentIsRefused() async throws {
        let (runner, tool) = try ToolTestSupport.tool("echo", """
        tools:
          echo: { kind: command, argv: [/bin/echo, "{text}"], args: { text: string }, effect: read }
        """)
        let failure = await ToolTestSupport.toolError { () async throws(ToolError) in
            try await runner.run(tool, args: ["text": .string("a\0b")], idempotencyKey: "k")
        }
        #expect(failure == ToolError(.badRequest, "argument \"text\" contains NUL", happened: false))
    }

    @Test func cancellingTheTaskKillsTheCommand() async throws {
        let (runner, tool) = try ToolTestSupport.tool("hang", """
        tools:
          hang: { kind: command, argv: [/usr/bin/sleep, "90"], effect: read, timeout: 120s }
        """)
        let start = ContinuousClock.now
        let task = Task { () async throws(ToolError) -> ToolOutcome in
            try await runner.run(tool, args: [:], idempotencyKey: "k")
        }
        try await Task.sleep(for: .milliseconds(200))
        task.cancel()
        let result = await task.result
        guard case .failure(let error) = result else { Issue.record("not cancelled"); return }
        #expect(error as? ToolError == ToolError(.toolFailed, "/usr/bin/sleep 90: cancelled (killed)", happened: nil))
        // sleep 90 would still be running: ending well before shows the kill.
        #expect(ContinuousClock.now - start < .seconds(60))
    }
}
