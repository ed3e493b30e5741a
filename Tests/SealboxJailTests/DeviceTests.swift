import Foundation
import Glibc
import SealboxProfiles
import SealboxTestSupport
import Testing
@testable import SealboxJail

/// The jail's /dev (issue 21): the harmless host nodes, the standard links, a private devpts
/// with /dev/ptmx, and a private, size-capped /dev/shm, the same cold and pooled.
@Suite("Devices", .needsRoot)
struct DeviceTests {
    /// The whole of /dev, with types and modes: anything added or missing fails here.
    @Test("/dev holds exactly the documented entries, with their types and modes")
    func devListing() async throws {
        let r = try await Fixture.sh("cd /dev && stat -c '%n %F %a' * | sort; readlink ptmx fd stdin stdout stderr")
        #expect(r.status == .ok, "\(r.stderr)")
        #expect(r.stdout == """
            fd symbolic link 777
            full character special file 666
            null character special file 666
            ptmx symbolic link 777
            pts directory 755
            random character special file 666
            shm directory 1777
            stderr symbolic link 777
            stdin symbolic link 777
            stdout symbolic link 777
            tty character special file 666
            urandom character special file 666
            zero character special file 666
            pts/ptmx
            /proc/self/fd
            /proc/self/fd/0
            /proc/self/fd/1
            /proc/self/fd/2

            """)
    }

    /// Mount options as the jail's own mountinfo shows them (super options are the last field).
    static func mountLine(_ mountinfo: String, at point: String) -> (options: String, type: String, superOptions: String)? {
        for line in mountinfo.split(separator: "\n") {
            let fields = line.split(separator: " ").map(String.init)
            guard fields.count > 9, fields[4] == point, let dash = fields.firstIndex(of: "-"), dash + 3 < fields.count else { continue }
            return (fields[5], fields[dash + 1], fields[dash + 3])
        }
        return nil
    }

    @Test("/dev/shm: a tmpfs of the jail's own, mode 1777, nosuid, nodev, sized by the limit (default a quarter of memory)")
    func shmMount() async throws {
        let r = try await Fixture.sh("cat /proc/self/mountinfo; echo shared > /dev/shm/x && cat /dev/shm/x")
        let shm = try #require(Self.mountLine(r.stdout, at: "/dev/shm"), "\(r.stdout)")
        #expect(shm.type == "tmpfs")
        #expect(shm.options.split(separator: ",").contains("nosuid") && shm.options.split(separator: ",").contains("nodev"), "\(shm.options)")
        // (tmpfs shows mode= only when it is not 1777; devListing checks the mode itself.)
        let superOptions = Set(shm.superOptions.split(separator: ",").map(String.init))
        #expect(superOptions.contains("size=\(Limits().memoryBytes / 4 / 1024)k") && superOptions.contains("nr_inodes=16384"), "\(shm.superOptions)")
        #expect(r.stdout.hasSuffix("shared\n"))
        #expect(r.limits.shmBytes == Limits().memoryBytes / 4)

        let sized = try await Fixture.run(["/bin/sh", "-c", "cat /proc/self/mountinfo"], limits: Limits(memoryBytes: 512 << 20, shmBytes: 3 << 20))
        let custom = try #require(Self.mountLine(sized.stdout, at: "/dev/shm"))
        #expect(custom.superOptions.split(separator: ",").contains("size=3072k"), "\(custom.superOptions)")
        #expect(sized.limits.shmBytes == 3 << 20)
    }

    @Test("/dev/shm is capped: writing past its size fails with ENOSPC")
    func shmCap() async throws {
        let r = try await Fixture.run(["/bin/sh", "-c", "dd if=/dev/zero of=/dev/shm/big bs=64k count=32 2>&1; echo rc=$?; ls -s /dev/shm/big"],
                                      limits: Limits(shmBytes: 1 << 20))
        #expect(r.stdout.contains("No space left on device") && r.stdout.contains("rc=1"), "\(r.stdout)")
    }

    @Test("/dev/shm pages are charged to the jail's memory cgroup")
    func shmChargedToMemory() async throws {
        // 48 MiB in /dev/shm, held by no process once dd has exited: the cgroup's peak still
        // counts them (and the memory limit bounds them, which is why --shm may not exceed it).
        let r = try await Fixture.run(["/bin/sh", "-c", "dd if=/dev/zero of=/dev/shm/f bs=1M count=48 2>/dev/null && cat /proc/self/status >/dev/null && echo ok"],
                                      limits: Limits(memoryBytes: 256 << 20, shmBytes: 64 << 20))
        #expect(r.status == .ok && r.stdout == "ok\n", "\(r.status) \(r.stderr)")
        #expect(r.peakMemoryBytes >= 48 << 20, "peak \(r.peakMemoryBytes) does not include /dev/shm's pages")
        // 31 MiB fit a 32 MiB /dev/shm, but not a 32 MiB memory limit that also holds the shell
        // and dd: the jail is OOM-killed or the write fails. Were tmpfs pages not charged, it
        // would succeed (rc=0): they are no way around the memory limit.
        let tight = try await Fixture.run(["/bin/sh", "-c", "dd if=/dev/zero of=/dev/shm/f bs=1M count=31 2>/dev/null; echo rc=$?"],
                                          limits: Limits(memoryBytes: 32 << 20, shmBytes: 32 << 20))
        #expect(tight.status == .memoryLimit || (tight.stdout.hasPrefix("rc=") && tight.stdout != "rc=0\n"), "\(tight.status) \(tight.stdout)")
    }

    @Test("/dev/shm is emptied with the jail, cold and pooled; the host's /dev/shm never sees it")
    func shmEmptiedWithTheJail() async throws {
        let marker = "sbx-shm-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let write = "echo x > /dev/shm/\(marker) && ls /dev/shm"
        let check = "ls -A /dev/shm | wc -l"
        let first = try await Fixture.sh(write)
        #expect(first.stdout == "\(marker)\n")
        #expect(access("/dev/shm/" + marker, F_OK) != 0, "the jail's /dev/shm file is on the host")
        let second = try await Fixture.sh(check)
        #expect(second.stdout == "0\n")

        let executor = try PoolTests.executor()
        let pool = try PoolTests.startPool(executor, size: 1)
        defer { executor.stopPool() }
        let warm = try await executor.run(JailSpec(command: ["/bin/sh", "-c", write]))
        #expect(warm.phases?.warm == true && warm.stdout == "\(marker)\n")
        #expect(pool.waitUntilFull(timeout: 30))
        let warmAgain = try await executor.run(JailSpec(command: ["/bin/sh", "-c", check]))
        #expect(warmAgain.phases?.warm == true && warmAgain.stdout == "0\n", "a pooled jail saw another's /dev/shm: \(warmAgain.stdout)")
    }

    @Test("the /dev/shm limit is validated: at least 64K, at most the memory limit")
    func shmValidation() async throws {
        for (limits, message) in [(Limits(shmBytes: 1024), "at least 64K"), (Limits(memoryBytes: 64 << 20, shmBytes: 128 << 20), "must not exceed the memory limit")] {
            await #expect {
                _ = try await Fixture.jail().run(JailSpec(command: ["/bin/true"], limits: limits))
            } throws: { error in
                (error as? JailError)?.code == .invalidSpec && "\(error)".contains(message)
            }
        }
        #expect(Limits(memoryBytes: 4 << 20).devShmBytes == 1 << 20)
        #expect(Limits(memoryBytes: 1 << 30).devShmBytes == 256 << 20)
        #expect(Limits(memoryBytes: 1 << 30, shmBytes: 5 << 20).devShmBytes == 5 << 20)
    }

    @Test("a file as large as /dev/shm fits even when the disk limit is smaller (RLIMIT_FSIZE follows the larger)")
    func shmLargerThanDisk() async throws {
        let r = try await Fixture.python("""
            from multiprocessing import shared_memory
            s = shared_memory.SharedMemory(create=True, size=96 << 20)
            s.buf[-1] = 7
            print(s.size >= 96 << 20, s.buf[-1])
            s.close(); s.unlink()
            """, limits: Limits(memoryBytes: 512 << 20, diskBytes: 16 << 20, shmBytes: 128 << 20))
        #expect(r.status == .ok && r.stdout == "True 7\n", "\(r.status) \(r.stderr)")
    }

    @Test("a pooled jail is used only by runs with its /dev/shm size")
    func poolFitsShm() async throws {
        let executor = try PoolTests.executor()
        _ = try PoolTests.startPool(executor, size: 1)
        defer { executor.stopPool() }
        let other = try await executor.run(JailSpec(command: ["/bin/true"], limits: Limits(shmBytes: 1 << 20)))
        #expect(other.status == .ok && other.phases?.warm == nil)
        let same = try await executor.run(JailSpec(command: ["/bin/true"]))
        #expect(same.phases?.warm == true)
    }

    @Test("devpts: a private instance (ptmxmode 0666, mode 0620, the jail's gid, at most 64 ptys), /dev/ptmx into it; no host pty is visible")
    func devptsIsPrivate() async throws {
        // A pty of the host's own, open while the jail looks (opening the host's ptmx makes its
        // pts/N): it must not show up there.
        let host = open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC)
        try #require(host >= 0, "the host cannot open a pty: \(errno)")
        defer { close(host) }
        #expect(((try? FileManager.default.contentsOfDirectory(atPath: "/dev/pts")) ?? []).count >= 2, "the host's pty is not in its /dev/pts")
        let r = try await Fixture.python("""
            import os
            print(sorted(os.listdir("/dev/pts")))
            m, s = os.openpty()
            st = os.stat(os.ttyname(s))
            print(sorted(os.listdir("/dev/pts")), oct(st.st_mode & 0o777), st.st_gid, st.st_uid)
            print(os.path.realpath("/dev/ptmx"), oct(os.stat("/dev/ptmx").st_mode & 0o777))
            for line in open("/proc/self/mountinfo"):
                f = line.split()
                if f[4] == "/dev/pts":
                    print(f[5], f[f.index("-") + 1], f[-1])
            """)
        #expect(r.status == .ok, "\(r.stderr)")
        let lines = r.stdout.split(separator: "\n").map(String.init)
        #expect(lines.count == 4, "\(r.stdout)")
        guard lines.count == 4 else { return }
        #expect(lines[0] == "['ptmx']", "the jail sees ptys it did not open: \(lines[0])")
        #expect(lines[1] == "['0', 'ptmx'] 0o620 1000 1000")
        #expect(lines[2] == "/dev/pts/ptmx 0o666")
        let fields = lines[3].split(separator: " ").map(String.init)
        #expect(fields.count == 3 && fields[0].split(separator: ",").contains("nosuid") && fields[0].split(separator: ",").contains("noexec"))
        #expect(fields.count == 3 && fields[1] == "devpts")
        // (mountinfo shows gid= as the host sees it; the pty's own st_gid above is the jail's.)
        let superOptions = fields.count == 3 ? Set(fields[2].split(separator: ",").map(String.init)) : []
        #expect(superOptions.isSuperset(of: ["mode=620", "ptmxmode=666", "max=64"]), "\(lines[3])")
    }

    @Test("a jail opens at most 64 ptys (its devpts max); the host's pool is not its to exhaust")
    func ptyCap() async throws {
        let r = try await Fixture.python("""
            import os
            fds = []
            for _ in range(80):  # bounded: a few past the cap
                try:
                    fds.append(os.openpty())
                except OSError as e:
                    print(len(fds), e.strerror)
                    break
            """)
        #expect(r.status == .ok && r.stdout == "64 No space left on device\n", "\(r.stdout) \(r.stderr)")
    }

    @Test("two jails' ptys are apart: one holding a pty open is invisible to the other")
    func devptsPerJail() async throws {
        // Jail A opens a pty, says so, and waits for its stdin to close; meanwhile jail B lists
        // /dev/pts. The test waits on A's output (an event), never on a clock.
        var fds: [Int32] = [-1, -1]
        try #require(pipe(&fds) == 0)
        let (readEnd, writeEnd) = (fds[0], fds[1])
        _ = fcntl(readEnd, F_SETFD, FD_CLOEXEC)
        _ = fcntl(writeEnd, F_SETFD, FD_CLOEXEC)
        defer { close(readEnd) }
        let ready = AsyncStream<Void>.makeStream()
        let holder = Task {
            defer { ready.continuation.finish() }  // a run that ends without output ends the wait too
            return try await Fixture.jail().run(
                JailSpec(command: ["python3", "-c", "import os, sys; m, s = os.openpty(); print(os.listdir('/dev/pts'), flush=True); sys.stdin.read()"],
                         stdin: .descriptor(readEnd), limits: Limits(timeoutMs: 60_000)),
                output: { chunk in if chunk.stream == .stdout { ready.continuation.yield() } })
        }
        var iterator = ready.stream.makeAsyncIterator()
        _ = await iterator.next()
        var writeOpen = true
        defer { if writeOpen { close(writeEnd) } }  // A's end of the wait, should B fail
        let other = try await Fixture.sh("ls /dev/pts")
        close(writeEnd)
        writeOpen = false
        let a = try await holder.value
        #expect(a.status == .ok && a.stdout.contains("'0'"), "\(a.status) \(a.stdout) \(a.stderr)")
        #expect(other.stdout == "ptmx\n", "jail B sees jail A's pty: \(other.stdout)")
    }

    @Test("TIOCSTI stays denied on the jail's own pty (and is recorded); the same code works unjailed")
    func tiocstiDenied() async throws {
        let code = #"""
            import errno, fcntl, os, termios
            m, s = os.openpty()
            try:
                fcntl.ioctl(s, termios.TIOCSTI, b"x")
                print("injected")
            except OSError as e:
                print("TIOCSTI", errno.errorcode[e.errno])
            """#
        let r = try await Fixture.python(code)
        #expect(r.stdout == "TIOCSTI EPERM\n", "\(r.stdout) \(r.stderr)")
        #expect(r.violations == [.init(syscall: "ioctl", count: 1, action: "errno", errno: EPERM)])
        // Positive control: unjailed, as root, the same call goes through where the host still
        // allows it (dev.tty.legacy_tiocsti=1), so EPERM above is the profile's doing.
        if (try? String(contentsOfFile: "/proc/sys/dev/tty/legacy_tiocsti", encoding: .utf8))?.hasPrefix("1") ?? true {
            let host = try await HostRun.run(["python3", "main.py"], files: [SeedFile(name: "main.py", contents: Array(code.utf8))],
                                             environment: HostRun.jailEnvironment, timeoutMs: 30_000)
            #expect(host.stdout == "injected\n", "\(host.stdout) \(host.stderr)")
        }
    }
}
