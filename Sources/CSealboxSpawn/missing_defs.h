// Kernel constants and structs that older libc headers lack, in one place (swift-nio CNIOLinux style).
#ifndef SBX_MISSING_DEFS_H
#define SBX_MISSING_DEFS_H

#include <stdint.h>
#include <linux/types.h>
#include <sys/syscall.h>

#ifndef CLONE_PIDFD
#define CLONE_PIDFD 0x00001000
#endif
#ifndef CLONE_NEWCGROUP
#define CLONE_NEWCGROUP 0x02000000
#endif
#ifndef CLONE_CLEAR_SIGHAND
#define CLONE_CLEAR_SIGHAND 0x100000000ULL
#endif
#ifndef CLONE_INTO_CGROUP
#define CLONE_INTO_CGROUP 0x200000000ULL
#endif
#ifndef __NR_clone3
#define __NR_clone3 435
#endif
#ifndef __NR_pidfd_send_signal
#define __NR_pidfd_send_signal 424
#endif
#ifndef __NR_pidfd_open
#define __NR_pidfd_open 434
#endif
// pidfd_open(2) on a thread id rather than a thread-group leader (Linux 6.9).
#ifndef PIDFD_THREAD
#define PIDFD_THREAD 0x80
#endif
#ifndef __NR_pidfd_getfd
#define __NR_pidfd_getfd 438
#endif
#ifndef __NR_close_range
#define __NR_close_range 436
#endif
#ifndef __NR_mount_setattr
#define __NR_mount_setattr 442
#endif
#ifndef __NR_pivot_root
#define __NR_pivot_root 155
#endif
#ifndef __NR_move_mount
#define __NR_move_mount 429
#endif
#ifndef __NR_fsopen
#define __NR_fsopen 430
#endif
#ifndef __NR_fsconfig
#define __NR_fsconfig 431
#endif
#ifndef __NR_fsmount
#define __NR_fsmount 432
#endif
#define SBX_MOVE_MOUNT_F_EMPTY_PATH 0x00000004
#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif
#ifndef P_PIDFD
#define P_PIDFD 3
#endif

/// struct clone_args as of Linux 5.7 (CLONE_INTO_CGROUP), the size we pass to clone3.
struct sbx_clone_args {
    uint64_t flags;
    uint64_t pidfd;
    uint64_t child_tid;
    uint64_t parent_tid;
    uint64_t exit_signal;
    uint64_t stack;
    uint64_t stack_size;
    uint64_t tls;
    uint64_t set_tid;
    uint64_t set_tid_size;
    uint64_t cgroup;
};
// CLONE_ARGS_SIZE_VER2 in include/uapi/linux/sched.h.
_Static_assert(sizeof(struct sbx_clone_args) == 88, "clone_args v2 layout");

#ifndef MOUNT_ATTR_RDONLY
#define MOUNT_ATTR_RDONLY 0x00000001
#define MOUNT_ATTR_NOSUID 0x00000002
#define MOUNT_ATTR_NODEV 0x00000004
#define MOUNT_ATTR_NOEXEC 0x00000008
#endif
#ifndef AT_RECURSIVE
#define AT_RECURSIVE 0x8000
#endif

/// struct mount_attr (MOUNT_ATTR_SIZE_VER0) for mount_setattr(2).
struct sbx_mount_attr {
    uint64_t attr_set;
    uint64_t attr_clr;
    uint64_t propagation;
    uint64_t userns_fd;
};
_Static_assert(sizeof(struct sbx_mount_attr) == 32, "mount_attr v0 layout");

// securebits (include/uapi/linux/securebits.h)
#define SBX_SECBIT_NOROOT (1 << 0)
#define SBX_SECBIT_NOROOT_LOCKED (1 << 1)
#define SBX_SECBIT_NO_SETUID_FIXUP (1 << 2)
#define SBX_SECBIT_NO_SETUID_FIXUP_LOCKED (1 << 3)
#define SBX_SECBIT_KEEP_CAPS_LOCKED (1 << 5)
#define SBX_SECBIT_NO_CAP_AMBIENT_RAISE (1 << 6)
#define SBX_SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED (1 << 7)

#endif
