import Foundation
import Glibc
import SealboxTestSupport
import Testing

/// `sealbox profile check | explain | diff`: exit statuses and output as an operator sees them.
/// No root needed: nothing here starts a jail.
@Suite("sealbox profile")
struct ProfileCLITests {
    /// A scratch directory with the fixtures the tests name.
    final class Files: @unchecked Sendable {  // written once in init, then only read
        let dir: String

        init() throws {
            dir = NSTemporaryDirectory() + "sealbox-profile-cli-\(UUID().uuidString.prefix(8))"
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            try """
                {
                  "defaultAction": "SCMP_ACT_ERRNO",
                  "syscalls": [
                    {"names": ["read", "ptracee"], "action": "SCMP_ACT_ALLOW"},
                    {"names": ["write"], "action": "SCMP_ACT_FOO"}
                  ]
                }
                """.write(toFile: dir + "/bad.json", atomically: true, encoding: .utf8)
            try """
                {
                  "defaultAction": "SCMP_ACT_ERRNO",
                  "syscalls": [
                    {"names": ["read", "write"], "action": "SCMP_ACT_ALLOW"},
                    {"names": ["getpid"], "action": "SCMP_ACT_LOG"}
                  ]
                }
                """.write(toFile: dir + "/warn.json", atomically: true, encoding: .utf8)
            try "{\n  \"defaultAction\": \"SCMP_ACT_ERRNO\",\n  \"syscalls\": [}\n".write(toFile: dir + "/syntax.json", atomically: true, encoding: .utf8)
            // An ELF header: what `check ./sealbox` by mistake would read.
            try Data([0x7F, 0x45, 0x4C, 0x46, 0x02, 0x01, 0x01, 0x00, 0x00, 0xFF, 0xFE]).write(to: URL(fileURLWithPath: dir + "/garbage.json"))
        }

        deinit { try? FileManager.default.removeItem(atPath: dir) }
    }

    let files: Files
    init() throws { files = try Files() }

    static func noCrash(_ out: CLI.Output) {
        #expect(!out.stderr.contains("Fatal error") && !out.stderr.contains("Stack dump") && !out.stderr.contains("Backtrace"), "\(out.stderr)")
    }

    // MARK: check

    @Test func checkOfTheShippedDefaultIsClean() async throws {
        let out = try await CLI.run(["profile", "check", "default"])
        #expect(out.status == 0, "\(out.stdout)\(out.stderr)")
        #expect(out.stdout == "0 errors, 0 warnings\n")
    }

    @Test func checkReportsEveryErrorWithItsPosition() async throws {
        let path = files.dir + "/bad.json"
        let out = try await CLI.run(["profile", "check", path])
        #expect(out.status == 1)
        #expect(out.stdout == """
            \(path):4:24: error: syscalls[0].names[1]: unknown syscall "ptracee" (did you mean "ptrace"?)
            \(path):5:36: error: syscalls[1].action: unknown action "SCMP_ACT_FOO"
            2 errors, 0 warnings

            """)
        let json = try await CLI.run(["profile", "check", "--json", path])
        #expect(json.status == 1)
        let object = try json.json()
        #expect(object["file"] as? String == path)
        #expect(object["ok"] as? Bool == false)
        let diagnostics = try #require(object["diagnostics"] as? [[String: Any]])
        #expect(diagnostics.count == 2)
        #expect(diagnostics.first?["severity"] as? String == "error")
        #expect(diagnostics.first?["line"] as? Int == 4)
        #expect(diagnostics.first?["column"] as? Int == 24)
        #expect(diagnostics.first?["path"] as? String == "syscalls[0].names[1]")
        #expect(diagnostics.last?["message"] as? String == #"unknown action "SCMP_ACT_FOO""#)
    }

    @Test func warningsFailOnlyWithStrict() async throws {
        let path = files.dir + "/warn.json"
        let out = try await CLI.run(["profile", "check", path])
        #expect(out.status == 0)
        #expect(out.stdout.hasPrefix("\(path):5:37: warning: syscalls[1].action: SCMP_ACT_LOG allows the syscall"))
        #expect(out.stdout.hasSuffix("\n0 errors, 1 warning\n"))
        let strict = try await CLI.run(["profile", "check", "--strict", "--json", path])
        #expect(strict.status == 1)
        #expect(try strict.json()["ok"] as? Bool == false)
    }

    @Test func aSyntaxErrorIsAnErrorWithItsPosition() async throws {
        let path = files.dir + "/syntax.json"
        let out = try await CLI.run(["profile", "check", path])
        #expect(out.status == 1)
        #expect(out.stdout == "\(path):3:16: error: invalid JSON: unexpected '}', expected a value\n1 error, 0 warnings\n")
    }

    @Test func garbageAndMissingFilesExit2WithAClearMessage() async throws {
        let garbage = files.dir + "/garbage.json"
        for command in [["profile", "check", garbage], ["profile", "explain", garbage], ["profile", "diff", "default", garbage]] {
            let out = try await CLI.run(command)
            #expect(out.status == 2, "\(command): \(out.stderr)")
            #expect(out.stdout.isEmpty)
            #expect(out.stderr.hasPrefix("sealbox: profile \"\(garbage)\": "), "\(out.stderr)")
            Self.noCrash(out)
        }
        let check = try await CLI.run(["profile", "check", garbage])
        #expect(check.stderr == "sealbox: profile \"\(garbage)\": \(garbage) is not a text file (a NUL byte at offset 7); a profile is OCI seccomp JSON\n")
        let missing = files.dir + "/missing.json"
        for command in [["profile", "check", missing], ["profile", "explain", missing], ["profile", "diff", missing, "default"], ["profile", "check", "nosuchname"]] {
            let out = try await CLI.run(command)
            #expect(out.status == 2, "\(command): \(out.stderr)")
            // A path is the operator's and is named; a catalog name's message names no path.
            let expected = command.last == "nosuchname" ? "profile \"nosuchname\" not found among the installed profiles" : "not found (looked in "
            #expect(out.stderr.contains(expected), "\(out.stderr)")
            Self.noCrash(out)
        }
    }

    @Test("bad usage exits 2", arguments: [["profile", "check"], ["profile", "diff", "default"], ["profile", "explain", "--bogus", "default"], ["profile", "frobnicate"]])
    func badUsage(arguments: [String]) async throws {
        let out = try await CLI.run(arguments)
        #expect(out.status == 2, "\(out.stderr)")
        #expect(!out.stderr.isEmpty)
        Self.noCrash(out)
    }

    // MARK: explain

    @Test func explainDefault() async throws {
        let out = try await CLI.run(["profile", "explain", "default"])
        #expect(out.status == 0, "\(out.stderr)")
        #expect(out.stdout.hasPrefix("profile: default ("))
        #expect(out.stdout.contains("\ndefault action: ERRNO(1 EPERM)\n"))
        #expect(out.stdout.contains("\ntracing: 0 allowed, 0 conditional, "))
        #expect(out.stdout.contains("  conditional socket:\n    allowed if arg0 == 1 (AF_UNIX)"))
        #expect(out.stdout.contains("\ndangerous syscalls allowed: none\n"))
        let json = try await CLI.run(["profile", "explain", "--json", "default"])
        #expect(json.status == 0)
        let object = try json.json()
        #expect(object["default_action"] as? String == "SCMP_ACT_ERRNO(1)")
        let categories = try #require(object["categories"] as? [[String: Any]])
        let tracing = try #require(categories.first { $0["name"] as? String == "tracing" })
        let denied = try #require(tracing["denied"] as? [[String: Any]])
        #expect(denied.contains { $0["syscall"] as? String == "ptrace" })
        #expect((object["dangerous_allowed"] as? [Any])?.isEmpty == true)
    }

    @Test func explainAnInvalidProfileExits2AndPointsToCheck() async throws {
        let out = try await CLI.run(["profile", "explain", files.dir + "/bad.json"])
        #expect(out.status == 2)
        #expect(out.stderr.contains("unknown syscall \"ptracee\" in syscalls[0].names"))
        #expect(out.stderr.contains("sealbox profile check"))
        Self.noCrash(out)
    }

    // MARK: diff

    @Test func diffExitStatusIsLikeDiff1() async throws {
        let same = try await CLI.run(["profile", "diff", "default", "default"])
        #expect(same.status == 0)
        #expect(same.stdout == "default and default are equivalent\n")
        let different = try await CLI.run(["profile", "diff", "default", "permissive"])
        #expect(different.status == 1, "\(different.stderr)")
        #expect(different.stdout.hasPrefix("--- default\n+++ permissive\ndefault action: ERRNO(1 EPERM) -> ALLOW\n"))
        #expect(different.stdout.contains("\n  + vhangup: newly allowed"))
        #expect(different.stdout.contains("\ndangerous syscalls newly allowed: none\n"))
        let json = try await CLI.run(["profile", "diff", "--json", "default", "permissive"])
        #expect(json.status == 1)
        let object = try json.json()
        #expect(object["equivalent"] as? Bool == false)
        #expect((object["default_action"] as? [String: Any])?["to"] as? String == "SCMP_ACT_ALLOW")
    }

    @Test func profileHelpExplainsTheFormat() async throws {
        let out = try await CLI.run(["profile", "--help"])
        #expect(out.status == 0)
        for word in ["check", "explain", "diff", "profiles/README.md", "defaultAction"] {
            #expect(out.stdout.contains(word), "\(word)")
        }
        let check = try await CLI.run(["profile", "check", "--help"])
        #expect(check.status == 0)
        #expect(check.stdout.contains("FILE:LINE:COL"))
        #expect(check.stdout.contains("--strict"))
    }
}
