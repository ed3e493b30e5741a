// sealbox-probe: containment probe in the style of bubblewrap's tests/try-syscall.c.
//
// Usage: sealbox-probe NAME...   prints "NAME ok" or "NAME ERRNO" per probe, e.g. "ptrace EPERM".
// Every call uses arguments that make it fail harmlessly *if* the filter lets it through
// (an invalid pid, a NULL pointer, a bad fd), so "allowed" and "filtered" differ in the errno
// and nothing real happens either way. Where a denial and a missing capability give the same
// errno, the run's `violations` list (seccomp user notification) tells them apart.
#define _GNU_SOURCE
#include <errno.h>
#include <linux/sched.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef AF_VSOCK
#define AF_VSOCK 40
#endif

static const char *errno_name(int e) {
    switch (e) {
    case EPERM: return "EPERM";
    case ENOENT: return "ENOENT";
    case ESRCH: return "ESRCH";
    case EBADF: return "EBADF";
    case EFAULT: return "EFAULT";
    case EINVAL: return "EINVAL";
    case ENOSYS: return "ENOSYS";
    case EACCES: return "EACCES";
    case ENOTTY: return "ENOTTY";
    case EAFNOSUPPORT: return "EAFNOSUPPORT";
    case EOPNOTSUPP: return "EOPNOTSUPP";
    case EROFS: return "EROFS";
    case EBUSY: return "EBUSY";
    case ECONNREFUSED: return "ECONNREFUSED";
    case ENETUNREACH: return "ENETUNREACH";
    case EUSERS: return "EUSERS";
    case EAGAIN: return "EAGAIN";
    case ENOSPC: return "ENOSPC";
    default: {
        static char buf[32];
        snprintf(buf, sizeof buf, "errno%d", e);
        return buf;
    }
    }
}

/// clone with namespace flags through the raw syscall (glibc's clone() needs a stack).
static long probe_clone_newuser(void) {
    long pid = syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0);
    if (pid == 0) _exit(0);
    if (pid > 0) waitpid((pid_t)pid, NULL, 0);
    return pid;
}

/// A new process the way programs make one (glibc fork: clone without CLONE_THREAD).
static long probe_fork(void) {
    pid_t pid = fork();
    if (pid == 0) _exit(0);
    if (pid > 0) waitpid(pid, NULL, 0);
    return pid;
}

#if defined(__x86_64__)
/// A syscall through the i386 entry point (`int $0x80`, AUDIT_ARCH_I386 for seccomp), as a
/// 32-bit program or hand-written assembly makes it. The kernel returns -errno in eax.
static long probe_i386(long nr, long a0, long a1) {
    long ret;
    __asm__ volatile("int $0x80" : "=a"(ret) : "a"(nr), "b"(a0), "c"(a1) : "memory", "cc", "r8", "r9", "r10", "r11");
    ret = (int)ret;
    if (ret < 0 && ret > -4096) {
        errno = (int)-ret;
        return -1;
    }
    return ret;
}
#endif

static void *thread_main(void *arg) { return arg; }

/// A thread (glibc: clone3, then clone with CLONE_THREAD when clone3 says ENOSYS).
static long probe_thread(void) {
    pthread_t t;
    int rc = pthread_create(&t, NULL, thread_main, NULL);
    if (rc != 0) {
        errno = rc;
        return -1;
    }
    pthread_join(t, NULL);
    return 0;
}

static long probe(const char *name) {
    char c = 'x';
    if (!strcmp(name, "getpid")) return syscall(SYS_getpid);
    if (!strcmp(name, "ptrace")) return syscall(SYS_ptrace, 16 /* PTRACE_ATTACH */, 0x7ffffff0, 0, 0);
    if (!strcmp(name, "mount")) return syscall(SYS_mount, "/nonexistent-sbx", "/nonexistent-sbx", NULL, 4096 /* MS_BIND */, NULL);
    if (!strcmp(name, "umount2")) return syscall(SYS_umount2, "/nonexistent-sbx", 0);
    if (!strcmp(name, "pivot_root")) return syscall(SYS_pivot_root, "/nonexistent-sbx", "/nonexistent-sbx");
    if (!strcmp(name, "chroot")) return syscall(SYS_chroot, "/nonexistent-sbx");
    if (!strcmp(name, "fsopen")) return syscall(430 /* fsopen */, NULL, 0);
    if (!strcmp(name, "open_tree")) return syscall(428 /* open_tree */, -1, NULL, 0);
    if (!strcmp(name, "move_mount")) return syscall(429 /* move_mount */, -1, NULL, -1, NULL, 0);
    if (!strcmp(name, "mount_setattr")) return syscall(442 /* mount_setattr */, -1, NULL, 0, NULL, 0);
    if (!strcmp(name, "unshare")) return syscall(SYS_unshare, CLONE_NEWUSER);
    if (!strcmp(name, "setns")) return syscall(SYS_setns, -1, 0);
    if (!strcmp(name, "clone_newuser")) return probe_clone_newuser();
    if (!strcmp(name, "clone3")) return syscall(435 /* clone3 */, NULL, 0);
    if (!strcmp(name, "keyctl")) return syscall(SYS_keyctl, 0 /* GET_KEYRING_ID */, -3 /* session */, 0);
    if (!strcmp(name, "add_key")) return syscall(SYS_add_key, NULL, NULL, NULL, 0, 0);
    if (!strcmp(name, "request_key")) return syscall(SYS_request_key, NULL, NULL, NULL, 0);
    if (!strcmp(name, "bpf")) return syscall(SYS_bpf, 5 /* BPF_PROG_LOAD */, NULL, 0);
    if (!strcmp(name, "perf_event_open")) return syscall(SYS_perf_event_open, NULL, 0, -1, -1, 0);
    if (!strcmp(name, "userfaultfd")) return syscall(SYS_userfaultfd, 0x7fffffff);
    if (!strcmp(name, "io_uring_setup")) return syscall(425 /* io_uring_setup */, 0, NULL);
    if (!strcmp(name, "kexec_load")) return syscall(SYS_kexec_load, 0, 0, NULL, 0xffffffff);
    if (!strcmp(name, "init_module")) return syscall(SYS_init_module, NULL, 0, NULL);
    if (!strcmp(name, "reboot")) return syscall(SYS_reboot, 0, 0, 0, NULL);  // bad magic
    if (!strcmp(name, "swapon")) return syscall(SYS_swapon, NULL, 0);
    if (!strcmp(name, "clock_settime")) return syscall(SYS_clock_settime, 0, NULL);
    if (!strcmp(name, "adjtimex")) return syscall(SYS_adjtimex, NULL);
    if (!strcmp(name, "open_by_handle_at")) return syscall(SYS_open_by_handle_at, -1, NULL, 0);
    if (!strcmp(name, "ioctl_tiocsti")) return syscall(SYS_ioctl, 0, 0x5412UL, &c);
    if (!strcmp(name, "ioctl_tiocsti_high_bits")) return syscall(SYS_ioctl, 0, 0x100005412UL, &c);
    if (!strcmp(name, "ioctl_tioclinux")) return syscall(SYS_ioctl, 0, 0x541CUL, &c);
    if (!strcmp(name, "ioctl_fionread")) return syscall(SYS_ioctl, 0, 0x541BUL, &c);
    if (!strcmp(name, "socket_packet")) return syscall(SYS_socket, 17 /* AF_PACKET */, SOCK_RAW, 0);
    if (!strcmp(name, "socket_netlink")) return syscall(SYS_socket, 16 /* AF_NETLINK */, SOCK_RAW, 0);
    if (!strcmp(name, "socket_vsock")) return syscall(SYS_socket, AF_VSOCK, SOCK_STREAM, 0);
    if (!strcmp(name, "socket_unix")) return syscall(SYS_socket, AF_UNIX, SOCK_STREAM, 0);
    if (!strcmp(name, "socket_inet")) return syscall(SYS_socket, AF_INET, SOCK_STREAM, 0);
    if (!strcmp(name, "socket_inet6")) return syscall(SYS_socket, AF_INET6, SOCK_DGRAM, 0);
    if (!strcmp(name, "socket_netlink_high_bits")) return syscall(SYS_socket, 0x100000010UL /* AF_NETLINK | 1<<32 */, SOCK_RAW, 0);
    if (!strcmp(name, "fork")) return probe_fork();  // glibc's fork, i.e. clone(SIGCHLD|...)
    if (!strcmp(name, "thread")) return probe_thread();
#if defined(__x86_64__)
    // Other ABIs: i386 getpid (20), getuid (24) and ptrace (26, PTRACE_ATTACH to no such pid)
    // through int 0x80; x32 getpid (the x86_64 number with bit 30 set). The kernel here has no
    // x32 ABI (ENOSYS unfiltered).
    if (!strcmp(name, "i386_getpid")) return probe_i386(20, 0, 0);
    if (!strcmp(name, "i386_getuid")) return probe_i386(24, 0, 0);
    if (!strcmp(name, "i386_ptrace")) return probe_i386(26, 16 /* PTRACE_ATTACH */, 0x7ffffff0);
    if (!strcmp(name, "x32_getpid")) return syscall(0x40000000L | SYS_getpid);
#endif
    errno = 0;
    return -2;
}

int main(int argc, char **argv) {
    int unknown = 0;
    for (int i = 1; i < argc; i++) {
        errno = 0;
        long rc = probe(argv[i]);
        if (rc == -2 && errno == 0) {
            printf("%s unknown-probe\n", argv[i]);
            unknown = 1;
        } else if (rc < 0) {
            printf("%s %s\n", argv[i], errno_name(errno));
        } else {
            printf("%s ok\n", argv[i]);
        }
        fflush(stdout);
    }
    return unknown ? 2 : 0;
}
