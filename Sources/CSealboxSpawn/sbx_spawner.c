// The spawner (see sbx_spawn.h): both sides of its protocol.
//
// sealbox --control socket--> spawner: one message per new connection, carrying the
// connection's socket. On a connection, one request at a time:
//   request: struct spawner_request + SCM_RIGHTS [packed request memfd, its descriptors...]
//   reply:   struct spawner_reply + SCM_RIGHTS [the descriptors the reply's indexes name]
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "missing_defs.h"
#include "sbx_internal.h"

enum { SPAWNER_SPAWN = 1, SPAWNER_PREPARE = 2 };

struct spawner_request {
    uint32_t op;
    uint32_t fd_count;  // descriptors after the memfd
};

/// Descriptor fields hold an index into the SCM_RIGHTS array, or -1.
struct spawner_reply {
    int32_t rc;
    int32_t fd_count;
    struct sbx_spawn_result res;
    struct sbx_prepared jail;
};

static void close_all(const int *fds, size_t count) {
    for (size_t i = 0; i < count; i++)
        if (fds[i] >= 0) close(fds[i]);
}

// ---------------------------------------------------------------------------------------
// The spawner's side.

/// Adds `fd` to the reply's descriptors; returns its index or -1.
static int reply_fd(int fd, int *fds, int *count) {
    if (fd < 0) return -1;
    fds[*count] = fd;
    return (*count)++;
}

static void serve_request(int conn, const struct spawner_request *request, const int *fds, size_t fd_count) {
    struct spawner_reply reply;
    memset(&reply, 0, sizeof reply);
    reply.res.pidfd = reply.res.notify_fd = reply.res.status_fd = -1;
    reply.jail.pidfd = reply.jail.control_fd = reply.jail.status_fd = reply.jail.work_fd = reply.jail.marks_fd = -1;
    int out[8];
    int out_count = 0;
    void *mapping = MAP_FAILED;
    struct stat st;
    struct sbx_spawn_req *req = NULL;
    reply.rc = -1;
    reply.res.failed_stage = SBX_STAGE_PIPE;
    reply.res.failed_errno = EPROTO;
    reply.res.failed_index = -1;
    if (fd_count < 1 || fd_count != 1 + (size_t)request->fd_count || fstat(fds[0], &st) < 0 || st.st_size <= 0 ||
        (uint64_t)st.st_size > SBX_WIRE_MAX_BYTES)
        goto send;
    mapping = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_PRIVATE, fds[0], 0);
    if (mapping == MAP_FAILED || sbx_wire_unpack(mapping, (size_t)st.st_size, fds + 1, fd_count - 1, &req) < 0) goto send;
    req->clone_parent = 1;
    if (request->op == SPAWNER_SPAWN && !req->deferred) {
        reply.rc = sbx_spawn(req, &reply.res);
    } else if (request->op == SPAWNER_PREPARE && req->deferred) {
        struct sbx_prepared jail;
        reply.rc = sbx_prepare(req, &jail, &reply.res);
        if (reply.rc == 0) {
            reply.jail = jail;
            reply.jail.marks = NULL;
            reply.jail.pidfd = reply_fd(jail.pidfd, out, &out_count);
            reply.jail.control_fd = reply_fd(jail.control_fd, out, &out_count);
            reply.jail.status_fd = reply_fd(jail.status_fd, out, &out_count);
            reply.jail.work_fd = reply_fd(jail.work_fd, out, &out_count);
            reply.jail.marks_fd = reply_fd(jail.marks_fd, out, &out_count);
            if (jail.marks != NULL) munmap(jail.marks, sizeof(struct sbx_marks));
        }
    }
    // Success or not, what the result holds goes to sealbox: on failure the pidfd of a killed
    // child that only sealbox, its parent, can reap.
    reply.res.pidfd = reply_fd(reply.res.pidfd, out, &out_count);
    reply.res.status_fd = reply_fd(reply.res.status_fd, out, &out_count);
    reply.res.notify_fd = reply_fd(reply.res.notify_fd, out, &out_count);
send:
    reply.fd_count = out_count;
    sbx_send_with_fds(conn, &reply, sizeof reply, out, (size_t)out_count);  // a lost reply: sealbox sees EOF
    close_all(out, (size_t)out_count);
    if (mapping != MAP_FAILED) munmap(mapping, (size_t)st.st_size);
}

static void *serve_connection(void *arg) {
    int conn = (int)(intptr_t)arg;
    for (;;) {
        struct spawner_request request;
        int fds[SBX_MAX_PASSED_FDS];
        size_t fd_count = 0;
        ssize_t n = sbx_receive_with_fds(conn, &request, sizeof request, fds, SBX_MAX_PASSED_FDS, &fd_count);
        if (n <= 0) {
            close_all(fds, fd_count);
            break;  // sealbox closed the connection (or it broke)
        }
        if (n == (ssize_t)sizeof request) serve_request(conn, &request, fds, fd_count);
        close_all(fds, fd_count);
    }
    close(conn);
    return NULL;
}

int sbx_spawner_serve(int control_fd, pid_t sealbox) {
    // Jails check this pidfd to notice a sealbox that died while their death signal was
    // disarmed; here it must be sealbox's, not ours.
    int fd = (int)syscall(__NR_pidfd_open, sealbox, 0);
    if (fd >= 0) {
        fcntl(fd, F_SETFD, FD_CLOEXEC);
        sbx_parent_pidfd = fd;
    }
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    for (;;) {
        char byte;
        int fds[SBX_MAX_PASSED_FDS];
        size_t fd_count = 0;
        ssize_t n = sbx_receive_with_fds(control_fd, &byte, 1, fds, SBX_MAX_PASSED_FDS, &fd_count);
        if (n <= 0) {
            close_all(fds, fd_count);
            return n == 0 ? 0 : (int)n;
        }
        for (size_t i = 0; i < fd_count; i++) {
            pthread_t thread;
            if (pthread_create(&thread, &attr, serve_connection, (void *)(intptr_t)fds[i]) != 0) close(fds[i]);
        }
    }
}

// ---------------------------------------------------------------------------------------
// sealbox's side.

static pthread_mutex_t spawner_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t spawner_started = PTHREAD_COND_INITIALIZER;
static int spawner_control = -1;
static volatile int spawner_running = 0;
static int spawner_start_result = 1;  // 1: not decided yet

struct keeper_args {
    char *path;
    int child_end;
};

/// The spawner's parent, and so (through CLONE_PARENT) every jail's: a jail's parent-death
/// signal fires when this *thread* exits, so it never does. It starts the spawner and waits
/// for it; should the spawner die, sealbox spawns in-process again.
static void *keeper_main(void *arg) {
    struct keeper_args *args = arg;
    char fd_text[16], pid_text[16];
    snprintf(fd_text, sizeof fd_text, "%d", 3);
    snprintf(pid_text, sizeof pid_text, "%d", (int)getpid());
    char *argv[] = { "sealbox-spawner", fd_text, pid_text, NULL };
    char *envp[] = { NULL };
    posix_spawn_file_actions_t actions;
    posix_spawnattr_t attr;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, args->child_end, 3);
    posix_spawnattr_init(&attr);
    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setsigdefault(&attr, &all);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    pid_t pid = -1;
    int rc = posix_spawn(&pid, args->path, &actions, &attr, argv, envp);
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attr);
    close(args->child_end);
    free(args->path);
    free(args);
    pthread_mutex_lock(&spawner_lock);
    spawner_start_result = rc == 0 ? 0 : -rc;
    spawner_running = rc == 0;
    pthread_cond_broadcast(&spawner_started);
    pthread_mutex_unlock(&spawner_lock);
    if (rc == 0) {
        int status;
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
        spawner_running = 0;
    }
    for (;;) pause();  // never exit: see above
    return NULL;
}

int sbx_spawner_start(const char *path) {
    pthread_mutex_lock(&spawner_lock);
    if (spawner_control >= 0) {
        int result = spawner_start_result;
        pthread_mutex_unlock(&spawner_lock);
        return result;
    }
    int pair[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) < 0) {
        int err = errno;
        pthread_mutex_unlock(&spawner_lock);
        return -err;
    }
    struct keeper_args *args = malloc(sizeof *args);
    char *copy = strdup(path);
    pthread_attr_t attr;
    pthread_t thread;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attr, 64 * 1024);
    int rc = args == NULL || copy == NULL ? ENOMEM : 0;
    if (rc == 0) {
        args->path = copy;
        args->child_end = pair[1];
        // The keeper must not take signals meant for the process's other threads.
        sigset_t all, old;
        sigfillset(&all);
        pthread_sigmask(SIG_SETMASK, &all, &old);
        rc = pthread_create(&thread, &attr, keeper_main, args);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
    }
    pthread_attr_destroy(&attr);
    if (rc != 0) {
        free(args);
        free(copy);
        close(pair[0]);
        close(pair[1]);
        pthread_mutex_unlock(&spawner_lock);
        return -rc;
    }
    spawner_control = pair[0];
    while (spawner_start_result == 1) pthread_cond_wait(&spawner_started, &spawner_lock);
    int result = spawner_start_result;
    pthread_mutex_unlock(&spawner_lock);
    return result;
}

int sbx_spawner_alive(void) {
    return spawner_running;
}

int sbx_spawner_connect(void) {
    if (!spawner_running) return -ESRCH;
    int pair[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) < 0) return -errno;
    char byte = 'c';
    pthread_mutex_lock(&spawner_lock);
    ssize_t n = sbx_send_with_fds(spawner_control, &byte, 1, &pair[1], 1);
    int err = errno;
    pthread_mutex_unlock(&spawner_lock);
    close(pair[1]);
    if (n != 1) {
        close(pair[0]);
        return -(n < 0 ? err : EIO);
    }
    return pair[0];
}

static int reply_fd_at(int index, const int *fds, size_t count) {
    return index >= 0 && (size_t)index < count ? fds[index] : -1;
}

/// Sends the packed request and waits for the reply; fills `reply` with descriptors in place
/// of indexes. Returns 0, or -errno with the failure already in reply->res.
static int remote_call(int conn, uint32_t op, const struct sbx_spawn_req *req, struct spawner_reply *reply) {
    memset(reply, 0, sizeof *reply);
    int fds[SBX_MAX_PASSED_FDS];
    size_t fd_count = 0;
    int memfd = sbx_wire_pack(req, fds + 1, SBX_MAX_PASSED_FDS - 1, &fd_count);
    int err = 0;
    if (memfd < 0) {
        err = -memfd;
    } else {
        fds[0] = memfd;
        struct spawner_request request = { .op = op, .fd_count = (uint32_t)fd_count };
        ssize_t n = sbx_send_with_fds(conn, &request, sizeof request, fds, fd_count + 1);
        if (n != (ssize_t)sizeof request) err = n < 0 ? errno : EIO;
        close(memfd);
    }
    int got[SBX_MAX_PASSED_FDS];
    size_t got_count = 0;
    if (err == 0) {
        // The spawner enforces the setup timeout itself; this only bounds a spawner that hangs.
        struct pollfd pfd = { .fd = conn, .events = POLLIN };
        int wait_ms = (req->setup_timeout_ms > 0 ? req->setup_timeout_ms : 10000) + 5000;
        int pr;
        do {
            pr = poll(&pfd, 1, wait_ms);
        } while (pr < 0 && errno == EINTR);
        if (pr == 0) err = ETIMEDOUT;
        else if (pr < 0) err = errno;
    }
    if (err == 0) {
        ssize_t n = sbx_receive_with_fds(conn, reply, sizeof *reply, got, SBX_MAX_PASSED_FDS, &got_count);
        if (n < 0) err = (int)-n;
        else if (n != (ssize_t)sizeof *reply) err = EPIPE;
    }
    if (err != 0) {
        close_all(got, got_count);
        memset(reply, 0, sizeof *reply);
        reply->rc = -1;
        reply->res.pid = -1;
        reply->res.pidfd = reply->res.status_fd = reply->res.notify_fd = -1;
        reply->res.failed_stage = SBX_STAGE_PIPE;
        reply->res.failed_errno = err;
        reply->res.failed_index = -1;
        return -err;
    }
    reply->res.pidfd = reply_fd_at(reply->res.pidfd, got, got_count);
    reply->res.status_fd = reply_fd_at(reply->res.status_fd, got, got_count);
    reply->res.notify_fd = reply_fd_at(reply->res.notify_fd, got, got_count);
    reply->jail.pidfd = reply_fd_at(reply->jail.pidfd, got, got_count);
    reply->jail.control_fd = reply_fd_at(reply->jail.control_fd, got, got_count);
    reply->jail.status_fd = reply_fd_at(reply->jail.status_fd, got, got_count);
    reply->jail.work_fd = reply_fd_at(reply->jail.work_fd, got, got_count);
    reply->jail.marks_fd = reply_fd_at(reply->jail.marks_fd, got, got_count);
    return 0;
}

/// A failed remote spawn may hand back the killed child's pidfd: reap it (we are its parent).
static void reap_failed_child(struct sbx_spawn_result *res) {
    if (res->pidfd < 0) return;
    siginfo_t info;
    while (waitid(P_PIDFD, (id_t)res->pidfd, &info, WEXITED) < 0 && errno == EINTR) {}
    close(res->pidfd);
    res->pidfd = -1;
    if (res->status_fd >= 0) close(res->status_fd);
    if (res->notify_fd >= 0) close(res->notify_fd);
    res->status_fd = res->notify_fd = -1;
}

int sbx_remote_spawn(int conn, const struct sbx_spawn_req *req, struct sbx_spawn_result *res) {
    struct spawner_reply reply;
    remote_call(conn, SPAWNER_SPAWN, req, &reply);
    *res = reply.res;
    if (reply.rc != 0) {
        reap_failed_child(res);
        return -1;
    }
    return 0;
}

int sbx_remote_prepare(int conn, const struct sbx_spawn_req *req, struct sbx_prepared *jail, struct sbx_spawn_result *res) {
    struct spawner_reply reply;
    remote_call(conn, SPAWNER_PREPARE, req, &reply);
    *res = reply.res;
    memset(jail, 0, sizeof *jail);
    jail->pidfd = jail->control_fd = jail->status_fd = jail->work_fd = jail->marks_fd = -1;
    if (reply.rc != 0) {
        reap_failed_child(res);
        return -1;
    }
    *jail = reply.jail;
    jail->marks = NULL;
    if (jail->marks_fd >= 0) {
        void *marks = mmap(NULL, sizeof(struct sbx_marks), PROT_READ | PROT_WRITE, MAP_SHARED, jail->marks_fd, 0);
        jail->marks = marks == MAP_FAILED ? NULL : marks;
    }
    return 0;
}
