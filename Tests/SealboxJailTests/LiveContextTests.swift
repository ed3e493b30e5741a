import Foundation
import Glibc
import SealboxBase
import SealboxTestSupport
import Testing
@testable import SealboxJail

/// Code contexts (`LiveContext`): an interpreter (python, node, bash) kept in a live jail between chunks.
@Suite("Live jails: code contexts", .needsRoot)
struct LiveContextTests {
    static func run(_ context: LiveContext, _ code: String, timeoutMs: Int = 20_000) async throws -> ContextChunkResult {
        try await offPool { try context.run(code, timeoutMs: timeoutMs) }
    }

    @Test("variables, imports and the working directory carry over; each chunk has its output, value and traceback")
    func statefulChunks() async throws {
        let jail = try Fixture.jail().startLiveJail(JailSpec(command: []))
        defer { jail.end() }
        let context = try LiveContext.start(in: jail, language: "python", id: "c1")
        defer { context.close() }
        let first = try await Self.run(context, "import os\nx = 41\nprint('hello')\nos.mkdir('sub'); os.chdir('sub')\nx + 1")
        #expect(first.value == "42" && first.stdout == "hello\n" && first.error == nil, "\(first)")
        let second = try await Self.run(context, "import subprocess; subprocess.run(['sh', '-c', 'echo from-child; echo oops >&2'])\nos.getcwd()")
        #expect(second.value == "'/work/sub'" && second.stdout == "from-child\n" && second.stderr == "oops\n", "\(second)")
        let failing = try await Self.run(context, "def f():\n    return 1 / 0\nf()")
        #expect(failing.error?.name == "ZeroDivisionError" && failing.value == nil, "\(failing)")
        #expect(failing.error?.traceback.contains("line 2, in f") == true && failing.error?.traceback.contains("<string>") == false,
                "the chunk's frames only: \(failing.error?.traceback ?? "")")
        let none = try await Self.run(context, "x = None\nx")
        #expect(none.value == nil && none.error == nil)
        // Many chunks in a row keep one namespace.
        _ = try await Self.run(context, "n = 0")
        for _ in 0..<1000 { _ = try await Self.run(context, "n += 1") }
        #expect(try await Self.run(context, "n").value == "1000")
    }

    @Test("a chunk past its timeout is interrupted and the context lives on; one that ignores SIGINT ends it, saying so")
    func timeouts() async throws {
        let jail = try Fixture.jail().startLiveJail(JailSpec(command: []))
        defer { jail.end() }
        let context = try LiveContext.start(in: jail, language: "python", id: "c2")
        defer { context.close() }
        _ = try await Self.run(context, "kept = 'yes'")
        let spinning = try await Self.run(context, "while True: pass", timeoutMs: 300)
        #expect(spinning.timedOut && spinning.error?.name == "KeyboardInterrupt", "\(spinning)")
        #expect(try await Self.run(context, "kept").value == "'yes'", "the context survived its interrupt")
        await #expect(throws: JailError.self) {
            _ = try await Self.run(context, "import signal, time\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True: time.sleep(0.01)", timeoutMs: 200)
        }
        #expect(context.endReason?.contains("did not stop on SIGINT") == true, "\(context.endReason ?? "")")
        await #expect(throws: JailError.self) { _ = try await Self.run(context, "1") }
        // The jail itself is fine, and a new context starts fresh.
        let fresh = try LiveContext.start(in: jail, language: "python", id: "c3")
        defer { fresh.close() }
        #expect(try await Self.run(fresh, "'kept' in dir()").value == "False")
    }

    @Test("an interpreter that exits ends its context with its exit code; a language not offered is refused")
    func crashes() async throws {
        let jail = try Fixture.jail().startLiveJail(JailSpec(command: []))
        defer { jail.end() }
        let context = try LiveContext.start(in: jail, language: "python", id: "c4")
        await #expect(throws: JailError.self) { _ = try await Self.run(context, "import os; os._exit(3)") }
        #expect(context.endReason == "its interpreter exited with code 3", "\(context.endReason ?? "")")
        #expect(jail.runningCommands == 0, "its place is free")
        #expect(throws: JailError.self) { _ = try LiveContext.start(in: jail, language: "cobol", id: "c5") }
    }

    @Test("node: one global scope across chunks, output of the process and its children, promises awaited, errors with their stack, interrupts")
    func node() async throws {
        let jail = try Fixture.jail().startLiveJail(JailSpec(command: []))
        defer { jail.end() }
        let context = try LiveContext.start(in: jail, language: "node", id: "n1")
        defer { context.close() }
        let first = try await Self.run(context, "let x = 41; console.log('hello'); x + 1")
        #expect(first.value == "42" && first.stdout == "hello\n" && first.error == nil, "\(first)")
        let child = try await Self.run(context, "require('child_process').execSync('echo out; echo err >&2', {stdio: 'inherit'}); x")
        #expect(child.value == "41" && child.stdout == "out\n" && child.stderr == "err\n", "\(child)")
        let awaited = try await Self.run(context, "new Promise((resolve) => setTimeout(() => resolve({ n: x }), 20))")
        #expect(awaited.value == "{ n: 41 }", "\(awaited)")
        let stdin = try await Self.run(context, "require('fs').readFileSync(0).length")
        #expect(stdin.value == "0", "stdin is empty, the channel is elsewhere: \(stdin)")
        let failing = try await Self.run(context, "function f() { throw new TypeError('bad ' + x) }\nf()")
        #expect(failing.error?.name == "TypeError" && failing.error?.value == "bad 41", "\(failing)")
        #expect(failing.error?.traceback.contains("<chunk>:1") == true && failing.error?.traceback.contains("[eval]") == false,
                "\(failing.error?.traceback ?? "")")
        let spinning = try await Self.run(context, "while (true) {}", timeoutMs: 300)
        #expect(spinning.timedOut && spinning.error != nil, "\(spinning)")
        #expect(try await Self.run(context, "process.chdir('/tmp'); x").value == "41", "the context survived its interrupt")
        #expect(try await Self.run(context, "process.cwd()").value == "'/tmp'")
        await #expect(throws: JailError.self) { _ = try await Self.run(context, "process.exit(5)") }
        #expect(context.endReason == "its interpreter exited with code 5", "\(context.endReason ?? "")")
    }

    @Test("bash: variables and cd carry over, each chunk answers its exit status, stdin is empty, a foreground command is interrupted")
    func bash() async throws {
        let jail = try Fixture.jail().startLiveJail(JailSpec(command: []))
        defer { jail.end() }
        let context = try LiveContext.start(in: jail, language: "bash", id: "b1")
        defer { context.close() }
        let first = try await Self.run(context, "x=41; mkdir -p sub; cd sub; echo hi; echo oops >&2")
        #expect(first.stdout == "hi\n" && first.stderr == "oops\n" && first.exitCode == 0 && first.value == nil, "\(first)")
        let second = try await Self.run(context, "echo $((x + 1)); pwd; false")
        #expect(second.stdout == "42\n/work/sub\n" && second.exitCode == 1, "\(second)")
        let stdin = try await Self.run(context, "cat; echo done")
        #expect(stdin.stdout == "done\n" && stdin.exitCode == 0, "\(stdin)")
        let sleeping = try await Self.run(context, "sleep 30", timeoutMs: 300)
        #expect(sleeping.timedOut && sleeping.exitCode == 130, "\(sleeping)")
        #expect(try await Self.run(context, "echo $x").stdout == "41\n", "the shell survived the interrupt")
        let broken = try await Self.run(context, "if then")
        #expect(broken.exitCode == 2 && broken.stderr.contains("syntax error"), "\(broken)")
        await #expect(throws: JailError.self) { _ = try await Self.run(context, "exit 4") }
        #expect(context.endReason == "its interpreter exited with code 4", "\(context.endReason ?? "")")
        await #expect(throws: JailError.self) { _ = try await Self.run(context, "echo \u{0}") }
    }

    @Test("a chunk that prints more than the limit answers the first MiB, marked truncated, without blocking")
    func bigOutput() async throws {
        let jail = try Fixture.jail().startLiveJail(JailSpec(command: []))
        defer { jail.end() }
        let context = try LiveContext.start(in: jail, language: "python", id: "p9")
        defer { context.close() }
        let big = try await Self.run(context, "import sys\nfor _ in range(48): sys.stdout.write('y' * 65536)\n'done'")
        #expect(big.value == "'done'" && big.stdoutTruncated && big.stdout.utf8.count == LiveContext.outputLimit, "\(big.stdout.utf8.count)")
        let small = try await Self.run(context, "print('next')")
        #expect(small.stdout == "next\n" && !small.stdoutTruncated)
    }

    /// The real library (Debian's python3-matplotlib, installed by scripts/setup.sh): a chunk
    /// that leaves a figure open gets it back as a PNG, with the Agg backend a jail has.
    @Test("a real matplotlib figure comes back as a PNG")
    func matplotlibFigure() async throws {
        let jail = try Fixture.jail().startLiveJail(JailSpec(command: []))
        defer { jail.end() }
        let context = try LiveContext.start(in: jail, language: "python", id: "m1", environment: [("MPLBACKEND", "Agg")])
        defer { context.close() }
        // The first import builds matplotlib's font cache: give it time.
        let drew = try await Self.run(context, "import matplotlib.pyplot as plt\nplt.plot([1, 3, 2])\nplt.title('sealbox')\n'drawn'", timeoutMs: 120_000)
        #expect(drew.error == nil && drew.value == "'drawn'", "\(drew.error?.traceback ?? "") \(drew.stderr)")
        let png = try #require(drew.display.first, "\(drew)")
        #expect(png.mime == "image/png" && drew.display.count == 1)
        let bytes = try #require(Data(base64Encoded: png.data))
        #expect(bytes.starts(with: [0x89, 0x50, 0x4E, 0x47]) && bytes.count > 1000, "\(bytes.prefix(8))")
        #expect(try await Self.run(context, "len(plt.get_fignums())").value == "0", "closed once sent")
    }

    /// A stand-in `matplotlib.pyplot` in /work (the same calls:
    /// get_fignums, figure(n).savefig(buffer, format="png"), close("all")) drives the
    /// driver's figure path, so the chunk's PNGs, their order and the closing are checked.
    @Test("figures left open by a chunk come back as PNGs, once")
    func figures() async throws {
        let stub = """
            import sys, types
            _open = {}
            class _Figure:
                def __init__(self, n): self.n = n
                def savefig(self, buffer, format):
                    assert format == "png"
                    buffer.write(b"\\x89PNG-figure-%d" % self.n)
            def figure(n=None):
                n = n or len(_open) + 1
                _open[n] = _Figure(n)
                return _open[n]
            def get_fignums(): return sorted(_open)
            def close(which): _open.clear()
            """
        var spec = JailSpec(command: [])
        spec.files = [SeedFile(name: "pyplot_stub.py", contents: Array(stub.utf8))]
        let jail = try Fixture.jail().startLiveJail(spec)
        defer { jail.end() }
        let context = try LiveContext.start(in: jail, language: "python", id: "c6")
        defer { context.close() }
        let drew = try await Self.run(context, """
            import sys, types, pyplot_stub
            sys.modules["matplotlib"] = types.ModuleType("matplotlib")
            sys.modules["matplotlib.pyplot"] = pyplot_stub
            pyplot_stub.figure(); pyplot_stub.figure()
            """)
        #expect(drew.error == nil, "\(drew)")
        #expect(drew.display.map(\.mime) == ["image/png", "image/png"])
        let decoded = drew.display.compactMap { Data(base64Encoded: $0.data).map { [UInt8]($0) } }
        #expect(decoded == [[0x89] + Array("PNG-figure-1".utf8), [0x89] + Array("PNG-figure-2".utf8)], "\(decoded)")
        #expect(try await Self.run(context, "1").display.isEmpty, "closed after they were sent")
    }
}
