import Foundation
import Glibc
import Testing
@testable import SealboxJail

@Suite("cgroup v2 delegation check (pure)")
struct CgroupV2DelegationTests {
    @Test func delegatedRootPasses() throws {
        try V2CgroupDriver.checkDelegation(
            root: "/sys/fs/cgroup", controllers: "cpuset cpu io memory hugetlb pids rdma misc\n",
            subtreeControl: "cpuset cpu io memory pids\n")
        try V2CgroupDriver.checkDelegation(root: "/r", controllers: "memory pids", subtreeControl: "pids memory")
    }

    @Test("rejections", arguments: [
        ("hugetlb\n", "", "cgroup v2 controllers not available: memory pids missing from /r/cgroup.controllers"),
        ("", "", "cgroup v2 controllers not available: memory pids missing"),
        ("cpu memory\n", "cpu memory", "cgroup v2 controllers not available: pids missing"),
        ("cpu memory pids\n", "cpu\n", "cgroup v2 controllers not delegated: memory pids missing from /r/cgroup.subtree_control"),
        ("cpu memory pids\n", "memory\n", "cgroup v2 controllers not delegated: pids missing"),
    ])
    func rejected(_ controllers: String, _ subtree: String, _ expectedPrefix: String) {
        let error = #expect(throws: CgroupError.self) {
            try V2CgroupDriver.checkDelegation(root: "/r", controllers: controllers, subtreeControl: subtree)
        }
        #expect(error?.stage == "detect")
        #expect(error?.path == "/r")
        #expect(error?.errno == nil)
        #expect(error?.message.hasPrefix(expectedPrefix) == true, "\(error?.message ?? "")")
        if expectedPrefix.contains("not delegated") {
            #expect(error?.message.contains("sealbox will not write it because that cgroup is not ours") == true)
        }
    }

    @Test func nonCgroupDirectoryIsRejected() {
        let error = #expect(throws: CgroupError.self) { try Cgroups.v2(root: "/tmp") }
        #expect(error?.message.contains("not a cgroup2 directory") == true)
        #expect(!FileManager.default.fileExists(atPath: "/tmp/sealbox/cgroup.procs"))
    }

    @Test func pureV2HostWouldTryV2First() {
        // With a bogus override, v2 is attempted and rejected, then v1 (not mounted in the fixture) too.
        let result = Cgroups.detectWithNotes(mountinfo: cgroupPureV2MountinfoFixture, v2RootOverride: "/nonexistent")
        #expect(result.driver.version == .none)
        #expect(result.notes.contains { $0.hasPrefix("v2 rejected: detect /nonexistent: not a cgroup2 directory") })
        #expect(result.notes.contains { $0.hasPrefix("v1 rejected:") })
    }
}

/// This machine: hybrid, cgroup2 at /sys/fs/cgroup/unified with no controllers.
enum CgroupHybridHost {
    static let unified = "/sys/fs/cgroup/unified"
    static let isHybridWithoutV2Controllers: Bool = {
        guard CgroupTestHost.hasV1, CgroupTestHost.mounts.v2.contains(unified) else { return false }
        let controllers = (try? String(contentsOfFile: "\(unified)/cgroup.controllers", encoding: .utf8)) ?? ""
        return !CgroupParsing.parseControllerList(controllers).contains("memory")
    }()
}

@Suite(
    "cgroup v2 driver on this hybrid host (real, root)",
    .enabled(if: CgroupHybridHost.isHybridWithoutV2Controllers, "needs root on a hybrid host whose cgroup2 has no memory controller")
)
struct CgroupV2HybridHostTests {
    @Test func unifiedRootIsRejectedWithoutWritingIt() throws {
        let subtreeFile = "\(CgroupHybridHost.unified)/cgroup.subtree_control"
        let before = try String(contentsOfFile: subtreeFile, encoding: .utf8)
        let error = #expect(throws: CgroupError.self) { try Cgroups.v2(root: CgroupHybridHost.unified) }
        #expect(error?.stage == "detect")
        #expect(error?.path == CgroupHybridHost.unified)
        #expect(error?.errno == nil)
        #expect(error?.message.hasPrefix("cgroup v2 controllers not available: memory pids missing from /sys/fs/cgroup/unified/cgroup.controllers") == true,
                "\(error?.description ?? "")")
        #expect(try String(contentsOfFile: subtreeFile, encoding: .utf8) == before)
    }

    @Test func detectReturnsV1() {
        #expect(Cgroups.detect().version == .v1)
        #expect(Cgroups.detect() is V1CgroupDriver)
        // Even when pointed at the unified hierarchy explicitly, detection falls back to v1 and says why.
        let result = Cgroups.detectWithNotes(v2RootOverride: CgroupHybridHost.unified)
        #expect(result.driver.version == .v1)
        #expect(result.notes.contains { $0.contains("v2 rejected") && $0.contains("not available") })
    }

    /// The controller-less unified hierarchy still supports the v2 mechanics (mkdir, CLONE_INTO_CGROUP fd,
    /// cgroup.procs, cgroup.kill, cgroup.events, rmdir) — exercised through the internal unchecked initializer,
    /// only inside <unified>/sealbox.
    @Test func v2MechanicsWithoutControllers() throws {
        let driver = try V2CgroupDriver(root: CgroupHybridHost.unified, requireControllers: false)
        #expect(driver.enabledControllers.isEmpty)
        #expect(driver.parent == "\(CgroupHybridHost.unified)/sealbox")

        // Limits that need a missing controller fail cleanly and leave nothing behind.
        let refused = CgroupTestHost.uniqueName("v2mem")
        let error = #expect(throws: CgroupError.self) {
            try driver.create(name: refused, limits: CgroupLimits(memoryBytes: 64 << 20))
        }
        #expect(error?.message.contains("memory controller is not enabled") == true)
        #expect(!FileManager.default.fileExists(atPath: "\(driver.parent)/\(refused)"))

        let name = CgroupTestHost.uniqueName("v2")
        let task = try driver.createV2(name: name, limits: CgroupLimits())
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sleep")
        process.arguments = ["30"]
        try process.run()
        defer { CgroupTestHost.cleanUp(task, [process]) }

        #expect(task.version == .v2)
        #expect(task.procsFDs.isEmpty)
        let fd = task.cloneIntoFD
        #expect(fd >= 0)
        #expect(fcntl(fd, F_GETFD) & FD_CLOEXEC != 0)
        #expect(fcntl(fd, F_GETFL) & O_ACCMODE == O_RDONLY)
        var info = stat()
        #expect(fstat(fd, &info) == 0)
        #expect(info.st_mode & S_IFMT == S_IFDIR)

        try task.attach(pid: process.processIdentifier)
        #expect(task.pids() == [process.processIdentifier])
        #expect(task.isPopulated())

        // Frozen and thawed (a paused sandbox), then killed while frozen (one ended paused).
        try task.setFrozen(true)
        #expect(CgroupTestHost.read("\(task.directory)/cgroup.events")?.contains("frozen 1") == true)
        try task.setFrozen(false)
        #expect(CgroupTestHost.read("\(task.directory)/cgroup.events")?.contains("frozen 0") == true)
        try task.setFrozen(true)
        try task.killAll()
        #expect(CgroupTestHost.waitForExit(process))
        #expect(process.terminationReason == .uncaughtSignal)
        #expect(process.terminationStatus == SIGKILL)
        #expect(!task.isPopulated())
        let usage = task.usage()
        #expect(usage.oomKills == 0)
        #expect(usage.peakMemoryBytes == nil) // no memory controller here
        #expect(usage.cpuNanos != nil) // cpu.stat usage_usec is core in v2

        try task.destroy()
        #expect(task.cloneIntoFD == -1)
        #expect(!FileManager.default.fileExists(atPath: task.directory))
        try task.destroy()
        // The parent <unified>/sealbox stays: it is sealbox's own, shared by every driver, and
        // removing it would race other tests creating task cgroups under it.
    }
}
