// sbx_seccomp.c — see include/sbx_seccomp.h. Parent side only (links libseccomp).

#define _GNU_SOURCE
#include "sbx_seccomp.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/close_range.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <seccomp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

_Static_assert((int)SBX_CMP_NE == (int)SCMP_CMP_NE, "op values mirror enum scmp_compare");
_Static_assert((int)SBX_CMP_LT == (int)SCMP_CMP_LT, "op values mirror enum scmp_compare");
_Static_assert((int)SBX_CMP_LE == (int)SCMP_CMP_LE, "op values mirror enum scmp_compare");
_Static_assert((int)SBX_CMP_EQ == (int)SCMP_CMP_EQ, "op values mirror enum scmp_compare");
_Static_assert((int)SBX_CMP_GE == (int)SCMP_CMP_GE, "op values mirror enum scmp_compare");
_Static_assert((int)SBX_CMP_GT == (int)SCMP_CMP_GT, "op values mirror enum scmp_compare");
_Static_assert((int)SBX_CMP_MASKED_EQ == (int)SCMP_CMP_MASKED_EQ, "op values mirror enum scmp_compare");
_Static_assert(sizeof(struct sock_filter) == 8, "the exported program is an array of 8-byte sock_filter");
_Static_assert(SBX_SECCOMP_NR_ERROR == __NR_SCMP_ERROR, "libseccomp's unknown-syscall value");

struct sbx_seccomp_ctx {
    scmp_filter_ctx filter;
};

static int fail(char *err, size_t err_len, int rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/// Formats "stage: reason" into err and returns rc (a negative errno).
static int fail(char *err, size_t err_len, int rc, const char *fmt, ...) {
    if (err_len > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, err_len, fmt, ap);
        va_end(ap);
    }
    return rc < 0 ? rc : -EINVAL;
}

uint32_t sbx_seccomp_action(enum sbx_seccomp_action_kind kind, uint16_t data) {
    switch (kind) {
    case SBX_ACT_ALLOW: return SCMP_ACT_ALLOW;
    case SBX_ACT_ERRNO: return SCMP_ACT_ERRNO(data);
    case SBX_ACT_KILL_THREAD: return SCMP_ACT_KILL_THREAD;
    case SBX_ACT_KILL_PROCESS: return SCMP_ACT_KILL_PROCESS;
    case SBX_ACT_TRAP: return SCMP_ACT_TRAP;
    case SBX_ACT_LOG: return SCMP_ACT_LOG;
    case SBX_ACT_NOTIFY: return SCMP_ACT_NOTIFY;
    }
    return 0xFFFFFFFFu;
}

// MARK: - Filter context

int sbx_seccomp_ctx_create(uint32_t default_action, uint32_t bad_arch_action,
                           sbx_seccomp_ctx **out, char *err, size_t err_len) {
    *out = NULL;
    sbx_seccomp_ctx *ctx = calloc(1, sizeof(*ctx));
    if (ctx == NULL)
        return fail(err, err_len, -ENOMEM, "calloc: out of memory");
    // seccomp_init gives no reason on failure; in practice it means libseccomp rejected the action
    // (e.g. an errno above 4095, or SCMP_ACT_NOTIFY on a kernel without user notification).
    ctx->filter = seccomp_init(default_action);
    if (ctx->filter == NULL) {
        free(ctx);
        return fail(err, err_len, -EINVAL,
                    "seccomp_init: libseccomp rejected default action 0x%08x", default_action);
    }
    int rc = seccomp_attr_set(ctx->filter, SCMP_FLTATR_ACT_BADARCH, bad_arch_action);
    if (rc < 0) {
        seccomp_release(ctx->filter);
        free(ctx);
        return fail(err, err_len, rc, "seccomp_attr_set(SCMP_FLTATR_ACT_BADARCH, 0x%08x): %s",
                    bad_arch_action, strerror(-rc));
    }
#if SCMP_VER_MAJOR > 2 || (SCMP_VER_MAJOR == 2 && SCMP_VER_MINOR >= 5)
    // A binary tree over the syscall numbers instead of a linear list (libseccomp >= 2.5):
    // every syscall the jailed program makes is checked in a few comparisons rather than
    // up to one per allowed syscall. Best effort: a libseccomp without it keeps the list.
    (void)seccomp_attr_set(ctx->filter, SCMP_FLTATR_CTL_OPTIMIZE, 2);
#endif
    *out = ctx;
    return 0;
}

void sbx_seccomp_ctx_release(sbx_seccomp_ctx *ctx) {
    if (ctx == NULL)
        return;
    seccomp_release(ctx->filter);
    free(ctx);
}

int sbx_seccomp_ctx_add_arch(sbx_seccomp_ctx *ctx, uint32_t arch_token, char *err, size_t err_len) {
    int rc = seccomp_arch_exist(ctx->filter, arch_token);
    if (rc == 0)
        return 0;  // already present (the native arch always is)
    if (rc != -EEXIST)
        return fail(err, err_len, rc, "seccomp_arch_exist(0x%08x): %s", arch_token, strerror(-rc));
    rc = seccomp_arch_add(ctx->filter, arch_token);
    if (rc < 0)
        return fail(err, err_len, rc, "seccomp_arch_add(0x%08x): %s", arch_token, strerror(-rc));
    return 0;
}

int sbx_seccomp_ctx_add_rule(sbx_seccomp_ctx *ctx, uint32_t action, int syscall_nr,
                             const struct sbx_seccomp_cmp *cmps, unsigned int cmp_count,
                             char *err, size_t err_len) {
    if (cmp_count > 6 || (cmp_count > 0 && cmps == NULL))
        return fail(err, err_len, -EINVAL, "seccomp_rule_add_array: %u comparisons (at most 6)", cmp_count);
    struct scmp_arg_cmp arr[6];
    memset(arr, 0, sizeof(arr));
    for (unsigned int i = 0; i < cmp_count; i++) {
        arr[i].arg = cmps[i].arg;
        arr[i].op = (enum scmp_compare)cmps[i].op;
        arr[i].datum_a = cmps[i].datum_a;
        arr[i].datum_b = cmps[i].datum_b;
    }
    int rc = seccomp_rule_add_array(ctx->filter, action, syscall_nr, cmp_count, cmp_count ? arr : NULL);
    if (rc < 0)
        return fail(err, err_len, rc, "seccomp_rule_add_array(syscall %d, action 0x%08x, %u comparisons): %s",
                    syscall_nr, action, cmp_count, strerror(-rc));
    return 0;
}

/// Reads all of fd (from offset 0) into a malloc'd buffer with `extra` spare zero bytes.
static int read_back(int fd, uint8_t **out, size_t *out_len, size_t extra, char *err, size_t err_len) {
    off_t end = lseek(fd, 0, SEEK_END);
    if (end < 0)
        return fail(err, err_len, -errno, "lseek(memfd): %s", strerror(errno));
    uint8_t *buf = calloc(1, (size_t)end + extra + 1);
    if (buf == NULL)
        return fail(err, err_len, -ENOMEM, "calloc(%lld): out of memory", (long long)end);
    size_t done = 0;
    while (done < (size_t)end) {
        ssize_t n = pread(fd, buf + done, (size_t)end - done, (off_t)done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            int e = n < 0 ? errno : EIO;
            free(buf);
            return fail(err, err_len, -e, "pread(memfd): %s", strerror(e));
        }
        done += (size_t)n;
    }
    *out = buf;
    *out_len = done;
    return 0;
}

int sbx_seccomp_ctx_export_bpf(sbx_seccomp_ctx *ctx, uint8_t **out, size_t *out_len,
                               char *err, size_t err_len) {
    *out = NULL;
    *out_len = 0;
#if SCMP_VER_MAJOR > 2 || (SCMP_VER_MAJOR == 2 && SCMP_VER_MINOR >= 6)
    // libseccomp >= 2.6: export straight to memory (first call sizes, second call fills).
    size_t len = 0;
    int rc = seccomp_export_bpf_mem(ctx->filter, NULL, &len);
    if (rc < 0)
        return fail(err, err_len, rc, "seccomp_export_bpf_mem(size): %s", strerror(-rc));
    uint8_t *buf = malloc(len ? len : 1);
    if (buf == NULL)
        return fail(err, err_len, -ENOMEM, "malloc(%zu): out of memory", len);
    rc = seccomp_export_bpf_mem(ctx->filter, buf, &len);
    if (rc < 0) {
        free(buf);
        return fail(err, err_len, rc, "seccomp_export_bpf_mem: %s", strerror(-rc));
    }
    *out = buf;
    *out_len = len;
    return 0;
#else
    // libseccomp 2.5 (Debian 12) has no seccomp_export_bpf_mem: export to a memfd and read back.
    int fd = memfd_create("sbx-seccomp-bpf", MFD_CLOEXEC);
    if (fd < 0)
        return fail(err, err_len, -errno, "memfd_create: %s", strerror(errno));
    int rc = seccomp_export_bpf(ctx->filter, fd);
    if (rc < 0) {
        close(fd);
        return fail(err, err_len, rc, "seccomp_export_bpf: %s", strerror(-rc));
    }
    rc = read_back(fd, out, out_len, 0, err, err_len);
    close(fd);
    if (rc == 0 && (*out_len == 0 || *out_len % sizeof(struct sock_filter) != 0)) {
        size_t n = *out_len;
        sbx_seccomp_free(*out);
        *out = NULL;
        *out_len = 0;
        return fail(err, err_len, -EIO, "seccomp_export_bpf: %zu bytes is not a whole sock_filter program", n);
    }
    return rc;
#endif
}

int sbx_seccomp_ctx_export_pfc(sbx_seccomp_ctx *ctx, char **out, char *err, size_t err_len) {
    *out = NULL;
    int fd = memfd_create("sbx-seccomp-pfc", MFD_CLOEXEC);
    if (fd < 0)
        return fail(err, err_len, -errno, "memfd_create: %s", strerror(errno));
    int rc = seccomp_export_pfc(ctx->filter, fd);
    if (rc < 0) {
        close(fd);
        return fail(err, err_len, rc, "seccomp_export_pfc: %s", strerror(-rc));
    }
    uint8_t *buf = NULL;
    size_t len = 0;
    rc = read_back(fd, &buf, &len, 1, err, err_len);  // zeroed spare byte terminates the string
    close(fd);
    if (rc == 0)
        *out = (char *)buf;
    return rc;
}

void sbx_seccomp_free(void *buffer) {
    free(buffer);
}

// MARK: - Names and numbers

uint32_t sbx_seccomp_arch_native(void) {
    return seccomp_arch_native();
}

uint32_t sbx_seccomp_arch_token(const char *name) {
    return seccomp_arch_resolve_name(name);
}

int sbx_seccomp_syscall_resolve(const char *name) {
    return seccomp_syscall_resolve_name(name);
}

int sbx_seccomp_syscall_resolve_arch(uint32_t arch_token, const char *name) {
    return seccomp_syscall_resolve_name_arch(arch_token, name);
}

int sbx_seccomp_syscall_name(int nr, char *buf, size_t buf_len) {
    return sbx_seccomp_syscall_name_arch(seccomp_arch_native(), nr, buf, buf_len);
}

int sbx_seccomp_syscall_name_arch(uint32_t arch_token, int nr, char *buf, size_t buf_len) {
    if (nr < 0)
        return -ENOENT;  // pseudo numbers are libseccomp-internal, never seen by a filter
    char *name = seccomp_syscall_resolve_num_arch(arch_token, nr);
    if (name == NULL)
        return -ENOENT;
    size_t len = strlen(name);
    int rc = 0;
    if (len + 1 > buf_len)
        rc = -ERANGE;
    else
        memcpy(buf, name, len + 1);
    free(name);
    return rc;
}

unsigned int sbx_seccomp_library_version(void) {
    const struct scmp_version *v = seccomp_version();
    if (v == NULL)
        return 0;
    return v->major * 10000u + v->minor * 100u + v->micro;
}

// MARK: - Self-test harness
//
// Test support: proves, against the running kernel, what an exported program does. The child of
// fork() makes only raw syscalls (no malloc, stdio or libseccomp), so forking from a
// multi-threaded test process is safe.

/// Child -> parent message over a CLOEXEC socketpair (a socket, not a pipe, so the parent's "go"
/// byte can be sent with MSG_NOSIGNAL even if the child has died).
struct selftest_msg {
    int kind;   // 1 = "my listener will be fd <value>", 2 = setup failure at stage <value>
    int value;
    int err;
};

#if defined(__x86_64__)
/// A syscall through the i386 entry point (AUDIT_ARCH_I386 as seen by seccomp). Five arguments;
/// the kernel zeroes r8-r11 on return from int $0x80.
static long syscall_i386(long nr, unsigned long a0, unsigned long a1, unsigned long a2,
                         unsigned long a3, unsigned long a4) {
    long ret;
    __asm__ volatile("int $0x80"
                     : "=a"(ret)
                     : "a"(nr), "b"(a0), "c"(a1), "d"(a2), "S"(a3), "D"(a4)
                     : "memory", "cc", "r8", "r9", "r10", "r11");
    return (int)ret;  // the result is a 32-bit value in eax
}
#endif

static void child_report(int fd, int stage, int e) {
    struct selftest_msg m = {2, stage, e};
    (void)!write(fd, &m, sizeof(m));
}

/// Runs in the forked child: raw syscalls only, never returns.
static void selftest_in_child(const struct sbx_seccomp_selftest_req *req, int report_fd, int devnull) {
    // Start from a clean signal state: the forking thread may be a libdispatch worker, which runs
    // with (almost) all signals blocked, and a blocked mask and ignored signals survive execve.
    // (Seen: python's multiprocessing.Pool hangs on exit because its workers never get SIGTERM.)
    sigset_t none;
    sigemptyset(&none);
    (void)sigprocmask(SIG_SETMASK, &none, NULL);
    struct sigaction dfl;
    memset(&dfl, 0, sizeof(dfl));
    dfl.sa_handler = SIG_DFL;
    for (int sig = 1; sig < NSIG; sig++)
        if (sig != SIGKILL && sig != SIGSTOP)
            (void)sigaction(sig, &dfl, NULL);  // EINVAL for glibc-reserved signals is fine

    // A KILL_PROCESS verdict would otherwise dump core into the test's working directory.
    struct rlimit no_core = {0, 0};
    (void)setrlimit(RLIMIT_CORE, &no_core);

    if (req->path != NULL) {
        if (dup2(devnull, 0) < 0 || dup2(devnull, 1) < 0 || dup2(devnull, 2) < 0) {
            child_report(report_fd, SBX_SELFTEST_CHILD_STDIO, errno);
            _exit(127);
        }
        // The program must not inherit the test process's other descriptors. Mark them CLOEXEC
        // now, before the filter might deny close_range(2).
        if (syscall(SYS_close_range, 3, ~0U, CLOSE_RANGE_CLOEXEC) != 0) {
            child_report(report_fd, SBX_SELFTEST_CHILD_STDIO, errno);
            _exit(127);
        }
    }
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
        child_report(report_fd, SBX_SELFTEST_CHILD_NO_NEW_PRIVS, errno);
        _exit(127);
    }
    if (req->prog != NULL) {
        unsigned long flags = 0;
        if (req->use_listener) {
            // The listener takes the lowest free fd. Tell the parent which one *before* installing,
            // because after installing, write(2) itself may be a notified syscall.
            int probe = fcntl(report_fd, F_DUPFD, 0);
            if (probe < 0) {
                child_report(report_fd, SBX_SELFTEST_CHILD_INSTALL, errno);
                _exit(127);
            }
            close(probe);
            struct selftest_msg m = {1, probe, 0};
            if (write(report_fd, &m, sizeof(m)) != (ssize_t)sizeof(m))
                _exit(127);
            flags = SECCOMP_FILTER_FLAG_NEW_LISTENER;
        }
        struct sock_fprog fprog = {
            .len = (unsigned short)(req->prog_len / sizeof(struct sock_filter)),
            .filter = (struct sock_filter *)req->prog,
        };
        long fd = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, flags, &fprog);
        if (fd < 0) {
            child_report(report_fd, SBX_SELFTEST_CHILD_INSTALL, errno);  // nothing was installed
            _exit(127);
        }
        if (req->use_listener) {
            // Wait until the parent holds a copy of the listener: it disappears at exec (it is
            // CLOEXEC) or exit. If the filter notifies read(2) itself, the parent answers it, and
            // any return means "go".
            char go;
            (void)!read(report_fd, &go, 1);
        }
    }
    if (req->path != NULL) {
        execve(req->path, (char *const *)req->argv, (char *const *)req->envp);
        child_report(report_fd, SBX_SELFTEST_CHILD_EXEC, errno);
        _exit(127);
    }

    const unsigned long *a = req->args;
    long r;
    int e = 0;
#if defined(__x86_64__)
    if (req->abi == SBX_SELFTEST_ABI_I386) {
        r = syscall_i386(req->nr, a[0], a[1], a[2], a[3], a[4]);
        if (r < 0 && r > -4096) {
            e = (int)-r;
            r = -1;
        }
    } else
#endif
    if (req->abi != SBX_SELFTEST_ABI_NATIVE) {
        r = -1;
        e = ENOSYS;
    } else {
        r = syscall(req->nr, a[0], a[1], a[2], a[3], a[4], a[5]);
        e = r < 0 ? errno : 0;
    }
    // A fork-like clone(2) probe: the new process must not fall through into the test harness.
    if (req->nr == SYS_clone && req->abi == SBX_SELFTEST_ABI_NATIVE) {
        if (r == 0)
            _exit(0);
        if (r > 0)
            (void)waitpid((pid_t)r, NULL, __WALL);
    }
    _exit(r < 0 ? (e > 0 && e < 256 ? e : 255) : 0);
}

static long now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/// Answers one pending notification with -answer_errno and records its syscall number.
static void answer_notification(int listener, int answer_errno, struct sbx_seccomp_selftest_result *res) {
    struct seccomp_notif req;
    struct seccomp_notif_resp resp;
    memset(&req, 0, sizeof(req));  // NOTIF_RECV requires a zeroed buffer
    if (ioctl(listener, SECCOMP_IOCTL_NOTIF_RECV, &req) != 0)
        return;  // ENOENT: the target died or the syscall was interrupted
    if (res->notified_count < SBX_SELFTEST_MAX_NOTIFIED) {
        res->notified_nr[res->notified_count] = req.data.nr;
        res->notified_arch[res->notified_count] = req.data.arch;
    }
    res->notified_count++;
    memset(&resp, 0, sizeof(resp));
    resp.id = req.id;
    resp.error = -answer_errno;
    resp.val = 0;
    (void)ioctl(listener, SECCOMP_IOCTL_NOTIF_SEND, &resp);
}

/// Copies the child's listener fd `target` into this process. The child announces the number
/// before installing the filter, so retry while it does not exist yet (the child then waits for
/// our "go" before it can exec or exit, which would close it).
static int take_listener(int pidfd, int target, long deadline) {
    for (;;) {
        int fd = (int)syscall(SYS_pidfd_getfd, pidfd, target, 0);
        if (fd >= 0)
            return fd;
        int e = errno;
        if (e != EBADF || now_ms() > deadline)
            return -e;
        struct pollfd p = {.fd = pidfd, .events = POLLIN};
        if (poll(&p, 1, 1) > 0)
            return -ESRCH;  // the child died before installing
    }
}

int sbx_seccomp_selftest(const struct sbx_seccomp_selftest_req *req, struct sbx_seccomp_selftest_result *res) {
    memset(res, 0, sizeof(*res));
    int chan[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, chan) != 0) {
        res->setup_stage = SBX_SELFTEST_SOCKETPAIR;
        res->setup_errno = errno;
        return -res->setup_errno;
    }
    int devnull = -1;
    if (req->path != NULL && (devnull = open("/dev/null", O_RDWR | O_CLOEXEC)) < 0) {
        res->setup_stage = SBX_SELFTEST_CHILD_STDIO;
        res->setup_errno = errno;
        close(chan[0]);
        close(chan[1]);
        return -res->setup_errno;
    }

    pid_t pid = fork();
    if (pid == 0) {
        close(chan[0]);
        selftest_in_child(req, chan[1], devnull);
    }
    int fork_errno = errno;
    close(chan[1]);
    if (devnull >= 0)
        close(devnull);
    if (pid < 0) {
        close(chan[0]);
        res->setup_stage = SBX_SELFTEST_FORK;
        res->setup_errno = fork_errno;
        return -fork_errno;
    }

    int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
    if (pidfd < 0) {
        res->setup_stage = SBX_SELFTEST_PIDFD;
        res->setup_errno = errno;
        kill(pid, SIGKILL);
    }
    int report = chan[0];
    int listener = -1;
    long deadline = now_ms() + (req->timeout_ms > 0 ? req->timeout_ms : 10000);
    // Supervise until the child has exited: read its messages, answer notifications, enforce the
    // timeout.
    while (pidfd >= 0) {
        struct pollfd p[3] = {
            {.fd = pidfd, .events = POLLIN},
            {.fd = report, .events = POLLIN},
            {.fd = listener, .events = POLLIN},
        };
        long left = deadline - now_ms();
        if (left <= 0 && !res->timed_out) {
            res->timed_out = 1;
            kill(pid, SIGKILL);
            left = 5000;  // the kill is certain; just let poll notice the exit
        }
        int n = poll(p, 3, left > 0 ? (int)left : 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            break;
        if (p[1].revents) {
            struct selftest_msg m;
            ssize_t got = read(report, &m, sizeof(m));
            if (got == (ssize_t)sizeof(m) && m.kind == 1 && listener < 0) {
                listener = take_listener(pidfd, m.value, deadline);
                if (listener < 0 && res->setup_stage == 0) {
                    res->setup_stage = SBX_SELFTEST_GETFD;
                    res->setup_errno = -listener;
                }
                (void)send(report, "g", 1, MSG_NOSIGNAL);  // let the child go on
            } else if (got == (ssize_t)sizeof(m) && m.kind == 2 && res->setup_stage == 0) {
                res->setup_stage = m.value;
                res->setup_errno = m.err;
            } else if (got <= 0) {
                close(report);
                report = -1;  // EOF: exec succeeded or the child is exiting
            }
        }
        if (listener >= 0 && (p[2].revents & POLLIN))
            answer_notification(listener, req->answer_errno, res);
        else if (listener >= 0 && (p[2].revents & (POLLHUP | POLLERR | POLLNVAL))) {
            close(listener);
            listener = -1;
        }
        if (p[0].revents)
            break;  // exited
    }
    // A child that dies during setup may leave its failure report unread. Don't wait for EOF: a
    // concurrently forked sibling may briefly hold a copy of the child's end.
    if (report >= 0) {
        struct selftest_msg m;
        while (recv(report, &m, sizeof(m), MSG_DONTWAIT) == (ssize_t)sizeof(m))
            if (m.kind == 2 && res->setup_stage == 0) {
                res->setup_stage = m.value;
                res->setup_errno = m.err;
            }
        close(report);
    }
    if (listener >= 0)
        close(listener);
    if (pidfd >= 0)
        close(pidfd);

    int status = 0;
    pid_t w;
    do {
        w = waitpid(pid, &status, 0);
    } while (w < 0 && errno == EINTR);
    if (w < 0) {
        res->setup_stage = SBX_SELFTEST_WAIT;
        res->setup_errno = errno;
        return -res->setup_errno;
    }
    res->exited = WIFEXITED(status);
    res->exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 0;
    res->signaled = WIFSIGNALED(status);
    res->signal_number = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
    return res->setup_stage == 0 ? 0 : -(res->setup_errno ? res->setup_errno : EINVAL);
}
