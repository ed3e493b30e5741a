// The child side of sbx_spawn: runs between clone3 and execve.
//
// Only raw syscalls (through their thin libc wrappers) happen here: no malloc, no stdio, no
// signal(), no string formatting. The parent is a multi-threaded Swift process, so any lock
// another thread held at clone time stays held forever in this copy (swift-subprocess #374).
// Wrappers that do more than the syscall are avoided: the id-changing ones (setresuid & co.)
// go through syscall(2) directly, see step 3.
//
// Fixed order, and why:
//  0. unblock signals (the parent blocked all of them around clone3; CLONE_CLEAR_SIGHAND
//     already reset every handler to default), PR_SET_PDEATHSIG so the jail dies with us,
//     umask 0 so the plan's modes are exact (022 again just before execve).
//  1. wait for the parent's "maps + cgroup ready" byte: until the uid/gid maps are written
//     our ids are unmapped and nothing below can work.
//  2. cgroup namespace (v1 only: now that the parent moved us into our cgroup, so the
//     namespace root is the task cgroup, not the parent's), new session.
//  3. identity: setgroups, setresgid, setresuid to the one mapped id, keeping capabilities;
//     then PR_SET_PDEATHSIG again (the uid change cleared it) and a check that the parent
//     did not die meanwhile.
//     This comes before the mounts (nsjail's order has it after) because every file the
//     setup creates in the new tmpfs must have a mapped owner: with an unmapped fsuid the
//     kernel refuses inode creation with EOVERFLOW (fs/namei.c may_o_create).
//  4. mounts: make / private, tmpfs root, the plan (binds read-only, /proc, /dev nodes,
//     the jail's own devpts and /dev/shm tmpfs, /work, /tmp, seed files). A session's /work is the parent's detached workspace
//     tmpfs, attached with move_mount (sbx_workspace.c).
//  5. pivot_root(".", ".") then detach the old root (pivot_root(2) NOTES), root read-only.
//  6. loopback up, hostname, rlimits, stdio.
//  7. capabilities: lock securebits, drop the bounding set, clear ambient, then capset(0).
//     The bounding set needs CAP_SETPCAP, so it goes before the final capset.
//  8. PR_SET_NO_NEW_PRIVS, close every fd >= 3 but the report, sync and status ends (which
//     are close-on-exec), so the program starts with 0, 1, 2 and its seccomp listener can
//     take a number under the jail's RLIMIT_NOFILE.
//  9. start the program (CLONE_VM | CLONE_VFORK, see start_program_in_child). This process
//     stays as the jail's pid 1, a minimal init: it reaps orphans and reports the program's
//     exact wait status on the status pipe. A prepared (pooled) jail first waits here for its
//     task (await_task_in_child). The program
//     is not pid 1, so signals it sends itself (kill -9 $$, abort()) work as anywhere else.
//     init is non-dumpable (no /proc/1/mem, environ) and has wiped its copy of sealbox's argv and
//     environment, so /proc/1 shows nothing of the host.
// 10. in the program: seccomp LAST (bubblewrap, nsjail), since every syscall above would
//     otherwise need allowing. A notify filter's listener is sent to the parent with
//     SCM_RIGHTS on the report socket; the fd in flight keeps the listener alive across exec.
// 11. execve each candidate path; EOF on the report socket tells the parent it worked.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <grp.h>

#include "missing_defs.h"
#include "sbx_internal.h"

void sbx_fail_in_child(int report_fd, int stage, int err, long index) {
    struct sbx_child_msg msg = { .stage = stage, .err = err, .index = index };
    // Nothing useful can be done if this write fails: the parent then sees EOF plus a child
    // that exited 125 without exec, which it reports as "child vanished".
    ssize_t ignored = write(report_fd, &msg, sizeof msg);
    (void)ignored;
    _exit(125);
}

#define fail_in_child sbx_fail_in_child

#define CHECK(expr, stage, index)                                   \
    do {                                                            \
        if ((expr) < 0) fail_in_child(report_fd, (stage), errno, (index)); \
    } while (0)

static int capset_in_child(uint32_t effective_lo, uint32_t effective_hi, uint32_t permitted_lo,
                           uint32_t permitted_hi) {
    struct __user_cap_header_struct header = { .version = _LINUX_CAPABILITY_VERSION_3, .pid = 0 };
    struct __user_cap_data_struct data[2];
    memset(data, 0, sizeof data);  // compiles to stores; no libc state involved
    data[0].effective = effective_lo;
    data[1].effective = effective_hi;
    data[0].permitted = permitted_lo;
    data[1].permitted = permitted_hi;
    return (int)syscall(SYS_capset, &header, data);
}

/// After setresuid with PR_SET_KEEPCAPS the permitted set survives but the effective set is
/// cleared; raise effective back to permitted so the mounts below are allowed.
static int raise_effective_caps_in_child(void) {
    struct __user_cap_header_struct header = { .version = _LINUX_CAPABILITY_VERSION_3, .pid = 0 };
    struct __user_cap_data_struct data[2];
    memset(data, 0, sizeof data);
    if (syscall(SYS_capget, &header, data) < 0) return -1;
    return capset_in_child(data[0].permitted, data[1].permitted, data[0].permitted, data[1].permitted);
}

static int bind_in_child(const struct sbx_fs_op *op, int *stage) {
    *stage = SBX_STAGE_BIND;
    if (mount(op->source, op->path, NULL, MS_BIND | MS_REC, NULL) < 0) return -1;
    if (op->attr_set == 0) return 0;
    *stage = SBX_STAGE_BIND_SETATTR;
    struct sbx_mount_attr attr = { .attr_set = op->attr_set };
    // mount_setattr applies the flags to the whole subtree at once and, unlike MS_REMOUNT,
    // leaves locked atime flags alone (mount_setattr(2)).
    if (syscall(__NR_mount_setattr, AT_FDCWD, op->path, AT_RECURSIVE, &attr, sizeof attr) == 0) return 0;
    if (errno != ENOSYS) return -1;
    // Kernels before 5.12: remount the top mount, repeating the flags the source has locked,
    // or the kernel refuses to change them (EPERM).
    unsigned long flags = MS_REMOUNT | MS_BIND | op->locked_flags;
    if (op->attr_set & MOUNT_ATTR_RDONLY) flags |= MS_RDONLY;
    if (op->attr_set & MOUNT_ATTR_NOSUID) flags |= MS_NOSUID;
    if (op->attr_set & MOUNT_ATTR_NODEV) flags |= MS_NODEV;
    if (op->attr_set & MOUNT_ATTR_NOEXEC) flags |= MS_NOEXEC;
    return mount(NULL, op->path, NULL, flags, NULL);
}

static int write_file_in_child(const struct sbx_fs_op *op) {
    int fd = open(op->path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, op->mode);
    if (fd < 0) return -1;
    int rc = sbx_write_all(fd, op->data ? op->data : "", op->data_len);
    int saved = errno;
    if (close(fd) < 0 && rc == 0) return -1;
    errno = saved;
    return rc;
}

static void run_fs_plan_in_child(const struct sbx_spawn_req *req, int report_fd) {
    for (size_t i = 0; i < req->fs_op_count; i++) {
        const struct sbx_fs_op *op = &req->fs_ops[i];
        long index = (long)i;
        switch (op->kind) {
        case SBX_FS_MKDIR:
            if (mkdir(op->path, op->mode) < 0 && errno != EEXIST)
                fail_in_child(report_fd, SBX_STAGE_MKDIR, errno, index);
            break;
        case SBX_FS_MKFILE: {
            int fd = open(op->path, O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC, op->mode);
            CHECK(fd, SBX_STAGE_MKFILE, index);
            CHECK(close(fd), SBX_STAGE_MKFILE, index);
            break;
        }
        case SBX_FS_SYMLINK:
            CHECK(symlink(op->source, op->path), SBX_STAGE_SYMLINK, index);
            break;
        case SBX_FS_BIND: {
            int stage = SBX_STAGE_BIND;
            if (bind_in_child(op, &stage) < 0) fail_in_child(report_fd, stage, errno, index);
            break;
        }
        case SBX_FS_TMPFS:
            CHECK(mount("tmpfs", op->path, "tmpfs", MS_NOSUID | MS_NODEV, op->data),
                  SBX_STAGE_MOUNT_TMPFS, index);
            break;
        case SBX_FS_DEVPTS:
            // A new devpts instance (always private since Linux 4.7; "newinstance" says so for
            // older kernels): its ptmx and pts/N are the jail's own, never the host's or
            // another jail's ptys. Allowed in a user namespace that owns our mount namespace
            // (devpts is FS_USERNS_MOUNT); gid= must be mapped here, the plan uses the jail's.
            CHECK(mount("devpts", op->path, "devpts", MS_NOSUID | MS_NOEXEC, op->data),
                  SBX_STAGE_MOUNT_DEVPTS, index);
            break;
        case SBX_FS_PROC:
            CHECK(mount("proc", op->path, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL),
                  SBX_STAGE_MOUNT_PROC, index);
            break;
        case SBX_FS_WRITE_FILE:
            CHECK(write_file_in_child(op), SBX_STAGE_WRITE_FILE, index);
            break;
        case SBX_FS_MOVE_MOUNT:
            // Attaches the parent's detached workspace tmpfs (sbx_workspace.c). Allowed: we
            // hold CAP_SYS_ADMIN over our mount namespace, and the source is a mount in an
            // anonymous namespace, which move_mount(2) may attach anywhere.
            CHECK(syscall(__NR_move_mount, op->fd, "", AT_FDCWD, op->path, SBX_MOVE_MOUNT_F_EMPTY_PATH),
                  SBX_STAGE_MOVE_MOUNT, index);
            break;
        default:
            fail_in_child(report_fd, SBX_STAGE_MKDIR, EINVAL, index);
        }
    }
}

/// The new network namespace has only "lo", and it is down; bring it up so programs can
/// talk to themselves on 127.0.0.1 (bubblewrap does the same).
static int loopback_up_in_child(void) {
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    ifr.ifr_name[0] = 'l';
    ifr.ifr_name[1] = 'o';
    ifr.ifr_flags = IFF_UP | IFF_LOOPBACK | IFF_RUNNING;
    int rc = ioctl(fd, SIOCSIFFLAGS, &ifr);
    int saved = errno;
    close(fd);
    errno = saved;
    return rc;
}

static void drop_capabilities_in_child(const struct sbx_spawn_req *req, int report_fd) {
    // Lock the root-related securebits so no later uid change can regain capabilities
    // (capabilities(7), "The securebits flags"). Needs CAP_SETPCAP, still effective here.
    unsigned long bits = SBX_SECBIT_NOROOT | SBX_SECBIT_NOROOT_LOCKED | SBX_SECBIT_NO_SETUID_FIXUP |
                         SBX_SECBIT_NO_SETUID_FIXUP_LOCKED | SBX_SECBIT_KEEP_CAPS_LOCKED |
                         SBX_SECBIT_NO_CAP_AMBIENT_RAISE | SBX_SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED;
    CHECK(prctl(PR_SET_SECUREBITS, bits, 0, 0, 0), SBX_STAGE_SECUREBITS, -1);
    for (int cap = 0; cap <= req->cap_last_cap; cap++) {
        // EINVAL: the running kernel does not know this capability; nothing to drop.
        if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 && errno != EINVAL)
            fail_in_child(report_fd, SBX_STAGE_CAPBSET_DROP, errno, cap);
    }
    CHECK(prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0), SBX_STAGE_CAP_AMBIENT_CLEAR, -1);
    CHECK(capset_in_child(0, 0, 0, 0), SBX_STAGE_CAPSET_DROP, -1);
}

/// Sends `msg` with one descriptor on the report socket. Returns 0, or the errno to report.
static int send_with_fd_in_child(int report_fd, struct sbx_child_msg *msg, int fd) {
    ssize_t n = sbx_send_with_fds(report_fd, msg, sizeof *msg, &fd, 1);
    if (n == (ssize_t)sizeof *msg) return 0;
    return n < 0 ? errno : EIO;
}

static void install_seccomp_in_child(const struct sbx_spawn_req *req, int report_fd) {
    struct sock_fprog prog = {
        .len = (unsigned short)req->seccomp_instruction_count,
        .filter = (struct sock_filter *)req->seccomp_program,
    };
    unsigned int flags = req->seccomp_notify ? SECCOMP_FILTER_FLAG_NEW_LISTENER : 0;
    long listener = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, flags, &prog);
    if (listener < 0) fail_in_child(report_fd, SBX_STAGE_SECCOMP, errno, -1);
    if (!req->seccomp_notify) return;
    // From here on every syscall passes the filter: sendmsg must be allowed by the profile
    // (the Swift side checks this before spawning).
    struct sbx_child_msg msg = { .stage = SBX_STAGE_SECCOMP_HANDOFF, .err = 0, .index = listener };
    int err = send_with_fd_in_child(report_fd, &msg, (int)listener);
    if (err != 0) fail_in_child(report_fd, SBX_STAGE_SECCOMP_HANDOFF, err, -1);
}

/// Closes every descriptor but stdio and the three the child still needs. Closed, not only
/// marked close-on-exec: the program's seccomp listener is created after RLIMIT_NOFILE is
/// set, and takes the lowest free number, so while sealbox's own descriptors (a busy server
/// or test process holds more than the jail's 1024) stayed open until the exec, it could not
/// be created at all (EMFILE).
static void close_inherited_fds_in_child(int report_fd, int sync_fd, int status_fd) {
    unsigned int keep[3] = { (unsigned int)report_fd, (unsigned int)sync_fd, (unsigned int)status_fd };
    // Sort the three (insertion sort: no libc qsort in the child).
    for (int i = 1; i < 3; i++) {
        for (int j = i; j > 0 && keep[j - 1] > keep[j]; j--) {
            unsigned int t = keep[j];
            keep[j] = keep[j - 1];
            keep[j - 1] = t;
        }
    }
    unsigned int next = 3;
    for (int i = 0; i < 3; i++) {
        if (keep[i] < next) continue;  // stdio or a duplicate
        if (keep[i] > next) CHECK(syscall(__NR_close_range, next, keep[i] - 1, 0U), SBX_STAGE_CLOSE_FDS, (long)next);
        next = keep[i] + 1;
    }
    CHECK(syscall(__NR_close_range, next, ~0U, 0U), SBX_STAGE_CLOSE_FDS, (long)next);
}

/// The program's side of the fork: seccomp, then execve. Never returns.
void sbx_exec_program_in_child(const struct sbx_spawn_req *req, const struct sbx_program *program, int report_fd) {
    // Dies with init (which dies with the pid namespace).
    CHECK(prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0), SBX_STAGE_PDEATHSIG, -1);
    if (program->cwd != NULL) CHECK(chdir(program->cwd), SBX_STAGE_CHDIR_WORKDIR, 1);
    if (req->seccomp_program != NULL && req->seccomp_instruction_count > 0)
        install_seccomp_in_child(req, report_fd);

    // A PATH search that needs no string formatting, with the conventional umask.
    umask(022);
    int saw_eacces = 0;
    for (size_t i = 0; i < program->candidate_count; i++) {
        execve(program->candidates[i], (char *const *)program->argv, (char *const *)program->envp);
        if (errno == EACCES) {
            saw_eacces = 1;
        } else if (errno != ENOENT && errno != ENOTDIR) {
            fail_in_child(report_fd, SBX_STAGE_EXECVE, errno, (long)i);
        }
    }
    fail_in_child(report_fd, SBX_STAGE_EXECVE, saw_eacces ? EACCES : ENOENT, -1);
}

struct sbx_program_start {
    const struct sbx_spawn_req *req;
    const struct sbx_program *program;
    int report_fd;
    int status_fd;
    struct sbx_marks *marks;
};

static int program_entry_in_child(void *arg) {
    const struct sbx_program_start *start = arg;
    sbx_mark(start->marks, SBX_MARK_FORKED);
    close(start->status_fd);  // our own descriptor table (no CLONE_FILES): init keeps its end
    sbx_exec_program_in_child(start->req, start->program, start->report_fd);
}

/// The program's stack while it shares init's memory (until its execve).
#define SBX_PROGRAM_STACK_BYTES (256 * 1024)

/// Starts the program the way posix_spawn does: CLONE_VM | CLONE_VFORK on a stack of its own.
/// A plain fork would copy init's address space, which is a copy of all of sealbox's (hundreds
/// of mappings: measured 0.8 ms to copy and about as much again to free at the execve); with
/// CLONE_VM nothing is copied, the execve only drops a reference, and init sleeps until then,
/// so the two never run at once on the shared memory. glibc's clone() is a thin assembly
/// wrapper (no atfork handlers, no locks), unlike fork(). The program gets its own descriptor
/// table, signal handlers (all default since CLONE_CLEAR_SIGHAND) and seccomp filter.
static pid_t start_program_in_child(const struct sbx_spawn_req *req, const struct sbx_program *program, int report_fd, int status_fd,
                                    struct sbx_marks *marks) {
    void *stack = mmap(NULL, SBX_PROGRAM_STACK_BYTES, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
    if (stack == MAP_FAILED) fail_in_child(report_fd, SBX_STAGE_FORK_PROGRAM, errno, -1);
    struct sbx_program_start start = { .req = req, .program = program, .report_fd = report_fd, .status_fd = status_fd, .marks = marks };
    int pid = clone(program_entry_in_child, (char *)stack + SBX_PROGRAM_STACK_BYTES, CLONE_VM | CLONE_VFORK | SIGCHLD, &start);
    if (pid < 0) fail_in_child(report_fd, SBX_STAGE_FORK_PROGRAM, errno, -1);
    // Back here once the program has exec'd or died: the stack is no longer in use.
    munmap(stack, SBX_PROGRAM_STACK_BYTES);
    return (pid_t)pid;
}

/// Nothing of sealbox's own command line or environment may be read through /proc/1 (this
/// process is a copy of sealbox): wipe the copy of those strings. Done first thing, so no
/// program ever runs beside a copy that still shows them, and a pooled jail waiting for its
/// task shows only "sealbox-init". (Step 3 makes the process non-dumpable, so /proc/1/{mem,
/// environ,fd} and ptrace need CAP_SYS_PTRACE, which the jail never has: a same-uid program
/// could otherwise write into init's memory, and init runs without the seccomp filter. Not
/// here: an unprivileged parent must still write our uid_map, which a non-dumpable process's
/// /proc files, owned by root, would refuse.)
static void hide_host_details_in_child(void) {
    struct sbx_scrub_region arg = sbx_scrub_args, env = sbx_scrub_env;
    if (arg.start != NULL && arg.length > 0) {
        memset(arg.start, 0, arg.length);
        static const char title[] = "sealbox-init";
        if (arg.length > sizeof title) memcpy(arg.start, title, sizeof title);
    }
    if (env.start != NULL && env.length > 0) memset(env.start, 0, env.length);
    // And the name ps shows (comm), which would otherwise be the cloning process's.
    prctl(PR_SET_NAME, "sealbox-init", 0, 0, 0);
}

/// pid 1 of the jail: reap everything, report the program's status, exit. When init exits
/// the kernel kills whatever is left in the pid namespace (pid_namespaces(7)).
__attribute__((noreturn))
static void run_init_in_child(pid_t program, int status_fd) {
    // init never execs, so close-on-exec never fires for it: close every descriptor but the
    // status pipe now. Otherwise it would hold, for the jail's whole life, whatever the
    // parent had open at clone time — including the output pipes of other jails being
    // spawned concurrently, whose readers would then wait for this jail to end.
    if (status_fd > 0) syscall(__NR_close_range, 0U, (unsigned int)status_fd - 1, 0U);
    syscall(__NR_close_range, (unsigned int)status_fd + 1, ~0U, 0U);
    for (;;) {
        siginfo_t info;
        memset(&info, 0, sizeof info);
        if (waitid(P_ALL, 0, &info, WEXITED) < 0) {
            if (errno == EINTR) continue;
            _exit(0);  // ECHILD: the program is gone without a status; the parent sees none
        }
        if (info.si_pid != program) continue;
        struct sbx_program_status status = {
            .exited = info.si_code == CLD_EXITED,
            .code = info.si_status,
        };
        ssize_t ignored = write(status_fd, &status, sizeof status);
        (void)ignored;
        _exit(0);
    }
}

static void dup_stdio_in_child(const struct sbx_spawn_req *req, int report_fd) {
    const int sources[3] = { req->stdin_fd, req->stdout_fd, req->stderr_fd };
    for (int target = 0; target < 3; target++) {
        if (sources[target] == target) {
            // dup2 onto itself keeps FD_CLOEXEC; clear it explicitly.
            CHECK(fcntl(target, F_SETFD, 0), SBX_STAGE_STDIO, target);
        } else {
            CHECK(dup2(sources[target], target), SBX_STAGE_STDIO, target);
        }
    }
}

/// Turns the task memfd's offsets into the string arrays execve takes, in place (the mapping
/// is private), checking every offset and terminator. Returns 0 or -1 (EINVAL).
int sbx_decode_task_in_child(char *base, size_t size, struct sbx_program *program) {
    if (size < sizeof(struct sbx_task_header)) return -1;
    const struct sbx_task_header *header = (const struct sbx_task_header *)base;
    if (header->magic != SBX_TASK_MAGIC || header->argc == 0 || header->has_cwd > 1) return -1;
    uint64_t slots = (uint64_t)header->argc + 1 + header->envc + 1 + header->candidate_count + header->has_cwd;
    if (sizeof *header + slots * sizeof(uint64_t) > size) return -1;
    uint64_t *table = (uint64_t *)(base + sizeof *header);
    for (uint64_t i = 0; i < slots; i++) {
        int terminator = i == header->argc || i == (uint64_t)header->argc + 1 + header->envc;
        if (terminator) {
            if (table[i] != 0) return -1;
            continue;
        }
        uint64_t at = table[i];
        if (at < sizeof *header + slots * sizeof(uint64_t) || at >= size) return -1;
        if (memchr(base + at, 0, size - at) == NULL) return -1;
        table[i] = (uint64_t)(uintptr_t)(base + at);  // same width: uint64 -> char*
    }
    char **strings = (char **)table;
    program->argv = (const char *const *)strings;
    program->envp = (const char *const *)(strings + header->argc + 1);
    program->candidates = (const char *const *)(strings + header->argc + 1 + header->envc + 1);
    program->candidate_count = header->candidate_count;
    program->cwd = header->has_cwd ? strings[header->argc + 1 + header->envc + 1 + header->candidate_count] : NULL;
    return 0;
}

/// A prepared jail's wait: report READY with the working directory (so the parent can put
/// the task's files there), then block until ACTIVATE brings the task: a memfd with the
/// program and environment (see sbx_task_header) and the three stdio descriptors. EOF means
/// the jail was discarded; RESIDENT makes it a sandbox's init, which never returns here.
/// Everything here is unprivileged (capabilities are gone already).
static void await_task_in_child(const struct sbx_spawn_req *req, int report_fd, int status_fd, struct sbx_program *program,
                                struct sbx_marks *marks) {
    int work = open(".", O_PATH | O_DIRECTORY | O_CLOEXEC);
    CHECK(work, SBX_STAGE_ACTIVATE, 0);
    struct sbx_child_msg ready = { .stage = SBX_MSG_READY, .err = 0, .index = 0 };
    int err = send_with_fd_in_child(report_fd, &ready, work);
    if (err != 0) fail_in_child(report_fd, SBX_STAGE_ACTIVATE, err, 1);
    close(work);

    struct sbx_child_msg task;
    int fds[4] = { -1, -1, -1, -1 };
    size_t fd_count = 0;
    ssize_t n = sbx_receive_with_fds(report_fd, &task, sizeof task, fds, 4, &fd_count);
    if (n == 0) _exit(0);  // discarded: nobody will ever use this jail
    if (n == (ssize_t)sizeof task && task.stage == SBX_MSG_RESIDENT && fd_count == 0) sbx_resident_main_in_child(req, report_fd, status_fd);
    if (n != (ssize_t)sizeof task || task.stage != SBX_MSG_ACTIVATE) fail_in_child(report_fd, SBX_STAGE_ACTIVATE, n < 0 ? (int)-n : EPROTO, 2);
    if (fd_count != 4) fail_in_child(report_fd, SBX_STAGE_ACTIVATE, EPROTO, 3);

    // stdio first: the received descriptors are all >= 3, since 0-2 are /dev/null now.
    for (int target = 0; target < 3; target++) {
        CHECK(dup2(fds[target + 1], target), SBX_STAGE_STDIO, target);
        CHECK(close(fds[target + 1]), SBX_STAGE_STDIO, target);
    }
    struct stat st;
    CHECK(fstat(fds[0], &st), SBX_STAGE_ACTIVATE, 4);
    if (st.st_size <= 0 || (uint64_t)st.st_size > SBX_TASK_MAX_BYTES) fail_in_child(report_fd, SBX_STAGE_ACTIVATE, E2BIG, 5);
    void *payload = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_PRIVATE, fds[0], 0);
    if (payload == MAP_FAILED) fail_in_child(report_fd, SBX_STAGE_ACTIVATE, errno, 6);
    CHECK(close(fds[0]), SBX_STAGE_ACTIVATE, 7);
    if (sbx_decode_task_in_child(payload, (size_t)st.st_size, program) < 0) fail_in_child(report_fd, SBX_STAGE_ACTIVATE, EINVAL, 8);
    sbx_mark(marks, SBX_MARK_ACTIVATED);
}

void sbx_child_main(const struct sbx_spawn_req *req, int report_fd, int sync_fd, int status_fd, struct sbx_marks *marks) {
    sbx_mark(marks, SBX_MARK_CHILD_START);
    hide_host_details_in_child();
    // 0. signals and parent death
    sigset_t none;
    sigemptyset(&none);
    CHECK(sigprocmask(SIG_SETMASK, &none, NULL), SBX_STAGE_SIGMASK, -1);
    CHECK(prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0), SBX_STAGE_PDEATHSIG, -1);
    // The plan's modes are exact (/tmp is 01777); the caller's umask must not mask them.
    umask(0);

    // 1. wait until the parent wrote the maps and placed us in the cgroup
    char go = 0;
    ssize_t n;
    do {
        n = read(sync_fd, &go, 1);
    } while (n < 0 && errno == EINTR);
    if (n != 1 || go != SBX_SYNC_GO) fail_in_child(report_fd, SBX_STAGE_WAIT_PARENT, n < 0 ? errno : EPIPE, -1);
    sbx_mark(marks, SBX_MARK_RELEASED);

    // 2. cgroup namespace and session
    if (req->cgroup_v2_fd < 0) CHECK(unshare(CLONE_NEWCGROUP), SBX_STAGE_UNSHARE_CGROUP, -1);
    CHECK(setsid(), SBX_STAGE_SETSID, -1);

    // 3. identity, keeping capabilities for the setup below. Raw syscalls, not the libc
    //    wrappers: glibc's setgroups/setresgid/setresuid believe the copied thread list and
    //    run the "setxid" broadcast to every thread, which first takes the stack-cache lock;
    //    if another Swift thread held it at clone time the child waits on it forever (seen
    //    here as setup timeouts blocked in futex_do_wait). The child has one thread, so the
    //    per-thread raw syscalls are exactly right.
    if (!req->unprivileged_parent) CHECK(syscall(SYS_setgroups, 0, NULL), SBX_STAGE_SETGROUPS, -1);
    CHECK(syscall(SYS_setresgid, req->inside_gid, req->inside_gid, req->inside_gid), SBX_STAGE_SETRESGID, -1);
    CHECK(prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0), SBX_STAGE_KEEPCAPS, -1);
    CHECK(syscall(SYS_setresuid, req->inside_uid, req->inside_uid, req->inside_uid), SBX_STAGE_SETRESUID, -1);
    CHECK(raise_effective_caps_in_child(), SBX_STAGE_CAPSET_SETUP, -1);
    // Non-dumpable before any program can run beside this process (see
    // hide_host_details_in_child); after the uid change, which resets the flag.
    CHECK(prctl(PR_SET_DUMPABLE, 0, 0, 0, 0), SBX_STAGE_KEEPCAPS, 1);
    // The uid change cleared the parent-death signal (prctl(2): it is reset when the
    // credentials change), so a sealbox killed from here on would leave the jail running,
    // unsupervised and without its timeout. Arm it again, then make sure sealbox did not
    // die while it was disarmed: its pidfd is readable once it has exited.
    CHECK(prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0), SBX_STAGE_PDEATHSIG, 1);
    if (sbx_parent_pidfd >= 0) {
        struct pollfd parent = { .fd = sbx_parent_pidfd, .events = POLLIN };
        if (poll(&parent, 1, 0) > 0) _exit(125);  // nobody is left to report to
    }
    sbx_mark(marks, SBX_MARK_IDENTITY);

    // 4. mounts; MS_PRIVATE first so nothing below propagates back to the host
    CHECK(mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL), SBX_STAGE_MOUNT_PRIVATE, -1);
    CHECK(mount("sealbox", req->newroot, "tmpfs", MS_NOSUID | MS_NODEV, req->newroot_tmpfs_data),
          SBX_STAGE_MOUNT_ROOT_TMPFS, -1);
    run_fs_plan_in_child(req, report_fd);
    sbx_mark(marks, SBX_MARK_MOUNTS);

    // 5. switch root; pivot_root(".", ".") stacks the old root on top, umount2 detaches it
    CHECK(chdir(req->newroot), SBX_STAGE_CHDIR_NEWROOT, -1);
    CHECK(syscall(__NR_pivot_root, ".", "."), SBX_STAGE_PIVOT_ROOT, -1);
    CHECK(umount2(".", MNT_DETACH), SBX_STAGE_UMOUNT_OLDROOT, -1);
    CHECK(chdir("/"), SBX_STAGE_CHDIR_NEWROOT, -1);
    CHECK(mount(NULL, "/", NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV, NULL),
          SBX_STAGE_REMOUNT_ROOT_RO, -1);
    CHECK(chdir(req->workdir), SBX_STAGE_CHDIR_WORKDIR, -1);
    sbx_mark(marks, SBX_MARK_PIVOT);

    // 6. network, hostname, limits, stdio
    CHECK(loopback_up_in_child(), SBX_STAGE_LOOPBACK_UP, -1);
    CHECK(sethostname(req->hostname, strlen(req->hostname)), SBX_STAGE_SETHOSTNAME, -1);
    for (size_t i = 0; i < req->rlimit_count; i++) {
        struct rlimit lim = { .rlim_cur = req->rlimits[i].soft, .rlim_max = req->rlimits[i].hard };
        CHECK(setrlimit(req->rlimits[i].resource, &lim), SBX_STAGE_RLIMIT, (long)i);
    }
    dup_stdio_in_child(req, report_fd);

    // 7. capabilities
    drop_capabilities_in_child(req, report_fd);

    // 8. no new privileges, no inherited fds
    CHECK(prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), SBX_STAGE_NO_NEW_PRIVS, -1);
    close_inherited_fds_in_child(report_fd, sync_fd, status_fd);
    sbx_mark(marks, SBX_MARK_SETUP);

    struct sbx_program program = {
        .candidates = (const char *const *)req->exec_candidates,
        .candidate_count = req->exec_candidate_count,
        .argv = (const char *const *)req->argv,
        .envp = (const char *const *)req->envp,
        .cwd = NULL,
    };
    // A prepared jail waits here, fully set up, until it is given its task (or discarded).
    if (req->deferred) await_task_in_child(req, report_fd, status_fd, &program, marks);

    // 9. start the program; this process becomes the jail's init.
    pid_t program_pid = start_program_in_child(req, &program, report_fd, status_fd, marks);
    close(report_fd);
    close(sync_fd);
    run_init_in_child(program_pid, status_fd);
}
