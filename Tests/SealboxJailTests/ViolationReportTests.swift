import Foundation
import Glibc
import SealboxProfiles
import SealboxTestSupport
import Testing
@testable import SealboxJail

/// A denied syscall is named in the result, whatever the profile's action: an errno from the
/// default, a kill from a rule or from the default, explicit rules when asked (`.everything`).
@Suite("violation reporting", .serialized, .enabled(if: geteuid() == 0, "jails need root here"))
struct ViolationReportTests {
    /// default.json plus one extra rule (or another default action), written to a temp file.
    static func variantOfDefault(_ edit: (inout [String: Any]) -> Void) throws -> ProfileReference {
        let data = try Data(contentsOf: URL(fileURLWithPath: Binaries.repoRoot + "/profiles/default.json"))
        var profile = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        edit(&profile)
        let path = try TemporaryDirectory.make("profile") + "/variant.json"
        try JSONSerialization.data(withJSONObject: profile).write(to: URL(fileURLWithPath: path))
        return .file(path)
    }

    static func addingRule(_ rule: [String: Any]) throws -> ProfileReference {
        try variantOfDefault { p in p["syscalls"] = (p["syscalls"] as? [Any] ?? []) + [rule] }
    }

    func probe(_ names: [String], profile: ProfileReference, tracking: ViolationTracking? = nil) async throws -> JailResult {
        var spec = JailSpec(command: ["/work/probe"] + names, files: [try Fixture.probe()], profile: profile)
        spec.violationTracking = tracking
        return try await Fixture.jail().run(spec)
    }

    @Test("a kill rule: the run ends seccomp_violation with SIGSYS and names the syscall")
    func killRuleIsNamed() async throws {
        let profile = try Self.addingRule(["names": ["ptrace"], "action": "SCMP_ACT_KILL_PROCESS"])
        let r = try await probe(["getpid", "ptrace", "getpid"], profile: profile)
        #expect(r.status == .seccompViolation)
        #expect(r.signal == SIGSYS && r.exitCode == 128 + SIGSYS)
        #expect(r.stdout == "getpid ok\n", "the call never ran and nothing after it did")
        #expect(r.violations == [.init(syscall: "ptrace", count: 1, action: "kill")])
    }

    @Test("a kill default action: the first call outside the allowlist is named")
    func killDefaultIsNamed() async throws {
        let profile = try Self.variantOfDefault { p in
            p["defaultAction"] = "SCMP_ACT_KILL_PROCESS"
            p.removeValue(forKey: "defaultErrnoRet")
        }
        let r = try await probe(["getpid", "keyctl"], profile: profile)
        #expect(r.status == .seccompViolation && r.signal == SIGSYS)
        #expect(r.violations == [.init(syscall: "keyctl", count: 1, action: "kill")])
    }

    @Test("without tracking the kernel kills by itself: same status, no name")
    func untrackedKillStillSIGSYS() async throws {
        let profile = try Self.addingRule(["names": ["ptrace"], "action": "SCMP_ACT_KILL_PROCESS"])
        let executor = try Executor(configuration: .init(dataDirectory: Binaries.repoRoot, trackViolations: false))
        let r = try await executor.run(JailSpec(command: ["/work/probe", "ptrace"], files: [try Fixture.probe()], profile: profile))
        #expect(r.status == .seccompViolation && r.signal == SIGSYS && r.violations.isEmpty)
    }

    @Test("a kill in a child process: the child dies, the program goes on, the kill is listed")
    func killInChild() async throws {
        let profile = try Self.addingRule(["names": ["ptrace"], "action": "SCMP_ACT_KILL_PROCESS"])
        let files = [try Fixture.probe()]
        let spec = JailSpec(command: ["/bin/sh", "-c", "/work/probe ptrace; echo child=$?"], files: files, profile: profile)
        let r = try await Fixture.jail().run(spec)
        #expect(r.status == .ok, "\(r.status) \(r.stderr)")
        #expect(r.stdout.hasSuffix("child=137\n"), "\(r.stdout)")  // sh reports the SIGKILL sealbox sent
        #expect(r.violations == [.init(syscall: "ptrace", count: 1, action: "kill")])
    }

    @Test("errno denials carry their errno; explicit rules are listed only with .everything")
    func errnoAndExplicitRules() async throws {
        let plain = try await probe(["ptrace", "clone3", "ptrace"], profile: "default")
        #expect(plain.stdout == "ptrace EPERM\nclone3 ENOSYS\nptrace EPERM\n")
        #expect(plain.violations == [.init(syscall: "ptrace", count: 2, action: "errno", errno: EPERM)])
        let everything = try await probe(["ptrace", "clone3"], profile: "default", tracking: .everything)
        #expect(everything.stdout == "ptrace EPERM\nclone3 ENOSYS\n", "the answers are the profile's either way")
        #expect(everything.violations == [.init(syscall: "clone3", count: 1, action: "errno", errno: ENOSYS),
                                          .init(syscall: "ptrace", count: 1, action: "errno", errno: EPERM)])
    }

    @Test("a foreign-ABI syscall (i386 int $0x80, x32) is killed and named, cold and pooled, under every shipped profile")
    func foreignABIIsNamed() async throws {
        let executor = try PoolTests.executor()
        for profile: ProfileReference in ["default", "strict", "python", "node", "permissive"] {
            for (probe, name, abi) in [("i386_getpid", "getpid (x86)", "x86"), ("x32_getpid", "getpid (x32)", "x32")] {
                let cold = try await self.probe(["getpid", probe, "getpid"], profile: profile)
                _ = try executor.startPool(JailPool.Configuration(size: 1, profile: profile))
                #expect(executor.pool?.waitUntilFull(timeout: 30) == true)
                var spec = JailSpec(command: ["/work/probe", "getpid", probe, "getpid"], files: [try Fixture.probe()], profile: profile)
                spec.violationTracking = nil
                let warm = try await executor.run(spec)
                executor.stopPool()
                #expect(warm.phases?.warm == true)
                for (label, r) in [("cold", cold), ("pooled", warm)] {
                    #expect(r.status == .seccompViolation && r.signal == SIGSYS && r.exitCode == 128 + SIGSYS, "\(profile) \(probe) \(label): \(r.status) \(r.error ?? "") \(r.stderr)")
                    #expect(r.stdout == "getpid ok\n", "\(profile) \(probe) \(label): the call never ran and nothing after it did")
                    #expect(r.violations == [.init(syscall: name, count: 1, action: "kill", abi: abi)], "\(profile) \(probe) \(label): \(r.violations)")
                }
            }
        }
    }

    @Test("without tracking a foreign-ABI call is still killed (the kernel's bad-arch action), unnamed")
    func untrackedForeignABIStillSIGSYS() async throws {
        let executor = try Executor(configuration: .init(dataDirectory: Binaries.repoRoot, trackViolations: false))
        let r = try await executor.run(JailSpec(command: ["/work/probe", "i386_getpid"], files: [try Fixture.probe()]))
        #expect(r.status == .seccompViolation && r.signal == SIGSYS && r.violations.isEmpty)
    }

    @Test("a profile listing i386: a call outside its i386 allowlist is refused with the default's errno and named")
    func listedForeignABIRefused() async throws {
        let profile = try Self.variantOfDefault { p in p["architectures"] = ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"] }
        let r = try await probe(["i386_getpid", "i386_getuid", "i386_ptrace", "getpid"], profile: profile)
        #expect(r.status == .ok && r.stdout == "i386_getpid ok\ni386_getuid ok\ni386_ptrace EPERM\ngetpid ok\n", "\(r.stdout) \(r.stderr)")
        #expect(r.violations == [.init(syscall: "ptrace (x86)", count: 1, action: "errno", errno: EPERM, abi: "x86")])
    }

    @Test("a conditional kill rule under an errno default stays exact: other arguments get the default")
    func conditionalKillKeepsItsCondition() async throws {
        // Kill socket(AF_PACKET) only; socket(AF_NETLINK) falls to the default (EPERM).
        let profile = try Self.addingRule(["names": ["socket"], "action": "SCMP_ACT_KILL_PROCESS",
                                           "args": [["index": 0, "value": 0xFFFF_FFFF, "valueTwo": 17, "op": "SCMP_CMP_MASKED_EQ"]]])
        let netlink = try await probe(["socket_netlink", "socket_unix"], profile: profile)
        #expect(netlink.status == .ok && netlink.stdout == "socket_netlink EPERM\nsocket_unix ok\n")
        #expect(netlink.violations == [.init(syscall: "socket", count: 1, action: "errno", errno: EPERM)])
        let packet = try await probe(["socket_packet"], profile: profile)
        #expect(packet.status == .seccompViolation && packet.signal == SIGSYS)
    }
}
