import Foundation
import SealboxTestSupport
import Testing
@testable import SealboxJail

/// `max_open_files` (RLIMIT_NOFILE), the limit added through `LimitTable` alone: a jailed
/// shell reports the limit it runs under, cold and in a pooled jail, and a run asking for
/// another value than the pool's never takes a pooled jail (which would give it the pool's).
@Suite("Open files limit", .needsRoot, .serialized)
struct OpenFilesLimitTests {
    static let report = JailSpec(command: ["/bin/sh", "-c", "ulimit -n; ulimit -Hn"])

    static func spec(openFiles: UInt64?) -> JailSpec {
        var spec = report
        if let openFiles { spec.limits[.maxOpenFiles] = .whole(openFiles) }
        return spec
    }

    @Test("a cold run gets the limit it asks for, and 1024 when it asks for none")
    func cold() async throws {
        let asked = try await Fixture.jail().run(Self.spec(openFiles: 77))
        #expect(asked.status == .ok, "\(asked.error ?? asked.stderr)")
        #expect(asked.stdout == "77\n77\n")
        #expect(asked.limits[.maxOpenFiles] == .whole(77))
        let fallback = try await Fixture.jail().run(Self.spec(openFiles: nil))
        #expect(fallback.stdout == "1024\n1024\n")
        #expect(fallback.limits[.maxOpenFiles] == .whole(1024))
    }

    @Test("a pooled jail has the pool's limit; a run asking for another spawns cold with its own")
    func pooled() async throws {
        let executor = try Executor(configuration: .init(dataDirectory: Binaries.repoRoot))
        var limits = Limits()
        limits[.maxOpenFiles] = .whole(64)
        // A long refill delay: the pool's one jail is taken once and not replaced.
        let pool = try executor.startPool(JailPool.Configuration(size: 1, limits: limits, refillDelayMs: 60_000))
        defer { executor.stopPool() }
        #expect(pool.waitUntilFull(timeout: 30), "pool did not fill: \(pool.stats)")

        let other = try await executor.run(Self.spec(openFiles: 100))
        #expect(other.phases?.warm == nil, "a run asking for 100 open files took a jail prepared with 64")
        #expect(other.stdout == "100\n100\n", "\(other.error ?? other.stderr)")
        #expect(pool.stats.hits == 0)

        let warm = try await executor.run(Self.spec(openFiles: 64))
        #expect(warm.phases?.warm == true)
        #expect(warm.stdout == "64\n64\n", "\(warm.error ?? warm.stderr)")
        #expect(warm.limits[.maxOpenFiles] == .whole(64))
        #expect(pool.stats.hits == 1)
    }

    @Test("a program cannot open more files than the limit: EMFILE past it")
    func enforced() async throws {
        // fds 0-2 are open; with a limit of 16 the 14th open fails.
        let script = "import os\nn = 0\ntry:\n    while n < 100:\n        os.open('/dev/null', os.O_RDONLY); n += 1\nexcept OSError as e:\n    print(n, e.errno == 24)\n"
        var limits = Limits()
        limits[.maxOpenFiles] = .whole(16)
        let r = try await Fixture.python(script, limits: limits)
        #expect(r.status == .ok, "\(r.error ?? r.stderr)")
        let parts = r.stdout.split(separator: " ")
        #expect(parts.count == 2 && parts[1] == "True\n", "\(r.stdout)")
        #expect((Int(parts.first ?? "") ?? 99) < 16, "\(r.stdout)")
    }
}
