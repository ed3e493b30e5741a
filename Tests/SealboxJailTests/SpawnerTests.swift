import Foundation
import Glibc
import SealboxTestSupport
import Testing
@testable import SealboxJail

/// Jails cloned by the sealbox-spawner helper (a small process, see JailCloner) and, for
/// comparison, in this process.
@Suite("Spawner helper", .needsRoot)
struct SpawnerTests {
    /// Processes named sealbox-spawner whose parent is this process (jails' inits, also our
    /// children, name themselves sealbox-init).
    static func ourSpawners() -> [pid_t] {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return entries.compactMap { name -> pid_t? in
            guard let pid = pid_t(name), let stat = try? String(contentsOfFile: "/proc/\(name)/stat", encoding: .utf8),
                  let open = stat.firstIndex(of: "("), let close = stat.lastIndex(of: ")") else { return nil }
            let comm = stat[stat.index(after: open)..<close]
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            guard comm == "sealbox-spawner", fields.count > 2, pid_t(fields[1]) == getpid() else { return nil }
            // A jail's init is in a pid namespace of its own (and renames itself at once).
            guard (try? FilesystemPlan.readLink("/proc/\(name)/ns/pid")) == (try? FilesystemPlan.readLink("/proc/self/ns/pid")) else { return nil }
            return pid
        }
    }

    @Test("the test build's executor clones through the helper, whose jails are still our children")
    func helperInUse() async throws {
        let executor = try Fixture.jail()
        // `swift build` builds sealbox-spawner next to the test runner; CI must not fall back.
        #expect(executor.cloner.usesHelper, "sealbox-spawner not found beside \(JailCloner.besideExecutable())")
        // One helper for the whole process. Other suites start and stop executors beside this
        // test: a helper on its way out may still be listed for a moment (a loaded suite saw 2).
        #expect(try await eventually(10) { Self.ourSpawners().count == 1 }, "\(Self.ourSpawners())")
        // Inside, the program's parent is the jail's init, which shows nothing of the spawner's
        // command line.
        let r = try await Fixture.sh("echo $PPID; tr -d '\\0' < /proc/1/cmdline; echo; cat /proc/1/comm")
        #expect(r.status == .ok && r.stdout == "1\nsealbox-init\nsealbox-init\n", "\(r.stdout) \(r.error ?? r.stderr)")
    }

    @Test("in-process cloning gives the same results, cold and pooled")
    func inProcess() async throws {
        let executor = try Executor(configuration: .init(dataDirectory: Binaries.repoRoot, spawner: .inProcess))
        #expect(!executor.cloner.usesHelper)
        let spec = JailSpec(command: ["/bin/sh", "-c", "echo \"$GREETING\"; cat /work/a.txt; exit 4"], environment: [("GREETING", "hi")],
                            files: [SeedFile(name: "a.txt", contents: Array("file\n".utf8))])
        let cold = try await executor.run(spec)
        #expect(cold.status == .exitNonzero && cold.exitCode == 4 && cold.stdout == "hi\nfile\n", "\(cold.error ?? cold.stderr)")
        let pool = try executor.startPool(JailPool.Configuration(size: 1))
        defer { executor.stopPool() }
        #expect(pool.waitUntilFull(timeout: 30))
        let warm = try await executor.run(spec)
        #expect(warm.phases?.warm == true)
        #expect(warm.status == .exitNonzero && warm.exitCode == 4 && warm.stdout == "hi\nfile\n", "\(warm.error ?? warm.stderr)")
    }

    @Test("a helper that cannot run is refused with the reason")
    func missingHelper() {
        #expect {
            try Executor(configuration: .init(dataDirectory: Binaries.repoRoot, spawner: .helper(path: "/nonexistent/sealbox-spawner")))
        } throws: { error in
            (error as? JailError)?.description.contains("spawner /nonexistent/sealbox-spawner") == true
        }
    }

    @Test("the helper refuses to run by hand")
    func helperByHand() throws {
        let path = JailCloner.besideExecutable()
        var pid: pid_t = 0
        let argv: [UnsafeMutablePointer<CChar>?] = [strdup(path), nil]
        defer { argv.forEach { free($0) } }
        var actions: posix_spawn_file_actions_t = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
        #expect(posix_spawn(&pid, path, &actions, nil, argv, nil) == 0)
        var status: Int32 = 0
        #expect(waitpid(pid, &status, 0) == pid)
        #expect((status >> 8) & 0xff == 2)
    }
}
