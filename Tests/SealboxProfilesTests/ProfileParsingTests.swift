import FoundationEssentials
import Glibc
import Testing

@testable import SealboxProfiles

@Suite("Profile parsing and validation")
struct ProfileParsingTests {
    static let good = """
        {
          "comment": "unknown keys are ignored",
          "defaultAction": "SCMP_ACT_ERRNO",
          "defaultErrnoRet": 1,
          "archMap": [
            {"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_X86"]},
            {"architecture": "SCMP_ARCH_AARCH64", "subArchitectures": ["SCMP_ARCH_ARM"]}
          ],
          "flags": ["SECCOMP_FILTER_FLAG_SPEC_ALLOW"],
          "syscalls": [
            {"names": ["read", "write", "chown32"], "action": "SCMP_ACT_ALLOW", "comment": "chown32 exists only on 32-bit arches"},
            {"name": "getpid", "action": "SCMP_ACT_ALLOW"},
            {"names": ["socket"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_EQ"}]},
            {"names": ["ioctl"], "action": "SCMP_ACT_ALLOW",
             "args": [{"index": 1, "value": 18446744073709551615, "valueTwo": 21522, "op": "SCMP_CMP_MASKED_EQ"}]},
            {"names": ["ptrace"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYS_PTRACE"]}},
            {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38, "excludes": {"caps": ["CAP_SYS_ADMIN"]}},
            {"names": ["sync"], "action": "SCMP_ACT_ALLOW", "args": null, "includes": {"minKernel": "4.8"}},
            {"names": ["kill"], "action": "SCMP_ACT_LOG", "includes": {"arches": ["s390x"]}}
          ]
        }
        """

    @Test func parsesAGoodProfile() throws {
        let loaded = try Fixtures.parse(Self.good)
        let p = loaded.profile
        #expect(loaded.name == "x.json")
        #expect(loaded.source == Array(Self.good.utf8))
        #expect(p.defaultAction == "SCMP_ACT_ERRNO")
        #expect(p.defaultErrnoRet == 1)
        // archMap: the native entry (x86_64 on this host) and its sub-architectures.
        #expect(p.architectures == ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"])
        #expect(p.syscalls.count == 8)
        #expect(p.syscalls[0].names == ["read", "write", "chown32"])
        #expect(p.syscalls[1].names == ["getpid"])  // legacy "name"
        #expect(p.syscalls[2].args == [SeccompProfile.Arg(index: 0, value: 1, valueTwo: 0, op: "SCMP_CMP_EQ")])
        #expect(p.syscalls[3].args[0].value == UInt64.max)
        #expect(p.syscalls[3].args[0].valueTwo == 0x5412)
        #expect(p.syscalls[4].includes == SeccompProfile.Condition(caps: ["CAP_SYS_PTRACE"]))
        #expect(p.syscalls[6].args.isEmpty)
    }

    @Test func includesAndExcludesAreEvaluatedForAJailWithoutCapabilities() throws {
        let loaded = try Fixtures.parse(Self.good)
        let plan = try ProfileValidator.plan(loaded.profile, name: loaded.name)
        let kept = plan.rules.map { $0.syscalls.map(\.name) }
        // ptrace (needs CAP_SYS_PTRACE) and kill (s390x only) are dropped; clone3 (excludes a cap
        // the jail does not have) and sync (minKernel 4.8) stay.
        #expect(kept == [["read", "write", "chown32"], ["getpid"], ["socket"], ["ioctl"], ["clone3"], ["sync"]])
        #expect(plan.rules[4].action == .errno(38))
        // chown32 resolves to a libseccomp pseudo number on x86_64.
        #expect(plan.rules[0].syscalls[2].number < -1)
    }

    @Test func loadsTheShippedProfilesByName() throws {
        for name in ["default", "permissive"] {
            let loaded = try ProfileLoader.load(name, profilesDirectory: Fixtures.profilesDirectory)
            #expect(loaded.name == name)
            #expect(!loaded.source.isEmpty)
        }
        let byPath = Fixtures.profilesDirectory + "/default.json"
        let loaded = try ProfileLoader.load(byPath, profilesDirectory: "/nonexistent")
        #expect(loaded.name == byPath)
    }

    @Test func missingProfiles() throws {
        let dir = Fixtures.temporaryDirectory()
        // A catalog name: the message names no host path (it may reach a tenant).
        #expect(throws: ProfileError("profile \"foo\" not found among the installed profiles")) {
            try ProfileLoader.load("foo", profilesDirectory: dir)
        }
        #expect(throws: ProfileError("profile \"\(dir)/bar.json\" not found (looked in \(dir)/bar.json)")) {
            try ProfileLoader.load("\(dir)/bar.json", profilesDirectory: "/unused")
        }
        #expect(throws: ProfileError("profile name is empty")) {
            try ProfileLoader.load("", profilesDirectory: dir)
        }
        #expect(throws: ProfileError("profile \"\(dir)/\": \(dir)/ is not a regular file")) {
            try ProfileLoader.load("\(dir)/", profilesDirectory: "/unused")
        }
        rmdir(dir)
    }

    @Test func readsAProfileFromAFile() throws {
        let dir = Fixtures.temporaryDirectory()
        Fixtures.write(#"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["ptracee"], "action": "SCMP_ACT_ALLOW"}]}"#, to: "\(dir)/typo.json")
        #expect(throws: ProfileError("profile \"typo\": unknown syscall \"ptracee\" in syscalls[0].names")) {
            try ProfileLoader.load("typo", profilesDirectory: dir)
        }
        unlink("\(dir)/typo.json")
        rmdir(dir)
    }

    /// (what is wrong, the profile, the exact message)
    static let badProfiles: [(String, String, String)] = [
        ("unknown action",
         #"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW"}, {"names": ["write"], "action": "SCMP_ACT_ALLOW"}, {"names": ["close"], "action": "SCMP_ACT_ALLOW"}, {"names": ["openat"], "action": "SCMP_ACT_FOO"}]}"#,
         #"profile "x.json": syscalls[3].action: unknown action "SCMP_ACT_FOO""#),
        ("unknown default action",
         #"{"defaultAction": "SCMP_ACT_DENY"}"#,
         #"profile "x.json": defaultAction: unknown action "SCMP_ACT_DENY""#),
        ("unknown operator",
         #"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["socket"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_FOO"}]}]}"#,
         #"profile "x.json": syscalls[0].args[0].op: unknown operator "SCMP_CMP_FOO" (expected one of SCMP_CMP_NE, SCMP_CMP_LT, SCMP_CMP_LE, SCMP_CMP_EQ, SCMP_CMP_GE, SCMP_CMP_GT, SCMP_CMP_MASKED_EQ)"#),
        ("unknown syscall",
         #"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW"}, {"names": ["write"], "action": "SCMP_ACT_ALLOW"}, {"names": ["getpid", "ptracee"], "action": "SCMP_ACT_ALLOW"}]}"#,
         #"profile "x.json": unknown syscall "ptracee" in syscalls[2].names"#),
        ("bad JSON",
         "{\n  \"defaultAction\": \"SCMP_ACT_ERRNO\"\n  \"syscalls\": []\n}",
         #"profile "x.json": invalid JSON: line 3, column 3: unexpected '"', expected ',' or '}'"#),
        ("truncated JSON",
         #"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": ["#,
         #"profile "x.json": invalid JSON: line 1, column 50: unexpected end of input, expected a value"#),
        ("argument index above 5",
         #"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["socket"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 6, "value": 1, "op": "SCMP_CMP_EQ"}]}]}"#,
         #"profile "x.json": syscalls[0].args[0].index: 6 is out of range (0...5)"#),
        ("negative argument index",
         #"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["socket"], "action": "SCMP_ACT_ALLOW", "args": [{"index": -1, "value": 1, "op": "SCMP_CMP_EQ"}]}]}"#,
         #"profile "x.json": syscalls[0].args[0].index: -1 is out of range (0...5)"#),
        ("errnoRet out of range",
         #"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 5000}]}"#,
         #"profile "x.json": syscalls[0].errnoRet: 5000 is out of range (0...4095)"#),
        ("defaultErrnoRet out of range",
         #"{"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": -1}"#,
         #"profile "x.json": defaultErrnoRet: -1 is out of range (0...4095)"#),
        ("errnoRet on a non-ERRNO action",
         #"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW", "errnoRet": 1}]}"#,
         #"profile "x.json": syscalls[0].errnoRet: errno 1 given, but an errno is only used with SCMP_ACT_ERRNO (action is SCMP_ACT_ALLOW)"#),
        ("negative value",
         #"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["socket"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": -1, "op": "SCMP_CMP_EQ"}]}]}"#,
         #"profile "x.json": syscalls[0].args[0].value: expected an unsigned 64-bit integer, found -1"#),
        ("value above 64 bits",
         #"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["socket"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 18446744073709551616, "op": "SCMP_CMP_EQ"}]}]}"#,
         #"profile "x.json": syscalls[0].args[0].value: expected an unsigned 64-bit integer, found 18446744073709551616"#),
        ("SCMP_ACT_TRACE",
         #"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_TRACE"}]}"#,
         #"profile "x.json": syscalls[0].action: SCMP_ACT_TRACE is not supported: sealbox runs no tracer (use SCMP_ACT_ERRNO or SCMP_ACT_KILL_PROCESS)"#),
        ("SCMP_ACT_NOTIFY",
         #"{"defaultAction": "SCMP_ACT_NOTIFY"}"#,
         #"profile "x.json": defaultAction: SCMP_ACT_NOTIFY is reserved: sealbox uses user notification internally to record violations (use SCMP_ACT_ERRNO; denied syscalls are recorded when violations are tracked)"#),
        ("unknown architecture",
         #"{"defaultAction": "SCMP_ACT_ERRNO", "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_VAX"]}"#,
         #"profile "x.json": architectures[1]: unknown architecture "SCMP_ARCH_VAX" (expected a name like SCMP_ARCH_X86_64)"#),
        ("two comparisons of one argument",
         #"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["ioctl"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 1, "value": 21522, "op": "SCMP_CMP_NE"}, {"index": 1, "value": 21532, "op": "SCMP_CMP_NE"}]}]}"#,
         #"profile "x.json": syscalls[0].args[1].index: argument 1 is already compared by syscalls[0].args[0]; a rule can compare each argument once (write two rules: rules are OR-ed, comparisons in a rule AND-ed)"#),
        ("MASKED_EQ that can never match",
         #"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["clone"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 255, "valueTwo": 256, "op": "SCMP_CMP_MASKED_EQ"}]}]}"#,
         #"profile "x.json": syscalls[0].args[0]: SCMP_CMP_MASKED_EQ can never match: valueTwo 0x100 has bits outside the mask (value) 0xff"#),
        ("unconditional rule overriding a conditional one (the naive TIOCSTI rule)",
         #"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["ioctl"], "action": "SCMP_ACT_ALLOW"}, {"names": ["ioctl"], "action": "SCMP_ACT_ERRNO", "args": [{"index": 1, "value": 4294967295, "valueTwo": 21522, "op": "SCMP_CMP_MASKED_EQ"}]}]}"#,
         #"profile "x.json": syscalls[1]: ioctl: conflicts with syscalls[0]: syscalls[0] is an unconditional SCMP_ACT_ALLOW rule, and libseccomp lets an unconditional rule override every rule with another action for the same syscall, so syscalls[1] (SCMP_ACT_ERRNO(1)) would never take effect; use only conditional rules for ioctl (see profiles/README.md)"#),
        ("two unconditional rules with different actions",
         #"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["getpid"], "action": "SCMP_ACT_LOG"}, {"names": ["read", "getpid"], "action": "SCMP_ACT_KILL"}]}"#,
         #"profile "x.json": syscalls[1]: getpid: conflicts with syscalls[0]: syscalls[0] is an unconditional SCMP_ACT_LOG rule, and libseccomp lets an unconditional rule override every rule with another action for the same syscall, so syscalls[1] (SCMP_ACT_KILL_THREAD) would never take effect; use only conditional rules for getpid (see profiles/README.md)"#),
        ("missing defaultAction",
         #"{"syscalls": []}"#,
         #"profile "x.json": defaultAction: missing (required)"#),
        ("missing action",
         #"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read"]}]}"#,
         #"profile "x.json": syscalls[0].action: missing (required)"#),
        ("names of the wrong type",
         #"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": "read", "action": "SCMP_ACT_ALLOW"}]}"#,
         #"profile "x.json": syscalls[0].names: expected an array, found a string"#),
        ("empty names",
         #"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": [], "action": "SCMP_ACT_ALLOW"}]}"#,
         #"profile "x.json": syscalls[0].names: lists no syscalls"#),
        ("index of the wrong type",
         #"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["socket"], "action": "SCMP_ACT_ALLOW", "args": [{"index": "0", "value": 1, "op": "SCMP_CMP_EQ"}]}]}"#,
         #"profile "x.json": syscalls[0].args[0].index: expected an integer, found a string"#),
        ("fractional errnoRet",
         #"{"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 1.5}"#,
         #"profile "x.json": defaultErrnoRet: expected an integer, found 1.5"#),
        ("top level is not an object",
         #"[{"defaultAction": "SCMP_ACT_ERRNO"}]"#,
         #"profile "x.json": top level: expected an object, found an array"#),
        ("bad minKernel",
         #"{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW", "includes": {"minKernel": "four"}}]}"#,
         #"profile "x.json": syscalls[0].includes.minKernel: invalid kernel version "four" (expected e.g. "5.10")"#),
    ]

    @Test("bad profiles are refused with a precise message", arguments: badProfiles)
    func refuses(_ what: String, _ json: String, _ message: String) {
        #expect(throws: ProfileError(message), "\(what)") {
            try Fixtures.parse(json)
        }
    }

    @Test func codableRoundTrip() throws {
        let loaded = try Fixtures.parse(Self.good)
        let data = try JSONEncoder().encode(loaded.profile)
        let decoded = try JSONDecoder().decode(SeccompProfile.self, from: data)
        #expect(decoded == loaded.profile)
        // A Decoder-based read gets the same precise messages.
        #expect(throws: DecodingError.self) {
            try JSONDecoder().decode(SeccompProfile.self, from: Data(#"{"defaultAction": 3}"#.utf8))
        }
    }
}
