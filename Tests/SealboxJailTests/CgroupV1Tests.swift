import Foundation
import Glibc
import Testing
import SealboxJail

/// Shared helpers for the real (root) cgroup tests.
enum CgroupTestHost {
    static let isRoot = geteuid() == 0
    static let mounts = CgroupParsing.cgroupMounts(mountinfo: Cgroups.currentMountinfo())
    /// Root and the v1 memory + pids hierarchies are mounted (true on the sealbox dev VM).
    static let hasV1 = isRoot && mounts.v1["memory"] != nil && mounts.v1["pids"] != nil
    /// Prefix of every cgroup name created by this test process.
    static let namePrefix = "test-\(getpid())-"

    /// A fresh, valid, unique task name (≤ 64 characters).
    static func uniqueName(_ label: String) -> String {
        "\(namePrefix)\(label)-\(UUID().uuidString.prefix(8).lowercased())"
    }

    static func read(_ path: String) -> String? {
        (try? String(contentsOfFile: path, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    static func exists(_ path: String) -> Bool {
        FileManager.default.fileExists(atPath: path)
    }

    /// Start `/bin/sh -c script` with a stdin pipe; the script is expected to begin with `read x` so the
    /// caller can move it into a cgroup before it does anything.
    static func startPaused(_ script: String) throws -> (Process, Pipe) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = ["-c", "read x; \(script)"]
        let stdin = Pipe()
        process.standardInput = stdin
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        return (process, stdin)
    }

    static func release(_ stdin: Pipe) throws {
        try stdin.fileHandleForWriting.write(contentsOf: Data("go\n".utf8))
        try stdin.fileHandleForWriting.close()
    }

    /// Poll until the process exits; false on timeout.
    @discardableResult
    static func waitForExit(_ process: Process, seconds: Double = 10) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while process.isRunning {
            if Date() > deadline { return false }
            usleep(10_000)
        }
        return true
    }

    /// Last-resort cleanup so a failing test does not leak processes or directories.
    static func cleanUp(_ task: (any TaskCgroup)?, _ processes: [Process] = []) {
        for process in processes where process.isRunning {
            kill(process.processIdentifier, SIGKILL)
        }
        if let task {
            try? task.killAll()
            try? task.destroy()
        }
    }
}

@Suite(
    "cgroup v1 driver (real, root)",
    .serialized, // the final leftover check must not race with the other tests of this suite
    .enabled(if: CgroupTestHost.hasV1, "needs root and mounted cgroup v1 memory+pids hierarchies")
)
struct CgroupV1Tests {
    let driver: V1CgroupDriver

    init() throws {
        driver = try Cgroups.v1()
    }

    @Test func driverUsesExpectedHierarchies() {
        #expect(driver.version == .v1)
        let controllers = driver.hierarchies.flatMap(\.controllers)
        #expect(controllers.starts(with: ["memory", "pids"]))
        for controller in ["cpu", "cpuacct", "freezer"] where CgroupTestHost.mounts.v1[controller] != nil {
            #expect(controllers.contains(controller))
        }
        for hierarchy in driver.hierarchies {
            #expect(CgroupTestHost.exists("\(hierarchy.mountPoint)/sealbox"))
        }
    }

    @Test func createAppliesLimitsAndDestroyRemovesEverything() throws {
        let name = CgroupTestHost.uniqueName("limits")
        let limits = CgroupLimits(memoryBytes: 64 << 20, pids: 16, cpuQuotaMicros: 50_000, cpuPeriodMicros: 100_000)
        let task = try driver.createV1(name: name, limits: limits)
        defer { CgroupTestHost.cleanUp(task) }

        #expect(task.version == .v1)
        #expect(task.name == name)
        #expect(task.cloneIntoFD == -1)
        #expect(task.procsFDs.count == driver.hierarchies.count)
        #expect(task.procsFDs.allSatisfy { fcntl($0, F_GETFD) & FD_CLOEXEC != 0 })
        #expect(task.directories.count == driver.hierarchies.count)
        for directory in task.directories {
            #expect(CgroupTestHost.exists(directory), "\(directory)")
        }

        let memory = try #require(driver.directory(for: "memory", name: name))
        #expect(CgroupTestHost.read("\(memory)/memory.limit_in_bytes") == "\(64 << 20)")
        if CgroupTestHost.exists("\(memory)/memory.memsw.limit_in_bytes") {
            #expect(CgroupTestHost.read("\(memory)/memory.memsw.limit_in_bytes") == "\(64 << 20)")
        }
        #expect(CgroupTestHost.read("\(memory)/memory.swappiness") == "0")
        let pids = try #require(driver.directory(for: "pids", name: name))
        #expect(CgroupTestHost.read("\(pids)/pids.max") == "16")
        let cpu = try #require(driver.directory(for: "cpu", name: name))
        #expect(CgroupTestHost.read("\(cpu)/cpu.cfs_period_us") == "100000")
        #expect(CgroupTestHost.read("\(cpu)/cpu.cfs_quota_us") == "50000")

        // Fresh cgroup: nothing used yet.
        let usage = task.usage()
        #expect(usage.oomKills == 0)
        #expect(usage.pidsLimitHits == 0)
        #expect(usage.peakMemoryBytes == 0)
        #expect(usage.cpuNanos == 0)

        try task.destroy()
        #expect(task.procsFDs.isEmpty)
        for directory in task.directories {
            #expect(!CgroupTestHost.exists(directory), "\(directory) still exists")
        }
        try task.destroy() // idempotent
        try task.killAll() // no-op once destroyed
    }

    @Test func unlimitedCreateLeavesDefaults() throws {
        let name = CgroupTestHost.uniqueName("nolimits")
        let task = try driver.createV1(name: name, limits: CgroupLimits())
        defer { CgroupTestHost.cleanUp(task) }
        let pids = try #require(driver.directory(for: "pids", name: name))
        #expect(CgroupTestHost.read("\(pids)/pids.max") == "max")
        let cpu = try #require(driver.directory(for: "cpu", name: name))
        #expect(CgroupTestHost.read("\(cpu)/cpu.cfs_quota_us") == "-1")
        try task.destroy()
        #expect(task.directories.allSatisfy { !CgroupTestHost.exists($0) })
    }

    @Test func killAllKillsASleepingProcess() throws {
        let name = CgroupTestHost.uniqueName("sleep")
        let task = try driver.createV1(name: name, limits: CgroupLimits(pids: 8))
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sleep")
        process.arguments = ["30"]
        try process.run()
        defer { CgroupTestHost.cleanUp(task, [process]) }

        for fd in task.procsFDs {
            try Cgroups.attach(pid: process.processIdentifier, procsFD: fd)
        }
        for directory in task.directories {
            let procs = CgroupTestHost.read("\(directory)/cgroup.procs") ?? ""
            #expect(procs.split(separator: "\n") == ["\(process.processIdentifier)"], "\(directory)")
        }
        #expect(task.pids() == [process.processIdentifier])

        try task.killAll()
        #expect(CgroupTestHost.waitForExit(process))
        #expect(process.terminationReason == .uncaughtSignal)
        #expect(process.terminationStatus == SIGKILL)
        #expect(task.pids().isEmpty)

        try task.destroy()
        for directory in task.directories {
            #expect(!CgroupTestHost.exists(directory), "\(directory) still exists")
        }
    }

    @Test func freezeThawAndKillWhileFrozen() throws {
        let task = try driver.createV1(name: CgroupTestHost.uniqueName("freeze"), limits: CgroupLimits(pids: 8))
        let freezer = try #require(task.freezerDirectory, "this host mounts the v1 freezer")
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sleep")
        process.arguments = ["30"]
        try process.run()
        defer { CgroupTestHost.cleanUp(task, [process]) }
        for fd in task.procsFDs { try Cgroups.attach(pid: process.processIdentifier, procsFD: fd) }
        try task.setFrozen(true)
        #expect(CgroupTestHost.read("\(freezer)/freezer.state")?.hasPrefix("FROZEN") == true)
        try task.setFrozen(false)
        #expect(CgroupTestHost.read("\(freezer)/freezer.state")?.hasPrefix("THAWED") == true)
        try task.setFrozen(true)
        try task.killAll()
        #expect(CgroupTestHost.waitForExit(process))
        #expect(process.terminationStatus == SIGKILL && task.pids().isEmpty)
        try task.destroy()
    }

    @Test func killAllKillsAProcessTree() throws {
        let name = CgroupTestHost.uniqueName("tree")
        let task = try driver.createV1(name: name, limits: CgroupLimits())
        let (shell, stdin) = try CgroupTestHost.startPaused("/bin/sleep 30 & /bin/sleep 30 & /bin/sleep 30 & wait")
        defer { CgroupTestHost.cleanUp(task, [shell]) }
        try task.attach(pid: shell.processIdentifier)
        try CgroupTestHost.release(stdin)

        // sh + 3 sleeps, all born inside the cgroup.
        let deadline = Date().addingTimeInterval(5)
        while task.pids().count < 4 && Date() < deadline { usleep(10_000) }
        #expect(task.pids().count == 4)

        try task.killAll()
        #expect(task.pids().isEmpty)
        #expect(CgroupTestHost.waitForExit(shell))
        #expect(shell.terminationReason == .uncaughtSignal)
        try task.destroy()
        #expect(task.directories.allSatisfy { !CgroupTestHost.exists($0) })
    }

    @Test func memoryHogIsOOMKilled() throws {
        let name = CgroupTestHost.uniqueName("oom")
        let task = try driver.createV1(name: name, limits: CgroupLimits(memoryBytes: 64 << 20))
        let (process, stdin) = try CgroupTestHost.startPaused(
            #"exec /usr/bin/python3 -c "b=bytearray(512*1024*1024)""#)
        defer { CgroupTestHost.cleanUp(task, [process]) }
        for fd in task.procsFDs {
            try Cgroups.attach(pid: process.processIdentifier, procsFD: fd)
        }
        try CgroupTestHost.release(stdin)

        #expect(CgroupTestHost.waitForExit(process, seconds: 30))
        #expect(process.terminationReason == .uncaughtSignal)
        #expect(process.terminationStatus == SIGKILL)
        let usage = task.usage()
        #expect(usage.oomKills >= 1)
        let peak = try #require(usage.peakMemoryBytes)
        #expect(peak > 16 << 20)
        #expect(peak <= 64 << 20)
        #expect((usage.cpuNanos ?? 0) > 0)

        try task.destroy()
        #expect(task.directories.allSatisfy { !CgroupTestHost.exists($0) })
    }

    @Test func forkLoopHitsPidsLimit() throws {
        let name = CgroupTestHost.uniqueName("forks")
        let task = try driver.createV1(name: name, limits: CgroupLimits(pids: 8))
        let (shell, stdin) = try CgroupTestHost.startPaused(
            "i=0; while [ $i -lt 40 ]; do /bin/sleep 30 & i=$((i+1)); done; wait")
        defer { CgroupTestHost.cleanUp(task, [shell]) }
        try task.attach(pid: shell.processIdentifier)
        try CgroupTestHost.release(stdin)

        let deadline = Date().addingTimeInterval(10)
        while task.usage().pidsLimitHits == 0 && Date() < deadline { usleep(10_000) }
        #expect(task.usage().pidsLimitHits >= 1)
        #expect(task.pids().count <= 8)

        try task.killAll()
        #expect(task.pids().isEmpty)
        #expect(CgroupTestHost.waitForExit(shell))
        try task.destroy()
        #expect(task.directories.allSatisfy { !CgroupTestHost.exists($0) })
    }

    @Test func cpuTimeIsAccounted() throws {
        let name = CgroupTestHost.uniqueName("cpu")
        let task = try driver.createV1(name: name, limits: CgroupLimits(cpuQuotaMicros: 50_000))
        let (shell, stdin) = try CgroupTestHost.startPaused("i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done")
        defer { CgroupTestHost.cleanUp(task, [shell]) }
        try task.attach(pid: shell.processIdentifier)
        try CgroupTestHost.release(stdin)
        #expect(CgroupTestHost.waitForExit(shell, seconds: 60))
        #expect(shell.terminationStatus == 0)
        let nanos = try #require(task.usage().cpuNanos)
        #expect(nanos > 10_000_000) // the loop takes well over 10 ms of CPU
        let cpu = try #require(driver.directory(for: "cpu", name: name))
        let stat = CgroupParsing.parseKeyValues(CgroupTestHost.read("\(cpu)/cpu.stat") ?? "")
        #expect((stat["nr_periods"] ?? 0) > 0)
        try task.destroy()
    }

    @Test func destroyRefusesWhileBusyThenSucceedsAfterKill() throws {
        let name = CgroupTestHost.uniqueName("busy")
        let task = try driver.createV1(name: name, limits: CgroupLimits())
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sleep")
        process.arguments = ["30"]
        try process.run()
        defer { CgroupTestHost.cleanUp(task, [process]) }
        try task.attach(pid: process.processIdentifier)

        let error = #expect(throws: CgroupError.self) { try task.destroy() }
        #expect(error?.stage == "rmdir")
        #expect(error?.errno == EBUSY)
        #expect(error?.message.contains("call killAll() first") == true)
        #expect(task.procsFDs.isEmpty) // fds are closed even when rmdir fails

        try task.killAll()
        try task.destroy() // retries the directories that are left
        #expect(task.directories.allSatisfy { !CgroupTestHost.exists($0) })
    }

    @Test func failedCreateCleansUpAndReportsFileAndErrno() throws {
        let name = CgroupTestHost.uniqueName("einval")
        let error = #expect(throws: CgroupError.self) {
            try driver.create(name: name, limits: CgroupLimits(pids: -5))
        }
        let pids = try #require(driver.directory(for: "pids", name: name))
        #expect(error?.stage == "write")
        #expect(error?.path == "\(pids)/pids.max")
        #expect(error?.errno == EINVAL)
        #expect(error?.description.hasPrefix("write \(pids)/pids.max: EINVAL (Invalid argument)") == true)
        for hierarchy in driver.hierarchies {
            #expect(!CgroupTestHost.exists("\(hierarchy.mountPoint)/sealbox/\(name)"))
        }
    }

    @Test func duplicateAndInvalidNamesAreRejected() throws {
        let name = CgroupTestHost.uniqueName("dup")
        let task = try driver.create(name: name, limits: CgroupLimits())
        defer { CgroupTestHost.cleanUp(task) }
        let error = #expect(throws: CgroupError.self) { try driver.create(name: name, limits: CgroupLimits()) }
        #expect(error?.stage == "mkdir")
        #expect(error?.errno == EEXIST)
        // The original survives the failed duplicate.
        #expect(driver.hierarchies.allSatisfy {
            CgroupTestHost.exists("\($0.mountPoint)/sealbox/\(name)")
        })
        #expect(throws: CgroupError.self) { try driver.create(name: "../escape", limits: CgroupLimits()) }
        #expect(throws: CgroupError.self) { try driver.create(name: "a/b", limits: CgroupLimits()) }
        try task.destroy()
    }

    /// Runs inside the serialized suite, so no other test of this process is mid-flight: none of our
    /// directories may remain in any hierarchy.
    @Test func noLeftoverDirectories() throws {
        for hierarchy in driver.hierarchies {
            let parent = "\(hierarchy.mountPoint)/sealbox"
            let entries = try FileManager.default.contentsOfDirectory(atPath: parent)
            let ours = entries.filter { $0.hasPrefix(CgroupTestHost.namePrefix) }
            #expect(ours.isEmpty, "leftover in \(parent): \(ours)")
        }
    }
}
