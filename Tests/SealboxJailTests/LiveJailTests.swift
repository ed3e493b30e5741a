import Foundation
import Glibc
import SealboxBase
import SealboxProfiles
import SealboxTestSupport
import Testing
@testable import SealboxJail

/// Live jails (`LiveJail`, sbx_resident.c): a jail that stays, whose own init starts commands.
@Suite("Live jails", .needsRoot)
struct LiveJailTests {
    static func start(_ spec: JailSpec = JailSpec(command: []), executor: Executor? = nil) throws -> LiveJail {
        try (executor ?? Fixture.jail()).startLiveJail(spec)
    }

    static func sh(_ jail: LiveJail, _ script: String, timeoutMs: Int = 10_000, stdin: StdinSource = .null,
                   cwd: String = "/work", env: [(name: String, value: String)] = []) async throws -> JailResult {
        try await jail.run(LiveCommand(command: ["/bin/sh", "-c", script], environment: env, workingDirectory: cwd, stdin: stdin, timeoutMs: timeoutMs))
    }

    @Test("commands share the jail's /work; each has its own stdin, environment, working directory and result")
    func stateAcrossCommands() async throws {
        let jail = try Self.start(JailSpec(command: [], files: [SeedFile(name: "seed.txt", contents: Array("seeded\n".utf8))]))
        defer { jail.end() }
        let first = try await Self.sh(jail, "cat seed.txt; echo kept > /work/state.txt; mkdir -p /work/sub; exit 3")
        #expect(first.status == .exitNonzero && first.exitCode == 3 && first.stdout == "seeded\n", "\(first.stdout) \(first.stderr)")
        let second = try await Self.sh(jail, "cat ../state.txt; pwd; echo \"$GREETING\"; read -r line; echo \"in:$line\"; id -u",
                                       stdin: .bytes(Array("hello\n".utf8)), cwd: "/work/sub", env: [("GREETING", "hi")])
        #expect(second.status == .ok && second.stdout == "kept\n/work/sub\nhi\nin:hello\n\(Executor.jailUID)\n", "\(second.stdout) \(second.stderr)")
        #expect(first.id != second.id && second.cpuMs >= 0 && second.wallMs > 0)
        #expect(jail.runningCommands == 0 && !jail.hasEnded)
    }

    /// The default profile's refused calls are notified, to be answered (and counted) by
    /// sealbox: one made by a process its command left behind, after the command ended, is
    /// still answered (EPERM), not left waiting forever.
    @Test("a refused call of a background process, made after its command ended, is answered")
    func backgroundNotifiedCall() async throws {
        let jail = try Self.start()
        defer { jail.end() }
        // syscall(169) is reboot: not in the default profile, so refused through a notification.
        let script = "import ctypes, os, time; time.sleep(0.3); r = ctypes.CDLL(None, use_errno=True).syscall(169, 0, 0, 0, 0); "
            + "open('/work/bg.tmp', 'w').write('%d %d' % (r, ctypes.get_errno())); os.rename('/work/bg.tmp', '/work/bg')"
        let started = try await Self.sh(jail, "python3 -c \"\(script)\" >/dev/null 2>&1 &")
        #expect(started.status == .ok, "\(started.stderr)")
        let answered = try await eventually(10) { (try? jail.files.stat("bg")) != nil }
        #expect(answered, "the background call was never answered")
        let said = try await Self.sh(jail, "cat bg")
        #expect(said.stdout == "-1 \(EPERM)", "\(said.stdout)")
    }

    @Test("a command that cannot start is a spawn_failed result, and the jail goes on")
    func failedStart() async throws {
        let jail = try Self.start()
        defer { jail.end() }
        let missing = try await jail.run(LiveCommand(command: ["no-such-program-here"]))
        #expect(missing.status == .spawnFailed && missing.exitCode == 127, "\(missing.error ?? "")")
        let noDirectory = try await jail.run(LiveCommand(command: ["/bin/true"], workingDirectory: "/work/absent"))
        #expect(noDirectory.status == .spawnFailed && noDirectory.error?.contains("ENOENT") == true, "\(noDirectory.error ?? "")")
        for bad in ["/tmp", "/work/../etc", "work", "/work/./x", "/work//x", "/"] {
            await #expect(throws: JailError.self, "cwd \(bad)") { try await jail.run(LiveCommand(command: ["/bin/true"], workingDirectory: bad)) }
        }
        await #expect(throws: JailError.self) { try await jail.run(LiveCommand(command: [])) }
        #expect(try await Self.sh(jail, "echo still here").stdout == "still here\n")
    }

    @Test("commands run at once; a background process outlives its command; a timeout kills its own process group only")
    func concurrencyAndGroups() async throws {
        let jail = try Self.start()
        defer { jail.end() }
        // A long command does not hold up another.
        let long = Task { try await Self.sh(jail, "read -r never < /dev/zero; sleep 60", timeoutMs: 60_000) }
        #expect(try await eventually(10) { jail.runningCommands == 1 })
        let quick = try await Self.sh(jail, "echo quick")
        #expect(quick.stdout == "quick\n" && jail.runningCommands == 1)

        // Started in the background by one command (its output still on the command's pipes):
        // the command returns, the process lives on.
        let background = try await Self.sh(jail, "sleep 1000 & echo $! > /work/bg1.pid; echo started")
        #expect(background.status == .ok && background.stdout == "started\n")
        // A command that times out: it and its own background child die, the other one lives.
        let timedOut = try await Self.sh(jail, "sleep 1000 & echo $! > /work/bg2.pid; sleep 1000", timeoutMs: 300)
        #expect(timedOut.status == .timeout && timedOut.signal == SIGKILL)
        let check = try await Self.sh(jail, """
            kill -0 "$(cat bg1.pid)" && echo bg1-alive
            for i in $(seq 50); do kill -0 "$(cat bg2.pid)" 2>/dev/null || { echo bg2-gone; exit 0; }; sleep 0.1; done
            """)
        #expect(check.stdout == "bg1-alive\nbg2-gone\n", "\(check.stdout) \(check.stderr)")

        // Ending the jail ends the long command as killed, at once.
        jail.end()
        let ended = try await long.value
        #expect(ended.signal == SIGKILL && ended.interrupted && ended.error == "the sandbox ended", "\(ended.status) \(ended.error ?? "")")
        await #expect(throws: JailError.self) { try await Self.sh(jail, "true") }
        #expect(jail.hasEnded)
    }

    @Test("each command is filtered by the jail's profile: a kill rule ends that command, the jail goes on")
    func seccompPerCommand() async throws {
        let profile = try ViolationReportTests.addingRule(["names": ["ptrace"], "action": "SCMP_ACT_KILL_PROCESS"])
        let jail = try Self.start(JailSpec(command: [], files: [try Fixture.probe()], profile: profile))
        defer { jail.end() }
        let r = try await jail.run(LiveCommand(command: ["/work/probe", "getpid", "ptrace", "getpid"]))
        #expect(r.status == .seccompViolation && r.signal == SIGSYS && r.stdout == "getpid ok\n", "\(r.stdout) \(r.stderr)")
        #expect(r.violations == [.init(syscall: "ptrace", count: 1, action: "kill")])
        let next = try await jail.run(LiveCommand(command: ["/work/probe", "getpid"]))
        #expect(next.status == .ok && next.stdout == "getpid ok\n" && next.violations.isEmpty)
    }

    @Test("a memory bomb and a fork bomb end in the jail's limits, on the command that hit them; the jail goes on")
    func limitsHoldForTheWholeJail() async throws {
        let jail = try Self.start(JailSpec(command: [], limits: Limits(memoryBytes: 64 << 20, pids: 32)))
        defer { jail.end() }
        let memory = try await jail.run(LiveCommand(command: ["python3", "-c", "x = bytearray(512 << 20); x[::4096] = b'a' * len(x[::4096])"]))
        #expect(memory.status == .memoryLimit, "\(memory.status) \(memory.stderr)")
        let forks = try await Self.sh(jail, "i=0; while [ $i -lt 200 ]; do sleep 5 & i=$((i+1)); done; wait", timeoutMs: 5_000)
        #expect(forks.status == .pidsLimit, "\(forks.status) \(forks.stderr)")
        #expect(try await Self.sh(jail, "echo fine").stdout == "fine\n")
    }

    @Test("ending a jail leaves no process, cgroup or pool debt behind; a pooled jail serves as one")
    func endCleansUp() async throws {
        let executor = try PoolTests.executor()
        _ = try PoolTests.startPool(executor, size: 1)
        defer { executor.stopPool() }
        let pooled = try Self.start(executor: executor)
        #expect(pooled.fromPool)
        let marker = "sealbox-live-\(UInt32.random(in: 0...UInt32.max))"
        let r = try await pooled.run(LiveCommand(command: ["/bin/sh", "-c", "cp /bin/sleep /tmp/\(marker); /tmp/\(marker) 1000 &"]))
        #expect(r.status == .ok)
        #expect(try await eventually(10) { !Fixture.hostProcesses(containing: marker).isEmpty }, "the background process runs")
        let cgroupPaths = executor.cgroupDriver.taskParentDirectories.map { $0 + "/" + pooled.cgroupName }
        #expect(!cgroupPaths.isEmpty && cgroupPaths.allSatisfy { FileManager.default.fileExists(atPath: $0) })
        pooled.end()
        pooled.end()
        #expect(Fixture.hostProcesses(containing: marker).isEmpty, "ending the jail killed what it ran")
        #expect(cgroupPaths.allSatisfy { !FileManager.default.fileExists(atPath: $0) }, "its cgroup is gone")
        // The pool prepares a replacement, and a stopped pool does not wait on the ended jail.
        #expect(try await eventually(30) { executor.pool?.stats.ready == 1 })

        let cold = try Self.start(JailSpec(command: [], limits: Limits(memoryBytes: 96 << 20)), executor: executor)
        #expect(!cold.fromPool)
        #expect(try await Self.sh(cold, "echo cold").stdout == "cold\n")
        cold.end()
    }

    @Test("cloned in this process (no spawner), a live jail outlives the thread that asked for it")
    func inProcessParent() async throws {
        let executor = try Executor(configuration: .init(dataDirectory: Binaries.repoRoot, spawner: .inProcess))
        // Started from a thread that ends at once: the jail's parent is a thread of its own.
        let jail = try await onOwnThread("start-live-jail") { Result { try Self.start(executor: executor) } }.get()
        defer { jail.end() }
        // The starting thread has returned by now; a jail tied to it would be dead (SIGKILL).
        let r = try await Self.sh(jail, "sleep 0.2; echo alive")
        #expect(r.status == .ok && r.stdout == "alive\n" && !jail.hasEnded, "\(r.status) \(r.error ?? "")")
    }

    @Test("two live jails cannot see, signal or reach each other's processes, files or sockets")
    func jailsAreApart() async throws {
        let a = try Self.start()
        let b = try Self.start()
        defer {
            a.end()
            b.end()
        }
        // A listens on a Unix socket in its /tmp and on loopback, and keeps a process running.
        let listening = try await Self.sh(a, """
            python3 -c 'import socket,os,time
            u=socket.socket(socket.AF_UNIX); u.bind("/tmp/a.sock"); u.listen()
            t=socket.socket(); t.bind(("127.0.0.1", 7070)); t.listen()
            open("/work/ready","w").close(); time.sleep(600)' marker-a > /dev/null 2>&1 &
            echo secret > /work/a-only.txt
            for i in $(seq 100); do [ -e /work/ready ] && break; sleep 0.05; done; ls /work/ready
            """)
        #expect(listening.stdout == "/work/ready\n", "\(listening.stderr)")
        let probe = try await Self.sh(b, """
            m=mark; m="${m}er-a"; n=0
            for p in /proc/[0-9]*; do case "$(tr '\\0' ' ' < $p/cmdline 2>/dev/null)" in *"$m"*) n=$((n+1));; esac; done
            echo "foreign:$n"
            ls /work/a-only.txt 2>/dev/null || echo no-file
            ls /tmp/a.sock 2>/dev/null || echo no-socket
            python3 -c 'import socket
            try:
                socket.create_connection(("127.0.0.1", 7070), timeout=1); print("reached")
            except OSError: print("unreachable")'
            """)
        #expect(probe.stdout == "foreign:0\nno-file\nno-socket\nunreachable\n", "\(probe.stdout) \(probe.stderr)")
        // The same probe in A itself does see its process: the check can fail.
        let own = try await Self.sh(a, #"m=mark; m="${m}er-a"; n=0; for p in /proc/[0-9]*; do case "$(tr '\0' ' ' < $p/cmdline 2>/dev/null)" in *"$m"*) n=$((n+1));; esac; done; echo "own:$n""#)
        #expect(own.stdout == "own:1\n", "\(own.stdout) \(own.stderr)")
    }
}
