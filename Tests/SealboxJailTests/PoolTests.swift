import Foundation
import Glibc
import SealboxProfiles
import SealboxTestSupport
import Testing
@testable import SealboxJail

/// The warm pool: jails prepared ahead of their tasks (JailPool, sbx_prepare/sbx_activate).
/// Each test has an executor of its own, so no other suite's runs go through its pool.
@Suite("Warm pool", .needsRoot, .serialized)
struct PoolTests {
    static func executor() throws -> Executor {
        try Executor(configuration: .init(dataDirectory: Binaries.repoRoot))
    }

    static func startPool(_ executor: Executor, size: Int, limits: Limits = Limits(), refillDelayMs: Int = 0) throws -> JailPool {
        let pool = try executor.startPool(JailPool.Configuration(size: size, limits: limits, refillDelayMs: refillDelayMs))
        #expect(pool.waitUntilFull(timeout: 30), "pool did not fill: \(pool.stats)")
        return pool
    }

    static let script = """
        printf 'args:%s,%s env:%s\\n' "$1" "$2" "$GREETING"
        read -r line; echo "stdin:$line"
        cat /work/seed.txt
        ls -l /work/tool.sh | cut -c1-10
        echo "whoami:$(id -u):$(id -g) cwd:$(pwd) host:$(hostname)"
        echo written > /work/out.txt && cat /work/out.txt
        exit 3
        """

    static func richSpec(stdinPath: String) -> JailSpec {
        JailSpec(command: ["/bin/sh", "-c", script, "sh", "one", "two"], environment: [("GREETING", "hello")],
                 files: [SeedFile(name: "seed.txt", contents: Array("seeded\n".utf8)),
                         SeedFile(name: "tool.sh", contents: Array("#!/bin/sh\n".utf8), executable: true)],
                 stdin: .file(stdinPath))
    }

    @Test("a pooled run gets its program, arguments, environment, stdin and files, and ends like a cold one")
    func pooledMatchesCold() async throws {
        let dir = try TemporaryDirectory.make("pool")
        defer { TemporaryDirectory.remove(dir) }
        let stdinPath = dir + "/in.txt"
        try "from stdin\n".write(toFile: stdinPath, atomically: true, encoding: .utf8)
        let executor = try Self.executor()
        let pool = try Self.startPool(executor, size: 2)
        defer { executor.stopPool() }

        let warm = try await executor.run(Self.richSpec(stdinPath: stdinPath))
        let cold = try await Fixture.jail().run(Self.richSpec(stdinPath: stdinPath))
        #expect(warm.phases?.warm == true)
        #expect(cold.phases?.warm == nil)
        #expect(pool.stats.hits == 1)
        #expect(warm.status == .exitNonzero && warm.exitCode == 3, "\(warm.status) \(warm.error ?? warm.stderr)")
        #expect(warm.stdout == cold.stdout)
        #expect(warm.stdout == """
            args:one,two env:hello
            stdin:from stdin
            seeded
            -rwxr-xr-x
            whoami:1000:1000 cwd:/work host:sealbox
            written

            """)
        // Only the handover and the execve happened during the run.
        let steps = try #require(warm.phases?.spawnSteps?.milliseconds)
        let named = Dictionary(uniqueKeysWithValues: zip(JailResult.SpawnSteps.names, steps))
        #expect(named["activate"]! > 0 && named["exec"]! > 0 && named["clone"] == 0 && named["mounts"] == 0, "\(named)")
    }

    @Test("each pooled jail serves one task: nothing a run leaves reaches the next, and /work starts empty")
    func usedOnce() async throws {
        let executor = try Self.executor()
        let pool = try Self.startPool(executor, size: 2)
        defer { executor.stopPool() }
        let first = try await executor.run(JailSpec(command: ["/bin/sh", "-c",
            "ls -A /work /tmp; echo secret > /tmp/left; echo secret > /work/left; (sleep 30 &); echo $$"]))
        #expect(first.phases?.warm == true)
        #expect(first.stdout.hasPrefix("/tmp:\n\n/work:\n"), "a prepared jail held something before its task: \(first.stdout)")
        pool.waitUntilFull()
        let second = try await executor.run(JailSpec(command: ["/bin/sh", "-c", "ls -A /work /tmp; set -- /proc/[0-9]*; echo $#"]))
        #expect(second.phases?.warm == true)
        // Only its own init and shell: no sleep left over from the first run.
        #expect(second.stdout == "/tmp:\n\n/work:\n2\n", "\(second.stdout)")
        #expect(pool.stats.hits == 2)
    }

    @Test("runs that need another jail spawn cold; an empty pool is a miss, not a failure")
    func fitAndMiss() async throws {
        let executor = try Self.executor()
        // A long refill delay keeps the pool empty once taken from.
        let pool = try Self.startPool(executor, size: 1, refillDelayMs: 60_000)
        defer { executor.stopPool() }
        let other = try await executor.run(JailSpec(command: ["/bin/true"], limits: Limits(memoryBytes: 128 << 20)))
        #expect(other.status == .ok && other.phases?.warm == nil)
        let strict = try await executor.run(JailSpec(command: ["/bin/true"], profile: "strict"))
        #expect(strict.status == .ok && strict.phases?.warm == nil)
        #expect(pool.stats.hits == 0 && pool.stats.misses == 0)

        let hit = try await executor.run(JailSpec(command: ["/bin/true"]))
        let miss = try await executor.run(JailSpec(command: ["/bin/true"]))
        #expect(hit.status == .ok && hit.phases?.warm == true)
        #expect(miss.status == .ok && miss.phases?.warm == nil)
        #expect(pool.stats.hits == 1 && pool.stats.misses == 1)
    }

    @Test("a task's files that do not fit the jail's disk fail the run with the reason; a refused spec takes no jail")
    func fileTooLarge() async throws {
        let executor = try Self.executor()
        let limits = Limits(diskBytes: 1 << 20)
        let pool = try Self.startPool(executor, size: 1, limits: limits)
        defer { executor.stopPool() }
        // More than the disk limit: refused before any jail is taken.
        await #expect(throws: JailError.self) {
            try await executor.run(JailSpec(command: ["/bin/true"], files: [SeedFile(name: "big", contents: Array(repeating: 7, count: 2 << 20))],
                                            limits: limits))
        }
        #expect(pool.stats.hits == 0)
        // Exactly the limit passes the check but not the tmpfs, which already holds /etc.
        let r = try await executor.run(JailSpec(command: ["/bin/true"], files: [SeedFile(name: "big", contents: Array(repeating: 7, count: 1 << 20))],
                                                limits: limits))
        #expect(pool.stats.hits == 1)
        #expect(r.status == .spawnFailed)
        #expect(r.error?.contains("write /work/big") == true && r.error?.contains("ENOSPC") == true, "\(r.error ?? "")")
    }

    @Test("a prepared jail killed while waiting is replaced, never handed out")
    func deadJailSkipped() async throws {
        let executor = try Self.executor()
        let pool = try Self.startPool(executor, size: 1, refillDelayMs: 60_000)
        defer { executor.stopPool() }
        let victim = try #require(pool.readyJails.first)
        #expect(kill(victim.pid, SIGKILL) == 0)
        // Until its init has exited, the pool may still see it alive.
        var waited = 0
        while waited < 200, let first = pool.readyJails.first, first.pid == victim.pid, kill(victim.pid, 0) == 0,
              (try? String(contentsOfFile: "/proc/\(victim.pid)/stat", encoding: .utf8))?.contains(") Z ") != true {
            try await Task.sleep(for: .milliseconds(10))
            waited += 1
        }
        let r = try await executor.run(JailSpec(command: ["/bin/echo", "fine"]))
        #expect(r.status == .ok && r.stdout == "fine\n", "\(r.error ?? r.stderr)")
        #expect(r.phases?.warm == nil)
        #expect(pool.stats.failures == 1 && pool.stats.hits == 0 && pool.stats.misses == 1, "\(pool.stats)")
    }

    @Test("stopping the pool kills its ready jails and removes their cgroups")
    func shutdownLeavesNothing() throws {
        let executor = try Self.executor()
        let pool = try Self.startPool(executor, size: 3)
        let jails = pool.readyJails
        #expect(jails.count == 3)
        let cgroupDirectories = jails.flatMap { jail in executor.cgroupDriver.taskParentDirectories.map { $0 + "/" + jail.cgroupName } }
        #expect(cgroupDirectories.allSatisfy { access($0, F_OK) == 0 })
        executor.stopPool()
        #expect(pool.stats.ready == 0)
        for jail in jails {
            #expect(kill(jail.pid, 0) != 0 && errno == ESRCH, "jail \(jail.pid) still exists")
        }
        #expect(cgroupDirectories.allSatisfy { access($0, F_OK) != 0 }, "\(cgroupDirectories)")
    }

    @Test("bad pool settings are refused with the reason", arguments: [
        (JailPool.Configuration(size: 0), "pool size"),
        (JailPool.Configuration(size: 1, refillThreads: 0), "refill threads"),
        (JailPool.Configuration(size: 1, profile: "no-such-profile"), "no-such-profile"),
        (JailPool.Configuration(size: 1, refillDelayMs: -1), "refill delay"),
    ])
    func badConfiguration(configuration: JailPool.Configuration, expected: String) throws {
        let executor = try Self.executor()
        #expect {
            try executor.startPool(configuration)
        } throws: { error in
            (error as? JailError)?.description.contains(expected) == true
        }
        #expect(executor.pool == nil)
    }
}
