// Files of a live jail's /work, reached by sealbox from outside the jail through a directory
// descriptor on it. Every path a tenant names is resolved beneath that descriptor by the
// kernel (openat2 with RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS |
// RESOLVE_NO_XDEV): "..", an absolute path, a symlink or a mount point anywhere on the way
// fails with EXDEV or ELOOP instead of leading out of /work, whatever the jail planted there
// and however it changes it meanwhile.
//
// Every change there (create, make a directory, rename, remove) is made with the jail user's
// host ids as the thread's filesystem ids (setfsuid/setfsgid, per thread, raw syscalls): a
// pooled jail's /work is a tmpfs of the jail's user namespace, where host root is unmapped and
// the kernel refuses its changes (EOVERFLOW); and so sealbox can do there only what the jail's
// user could, and what it creates belongs to that user.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "missing_defs.h"
#include "sbx_spawn.h"

#define SBX_BENEATH (RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV)

int sbx_open_beneath(int dir_fd, const char *path, int flags, uint32_t mode) {
    struct open_how how;
    memset(&how, 0, sizeof how);
    // openat2 refuses any flag O_PATH ignores (EINVAL), O_NOCTTY among them.
    how.flags = (uint64_t)(flags | O_CLOEXEC | ((flags & O_PATH) ? 0 : O_NOCTTY));
    how.mode = (flags & (O_CREAT | O_TMPFILE)) ? mode : 0;
    how.resolve = SBX_BENEATH;
    long fd;
    do {
        fd = syscall(SYS_openat2, dir_fd, path, &how, sizeof how);
    } while (fd < 0 && (errno == EINTR || errno == EAGAIN));  // EAGAIN: a rename raced the walk
    return fd < 0 ? -errno : (int)fd;
}

/// The calling thread's filesystem ids become uid:gid for `body`, then what they were.
struct fs_ids {
    int uid, gid;
};

static struct fs_ids become(uint32_t uid, uint32_t gid) {
    // setfsuid/setfsgid return the previous value (and cannot report failure): read back.
    struct fs_ids before = { .gid = (int)syscall(SYS_setfsgid, gid), .uid = (int)syscall(SYS_setfsuid, uid) };
    return before;
}

static void restore(struct fs_ids before) {
    syscall(SYS_setfsuid, before.uid);
    syscall(SYS_setfsgid, before.gid);
}

static int check_ids(uint32_t uid, uint32_t gid) {
    // A second call returns the current value: it must be what was asked for.
    if ((uint32_t)syscall(SYS_setfsuid, uid) != uid || (uint32_t)syscall(SYS_setfsgid, gid) != gid) return -EPERM;
    return 0;
}

int sbx_create_beneath(int dir_fd, const char *path, int flags, uint32_t mode, uint32_t uid, uint32_t gid) {
    struct fs_ids before = become(uid, gid);
    int rc = check_ids(uid, gid);
    if (rc == 0) rc = sbx_open_beneath(dir_fd, path, flags | O_CREAT, mode);
    restore(before);
    return rc;
}

int sbx_mkdir_in(int parent_fd, const char *name, uint32_t mode, uint32_t uid, uint32_t gid) {
    if (strchr(name, '/') != NULL || name[0] == 0) return -EINVAL;
    struct fs_ids before = become(uid, gid);
    int rc = check_ids(uid, gid);
    if (rc == 0 && mkdirat(parent_fd, name, (mode_t)mode) < 0) rc = -errno;
    restore(before);
    return rc;
}

int sbx_rename_in(int parent_fd, const char *from, const char *to, uint32_t uid, uint32_t gid) {
    if (strchr(from, '/') != NULL || strchr(to, '/') != NULL) return -EINVAL;
    struct fs_ids before = become(uid, gid);
    int rc = check_ids(uid, gid);
    if (rc == 0 && renameat(parent_fd, from, parent_fd, to) < 0) rc = -errno;
    restore(before);
    return rc;
}

int sbx_unlink_in(int parent_fd, const char *name, int directory, uint32_t uid, uint32_t gid) {
    if (strchr(name, '/') != NULL || name[0] == 0) return -EINVAL;
    struct fs_ids before = become(uid, gid);
    int rc = check_ids(uid, gid);
    if (rc == 0 && unlinkat(parent_fd, name, directory ? AT_REMOVEDIR : 0) < 0) rc = -errno;
    restore(before);
    return rc;
}
