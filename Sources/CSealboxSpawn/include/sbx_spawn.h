// sbx_spawn: one call that clones a jailed child, sets it up and execs the program.
//
// Swift prepares everything in `struct sbx_spawn_req` (C strings, fds, the mount plan, the BPF
// program) and makes a single call. Nothing Swift runs in the child: the child side
// (sbx_child.c) makes raw syscalls only. Failures in the child travel back to the parent as
// `struct sbx_child_msg` {stage, errno, index} over a CLOEXEC pipe; EOF on that pipe means the
// execve succeeded (the swift-subprocess / containerization pattern).
#ifndef SBX_SPAWN_H
#define SBX_SPAWN_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#pragma clang assume_nonnull begin

/// Where a spawn failed. Stable numbers: Swift maps them to names with sbx_stage_name().
enum sbx_stage {
    SBX_STAGE_NONE = 0,
    // parent side
    SBX_STAGE_PIPE,
    SBX_STAGE_CLONE3,
    SBX_STAGE_SETGROUPS_DENY,
    SBX_STAGE_UID_MAP,
    SBX_STAGE_GID_MAP,
    SBX_STAGE_CGROUP_PROCS,
    SBX_STAGE_RELEASE_CHILD,
    SBX_STAGE_SETUP_TIMEOUT,
    SBX_STAGE_RECEIVE_LISTENER,
    SBX_STAGE_CHILD_VANISHED,
    // child side, in execution order
    SBX_STAGE_SIGMASK,
    SBX_STAGE_PDEATHSIG,
    SBX_STAGE_WAIT_PARENT,
    SBX_STAGE_UNSHARE_CGROUP,
    SBX_STAGE_SETSID,
    SBX_STAGE_SETGROUPS,
    SBX_STAGE_SETRESGID,
    SBX_STAGE_KEEPCAPS,
    SBX_STAGE_SETRESUID,
    SBX_STAGE_CAPSET_SETUP,
    SBX_STAGE_MOUNT_PRIVATE,
    SBX_STAGE_MOUNT_ROOT_TMPFS,
    SBX_STAGE_MKDIR,
    SBX_STAGE_MKFILE,
    SBX_STAGE_SYMLINK,
    SBX_STAGE_BIND,
    SBX_STAGE_BIND_SETATTR,
    SBX_STAGE_MOUNT_TMPFS,
    SBX_STAGE_MOUNT_PROC,
    SBX_STAGE_WRITE_FILE,
    SBX_STAGE_CHDIR_NEWROOT,
    SBX_STAGE_PIVOT_ROOT,
    SBX_STAGE_UMOUNT_OLDROOT,
    SBX_STAGE_REMOUNT_ROOT_RO,
    SBX_STAGE_CHDIR_WORKDIR,
    SBX_STAGE_LOOPBACK_UP,
    SBX_STAGE_SETHOSTNAME,
    SBX_STAGE_RLIMIT,
    SBX_STAGE_STDIO,
    SBX_STAGE_SECUREBITS,
    SBX_STAGE_CAPBSET_DROP,
    SBX_STAGE_CAP_AMBIENT_CLEAR,
    SBX_STAGE_CAPSET_DROP,
    SBX_STAGE_NO_NEW_PRIVS,
    SBX_STAGE_CLOSE_FDS,
    SBX_STAGE_SECCOMP,
    SBX_STAGE_SECCOMP_HANDOFF,
    SBX_STAGE_EXECVE,
    SBX_STAGE_FORK_PROGRAM,
    // appended after the first release, to keep the numbers above stable
    SBX_STAGE_MOVE_MOUNT,
    SBX_STAGE_ACTIVATE,      // a prepared (pooled) jail taking its task
    SBX_STAGE_MOUNT_DEVPTS,  // the jail's private devpts instance on /dev/pts
    SBX_STAGE_COUNT
};

/// Human name of a stage ("mount /proc" style prefixes), never NULL.
const char *sbx_stage_name(int stage);

/// One step of the filesystem plan, executed in order in the child before pivot_root.
/// All paths are absolute host-side paths under the new root's mount point, computed by Swift
/// so the child never formats strings.
enum sbx_fs_op_kind {
    SBX_FS_MKDIR = 1,     // path, mode
    SBX_FS_MKFILE,        // path, mode: an empty file, used as a bind-mount target
    SBX_FS_SYMLINK,       // source = link text, path = link location
    SBX_FS_BIND,          // source -> path, recursive; attr_set applied recursively (MOUNT_ATTR_*)
    SBX_FS_TMPFS,         // path, data/data_len = mount options, NUL included ("size=..,mode=..");
                          // nosuid, nodev (/dev/shm)
    SBX_FS_PROC,          // path
    SBX_FS_WRITE_FILE,    // path, data/data_len = contents, mode
    SBX_FS_MOVE_MOUNT,    // fd = a detached mount (sbx_workspace_create), attached at path
    SBX_FS_DEVPTS,        // path, data/data_len = mount options, NUL included: a new devpts
                          // instance ("newinstance,ptmxmode=0666,..."); nosuid, noexec
};

struct sbx_fs_op {
    int kind;
    const char *_Nullable source;
    const char *_Nullable path;
    const char *_Nullable data;
    size_t data_len;
    uint32_t mode;
    /// MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | ... for SBX_FS_BIND (mount_setattr(2)).
    uint64_t attr_set;
    /// MS_* flags the source mount has locked (from statvfs in the parent); only used by the
    /// MS_REMOUNT fallback on kernels without mount_setattr (< 5.12).
    unsigned long locked_flags;
    /// SBX_FS_MOVE_MOUNT only: the detached mount to attach.
    int fd;
};

struct sbx_rlimit {
    int resource;
    uint64_t soft;
    uint64_t hard;
};

/// Pointer fields are declared nullable so Swift can zero-initialize the struct; sbx_spawn
/// requires every one without a "may be NULL" note to be set.
struct sbx_spawn_req {
    // What to run. The child tries each candidate path in order (PATH search without
    // formatting strings in the child); argv[0] is passed as given.
    const char *_Nullable const *_Nullable exec_candidates;
    size_t exec_candidate_count;
    const char *_Nullable const *_Nullable argv;       // NULL-terminated
    const char *_Nullable const *_Nullable envp;       // NULL-terminated

    // stdio for the child (dup2'ed onto 0, 1, 2).
    int stdin_fd, stdout_fd, stderr_fd;

    // Identity: the only uid/gid mapped into the jail's user namespace.
    uint32_t inside_uid, inside_gid;
    uint32_t outside_uid, outside_gid;
    /// 1 when the parent is not root: the kernel then requires "deny" in /proc/PID/setgroups
    /// before gid_map, and the child cannot call setgroups().
    int unprivileged_parent;

    // cgroups: v2 uses CLONE_INTO_CGROUP; v1 gets the pid written into each cgroup.procs fd
    // before the child is released.
    int cgroup_v2_fd;                        // -1 when not v2
    const int *_Nullable cgroup_procs_fds;
    size_t cgroup_procs_fd_count;

    // Filesystem.
    const char *_Nullable newroot;                     // empty host directory the root tmpfs is mounted on
    const char *_Nullable newroot_tmpfs_data;          // "size=...,mode=0755"
    const struct sbx_fs_op *_Nullable fs_ops;
    size_t fs_op_count;
    const char *_Nullable workdir;                     // inside the jail, after pivot_root

    const char *_Nullable hostname;
    const struct sbx_rlimit *_Nullable rlimits;
    size_t rlimit_count;
    int cap_last_cap;                        // /proc/sys/kernel/cap_last_cap

    // seccomp: raw struct sock_filter array. notify = 1 installs it with
    // SECCOMP_FILTER_FLAG_NEW_LISTENER and hands the listener to the parent.
    const void *_Nullable seccomp_program;
    size_t seccomp_instruction_count;
    int seccomp_notify;

    /// Upper bound for the child's setup (clone to execve); the child is killed past it.
    int setup_timeout_ms;

    /// 1: sbx_prepare's jail. The child sets up everything (namespaces, cgroup, mounts,
    /// pivot, limits, capabilities, no_new_privs) and then waits for its task instead of
    /// starting the program: exec_candidates, argv, envp and the stdio fds above are then
    /// placeholders (stdio should be /dev/null) and sbx_activate supplies the real ones.
    int deferred;

    /// Set by the spawner process only: clone with CLONE_PARENT, so the jail is a child of
    /// sealbox (which waits for it through its pidfd), not of the spawner.
    int clone_parent;
};

/// Where one spawn's time went, in nanoseconds (CLOCK_MONOTONIC, read on both sides of the
/// clone through a shared page): for `sealbox bench spawn` and the result's phases. A step
/// that was not reached is 0.
enum sbx_spawn_step {
    SBX_STEP_CLONE = 0,   // clone3 called -> the child runs
    SBX_STEP_MAPS,        // uid/gid maps and (v1) cgroup.procs written by the parent -> child released
    SBX_STEP_IDENTITY,    // cgroup namespace, setsid, setresgid/setresuid
    SBX_STEP_MOUNTS,      // private /, root tmpfs, the filesystem plan
    SBX_STEP_PIVOT,       // pivot_root, detach the old root, remount read-only
    SBX_STEP_SETUP,       // loopback, hostname, rlimits, stdio, capabilities, no_new_privs
    SBX_STEP_FORK,        // init forks the program
    SBX_STEP_EXEC,        // seccomp install (+ listener handoff), execve, parent sees it
    SBX_STEP_ACTIVATE,    // prepared jails only: the task sent -> the waiting jail has it
    SBX_STEP_COUNT
};

struct sbx_spawn_result {
    pid_t pid;               // in the parent's pid namespace
    int pidfd;               // CLONE_PIDFD; -1 on failure
    int notify_fd;           // seccomp listener, -1 when none
    int status_fd;           // read end of init's status pipe (for sbx_wait_pidfd)
    int failed_stage;        // enum sbx_stage, SBX_STAGE_NONE on success
    int failed_errno;
    long failed_index;       // fs op / rlimit / exec candidate index for the failing stage, or -1
    /// For SBX_STAGE_SETUP_TIMEOUT: the kernel function the child was blocked in
    /// (/proc/PID/wchan), so a stall can be diagnosed; empty otherwise.
    char failed_detail[64];
    uint64_t step_ns[SBX_STEP_COUNT];
};

/// Clones, sets up and execs the jailed child. Returns 0 when the program was exec'd (result
/// has pid, pidfd, notify_fd), -1 when any stage failed (result has stage, errno, index; the
/// child has been reaped). Thread-safe; blocks the calling thread for the child's setup only.
int sbx_spawn(const struct sbx_spawn_req *req, struct sbx_spawn_result *res);

/// A jail set up by sbx_prepare, waiting for its task. Owned by the caller until passed to
/// sbx_activate or sbx_discard, which both consume it.
struct sbx_prepared {
    pid_t pid;
    int pidfd;
    int control_fd;          // parent end of the report socket: the task goes out here
    int status_fd;
    /// O_PATH descriptor of the jail's working directory (its /work), so the caller can put
    /// the task's files there before activating.
    int work_fd;
    /// The prepare's steps (clone .. setup), for diagnostics.
    uint64_t step_ns[SBX_STEP_COUNT];
    void *_Nullable marks;   // the shared timing page, or NULL
    int marks_fd;            // the memfd behind it (to map it in another process), or -1
};

/// Clones and sets up a jail as sbx_spawn does (req->deferred must be 1), then returns once
/// it waits for its task. Returns 0, or -1 with the failure in `res` (the child reaped).
/// The jail's PR_SET_PDEATHSIG follows the calling *thread*: call this from a thread that
/// outlives the jail.
int sbx_prepare(const struct sbx_spawn_req *req, struct sbx_prepared *jail, struct sbx_spawn_result *res);

/// Gives a prepared jail its task: the program (exec_candidates, argv, envp) and stdio from
/// `task` (nothing else of it is used; the profile, mounts and limits are the jail's), then
/// waits for the execve exactly like sbx_spawn. Consumes `jail`. Returns 0 with pid, pidfd,
/// status_fd, notify_fd in `res`, or -1 with the failure (the jail killed and reaped).
int sbx_activate(struct sbx_prepared *jail, const struct sbx_spawn_req *task, int setup_timeout_ms, struct sbx_spawn_result *res);

/// A close-on-exec memfd holding `data`, sealed against any change (a request's stdin, a
/// task for a prepared jail): it never touches a file system, so nothing is left behind
/// when sealbox is killed. Its offset is at the end; seek to 0 before reading. The fd, or -errno.
int sbx_sealed_memfd(const char *name, const void *_Nullable data, size_t size);

/// Creates the plain file `name` (no "/") in a prepared jail's working directory with the
/// task's contents, owned by uid:gid (the host ids the jail's user maps to). The jail's tmpfs
/// belongs to its user namespace, where host root is unmapped (the kernel refuses such an
/// owner with EOVERFLOW), so a short-lived CLONE_VM | CLONE_VFORK child of the calling thread
/// writes it with fsuid/fsgid set to uid/gid: the descriptor open for writing never exists in
/// sealbox itself, where another thread's fork would copy it and the jail's execve of the file
/// would fail with ETXTBSY. Returns 0 or -errno, *stage naming the failed call.
int sbx_write_task_file(int work_fd, const char *name, const void *_Nullable data, size_t length, uint32_t mode, uint32_t uid,
                        uint32_t gid, const char *_Nullable *_Nonnull stage);

/// Kills, reaps and closes a prepared jail that will not be used. Consumes `jail`.
void sbx_discard(struct sbx_prepared *jail);

/// The spawner: a small helper process (sealbox-spawner) that clones jails on sealbox's
/// behalf. Cloning copies the caller's address space, and sealbox's is large (hundreds of
/// mappings of the Swift runtime and libraries), which made clone3, the jail's exit and its
/// init's exit measurably slower; the spawner's is small (48 mappings, 5 MB). Jails are
/// cloned with CLONE_PARENT, so they are sealbox's children as before: sealbox waits for
/// them, and their parent-death signal follows sealbox (the thread that started the spawner,
/// which never exits). Requests travel packed in a memfd with their descriptors (sbx_wire.c).

/// Starts the spawner at `path` (once per process). 0, or -errno (the spawner could not run).
int sbx_spawner_start(const char *path);
/// 1 while the spawner started by sbx_spawner_start is alive.
int sbx_spawner_alive(void);
/// A new connection to the spawner: one request at a time on it, served by a thread of the
/// spawner's own, so connections run in parallel. Returns the fd or -errno.
int sbx_spawner_connect(void);
/// sbx_spawn through the spawner connection `conn`; same contract. A failure to reach the
/// spawner is reported as stage SBX_STAGE_PIPE.
int sbx_remote_spawn(int conn, const struct sbx_spawn_req *req, struct sbx_spawn_result *res);
/// sbx_prepare through the spawner; the jail is then activated or discarded here as usual.
int sbx_remote_prepare(int conn, const struct sbx_spawn_req *req, struct sbx_prepared *jail, struct sbx_spawn_result *res);
/// The spawner's main loop on its control socket; returns when sealbox closes it.
int sbx_spawner_serve(int control_fd, pid_t sealbox);

/// Exit status of a finished child, collected through its pidfd.
struct sbx_exit {
    int exited;              // 1 exited normally, 0 killed by a signal
    int code;                // exit code or signal number
    int64_t user_usec;       // rusage of the reaped child and its reaped descendants
    int64_t sys_usec;
    int64_t maxrss_kb;
};

/// Live sandboxes (sbx_resident.c): a prepared jail that stays, and whose init starts
/// commands in it on request, each like a run's program (own process group, the jail's
/// seccomp filter, execve).
///
/// Makes the prepared jail behind `control_fd` (sbx_prepared.control_fd, instead of
/// sbx_activate) resident. 0, or -errno (-ETIMEDOUT, -EPIPE: it died; -EPROTO).
int sbx_resident_start(int control_fd, int timeout_ms);
/// What sbx_resident_exec started, or why nothing runs.
struct sbx_command_start {
    int32_t pid;             // the command's pid inside the jail (its process group)
    int notify_fd;           // its seccomp listener, -1 when the filter does not notify
    int failed_stage;        // enum sbx_stage when the command could not start
    int failed_errno;
    long failed_index;
};
/// Starts a command in a resident jail: `task`'s exec_candidates, argv, envp, workdir (the
/// directory inside the jail to start in, or NULL) and stdio fds; `exit_fd` is the write end
/// of a pipe on which init writes the command's `struct sbx_exit` when it is reaped (then
/// closes it). One call at a time per control socket. Returns 0 (started), -1 when the
/// command could not start (`out` says where; the sandbox is fine), or -errno when the
/// control socket failed (the sandbox is unusable).
int sbx_resident_exec(int control_fd, int64_t id, const struct sbx_spawn_req *task, int exit_fd, int timeout_ms,
                      struct sbx_command_start *out);
/// Sends `sig` to the process group of command `id` (nothing when it already ended). 0 or -errno.
int sbx_resident_signal(int control_fd, int64_t id, int sig);
/// Reads a command's status from its exit pipe. 0, -EPIPE when it closed without one (the
/// sandbox's init ended first), or -errno.
int sbx_read_command_exit(int exit_fd, struct sbx_exit *out);

/// Files of a live jail's /work from outside (sbx_files.c). Paths are relative to `dir_fd`
/// and resolved beneath it by the kernel (no "..", absolute path, symlink or mount crossing).
/// Each returns a descriptor or 0 on success, -errno on failure.
int sbx_open_beneath(int dir_fd, const char *path, int flags, uint32_t mode);
/// As sbx_open_beneath with O_CREAT, the file created with uid:gid as the thread's
/// filesystem ids (the jail user's host ids).
int sbx_create_beneath(int dir_fd, const char *path, int flags, uint32_t mode, uint32_t uid, uint32_t gid);
/// mkdirat(parent_fd, name) as uid:gid; `name` is one component.
int sbx_mkdir_in(int parent_fd, const char *name, uint32_t mode, uint32_t uid, uint32_t gid);
/// renameat within one directory as uid:gid; names are single components.
int sbx_rename_in(int parent_fd, const char *from, const char *to, uint32_t uid, uint32_t gid);
/// unlinkat(parent_fd, name) as uid:gid, AT_REMOVEDIR when `directory`.
int sbx_unlink_in(int parent_fd, const char *name, int directory, uint32_t uid, uint32_t gid);

/// Waits for the jail's init (waitid(P_PIDFD, WEXITED) with rusage, EINTR retried) and
/// reports the program's own status from init's status pipe; when init was killed before
/// the program ended (timeout, OOM), init's own status. Returns 0 or -errno.
int sbx_wait_pidfd(int pidfd, int status_fd, struct sbx_exit *out);
/// pidfd_open(2), close-on-exec: a pollable fd that becomes readable when `pid` exits.
/// Returns the fd or -errno (ESRCH when already gone).
int sbx_pidfd_open(pid_t pid);
/// pidfd_send_signal(2). Returns 0 or -errno (ESRCH when already gone).
int sbx_pidfd_kill(int pidfd, int sig);

/// One seccomp user notification (seccomp_unotify(2)), as the supervisor needs it.
struct sbx_notification {
    uint64_t id;        // cookie for the answer
    uint32_t pid;       // thread id in the supervisor's pid namespace (0 if not visible)
    int32_t nr;         // syscall number on `arch`
    uint32_t arch;      // AUDIT_ARCH_* of the call
    uint64_t args[6];
};

/// Receives one pending notification. Returns 0, or -errno (ENOENT when the task died between
/// the poll and the receive: nothing to answer).
int sbx_notify_receive(int notify_fd, struct sbx_notification *out);
/// Answers a notification: `proceed` = 1 lets the syscall run as if unfiltered
/// (SECCOMP_USER_NOTIF_FLAG_CONTINUE, used only while learning a profile, never to enforce);
/// otherwise the syscall fails with -answer_errno without running. Returns 0 or -errno
/// (ENOENT: the task died meanwhile).
int sbx_notify_answer(int notify_fd, uint64_t id, int answer_errno, int proceed);
/// A kill action on behalf of the profile: SIGKILLs the process of thread `pid` while its
/// syscall is still held (so it never runs). The notification id is checked after opening
/// the pidfd, so a recycled tid cannot be hit. Returns 0 or -errno (ENOENT/ESRCH: already gone).
int sbx_notify_kill(int notify_fd, uint64_t id, uint32_t pid);

/// MS_* flags of the mount holding `path` that a user namespace cannot clear (statvfs).
unsigned long sbx_locked_mount_flags(const char *path);

/// A detached, size-capped tmpfs for a session workspace, made in the caller's (host) mount
/// and user namespace with the new mount API (fsopen, fsconfig, fsmount) and never attached
/// on the host. The returned fd is a directory fd on its root: the caller fills it, a spawn
/// attaches it inside the jail with SBX_FS_MOVE_MOUNT, and after the jail is gone the fd
/// still reaches the files (an open mount outlives its namespace, as after a lazy unmount).
/// The root directory is owned by uid:gid, mode 0755; nosuid, nodev.
/// Returns the fd (O_CLOEXEC), or -errno with *stage naming the failed call.
int sbx_workspace_create(uint64_t size_bytes, uint64_t max_inodes, uint32_t uid, uint32_t gid,
                         const char *_Nullable *_Nonnull stage);

/// pipe2(fds, O_CLOEXEC); Glibc's module map hides pipe2 from Swift without _GNU_SOURCE.
int sbx_pipe_cloexec(int fds[_Nonnull 2]);

#pragma clang assume_nonnull end

#endif
