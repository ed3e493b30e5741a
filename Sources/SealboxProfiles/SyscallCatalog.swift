import CSealboxSeccomp

/// What a syscall is for, so `sealbox profile explain` and `diff` can say "network: 3 newly
/// allowed" instead of printing 370 names.
public enum SyscallCategory: String, Sendable, Codable, CaseIterable, Comparable {
    case file  // open/read/write/stat, directories, links, xattrs, fds, polling, file events
    case filesystemAdmin = "filesystem-admin"  // mount family, pivot_root, chroot, quotas, swap, file handles
    case network  // sockets
    case process  // fork/clone/exec/wait/exit, kill, prctl, limits, process groups, pidfds
    case memory  // mappings, protection, NUMA, locking, memfd, userfaultfd
    case ipc  // SysV, POSIX mq, pipes, eventfd, futexes
    case signals  // handlers, masks, waiting, signalfd
    case time  // clocks, sleeps, timers
    case scheduling  // priorities, affinity, policies, I/O priority
    case identity  // uids/gids, groups, capabilities
    case namespaces  // unshare, setns
    case tracing  // ptrace, process_vm_*, perf, kcmp, pidfd_getfd
    case system  // kernel, modules, reboot, kexec, syslog, bpf, I/O ports, hostname, accounting
    case keys  // the kernel keyring
    case async  // AIO and io_uring
    case sandboxing  // seccomp, landlock
    case systemInfo = "system-info"  // uname, sysinfo, getrandom, getcpu
    case obsolete  // not implemented by current x86_64 kernels (ENOSYS) or removed
    /// A name the table below does not know (a newer libseccomp); the catalog test keeps this empty
    /// for the libseccomp the project builds with.
    case other

    public static func < (a: SyscallCategory, b: SyscallCategory) -> Bool {
        allCases.firstIndex(of: a)! < allCases.firstIndex(of: b)!
    }
}

/// Facts about syscalls that the profile tools need: category, whether allowing it widens the
/// kernel attack surface or lets code leave the sandbox, and which arguments the kernel reads as
/// 32-bit ints. The table covers every name libseccomp knows for x86_64
/// (`CatalogTests.coversEveryX86_64Syscall` checks it against the installed libseccomp).
public enum SyscallCatalog {
    public static func category(of name: String) -> SyscallCategory {
        table[name] ?? .other
    }

    /// Why allowing `name` is dangerous, or nil if it is not in the list. The list: what breaks
    /// out of a namespace sandbox or reaches kernel code that unprivileged containers normally
    /// cannot (Docker's default profile gates each of these behind a capability or denies it).
    public static func dangerReason(_ name: String) -> String? {
        dangerous[name]
    }

    public static func isDangerous(_ name: String) -> Bool { dangerous[name] != nil }

    /// Every syscall name flagged dangerous.
    public static var dangerousNames: Set<String> { Set(dangerous.keys) }

    /// Every syscall name libseccomp knows on the native architecture, by number.
    public static func nativeSyscalls() -> [String] {
        // x86_64 numbers end below 512 (512...547 are x32 compat numbers, which libseccomp
        // does not give x86_64 names); 1024 leaves room for other architectures and new calls.
        (0..<1024).compactMap { SyscallNames.name(of: Int32($0)) }
    }

    // MARK: - Categories (x86_64, libseccomp 2.5.4)

    static let table: [String: SyscallCategory] = {
        var t: [String: SyscallCategory] = [:]
        func add(_ c: SyscallCategory, _ names: String) {
            for n in names.split(separator: " ") {
                precondition(t[String(n)] == nil, "\(n) categorised twice")
                t[String(n)] = c
            }
        }
        add(.file, """
            read write open close stat fstat lstat poll lseek ioctl pread64 pwrite64 readv writev access select \
            dup dup2 sendfile fcntl flock fsync fdatasync truncate ftruncate getdents getcwd chdir fchdir \
            rename mkdir rmdir creat link unlink symlink readlink chmod fchmod chown fchown lchown umask \
            utime mknod statfs fstatfs sync readahead setxattr lsetxattr fsetxattr getxattr lgetxattr \
            fgetxattr listxattr llistxattr flistxattr removexattr lremovexattr fremovexattr getdents64 \
            fadvise64 epoll_create epoll_wait epoll_ctl utimes inotify_init inotify_add_watch inotify_rm_watch \
            openat mkdirat mknodat fchownat futimesat newfstatat unlinkat renameat linkat symlinkat readlinkat \
            fchmodat faccessat pselect6 ppoll splice tee sync_file_range vmsplice utimensat epoll_pwait \
            fallocate epoll_create1 dup3 inotify_init1 preadv pwritev fanotify_init fanotify_mark syncfs \
            renameat2 copy_file_range preadv2 pwritev2 statx close_range openat2 faccessat2 epoll_pwait2 \
            cachestat fchmodat2
            """)
        add(.filesystemAdmin, """
            pivot_root chroot mount umount2 swapon swapoff quotactl name_to_handle_at open_by_handle_at \
            open_tree move_mount fsopen fsconfig fsmount fspick mount_setattr quotactl_fd
            """)
        add(.network, """
            socket connect accept sendto recvfrom sendmsg recvmsg shutdown bind listen getsockname \
            getpeername socketpair setsockopt getsockopt accept4 recvmmsg sendmmsg
            """)
        add(.process, """
            clone fork vfork execve exit wait4 kill getpid getppid getpgrp setpgid getpgid setsid getsid \
            prctl arch_prctl personality getrlimit setrlimit getrusage times gettid tkill tgkill \
            set_tid_address exit_group waitid set_thread_area get_thread_area prlimit64 execveat \
            pidfd_send_signal pidfd_open clone3 rseq
            """)
        add(.memory, """
            mmap mprotect munmap brk mremap msync mincore madvise mlock munlock mlockall munlockall \
            remap_file_pages mbind set_mempolicy get_mempolicy migrate_pages move_pages memfd_create \
            userfaultfd membarrier mlock2 pkey_mprotect pkey_alloc pkey_free process_madvise memfd_secret \
            process_mrelease set_mempolicy_home_node map_shadow_stack
            """)
        add(.ipc, """
            pipe shmget shmat shmctl shmdt semget semop semctl msgget msgsnd msgrcv msgctl futex \
            semtimedop mq_open mq_unlink mq_timedsend mq_timedreceive mq_notify mq_getsetattr \
            set_robust_list get_robust_list eventfd eventfd2 pipe2 futex_waitv futex_wake futex_wait futex_requeue
            """)
        add(.signals, """
            rt_sigaction rt_sigprocmask rt_sigreturn pause rt_sigpending rt_sigtimedwait rt_sigqueueinfo \
            rt_sigsuspend sigaltstack restart_syscall signalfd signalfd4 rt_tgsigqueueinfo
            """)
        add(.time, """
            nanosleep getitimer alarm setitimer gettimeofday adjtimex settimeofday time timer_create \
            timer_settime timer_gettime timer_getoverrun timer_delete clock_settime clock_gettime \
            clock_getres clock_nanosleep timerfd_create timerfd_settime timerfd_gettime clock_adjtime
            """)
        add(.scheduling, """
            sched_yield getpriority setpriority sched_setparam sched_getparam sched_setscheduler \
            sched_getscheduler sched_get_priority_max sched_get_priority_min sched_rr_get_interval \
            sched_setaffinity sched_getaffinity ioprio_set ioprio_get sched_setattr sched_getattr
            """)
        add(.identity, """
            getuid getgid setuid setgid geteuid getegid setreuid setregid getgroups setgroups setresuid \
            getresuid setresgid getresgid setfsuid setfsgid capget capset
            """)
        add(.namespaces, "unshare setns")
        add(.tracing, "ptrace process_vm_readv process_vm_writev perf_event_open kcmp pidfd_getfd lookup_dcookie")
        add(.system, """
            syslog vhangup modify_ldt acct reboot sethostname setdomainname iopl ioperm init_module \
            delete_module kexec_load finit_module kexec_file_load bpf
            """)
        add(.keys, "add_key request_key keyctl")
        add(.async, """
            io_setup io_destroy io_getevents io_submit io_cancel io_pgetevents io_uring_setup \
            io_uring_enter io_uring_register
            """)
        add(.sandboxing, "seccomp landlock_create_ruleset landlock_add_rule landlock_restrict_self")
        add(.systemInfo, "uname sysinfo sysfs ustat getcpu getrandom")
        add(.obsolete, """
            uselib _sysctl create_module get_kernel_syms query_module nfsservctl getpmsg putpmsg \
            afs_syscall tuxcall security epoll_ctl_old epoll_wait_old vserver
            """)
        return t
    }()

    static let dangerous: [String: String] = {
        var d: [String: String] = [:]
        func add(_ names: String, _ reason: String) {
            for n in names.split(separator: " ") { d[String(n)] = reason }
        }
        add("ptrace process_vm_readv process_vm_writev", "reads and writes other processes' memory and registers")
        add("perf_event_open", "a large kernel surface with a history of privilege escalations; leaks kernel addresses")
        add("mount umount2 pivot_root chroot fsopen fsconfig fsmount fspick move_mount open_tree mount_setattr",
            "changes the filesystem view; with a user namespace, remounts or reveals host paths")
        add("unshare setns", "creates or joins namespaces (a user namespace grants capabilities over it and exposes much more kernel code)")
        add("clone3", "its flags are in memory, where seccomp cannot look, so it can create namespaces like unshare")
        add("bpf", "loads programs into the kernel; a frequent privilege-escalation vector")
        add("userfaultfd", "stalls kernel accesses to user memory at will, turning kernel races into exploits")
        add("keyctl add_key request_key", "the kernel keyring is not namespaced: keys are shared with the host")
        add("kexec_load kexec_file_load", "replaces the running kernel")
        add("init_module finit_module delete_module", "loads or unloads kernel modules")
        add("io_uring_setup io_uring_enter io_uring_register",
            "runs I/O from kernel threads that seccomp does not filter, and has a long exploit history")
        add("open_by_handle_at name_to_handle_at", "opens files by handle, bypassing the mount namespace (the 'shocker' container escape)")
        add("reboot", "restarts or halts the machine")
        add("swapon swapoff", "changes the host's swap")
        add("acct", "turns process accounting on for the host")
        add("syslog", "reads the kernel log (kernel addresses, other tenants' messages)")
        add("iopl ioperm", "gives direct access to I/O ports")
        add("modify_ldt", "a rarely used x86 interface with past kernel exploits")
        add("kcmp pidfd_getfd", "inspects or takes over other processes' kernel objects and file descriptors")
        add("clock_settime settimeofday clock_adjtime adjtimex", "sets the host's clock: time is not namespaced")
        add("quotactl quotactl_fd", "changes disk quotas of host filesystems")
        add("fanotify_init fanotify_mark", "watches (and can block) file access across whole filesystems")
        add("lookup_dcookie uselib create_module query_module get_kernel_syms nfsservctl _sysctl",
            "obsolete interfaces kept only for old binaries, with little scrutiny")
        return d
    }()

    // MARK: - 32-bit arguments

    /// Arguments the kernel declares `int` / `unsigned int` (SYSCALL_DEFINE) among those
    /// profiles commonly filter: the kernel uses only their low 32 bits, while seccomp compares
    /// all 64 (CVE-2019-10063).
    static let int32Arguments: [String: Set<Int>] = [
        "ioctl": [1],  // unsigned int cmd
        "socket": [0, 1, 2], "socketpair": [0, 1, 2],  // int family, type, protocol
        "setsockopt": [1, 2], "getsockopt": [1, 2],  // int level, optname
        "personality": [0],  // unsigned int
        "prctl": [0],  // int option
        "arch_prctl": [0],  // int option
        "fcntl": [1],  // unsigned int cmd
        "flock": [1],  // unsigned int cmd
        "kill": [1], "tkill": [1], "tgkill": [2],  // int sig
        "setns": [1],  // int nstype
        "open": [1], "openat": [2],  // int flags
        "madvise": [2],  // int behavior
        "keyctl": [0],  // int option
        "bpf": [0],  // int cmd
        "seccomp": [0],  // unsigned int op
    ]

    public static func is32BitArgument(syscall: String, index: Int) -> Bool {
        int32Arguments[syscall]?.contains(index) ?? false
    }

    /// How a comparison of a 32-bit argument is bypassed by setting high bits, or nil if it
    /// fails closed. A deny rule must match every value the kernel reads as the denied one; an
    /// allow rule must not match a value whose low 32 bits are denied.
    static func highBitsBypass(op: SeccompOperator, mask: UInt64, denies: Bool) -> String? {
        let high: UInt64 = 0xFFFF_FFFF_0000_0000
        if denies {
            switch op {
            case .eq, .lt, .le:
                return "a caller that sets any of the high 32 bits makes this deny rule miss while the kernel still sees the denied value"
            case .maskedEq where mask & high != 0:
                return "the mask includes the high 32 bits, so a caller that sets one of them makes this deny rule miss"
            default:
                return nil
            }
        }
        switch op {
        case .ne, .gt, .ge:
            return "a denied value with high bits set passes this allow rule, and the kernel then uses the denied low 32 bits"
        default:
            return nil
        }
    }

    // MARK: - Suggestions

    /// The closest known native syscall name to a misspelt one (edit distance ≤ 2), if any.
    static func suggestion(for name: String) -> String? {
        let target = Array(name.utf8)
        var best: (name: String, distance: Int)?
        for candidate in table.keys {
            let d = editDistance(target, Array(candidate.utf8), limit: 2)
            if d <= 2, best.map({ d < $0.distance || (d == $0.distance && candidate < $0.name) }) ?? true {
                best = (candidate, d)
            }
        }
        return best?.name
    }

    /// Levenshtein distance, giving up (returning limit + 1) when it must exceed `limit`.
    static func editDistance(_ a: [UInt8], _ b: [UInt8], limit: Int) -> Int {
        if abs(a.count - b.count) > limit { return limit + 1 }
        var previous = Array(0...b.count)
        for i in 1...max(a.count, 1) where !a.isEmpty {
            var current = [i] + Array(repeating: 0, count: b.count)
            for j in 1...max(b.count, 1) where !b.isEmpty {
                current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
            }
            if current.min()! > limit { return limit + 1 }
            previous = current
        }
        return previous[b.count]
    }
}
