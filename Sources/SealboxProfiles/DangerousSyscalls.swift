/// Syscalls that widen the jail's attack surface or reach outside it: a profile that allows
/// one deserves a second look. `profile learn` never learns them (they are denied while
/// recording and reported); `profile explain` and `diff` flag them.
public enum DangerousSyscalls {
    public static let names: Set<String> = [
        // tracing other processes, reading their memory
        "ptrace", "process_vm_readv", "process_vm_writev", "kcmp", "pidfd_getfd", "perf_event_open",
        // kernel programs and page-fault handling from user space (exploit staples)
        "bpf", "userfaultfd",
        // mounts and the root
        "mount", "umount2", "pivot_root", "chroot", "fsopen", "fsconfig", "fsmount", "fspick",
        "move_mount", "open_tree", "open_tree_attr", "mount_setattr",
        // namespaces
        "unshare", "setns",
        // the kernel keyring
        "keyctl", "add_key", "request_key",
        // kernel images and modules, power
        "kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module", "reboot",
        "create_module", "query_module", "get_kernel_syms", "uselib",
        // system-wide state
        "swapon", "swapoff", "acct", "quotactl", "quotactl_fd", "syslog", "settimeofday",
        "clock_settime", "clock_adjtime", "adjtimex", "sethostname", "setdomainname", "vhangup",
        "nfsservctl", "_sysctl", "lookup_dcookie",
        // io_uring: a second syscall surface that seccomp cannot see into
        "io_uring_setup", "io_uring_enter", "io_uring_register",
        // file handles bypass path checks (the "shocker" container escape)
        "open_by_handle_at", "name_to_handle_at",
        // raw hardware and segment access
        "iopl", "ioperm", "modify_ldt",
        // whole-filesystem event monitoring
        "fanotify_init", "fanotify_mark",
    ]
}
