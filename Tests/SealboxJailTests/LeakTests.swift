import Foundation
import Glibc
import SealboxTestSupport
import Testing
@testable import SealboxJail

@Suite("No leftovers", .needsRoot, .serialized)
struct LeakTests {
    static func openFDCount() -> Int {
        (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd").count) ?? -1
    }

    static func hostMountCount() -> Int {
        (try? String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8))?.split(separator: "\n").count ?? -1
    }

    static func cgroupDirectories(named names: Set<String>) -> [String] {
        let roots = ["/sys/fs/cgroup", "/sys/fs/cgroup/unified"] + ["memory", "pids", "cpu", "cpuacct", "freezer"].map { "/sys/fs/cgroup/\($0)" }
        return roots.flatMap { root in
            ((try? FileManager.default.contentsOfDirectory(atPath: root + "/sealbox")) ?? []).filter { names.contains($0) }.map { root + "/sealbox/" + $0 }
        }
    }

    @Test("200 runs leave no cgroups, mounts, processes or descriptors behind")
    func twoHundredRuns() async throws {
        let executor = try Fixture.jail()
        let fdsBefore = Self.openFDCount()
        let mountsBefore = Self.hostMountCount()
        let marker = "leak-\(UUID().uuidString.prefix(8))"
        var names = Set<String>()
        for i in 0..<200 {
            let id = "leak\(i)-\(marker)"
            names.insert(StaleCgroups.taskName(runID: id))
            // Every third run leaves a background process behind; every fifth times out.
            let script = i % 3 == 0 ? "(exec -a \(marker) sleep 60 &); echo \(i)" : (i % 5 == 0 ? "exec -a \(marker) sleep 60" : "echo \(i)")
            let r = try await executor.run(JailSpec(command: ["/bin/bash", "-c", script],
                                                      limits: Limits(timeoutMs: i % 5 == 0 && i % 3 != 0 ? 50 : 5000), id: id))
            #expect(r.status == .ok || r.status == .timeout, "run \(i): \(r.status) \(r.error ?? r.stderr)")
        }
        #expect(Self.cgroupDirectories(named: names).isEmpty)
        #expect(Self.hostMountCount() == mountsBefore)
        #expect(Fixture.hostProcesses(containing: marker).isEmpty)
        // A leak of even one descriptor per run shows as +200 or more. Other suites run
        // concurrently and hold descriptors of their own meanwhile (up to ~50 seen: servers,
        // sockets, pipes), hence the bound between the two.
        #expect(Self.openFDCount() - fdsBefore < 150, "fds \(fdsBefore) -> \(Self.openFDCount())")
    }

    /// Live jails: create, run commands (one leaving a background process, one timing out),
    /// end. SEALBOX_LIVE_LEAK_CYCLES sets the count (100 here; 1,000 took 63 s on this machine:
    /// `SEALBOX_LIVE_LEAK_CYCLES=1000 swift test --filter LeakTests/liveJailCycles`).
    @Test("live jails made, used and ended many times leave no cgroups, mounts, processes or descriptors")
    func liveJailCycles() async throws {
        let cycles = ProcessInfo.processInfo.environment["SEALBOX_LIVE_LEAK_CYCLES"].flatMap { Int($0) } ?? 100
        let executor = try Fixture.jail()
        let fdsBefore = Self.openFDCount()
        let mountsBefore = Self.hostMountCount()
        let marker = "liveleak-\(UUID().uuidString.prefix(8))"
        var names = Set<String>()
        for i in 0..<cycles {
            let id = "live\(i)-\(marker)"
            names.insert(StaleCgroups.taskName(runID: id))
            let jail = try executor.startLiveJail(JailSpec(command: [], id: id))
            let first = try await jail.run(LiveCommand(command: ["/bin/bash", "-c", "(exec -a \(marker) sleep 60 &); echo \(i)"]))
            #expect(first.status == .ok && first.stdout == "\(i)\n", "cycle \(i): \(first.status) \(first.error ?? first.stderr)")
            if i % 4 == 0 {
                let slow = try await jail.run(LiveCommand(command: ["/bin/bash", "-c", "exec -a \(marker) sleep 60"], timeoutMs: 50))
                #expect(slow.status == .timeout, "cycle \(i): \(slow.status)")
            }
            jail.end()
        }
        #expect(Self.cgroupDirectories(named: names).isEmpty)
        #expect(Self.hostMountCount() == mountsBefore)
        #expect(Fixture.hostProcesses(containing: marker).isEmpty)
        #expect(Self.openFDCount() - fdsBefore < 150, "fds \(fdsBefore) -> \(Self.openFDCount())")
    }

    @Test("task cgroups left by a killed sealbox are swept; live or fresh ones are not")
    func staleSweep() throws {
        let driver = try #require(try Fixture.jail().cgroupDriver as? V1CgroupDriver, "this host uses the v1 driver")
        let parent = try #require(driver.taskParentDirectories.first { $0.contains("/memory/") })
        // pid_max itself is never assigned (pids run 1 ... pid_max-1): an owner that cannot be alive.
        let pidMax = (try? String(contentsOfFile: "/proc/sys/kernel/pid_max", encoding: .utf8)).flatMap { pid_t($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
        let deadOwner = try #require(pidMax)
        let stale = parent + "/" + StaleCgroups.taskName(runID: "stale-\(UUID().uuidString.prefix(6))", owner: deadOwner)
        let fresh = parent + "/" + StaleCgroups.taskName(runID: "fresh-\(UUID().uuidString.prefix(6))", owner: deadOwner)
        let mine = parent + "/" + StaleCgroups.taskName(runID: "mine-\(UUID().uuidString.prefix(6))")
        for dir in [stale, fresh, mine] { #expect(mkdir(dir, 0o755) == 0) }
        defer { for dir in [stale, fresh, mine] { rmdir(dir) } }
        var old = [timeval(tv_sec: time(nil) - 7200, tv_usec: 0), timeval(tv_sec: time(nil) - 7200, tv_usec: 0)]
        #expect(utimes(stale, &old) == 0)
        #expect(utimes(mine, &old) == 0)
        let removed = StaleCgroups.sweep(driver)
        #expect(removed.contains(stale))
        #expect(FileManager.default.fileExists(atPath: fresh), "younger than the grace period")
        #expect(FileManager.default.fileExists(atPath: mine), "its owner (this process) is alive")
    }
}
