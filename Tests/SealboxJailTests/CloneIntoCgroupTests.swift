import Foundation
import Glibc
import SealboxTestSupport
import Testing
@testable import SealboxJail

/// v2 task cgroups without limits: this host's cgroup2 has no controllers, but it has the v2
/// mechanics, so a jail can be born in its cgroup there as on a v2 host.
struct UnlimitedV2Driver: CgroupDriver {
    let inner: V2CgroupDriver
    var version: CgroupVersion { .v2 }
    func create(name: String, limits: CgroupLimits) throws(CgroupError) -> any TaskCgroup {
        try inner.createV2(name: name, limits: CgroupLimits())
    }
    var taskParentDirectories: [String] { inner.taskParentDirectories }
}

@Suite(
    "Jails born in their v2 cgroup (CLONE_INTO_CGROUP)",
    .enabled(if: CgroupHybridHost.isHybridWithoutV2Controllers, "needs root on a hybrid host whose cgroup2 has no memory controller"),
    .serialized
)
struct CloneIntoCgroupTests {
    @Test("the jail's processes are in its v2 task cgroup from the clone on, and the cgroup is gone after", arguments: [false, true])
    func bornInCgroup(pooled: Bool) async throws {
        let driver = UnlimitedV2Driver(inner: try V2CgroupDriver(root: CgroupHybridHost.unified, requireControllers: false))
        let executor = try Executor(configuration: .init(dataDirectory: Binaries.repoRoot), cgroupDriver: driver)
        if pooled {
            let pool = try executor.startPool(JailPool.Configuration(size: 1))
            #expect(pool.waitUntilFull(timeout: 30), "\(pool.stats)")
        }
        defer { executor.stopPool() }
        let id = "clone-into-\(UUID().uuidString.prefix(8).lowercased())"
        // The jail waits on its stdin until the test has looked (an event, not a fixed window:
        // on a loaded machine the run may start seconds late).
        var gate: [Int32] = [0, 0]
        #expect(pipe(&gate) == 0)
        var spec = JailSpec(command: ["/bin/sh", "-c", "cat /proc/self/cgroup | grep '^0::'; read go"], id: String(id))
        spec.stdin = .descriptor(gate[0])
        async let finished = executor.run(spec)
        defer { close(gate[0]) }

        // While it runs, the host sees its processes in a cgroup of the unified hierarchy (a
        // pooled jail's cgroup was made when it was prepared, so its name is not the run's).
        var members: [String] = []
        for _ in 0..<6000 where members.isEmpty {
            let names = (try? FileManager.default.contentsOfDirectory(atPath: driver.inner.parent)) ?? []
            for name in names where Self.isOurs(name, id: id) {
                let procs = (try? String(contentsOfFile: "\(driver.inner.parent)/\(name)/cgroup.procs", encoding: .utf8)) ?? ""
                let pids = procs.split(separator: "\n").map(String.init)
                // Only jails of this test's executor use this driver; a live one holds init + sh (+ cat/sleep).
                if pids.count >= 2 { members = pids }
            }
            // Never block the cooperative pool (2 threads here): the run's own task needs it.
            try await Task.sleep(for: .milliseconds(10))
        }
        _ = write(gate[1], "go\n", 3)
        close(gate[1])
        let r = try await finished
        executor.stopPool()  // its replacement jail's cgroup goes too
        #expect(r.status == .ok, "\(r.error ?? r.stderr)")
        #expect(r.cgroup == "v2")
        // The cgroup namespace is rooted at the task cgroup: the jail sees itself at "/".
        #expect(r.stdout == "0::/\n")
        #expect(members.count >= 2, "no jail process seen in a v2 task cgroup")
        #expect(r.phases?.warm == (pooled ? true : nil))
        let leftovers = ((try? FileManager.default.contentsOfDirectory(atPath: driver.inner.parent)) ?? [])
            .filter { Self.isOurs($0, id: id) }
        #expect(leftovers.isEmpty, "\(leftovers)")
    }

    /// A task cgroup this test's executor made: the run's (`run-<id>-p<pid>`) or a pooled jail's
    /// (`run-<16 hex digits>-p<pid>`, RandomID.run). CgroupV2HybridHostTests, which may run at the
    /// same time in this process, makes `run-v2test-…-p<pid>` cgroups in the same parent for
    /// its own processes: those are neither this test's jails nor its leftovers.
    static func isOurs(_ name: String, id: String) -> Bool {
        let suffix = "-p\(getpid())"
        guard name.hasPrefix("run-"), name.hasSuffix(suffix) else { return false }
        let runID = name.dropFirst("run-".count).dropLast(suffix.count)
        return runID == id || (runID.count == 16 && runID.allSatisfy(\.isHexDigit))
    }
}
