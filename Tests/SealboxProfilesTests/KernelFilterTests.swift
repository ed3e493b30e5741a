import Glibc
import SealboxProfiles
import Testing

// Real-kernel checks of the compiled BPF, try-syscall style (bubblewrap tests/try-syscall.c): a
// forked child installs the filter and makes the call; the errno it saw (or the signal that killed
// it) tells "allowed" from "filtered" exactly. Where it is harmless, the same call is also made
// without a filter, to prove the verdict comes from the filter and not from the kernel.

private let sharedCompiler = SeccompCompiler()

private func compiled(_ name: String, trackViolations: Bool = false) throws -> CompiledSeccompFilter {
    let loaded = try ProfileLoader.load(name, profilesDirectory: Fixtures.profilesDirectory)
    return try sharedCompiler.compile(loaded, trackViolations: trackViolations)
}

/// What a probe must show.
enum Verdict: Sendable, CustomStringConvertible {
    case succeeds
    case fails(Int32)       // this errno
    case passesFilter       // reached the kernel: anything but EPERM and SIGSYS
    case killed             // SIGSYS (KILL_PROCESS, e.g. the bad-arch action)

    func matches(_ o: ProbeOutcome) -> Bool {
        switch (self, o) {
        case (.succeeds, .exited(0)): return true
        case (.fails(let e), .exited(let c)): return e == c
        case (.passesFilter, .exited(let c)): return c != EPERM
        case (.killed, .signaled(SIGSYS)): return true
        default: return false
        }
    }

    var description: String {
        switch self {
        case .succeeds: return "succeeds"
        case .fails(let e): return "fails with \(String(cString: strerror(e)))"
        case .passesFilter: return "passes the filter"
        case .killed: return "is killed by SIGSYS"
        }
    }
}

struct SyscallCase: Sendable, CustomTestStringConvertible {
    var label: String
    var syscall: Int
    var args: [UInt] = []
    var abi: Probe.ABI = .native
    var filtered: Verdict
    /// Verdict without any filter; nil where running the call unfiltered as root is not harmless.
    var unfiltered: Verdict?

    var testDescription: String { "\(label) \(filtered)" }
}


private let CLONE_NEWNS: UInt = 0x0002_0000
private let CLONE_NEWUTS: UInt = 0x0400_0000
private let CLONE_NEWUSER: UInt = 0x1000_0000
private let CLONE_NEWNET: UInt = 0x4000_0000
private let SIGCHLD_FLAG = UInt(SIGCHLD)
private let TIOCSTI: UInt = 0x5412
private let TIOCLINUX: UInt = 0x541C
private let FIONREAD: UInt = 0x541B
private let TCGETS: UInt = 0x5401
private let badFD = UInt(bitPattern: -1)
private let X32_SYSCALL_BIT = 0x4000_0000
/// <linux/audit.h>: EM_386 | __AUDIT_ARCH_LE.
private let AUDIT_ARCH_I386: UInt32 = 0x4000_0003

let defaultProfileCases: [SyscallCase] = [
    .init(label: "getpid", syscall: nr("getpid"), filtered: .succeeds, unfiltered: .succeeds),
    .init(label: "write(-1)", syscall: nr("write"), args: [badFD], filtered: .fails(EBADF), unfiltered: .fails(EBADF)),
    .init(label: "ptrace(bogus request)", syscall: nr("ptrace"), args: [0x7FFF], filtered: .fails(EPERM), unfiltered: .passesFilter),
    .init(label: "process_vm_readv", syscall: nr("process_vm_readv"), filtered: .fails(EPERM), unfiltered: .passesFilter),
    .init(label: "unshare(CLONE_NEWUTS)", syscall: nr("unshare"), args: [CLONE_NEWUTS], filtered: .fails(EPERM), unfiltered: .succeeds),
    .init(label: "setns(-1)", syscall: nr("setns"), args: [badFD], filtered: .fails(EPERM), unfiltered: .fails(EBADF)),
    .init(label: "mount(NULL...)", syscall: nr("mount"), filtered: .fails(EPERM), unfiltered: .passesFilter),
    .init(label: "umount2(NULL)", syscall: nr("umount2"), filtered: .fails(EPERM), unfiltered: .passesFilter),
    .init(label: "pivot_root(NULL)", syscall: nr("pivot_root"), filtered: .fails(EPERM), unfiltered: .passesFilter),
    .init(label: "fsopen(NULL)", syscall: nr("fsopen"), filtered: .fails(EPERM), unfiltered: .passesFilter),
    .init(label: "fsconfig(-1)", syscall: nr("fsconfig"), args: [badFD], filtered: .fails(EPERM), unfiltered: .passesFilter),
    .init(label: "fsmount(-1)", syscall: nr("fsmount"), args: [badFD], filtered: .fails(EPERM), unfiltered: .passesFilter),
    .init(label: "fspick(-1, NULL)", syscall: nr("fspick"), args: [badFD], filtered: .fails(EPERM), unfiltered: .passesFilter),
    .init(label: "move_mount(-1)", syscall: nr("move_mount"), args: [badFD, 0, badFD], filtered: .fails(EPERM), unfiltered: .passesFilter),
    .init(label: "open_tree(-1, NULL)", syscall: nr("open_tree"), args: [badFD], filtered: .fails(EPERM), unfiltered: .passesFilter),
    .init(label: "mount_setattr(-1)", syscall: nr("mount_setattr"), args: [badFD], filtered: .fails(EPERM), unfiltered: .passesFilter),
    .init(label: "keyctl(bogus)", syscall: nr("keyctl"), args: [0xFFFF], filtered: .fails(EPERM), unfiltered: .passesFilter),
    .init(label: "add_key(NULL)", syscall: nr("add_key"), filtered: .fails(EPERM), unfiltered: .passesFilter),
    .init(label: "request_key(NULL)", syscall: nr("request_key"), filtered: .fails(EPERM), unfiltered: .passesFilter),
    .init(label: "bpf(bogus)", syscall: nr("bpf"), args: [0xFFFF], filtered: .fails(EPERM), unfiltered: .passesFilter),
    .init(label: "perf_event_open(NULL)", syscall: nr("perf_event_open"), args: [0, 0, badFD, badFD, 0], filtered: .fails(EPERM), unfiltered: .passesFilter),
    .init(label: "userfaultfd", syscall: nr("userfaultfd"), filtered: .fails(EPERM)),
    .init(label: "io_uring_setup(0, NULL)", syscall: nr("io_uring_setup"), filtered: .fails(EPERM), unfiltered: .passesFilter),
    .init(label: "io_uring_enter(-1)", syscall: nr("io_uring_enter"), args: [badFD], filtered: .fails(EPERM), unfiltered: .passesFilter),
    .init(label: "io_uring_register(-1)", syscall: nr("io_uring_register"), args: [badFD], filtered: .fails(EPERM), unfiltered: .passesFilter),
    .init(label: "kexec_load", syscall: nr("kexec_load"), filtered: .fails(EPERM)),
    .init(label: "kexec_file_load(-1)", syscall: nr("kexec_file_load"), args: [badFD, badFD], filtered: .fails(EPERM)),
    .init(label: "init_module(NULL)", syscall: nr("init_module"), filtered: .fails(EPERM)),
    .init(label: "finit_module(-1)", syscall: nr("finit_module"), args: [badFD], filtered: .fails(EPERM)),
    .init(label: "delete_module(NULL)", syscall: nr("delete_module"), filtered: .fails(EPERM)),
    .init(label: "reboot(0)", syscall: nr("reboot"), filtered: .fails(EPERM)),
    .init(label: "swapon(NULL)", syscall: nr("swapon"), filtered: .fails(EPERM), unfiltered: .passesFilter),
    .init(label: "swapoff(NULL)", syscall: nr("swapoff"), filtered: .fails(EPERM), unfiltered: .passesFilter),
    .init(label: "clock_settime(NULL)", syscall: nr("clock_settime"), filtered: .fails(EPERM), unfiltered: .passesFilter),
    .init(label: "clock_adjtime(NULL)", syscall: nr("clock_adjtime"), filtered: .fails(EPERM), unfiltered: .passesFilter),
    .init(label: "adjtimex(NULL)", syscall: nr("adjtimex"), filtered: .fails(EPERM), unfiltered: .passesFilter),
    .init(label: "settimeofday(NULL, NULL)", syscall: nr("settimeofday"), filtered: .fails(EPERM)),
    .init(label: "open_by_handle_at(-1)", syscall: nr("open_by_handle_at"), args: [badFD], filtered: .fails(EPERM), unfiltered: .passesFilter),
    .init(label: "name_to_handle_at(-1)", syscall: nr("name_to_handle_at"), args: [badFD], filtered: .fails(EPERM), unfiltered: .passesFilter),
    .init(label: "chroot(NULL)", syscall: nr("chroot"), filtered: .fails(EPERM), unfiltered: .passesFilter),
    .init(label: "modify_ldt(read)", syscall: nr("modify_ldt"), filtered: .fails(EPERM), unfiltered: .passesFilter),
    // clone3 keeps its flags in memory: ENOSYS so that glibc falls back to clone.
    .init(label: "clone3(NULL, 0)", syscall: nr("clone3"), filtered: .fails(ENOSYS), unfiltered: .passesFilter),
    .init(label: "clone(SIGCHLD) (fork)", syscall: nr("clone"), args: [SIGCHLD_FLAG], filtered: .succeeds, unfiltered: .succeeds),
    .init(label: "clone(CLONE_NEWUSER)", syscall: nr("clone"), args: [CLONE_NEWUSER | SIGCHLD_FLAG], filtered: .fails(EPERM)),
    .init(label: "clone(CLONE_NEWNET)", syscall: nr("clone"), args: [CLONE_NEWNET | SIGCHLD_FLAG], filtered: .fails(EPERM)),
    .init(label: "clone(CLONE_NEWNS)", syscall: nr("clone"), args: [CLONE_NEWNS | SIGCHLD_FLAG], filtered: .fails(EPERM)),
    // TIOCSTI / TIOCLINUX: only the low 32 bits count (the kernel truncates cmd), CVE-2019-10063.
    .init(label: "ioctl(TIOCSTI)", syscall: nr("ioctl"), args: [badFD, TIOCSTI], filtered: .fails(EPERM), unfiltered: .fails(EBADF)),
    .init(label: "ioctl(0x1_0000_5412) (TIOCSTI, high bits set)", syscall: nr("ioctl"), args: [badFD, 0x1_0000_0000 | TIOCSTI], filtered: .fails(EPERM), unfiltered: .fails(EBADF)),
    .init(label: "ioctl(0xFFFFFFFF_00005412)", syscall: nr("ioctl"), args: [badFD, 0xFFFF_FFFF_0000_0000 | TIOCSTI], filtered: .fails(EPERM), unfiltered: .fails(EBADF)),
    .init(label: "ioctl(TIOCLINUX)", syscall: nr("ioctl"), args: [badFD, TIOCLINUX], filtered: .fails(EPERM), unfiltered: .fails(EBADF)),
    .init(label: "ioctl(0x80000000_0000541C)", syscall: nr("ioctl"), args: [badFD, 0x8000_0000_0000_0000 | TIOCLINUX], filtered: .fails(EPERM), unfiltered: .fails(EBADF)),
    .init(label: "ioctl(FIONREAD)", syscall: nr("ioctl"), args: [badFD, FIONREAD], filtered: .fails(EBADF), unfiltered: .fails(EBADF)),
    .init(label: "ioctl(TCGETS)", syscall: nr("ioctl"), args: [badFD, TCGETS], filtered: .fails(EBADF), unfiltered: .fails(EBADF)),
    .init(label: "ioctl(sign-extended TCGETS2)", syscall: nr("ioctl"), args: [badFD, 0xFFFF_FFFF_802C_542A], filtered: .fails(EBADF), unfiltered: .fails(EBADF)),
    .init(label: "socket(AF_NETLINK)", syscall: nr("socket"), args: [16, 3, 0], filtered: .fails(EPERM), unfiltered: .succeeds),
    .init(label: "socket(AF_PACKET)", syscall: nr("socket"), args: [17, 3, 0], filtered: .fails(EPERM), unfiltered: .passesFilter),
    .init(label: "socket(AF_VSOCK)", syscall: nr("socket"), args: [40, 1, 0], filtered: .fails(EPERM), unfiltered: .passesFilter),
    .init(label: "socket(AF_UNIX)", syscall: nr("socket"), args: [1, 1, 0], filtered: .succeeds, unfiltered: .succeeds),
    .init(label: "socket(AF_INET)", syscall: nr("socket"), args: [2, 1, 0], filtered: .succeeds, unfiltered: .succeeds),
    .init(label: "socket(AF_INET6)", syscall: nr("socket"), args: [10, 1, 0], filtered: .passesFilter, unfiltered: .passesFilter),
    .init(label: "socket(AF_UNIX with high bits)", syscall: nr("socket"), args: [0x1_0000_0001, 1, 0], filtered: .fails(EPERM), unfiltered: .succeeds),
    .init(label: "personality(query)", syscall: nr("personality"), args: [0xFFFF_FFFF], filtered: .succeeds, unfiltered: .succeeds),
    .init(label: "personality(ADDR_NO_RANDOMIZE)", syscall: nr("personality"), args: [0x0040000], filtered: .fails(EPERM), unfiltered: .succeeds),
    // Other ABIs: not in the profile, so the bad-arch action (KILL_PROCESS) applies. This kernel has
    // no x32 ABI (unfiltered: ENOSYS) but does have IA-32 emulation (unfiltered: succeeds).
    .init(label: "x32 getpid (0x40000000|39)", syscall: X32_SYSCALL_BIT | nr("getpid"), filtered: .killed, unfiltered: .passesFilter),
    .init(label: "x32 ioctl(TIOCSTI)", syscall: X32_SYSCALL_BIT | 514, args: [badFD, TIOCSTI], filtered: .killed, unfiltered: .passesFilter),
    .init(label: "i386 getpid (int 0x80, 20)", syscall: 20, abi: .i386, filtered: .killed),
]

@Suite("Compiled filters in the kernel")
struct KernelFilterTests {
    @Test("default profile", arguments: defaultProfileCases)
    func defaultProfile(_ c: SyscallCase) throws {
        let filter = try compiled("default")
        let result = try Probe.syscall(c.syscall, c.args, filter: filter, abi: c.abi)
        #expect(c.filtered.matches(result.outcome), "\(c.label): expected it \(c.filtered), got \(result.outcome)")
    }

    @Test("the same calls without a filter", arguments: defaultProfileCases.filter { $0.unfiltered != nil })
    func baseline(_ c: SyscallCase) throws {
        let result = try Probe.syscall(c.syscall, c.args, filter: nil, abi: c.abi)
        #expect(c.unfiltered!.matches(result.outcome), "\(c.label) unfiltered: expected it \(c.unfiltered!), got \(result.outcome)")
    }

    @Test func i386EntryPointWorksWithoutAFilter() throws {
        // Makes the i386 row above meaningful: int 0x80 getpid really runs on this kernel.
        let result = try Probe.syscall(20, filter: nil, abi: .i386)
        #expect(result.outcome == .exited(0))
    }

    /// Exactly TIOCSTI and TIOCLINUX are denied, whatever the high 32 bits: a sweep around them plus
    /// every single-bit neighbour (each of the 32 ioctl rules is the only match for one of those).
    @Test func ioctlSweep() throws {
        let filter = try compiled("default")
        var commands = Set<UInt>(0x5400..<0x5440)
        for bit in 0..<32 {
            commands.insert(TIOCSTI ^ (1 << bit))
            commands.insert(TIOCLINUX ^ (1 << bit))
        }
        var mismatches: [String] = []
        for high: UInt in [0, 0x1_0000_0000, 0xFFFF_FFFF_0000_0000] {
            for cmd in commands.sorted() {
                let denied = cmd == TIOCSTI || cmd == TIOCLINUX
                let result = try Probe.syscall(nr("ioctl"), [badFD, high | cmd], filter: filter)
                let expected = ProbeOutcome.exited(denied ? EPERM : EBADF)
                if result.outcome != expected {
                    mismatches.append("ioctl(0x\(String(high | cmd, radix: 16))): \(result.outcome), expected \(expected)")
                }
            }
        }
        #expect(mismatches.isEmpty, "\(mismatches)")
    }

    /// Listing another ABI gives it its own (translated) allowlist instead of the bad-arch kill.
    @Test func listedArchitecturesGetTheirOwnAllowlist() throws {
        let json = """
            {"defaultAction": "SCMP_ACT_ERRNO", "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
             "syscalls": [{"names": ["getpid", "exit", "exit_group"], "action": "SCMP_ACT_ALLOW"}]}
            """
        let filter = try SeccompCompiler().compile(try Fixtures.parse(json), trackViolations: false)
        #expect(try Probe.syscall(20, filter: filter, abi: .i386).outcome == .exited(0))  // i386 getpid
        #expect(try Probe.syscall(24, filter: filter, abi: .i386).outcome == .exited(EPERM))  // i386 getuid: not listed
        // x32 getpid now passes the filter; this kernel has no x32 ABI, so the kernel says ENOSYS.
        #expect(try Probe.syscall(X32_SYSCALL_BIT | nr("getpid"), filter: filter).outcome == .exited(ENOSYS))
        #expect(try Probe.syscall(nr("getpid"), filter: filter).outcome == .exited(0))
        #expect(try Probe.syscall(nr("getuid"), filter: filter).outcome == .exited(EPERM))
    }

    static let notifyCases: [(String, Int, [UInt], ProbeOutcome, [String])] = [
        ("ptrace is answered by the supervisor and recorded", nr("ptrace"), [0x7FFF], .exited(EPERM), ["ptrace"]),
        ("socket(AF_NETLINK) is recorded", nr("socket"), [16, 3, 0], .exited(EPERM), ["socket"]),
        ("ioctl(TIOCSTI, high bits) is recorded", nr("ioctl"), [badFD, 0x1_0000_0000 | TIOCSTI], .exited(EPERM), ["ioctl"]),
        ("getpid is not a violation", nr("getpid"), [], .exited(0), []),
        ("clone3 keeps its explicit ENOSYS rule", nr("clone3"), [], .exited(ENOSYS), []),
    ]

    @Test("trackViolations: denied syscalls reach a supervisor", arguments: notifyCases)
    func notify(_ what: String, _ syscall: Int, _ args: [UInt], _ outcome: ProbeOutcome, _ notified: [String]) throws {
        let filter = try compiled("default", trackViolations: true)
        #expect(filter.notifiesViolations)
        let result = try Probe.syscall(syscall, args, filter: filter)
        #expect(result.outcome == outcome, "\(what)")
        #expect(result.notifiedNames == notified, "\(what)")
    }

    /// With tracking, the bad-arch action notifies (so the supervisor can name the call) and
    /// the policy answers a kill, as the bad-arch KILL_PROCESS would have. (This harness answers
    /// every notification with an errno, so the probe itself survives here; the jail tests see
    /// the kill.) Without tracking the kernel kills by itself: the x32 and i386 rows above.
    @Test("trackViolations: a call through an unlisted ABI reaches the supervisor, named with its ABI, and is answered with a kill")
    func foreignABIIsNotified() throws {
        for name in ["default", "permissive", "strict", "python", "node"] {
            let filter = try compiled(name, trackViolations: true)
            let policy = try #require(filter.policy, "\(name): tracking must install a listener for the bad-arch action")
            let x32 = try Probe.syscall(X32_SYSCALL_BIT | nr("getpid"), filter: filter)
            #expect(x32.notifiedNames == ["getpid (x32)"], "\(name)")
            let i386 = try Probe.syscall(20, filter: filter, abi: .i386)
            #expect(i386.notifiedNames == ["getpid (x86)"], "\(name)")
            #expect(i386.notifiedArches == [AUDIT_ARCH_I386], "\(name): the notification carries the i386 audit arch")
            for probe in [x32, i386] {
                let key = SyscallKey(arch: try #require(probe.notifiedArches.first), number: try #require(probe.notified.first))
                #expect(!key.isNative && policy.isForeign(key) && policy.answer(for: key, args: []) == .kill, "\(name) \(key)")
            }
            // A native call the profile allows is not notified at all.
            #expect(try Probe.syscall(nr("getpid"), filter: filter).notified.isEmpty, "\(name)")
        }
    }

    /// A profile that lists i386 gives it its own allowlist: a denied i386 call is refused
    /// (the default's errno), not killed, and named with its ABI; x32 calls arrive with the
    /// x86_64 audit arch and are named as x32 calls.
    @Test("trackViolations: a refused call of a listed foreign ABI is named and answered with the default's errno")
    func listedForeignABIIsRefusedAndNamed() throws {
        let json = """
            {"defaultAction": "SCMP_ACT_ERRNO", "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
             "syscalls": [{"names": ["getpid", "exit", "exit_group", "write", "read", "close", "sendmsg", "execve"], "action": "SCMP_ACT_ALLOW"}]}
            """
        let filter = try SeccompCompiler().compile(try Fixtures.parse(json), trackViolations: true)
        let policy = try #require(filter.policy)
        #expect(try Probe.syscall(20, filter: filter, abi: .i386).outcome == .exited(0))  // i386 getpid: listed
        let getuid = try Probe.syscall(24, filter: filter, abi: .i386)
        #expect(getuid.outcome == .exited(EPERM) && getuid.notifiedNames == ["getuid (x86)"], "\(getuid)")
        let key = SyscallKey(arch: try #require(getuid.notifiedArches.first), number: 24)
        #expect(!policy.isForeign(key) && policy.answer(for: key, args: []) == .fail(errno: EPERM))
        let x32 = try Probe.syscall(X32_SYSCALL_BIT | nr("getuid"), filter: filter)
        #expect(x32.notifiedNames == ["getuid (x32)"], "\(x32)")
        let x32Key = SyscallKey(arch: try #require(x32.notifiedArches.first), number: try #require(x32.notified.first))
        #expect(x32Key.isX32 && !policy.isForeign(x32Key) && policy.answer(for: x32Key, args: []) == .fail(errno: EPERM))
    }

    static let permissiveCases: [SyscallCase] = [
        .init(label: "getpid", syscall: nr("getpid"), filtered: .succeeds),
        .init(label: "ptrace", syscall: nr("ptrace"), args: [0x7FFF], filtered: .fails(EPERM)),
        .init(label: "unshare", syscall: nr("unshare"), args: [CLONE_NEWUTS], filtered: .fails(EPERM)),
        .init(label: "clone(CLONE_NEWUSER)", syscall: nr("clone"), args: [CLONE_NEWUSER | SIGCHLD_FLAG], filtered: .fails(EPERM)),
        .init(label: "clone(SIGCHLD)", syscall: nr("clone"), args: [SIGCHLD_FLAG], filtered: .succeeds),
        .init(label: "clone3", syscall: nr("clone3"), filtered: .fails(ENOSYS)),
        .init(label: "ioctl(TIOCSTI, high bits)", syscall: nr("ioctl"), args: [badFD, 0x1_0000_0000 | TIOCSTI], filtered: .fails(EPERM)),
        .init(label: "ioctl(FIONREAD)", syscall: nr("ioctl"), args: [badFD, FIONREAD], filtered: .fails(EBADF)),
        .init(label: "socket(AF_NETLINK)", syscall: nr("socket"), args: [16, 3, 0], filtered: .fails(EPERM)),
        // The kernel reads the domain as an int: high bits must not slip past the deny rule.
        .init(label: "socket(AF_NETLINK, high bits)", syscall: nr("socket"), args: [0x1_0000_0010, 3, 0], filtered: .fails(EPERM)),
        .init(label: "socket(AF_UNIX)", syscall: nr("socket"), args: [1, 1, 0], filtered: .succeeds),
        .init(label: "personality(ADDR_NO_RANDOMIZE)", syscall: nr("personality"), args: [0x0040000], filtered: .succeeds),
        .init(label: "x32 getpid", syscall: X32_SYSCALL_BIT | nr("getpid"), filtered: .killed),
    ]

    @Test("permissive profile", arguments: permissiveCases)
    func permissiveProfile(_ c: SyscallCase) throws {
        let filter = try compiled("permissive")
        let result = try Probe.syscall(c.syscall, c.args, filter: filter, abi: c.abi)
        #expect(c.filtered.matches(result.outcome), "\(c.label): expected it \(c.filtered), got \(result.outcome)")
    }
}

/// Real programs under the default profile with violation tracking on: they must work and must not
/// trip the filter at all.
@Suite("Interpreters under the default profile")
struct InterpreterTests {
    static let programs: [[String]] = [
        ["/bin/sh", "-c", "echo hi | cat >/dev/null; x=$(echo y); test \"$x\" = y"],
        ["/bin/bash", "-c", "echo hi | cat >/dev/null; ls / >/dev/null; sleep 0.01 & wait; ulimit -a >/dev/null; read -t 0 x </dev/null; exit 0"],
        ["/bin/ls", "-la", "/", "/proc/self/"],
        ["/usr/bin/sort", "-u", "/etc/passwd"],
        ["/usr/bin/python3", "-c", """
            import asyncio, json, os, socket, ssl, subprocess, sys, tempfile, threading
            assert subprocess.run(["/bin/echo", "x"], capture_output=True).stdout == b"x\\n"
            with tempfile.TemporaryDirectory() as d:
                open(os.path.join(d, "f"), "w").write(json.dumps({"a": 1}))
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM); s.bind(("127.0.0.1", 0)); s.close()
            a, b = socket.socketpair(); a.close(); b.close()
            t = threading.Thread(target=lambda: None); t.start(); t.join()
            asyncio.run(asyncio.sleep(0))
            pid = os.fork()
            if pid == 0:
                os._exit(7)
            assert os.waitpid(pid, 0)[1] == 7 << 8
            pid = os.posix_spawn("/bin/true", ["true"], {})
            assert os.waitpid(pid, 0)[1] == 0
            import multiprocessing
            with multiprocessing.Pool(2) as p:
                assert p.map(abs, [-1, -2]) == [1, 2]
            """],
        ["/usr/bin/node", "-e", """
            const cp = require('child_process');
            if (cp.execSync('echo hi').toString() !== 'hi\\n') process.exit(3);
            require('fs').readdirSync('/');
            require('crypto').randomBytes(8);
            const { Worker } = require('worker_threads');
            new Worker('1', { eval: true }).on('exit', () => {
              const srv = require('net').createServer().listen(0, '127.0.0.1', () => srv.close());
            });
            """],
    ]

    static var available: [[String]] { programs.filter { access($0[0], X_OK) == 0 } }

    @Test func theShellsArePresent() {
        #expect(access("/bin/sh", X_OK) == 0 && access("/bin/bash", X_OK) == 0)
    }

    @Test("runs cleanly", arguments: available)
    func runsCleanly(_ argv: [String]) throws {
        let filter = try compiled("default", trackViolations: true)
        let result = try Probe.exec(argv, filter: filter)
        #expect(result.outcome == .exited(0), "\(argv[0]): \(result.outcome), violations: \(result.notifiedNames)")
        #expect(result.notifiedNames == [], "\(argv[0])")
        let baseline = try Probe.exec(argv, filter: nil)
        #expect(baseline.outcome == .exited(0), "\(argv[0]) without a filter: \(baseline.outcome)")
    }

    @Test func violationsOfARealProgramAreRecorded() throws {
        try #require(access("/usr/bin/python3", X_OK) == 0)
        let filter = try compiled("default", trackViolations: true)
        let script = """
            import ctypes, socket, sys
            libc = ctypes.CDLL(None, use_errno=True)
            if libc.syscall(101, 0, 0, 0, 0) != -1 or ctypes.get_errno() != 1: sys.exit(10)
            try:
                socket.socket(socket.AF_NETLINK, socket.SOCK_RAW)
                sys.exit(11)
            except PermissionError:
                pass
            """
        let result = try Probe.exec(["/usr/bin/python3", "-c", script], filter: filter)
        #expect(result.outcome == .exited(0))
        #expect(result.notifiedNames == ["ptrace", "socket"])
    }
}
