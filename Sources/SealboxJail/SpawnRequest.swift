import CSealboxSpawn
import Glibc
import SealboxProfiles

/// Copies `SpawnInputs` into C memory and calls `body` with the request; the memory lives
/// until `body` returns.
func withSpawnRequest(_ inputs: SpawnInputs, stdoutFD: Int32, stderrFD: Int32, deferred: Bool = false, workdir: String = "/work",
                      _ body: (UnsafePointer<sbx_spawn_req>) -> Int32) -> Int32 {
    let arena = CArena()
    let root = inputs.newroot
    let ops: [sbx_fs_op] = inputs.plan.ops.map { op in
        let path = arena.string(root + op.jailPath)
        var c = sbx_fs_op()
        c.path = path
        switch op.kind {
        case .mkdir(let mode):
            c.kind = Int32(SBX_FS_MKDIR.rawValue)
            c.mode = mode
        case .mkfile:
            c.kind = Int32(SBX_FS_MKFILE.rawValue)
            c.mode = 0o644
        case .symlink(let target):
            c.kind = Int32(SBX_FS_SYMLINK.rawValue)
            c.source = arena.string(target)
        case .bind(let source, let attributes, let locked):
            c.kind = Int32(SBX_FS_BIND.rawValue)
            // An empty source binds the path onto itself: /work and /tmp become mounts of
            // their own, which stay writable when the root is remounted read-only.
            c.source = source.isEmpty ? path : arena.string(source)
            c.attr_set = attributes
            c.locked_flags = locked
        case .bindWithin(let source, let attributes):
            c.kind = Int32(SBX_FS_BIND.rawValue)
            c.source = arena.string(root + source)
            c.attr_set = attributes
            // The jail's root tmpfs is mounted nosuid,nodev: the remount fallback must repeat them.
            c.locked_flags = UInt(MS_NOSUID | MS_NODEV)
        case .tmpfs(let options):
            c.kind = Int32(SBX_FS_TMPFS.rawValue)
            c.data = arena.string(options)
            c.data_len = options.utf8.count + 1  // the NUL too: the spawner's wire copies data_len bytes
        case .devpts(let options):
            c.kind = Int32(SBX_FS_DEVPTS.rawValue)
            c.data = arena.string(options)
            c.data_len = options.utf8.count + 1
        case .proc:
            c.kind = Int32(SBX_FS_PROC.rawValue)
        case .writeFile(let contents, let mode):
            c.kind = Int32(SBX_FS_WRITE_FILE.rawValue)
            c.data = arena.bytes(contents)
            c.data_len = contents.count
            c.mode = mode
        case .attachMount(let fd):
            c.kind = Int32(SBX_FS_MOVE_MOUNT.rawValue)
            c.fd = fd
        }
        return c
    }

    let program = inputs.command[0]
    let pathValue = inputs.environment.last(where: { $0.0 == "PATH" })?.1 ?? Executor.jailPath
    let candidates: [String] = program.contains("/")
        ? [program]
        : pathValue.split(separator: ":").filter { $0.hasPrefix("/") }.map { "\($0)/\(program)" }

    let rlimits = RlimitPlan.make(inputs.limits, workspaceBytes: inputs.workspaceBytes)
    let procsFDs = inputs.cgroup.procsFDs
    let ids = Executor.outsideIDs

    var req = sbx_spawn_req()
    req.exec_candidates = arena.array(candidates.map { arena.string($0) })
    req.exec_candidate_count = candidates.count
    req.argv = arena.stringList(inputs.command)
    req.envp = arena.stringList(inputs.environment.map { "\($0.0)=\($0.1)" })
    req.stdin_fd = inputs.stdinFD
    req.stdout_fd = stdoutFD
    req.stderr_fd = stderrFD
    req.inside_uid = Executor.jailUID
    req.inside_gid = Executor.jailGID
    req.outside_uid = ids.uid
    req.outside_gid = ids.gid
    req.unprivileged_parent = geteuid() == 0 ? 0 : 1
    req.cgroup_v2_fd = inputs.cgroup.cloneIntoFD
    req.cgroup_procs_fds = procsFDs.isEmpty ? nil : arena.array(procsFDs)
    req.cgroup_procs_fd_count = procsFDs.count
    req.newroot = arena.string(root)
    // nr_inodes bounds inode memory as size bounds data; mode 0755 for the read-only root.
    req.newroot_tmpfs_data = arena.string("size=\(inputs.limits.diskBytes),nr_inodes=65536,mode=0755")
    req.fs_ops = ops.isEmpty ? nil : arena.array(ops)
    req.fs_op_count = ops.count
    req.workdir = arena.string(workdir)
    req.hostname = arena.string("sealbox")
    req.rlimits = arena.array(rlimits)
    req.rlimit_count = rlimits.count
    req.cap_last_cap = inputs.capLastCap
    let program_bytes = inputs.filter.program
    req.seccomp_program = program_bytes.isEmpty ? nil : UnsafeRawPointer(arena.bytes(program_bytes))
    req.seccomp_instruction_count = inputs.filter.instructionCount
    req.seccomp_notify = inputs.filter.notifiesViolations ? 1 : 0
    req.setup_timeout_ms = Int32(clamping: inputs.setupTimeoutMs)
    req.deferred = deferred ? 1 : 0
    return withUnsafePointer(to: &req) { body($0) }
}

/// Resource limits for the jailed program: the fixed ones, RLIMIT_FSIZE from the writable
/// mounts' sizes, and every rlimit row of `LimitTable`. Never above the current hard limits
/// (raising a hard limit needs CAP_SYS_RESOURCE in the initial namespace, which the jail never
/// has).
enum RlimitPlan {
    static func make(_ limits: Limits, workspaceBytes: UInt64 = 0) -> [sbx_rlimit] {
        let wanted: [(Int32, UInt64)] = [
            (Int32(RLIMIT_CORE.rawValue), 0),
            (Int32(RLIMIT_FSIZE.rawValue), limits.fileSizeLimit(workspaceBytes: workspaceBytes)),
            (Int32(RLIMIT_STACK.rawValue), 8 << 20),
        ] + LimitTable.rlimits(limits).map { ($0.resource, $0.value) }
        return wanted.map { resource, value in
            let limit = min(value, LimitTable.hardLimit(resource))
            return sbx_rlimit(resource: resource, soft: limit, hard: limit)
        }
    }
}
