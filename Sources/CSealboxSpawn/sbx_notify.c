// seccomp user-notification handling, parent side (seccomp_unotify(2)).
//
// The supervisor decides what each notified syscall gets (Swift: NotificationPolicy); these
// functions are the three kernel operations it needs: receive, answer, and kill-while-held.
#define _GNU_SOURCE
#include <errno.h>
#include <linux/seccomp.h>
#include <signal.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "missing_defs.h"
#include "sbx_spawn.h"

// The kernel copies out its own sizeof(struct seccomp_notif), which may be larger than the
// one in our headers (SECCOMP_GET_NOTIF_SIZES); use a buffer big enough for any of them.
#define SBX_NOTIF_BUFFER 512

static int notif_sizes_fit(void) {
    struct seccomp_notif_sizes sizes;
    if (syscall(SYS_seccomp, SECCOMP_GET_NOTIF_SIZES, 0, &sizes) < 0) return -errno;
    if (sizes.seccomp_notif > SBX_NOTIF_BUFFER || sizes.seccomp_notif_resp > SBX_NOTIF_BUFFER) return -EOVERFLOW;
    return 0;
}

int sbx_notify_receive(int notify_fd, struct sbx_notification *out) {
    int rc = notif_sizes_fit();
    if (rc < 0) return rc;
    _Alignas(8) unsigned char req_buf[SBX_NOTIF_BUFFER];
    memset(req_buf, 0, sizeof req_buf);  // RECV requires a zeroed buffer
    struct seccomp_notif *req = (struct seccomp_notif *)req_buf;
    while (ioctl(notify_fd, SECCOMP_IOCTL_NOTIF_RECV, req) < 0) {
        if (errno != EINTR) return -errno;
    }
    out->id = req->id;
    out->pid = req->pid;
    out->nr = req->data.nr;
    out->arch = req->data.arch;
    for (int i = 0; i < 6; i++) out->args[i] = req->data.args[i];
    return 0;
}

int sbx_notify_answer(int notify_fd, uint64_t id, int answer_errno, int proceed) {
    int rc = notif_sizes_fit();
    if (rc < 0) return rc;
    _Alignas(8) unsigned char resp_buf[SBX_NOTIF_BUFFER];
    memset(resp_buf, 0, sizeof resp_buf);
    struct seccomp_notif_resp *resp = (struct seccomp_notif_resp *)resp_buf;
    resp->id = id;
    if (proceed) {
        // CONTINUE requires error == 0 and val == 0. It is only safe where the supervisor
        // does not enforce anything (seccomp_unotify(2) NOTES: the arguments can change
        // between the check and the call); sealbox uses it only while recording.
        resp->flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE;
    } else {
        resp->error = -answer_errno;
    }
    while (ioctl(notify_fd, SECCOMP_IOCTL_NOTIF_SEND, resp) < 0) {
        if (errno != EINTR) return -errno;
    }
    return 0;
}

int sbx_notify_kill(int notify_fd, uint64_t id, uint32_t pid) {
    if (pid == 0) return -ESRCH;
    // PIDFD_THREAD: the notifying task may be any thread, not only a thread-group leader.
    // SIGKILL through a thread pidfd still kills the whole process.
    int pidfd = (int)syscall(__NR_pidfd_open, (pid_t)pid, PIDFD_THREAD);
    if (pidfd < 0) return -errno;
    // The tid was read from the notification; if the task died and the tid was reused
    // between the receive and pidfd_open, the notification is no longer valid. Checking
    // after opening pins the task: the pidfd now refers to the one still held in the call.
    uint64_t cookie = id;
    if (ioctl(notify_fd, SECCOMP_IOCTL_NOTIF_ID_VALID, &cookie) < 0) {
        int e = errno;
        close(pidfd);
        return -e;
    }
    int rc = 0;
    if (syscall(__NR_pidfd_send_signal, pidfd, SIGKILL, NULL, 0) < 0) rc = -errno;
    close(pidfd);
    return rc;
}
