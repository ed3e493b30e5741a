// A sandbox's init: a prepared jail told SBX_MSG_RESIDENT stays, and runs commands for as long
// as its control socket is open.
//
// Commands are started by the jail's own pid 1, never by a host process entering the jail's
// namespaces: each is a CLONE_VM | CLONE_VFORK child of init (as a run's program is, see
// start_program_in_child in sbx_child.c) that makes its own process group, takes the stdio the
// parent sent, and then goes through exactly a run's program path: parent-death signal, working
// directory, the jail's seccomp filter (its listener handed over), execve. Several commands may
// run at once; init reaps everything, and writes each command's status to that command's own
// exit pipe. Closing the control socket ends init, and with it the pid namespace: everything
// the sandbox still runs is killed by the kernel (pid_namespaces(7)).
//
// The child side (init) has the constraints of sbx_child.c: it is a copy of a multi-threaded
// process, so raw syscalls through thin libc wrappers only, no malloc, no stdio.
//
// Protocol on the control socket (SOCK_SEQPACKET), after SBX_MSG_RESIDENT, in
// `struct sbx_resident_msg`s:
//   parent -> init  EXEC id       fds: task memfd, stdin, stdout, stderr, exit pipe (write end)
//   init -> parent  STARTED id    pid inside the jail; the seccomp listener when notifying
//                   FAILED id     stage, err, index: nothing runs
//   parent -> init  SIGNAL id     err = the signal, sent to the command's process group
// The parent sends one EXEC at a time and reads its answer before the next (init answers only
// EXEC), so no reader thread is needed on either side.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "missing_defs.h"
#include "sbx_internal.h"

// MARK: - init (child side)

/// Commands running at once in one sandbox: each holds its exit pipe in init, under the
/// jail's RLIMIT_NOFILE.
#define SBX_RESIDENT_MAX_COMMANDS 256
/// A command's stack while it shares init's memory (until its execve), as a run's program's.
#define SBX_COMMAND_STACK_BYTES (256 * 1024)

struct resident_command {
    int64_t id;
    pid_t pid;
    int exit_fd;
};

/// init's own memory (init was cloned without CLONE_VM), shared only with a command between
/// its clone and its execve, while init sleeps.
static struct resident_command resident_commands[SBX_RESIDENT_MAX_COMMANDS];
static size_t resident_count;

struct command_start {
    const struct sbx_spawn_req *req;
    const struct sbx_program *program;
    const int *stdio;  // three descriptors, dup2'ed onto 0, 1, 2
    int report_fd;
};

/// The command's side of the clone: its own process group (so killing it kills what it
/// started and nothing else), signals unblocked (init blocks SIGCHLD for its signalfd), its
/// stdio, then a run's program path. Never returns.
static int command_entry_in_child(void *arg) {
    const struct command_start *start = arg;
    sigset_t none;
    sigemptyset(&none);
    if (sigprocmask(SIG_SETMASK, &none, NULL) < 0) sbx_fail_in_child(start->report_fd, SBX_STAGE_SIGMASK, errno, 1);
    if (setpgid(0, 0) < 0) sbx_fail_in_child(start->report_fd, SBX_STAGE_SETSID, errno, 1);
    for (int target = 0; target < 3; target++) {
        if (dup2(start->stdio[target], target) < 0) sbx_fail_in_child(start->report_fd, SBX_STAGE_STDIO, errno, target);
    }
    sbx_exec_program_in_child(start->req, start->program, start->report_fd);
}

static void send_or_exit_in_child(int control_fd, struct sbx_resident_msg *msg, int fd) {
    ssize_t n = sbx_send_with_fds(control_fd, msg, sizeof *msg, &fd, fd >= 0 ? 1 : 0);
    // The parent is gone or the socket broke: nobody can use this sandbox any more.
    if (n != (ssize_t)sizeof *msg) _exit(0);
}

/// EXEC: starts one command and answers STARTED or FAILED. `fds`: the task memfd, stdin,
/// stdout, stderr and the exit pipe; all closed here but the exit pipe of a started command,
/// which is kept until the command is reaped.
static void start_command_in_child(const struct sbx_spawn_req *req, int control_fd, void *stack, int64_t id, int fds[5]) {
    struct sbx_resident_msg reply = { .kind = SBX_RESIDENT_FAILED, .stage = 0, .err = 0, .pid = 0, .id = id, .index = -1 };
    int report[2] = { -1, -1 };
    int listener = -1;
    void *payload = MAP_FAILED;
    size_t size = 0;
    struct stat st;
    struct sbx_program program;
    if (resident_count >= SBX_RESIDENT_MAX_COMMANDS) {
        reply.stage = SBX_STAGE_FORK_PROGRAM;
        reply.err = EAGAIN;
        goto answer;
    }
    if (fstat(fds[0], &st) < 0) {
        reply.stage = SBX_STAGE_ACTIVATE;
        reply.err = errno;
        goto answer;
    }
    if (st.st_size <= 0 || (uint64_t)st.st_size > SBX_TASK_MAX_BYTES) {
        reply.stage = SBX_STAGE_ACTIVATE;
        reply.err = E2BIG;
        goto answer;
    }
    size = (size_t)st.st_size;
    payload = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE, fds[0], 0);
    if (payload == MAP_FAILED) {
        reply.stage = SBX_STAGE_ACTIVATE;
        reply.err = errno;
        goto answer;
    }
    if (sbx_decode_task_in_child(payload, size, &program) < 0) {
        reply.stage = SBX_STAGE_ACTIVATE;
        reply.err = EINVAL;
        goto answer;
    }
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, report) < 0) {
        reply.stage = SBX_STAGE_FORK_PROGRAM;
        reply.err = errno;
        goto answer;
    }
    struct command_start start = { .req = req, .program = &program, .stdio = &fds[1], .report_fd = report[1] };
    int pid = clone(command_entry_in_child, (char *)stack + SBX_COMMAND_STACK_BYTES, CLONE_VM | CLONE_VFORK | SIGCHLD, &start);
    if (pid < 0) {
        reply.stage = SBX_STAGE_FORK_PROGRAM;
        reply.err = errno;
        goto answer;
    }
    // Back here once the command has exec'd or died, so everything it reported is queued and
    // its end of the socket is closed (close-on-exec, or its exit): the reads below end in EOF.
    close(report[1]);
    report[1] = -1;
    int failed = 0;
    for (;;) {
        struct sbx_child_msg msg;
        int got[1] = { -1 };
        size_t count = 0;
        ssize_t n = sbx_receive_with_fds(report[0], &msg, sizeof msg, got, 1, &count);
        if (n <= 0) break;
        if (n == (ssize_t)sizeof msg && msg.stage == SBX_STAGE_SECCOMP_HANDOFF && count == 1 && listener < 0) {
            listener = got[0];
            continue;
        }
        if (count == 1) close(got[0]);
        failed = 1;
        reply.stage = n == (ssize_t)sizeof msg ? msg.stage : SBX_STAGE_CHILD_VANISHED;
        reply.err = n == (ssize_t)sizeof msg ? msg.err : EPROTO;
        reply.index = n == (ssize_t)sizeof msg ? msg.index : -1;
    }
    if (failed) {
        // Never registered: its exit is reaped without a report.
        if (listener >= 0) close(listener);
        listener = -1;
        goto answer;
    }
    resident_commands[resident_count++] = (struct resident_command){ .id = id, .pid = pid, .exit_fd = fds[4] };
    fds[4] = -1;
    reply.kind = SBX_RESIDENT_STARTED;
    reply.pid = pid;
answer:
    if (payload != MAP_FAILED) munmap(payload, size);
    for (int i = 0; i < 2; i++) {
        if (report[i] >= 0) close(report[i]);
    }
    for (int i = 0; i < 5; i++) {
        if (fds[i] >= 0) close(fds[i]);
    }
    send_or_exit_in_child(control_fd, &reply, listener);
    if (listener >= 0) close(listener);
}

/// Reaps every child that ended; a command's status (with its rusage) goes to its exit pipe,
/// which is then closed. Orphans the jail's processes left are reaped silently.
static void reap_in_child(void) {
    for (;;) {
        int status = 0;
        struct rusage usage;
        memset(&usage, 0, sizeof usage);
        pid_t pid = wait4(-1, &status, WNOHANG, &usage);
        if (pid < 0 && errno == EINTR) continue;
        if (pid <= 0) return;  // none ended (0) or no children at all (ECHILD)
        for (size_t i = 0; i < resident_count; i++) {
            if (resident_commands[i].pid != pid) continue;
            struct sbx_exit out = {
                .exited = WIFEXITED(status) ? 1 : 0,
                .code = WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status),
                .user_usec = (int64_t)usage.ru_utime.tv_sec * 1000000 + usage.ru_utime.tv_usec,
                .sys_usec = (int64_t)usage.ru_stime.tv_sec * 1000000 + usage.ru_stime.tv_usec,
                .maxrss_kb = usage.ru_maxrss,
            };
            // A parent that stopped listening to this command is not init's concern.
            ssize_t ignored = write(resident_commands[i].exit_fd, &out, sizeof out);
            (void)ignored;
            close(resident_commands[i].exit_fd);
            resident_commands[i] = resident_commands[--resident_count];
            break;
        }
    }
}

/// SIGNAL: the command's process group (what it started and did not move elsewhere); its
/// leader alone when the group is already gone.
static void signal_command_in_child(int64_t id, int sig) {
    if (sig <= 0 || sig >= 65) return;
    for (size_t i = 0; i < resident_count; i++) {
        if (resident_commands[i].id != id) continue;
        if (kill(-resident_commands[i].pid, sig) < 0) (void)kill(resident_commands[i].pid, sig);
        return;
    }
}

/// Closes every descriptor >= 3 but the two init keeps (stdio stays: /dev/null since setup,
/// so descriptors received later never take 0-2).
static int close_all_but_in_child(int a, int b) {
    unsigned int low = (unsigned int)(a < b ? a : b), high = (unsigned int)(a < b ? b : a);
    if (low > 3 && syscall(__NR_close_range, 3U, low - 1, 0U) < 0) return -1;
    if (high > low + 1 && syscall(__NR_close_range, low + 1, high - 1, 0U) < 0) return -1;
    return (int)syscall(__NR_close_range, high + 1, ~0U, 0U);
}

void sbx_resident_main_in_child(const struct sbx_spawn_req *req, int control_fd, int status_fd) {
    struct sbx_resident_msg failure = { .kind = SBX_RESIDENT_FAILED, .id = 0, .index = -1, .pid = 0 };
    // init never execs: close what it still holds from the setup (the sync pipe and any
    // descriptor the preparation left), so no other jail's pipe stays open in this one.
    if (close_all_but_in_child(control_fd, status_fd) < 0) {
        failure.stage = SBX_STAGE_CLOSE_FDS;
        failure.err = errno;
        send_or_exit_in_child(control_fd, &failure, -1);
        _exit(125);
    }
    // SIGCHLD through a signalfd, so one poll waits for the parent and for exits alike.
    sigset_t chld;
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    int sigfd = -1;
    void *stack = MAP_FAILED;
    if (sigprocmask(SIG_BLOCK, &chld, NULL) < 0 || (sigfd = signalfd(-1, &chld, SFD_CLOEXEC | SFD_NONBLOCK)) < 0 ||
        (stack = mmap(NULL, SBX_COMMAND_STACK_BYTES, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0)) == MAP_FAILED) {
        failure.stage = SBX_STAGE_FORK_PROGRAM;
        failure.err = errno;
        send_or_exit_in_child(control_fd, &failure, -1);
        _exit(125);
    }
    struct sbx_resident_msg ready = { .kind = SBX_RESIDENT_READY, .id = 0, .index = -1 };
    send_or_exit_in_child(control_fd, &ready, -1);

    for (;;) {
        struct pollfd fds[2] = { { .fd = control_fd, .events = POLLIN }, { .fd = sigfd, .events = POLLIN } };
        if (poll(fds, 2, -1) < 0) {
            if (errno == EINTR) continue;
            _exit(125);
        }
        if (fds[1].revents & POLLIN) {
            struct signalfd_siginfo info;
            while (read(sigfd, &info, sizeof info) == (ssize_t)sizeof info) {}
            reap_in_child();
        }
        if (fds[0].revents == 0) continue;
        struct sbx_resident_msg msg;
        int got[5] = { -1, -1, -1, -1, -1 };
        size_t count = 0;
        ssize_t n = sbx_receive_with_fds(control_fd, &msg, sizeof msg, got, 5, &count);
        if (n == 0 || n == -ECONNRESET) _exit(0);  // the sandbox is over
        if (n < 0) {
            if (n == -EMSGSIZE) continue;  // too many descriptors: closed by the receive
            _exit(125);
        }
        if (n == (ssize_t)sizeof msg && msg.kind == SBX_RESIDENT_EXEC && count == 5) {
            start_command_in_child(req, control_fd, stack, msg.id, got);
            continue;
        }
        for (size_t i = 0; i < count; i++) close(got[i]);
        if (n == (ssize_t)sizeof msg && msg.kind == SBX_RESIDENT_SIGNAL) {
            signal_command_in_child(msg.id, msg.err);
        } else if (n == (ssize_t)sizeof msg && msg.kind == SBX_RESIDENT_EXEC) {
            struct sbx_resident_msg reply = { .kind = SBX_RESIDENT_FAILED, .stage = SBX_STAGE_ACTIVATE, .err = EPROTO, .id = msg.id, .index = -1 };
            send_or_exit_in_child(control_fd, &reply, -1);
        }
    }
}

// MARK: - sealbox (parent side)

static int64_t resident_monotonic_ms(void) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

/// The next message from init, with at most one descriptor, before `deadline_ms`.
static int await_resident_reply(int control_fd, int64_t deadline_ms, struct sbx_resident_msg *msg, int *fd) {
    *fd = -1;
    for (;;) {
        int64_t left = deadline_ms - resident_monotonic_ms();
        if (left <= 0) return -ETIMEDOUT;
        struct pollfd entry = { .fd = control_fd, .events = POLLIN };
        int ready = poll(&entry, 1, (int)(left > INT32_MAX ? INT32_MAX : left));
        if (ready < 0) {
            if (errno == EINTR) continue;
            return -errno;
        }
        if (ready == 0) continue;
        int got[1] = { -1 };
        size_t count = 0;
        ssize_t n = sbx_receive_with_fds(control_fd, msg, sizeof *msg, got, 1, &count);
        if (n < 0) return (int)n;
        if (n == 0) return -EPIPE;  // init is gone
        if (n != (ssize_t)sizeof *msg) {
            if (count == 1) close(got[0]);
            return -EPROTO;
        }
        *fd = count == 1 ? got[0] : -1;
        return 0;
    }
}

int sbx_resident_start(int control_fd, int timeout_ms) {
    struct sbx_child_msg msg = { .stage = SBX_MSG_RESIDENT, .err = 0, .index = 0 };
    ssize_t n = sbx_send_with_fds(control_fd, &msg, sizeof msg, NULL, 0);
    if (n != (ssize_t)sizeof msg) return n < 0 ? -errno : -EIO;
    struct sbx_resident_msg reply;
    int fd = -1;
    int rc = await_resident_reply(control_fd, resident_monotonic_ms() + (timeout_ms > 0 ? timeout_ms : 10000), &reply, &fd);
    if (fd >= 0) close(fd);
    if (rc < 0) return rc;
    if (reply.kind == SBX_RESIDENT_READY) return 0;
    if (reply.kind == SBX_RESIDENT_FAILED && reply.err > 0) return -reply.err;
    return -EPROTO;
}

int sbx_resident_exec(int control_fd, int64_t id, const struct sbx_spawn_req *task, int exit_fd, int timeout_ms,
                      struct sbx_command_start *out) {
    memset(out, 0, sizeof *out);
    out->notify_fd = -1;
    out->failed_index = -1;
    int memfd = sbx_task_memfd(task, 1);
    if (memfd < 0) {
        out->failed_stage = SBX_STAGE_ACTIVATE;
        out->failed_errno = -memfd;
        return -1;
    }
    struct sbx_resident_msg msg = { .kind = SBX_RESIDENT_EXEC, .stage = 0, .err = 0, .pid = 0, .id = id, .index = -1 };
    int fds[5] = { memfd, task->stdin_fd, task->stdout_fd, task->stderr_fd, exit_fd };
    ssize_t n = sbx_send_with_fds(control_fd, &msg, sizeof msg, fds, 5);
    int send_errno = errno;
    close(memfd);
    if (n != (ssize_t)sizeof msg) return n < 0 ? -send_errno : -EIO;
    struct sbx_resident_msg reply;
    int fd = -1;
    int rc = await_resident_reply(control_fd, resident_monotonic_ms() + (timeout_ms > 0 ? timeout_ms : 10000), &reply, &fd);
    if (rc < 0) return rc;
    if (reply.id != id || (reply.kind != SBX_RESIDENT_STARTED && reply.kind != SBX_RESIDENT_FAILED)) {
        if (fd >= 0) close(fd);
        return -EPROTO;
    }
    if (reply.kind == SBX_RESIDENT_FAILED) {
        if (fd >= 0) close(fd);
        out->failed_stage = reply.stage;
        out->failed_errno = reply.err;
        out->failed_index = (long)reply.index;
        return -1;
    }
    out->pid = reply.pid;
    out->notify_fd = fd;
    return 0;
}

int sbx_resident_signal(int control_fd, int64_t id, int sig) {
    struct sbx_resident_msg msg = { .kind = SBX_RESIDENT_SIGNAL, .stage = 0, .err = sig, .pid = 0, .id = id, .index = -1 };
    ssize_t n = sbx_send_with_fds(control_fd, &msg, sizeof msg, NULL, 0);
    if (n != (ssize_t)sizeof msg) return n < 0 ? -errno : -EIO;
    return 0;
}

int sbx_read_command_exit(int exit_fd, struct sbx_exit *out) {
    ssize_t n;
    do {
        n = read(exit_fd, out, sizeof *out);
    } while (n < 0 && errno == EINTR);
    if (n < 0) return -errno;
    if (n == 0) return -EPIPE;  // closed without a status: init ended first
    if (n != (ssize_t)sizeof *out) return -EPROTO;
    return 0;
}
