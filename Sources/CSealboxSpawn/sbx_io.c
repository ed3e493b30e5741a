// Descriptor passing and whole writes, shared by sealbox, the spawner and the child. Each is
// the syscall plus memory operations only (no allocation, no locks), so the child may call
// them between clone3 and execve.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "sbx_internal.h"

union fd_control {
    char buf[CMSG_SPACE(SBX_MAX_PASSED_FDS * sizeof(int))];
    struct cmsghdr align;
};

ssize_t sbx_send_with_fds(int sock, const void *data, size_t length, const int *fds, size_t fd_count) {
    if (fd_count > SBX_MAX_PASSED_FDS) {
        errno = EINVAL;
        return -1;
    }
    struct iovec iov = { .iov_base = (void *)data, .iov_len = length };
    union fd_control control;
    memset(&control, 0, sizeof control);
    struct msghdr mh;
    memset(&mh, 0, sizeof mh);
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    if (fd_count > 0) {
        mh.msg_control = control.buf;
        mh.msg_controllen = CMSG_SPACE(fd_count * sizeof(int));
        struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
        cm->cmsg_level = SOL_SOCKET;
        cm->cmsg_type = SCM_RIGHTS;
        cm->cmsg_len = CMSG_LEN(fd_count * sizeof(int));
        memcpy(CMSG_DATA(cm), fds, fd_count * sizeof(int));
    }
    ssize_t n;
    do {
        n = sendmsg(sock, &mh, MSG_NOSIGNAL);
    } while (n < 0 && errno == EINTR);
    return n;
}

ssize_t sbx_receive_with_fds(int sock, void *data, size_t length, int *fds, size_t max_fds, size_t *fd_count) {
    struct iovec iov = { .iov_base = data, .iov_len = length };
    union fd_control control;
    memset(&control, 0, sizeof control);
    struct msghdr mh;
    memset(&mh, 0, sizeof mh);
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    mh.msg_control = control.buf;
    mh.msg_controllen = sizeof control.buf;
    ssize_t n;
    do {
        n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);
    } while (n < 0 && errno == EINTR);
    *fd_count = 0;
    if (n < 0) return -errno;
    int extra = 0;
    for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm != NULL; cm = CMSG_NXTHDR(&mh, cm)) {
        if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS) continue;
        size_t count = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < count; i++) {
            int fd;
            memcpy(&fd, CMSG_DATA(cm) + i * sizeof(int), sizeof fd);
            if (*fd_count < max_fds) {
                fds[(*fd_count)++] = fd;
            } else {
                close(fd);  // more than the caller takes: never leak them
                extra = 1;
            }
        }
    }
    if ((mh.msg_flags & MSG_CTRUNC) || extra) {
        for (size_t i = 0; i < *fd_count; i++) close(fds[i]);
        *fd_count = 0;
        return -EMSGSIZE;
    }
    return n;
}

int sbx_write_all(int fd, const void *data, size_t length) {
    const char *bytes = data;
    while (length > 0) {
        ssize_t n = write(fd, bytes, length);
        if (n < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        if (n == 0) {
            errno = EIO;
            return -1;
        }
        bytes += n;
        length -= (size_t)n;
    }
    return 0;
}

int sbx_sealed_memfd(const char *name, const void *data, size_t size) {
    int fd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd < 0) return -errno;
    // Sealed, so what the receiver maps is exactly what was written here.
    if (sbx_write_all(fd, data, size) < 0 ||
        fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) < 0) {
        int err = errno;
        close(fd);
        return -err;
    }
    return fd;
}
