import Glibc
import Testing

@testable import SealboxProfiles

@Suite("Compiling profiles")
struct CompilerTests {
    static func load(_ name: String) throws -> LoadedProfile {
        try ProfileLoader.load(name, profilesDirectory: Fixtures.profilesDirectory)
    }

    @Test func defaultProfileCompiles() throws {
        let compiler = SeccompCompiler()
        let filter = try compiler.compile(try Self.load("default"), trackViolations: false)
        #expect(filter.profileName == "default")
        #expect(filter.instructionCount > 0)
        #expect(filter.instructionCount <= 4096)
        #expect(filter.program.count == filter.instructionCount * 8)
        #expect(filter.digest.count == 64)
        #expect(filter.digest.allSatisfy { "0123456789abcdef".contains($0) })
        #expect(!filter.notifiesViolations)
        #expect(filter.violationErrno == EPERM)
        #expect(compiler.cachedCount == 1)
    }

    @Test func cacheHitsReturnTheSameFilter() throws {
        let compiler = SeccompCompiler()
        let loaded = try Self.load("default")
        let first = try compiler.compile(loaded, trackViolations: false)
        let second = try compiler.compile(loaded, trackViolations: false)
        #expect(second.digest == first.digest)
        #expect(second.program == first.program)
        #expect(compiler.cachedCount == 1)
        // Same bytes under another name: same digest and program, the caller's name.
        let renamed = try ProfileLoader.parse(loaded.source, name: "copy")
        let third = try compiler.compile(renamed, trackViolations: false)
        #expect(third.digest == first.digest)
        #expect(third.profileName == "copy")
        #expect(compiler.cachedCount == 1)
    }

    @Test func trackingViolationsIsADifferentFilter() throws {
        let compiler = SeccompCompiler()
        let loaded = try Self.load("default")
        let plain = try compiler.compile(loaded, trackViolations: false)
        let tracked = try compiler.compile(loaded, trackViolations: true)
        #expect(tracked.digest != plain.digest)
        #expect(tracked.program != plain.program)
        #expect(tracked.notifiesViolations)
        #expect(tracked.violationErrno == EPERM)
        #expect(compiler.cachedCount == 2)
        // The default action appears as a `ret` in the program: SECCOMP_RET_USER_NOTIF when
        // tracking, SECCOMP_RET_ERRNO|EPERM otherwise.
        let userNotif: UInt32 = 0x7FC0_0000
        let errnoEPERM: UInt32 = 0x0005_0000 | UInt32(EPERM)
        #expect(Self.returnValues(tracked.program).contains(userNotif))
        #expect(!Self.returnValues(tracked.program).contains(errnoEPERM))
        #expect(Self.returnValues(plain.program).contains(errnoEPERM))
        #expect(!Self.returnValues(plain.program).contains(userNotif))
        // libseccomp 2.5.4 prints the notify action as a raw number in its pseudo filter code.
        #expect(try compiler.pseudoFilterCode(loaded, trackViolations: true).contains("action 0x7fc00000"))
        #expect(try compiler.pseudoFilterCode(loaded, trackViolations: false).contains("action ERRNO(1)"))
    }

    /// The constants of all `BPF_RET | BPF_K` instructions (struct sock_filter: u16 code, u8 jt,
    /// u8 jf, u32 k; native endian).
    static func returnValues(_ program: [UInt8]) -> Set<UInt32> {
        var out = Set<UInt32>()
        program.withUnsafeBytes { raw in
            for i in 0..<(program.count / 8) {
                let code = raw.loadUnaligned(fromByteOffset: i * 8, as: UInt16.self)
                if code == 0x06 { out.insert(raw.loadUnaligned(fromByteOffset: i * 8 + 4, as: UInt32.self)) }
            }
        }
        return out
    }

    @Test func trackingNeedsAnErrnoDefault() throws {
        let compiler = SeccompCompiler()
        let filter = try compiler.compile(try Self.load("permissive"), trackViolations: true)
        // An allowing default with no kill rule has nothing native to notify; what reaches the
        // supervisor is only the bad-arch action (a call through an ABI the profile does not
        // list), to be named and killed.
        #expect(filter.notifiesViolations)
        let policy = try #require(filter.policy)
        #expect(policy.bySyscall.isEmpty && policy.byArguments.isEmpty)
        #expect(Self.returnValues(filter.program).contains(0x7FC0_0000))  // SECCOMP_RET_USER_NOTIF
        #expect(!Self.returnValues(try compiler.compile(try Self.load("permissive"), trackViolations: false).program).contains(0x7FC0_0000))
        #expect(filter.instructionCount > 0)
        let custom = try Fixtures.parse(#"{"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 13, "syscalls": [{"names": ["exit_group"], "action": "SCMP_ACT_ALLOW"}]}"#)
        let tracked = try compiler.compile(custom, trackViolations: true)
        #expect(tracked.notifiesViolations)
        #expect(tracked.violationErrno == EACCES)
    }

    @Test func concurrentCompilesShareOneEntry() async throws {
        let compiler = SeccompCompiler()
        let loaded = try Self.load("default")
        let digests = try await withThrowingTaskGroup(of: String.self) { group in
            for _ in 0..<16 {
                group.addTask { try compiler.compile(loaded, trackViolations: false).digest }
            }
            return try await group.reduce(into: Set<String>()) { $0.insert($1) }
        }
        #expect(digests.count == 1)
        #expect(compiler.cachedCount == 1)
    }

    @Test func profilesBuiltInCode() throws {
        let bad = SeccompProfile(defaultAction: "SCMP_ACT_ERRNO", syscalls: [.init(names: ["read"], action: "SCMP_ACT_BOGUS")])
        #expect(throws: ProfileError(#"profile "inline": syscalls[0].action: unknown action "SCMP_ACT_BOGUS""#)) {
            try LoadedProfile(name: "inline", profile: bad)
        }
        let compiler = SeccompCompiler()
        let a = try LoadedProfile(name: "a", profile: SeccompProfile(defaultAction: "SCMP_ACT_ALLOW", syscalls: [.init(names: ["ptrace"], action: "SCMP_ACT_ERRNO")]))
        let b = try LoadedProfile(name: "b", profile: SeccompProfile(defaultAction: "SCMP_ACT_ALLOW", syscalls: [.init(names: ["bpf"], action: "SCMP_ACT_ERRNO")]))
        let fa = try compiler.compile(a, trackViolations: false)
        let fb = try compiler.compile(b, trackViolations: false)
        #expect(fa.digest != fb.digest)
        #expect(fa.program != fb.program)
        #expect(try Probe.syscall(nr("ptrace"), [0x7FFF], filter: fa).outcome == .exited(EPERM))
        #expect(try Probe.syscall(nr("ptrace"), [0x7FFF], filter: fb).outcome != .exited(EPERM))
    }

    /// What the default profile must never allow, and how it denies them.
    static let mustDeny = [
        "ptrace", "process_vm_readv", "process_vm_writev",
        "mount", "umount2", "pivot_root", "fsopen", "fsconfig", "fsmount", "fspick", "move_mount", "open_tree", "mount_setattr",
        "unshare", "setns", "keyctl", "add_key", "request_key", "bpf", "perf_event_open", "userfaultfd",
        "io_uring_setup", "io_uring_enter", "io_uring_register",
        "kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module", "reboot", "swapon", "swapoff",
        "clock_settime", "clock_adjtime", "adjtimex", "settimeofday", "open_by_handle_at", "name_to_handle_at",
        "chroot", "acct", "syslog", "modify_ldt", "iopl", "ioperm",
    ]

    @Test func defaultProfileAllowsNoneOfTheDangerousSyscalls() throws {
        let loaded = try Self.load("default")
        let plan = try ProfileValidator.plan(loaded.profile, name: loaded.name)
        #expect(plan.defaultAction == .errno(EPERM))
        #expect(plan.architectures.map(\.name) == ["SCMP_ARCH_X86_64"])
        let allowed = Set(plan.rules.filter { $0.action == .allow }.flatMap { $0.syscalls.map(\.name) })
        for name in Self.mustDeny {
            #expect(!allowed.contains(name), "\(name) must not be allowed")
        }
        // Only argument-checked rules for these.
        for name in ["clone", "socket", "personality", "ioctl"] {
            let rules = plan.rules.filter { $0.syscalls.contains { $0.name == name } }
            #expect(!rules.isEmpty && rules.allSatisfy(\.isConditional), "\(name) must be allowed only conditionally")
        }
        #expect(plan.rules.filter { $0.syscalls.contains { $0.name == "clone3" } }.map(\.action) == [.errno(ENOSYS)])
        // Every name in the profile exists on x86_64 (no silently skipped entries).
        #expect(plan.rules.allSatisfy { $0.syscalls.allSatisfy { $0.number >= 0 } })
    }

    @Test func permissiveProfileDeniesTheDangerousSyscalls() throws {
        let loaded = try Self.load("permissive")
        let plan = try ProfileValidator.plan(loaded.profile, name: loaded.name)
        #expect(plan.defaultAction == .allow)
        let denied = Set(plan.rules.filter { $0.action == .errno(EPERM) && !$0.isConditional }.flatMap { $0.syscalls.map(\.name) })
        for name in Self.mustDeny {
            #expect(denied.contains(name), "\(name) must be denied")
        }
        // Everything the catalogue calls dangerous (clone3 answers ENOSYS instead, for glibc).
        for name in SyscallCatalog.dangerousNames.subtracting(["clone3"]) {
            #expect(denied.contains(name), "\(name) is dangerous and must be denied")
        }
    }
}
