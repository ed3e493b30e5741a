import Foundation
import Glibc
import Synchronization
import SealboxTestSupport
import Testing
@testable import SealboxJail

/// The output observer of `Executor.run`: chunks arrive while the program runs, and they add
/// up to exactly the captured stdout/stderr, truncation included.
@Suite("Streaming output", .needsRoot)
struct OutputStreamTests {
    /// Chunks with the monotonic time each arrived.
    final class Collector: Sendable {
        private let chunks = Mutex<[(at: ContinuousClock.Instant, chunk: OutputChunk)]>([])

        var observer: OutputObserver {
            { chunk in self.chunks.withLock { $0.append((ContinuousClock.now, chunk)) } }
        }

        var all: [(at: ContinuousClock.Instant, chunk: OutputChunk)] { chunks.withLock { $0 } }

        func bytes(_ stream: OutputChunk.Stream) -> [UInt8] {
            all.filter { $0.chunk.stream == stream }.flatMap(\.chunk.bytes)
        }
    }

    @Test("a line printed before a sleep is observed while the program still runs")
    func live() async throws {
        let collector = Collector()
        let spec = JailSpec(command: ["/bin/sh", "-c", "echo first; echo oops >&2; sleep 1; echo second"])
        let result = try await Fixture.jail().run(spec, output: collector.observer)
        let returned = ContinuousClock.now
        #expect(result.status == .ok)
        #expect(result.stdout == "first\nsecond\n")
        let first = try #require(collector.all.first { $0.chunk.stream == .stdout })
        #expect(first.chunk.bytes == Array("first\n".utf8))
        // The sleep is 1 s: the first line must come long before the run ends.
        #expect(returned - first.at > .milliseconds(700), "first chunk only \(returned - first.at) before the end")
        #expect(collector.bytes(.stdout) == Array(result.stdout.utf8))
        #expect(collector.bytes(.stderr) == Array("oops\n".utf8))
    }

    @Test("the observer sees at most the output limit, the same bytes the result keeps")
    func truncated() async throws {
        let collector = Collector()
        var limits = Limits()
        limits.outputBytes = 1000
        // 200 KB on stdout in several writes, 10 bytes on stderr.
        let spec = JailSpec(command: ["/bin/sh", "-c", "head -c 200000 /dev/zero | tr '\\0' a; printf 0123456789 >&2"], limits: limits)
        let result = try await Fixture.jail().run(spec, output: collector.observer)
        #expect(result.status == .outputLimit)
        #expect(result.stdoutTruncated && !result.stderrTruncated)
        #expect(result.stdoutBytes == 200_000)
        #expect(collector.bytes(.stdout).count == 1000)
        #expect(collector.bytes(.stdout) == Array(result.stdout.utf8))
        #expect(collector.bytes(.stderr) == Array("0123456789".utf8))
    }

    @Test("without an observer the result is the same as with one")
    func sameResult() async throws {
        let spec = JailSpec(command: ["/bin/sh", "-c", "printf 'a\\nb'; printf e >&2; exit 3"])
        let plain = try await Fixture.jail().run(spec)
        let observed = try await Fixture.jail().run(spec, output: Collector().observer)
        for r in [plain, observed] {
            #expect(r.status == .exitNonzero && r.exitCode == 3)
            #expect(r.stdout == "a\nb" && r.stderr == "e")
            #expect(r.stdoutBytes == 3 && r.stderrBytes == 1)
        }
    }
}
