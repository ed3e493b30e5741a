import Testing

@testable import SealboxProfiles

@Suite("syscall catalog")
struct SyscallCatalogTests {
    @Test func coversEveryX86_64Syscall() throws {
        try #require(SyscallNames.nativeArchitecture == "SCMP_ARCH_X86_64", "the category table is for x86_64")
        let names = SyscallCatalog.nativeSyscalls()
        // libseccomp 2.5.4 knows 368 x86_64 syscalls; a newer one knows more, never fewer.
        #expect(names.count >= 368)
        let uncategorised = names.filter { SyscallCatalog.category(of: $0) == .other }
        #expect(uncategorised.isEmpty, "add these to SyscallCatalog.table: \(uncategorised)")
        // Every table entry and every dangerous name is a real x86_64 syscall (no typos).
        #expect(Set(SyscallCatalog.table.keys).subtracting(names).isEmpty)
        #expect(Set(SyscallCatalog.dangerous.keys).subtracting(names).isEmpty)
        #expect(Set(SyscallCatalog.int32Arguments.keys).subtracting(names).isEmpty)
    }

    @Test func categoriesAndDangerFlags() {
        #expect(SyscallCatalog.category(of: "openat") == .file)
        #expect(SyscallCatalog.category(of: "mount") == .filesystemAdmin)
        #expect(SyscallCatalog.category(of: "socket") == .network)
        #expect(SyscallCatalog.category(of: "ptrace") == .tracing)
        #expect(SyscallCatalog.category(of: "unshare") == .namespaces)
        #expect(SyscallCatalog.category(of: "keyctl") == .keys)
        #expect(SyscallCatalog.category(of: "io_uring_setup") == .async)
        #expect(SyscallCatalog.category(of: "chown32") == .other)
        for name in ["ptrace", "mount", "unshare", "setns", "bpf", "perf_event_open", "userfaultfd", "keyctl",
                     "kexec_load", "init_module", "io_uring_setup", "open_by_handle_at", "reboot"] {
            #expect(SyscallCatalog.isDangerous(name), "\(name)")
        }
        for name in ["read", "getpid", "socket", "clone", "mmap"] {
            #expect(!SyscallCatalog.isDangerous(name), "\(name)")
        }
    }
}

@Suite("profile explain and diff")
struct ExplainDiffTests {
    static func load(_ name: String) throws -> LoadedProfile {
        try ProfileLoader.load(name, profilesDirectory: Fixtures.profilesDirectory)
    }

    static func category(_ e: ProfileExplanation, _ c: SyscallCategory) throws -> ProfileExplanation.Category {
        try #require(e.categories.first { $0.name == c })
    }

    @Test func explainsTheDefaultProfile() throws {
        let e = try ProfileAnalysis.explain(try Self.load("default"))
        #expect(e.defaultAction == "SCMP_ACT_ERRNO(1)")
        #expect(e.architectures == ["SCMP_ARCH_X86_64"])
        let tracing = try Self.category(e, .tracing)
        #expect(tracing.denied.contains(.init(syscall: "ptrace", action: "SCMP_ACT_ERRNO(1)", byDefault: true)))
        #expect(tracing.allowed.isEmpty)
        let network = try Self.category(e, .network)
        let socket = try #require(network.conditional.first { $0.syscall == "socket" })
        #expect(socket.otherwise == "SCMP_ACT_ERRNO(1)")
        #expect(socket.rules.map { $0.conditions.map(\.text) } == [["arg0 == 1 (AF_UNIX)"], ["arg0 == 2 (AF_INET)"], ["arg0 == 10 (AF_INET6)"]])
        #expect(network.allowed.contains("connect"))
        let process = try Self.category(e, .process)
        let clone = try #require(process.conditional.first { $0.syscall == "clone" })
        #expect(clone.rules.map { $0.conditions.map(\.text) } == [[
            "(arg0 & 0x7e020000) == 0 (none of CLONE_NEWNS|CLONE_NEWCGROUP|CLONE_NEWUTS|CLONE_NEWIPC|CLONE_NEWUSER|CLONE_NEWPID|CLONE_NEWNET)",
        ]])
        #expect(process.denied.contains(.init(syscall: "clone3", action: "SCMP_ACT_ERRNO(38)", byDefault: false)))
        let ioctl = try #require(try Self.category(e, .file).conditional.first { $0.syscall == "ioctl" })
        #expect(ioctl.rules.count == 32)
        // Nothing dangerous runs unconditionally; clone3 is denied and clone is checked.
        #expect(e.dangerousAllowed.isEmpty)
        #expect(e.dangerousConditional.isEmpty)
        // The counts add up to the native table.
        #expect(e.totals.allowed + e.totals.conditional + e.totals.denied == SyscallCatalog.nativeSyscalls().count)
        #expect(e.categories.reduce(0) { $0 + $1.counts.conditional } == e.totals.conditional)
        let text = e.text()
        #expect(text.contains("default action: ERRNO(1 EPERM)\n"))
        #expect(text.contains("    allowed if arg0 == 1 (AF_UNIX)   [syscalls["))
        #expect(text.contains("\ndangerous syscalls allowed: none\n"))
    }

    static let loose = """
        {"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
          {"names": ["read", "ptrace", "bpf"], "action": "SCMP_ACT_ALLOW"},
          {"names": ["unshare"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 268435456, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}]},
          {"names": ["getpid"], "action": "SCMP_ACT_ERRNO"},
          {"names": ["mount"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYS_ADMIN"]}},
          {"names": ["chown32"], "action": "SCMP_ACT_ALLOW"}
        ]}
        """

    @Test func warnsAboutDangerousSyscallsAndAccountsForCompilation() throws {
        let e = try ProfileAnalysis.explain(try Fixtures.parse(Self.loose, name: "loose"))
        #expect(e.dangerousAllowed.map(\.syscall) == ["bpf", "ptrace"])
        #expect(e.dangerousConditional.map(\.syscall) == ["unshare"])
        #expect(e.dangerousConditional.first?.how == "allowed if (arg0 & 0x10000000) == 0 (no CLONE_NEWUSER); otherwise ERRNO(1 EPERM)")
        // getpid's rule has the default action, which libseccomp drops: denied by default.
        #expect(try Self.category(e, .process).denied.contains(.init(syscall: "getpid", action: "SCMP_ACT_ERRNO(1)", byDefault: true)))
        // mount's rule needs a capability: not applied.
        #expect(try Self.category(e, .filesystemAdmin).allowed.isEmpty)
        #expect(e.skippedRules == [.init(rule: 3, syscalls: ["mount"], reason: "needs CAP_SYS_ADMIN; sealbox grants no capabilities")])
        #expect(e.otherArchitectureNames == ["chown32"])
        let text = e.text()
        #expect(text.contains("WARNING: 2 dangerous syscalls are allowed:\n  bpf (system): "))
    }

    @Test func diffOfAProfileWithItselfIsEmpty() throws {
        let d = try ProfileAnalysis.diff(try Self.load("default"), try Self.load("default"))
        #expect(d.equivalent)
        #expect(d.text() == "default and default are equivalent\n")
    }

    @Test func diffOfDefaultAndPermissive() throws {
        let d = try ProfileAnalysis.diff(try Self.load("default"), try Self.load("permissive"))
        #expect(!d.equivalent)
        #expect(d.defaultAction == .init(from: "SCMP_ACT_ERRNO(1)", to: "SCMP_ACT_ALLOW"))
        #expect(d.architecturesAdded.isEmpty && d.architecturesRemoved.isEmpty)
        let all = d.categories.flatMap { $0.newlyAllowed + $0.newlyDenied + $0.actionChanged + $0.conditionsChanged }
        // ptrace: denied by default (EPERM) in default, by an explicit EPERM rule in permissive:
        // the same effect, so no difference.
        #expect(!all.contains { $0.syscall == "ptrace" })
        // vhangup: denied by default.json (by omission), allowed by permissive.json.
        let system = try #require(d.categories.first { $0.name == .system })
        #expect(system.newlyAllowed.contains { $0.syscall == "vhangup" && $0.from == "ERRNO(1 EPERM) (default)" && $0.to == "allowed (default)" })
        // socket: three allow rules → three deny rules.
        let network = try #require(d.categories.first { $0.name == .network })
        let socket = try #require(network.conditionsChanged.first { $0.syscall == "socket" })
        #expect(socket.from.hasPrefix("allowed if arg0 == 1 (AF_UNIX); "))
        #expect(socket.to.hasPrefix("ERRNO(1 EPERM) if (arg0 & 0xffffffff) == 16 (AF_NETLINK, low 32 bits); "))
        #expect(d.dangerousNewlyAllowed.isEmpty)
    }

    @Test func diffGroupsChangesAndFlagsDanger() throws {
        let a = try Fixtures.parse("""
            {"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
              {"names": ["read", "write"], "action": "SCMP_ACT_ALLOW"},
              {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38},
              {"names": ["socket"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_EQ"}]}
            ]}
            """, name: "a")
        let b = try Fixtures.parse("""
            {"defaultAction": "SCMP_ACT_ERRNO", "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"], "syscalls": [
              {"names": ["write", "read", "ptrace"], "action": "SCMP_ACT_ALLOW"},
              {"names": ["clone3"], "action": "SCMP_ACT_KILL_PROCESS"},
              {"names": ["socket"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 2, "op": "SCMP_CMP_EQ"}]},
              {"names": ["socket"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_EQ"}]}
            ]}
            """, name: "b")
        let d = try ProfileAnalysis.diff(a, b)
        #expect(d.defaultAction == nil)
        #expect(d.architecturesAdded == ["SCMP_ARCH_X86"])
        #expect(d.categories.map(\.name) == [.network, .process, .tracing])
        let tracing = d.categories[2]
        #expect(tracing.newlyAllowed == [.init(syscall: "ptrace", from: "ERRNO(1 EPERM) (default)", to: "allowed", dangerous: true)])
        #expect(d.categories[1].actionChanged == [.init(syscall: "clone3", from: "ERRNO(38 ENOSYS)", to: "KILL_PROCESS", dangerous: false)])
        #expect(d.categories[0].conditionsChanged.map(\.syscall) == ["socket"])
        #expect(d.dangerousNewlyAllowed.map(\.syscall) == ["ptrace"])
        let text = d.text()
        #expect(text.contains("\ntracing: 1 changed\n  + ptrace: newly allowed (was ERRNO(1 EPERM) (default))  [dangerous]\n"))
        #expect(text.contains("  ~ clone3: ERRNO(38 ENOSYS) -> KILL_PROCESS\n"))
        #expect(text.contains("WARNING: dangerous syscalls newly allowed by b: ptrace\n"))
        #expect(text.hasSuffix("1 newly allowed, 0 newly denied, 2 changed\n"))
        // Reordering rules and names changes nothing.
        let reordered = try Fixtures.parse("""
            {"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
              {"names": ["socket"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_EQ"}]},
              {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38},
              {"names": ["write"], "action": "SCMP_ACT_ALLOW"},
              {"names": ["read"], "action": "SCMP_ACT_ALLOW"}
            ]}
            """, name: "a2")
        #expect(try ProfileAnalysis.diff(a, reordered).equivalent)
    }
}
