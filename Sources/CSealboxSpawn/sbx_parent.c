// The parent side of sbx_spawn: clone3, uid/gid maps, cgroup placement, release, and the
// report socket. Runs on an ordinary thread of the Swift process, so libc is fine here.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "missing_defs.h"
#include "sbx_internal.h"

struct sbx_scrub_region sbx_scrub_args, sbx_scrub_env;
static pthread_once_t scrub_once = PTHREAD_ONCE_INIT;

int sbx_parent_pidfd = -1;
static pthread_once_t parent_pidfd_once = PTHREAD_ONCE_INIT;

/// A pidfd on sealbox itself, inherited by every child: it becomes readable when sealbox
/// exits, which lets a child detect a parent that died while its death signal was disarmed.
/// On failure (kernel < 5.3) the check is skipped and only PR_SET_PDEATHSIG remains.
static void open_parent_pidfd(void) {
    if (sbx_parent_pidfd >= 0) return;  // the spawner set it to sealbox's (sbx_spawner_serve)
    int fd = (int)syscall(__NR_pidfd_open, getpid(), 0);
    if (fd >= 0 && fcntl(fd, F_SETFD, FD_CLOEXEC) == 0) sbx_parent_pidfd = fd;
    else if (fd >= 0) close(fd);
}

/// Reads arg_start, arg_end, env_start, env_end: fields 48-51 of /proc/self/stat (proc(5)).
static void find_scrub_regions_from_parent(void) {
    char buf[4096];
    int fd = open("/proc/self/stat", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) return;
    buf[n] = 0;
    char *p = strrchr(buf, ')');  // comm may contain spaces and parentheses
    if (p == NULL) return;
    p++;
    unsigned long long fields[52] = { 0 };
    int field = 2;  // the ')' ends field 2; field 3 (state) is a letter, the rest numbers
    while (*p && field < 51) {
        while (*p == ' ') p++;
        if (*p == 0) break;
        field++;
        char *end = p;
        fields[field] = strtoull(p, &end, 10);
        while (*end && *end != ' ') end++;
        p = end;
    }
    if (field < 51) return;
    if (fields[49] > fields[48]) {
        sbx_scrub_args.start = (char *)(uintptr_t)fields[48];
        sbx_scrub_args.length = (size_t)(fields[49] - fields[48]);
    }
    if (fields[51] > fields[50]) {
        sbx_scrub_env.start = (char *)(uintptr_t)fields[50];
        sbx_scrub_env.length = (size_t)(fields[51] - fields[50]);
    }
}

static int write_proc_file_from_parent(pid_t pid, const char *name, const char *text) {
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/%s", (int)pid, name);
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0) return -errno;
    size_t len = strlen(text);
    ssize_t n = write(fd, text, len);
    int err = n < 0 ? errno : (n == (ssize_t)len ? 0 : EIO);
    close(fd);
    return -err;
}

static int write_maps_from_parent(const struct sbx_spawn_req *req, pid_t pid, int *stage) {
    char line[64];
    int rc;
    if (req->unprivileged_parent) {
        // user_namespaces(7): an unprivileged process must deny setgroups before gid_map.
        *stage = SBX_STAGE_SETGROUPS_DENY;
        if ((rc = write_proc_file_from_parent(pid, "setgroups", "deny")) < 0) return rc;
    }
    *stage = SBX_STAGE_UID_MAP;
    snprintf(line, sizeof line, "%u %u 1\n", req->inside_uid, req->outside_uid);
    if ((rc = write_proc_file_from_parent(pid, "uid_map", line)) < 0) return rc;
    *stage = SBX_STAGE_GID_MAP;
    snprintf(line, sizeof line, "%u %u 1\n", req->inside_gid, req->outside_gid);
    return write_proc_file_from_parent(pid, "gid_map", line);
}

static int place_in_v1_cgroups_from_parent(const struct sbx_spawn_req *req, pid_t pid, long *index) {
    char text[32];
    int len = snprintf(text, sizeof text, "%d", (int)pid);
    for (size_t i = 0; i < req->cgroup_procs_fd_count; i++) {
        *index = (long)i;
        ssize_t n = pwrite(req->cgroup_procs_fds[i], text, (size_t)len, 0);
        if (n < 0) return -errno;
        if (n != len) return -EIO;
    }
    return 0;
}

static int64_t monotonic_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/// Reads one child message (and the fd it may carry); 1 = message, 0 = EOF (every child end
/// closed: the program was exec'd), <0 = -errno or -ETIMEDOUT.
static int read_child_msg_from_parent(int fd, struct sbx_child_msg *msg, int *passed_fd, int64_t deadline_ms) {
    *passed_fd = -1;
    for (;;) {
        int64_t left = deadline_ms - monotonic_ms();
        if (left <= 0) return -ETIMEDOUT;
        struct pollfd pfd = { .fd = fd, .events = POLLIN };
        int pr = poll(&pfd, 1, (int)(left > 60000 ? 60000 : left));
        if (pr < 0) {
            if (errno == EINTR) continue;
            return -errno;
        }
        if (pr == 0) continue;
        size_t fd_count = 0;
        ssize_t n = sbx_receive_with_fds(fd, msg, sizeof *msg, passed_fd, 1, &fd_count);
        if (n < 0) return (int)n;
        if (n == 0) return 0;
        if (fd_count == 0) *passed_fd = -1;
        if (n != (ssize_t)sizeof *msg) {
            if (*passed_fd >= 0) close(*passed_fd);
            *passed_fd = -1;
            return -EIO;
        }
        return 1;
    }
}

static void kill_and_reap_from_parent(pid_t pid, int pidfd) {
    if (pidfd >= 0) {
        syscall(__NR_pidfd_send_signal, pidfd, SIGKILL, NULL, 0);
    } else {
        kill(pid, SIGKILL);
    }
    int status;
    while (waitpid(pid, &status, __WALL) < 0 && errno == EINTR) {}
}

static void set_failure(struct sbx_spawn_result *res, int stage, int err, long index) {
    res->failed_stage = stage;
    res->failed_errno = err;
    res->failed_index = index;
}

/// Where a child that missed the setup deadline is stuck, from /proc/PID/wchan.
static void record_wchan_from_parent(pid_t pid, struct sbx_spawn_result *res) {
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/wchan", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return;
    ssize_t n = read(fd, res->failed_detail, sizeof res->failed_detail - 1);
    close(fd);
    res->failed_detail[n > 0 ? n : 0] = 0;
}

static void close_pair(int fds[2]) {
    if (fds[0] >= 0) close(fds[0]);
    if (fds[1] >= 0) close(fds[1]);
}

/// Turns the shared page's timestamps into the result's step durations.
static void record_steps_from_parent(const struct sbx_marks *marks, struct sbx_spawn_result *res) {
    static const enum sbx_mark from[SBX_STEP_COUNT] = {
        SBX_MARK_CLONE_CALL, SBX_MARK_CHILD_START, SBX_MARK_RELEASED, SBX_MARK_IDENTITY,
        SBX_MARK_MOUNTS, SBX_MARK_PIVOT, SBX_MARK_SETUP, SBX_MARK_FORKED, SBX_MARK_ACTIVATE_SENT,
    };
    static const enum sbx_mark to[SBX_STEP_COUNT] = {
        SBX_MARK_CHILD_START, SBX_MARK_RELEASED, SBX_MARK_IDENTITY, SBX_MARK_MOUNTS,
        SBX_MARK_PIVOT, SBX_MARK_SETUP, SBX_MARK_FORKED, SBX_MARK_EXEC_SEEN, SBX_MARK_ACTIVATED,
    };
    for (int i = 0; i < SBX_STEP_COUNT; i++) {
        uint64_t a = marks->ns[from[i]], b = marks->ns[to[i]];
        res->step_ns[i] = (a != 0 && b >= a) ? b - a : 0;
    }
}

/// One child between clone3 and execve, as the parent holds it.
struct spawn_ctx {
    pid_t pid;
    int pidfd;
    int report;   // parent end of the report socket
    int sync;     // write end of the release pipe
    int status;   // read end of init's status pipe
    struct sbx_marks *marks;
    int marks_fd; // memfd behind `marks` (prepared jails), or -1
    /// CLONE_PARENT: the child is not ours to reap; a failure hands its pidfd to the caller.
    int keep_pidfd;
};

static void reset_result(struct sbx_spawn_result *res) {
    memset(res->step_ns, 0, sizeof res->step_ns);
    res->pid = -1;
    res->pidfd = -1;
    res->notify_fd = -1;
    res->status_fd = -1;
    res->failed_detail[0] = 0;
    set_failure(res, SBX_STAGE_NONE, 0, -1);
}

/// Kills and reaps the child and closes everything of it (after a failure).
static void abandon_from_parent(struct spawn_ctx *ctx, struct sbx_spawn_result *res) {
    if (ctx->marks != NULL) munmap(ctx->marks, sizeof(struct sbx_marks));
    ctx->marks = NULL;
    if (ctx->marks_fd >= 0) close(ctx->marks_fd);
    ctx->marks_fd = -1;
    kill_and_reap_from_parent(ctx->pid, ctx->pidfd);
    if (res->notify_fd >= 0) close(res->notify_fd);
    res->notify_fd = -1;
    if (ctx->keep_pidfd && ctx->pidfd >= 0) {
        res->pidfd = ctx->pidfd;  // killed; its parent (sealbox) reaps it through this
    } else if (ctx->pidfd >= 0) {
        close(ctx->pidfd);
    }
    if (ctx->report >= 0) close(ctx->report);
    if (ctx->sync >= 0) close(ctx->sync);
    if (ctx->status >= 0) close(ctx->status);
    ctx->pidfd = ctx->report = ctx->sync = ctx->status = -1;
}

/// clone3, then the maps and (v1) cgroup placement, then the release byte. Returns 0 with
/// `ctx` filled, or -1 with the failure in `res` and nothing left behind.
static int clone_and_release_from_parent(const struct sbx_spawn_req *req, struct spawn_ctx *ctx, struct sbx_spawn_result *res) {
    pthread_once(&scrub_once, find_scrub_regions_from_parent);
    pthread_once(&parent_pidfd_once, open_parent_pidfd);
    ctx->pid = -1;
    ctx->pidfd = ctx->report = ctx->sync = ctx->status = ctx->marks_fd = -1;
    ctx->marks = NULL;
    ctx->keep_pidfd = req->clone_parent;

    // report: child -> parent failures and the seccomp listener (SEQPACKET keeps messages
    // whole and carries SCM_RIGHTS), and a prepared jail's task the other way; sync:
    // parent -> child release; status: init -> parent.
    int report[2] = { -1, -1 }, sync[2] = { -1, -1 }, status[2] = { -1, -1 };
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, report) < 0 || pipe2(sync, O_CLOEXEC) < 0 ||
        pipe2(status, O_CLOEXEC | O_NONBLOCK) < 0) {
        set_failure(res, SBX_STAGE_PIPE, errno, -1);
        close_pair(report);
        close_pair(sync);
        close_pair(status);
        return -1;
    }
    // init writes at most one small status record: blocking is fine on its end.
    fcntl(status[1], F_SETFL, 0);

    // Stage timestamps (see sbx_mark). Timing is a diagnostic: without the page the spawn
    // goes on untimed rather than failing.
    // A prepared jail's page is a memfd, so that whoever activates it can map it too.
    int marks_fd = req->deferred ? memfd_create("sealbox-marks", MFD_CLOEXEC) : -1;
    if (marks_fd >= 0 && ftruncate(marks_fd, sizeof(struct sbx_marks)) < 0) {
        close(marks_fd);
        marks_fd = -1;
    }
    struct sbx_marks *marks = mmap(NULL, sizeof(struct sbx_marks), PROT_READ | PROT_WRITE,
                                   marks_fd >= 0 ? MAP_SHARED : MAP_SHARED | MAP_ANONYMOUS, marks_fd, 0);
    if (marks == MAP_FAILED) marks = NULL;
    if (marks == NULL && marks_fd >= 0) {
        close(marks_fd);
        marks_fd = -1;
    }

    uint64_t flags = CLONE_PIDFD | CLONE_CLEAR_SIGHAND | CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNS |
                     CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS;
    // v2: born in its cgroup, so the cgroup namespace can be created right away. v1: the
    // child unshares it itself once the parent has moved it.
    if (req->cgroup_v2_fd >= 0) flags |= CLONE_INTO_CGROUP | CLONE_NEWCGROUP;
    if (req->clone_parent) flags |= CLONE_PARENT;
    int pidfd = -1;
    struct sbx_clone_args args;
    memset(&args, 0, sizeof args);
    args.flags = flags;
    args.pidfd = (uint64_t)(uintptr_t)&pidfd;
    // With CLONE_PARENT clone3 takes no exit signal: the child inherits ours (SIGCHLD, as
    // posix_spawn started the spawner), which goes to sealbox.
    args.exit_signal = req->clone_parent ? 0 : SIGCHLD;
    args.cgroup = req->cgroup_v2_fd >= 0 ? (uint64_t)req->cgroup_v2_fd : 0;

    // Block every signal across clone3 so the child cannot run a handler inherited from
    // Swift before CLONE_CLEAR_SIGHAND's defaults apply and it unblocks them itself.
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    sbx_mark(marks, SBX_MARK_CLONE_CALL);
    long pid = syscall(__NR_clone3, &args, sizeof args);
    if (pid == 0) {
        close(report[0]);
        close(sync[1]);
        close(status[0]);
        sbx_child_main(req, report[1], sync[0], status[1], marks);
    }
    int clone_errno = errno;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    close(report[1]);
    close(sync[0]);
    close(status[1]);
    if (pid < 0) {
        set_failure(res, SBX_STAGE_CLONE3, clone_errno, -1);
        if (marks != NULL) munmap(marks, sizeof(struct sbx_marks));
        if (marks_fd >= 0) close(marks_fd);
        close(report[0]);
        close(sync[1]);
        close(status[0]);
        return -1;
    }
    ctx->pid = (pid_t)pid;
    ctx->pidfd = pidfd;
    ctx->report = report[0];
    ctx->sync = sync[1];
    ctx->status = status[0];
    ctx->marks = marks;
    ctx->marks_fd = marks_fd;
    res->pid = (pid_t)pid;

    int stage = SBX_STAGE_NONE;
    long index = -1;
    int rc = write_maps_from_parent(req, (pid_t)pid, &stage);
    if (rc == 0) {
        stage = SBX_STAGE_CGROUP_PROCS;
        rc = place_in_v1_cgroups_from_parent(req, (pid_t)pid, &index);
    }
    if (rc == 0) {
        stage = SBX_STAGE_RELEASE_CHILD;
        char go = SBX_SYNC_GO;
        rc = write(sync[1], &go, 1) == 1 ? 0 : -errno;
    }
    if (rc < 0) {
        set_failure(res, stage, -rc, index);
        abandon_from_parent(ctx, res);
        return -1;
    }
    return 0;
}

/// Reads the child's messages until `wanted` arrives (SBX_MSG_READY, with its descriptor in
/// *passed) or, for wanted == 0, until EOF (the program was exec'd), keeping a handed-off
/// seccomp listener in res->notify_fd. Returns 0, or -1 with the failure in `res`.
static int await_child_from_parent(struct spawn_ctx *ctx, int wanted, int64_t deadline, int *ready_fd, struct sbx_spawn_result *res) {
    for (;;) {
        struct sbx_child_msg msg;
        int passed = -1;
        int got = read_child_msg_from_parent(ctx->report, &msg, &passed, deadline);
        if (got == 0) {
            if (wanted == 0) return 0;  // EOF: the program was exec'd (or died; the wait tells)
            set_failure(res, SBX_STAGE_CHILD_VANISHED, EPIPE, -1);
            return -1;
        }
        if (got < 0) {
            set_failure(res, got == -ETIMEDOUT ? SBX_STAGE_SETUP_TIMEOUT : SBX_STAGE_PIPE, -got, -1);
            if (got == -ETIMEDOUT) record_wchan_from_parent(ctx->pid, res);
            return -1;
        }
        if (wanted != 0 && msg.stage == wanted && msg.err == 0) {
            if (passed < 0) {
                set_failure(res, SBX_STAGE_ACTIVATE, EBADF, -1);
                return -1;
            }
            *ready_fd = passed;
            return 0;
        }
        if (msg.stage == SBX_STAGE_SECCOMP_HANDOFF && msg.err == 0) {
            if (passed < 0) {
                set_failure(res, SBX_STAGE_RECEIVE_LISTENER, EBADF, -1);
                return -1;
            }
            if (res->notify_fd >= 0) close(res->notify_fd);
            res->notify_fd = passed;
            continue;
        }
        if (passed >= 0) close(passed);
        set_failure(res, msg.stage, msg.err, (long)msg.index);
        return -1;
    }
}

static int64_t deadline_after(int timeout_ms) {
    return monotonic_ms() + (timeout_ms > 0 ? timeout_ms : 10000);
}

int sbx_spawn(const struct sbx_spawn_req *req, struct sbx_spawn_result *res) {
    reset_result(res);
    if (req->deferred) {
        set_failure(res, SBX_STAGE_ACTIVATE, EINVAL, -1);  // that is sbx_prepare's
        return -1;
    }
    struct spawn_ctx ctx;
    if (clone_and_release_from_parent(req, &ctx, res) < 0) return -1;
    if (await_child_from_parent(&ctx, 0, deadline_after(req->setup_timeout_ms), NULL, res) < 0) {
        abandon_from_parent(&ctx, res);
        return -1;
    }
    close(ctx.report);
    close(ctx.sync);
    res->pidfd = ctx.pidfd;
    res->status_fd = ctx.status;
    if (ctx.marks_fd >= 0) close(ctx.marks_fd);
    if (ctx.marks != NULL) {
        sbx_mark(ctx.marks, SBX_MARK_EXEC_SEEN);
        record_steps_from_parent(ctx.marks, res);
        munmap(ctx.marks, sizeof(struct sbx_marks));
    }
    return 0;
}

int sbx_prepare(const struct sbx_spawn_req *req, struct sbx_prepared *jail, struct sbx_spawn_result *res) {
    reset_result(res);
    memset(jail, 0, sizeof *jail);
    jail->pid = -1;
    jail->pidfd = jail->control_fd = jail->status_fd = jail->work_fd = jail->marks_fd = -1;
    if (!req->deferred) {
        set_failure(res, SBX_STAGE_ACTIVATE, EINVAL, -1);
        return -1;
    }
    struct spawn_ctx ctx;
    if (clone_and_release_from_parent(req, &ctx, res) < 0) return -1;
    int work = -1;
    if (await_child_from_parent(&ctx, SBX_MSG_READY, deadline_after(req->setup_timeout_ms), &work, res) < 0) {
        abandon_from_parent(&ctx, res);
        return -1;
    }
    close(ctx.sync);
    jail->pid = ctx.pid;
    jail->pidfd = ctx.pidfd;
    jail->control_fd = ctx.report;
    jail->status_fd = ctx.status;
    jail->work_fd = work;
    jail->marks = ctx.marks;
    jail->marks_fd = ctx.marks_fd;
    if (ctx.marks != NULL) {
        // The prepare's own steps, clone .. setup (the setup mark is the READY).
        ctx.marks->ns[SBX_MARK_FORKED] = 0;
        struct sbx_spawn_result steps;
        record_steps_from_parent(ctx.marks, &steps);
        for (int i = 0; i < SBX_STEP_COUNT; i++) jail->step_ns[i] = i <= SBX_STEP_SETUP ? steps.step_ns[i] : 0;
    }
    return 0;
}

int sbx_task_memfd(const struct sbx_spawn_req *task, int with_cwd) {
    size_t argc = 0, envc = 0;
    while (task->argv[argc] != NULL) argc++;
    while (task->envp[envc] != NULL) envc++;
    if (argc == 0) return -EINVAL;
    size_t has_cwd = with_cwd && task->workdir != NULL ? 1 : 0;
    size_t slots = argc + 1 + envc + 1 + task->exec_candidate_count + has_cwd;
    size_t size = sizeof(struct sbx_task_header) + slots * sizeof(uint64_t);
    for (size_t i = 0; i < argc; i++) size += strlen(task->argv[i]) + 1;
    for (size_t i = 0; i < envc; i++) size += strlen(task->envp[i]) + 1;
    for (size_t i = 0; i < task->exec_candidate_count; i++) size += strlen(task->exec_candidates[i]) + 1;
    if (has_cwd) size += strlen(task->workdir) + 1;
    if (size > SBX_TASK_MAX_BYTES) return -E2BIG;
    char *buf = calloc(1, size);
    if (buf == NULL) return -ENOMEM;
    struct sbx_task_header *header = (struct sbx_task_header *)buf;
    header->magic = SBX_TASK_MAGIC;
    header->argc = (uint32_t)argc;
    header->envc = (uint32_t)envc;
    header->candidate_count = (uint32_t)task->exec_candidate_count;
    header->has_cwd = (uint32_t)has_cwd;
    uint64_t *table = (uint64_t *)(buf + sizeof *header);
    size_t at = sizeof *header + slots * sizeof(uint64_t), slot = 0;
    const char *cwd[1] = { has_cwd ? task->workdir : NULL };
    const char *const *lists[4] = { (const char *const *)task->argv, (const char *const *)task->envp,
                                    (const char *const *)task->exec_candidates, cwd };
    size_t counts[4] = { argc, envc, task->exec_candidate_count, has_cwd };
    for (int list = 0; list < 4; list++) {
        for (size_t i = 0; i < counts[list]; i++) {
            size_t len = strlen(lists[list][i]) + 1;
            memcpy(buf + at, lists[list][i], len);
            table[slot++] = at;
            at += len;
        }
        if (list < 2) table[slot++] = 0;  // argv's and envp's NULL
    }
    int fd = sbx_sealed_memfd("sealbox-task", buf, size);
    free(buf);
    return fd;
}

/// Takes over a prepared jail as a spawn in progress (its process, report socket, status pipe
/// and timing page) and closes what only the preparation needed (/work, the page's memfd).
/// The jail is left empty: sbx_activate and sbx_discard both consume it.
static struct spawn_ctx take_prepared(struct sbx_prepared *jail) {
    struct spawn_ctx ctx = {
        .pid = jail->pid, .pidfd = jail->pidfd, .report = jail->control_fd, .sync = -1, .status = jail->status_fd,
        .marks = jail->marks, .marks_fd = -1, .keep_pidfd = 0,
    };
    if (jail->work_fd >= 0) close(jail->work_fd);
    if (jail->marks_fd >= 0) close(jail->marks_fd);  // the mapping stays valid without it
    jail->marks = NULL;
    jail->pidfd = jail->control_fd = jail->status_fd = jail->work_fd = jail->marks_fd = -1;
    return ctx;
}

int sbx_activate(struct sbx_prepared *jail, const struct sbx_spawn_req *task, int setup_timeout_ms, struct sbx_spawn_result *res) {
    reset_result(res);
    res->pid = jail->pid;
    struct spawn_ctx ctx = take_prepared(jail);

    int memfd = sbx_task_memfd(task, 0);
    if (memfd < 0) {
        set_failure(res, SBX_STAGE_ACTIVATE, -memfd, -1);
        abandon_from_parent(&ctx, res);
        return -1;
    }
    struct sbx_child_msg msg = { .stage = SBX_MSG_ACTIVATE, .err = 0, .index = 0 };
    int fds[4] = { memfd, task->stdin_fd, task->stdout_fd, task->stderr_fd };
    if (ctx.marks != NULL) {
        for (int i = 0; i < SBX_MARK_COUNT; i++) ctx.marks->ns[i] = 0;
        sbx_mark(ctx.marks, SBX_MARK_ACTIVATE_SENT);
    }
    ssize_t n = sbx_send_with_fds(ctx.report, &msg, sizeof msg, fds, 4);
    int send_errno = errno;
    close(memfd);
    if (n != (ssize_t)sizeof msg) {
        set_failure(res, SBX_STAGE_ACTIVATE, n < 0 ? send_errno : EIO, -1);
        abandon_from_parent(&ctx, res);
        return -1;
    }
    if (await_child_from_parent(&ctx, 0, deadline_after(setup_timeout_ms), NULL, res) < 0) {
        abandon_from_parent(&ctx, res);
        return -1;
    }
    close(ctx.report);
    res->pidfd = ctx.pidfd;
    res->status_fd = ctx.status;
    if (ctx.marks != NULL) {
        sbx_mark(ctx.marks, SBX_MARK_EXEC_SEEN);
        uint64_t *ns = (uint64_t *)ctx.marks->ns;
        uint64_t sent = ns[SBX_MARK_ACTIVATE_SENT], activated = ns[SBX_MARK_ACTIVATED], forked = ns[SBX_MARK_FORKED],
                 seen = ns[SBX_MARK_EXEC_SEEN];
        res->step_ns[SBX_STEP_ACTIVATE] = activated >= sent && activated != 0 ? activated - sent : 0;
        res->step_ns[SBX_STEP_FORK] = forked >= activated && activated != 0 ? forked - activated : 0;
        res->step_ns[SBX_STEP_EXEC] = seen >= forked && forked != 0 ? seen - forked : 0;
        munmap(ctx.marks, sizeof(struct sbx_marks));
    }
    return 0;
}

/// One file for a prepared jail's /work, written by write_task_file_in_child.
struct task_file_write {
    int work_fd;
    const char *name;
    const void *data;
    size_t length;
    uint32_t mode, uid, gid;
    const char *stage;
    int err;
};

/// Runs in a CLONE_VM | CLONE_VFORK child of the calling thread (the posix_spawn pattern): raw
/// syscalls through their thin wrappers only, then _exit. Its credentials and descriptor table
/// are its own, so the fsuid switch and the descriptor open for writing exist nowhere else.
static int write_task_file_in_child(void *arg) {
    struct task_file_write *w = arg;
    w->stage = "setfsuid";
    syscall(SYS_setfsgid, w->gid);
    syscall(SYS_setfsuid, w->uid);
    // setfsuid reports the previous value and cannot fail visibly: ask again.
    if ((uid_t)syscall(SYS_setfsuid, -1) != w->uid || (gid_t)syscall(SYS_setfsgid, -1) != w->gid) {
        w->err = EPERM;
        _exit(1);
    }
    w->stage = "open";
    int fd = openat(w->work_fd, w->name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, w->mode);
    if (fd < 0) {
        w->err = errno;
        _exit(1);
    }
    w->stage = "write";
    if (sbx_write_all(fd, w->data, w->length) < 0) {
        w->err = errno;
        _exit(1);
    }
    // The umask may have narrowed the mode; the plan's modes are exact.
    w->stage = "fchmod";
    if (fchmod(fd, w->mode) < 0) {
        w->err = errno;
        _exit(1);
    }
    w->stage = "close";
    if (close(fd) < 0) {
        w->err = errno;
        _exit(1);
    }
    w->err = 0;
    _exit(0);
}

#define SBX_TASK_FILE_STACK_BYTES (64 * 1024)

int sbx_write_task_file(int work_fd, const char *name, const void *data, size_t length, uint32_t mode, uint32_t uid, uint32_t gid,
                        const char **stage) {
    // Written by a short-lived child, not by this thread: a descriptor open for writing in
    // sealbox itself would be copied into every process another thread forks meanwhile
    // (posix_spawn and fork copy the whole table; close-on-exec only drops it at that
    // process's execve), and while any copy is open the jail's execve of this very file fails
    // with ETXTBSY. Seen in the test suite: a pooled run of a seeded binary failed so while
    // another test spawned a process. The child's table is its own, so no copy can exist.
    struct task_file_write w = { .work_fd = work_fd, .name = name, .data = data, .length = length, .mode = mode,
                                 .uid = uid, .gid = gid, .stage = "clone", .err = EINVAL };
    // No signal handler may run on the shared memory in the child: block everything around it.
    sigset_t all, saved;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &saved);
    void *stack = mmap(NULL, SBX_TASK_FILE_STACK_BYTES, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
    if (stack == MAP_FAILED) {
        w.stage = "mmap";
        w.err = errno;
    } else {
        // CLONE_VFORK: this thread sleeps until the child has exited, so `w` is final then.
        pid_t pid = clone(write_task_file_in_child, (char *)stack + SBX_TASK_FILE_STACK_BYTES, CLONE_VM | CLONE_VFORK | SIGCHLD, &w);
        if (pid < 0) {
            w.stage = "clone";
            w.err = errno;
        } else {
            // Reap it; ECHILD only if something else in the process reaped it first, which
            // changes nothing: the outcome is in `w`.
            while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {}
        }
        munmap(stack, SBX_TASK_FILE_STACK_BYTES);
    }
    pthread_sigmask(SIG_SETMASK, &saved, NULL);
    *stage = w.stage;
    return -w.err;
}

void sbx_discard(struct sbx_prepared *jail) {
    struct spawn_ctx ctx = take_prepared(jail);
    if (ctx.pid <= 0) return;
    struct sbx_spawn_result ignored;
    ignored.notify_fd = -1;
    abandon_from_parent(&ctx, &ignored);
}

int sbx_wait_pidfd(int pidfd, int status_fd, struct sbx_exit *out) {
    siginfo_t info;
    struct rusage usage;
    memset(&info, 0, sizeof info);
    memset(&usage, 0, sizeof usage);
    // The raw syscall takes a fifth argument, rusage, that the libc wrapper hides. init
    // reaps every process of the jail, so this covers the whole tree.
    while (syscall(SYS_waitid, P_PIDFD, pidfd, &info, WEXITED, &usage) < 0) {
        if (errno != EINTR) return -errno;
    }
    out->exited = info.si_code == CLD_EXITED;
    out->code = info.si_status;
    struct sbx_program_status program;
    if (status_fd >= 0 && read(status_fd, &program, sizeof program) == (ssize_t)sizeof program) {
        out->exited = program.exited;
        out->code = program.code;
    }
    out->user_usec = (int64_t)usage.ru_utime.tv_sec * 1000000 + usage.ru_utime.tv_usec;
    out->sys_usec = (int64_t)usage.ru_stime.tv_sec * 1000000 + usage.ru_stime.tv_usec;
    out->maxrss_kb = usage.ru_maxrss;
    return 0;
}

int sbx_pidfd_kill(int pidfd, int sig) {
    if (syscall(__NR_pidfd_send_signal, pidfd, sig, NULL, 0) < 0) return -errno;
    return 0;
}

int sbx_pidfd_open(pid_t pid) {
    int fd = (int)syscall(__NR_pidfd_open, pid, 0);
    if (fd < 0) return -errno;
    if (fcntl(fd, F_SETFD, FD_CLOEXEC) < 0) {
        int err = errno;
        close(fd);
        return -err;
    }
    return fd;
}

unsigned long sbx_locked_mount_flags(const char *path) {
    struct statvfs vfs;
    if (statvfs(path, &vfs) < 0) return 0;
    unsigned long flags = 0;
    if (vfs.f_flag & ST_NOSUID) flags |= MS_NOSUID;
    if (vfs.f_flag & ST_NODEV) flags |= MS_NODEV;
    if (vfs.f_flag & ST_NOEXEC) flags |= MS_NOEXEC;
    if (vfs.f_flag & ST_NOATIME) flags |= MS_NOATIME;
    if (vfs.f_flag & ST_NODIRATIME) flags |= MS_NODIRATIME;
    if (vfs.f_flag & ST_RELATIME) flags |= MS_RELATIME;
    return flags;
}

int sbx_pipe_cloexec(int fds[2]) {
    return pipe2(fds, O_CLOEXEC);
}
