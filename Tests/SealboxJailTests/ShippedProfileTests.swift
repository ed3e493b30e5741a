import Foundation
import Glibc
import SealboxProfiles
import SealboxTestSupport
import Testing
@testable import SealboxJail

/// The shipped profiles, table-driven (nsjail `make test` style): profile + probe + the errno
/// the probe must see inside a real jail, and whether the supervisor must name the syscall.
/// The probe (Sources/SealboxProbe) makes each call with harmless arguments, so "ok" and a
/// denial differ only by the filter.
@Suite("shipped profiles", .serialized)
struct ShippedProfileTests {
    struct Case: Sendable, CustomTestStringConvertible {
        var profile: String
        var probe: String
        var expect: String
        /// The syscall the supervisor must report in `violations`, when the denial comes from
        /// the profile's default action (explicit rules such as clone3 → ENOSYS are silent).
        var violation: String?

        var testDescription: String { "\(profile): \(probe) → \(expect)" }
    }

    /// Denied by every shipped profile (the dangerous syscalls and argument checks).
    static let deniedEverywhere: [(probe: String, expect: String, violation: String?)] = [
        ("ptrace", "EPERM", "ptrace"), ("mount", "EPERM", "mount"), ("unshare", "EPERM", "unshare"),
        ("clone_newuser", "EPERM", "clone"), ("bpf", "EPERM", "bpf"), ("keyctl", "EPERM", "keyctl"),
        ("io_uring_setup", "EPERM", "io_uring_setup"), ("userfaultfd", "EPERM", "userfaultfd"),
        ("ioctl_tiocsti", "EPERM", "ioctl"), ("ioctl_tiocsti_high_bits", "EPERM", "ioctl"),
        ("clone3", "ENOSYS", nil), ("getpid", "ok", nil),
    ]

    static let cases: [Case] = {
        var all: [Case] = []
        for profile in ["default", "strict", "python", "node"] {
            all += deniedEverywhere.map { Case(profile: profile, probe: $0.probe, expect: $0.expect, violation: $0.violation) }
        }
        // Processes, threads and sockets: allowed where the profile is for them.
        for profile in ["default", "python", "node"] {
            all += [
                Case(profile: profile, probe: "fork", expect: "ok"),
                Case(profile: profile, probe: "thread", expect: "ok"),
                Case(profile: profile, probe: "socket_unix", expect: "ok"),
                Case(profile: profile, probe: "socket_inet", expect: "ok"),
                Case(profile: profile, probe: "socket_inet6", expect: "ok"),
                Case(profile: profile, probe: "socket_netlink", expect: "EPERM", violation: "socket"),
                Case(profile: profile, probe: "socket_netlink_high_bits", expect: "EPERM", violation: "socket"),
                Case(profile: profile, probe: "socket_packet", expect: "EPERM", violation: "socket"),
            ]
        }
        // strict: threads yes, new processes no, no sockets of any kind.
        all += [
            Case(profile: "strict", probe: "thread", expect: "ok"),
            Case(profile: "strict", probe: "fork", expect: "EPERM", violation: "clone"),
            Case(profile: "strict", probe: "socket_unix", expect: "EAFNOSUPPORT"),
            Case(profile: "strict", probe: "socket_inet", expect: "EAFNOSUPPORT"),
            Case(profile: "strict", probe: "socket_netlink", expect: "EAFNOSUPPORT"),
        ]
        return all
    }()

    @Test("probe under a shipped profile", .enabled(if: geteuid() == 0, "jails need root here"), arguments: cases)
    func probe(_ c: Case) async throws {
        let spec = JailSpec(command: ["/work/probe", c.probe], files: [try Fixture.probe()], profile: ProfileReference(commandLine: c.profile))
        let r = try await Fixture.jail().run(spec)
        #expect(r.status == .ok, "\(r.status): \(r.stderr) \(r.error ?? "")")
        #expect(r.stdout == "\(c.probe) \(c.expect)\n")
        if let name = c.violation {
            #expect(r.violations.map(\.syscall) == [name], "\(r.violations)")
        } else {
            #expect(r.violations.isEmpty, "\(r.violations)")
        }
    }

    /// Every workload a learned profile was made from still runs cleanly under it, with no
    /// syscall denied (a hand edit that breaks one shows here).
    static let workloads: [(profile: String, language: SnippetLanguage, file: String)] = {
        var list: [(String, SnippetLanguage, String)] = []
        let root = Binaries.repoRoot + "/profiles/workloads"
        for (profile, language, ext) in [("python", SnippetLanguage.python, "py"), ("node", .node, "js")] {
            let names = (try? FileManager.default.contentsOfDirectory(atPath: "\(root)/\(profile)")) ?? []
            for name in names.sorted() where name.hasSuffix("." + ext) { list.append((profile, language, "\(root)/\(profile)/\(name)")) }
        }
        for (name, language) in [("snippet.py", SnippetLanguage.python), ("snippet.js", .node), ("snippet.sh", .bash)] {
            list.append(("strict", language, "\(root)/strict/\(name)"))
        }
        return list
    }()

    @Test("the workloads of a learned profile run under it with nothing denied", .enabled(if: geteuid() == 0, "jails need root here"))
    func workloadsRunClean() async throws {
        #expect(Self.workloads.count >= 11, "profiles/workloads is incomplete: \(Self.workloads.map(\.file))")
        for w in Self.workloads {
            let source = try #require(FileManager.default.contents(atPath: w.file), "\(w.file)")
            let program = w.language.program(code: [UInt8](source), arguments: [])
            var limits = Limits()
            limits.memoryBytes = 1 << 30
            limits.timeoutMs = 60_000
            let spec = JailSpec(command: program.command, files: [program.file], limits: limits, profile: ProfileReference(commandLine: w.profile))
            let r = try await Fixture.jail().run(spec)
            #expect(r.status == .ok, "\(w.file) under \(w.profile): \(r.status) \(r.stderr)")
            #expect(r.violations.isEmpty, "\(w.file) under \(w.profile): \(r.violations)")
        }
    }

    /// Docker's default profile, exactly as moby ships it (Debian's golang-github-docker-docker-dev,
    /// fetched by scripts/setup.sh), loads and runs the usual interpreters.
    @Test("Docker's own default profile works unmodified", .enabled(if: geteuid() == 0, "jails need root here"))
    func dockerDefaultProfile() async throws {
        let path = ProcessInfo.processInfo.environment["SEALBOX_DOCKER_PROFILE"] ?? "/var/cache/sealbox/docker-default.json"
        let bytes = try #require(FileManager.default.contents(atPath: path), "\(path) is missing: scripts/setup.sh fetches it")
        #expect(String(decoding: bytes, as: UTF8.self).contains("\"SCMP_ACT_ERRNO\""))
        for (command, expected) in [
            (["python3", "-c", "import threading, subprocess; t = threading.Thread(target=print, args=('t',)); t.start(); t.join(); subprocess.run(['true'])"], "t\n"),
            (["node", "-e", "console.log(require('child_process').execSync('echo n').toString().trim())"], "n\n"),
            (["/bin/bash", "-c", "echo $((6*7)) | cat"], "42\n"),
        ] {
            var limits = Limits()
            limits.memoryBytes = 1 << 30
            let r = try await Fixture.jail().run(JailSpec(command: command, limits: limits, profile: .file(path)))
            #expect(r.status == .ok && r.stdout == expected, "\(command[0]): \(r.status) \(r.stdout) \(r.stderr)")
            // Docker 20.10's list predates pkey_alloc, which node tries once and does without.
            #expect(r.violations.allSatisfy { $0.syscall == "pkey_alloc" }, "\(command[0]): \(r.violations)")
        }
        // Its denials are reported like ours: keyctl is not in Docker's allowlist.
        let probe = try await Fixture.jail().run(JailSpec(command: ["/work/probe", "keyctl", "mount"], files: [try Fixture.probe()], profile: .file(path)))
        #expect(probe.stdout == "keyctl EPERM\nmount EPERM\n")
        #expect(probe.violations.map(\.syscall) == ["keyctl", "mount"])
    }
}
