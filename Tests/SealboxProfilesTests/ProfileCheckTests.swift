import Glibc
import Testing

@testable import SealboxProfiles

@Suite("profile check: every problem, located")
struct ProfileCheckTests {
    /// One error of each kind, one per line, so every expected position is easy to read off.
    static let broken = """
        {
          "defaultAction": "SCMP_ACT_ERRNO",
          "defaultaction": "SCMP_ACT_ALLOW",
          "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_VAX"],
          "syscalls": [
            {"names": ["read", "ptracee"], "action": "SCMP_ACT_ALLOW"},
            {"names": ["write"], "action": "SCMP_ACT_FOO"},
            {"names": ["close"], "action": "SCMP_ACT_ALLOW", "errnoRet": 1},
            {"names": ["socket"], "action": "SCMP_ACT_ALLOW",
             "args": [{"index": 6, "value": 1, "op": "SCMP_CMP_EQ"}]},
            {"names": ["getpid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 5000},
            {"names": ["ioctl"], "action": "SCMP_ACT_ALLOW"},
            {"names": ["ioctl"], "action": "SCMP_ACT_KILL_PROCESS",
             "args": [{"index": 1, "value": 21522, "op": "SCMP_CMP_EQ"}]},
            {"names": ["clone"], "action": "SCMP_ACT_ALLOW",
             "args": [{"index": 0, "value": 255, "valueTwo": 256, "op": "SCMP_CMP_MASKED_EQ"},
                      {"index": 0, "value": 1, "op": "SCMP_CMP_FOO"}]}
          ]
        }
        """

    struct Expected: Equatable, CustomStringConvertible {
        var line: Int, column: Int, severity: ProfileDiagnostic.Severity, path: String, message: String
        var description: String { "\(line):\(column): \(severity): \(path): \(message)" }
    }

    @Test func reportsEveryErrorWithItsLineAndColumn() {
        let report = ProfileChecker.check(Array(Self.broken.utf8), file: "broken.json")
        let got = report.diagnostics.map { Expected(line: $0.line, column: $0.column, severity: $0.severity, path: $0.path, message: $0.message) }
        let conflict = "ioctl: conflicts with syscalls[5]: syscalls[5] is an unconditional SCMP_ACT_ALLOW rule, and libseccomp lets an unconditional rule override every rule with another action for the same syscall, so syscalls[6] (SCMP_ACT_KILL_PROCESS) would never take effect; use only conditional rules for ioctl (see profiles/README.md)"
        let expected: [Expected] = [
            .init(line: 3, column: 3, severity: .warning, path: "defaultaction", message: #"unknown key "defaultaction" in the profile is ignored (did you mean "defaultAction"?)"#),
            .init(line: 4, column: 41, severity: .error, path: "architectures[1]", message: #"unknown architecture "SCMP_ARCH_VAX" (expected a name like SCMP_ARCH_X86_64)"#),
            .init(line: 6, column: 24, severity: .error, path: "syscalls[0].names[1]", message: #"unknown syscall "ptracee" (did you mean "ptrace"?)"#),
            .init(line: 7, column: 36, severity: .error, path: "syscalls[1].action", message: #"unknown action "SCMP_ACT_FOO""#),
            .init(line: 8, column: 66, severity: .error, path: "syscalls[2].errnoRet", message: "errno 1 given, but an errno is only used with SCMP_ACT_ERRNO (action is SCMP_ACT_ALLOW)"),
            .init(line: 10, column: 25, severity: .error, path: "syscalls[3].args[0].index", message: "6 is out of range (0...5)"),
            .init(line: 11, column: 67, severity: .error, path: "syscalls[4].errnoRet", message: "5000 is out of range (0...4095)"),
            .init(line: 13, column: 16, severity: .error, path: "syscalls[6].names[0]", message: conflict),
            .init(line: 14, column: 15, severity: .warning, path: "syscalls[6].args[0]", message: "the kernel reads argument 1 of ioctl as a 32-bit int, but SCMP_CMP_EQ compares all 64 bits: a caller that sets any of the high 32 bits makes this deny rule miss while the kernel still sees the denied value (CVE-2019-10063; see profiles/README.md, rule 4). Compare the low 32 bits only: SCMP_CMP_MASKED_EQ with value 0xFFFFFFFF, or allow the complement"),
            .init(line: 16, column: 15, severity: .error, path: "syscalls[7].args[0]", message: "SCMP_CMP_MASKED_EQ can never match: valueTwo 0x100 has bits outside the mask (value) 0xff"),
            .init(line: 17, column: 46, severity: .error, path: "syscalls[7].args[1].op", message: #"unknown operator "SCMP_CMP_FOO" (expected one of SCMP_CMP_NE, SCMP_CMP_LT, SCMP_CMP_LE, SCMP_CMP_EQ, SCMP_CMP_GE, SCMP_CMP_GT, SCMP_CMP_MASKED_EQ)"#),
        ]
        #expect(got == expected, "\(got.map(\.description).joined(separator: "\n"))")
        #expect(report.errorCount == 9)
        #expect(report.warningCount == 2)
        #expect(report.exitStatus(strict: false) == 1)
        #expect(report.text().hasPrefix("broken.json:3:3: warning: defaultaction: unknown key"))
        #expect(report.text().hasSuffix("\n9 errors, 2 warnings\n"))
    }

    @Test func theFirstCollectedErrorIsTheOneRunReports() throws {
        // `sealbox run` and `profile check` share the checks: the first error check reports (in
        // validation order) is the message loading throws.
        do {
            _ = try Fixtures.parse(Self.broken, name: "broken.json")
            Issue.record("the broken fixture loaded")
        } catch {
            #expect(error.message == #"profile "broken.json": architectures[1]: unknown architecture "SCMP_ARCH_VAX" (expected a name like SCMP_ARCH_X86_64)"#)
        }
    }

    static let dubious = """
        {
          "defaultAction": "SCMP_ACT_ERRNO",
          "architectures": ["SCMP_ARCH_X86_64"],
          "syscalls": [
            {"names": ["read", "write", "read"], "action": "SCMP_ACT_ALLOW"},
            {"names": ["write"], "action": "SCMP_ACT_ALLOW"},
            {"names": ["ptrace"], "action": "SCMP_ACT_ERRNO"},
            {"names": ["getpid"], "action": "SCMP_ACT_LOG"},
            {"names": ["chown32"], "action": "SCMP_ACT_ALLOW"},
            {"names": ["mount"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYS_ADMIN"]}},
            {"names": ["ioctl"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 1, "value": 21522, "op": "SCMP_CMP_NE"}]},
            {"names": ["close"], "action": "SCMP_ACT_ALLOW", "arg": [{"index": 0, "value": 1, "op": "SCMP_CMP_EQ"}]}
          ]
        }
        """

    @Test func warningsForRulesThatLoadButDoNotDoWhatTheySeem() throws {
        let report = ProfileChecker.check(Array(Self.dubious.utf8), file: "dubious.json")
        #expect(report.errorCount == 0, "\(report.text())")
        let located = report.diagnostics.map { "\($0.line):\($0.column) \($0.path)" }
        #expect(located == [
            "5:33 syscalls[0].names[2]",
            "6:16 syscalls[1].names[0]",
            "7:37 syscalls[2].action",
            "8:37 syscalls[3].action",
            "9:16 syscalls[4].names[0]",
            "10:75 syscalls[5].includes.caps",
            "11:63 syscalls[6].args[0]",
            "12:54 syscalls[7].arg",
        ], "\(report.text())")
        let messages = report.diagnostics.map(\.message)
        #expect(messages[0] == "read is listed twice in this rule (first at names[0])")
        #expect(messages[1] == "write is listed twice with the same action: syscalls[0] already gives it SCMP_ACT_ALLOW")
        #expect(messages[2].hasPrefix("SCMP_ACT_ERRNO(1) is also the defaultAction: the rule is redundant"))
        #expect(messages[3].hasPrefix("SCMP_ACT_LOG allows the syscall"))
        #expect(messages[4].hasPrefix("chown32 does not exist on SCMP_ARCH_X86_64 (only on SCMP_ARCH_X86, SCMP_ARCH_ARM"))
        #expect(messages[5] == "this rule is skipped: it is for processes holding CAP_SYS_ADMIN, and sealbox grants jailed code no capabilities")
        #expect(messages[6].contains("SCMP_CMP_NE compares all 64 bits: a denied value with high bits set passes this allow rule"))
        #expect(messages[7] == #"unknown key "arg" in a rule is ignored (did you mean "args"?)"#)
        #expect(report.exitStatus(strict: false) == 0)
        #expect(report.exitStatus(strict: true) == 1)
        #expect(report.text().hasSuffix("\n0 errors, 8 warnings\n"))
        // The profile still loads for a run: warnings never refuse anything.
        _ = try Fixtures.parse(Self.dubious)
    }

    @Test func chown32IsFineWhenThe32BitArchitectureIsListed() {
        let json = #"{"defaultAction": "SCMP_ACT_ERRNO", "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"], "syscalls": [{"names": ["chown32"], "action": "SCMP_ACT_ALLOW"}]}"#
        #expect(ProfileChecker.check(Array(json.utf8), file: "x").diagnostics.isEmpty)
    }

    @Test func aSyntaxErrorIsReportedAloneWhereTheReaderStopped() {
        let text = "{\n  \"defaultAction\": \"SCMP_ACT_ERRNO\"\n  \"syscalls\": []\n}"
        let report = ProfileChecker.check(Array(text.utf8), file: "x.json")
        #expect(report.diagnostics == [ProfileDiagnostic(severity: .error, line: 3, column: 3, path: "",
                                                         message: "invalid JSON: unexpected '\"', expected ',' or '}'")])
        #expect(report.text() == "x.json:3:3: error: invalid JSON: unexpected '\"', expected ',' or '}'\n1 error, 0 warnings\n")
    }

    @Test func typeErrorsInOneRuleDoNotHideTheOthers() {
        let text = """
            {
              "defaultAction": 7,
              "syscalls": [
                {"names": "read", "action": "SCMP_ACT_ALLOW"},
                {"names": ["write"]},
                {"names": ["close"], "action": "SCMP_ACT_BAR"}
              ]
            }
            """
        let report = ProfileChecker.check(Array(text.utf8), file: "x.json")
        #expect(report.diagnostics.map { "\($0.line):\($0.column) \($0.path): \($0.message)" } == [
            "2:20 defaultAction: expected a string, found a number",
            "4:15 syscalls[0].names: expected an array, found a string",
            // A missing member is reported where its object starts.
            "5:5 syscalls[1].action: missing (required)",
            "6:36 syscalls[2].action: unknown action \"SCMP_ACT_BAR\"",
        ])
    }

    @Test func theShippedDefaultProfileIsClean() throws {
        let report = try ProfileChecker.check("default", profilesDirectory: Fixtures.profilesDirectory)
        #expect(report.file == Fixtures.profilesDirectory + "/default.json")
        #expect(report.errorCount == 0, "\(report.text())")
        #expect(report.warningCount == 0, "\(report.text())")
    }

    @Test func filesThatAreNotTextAreRefusedNotParsed() throws {
        let dir = Fixtures.temporaryDirectory()
        defer { rmdir(dir) }
        let path = dir + "/garbage.json"
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        let garbage: [UInt8] = [0x7F, 0x45, 0x4C, 0x46, 0x02, 0x01, 0x00, 0xFF]
        _ = garbage.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        close(fd)
        defer { unlink(path) }
        #expect(throws: ProfileError("profile \"\(path)\": \(path) is not a text file (a NUL byte at offset 6); a profile is OCI seccomp JSON")) {
            try ProfileChecker.check(path, profilesDirectory: "/unused")
        }
        #expect(throws: ProfileError("profile \"\(dir)/none.json\" not found (looked in \(dir)/none.json)")) {
            try ProfileChecker.check(dir + "/none.json", profilesDirectory: "/unused")
        }
    }
}
