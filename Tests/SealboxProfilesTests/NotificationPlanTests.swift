import Glibc
import Testing
@testable import SealboxProfiles

/// Which actions become notifications, and the answers the supervisor gives for them.
@Suite("notification plan")
struct NotificationPlanTests {
    static func profile(_ json: String) throws -> LoadedProfile {
        try ProfileLoader.parse(Array(json.utf8), name: "test.json")
    }

    static func number(_ name: String) -> SyscallKey { .native(SyscallNames.number(of: name)!) }

    let compiler = SeccompCompiler()

    @Test func defaultProfileTracksTheErrnoDefaultOnly() throws {
        let loaded = try ProfileLoader.load("default", profilesDirectory: Fixtures.profilesDirectory)
        let policy = try #require(try compiler.compile(loaded, tracking: .denials).policy)
        #expect(policy.fallback == .fail(errno: EPERM))
        #expect(policy.bySyscall.isEmpty, "clone3 → ENOSYS stays a silent explicit rule")
        #expect(try compiler.compile(loaded, tracking: .off).policy == nil)
        let everything = try #require(try compiler.compile(loaded, tracking: .everything).policy)
        #expect(everything.bySyscall == [Self.number("clone3"): .fail(errno: ENOSYS)])
    }

    @Test func killRulesAndKillDefaults() throws {
        let rule = try Self.profile(#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["read","write","exit_group"],"action":"SCMP_ACT_ALLOW"},{"names":["ptrace"],"action":"SCMP_ACT_KILL_PROCESS"},{"names":["kcmp"],"action":"SCMP_ACT_KILL"}]}"#)
        let p = try #require(try compiler.compile(rule, tracking: .denials).policy)
        #expect(p.fallback == .fail(errno: EPERM))
        #expect(p.bySyscall == [Self.number("ptrace"): .kill, Self.number("kcmp"): .kill])
        // Not tracked: the kernel kills by itself.
        #expect(try compiler.compile(rule, tracking: .off).policy == nil)

        let killDefault = try Self.profile(#"{"defaultAction":"SCMP_ACT_KILL_PROCESS","syscalls":[{"names":["read"],"action":"SCMP_ACT_ALLOW"}]}"#)
        #expect(try compiler.compile(killDefault, tracking: .denials).policy?.fallback == .kill)
        // An allowing default notifies only the converted rules.
        let allowDefault = try Self.profile(#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["ptrace"],"action":"SCMP_ACT_KILL_PROCESS"},{"names":["keyctl"],"action":"SCMP_ACT_ERRNO"}]}"#)
        let a = try #require(try compiler.compile(allowDefault, tracking: .denials).policy)
        #expect(a.bySyscall == [Self.number("ptrace"): .kill])
        let code = try compiler.pseudoFilterCode(allowDefault, trackViolations: true)
        // libseccomp prints SECCOMP_RET_USER_NOTIF as its raw value.
        #expect(code.contains("action 0x7fc00000;") && code.contains("action ERRNO(1);") && !code.contains("KILL_PROCESS;\n  # default"), "\(code)")
    }

    @Test func conditionalRulesConvertOnlyWhereExact() throws {
        // Under a notifying default, a conditional kill cannot be told apart from the default
        // by the syscall alone: it keeps its kill action (untracked, still enforced).
        let conditional = try Self.profile(#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["socket"],"action":"SCMP_ACT_KILL_PROCESS","args":[{"index":0,"value":17,"op":"SCMP_CMP_EQ"}]}]}"#)
        let p = try #require(try compiler.compile(conditional, tracking: .denials).policy)
        #expect(p.bySyscall.isEmpty)
        let code = try compiler.pseudoFilterCode(conditional, trackViolations: true)
        #expect(code.contains("action KILL_PROCESS;\n  # default action\n  action 0x7fc00000;"), "\(code)")
        // Two different answers for one syscall: neither is converted.
        let mixed = try Self.profile(#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["socket"],"action":"SCMP_ACT_KILL_PROCESS","args":[{"index":0,"value":17,"op":"SCMP_CMP_EQ"}]},{"names":["socket"],"action":"SCMP_ACT_ERRNO","args":[{"index":0,"value":16,"op":"SCMP_CMP_EQ"}]}]}"#)
        let m = try #require(try compiler.compile(mixed, tracking: .everything).policy)  // the bad-arch action notifies
        #expect(m.bySyscall.isEmpty && m.byArguments.isEmpty)
    }

    struct CheckCase: Sendable, CustomTestStringConvertible {
        var op: String, value: UInt64, valueTwo: UInt64, arg: UInt64, holds: Bool
        var testDescription: String { "\(op) \(value)/\(valueTwo) on \(arg): \(holds)" }
    }

    static let checkCases: [CheckCase] = [
        .init(op: "SCMP_CMP_EQ", value: 5, valueTwo: 0, arg: 5, holds: true),
        .init(op: "SCMP_CMP_EQ", value: 5, valueTwo: 0, arg: 0x1_0000_0005, holds: false),
        .init(op: "SCMP_CMP_NE", value: 5, valueTwo: 0, arg: 6, holds: true),
        .init(op: "SCMP_CMP_LT", value: 5, valueTwo: 0, arg: 4, holds: true),
        .init(op: "SCMP_CMP_LE", value: 5, valueTwo: 0, arg: 5, holds: true),
        .init(op: "SCMP_CMP_GE", value: 5, valueTwo: 0, arg: 4, holds: false),
        .init(op: "SCMP_CMP_GT", value: 5, valueTwo: 0, arg: 6, holds: true),
        .init(op: "SCMP_CMP_MASKED_EQ", value: 0x7E02_0000, valueTwo: 0, arg: 0x0001_0000 | 17, holds: true),
        .init(op: "SCMP_CMP_MASKED_EQ", value: 0x7E02_0000, valueTwo: 0, arg: 0x1000_0000, holds: false),
    ]

    @Test("argument checks evaluate like the kernel's comparisons", arguments: checkCases)
    func argumentCheck(_ c: CheckCase) {
        let check = ArgumentCheck(index: 0, op: c.op, value: c.value, valueTwo: c.valueTwo)
        #expect(check.holds([c.arg, 0, 0, 0, 0, 0]) == c.holds)
    }

    @Test func recordingPolicyKeepsTheBaseDecisions() throws {
        let base = try ProfileLoader.load("default", profilesDirectory: Fixtures.profilesDirectory)
        let learner = try ProfileLearner(base: base, dangerous: SyscallCatalog.dangerousNames)
        let filter = try learner.recordingFilter()
        let policy = try #require(filter.policy)
        let none = [UInt64](repeating: 0, count: 6)
        #expect(policy.answer(for: Self.number("getpid"), args: none) == .proceed, "allowed by the base")
        #expect(policy.answer(for: Self.number("vhangup"), args: none) == .proceed, "denied only by the base's default: learnable")
        #expect(policy.answer(for: Self.number("ptrace"), args: none) == .fail(errno: EPERM), "dangerous")
        #expect(policy.answer(for: Self.number("clone3"), args: none) == .fail(errno: ENOSYS), "the base's explicit answer")
        #expect(policy.answer(for: Self.number("socket"), args: [1, 1, 0, 0, 0, 0]) == .proceed, "AF_UNIX")
        #expect(policy.answer(for: Self.number("socket"), args: [16, 3, 0, 0, 0, 0]) == .fail(errno: EPERM), "AF_NETLINK")
        #expect(policy.answer(for: Self.number("clone"), args: [0x1000_0011, 0, 0, 0, 0, 0]) == .fail(errno: EPERM), "CLONE_NEWUSER")
        // A foreign ABI is never learned or let through: the recording filter's bad-arch action
        // notifies too, and the answer is the kill a learned profile's bad-arch action gives.
        #expect(policy.answer(for: Self.i386(20), args: none) == .kill, "i386 getpid")
        #expect(policy.answer(for: Self.x32("getpid"), args: none) == .kill, "x32 getpid")
        #expect(CompilerTests.returnValues(filter.program).contains(0x7FC0_0000))
    }

    static func i386(_ number: Int32) -> SyscallKey { SyscallKey(arch: 0x4000_0003, number: number) }  // AUDIT_ARCH_I386
    static func x32(_ name: String) -> SyscallKey { SyscallKey(arch: Self.number(name).arch, number: SyscallKey.x32SyscallBit | Self.number(name).number) }

    @Test("calls through ABIs a profile does not list are killed, whatever the fallback; listed ones follow the profile")
    func foreignABIs() throws {
        let none = [UInt64](repeating: 0, count: 6)
        let p = try #require(try compiler.compile(try ProfileLoader.load("default", profilesDirectory: Fixtures.profilesDirectory), tracking: .denials).policy)
        #expect(p.answer(for: Self.number("ptrace"), args: none) == .fail(errno: EPERM))
        #expect(p.answer(for: Self.i386(20), args: none) == .kill)
        #expect(p.answer(for: Self.x32("getpid"), args: none) == .kill)
        #expect(Self.i386(1).name == "exit (x86)" && Self.i386(1).abi == "x86" && !Self.i386(1).isNative)
        #expect(Self.x32("getpid").name == "getpid (x32)" && Self.x32("getpid").abi == "x32" && Self.x32("getpid").isX32)
        #expect(Self.number("getpid").abi == nil && Self.number("getpid").isNative)
        let listing = try Self.profile(#"{"defaultAction":"SCMP_ACT_ERRNO","defaultErrnoRet":13,"architectures":["SCMP_ARCH_X86_64","SCMP_ARCH_X86","SCMP_ARCH_X32"],"syscalls":[{"names":["getpid"],"action":"SCMP_ACT_ALLOW"},{"names":["kcmp"],"action":"SCMP_ACT_KILL_PROCESS"}]}"#)
        let l = try #require(try compiler.compile(listing, tracking: .denials).policy)
        #expect(l.answer(for: Self.i386(24), args: none) == .fail(errno: EACCES), "a listed ABI's denial is the default's")
        #expect(l.answer(for: Self.x32("getuid"), args: none) == .fail(errno: EACCES))
        // A kill rule applies on every listed ABI, x32 included (its key is the x86_64 arch).
        #expect(l.answer(for: Self.x32("kcmp"), args: none) == .kill)
        #expect(l.answer(for: Self.number("kcmp"), args: none) == .kill)
    }
}
