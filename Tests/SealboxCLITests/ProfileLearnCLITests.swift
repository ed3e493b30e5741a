import Foundation
import Glibc
import SealboxTestSupport
import Testing

/// `sealbox profile learn` and `sealbox profile test`, end to end through the CLI, as an operator
/// would use them: learn a profile for a workload, check it, run under it; name what a profile
/// denies.
@Suite("sealbox profile learn / test", .serialized, .enabled(if: geteuid() == 0, "jails need root here"))
struct ProfileLearnCLITests {
    static func scratch() throws -> String {
        let dir = NSTemporaryDirectory() + "sealbox-learn-cli-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return dir
    }

    static func json(_ text: String) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
    }

    @Test func learnCheckRun() async throws {
        let dir = try Self.scratch()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let out = dir + "/hello.json"
        let code = "import json, hashlib; print(json.dumps(hashlib.sha1(b'x').hexdigest()[:4]))"
        let learned = try await CLI.run(["profile", "learn", "-o", out, "--lang", "python", "--code", code])
        #expect(learned.status == 0, "\(learned.stderr)")
        #expect(learned.stderr.contains("same as the recording run"), "\(learned.stderr)")
        let profile = try Self.json(try String(contentsOfFile: out, encoding: .utf8))
        #expect(profile["defaultAction"] as? String == "SCMP_ACT_ERRNO")
        let rules = try #require(profile["syscalls"] as? [[String: Any]])
        let allowed = Set((rules.first?["names"] as? [String]) ?? [])
        for needed in ["execve", "read", "write", "openat", "mmap", "exit_group"] { #expect(allowed.contains(needed), "\(needed)") }
        for never in ["ptrace", "mount", "fork", "socket"] { #expect(!allowed.contains(never), "\(never)") }
        #expect(allowed.count < 80, "a print snippet needs a few dozen syscalls, not \(allowed.count)")

        let check = try await CLI.run(["profile", "check", out])
        #expect(check.status == 0 && check.stdout == "0 errors, 0 warnings\n", "\(check.stdout)")
        let run = try await CLI.run(["run", "--profile", out, "--json", "--lang", "python", "--code", code])
        let result = try Self.json(run.stdout)
        #expect(result["status"] as? String == "ok" && result["stdout"] as? String == "\"11f6\"\n", "\(run.stdout)")
        #expect((result["violations"] as? [Any])?.isEmpty == true)
        // Something the snippet never did is denied under the learned profile, and named.
        let other = try await CLI.run(["run", "--profile", out, "--json", "--lang", "python", "--code", "import socket; socket.socket()"])
        let otherResult = try Self.json(other.stdout)
        #expect(otherResult["status"] as? String == "exit_nonzero")
        #expect((otherResult["violations"] as? [[String: Any]])?.contains { $0["syscall"] as? String == "socket" } == true, "\(other.stdout)")
    }

    @Test func dangerousCallsAreFlaggedNotLearned() async throws {
        let dir = try Self.scratch()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let out = dir + "/d.json"
        let code = "import ctypes, socket\nlibc = ctypes.CDLL(None, use_errno=True)\nprint(libc.ptrace(16, 1, 0, 0), ctypes.get_errno())\ntry:\n    socket.socket(socket.AF_NETLINK, socket.SOCK_RAW)\nexcept OSError as e:\n    print(e.errno)\n"
        let learned = try await CLI.run(["profile", "learn", "-o", out, "--json", "--lang", "python", "--code", code])
        #expect(learned.status == 0, "\(learned.stderr)")
        let report = try Self.json(learned.stdout)
        let findings = try #require(report["findings"] as? [String: Any])
        let dangerous = try #require(findings["dangerous"] as? [[String: Any]])
        #expect(dangerous.map { $0["syscall"] as? String } == ["ptrace"])
        let outside = try #require(findings["outside_conditions"] as? [[String: Any]])
        #expect(outside.first?["syscall"] as? String == "socket")
        #expect((outside.first?["first_args"] as? [Int])?.first == 16)
        #expect(report["verified"] as? Bool == true)
        let text = try String(contentsOfFile: out, encoding: .utf8)
        #expect(!text.contains("\"ptrace\""), "ptrace must not be learned")
        #expect(text.contains("Dangerous syscalls seen and left denied: ptrace"))
    }

    @Test func testReportsEveryDenial() async throws {
        let denied = try await CLI.run(["profile", "test", "default", "--lang", "python", "--code", "import ctypes; print(ctypes.CDLL(None).ptrace(16, 1, 0, 0))"])
        #expect(denied.status == 1)
        #expect(denied.stdout == "-1\n")
        #expect(denied.stderr.contains("profile default denied 1 syscall"), "\(denied.stderr)")
        #expect(denied.stderr.contains("ptrace  ×1  failed with EPERM"), "\(denied.stderr)")
        let clean = try await CLI.run(["profile", "test", "default", "--", "/bin/true"])
        #expect(clean.status == 0 && clean.stderr.contains("nothing denied"), "\(clean.stderr)")
        // strict: no processes. dash forks with vfork: denied and named.
        let strict = try await CLI.run(["profile", "test", "strict", "--json", "--", "/bin/sh", "-c", "/bin/true; echo after"])
        let result = try Self.json(strict.stdout)
        #expect(strict.status == 1)
        #expect((result["violations"] as? [[String: Any]])?.contains { $0["syscall"] as? String == "vfork" } == true, "\(strict.stdout)")
        #expect((result["stderr"] as? String)?.contains("Cannot fork") == true)
    }

    /// Semaphores and segments in /dev/shm, ptys in the jail's devpts, and a foreign-ABI call:
    /// `profile test` names only what the profile denies (nothing, under default), and
    /// `profile learn` records the workload and verifies it under the learned profile.
    static let sharedMemoryAndTerminals = """
        import multiprocessing as mp, os, pty
        from multiprocessing import shared_memory
        def square(x):
            return x * x
        if __name__ == "__main__":
            with mp.get_context("spawn").Pool(2) as pool:
                print(pool.map(square, range(3)))
            s = shared_memory.SharedMemory(create=True, size=4096); s.buf[0] = 7; print(s.buf[0]); s.close(); s.unlink()
            m, t = os.openpty(); os.write(m, b"x\\n"); print(os.read(t, 10))
        """

    @Test func testAndLearnWorkForSharedMemoryAndTerminals() async throws {
        let tested = try await CLI.run(["profile", "test", "default", "--json", "--lang", "python", "--code", Self.sharedMemoryAndTerminals])
        let report = try Self.json(tested.stdout)
        #expect(report["stdout"] as? String == "[0, 1, 4]\n7\nb'x\\n'\n" && report["status"] as? String == "ok", "\(tested.stdout)")
        // `profile test` lists explicit rules too, so it exits 1 for the one every threaded
        // program meets: glibc's clone3, answered ENOSYS (it then uses clone). Nothing else.
        let listed = ((report["violations"] as? [[String: Any]]) ?? []).compactMap { $0["syscall"] as? String }
        #expect(tested.status == 1 && listed == ["clone3"], "\(listed) \(tested.stderr)")
        let dir = try Self.scratch()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let learned = try await CLI.run(["profile", "learn", "-o", dir + "/mp.json", "--timeout", "60", "--lang", "python", "--code", Self.sharedMemoryAndTerminals])
        #expect(learned.status == 0 && learned.stderr.contains("same as the recording run"), "\(learned.stderr)")
        let again = try await CLI.run(["run", "--profile", dir + "/mp.json", "--json", "--lang", "python", "--code", Self.sharedMemoryAndTerminals])
        let result = try Self.json(again.stdout)
        #expect(result["status"] as? String == "ok" && (result["violations"] as? [Any])?.isEmpty == true, "\(again.stdout)")
    }

    @Test func learnRefusesBadInput() async throws {
        let noOutput = try await CLI.run(["profile", "learn", "--lang", "python", "--code", "1"])
        #expect(noOutput.status != 0 && noOutput.stderr.contains("--output"), "\(noOutput.stderr)")
        let badBase = try await CLI.run(["profile", "learn", "-o", "/tmp/x.json", "--base", "nosuch", "--", "/bin/true"])
        #expect(badBase.status == 125 && badBase.stderr.contains("nosuch"), "\(badBase.stderr)")
        let dangerous = try await CLI.run(["profile", "learn", "-o", "/tmp/x.json", "--allow", "ptrace", "--", "/bin/true"])
        #expect(dangerous.status == 125 && dangerous.stderr.contains("ptrace is dangerous"), "\(dangerous.stderr)")
        let nothing = try await CLI.run(["profile", "learn", "-o", "/tmp/x.json"])
        #expect(nothing.status == 125 && nothing.stderr.contains("nothing to run"), "\(nothing.stderr)")
        let noDirectory = try await CLI.run(["profile", "learn", "-o", "/nonexistent-sbx/x.json", "--", "/bin/true"])
        #expect(noDirectory.status != 0 && noDirectory.stderr.contains("no such directory /nonexistent-sbx"), "\(noDirectory.stderr)")
        for out in [noOutput, badBase, dangerous, nothing, noDirectory] {
            #expect(!out.stderr.contains("Fatal error") && !out.stderr.contains("Stack dump"))
        }
    }
}
