import Foundation
import Glibc
import Testing
@testable import SealboxJail

@Suite("Running programs", .needsRoot)
struct ExecutorTests {
    @Test("python prints 42")
    func python() throws {
        let r = try Fixture.python("print(6*7)")
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
    func interpreters(command: [String], expected: String) throws {
        let r = try Fixture.run(command)
        #expect(r.status == .ok, "\(r.stderr) \(r.error ?? "")")
        #expect(r.stdout == expected)
    }

    @Test("exit codes follow Docker's convention")
    func exitCodes() throws {
        let nonzero = try Fixture.sh("exit 3")
        #expect(nonzero.status == .exitNonzero && nonzero.exitCode == 3)

        let killed = try Fixture.sh("kill -TERM $$")
        #expect(killed.status == .signaled)
        #expect(killed.signal == SIGTERM && killed.exitCode == 128 + SIGTERM)

        let missing = try Fixture.run(["no-such-program"])
        #expect(missing.status == .spawnFailed && missing.exitCode == 127)
        #expect(missing.error?.contains("not found") == true)

        let notExecutable = try Fixture.run(["/etc/passwd"])
        #expect(notExecutable.status == .spawnFailed && notExecutable.exitCode == 126)
        #expect(notExecutable.error?.contains("EACCES") == true)
    }

    @Test("stdin comes from the given host file; default /dev/null")
    func stdin() throws {
        let dir = try Fixture.temporaryDirectory("stdin")
        try "hello from the host\n".write(toFile: dir + "/in.txt", atomically: true, encoding: .utf8)
        let r = try Fixture.run(["cat"], stdin: .file(dir + "/in.txt"))
        #expect(r.stdout == "hello from the host\n")
        #expect(try Fixture.run(["cat"]).stdout == "")
        #expect(throws: JailError.self) { try Fixture.run(["cat"], stdin: .file(dir + "/missing")) }
    }

    @Test("a failing setup step comes back as stage and errno")
    func setupFailure() throws {
        // /proc is procfs by then: creating a mount point inside it fails in the child.
        let r = try Fixture.run(["true"], binds: [BindMount(hostPath: "/usr/bin/true", jailPath: "/proc/sealbox-x")])
        #expect(r.status == .spawnFailed)
        #expect(r.exitCode == 125)
        let error = try #require(r.error)
        #expect(error.hasPrefix("create mount point /proc/sealbox-x: E"), "\(error)")
    }

    @Test("a directory rootfs is used instead of the host's")
    func directoryRootfs() throws {
        // A tiny root filesystem: dash and the two libraries it needs, nothing else.
        let root = try Fixture.temporaryDirectory("rootfs")
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

        let r = try Fixture.run(["/bin/sh", "-c", "read x < /etc/marker; echo $x; test -e /usr/bin/python3 && echo host-visible; echo done"],
                                rootfs: .directory(root))
        #expect(r.status == .ok, "\(r.stderr) \(r.error ?? "")")
        #expect(r.stdout == "marker-rootfs\ndone\n")
    }
}
