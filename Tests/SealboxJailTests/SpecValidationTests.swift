import SealboxTestSupport
import Testing
@testable import SealboxJail

@Suite("Spec validation")
struct SpecValidationTests {
    @Test("environment names", arguments: [("PATH", true), ("_x1", true), ("A_B", true), ("1A", false), ("A-B", false), ("", false), ("A=B", false), ("É", false)])
    func environmentNames(name: String, valid: Bool) {
        #expect(SpecValidator.isEnvironmentName(name) == valid)
    }

    @Test("bad specs are refused with a readable reason", arguments: [
        (JailSpec(command: []), "no command"),
        (JailSpec(command: ["x"], environment: [("SEALBOX_TOKEN", "t")]), "reserved"),
        (JailSpec(command: ["x"], environment: [("9X", "t")]), "invalid environment variable name"),
        (JailSpec(command: ["x"], files: [SeedFile(name: "../x", contents: [])]), "invalid file name"),
        (JailSpec(command: ["x"], files: [SeedFile(name: "a", contents: []), SeedFile(name: "a", contents: [])]), "given twice"),
        (JailSpec(command: ["x"], limits: Limits(timeoutMs: 0)), "timeout"),
        (JailSpec(command: ["x"], limits: Limits(memoryBytes: 1024)), "memory limit"),
        (JailSpec(command: ["x"], limits: Limits(pids: 0)), "pids limit"),
        (JailSpec(command: ["x"], limits: Limits(diskBytes: 10)), "disk limit"),
        (JailSpec(command: ["x"], limits: Limits(cpus: 0)), "cpus"),
        (JailSpec(command: ["x\0y"]), "NUL"),
    ])
    func refused(spec: JailSpec, fragment: String) {
        #expect {
            try SpecValidator.validate(spec)
        } throws: { error in
            (error as? JailError)?.code == .invalidSpec && ((error as? JailError)?.message.contains(fragment) ?? false)
        }
    }

    @Test("the jail environment is PATH, HOME, LANG and the caller's values only")
    func environment() {
        let spec = JailSpec(command: ["x"], environment: [("LANG", "de_DE.UTF-8"), ("GREETING", "hi")])
        let env = SpecValidator.environment(spec)
        #expect(env.map(\.0) == ["PATH", "HOME", "LANG", "GREETING"])
        #expect(env.first { $0.0 == "LANG" }?.1 == "de_DE.UTF-8")
        #expect(env.first { $0.0 == "HOME" }?.1 == "/work")
    }

    @Test("run ids", arguments: [("abc-1_2", true), ("", false), ("a/b", false), ("..", false), (String(repeating: "a", count: 49), false)])
    func runIDs(id: String, valid: Bool) {
        #expect(((try? SpecValidator.runID(id)) != nil) == valid)
    }

    @Test("filesystem plan: read-only rootfs binds, fresh /proc, five devices, writable /work and /tmp")
    func plan() throws {
        let plan = try FilesystemPlan.build(rootfs: .host, etcDirectory: Binaries.repoRoot + "/rootfs/etc",
                                            files: [SeedFile(name: "main.py", contents: Array("x".utf8))], binds: [])
        let binds = plan.ops.compactMap { op -> (String, String, UInt64)? in
            if case .bind(let source, let attributes, _) = op.kind { return (source, op.jailPath, attributes) }
            return nil
        }
        #expect(binds.contains { $0.0 == "/usr" && $0.1 == "/usr" && $0.2 & FilesystemPlan.readOnlyAttributes == FilesystemPlan.readOnlyAttributes })
        #expect(Set(binds.filter { $0.1.hasPrefix("/dev/") }.map(\.1)) == Set(FilesystemPlan.deviceNodes.map { "/dev/" + $0 }))
        #expect(binds.contains { $0.0.isEmpty && $0.1 == "/work" })
        #expect(binds.contains { $0.0.isEmpty && $0.1 == "/tmp" })
        #expect(plan.ops.contains { $0.kind == .proc && $0.jailPath == "/proc" })
        #expect(plan.ops.contains { $0.jailPath == "/etc/passwd" })
        #expect(plan.ops.contains { $0.jailPath == "/work/main.py" })
        // Nothing of the host's private places is planned.
        for path in ["/root", "/home", "/run", "/var", "/etc/shadow", Binaries.repoRoot] {
            #expect(!plan.ops.contains { $0.jailPath == path || $0.jailPath.hasPrefix(path + "/") }, "\(path) must not be in the jail")
        }
    }

    @Test("a directory rootfs must look like one")
    func badRootfs() throws {
        let dir = try TemporaryDirectory.make("notroot")
        defer { TemporaryDirectory.remove(dir) }
        #expect {
            try FilesystemPlan.build(rootfs: .directory(dir), etcDirectory: "", files: [], binds: [])
        } throws: { error in
            (error as? JailError)?.code == .rootfs
        }
        #expect(throws: JailError.self) {
            try FilesystemPlan.build(rootfs: .directory("/nonexistent-sealbox"), etcDirectory: "", files: [], binds: [])
        }
    }
}

@Suite("Host checks")
struct HostCheckTests {
    @Test("without root and without user namespaces sealbox says what to do", arguments: [
        ("/proc/sys/kernel/unprivileged_userns_clone", "unprivileged_userns_clone=0"),
        ("/proc/sys/user/max_user_namespaces", "max_user_namespaces=0"),
    ])
    func noUserNamespaces(file: String, fragment: String) {
        #expect {
            try HostCheck.requireJailSupport(euid: 1000, read: { $0 == file ? "0\n" : "1\n" })
        } throws: { error in
            let e = error as? JailError
            return e?.code == .unsupportedHost && (e?.message.contains(fragment) ?? false) && (e?.message.contains("run sealbox as root") ?? false)
        }
    }

    @Test("root passes even where unprivileged user namespaces are off")
    func rootPasses() throws {
        try HostCheck.requireJailSupport(euid: 0, read: { _ in "0\n" })
    }
}
