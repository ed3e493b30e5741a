// Session workspaces: a detached tmpfs made with the new mount API, filled and read by the
// parent through a directory fd, attached in the jail by the child (SBX_FS_MOVE_MOUNT).
//
// Why not a host directory bound into the jail: a bind has no size limit of its own (the
// jail could fill the host disk), and why not mount a tmpfs on the host: it would show in the
// host's mount table and outlive a crashed sealbox. A detached mount is in no namespace until
// the child attaches it; when the jail's namespace dies the mount is detached again, and the
// parent's fd keeps it readable until closed, so nothing ever needs unmounting.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "missing_defs.h"
#include "sbx_spawn.h"

// uapi/linux/mount.h values, prefixed so they never clash with a libc that has them.
enum {
    SBX_FSOPEN_CLOEXEC = 0x1,
    SBX_FSCONFIG_SET_STRING = 1,
    SBX_FSCONFIG_CMD_CREATE = 6,
    SBX_FSMOUNT_CLOEXEC = 0x1,
};

static int fsconfig_string(int fsfd, const char *key, const char *value) {
    return (int)syscall(__NR_fsconfig, fsfd, SBX_FSCONFIG_SET_STRING, key, value, 0);
}

int sbx_workspace_create(uint64_t size_bytes, uint64_t max_inodes, uint32_t uid, uint32_t gid,
                         const char **stage) {
    *stage = "fsopen tmpfs";
    int fsfd = (int)syscall(__NR_fsopen, "tmpfs", SBX_FSOPEN_CLOEXEC);
    if (fsfd < 0) return -errno;

    char size[32], inodes[32], uid_text[16], gid_text[16];
    snprintf(size, sizeof size, "%" PRIu64, size_bytes);
    snprintf(inodes, sizeof inodes, "%" PRIu64, max_inodes);
    snprintf(uid_text, sizeof uid_text, "%" PRIu32, uid);
    snprintf(gid_text, sizeof gid_text, "%" PRIu32, gid);
    const char *options[][2] = {
        { "size", size }, { "nr_inodes", inodes }, { "mode", "0755" }, { "uid", uid_text }, { "gid", gid_text },
    };
    for (size_t i = 0; i < sizeof options / sizeof options[0]; i++) {
        if (fsconfig_string(fsfd, options[i][0], options[i][1]) < 0) {
            int err = errno;
            *stage = "fsconfig tmpfs option";
            close(fsfd);
            return -err;
        }
    }
    if (syscall(__NR_fsconfig, fsfd, SBX_FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0) {
        int err = errno;
        *stage = "fsconfig create";
        close(fsfd);
        return -err;
    }
    int mntfd = (int)syscall(__NR_fsmount, fsfd, SBX_FSMOUNT_CLOEXEC, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV);
    int err = errno;
    close(fsfd);  // the mount holds the superblock now
    if (mntfd < 0) {
        *stage = "fsmount";
        return -err;
    }
    *stage = NULL;
    return mntfd;
}
