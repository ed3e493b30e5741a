// seccomp user-notification answering, parent side (seccomp_unotify(2)).
#define _GNU_SOURCE
#include <errno.h>
#include <linux/seccomp.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "sbx_spawn.h"

// The kernel copies out its own sizeof(struct seccomp_notif), which may be larger than the
// one in our headers; ask once (SECCOMP_GET_NOTIF_SIZES) and use a buffer big enough.
#define SBX_NOTIF_BUFFER 512

int sbx_notify_deny_one(int notify_fd, int deny_errno, int *syscall_nr) {
    struct seccomp_notif_sizes sizes;
    if (syscall(SYS_seccomp, SECCOMP_GET_NOTIF_SIZES, 0, &sizes) < 0) return -errno;
    if (sizes.seccomp_notif > SBX_NOTIF_BUFFER || sizes.seccomp_notif_resp > SBX_NOTIF_BUFFER) return -EOVERFLOW;

    _Alignas(8) unsigned char req_buf[SBX_NOTIF_BUFFER];
    _Alignas(8) unsigned char resp_buf[SBX_NOTIF_BUFFER];
    memset(req_buf, 0, sizeof req_buf);  // RECV requires a zeroed buffer
    struct seccomp_notif *req = (struct seccomp_notif *)req_buf;
    while (ioctl(notify_fd, SECCOMP_IOCTL_NOTIF_RECV, req) < 0) {
        if (errno != EINTR) return -errno;
    }
    *syscall_nr = req->data.nr;

    memset(resp_buf, 0, sizeof resp_buf);
    struct seccomp_notif_resp *resp = (struct seccomp_notif_resp *)resp_buf;
    resp->id = req->id;
    resp->error = -deny_errno;
    resp->val = 0;
    resp->flags = 0;  // never SECCOMP_USER_NOTIF_FLAG_CONTINUE: a denied call must not run
    while (ioctl(notify_fd, SECCOMP_IOCTL_NOTIF_SEND, resp) < 0) {
        if (errno != EINTR) return -errno;
    }
    return 0;
}
