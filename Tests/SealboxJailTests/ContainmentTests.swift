import Foundation
import Glibc
import SealboxTestSupport
import Testing
import SealboxProfiles
@testable import SealboxJail

/// bubblewrap's try-syscall, jailed: the probe makes each call with arguments that fail
/// harmlessly if the filter let it through, and prints the errno it saw. A denial by the
/// profile's default action is also recorded in `violations` (seccomp user notification),
/// which tells "filtered" from "failed for lack of a capability" even when both are EPERM.
@Suite("seccomp containment", .needsRoot)
struct ContainmentTests {
    /// probe name → (errno the program must see, syscall that must be listed in violations)
    static let denied: [(String, String, String?)] = [
        ("ptrace", "EPERM", "ptrace"),
        ("mount", "EPERM", "mount"),
        ("umount2", "EPERM", "umount2"),
        ("pivot_root", "EPERM", "pivot_root"),
        ("fsopen", "EPERM", "fsopen"),
        ("open_tree", "EPERM", "open_tree"),
        ("move_mount", "EPERM", "move_mount"),
        ("mount_setattr", "EPERM", "mount_setattr"),
        ("unshare", "EPERM", "unshare"),
        ("setns", "EPERM", "setns"),
        ("clone_newuser", "EPERM", "clone"),
        ("clone3", "ENOSYS", nil),  // explicit ENOSYS so glibc falls back to clone, whose flags are checked
        ("keyctl", "EPERM", "keyctl"),
        ("add_key", "EPERM", "add_key"),
        ("request_key", "EPERM", "request_key"),
        ("bpf", "EPERM", "bpf"),
        ("perf_event_open", "EPERM", "perf_event_open"),
        ("userfaultfd", "EPERM", "userfaultfd"),
        ("io_uring_setup", "EPERM", "io_uring_setup"),
        ("kexec_load", "EPERM", "kexec_load"),
        ("init_module", "EPERM", "init_module"),
        ("reboot", "EPERM", "reboot"),
        ("swapon", "EPERM", "swapon"),
        ("clock_settime", "EPERM", "clock_settime"),
        ("adjtimex", "EPERM", "adjtimex"),
        ("open_by_handle_at", "EPERM", "open_by_handle_at"),
        ("ioctl_tiocsti", "EPERM", nil),
        ("ioctl_tiocsti_high_bits", "EPERM", nil),
        ("ioctl_tioclinux", "EPERM", nil),
        ("socket_packet", "EPERM", "socket"),
        ("socket_netlink", "EPERM", "socket"),
        ("socket_vsock", "EPERM", "socket"),
    ]

    static let allowed: [(String, String)] = [
        ("getpid", "ok"),
        ("socket_unix", "ok"),
        ("ioctl_fionread", "ENOTTY"),
    ]

    @Test("dangerous syscalls are denied, ordinary ones are not")
    func probeTable() async throws {
        let names = Self.denied.map(\.0) + Self.allowed.map(\.0)
        let r = try await Fixture.run(["/work/probe"] + names, files: [try Fixture.probe()])
        #expect(r.status == .ok, "\(r.status) \(r.stderr) \(r.error ?? "")")
        var seen: [String: String] = [:]
        for line in r.stdout.split(separator: "\n") {
            let parts = line.split(separator: " ")
            if parts.count == 2 { seen[String(parts[0])] = String(parts[1]) }
        }
        let violations = Set(r.violations.map(\.syscall))
        for (probe, errnoName, violation) in Self.denied {
            #expect(seen[probe] == errnoName, "\(probe): saw \(seen[probe] ?? "nothing"), expected \(errnoName)")
            if let violation {
                #expect(violations.contains(violation), "\(probe): \(violation) not in violations \(violations.sorted())")
            }
        }
        for (probe, result) in Self.allowed {
            #expect(seen[probe] == result, "\(probe): saw \(seen[probe] ?? "nothing"), expected \(result)")
        }
        #expect(!violations.contains("getpid"))
        #expect(r.violations.first { $0.syscall == "socket" }?.count == 3, "only the three denied families")
    }

    @Test("a KILL action ends the run as seccomp_violation")
    func killAction() async throws {
        let dir = try TemporaryDirectory.make("profile")
        defer { TemporaryDirectory.remove(dir) }
        let path = dir + "/kill-uname.json"
        try """
            {"defaultAction": "SCMP_ACT_ALLOW",
             "syscalls": [{"names": ["uname"], "action": "SCMP_ACT_KILL_PROCESS"}]}
            """.write(toFile: path, atomically: true, encoding: .utf8)
        let r = try await Fixture.run(["uname"], profile: .file(path))
        #expect(r.status == .seccompViolation)
        #expect(r.signal == SIGSYS && r.exitCode == 128 + SIGSYS)
        #expect(r.profile == path)
    }

    @Test("profiles are compiled once and cached")
    func compileCache() async throws {
        // An executor of its own: the shared one compiles whatever profiles other tests,
        // running at the same time, ask for.
        let executor = try Executor(configuration: .init(dataDirectory: Binaries.repoRoot))
        _ = try await executor.run(JailSpec(command: ["true"]))
        #expect(executor.compiler.cachedCount == 1)
        #expect(executor.profiles.count == 1)
        _ = try await executor.run(JailSpec(command: ["true"]))
        #expect(executor.compiler.cachedCount == 1)
        #expect(executor.profiles.count == 1)
    }

    @Test("an unknown profile is an error before anything is spawned")
    func unknownProfile() async throws {
        await #expect {
            try await Fixture.run(["true"], profile: "no-such-profile")
        } throws: { error in
            (error as? JailError)?.code == .profile && ((error as? JailError)?.message.contains("no-such-profile") ?? false)
        }
    }
}
