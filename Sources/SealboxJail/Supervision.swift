import CSealboxSpawn
import Glibc
import SealboxBase
import SealboxProfiles

/// Everything the spawn call needs, already validated.
struct SpawnInputs {
    var command: [String]
    var environment: [(String, String)]
    var plan: FilesystemPlan
    var newroot: String
    /// The run's limits: the root tmpfs's size and the rlimits come from them.
    var limits: Limits
    /// A session workspace's size, 0 for none: RLIMIT_FSIZE covers the largest writable mount.
    var workspaceBytes: UInt64 = 0
    var filter: CompiledSeccompFilter
    var cgroup: any TaskCgroup
    var stdinFD: Int32
    var capLastCap: Int32
    var setupTimeoutMs: Int
    var cloner: JailCloner
}

/// A notified syscall and the answer it got.
struct NotifiedCall: Hashable {
    var key: SyscallKey
    var answer: NotificationAnswer
}

struct NotifiedCount {
    var count: Int
    var firstArgs: [UInt64]
}

/// One supervised run: spawn, then a poll loop over the pidfd, both output pipes and the
/// seccomp listener until the program has exited and the pipes are drained.
struct Supervision {
    var limits: Limits
    var spawnError: (message: String, exitCode: Int32)?
    var exit: sbx_exit?
    var timedOut = false
    var stdout = CappedBuffer(cap: 0)
    var stderr = CappedBuffer(cap: 0)
    /// Every notified syscall, by what it was answered with.
    var notified: [NotifiedCall: NotifiedCount] = [:]
    /// Set when the supervisor killed a process on behalf of a kill action of the profile.
    var killedForProfile = false
    /// Keep syscalls the supervisor let run (a recording filter) in the result.
    var recording = false
    var wallNanos: UInt64 = 0
    /// sbx_spawn alone: clone3 to execve (or to the failure report).
    var spawnNanos: UInt64 = 0
    /// The same, by step (sbx_spawn_step order), in ns; zeros when the spawn failed.
    var spawnSteps: [UInt64] = []
    /// Set when `LiveJails.killAll` ended the run (a service shutting down).
    var killedBecause: String?

    /// How the end of what is supervised is seen.
    enum Ending {
        /// A run: the jail's init ends through its pidfd; its status pipe says how the program
        /// ended.
        case jail(pidfd: Int32, statusFD: Int32)
        /// A command in a live jail: init writes its status on `exitFD` when it is reaped;
        /// `kill` signals its process group. Its output may stay open in a background process
        /// it started, so the drain stops once the pipes are idle.
        case command(exitFD: Int32, kill: @Sendable () -> Void)
    }

    /// After a command ended, its pipes are read until they are this long without data.
    static let commandDrainIdleNanos: UInt64 = 20_000_000

    /// How the jail comes to be: cloned now, or a pool's prepared jail given its task.
    enum SpawnMethod {
        case cold
        case activate(PreparedJail)
    }

    /// A run that ended before any jail started, with `message` as its spawn error.
    static func failed(limits: Limits, message: String) -> Supervision {
        var supervision = Supervision(limits: limits)
        supervision.spawnError = (message, 125)
        return supervision
    }

    static func start(request: SpawnInputs, limits: Limits, live: LiveJails = .shared, output: OutputObserver? = nil,
                      method: SpawnMethod = .cold) throws(JailError) -> Supervision {
        var supervision = Supervision(limits: limits)
        supervision.stdout = CappedBuffer(cap: limits.outputBytes, stream: .stdout, observer: output)
        supervision.stderr = CappedBuffer(cap: limits.outputBytes, stream: .stderr, observer: output)
        let outPipe = try Pipe.make()
        let errPipe = try Pipe.make()

        let started = Clock.nanos()
        var result = sbx_spawn_result()
        let rc = withSpawnRequest(request, stdoutFD: outPipe.write, stderrFD: errPipe.write) { req in
            switch method {
            case .cold: return request.cloner.spawn(req, &result)
            case .activate(let jail): return jail.activate(req, setupTimeoutMs: request.setupTimeoutMs, &result)
            }
        }
        supervision.spawnNanos = Clock.nanos() - started
        supervision.spawnSteps = withUnsafeBytes(of: result.step_ns) { Array($0.bindMemory(to: UInt64.self)) }
        close(outPipe.write)
        close(errPipe.write)
        defer {
            close(outPipe.read)
            close(errPipe.read)
        }
        if rc != 0 {
            supervision.wallNanos = Clock.nanos() - started
            supervision.spawnError = describeSpawnFailure(result, request: request)
            return supervision
        }
        defer {
            close(result.pidfd)
            close(result.status_fd)
            if result.notify_fd >= 0 { close(result.notify_fd) }
        }
        let liveToken = live.register(pidfd: result.pidfd)
        supervision.recording = request.filter.policy?.fallback == .proceed
        // A listener only exists when the filter has a policy; EPERM is the safe answer should
        // one ever arrive without.
        supervision.loop(ending: .jail(pidfd: result.pidfd, statusFD: result.status_fd), out: outPipe.read, err: errPipe.read, notifyFD: result.notify_fd,
                         policy: request.filter.policy ?? NotificationPolicy(fallback: .fail(errno: EPERM)), started: started)
        supervision.killedBecause = live.unregister(liveToken)  // before the deferred close of the pidfd
        supervision.wallNanos = Clock.nanos() - started
        return supervision
    }

    mutating func loop(ending: Ending, out: Int32, err: Int32, notifyFD: Int32, policy: NotificationPolicy, started: UInt64) {
        let deadline = started + UInt64(limits.timeoutMs) * 1_000_000
        var outOpen = true, errOpen = true, notifyOpen = notifyFD >= 0
        let endFD: Int32
        let isCommand: Bool
        switch ending {
        case .jail(let pidfd, _):
            endFD = pidfd
            isCommand = false
        case .command(let exitFD, _):
            endFD = exitFD
            isCommand = true
        }
        // Once pid 1 is gone the kernel has killed its whole pid namespace, so the pipes reach
        // EOF right away; the grace only bounds a descriptor leaked outside the jail.
        var drainDeadline: UInt64?
        var chunk = [UInt8](repeating: 0, count: 65536)
        while exit == nil || outOpen || errOpen {
            let now = Clock.nanos()
            if exit == nil && !timedOut && now >= deadline {
                timedOut = true
                Self.kill(ending)
            }
            if let drain = drainDeadline, now >= drain { break }
            var fds: [pollfd] = []
            if exit == nil { fds.append(pollfd(fd: endFD, events: Int16(POLLIN), revents: 0)) }
            if outOpen { fds.append(pollfd(fd: out, events: Int16(POLLIN), revents: 0)) }
            if errOpen { fds.append(pollfd(fd: err, events: Int16(POLLIN), revents: 0)) }
            if notifyOpen && exit == nil { fds.append(pollfd(fd: notifyFD, events: Int16(POLLIN), revents: 0)) }
            var wakeAt = drainDeadline ?? (timedOut ? now + 1_000_000_000 : deadline)
            if isCommand && exit != nil { wakeAt = min(wakeAt, now + Self.commandDrainIdleNanos) }
            let waitMs = Int32(clamping: wakeAt > now ? (wakeAt - now + 999_999) / 1_000_000 : 0)
            let ready = poll(&fds, nfds_t(fds.count), waitMs)
            if ready < 0 {
                if errno == EINTR { continue }
                preconditionFailure("poll on supervisor fds failed: \(ErrnoName.describe(errno))")
            }
            if ready == 0 && isCommand && exit != nil { break }  // idle: a background process holds the pipes
            for entry in fds where entry.revents != 0 {
                switch entry.fd {
                case endFD:
                    if let status = Self.readExit(ending) {
                        exit = status
                        drainDeadline = Clock.nanos() + 2_000_000_000
                    }
                case out:
                    outOpen = stdout.drain(fd: out, chunk: &chunk)
                case err:
                    errOpen = stderr.drain(fd: err, chunk: &chunk)
                case notifyFD:
                    if entry.revents & Int16(POLLIN) != 0 {
                        answerNotification(notifyFD, policy: policy)
                    } else {
                        notifyOpen = false  // POLLHUP: no task uses the filter any more
                    }
                default:
                    break
                }
            }
        }
        if exit == nil {
            // Only reachable if the drain grace ran out before the wait; never leave a child.
            Self.kill(ending)
            if case .command(let exitFD, _) = ending {
                var entry = pollfd(fd: exitFD, events: Int16(POLLIN), revents: 0)
                guard poll(&entry, 1, 2000) > 0 else { return }
            }
            exit = Self.readExit(ending)
        }
    }

    private static func kill(_ ending: Ending) {
        switch ending {
        case .jail(let pidfd, _): _ = sbx_pidfd_kill(pidfd, SIGKILL)
        case .command(_, let kill): kill()
        }
    }

    /// The status once the end fd polled readable. A command's exit pipe closed without a
    /// status means its sandbox's init ended first, which killed it.
    private static func readExit(_ ending: Ending) -> sbx_exit? {
        var status = sbx_exit()
        switch ending {
        case .jail(let pidfd, let statusFD):
            return sbx_wait_pidfd(pidfd, statusFD, &status) == 0 ? status : nil
        case .command(let exitFD, _):
            let rc = sbx_read_command_exit(exitFD, &status)
            if rc == 0 { return status }
            status.exited = 0
            status.code = SIGKILL
            return status
        }
    }

    /// Receives one notification and answers it as the profile's action would have acted.
    private mutating func answerNotification(_ fd: Int32, policy: NotificationPolicy) {
        guard let (key, answer, args) = Self.answerOne(fd, policy: policy) else { return }
        if case .kill = answer { killedForProfile = true }
        let call = NotifiedCall(key: key, answer: answer)
        if notified[call] == nil { notified[call] = NotifiedCount(count: 0, firstArgs: args) }
        notified[call]?.count += 1
    }

    /// Receives one notification on `fd` and answers it as the profile's action would have
    /// acted; nil when there was none to take (the task is gone).
    static func answerOne(_ fd: Int32, policy: NotificationPolicy) -> (SyscallKey, NotificationAnswer, [UInt64])? {
        var note = sbx_notification()
        guard sbx_notify_receive(fd, &note) == 0 else { return nil }  // ENOENT: the task is gone
        let args = withUnsafeBytes(of: note.args) { Array($0.bindMemory(to: UInt64.self)) }
        let key = SyscallKey(arch: note.arch, number: note.nr)
        let answer = policy.answer(for: key, args: args)
        switch answer {
        case .fail(let e):
            _ = sbx_notify_answer(fd, note.id, e, 0)
        case .proceed:
            _ = sbx_notify_answer(fd, note.id, 0, 1)
        case .kill:
            // Whether or not the kill reached it (the task may have died meanwhile), the
            // call never ran: a notified syscall only proceeds when answered.
            _ = sbx_notify_kill(fd, note.id, note.pid)
        }
        return (key, answer, args)
    }

    /// The `violations` of the result: denied and killed calls, by name.
    var violationList: [JailResult.Violation] {
        notified.compactMap { call, counted -> JailResult.Violation? in
            switch call.answer {
            case .fail(let e): return .init(syscall: call.key.name, count: counted.count, action: "errno", errno: e, abi: call.key.abi)
            case .kill: return .init(syscall: call.key.name, count: counted.count, action: "kill", abi: call.key.abi)
            case .proceed: return nil
            }
        }.sorted { ($0.syscall, $0.action ?? "") < ($1.syscall, $1.action ?? "") }
    }

    var recordedList: [JailResult.RecordedSyscall] {
        notified.map { call, counted in
            var answer = "allow", errno: Int32?
            switch call.answer {
            case .fail(let e): answer = "errno"; errno = e
            case .kill: answer = "kill"
            case .proceed: break
            }
            return JailResult.RecordedSyscall(syscall: call.key.name, native: call.key.isNative, count: counted.count,
                                             answer: answer, errno: errno, firstArgs: counted.firstArgs)
        }.sorted { ($0.syscall, $0.answer) < ($1.syscall, $1.answer) }
    }

    /// Picks the status that matches what tripped, most specific first.
    /// `baseline`: for a command in a live jail, the jail's cgroup usage when it started: the
    /// cgroup is the whole sandbox's, so its limit events count from there, and the command's
    /// CPU time and memory come from its own rusage.
    func verdict(id: String, profile: String, cgroup: any TaskCgroup, baseline: CgroupUsage? = nil) -> JailResult {
        var usage: CgroupUsage
        if let baseline {
            let now = cgroup.limitEvents()
            usage = CgroupUsage(oomKills: now.oomKills - baseline.oomKills, pidsLimitHits: now.pidsLimitHits - baseline.pidsLimitHits)
        } else {
            usage = cgroup.usage()
        }
        var result = JailResult(
            id: id, status: .ok, exitCode: 0, signal: nil,
            stdout: String(decoding: stdout.bytes, as: UTF8.self),
            stderr: String(decoding: stderr.bytes, as: UTF8.self),
            stdoutTruncated: stdout.truncated, stderrTruncated: stderr.truncated,
            stdoutBytes: stdout.total, stderrBytes: stderr.total,
            wallMs: Double(wallNanos / 1000) / 1000,
            cpuMs: 0, peakMemoryBytes: 0,
            violations: violationList,
            limits: JailResult.AppliedLimits(limits),
            profile: profile, cgroup: cgroup.version.rawValue, error: killedBecause)
        result.interrupted = killedBecause != nil
        if let failure = spawnError {
            result.status = .spawnFailed
            result.exitCode = failure.exitCode
            result.error = failure.message
            return result
        }
        guard let exit else { return result }
        let rusageCPU = Double(exit.user_usec + exit.sys_usec) / 1000
        result.cpuMs = usage.cpuNanos.map { Double($0 / 1000) / 1000 } ?? rusageCPU
        result.peakMemoryBytes = usage.peakMemoryBytes ?? UInt64(max(exit.maxrss_kb, 0)) * 1024
        if recording { result.recordedSyscalls = recordedList }
        if exit.exited != 0 {
            result.exitCode = exit.code
        } else {
            result.signal = exit.code
            result.exitCode = 128 + exit.code
        }
        // The supervisor's SIGKILL stood in for the kernel's SIGSYS kill (which would have
        // hidden the syscall from it); report what the profile's action means, exit 159 as
        // without tracking, unless something else (a limit, the clock) killed the program.
        let killedByUs = exit.exited == 0 && exit.code == SIGKILL && killedForProfile && !timedOut && killedBecause == nil
        if killedByUs {
            result.signal = SIGSYS
            result.exitCode = 128 + SIGSYS
        }
        // A tripped resource limit is the cause; a timeout is often its consequence (a fork
        // bomb spins until the clock runs out), so the limits come first.
        if usage.oomKills > 0 {
            result.status = .memoryLimit
        } else if usage.pidsLimitHits > 0 {
            result.status = .pidsLimit
        } else if (exit.exited == 0 && exit.code == SIGSYS) || killedByUs {
            result.status = .seccompViolation
        } else if timedOut {
            result.status = .timeout
        } else if stdout.truncated || stderr.truncated {
            result.status = .outputLimit
        } else if exit.exited == 0 {
            result.status = .signaled
        } else if exit.code != 0 {
            result.status = .exitNonzero
        }
        return result
    }

    /// Turns {stage, errno, index} into "bind /usr on /usr: EPERM (Operation not permitted)",
    /// with Docker's exit codes: 127 not found, 126 cannot execute, 125 sealbox failed.
    static func describeSpawnFailure(_ result: sbx_spawn_result, request: SpawnInputs) -> (message: String, exitCode: Int32) {
        let stage = Int32(result.failed_stage)
        let err = Int32(result.failed_errno)
        if stage == Int32(SBX_STAGE_EXECVE.rawValue) {
            let program = request.command[0]
            switch err {
            case ENOENT, ENOTDIR: return ("\(program): command not found in the jail", 127)
            case EACCES, ENOEXEC, EISDIR, EPERM: return ("\(program): cannot execute: \(ErrnoName.describe(err))", 126)
            default: return ("execve \(program): \(ErrnoName.describe(err))", 126)
            }
        }
        var what = String(cString: sbx_stage_name(result.failed_stage))
        let index = result.failed_index
        let fsStages: Set<Int32> = [SBX_STAGE_MKDIR, SBX_STAGE_MKFILE, SBX_STAGE_SYMLINK, SBX_STAGE_BIND,
                                    SBX_STAGE_BIND_SETATTR, SBX_STAGE_MOUNT_TMPFS, SBX_STAGE_MOUNT_PROC,
                                    SBX_STAGE_WRITE_FILE, SBX_STAGE_MOUNT_DEVPTS].reduce(into: []) { $0.insert(Int32($1.rawValue)) }
        if fsStages.contains(stage), index >= 0, index < request.plan.ops.count {
            // The op says what and where: "mount /proc", "bind /usr on /usr".
            what = request.plan.ops[index].summary
            if stage == Int32(SBX_STAGE_BIND_SETATTR.rawValue) { what += " (read-only)" }
        }
        if stage == Int32(SBX_STAGE_SETUP_TIMEOUT.rawValue) {
            let wchan = withUnsafeBytes(of: result.failed_detail) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            return ("jail setup did not finish within the setup timeout" + (wchan.isEmpty ? "" : " (the child was blocked in the kernel at \(wchan))"), 125)
        }
        if stage == Int32(SBX_STAGE_SECCOMP_HANDOFF.rawValue) || stage == Int32(SBX_STAGE_SECCOMP.rawValue) {
            what += " (profile \(request.filter.profileName) must allow sendmsg and execve)"
        }
        return ("\(what): \(ErrnoName.describe(err))", 125)
    }
}

/// Keeps at most `cap` bytes, counts everything; hands each kept piece to `observer` too.
struct CappedBuffer {
    let cap: Int
    let stream: OutputChunk.Stream
    /// Sees the kept bytes only, so an observer never gets more than the captured result.
    let observer: OutputObserver?
    private(set) var bytes: [UInt8] = []
    private(set) var total = 0

    init(cap: Int, stream: OutputChunk.Stream = .stdout, observer: OutputObserver? = nil) {
        self.cap = cap
        self.stream = stream
        self.observer = observer
    }

    var truncated: Bool { total > bytes.count }

    /// Reads what is available; returns false at EOF.
    mutating func drain(fd: Int32, chunk: inout [UInt8]) -> Bool {
        while true {
            let n = Interrupted.retry { chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) } }
            if n > 0 {
                total += n
                let room = cap - bytes.count
                if room > 0 {
                    let kept = chunk[0..<min(n, room)]
                    bytes.append(contentsOf: kept)
                    observer?(OutputChunk(stream: stream, bytes: Array(kept)))
                }
                if n < chunk.count { return true }
                continue
            }
            if n == 0 { return false }
            return errno == EAGAIN
        }
    }
}

enum Pipe {
    /// A pipe whose read end is non-blocking; both ends close-on-exec (the child dup2s). It
    /// belongs to the jail's user (`giveToJail`), so the program can reopen its stdout and
    /// stderr by name.
    static func make() throws(JailError) -> (read: Int32, write: Int32) {
        var fds: [Int32] = [-1, -1]
        guard sbx_pipe_cloexec(&fds) == 0 else { throw JailError.syscall(.setup, "pipe2", errno) }
        let flags = fcntl(fds[0], F_GETFL)
        _ = fcntl(fds[0], F_SETFL, flags | O_NONBLOCK)
        try giveToJail(fds[1])
        return (fds[0], fds[1])
    }

    /// Makes the anonymous pipe behind `fd` the jail user's. `echo hi > /dev/stderr` opens
    /// /proc/self/fd/2 anew, and the kernel checks that open against the pipe's inode: owner
    /// and mode 0600 as its creator made it. A pipe made by sealbox as root is host root's,
    /// which the jail's user is not, so the open failed with EACCES where it works outside a
    /// jail. An anonymous pipe has no name anywhere else, so its owner only decides who may
    /// reopen it through /proc/PID/fd (which already takes ptrace access to the process).
    /// Without root sealbox's pipes are already the jail user's (the same host uid).
    static func giveToJail(_ fd: Int32) throws(JailError) {
        guard geteuid() == 0 else { return }
        let ids = Executor.outsideIDs
        guard fchown(fd, ids.uid, ids.gid) == 0 else { throw JailError.syscall(.setup, "fchown pipe", errno) }
    }

    /// Whether `fd` is an anonymous pipe ("pipe:[ino]"), not a named FIFO in a file system.
    static func isAnonymous(_ fd: Int32) -> Bool {
        var st = stat()
        guard fstat(fd, &st) == 0, (st.st_mode & S_IFMT) == S_IFIFO else { return false }
        guard let target = try? FilesystemPlan.readLink("/proc/self/fd/\(fd)") else { return false }
        return target.hasPrefix("pipe:[")
    }
}

enum Clock {
    static func nanos() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }

    /// Nanoseconds as milliseconds with microsecond precision, for the result.
    static func ms(_ nanos: UInt64) -> Double {
        Double(nanos / 1000) / 1000
    }
}
