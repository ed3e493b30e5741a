import Foundation
import Glibc
import SealboxTestSupport
import Testing
@testable import SealboxJail

@Suite("Running programs", .needsRoot)
struct ExecutorTests {
    @Test("python prints 42")
    func python() async throws {
        let r = try await Fixture.python("print(6*7)")
        #expect(r.status == .ok)
        #expect(r.exitCode == 0)
        #expect(r.stdout == "42\n")
        #expect(r.stdoutBytes == 3)
        #expect(r.wallMs > 0)
        #expect(r.cgroup == "v1" || r.cgroup == "v2")
        #expect(r.peakMemoryBytes > 0)
        #expect(r.profile == "default")
    }

    @Test("interpreters", arguments: [
        (["node", "-e", "console.log(6*7)"], "42\n"),
        (["bash", "-c", "echo $((6*7))"], "42\n"),
        (["sh", "-c", "echo 42"], "42\n"),
        (["awk", "BEGIN { print 6*7 }"], "42\n"),
    ])
    func interpreters(command: [String], expected: String) async throws {
        let r = try await Fixture.run(command)
        #expect(r.status == .ok, "\(r.stderr) \(r.error ?? "")")
        #expect(r.stdout == expected, "\(r.status) \(r.error ?? r.stderr)")
    }

    @Test("exit codes follow Docker's convention")
    func exitCodes() async throws {
        let nonzero = try await Fixture.sh("exit 3")
        #expect(nonzero.status == .exitNonzero && nonzero.exitCode == 3)

        let killed = try await Fixture.sh("kill -TERM $$")
        #expect(killed.status == .signaled)
        #expect(killed.signal == SIGTERM && killed.exitCode == 128 + SIGTERM)

        let missing = try await Fixture.run(["no-such-program"])
        #expect(missing.status == .spawnFailed && missing.exitCode == 127)
        #expect(missing.error?.contains("not found") == true)

        let notExecutable = try await Fixture.run(["/etc/passwd"])
        #expect(notExecutable.status == .spawnFailed && notExecutable.exitCode == 126)
        #expect(notExecutable.error?.contains("EACCES") == true)
    }

    @Test("stdin comes from the given host file; default /dev/null")
    func stdin() async throws {
        let dir = try TemporaryDirectory.make("stdin")
        defer { TemporaryDirectory.remove(dir) }
        try "hello from the host\n".write(toFile: dir + "/in.txt", atomically: true, encoding: .utf8)
        let r = try await Fixture.run(["cat"], stdin: .file(dir + "/in.txt"))
        #expect(r.stdout == "hello from the host\n")
        #expect(try await Fixture.run(["cat"]).stdout == "")
        await #expect(throws: JailError.self) { try await Fixture.run(["cat"], stdin: .file(dir + "/missing")) }
    }

    @Test("a failing setup step comes back as stage and errno")
    func setupFailure() async throws {
        // /proc is procfs by then: creating a mount point inside it fails in the child.
        let r = try await Fixture.run(["true"], binds: [BindMount(hostPath: "/usr/bin/true", jailPath: "/proc/sealbox-x")])
        #expect(r.status == .spawnFailed)
        #expect(r.exitCode == 125)
        let error = try #require(r.error)
        #expect(error.hasPrefix("create mount point /proc/sealbox-x: E"), "\(error)")
    }

    @Test("a directory rootfs is used instead of the host's")
    func directoryRootfs() async throws {
        // A tiny root filesystem: dash and the two libraries it needs, nothing else.
        let root = try TemporaryDirectory.make("rootfs")
        defer { TemporaryDirectory.remove(root) }
        let fm = FileManager.default
        for dir in ["usr/bin", "usr/lib/x86_64-linux-gnu", "usr/lib64", "etc"] {
            try fm.createDirectory(atPath: root + "/" + dir, withIntermediateDirectories: true)
        }
        try fm.copyItem(atPath: "/usr/bin/dash", toPath: root + "/usr/bin/sh")
        try fm.copyItem(atPath: "/usr/lib/x86_64-linux-gnu/libc.so.6", toPath: root + "/usr/lib/x86_64-linux-gnu/libc.so.6")
        // The host's loader path is a symlink; copy the file it points to.
        let loader = URL(fileURLWithPath: "/usr/lib64/ld-linux-x86-64.so.2").resolvingSymlinksInPath().path
        try fm.copyItem(atPath: loader, toPath: root + "/usr/lib64/ld-linux-x86-64.so.2")
        try fm.createSymbolicLink(atPath: root + "/bin", withDestinationPath: "usr/bin")
        try fm.createSymbolicLink(atPath: root + "/lib", withDestinationPath: "usr/lib")
        try fm.createSymbolicLink(atPath: root + "/lib64", withDestinationPath: "usr/lib64")
        try "marker-rootfs\n".write(toFile: root + "/etc/marker", atomically: true, encoding: .utf8)
        defer { try? fm.removeItem(atPath: root) }

        let r = try await Fixture.run(["/bin/sh", "-c", "read x < /etc/marker; echo $x; test -e /usr/bin/python3 && echo host-visible; echo done"],
                                rootfs: .directory(root))
        #expect(r.status == .ok, "\(r.stderr) \(r.error ?? "")")
        #expect(r.stdout == "marker-rootfs\ndone\n")
    }
}

/// Places jails in the unified (v2) hierarchy without limits: on this project's hybrid hosts
/// cgroup2 has no controllers, but CLONE_INTO_CGROUP, cgroup.kill and removal work there.
struct PlacementOnlyV2Driver: CgroupDriver {
    let inner: V2CgroupDriver
    var version: CgroupVersion { .v2 }
    func create(name: String, limits: CgroupLimits) throws(CgroupError) -> any TaskCgroup {
        try inner.create(name: name, limits: CgroupLimits())
    }

    static func unifiedRoot() -> String? {
        // cgroup.controllers exists only at the root of a cgroup2 hierarchy.
        ["/sys/fs/cgroup/unified", "/sys/fs/cgroup"].first { access($0 + "/cgroup.controllers", F_OK) == 0 }
    }
}

@Suite("cgroup v2 placement", .needsRoot)
struct V2PlacementTests {
    @Test("the child is born in its v2 cgroup (CLONE_INTO_CGROUP), which is killed and removed after")
    func cloneIntoCgroup() async throws {
        let root = try #require(PlacementOnlyV2Driver.unifiedRoot(), "no cgroup2 hierarchy mounted")
        let driver = PlacementOnlyV2Driver(inner: try V2CgroupDriver(root: root, requireControllers: false))
        let executor = try Executor(configuration: .init(dataDirectory: Binaries.repoRoot), cgroupDriver: driver)
        let id = "v2test-\(UUID().uuidString.prefix(8).lowercased())"
        let directory = "\(root)/sealbox/\(StaleCgroups.taskName(runID: id))"
        let marker = "v2marker-\(id)"
        // The jail waits on stdin (a FIFO this test holds open) until the test has looked at the
        // cgroup from the host, so the check does not race the jail's lifetime under load.
        let fifo = NSTemporaryDirectory() + "sealbox-v2-\(id).fifo"
        #expect(mkfifo(fifo, 0o600) == 0)
        defer { unlink(fifo) }
        let release = open(fifo, O_RDWR | O_CLOEXEC)  // O_RDWR: does not wait for a reader
        #expect(release >= 0)
        async let result = executor.run(JailSpec(
            command: ["/bin/bash", "-c", "cat /proc/self/cgroup; (exec -a \(marker) sleep 60 &); read x"],
            stdin: .file(fifo), id: id))

        // While it runs, the host sees the jail's processes in the task cgroup.
        var procsWhileRunning: [String] = []
        for _ in 0..<6000 where procsWhileRunning.count < 2 {
            try await Task.sleep(for: .milliseconds(10))
            procsWhileRunning = ((try? String(contentsOfFile: directory + "/cgroup.procs", encoding: .utf8)) ?? "")
                .split(separator: "\n").map(String.init)
        }
        _ = write(release, "go\n", 3)
        close(release)
        let r = try await result
        #expect(r.status == .ok, "\(r.error ?? r.stderr)")
        #expect(r.cgroup == "v2")
        #expect(procsWhileRunning.count >= 2, "init and the program: \(procsWhileRunning)")
        // The cgroup namespace is rooted at the task cgroup.
        #expect(r.stdout.split(separator: "\n").contains("0::/"), "\(r.stdout)")
        #expect(!FileManager.default.fileExists(atPath: directory))
        #expect(Fixture.hostProcesses(containing: marker).isEmpty)
    }
}

/// scripts/test.sh builds a debootstrap rootfs (scripts/build-rootfs.sh) and names it in
/// SEALBOX_TEST_ROOTFS, so this runs in CI.
@Suite("debootstrap rootfs", .needsRoot,
       .enabled(if: ProcessInfo.processInfo.environment["SEALBOX_TEST_ROOTFS"] != nil,
                "set SEALBOX_TEST_ROOTFS to a scripts/build-rootfs.sh directory (scripts/test.sh does)"))
struct DebootstrapRootfsTests {
    @Test("python runs from the standalone rootfs, and nothing of the host's /usr is there")
    func standalone() async throws {
        let dir = try #require(ProcessInfo.processInfo.environment["SEALBOX_TEST_ROOTFS"])
        let r = try await Fixture.run(["python3", "-c", "import os, pwd; print(6*7, pwd.getpwuid(os.getuid()).pw_name, os.path.exists('/usr/bin/node'), os.path.exists('/.sealbox-rootfs'))"],
                                rootfs: .directory(dir))
        #expect(r.status == .ok, "\(r.stderr) \(r.error ?? "")")
        #expect(r.stdout == "42 sandbox False False\n")
    }
}
