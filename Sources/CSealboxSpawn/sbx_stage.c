#include "sbx_spawn.h"

const char *sbx_stage_name(int stage) {
    switch (stage) {
    case SBX_STAGE_NONE: return "none";
    case SBX_STAGE_PIPE: return "pipe";
    case SBX_STAGE_CLONE3: return "clone3";
    case SBX_STAGE_SETGROUPS_DENY: return "write /proc/PID/setgroups";
    case SBX_STAGE_UID_MAP: return "write uid_map";
    case SBX_STAGE_GID_MAP: return "write gid_map";
    case SBX_STAGE_CGROUP_PROCS: return "write cgroup.procs";
    case SBX_STAGE_RELEASE_CHILD: return "release child";
    case SBX_STAGE_SETUP_TIMEOUT: return "child setup timed out";
    case SBX_STAGE_RECEIVE_LISTENER: return "receive seccomp listener";
    case SBX_STAGE_CHILD_VANISHED: return "child exited during setup";
    case SBX_STAGE_SIGMASK: return "sigprocmask";
    case SBX_STAGE_PDEATHSIG: return "prctl PR_SET_PDEATHSIG";
    case SBX_STAGE_WAIT_PARENT: return "wait for parent";
    case SBX_STAGE_UNSHARE_CGROUP: return "unshare cgroup namespace";
    case SBX_STAGE_SETSID: return "setsid";
    case SBX_STAGE_SETGROUPS: return "setgroups";
    case SBX_STAGE_SETRESGID: return "setresgid";
    case SBX_STAGE_KEEPCAPS: return "prctl PR_SET_KEEPCAPS";
    case SBX_STAGE_SETRESUID: return "setresuid";
    case SBX_STAGE_CAPSET_SETUP: return "capset (setup)";
    case SBX_STAGE_MOUNT_PRIVATE: return "mount / private";
    case SBX_STAGE_MOUNT_ROOT_TMPFS: return "mount root tmpfs";
    case SBX_STAGE_MKDIR: return "mkdir";
    case SBX_STAGE_MKFILE: return "create mount point";
    case SBX_STAGE_SYMLINK: return "symlink";
    case SBX_STAGE_BIND: return "bind mount";
    case SBX_STAGE_BIND_SETATTR: return "mount_setattr";
    case SBX_STAGE_MOUNT_TMPFS: return "mount tmpfs";
    case SBX_STAGE_MOUNT_PROC: return "mount /proc";
    case SBX_STAGE_WRITE_FILE: return "write file";
    case SBX_STAGE_CHDIR_NEWROOT: return "chdir new root";
    case SBX_STAGE_PIVOT_ROOT: return "pivot_root";
    case SBX_STAGE_UMOUNT_OLDROOT: return "umount old root";
    case SBX_STAGE_REMOUNT_ROOT_RO: return "remount / read-only";
    case SBX_STAGE_CHDIR_WORKDIR: return "chdir workdir";
    case SBX_STAGE_LOOPBACK_UP: return "bring up lo";
    case SBX_STAGE_SETHOSTNAME: return "sethostname";
    case SBX_STAGE_RLIMIT: return "setrlimit";
    case SBX_STAGE_STDIO: return "dup2 stdio";
    case SBX_STAGE_SECUREBITS: return "prctl PR_SET_SECUREBITS";
    case SBX_STAGE_CAPBSET_DROP: return "prctl PR_CAPBSET_DROP";
    case SBX_STAGE_CAP_AMBIENT_CLEAR: return "prctl PR_CAP_AMBIENT_CLEAR_ALL";
    case SBX_STAGE_CAPSET_DROP: return "capset (drop all)";
    case SBX_STAGE_NO_NEW_PRIVS: return "prctl PR_SET_NO_NEW_PRIVS";
    case SBX_STAGE_CLOSE_FDS: return "close_range";
    case SBX_STAGE_SECCOMP: return "seccomp";
    case SBX_STAGE_SECCOMP_HANDOFF: return "seccomp listener handoff";
    case SBX_STAGE_EXECVE: return "execve";
    case SBX_STAGE_FORK_PROGRAM: return "fork program";
    case SBX_STAGE_MOVE_MOUNT: return "attach workspace (move_mount)";
    case SBX_STAGE_ACTIVATE: return "hand a prepared jail its task";
    case SBX_STAGE_MOUNT_DEVPTS: return "mount devpts";
    default: return "unknown stage";
    }
}
