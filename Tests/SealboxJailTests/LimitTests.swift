import Foundation
import Glibc
import SealboxTestSupport
import Testing
@testable import SealboxJail

@Suite("Limits and verdicts", .needsRoot)
struct LimitTests {
    @Test("wall-clock timeout, millisecond resolution")
    func timeout() async throws {
        let r = try await Fixture.run(["sleep", "30"], limits: Limits(timeoutMs: 300))
        #expect(r.status == .timeout)
        #expect(r.signal == SIGKILL && r.exitCode == 137)
        #expect(r.wallMs >= 300 && r.wallMs < 2000, "wall \(r.wallMs)")
        #expect(r.limits.timeoutMs == 300)
    }

    @Test("memory bomb is OOM-killed inside its cgroup")
    func memoryBomb() async throws {
        let r = try await Fixture.python("chunks = []\nwhile True:\n    chunks.append(bytearray(16 << 20))", limits: Limits(memoryBytes: 64 << 20))
        #expect(r.status == .memoryLimit, "\(r.status) \(r.stderr)")
        #expect(r.peakMemoryBytes <= 64 << 20 && r.peakMemoryBytes > 32 << 20, "peak \(r.peakMemoryBytes)")
    }

    @Test("fork bomb is capped by the pids limit and fully killed")
    func forkBomb() async throws {
        let marker = "forkbomb-\(UUID().uuidString.prefix(8))"
        let r = try await Fixture.run(["/bin/bash", "-c", "bomb() { bomb | bomb & }; bomb; exec -a \(marker) sleep 5"],
                                limits: Limits(timeoutMs: 3000, pids: 32))
        #expect(r.status == .pidsLimit, "\(r.status) \(r.stderr.prefix(300))")
        #expect(Fixture.hostProcesses(containing: marker).isEmpty)

        let counted = try await Fixture.python("""
            import os, time
            n = 0
            try:
                while True:
                    if os.fork() == 0:
                        time.sleep(30); os._exit(0)
                    n += 1
            except OSError as e:
                print(n, e.errno)
            """, limits: Limits(pids: 16))
        #expect(counted.status == .pidsLimit)
        // init + python + 14 children = 16
        #expect(counted.stdout == "14 11\n", "\(counted.stdout)")
    }

    @Test("output flood: capped, drained, counted")
    func outputFlood() async throws {
        let r = try await Fixture.sh("head -c 3000000 /dev/zero; echo tail >&2", limits: Limits(outputBytes: 4096))
        #expect(r.status == .outputLimit)
        #expect(r.stdoutTruncated && !r.stderrTruncated)
        #expect(r.stdoutBytes == 3_000_000)
        #expect(r.stdout.utf8.count == 4096)
        #expect(r.stderr == "tail\n")
        #expect(r.exitCode == 0)
    }

    @Test("disk: /work and /tmp share one size-capped tmpfs")
    func disk() async throws {
        let r = try await Fixture.sh("""
            head -c 5000000 /dev/zero > /work/a && echo work-ok
            head -c 5000000 /dev/zero > /tmp/b || echo tmp-full
            """, limits: Limits(diskBytes: 8 << 20))
        #expect(r.stdout == "work-ok\ntmp-full\n", "\(r.stdout) \(r.stderr)")
        #expect(r.stderr.contains("No space left on device"))
    }

    @Test("cpu time is accounted")
    func cpuTime() async throws {
        let r = try await Fixture.python("x = 0\nfor i in range(3_000_000): x += i\nprint(x > 0)")
        #expect(r.stdout == "True\n")
        #expect(r.cpuMs > 50, "cpu \(r.cpuMs)")
    }

    @Test("no process survives the run, even after setsid and a double fork")
    func orphans() async throws {
        let marker = "orphan-\(UUID().uuidString.prefix(8))"
        let r = try await Fixture.run(["/bin/bash", "-c", "setsid bash -c '(exec -a \(marker) sleep 100 &) ; exec -a \(marker) sleep 100' & (exec -a \(marker) sleep 100 &); sleep 0.2; echo started"])
        #expect(r.stdout == "started\n")
        #expect(r.status == .ok)
        #expect(Fixture.hostProcesses(containing: marker).isEmpty, "\(Fixture.hostProcesses(containing: marker))")
    }
}
