// sbx_seccomp.h — parent-side seccomp helpers for sealbox.
//
// PARENT SIDE ONLY. Everything here may allocate, take locks and call libseccomp, so none of it
// may run in a forked/cloned child of the (multi-threaded) sealbox process. The jail child only
// *installs* the bytes produced here, with a raw seccomp(2) call in CSealboxSpawn (nsjail does the
// same split: compile in the parent, install in the child).
//
// The rule-building loop lives in Swift (SealboxProfiles/SeccompCompiler.swift); this header is a
// thin, checked wrapper around libseccomp. Every fallible call returns 0 or a negative errno and
// writes "stage: reason" into the caller's `err` buffer.
//
// The public header deliberately does not include <seccomp.h>: callers see only libc types.

#ifndef SBX_SECCOMP_H
#define SBX_SECCOMP_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// Suggested size of the `err` buffers passed to the functions below.
#define SBX_SECCOMP_ERR_LEN 256

/// What libseccomp's name resolution returns for a name it does not know on any architecture.
#define SBX_SECCOMP_NR_ERROR (-1)

// MARK: - Actions and operators

/// Filter actions sealbox supports. SBX_ACT_NOTIFY is internal (violation tracking).
enum sbx_seccomp_action_kind {
    SBX_ACT_ALLOW = 0,
    SBX_ACT_ERRNO = 1,        // data = errno returned to the caller
    SBX_ACT_KILL_THREAD = 2,  // OCI "SCMP_ACT_KILL" means this one (libseccomp's SCMP_ACT_KILL)
    SBX_ACT_KILL_PROCESS = 3,
    SBX_ACT_TRAP = 4,
    SBX_ACT_LOG = 5,
    SBX_ACT_NOTIFY = 6,
};

/// Comparison operators; values equal libseccomp's `enum scmp_compare` (checked in the .c file).
enum sbx_seccomp_op {
    SBX_CMP_NE = 1,
    SBX_CMP_LT = 2,
    SBX_CMP_LE = 3,
    SBX_CMP_EQ = 4,
    SBX_CMP_GE = 5,
    SBX_CMP_GT = 6,
    SBX_CMP_MASKED_EQ = 7,    // (arg & datum_a) == datum_b
};

/// One argument comparison of a rule (mirrors `struct scmp_arg_cmp`).
struct sbx_seccomp_cmp {
    uint32_t arg;      // 0...5
    uint32_t op;       // enum sbx_seccomp_op
    uint64_t datum_a;  // the value; for MASKED_EQ the mask
    uint64_t datum_b;  // for MASKED_EQ the value compared after masking; otherwise unused
};

/// The raw 32-bit filter action for `kind` (+ errno `data` for SBX_ACT_ERRNO), as libseccomp
/// defines it. Returns 0xFFFFFFFF for an unknown kind.
uint32_t sbx_seccomp_action(enum sbx_seccomp_action_kind kind, uint16_t data);

// MARK: - Filter context

/// Opaque wrapper around a libseccomp `scmp_filter_ctx`. Not thread-safe; use one per compile.
typedef struct sbx_seccomp_ctx sbx_seccomp_ctx;

/// Creates a filter for the native architecture with `default_action`, and sets the action taken
/// for syscalls made with an architecture that is not in the filter (`bad_arch_action`).
int sbx_seccomp_ctx_create(uint32_t default_action, uint32_t bad_arch_action,
                           sbx_seccomp_ctx *_Nullable *_Nonnull out,
                           char *_Nonnull err, size_t err_len);

void sbx_seccomp_ctx_release(sbx_seccomp_ctx *_Nullable ctx);

/// Adds an architecture (token from sbx_seccomp_arch_token). Adding one that is already present
/// (e.g. the native one) succeeds.
int sbx_seccomp_ctx_add_arch(sbx_seccomp_ctx *_Nonnull ctx, uint32_t arch_token,
                             char *_Nonnull err, size_t err_len);

/// Adds one rule (seccomp_rule_add_array: libseccomp translates the syscall for every arch in the
/// filter and silently skips arches on which it does not exist).
int sbx_seccomp_ctx_add_rule(sbx_seccomp_ctx *_Nonnull ctx, uint32_t action, int syscall_nr,
                             const struct sbx_seccomp_cmp *_Nullable cmps, unsigned int cmp_count,
                             char *_Nonnull err, size_t err_len);

/// Exports the filter as a raw `struct sock_filter` array. On success `*out` is a malloc'd buffer
/// of `*out_len` bytes that the caller frees with sbx_seccomp_free.
int sbx_seccomp_ctx_export_bpf(sbx_seccomp_ctx *_Nonnull ctx,
                               uint8_t *_Nullable *_Nonnull out, size_t *_Nonnull out_len,
                               char *_Nonnull err, size_t err_len);

/// Exports libseccomp's human-readable pseudo filter code (for debugging), NUL-terminated,
/// malloc'd; free with sbx_seccomp_free.
int sbx_seccomp_ctx_export_pfc(sbx_seccomp_ctx *_Nonnull ctx, char *_Nullable *_Nonnull out,
                               char *_Nonnull err, size_t err_len);

void sbx_seccomp_free(void *_Nullable buffer);

// MARK: - Names and numbers

/// libseccomp's token for the native architecture (an AUDIT_ARCH_* value).
uint32_t sbx_seccomp_arch_native(void);

/// Token for a libseccomp architecture name ("x86_64", "x86", "x32", "aarch64", "arm", ...),
/// or 0 if libseccomp does not know it.
uint32_t sbx_seccomp_arch_token(const char *_Nonnull name);

/// Syscall number on the native architecture, exactly as libseccomp resolves it:
/// >= 0 a real number; < -1 a libseccomp pseudo number (the syscall exists on some other
/// architecture but not on this one); SBX_SECCOMP_NR_ERROR if the name is unknown everywhere.
int sbx_seccomp_syscall_resolve(const char *_Nonnull name);

/// Same, for a given architecture token.
int sbx_seccomp_syscall_resolve_arch(uint32_t arch_token, const char *_Nonnull name);

/// Writes the name of native syscall `nr` into `buf`. Returns 0, -ENOENT if unknown, -ERANGE if
/// `buf` is too small.
int sbx_seccomp_syscall_name(int nr, char *_Nonnull buf, size_t buf_len);
/// Same for syscall `nr` of architecture `arch_token` (an AUDIT_ARCH_* value, as in a seccomp
/// notification), e.g. an i386 call made through int 0x80.
int sbx_seccomp_syscall_name_arch(uint32_t arch_token, int nr, char *_Nonnull buf, size_t buf_len);

/// The libseccomp library version in use (major * 10000 + minor * 100 + micro).
unsigned int sbx_seccomp_library_version(void);

// MARK: - Self-test harness (test support)

enum sbx_seccomp_selftest_abi {
    SBX_SELFTEST_ABI_NATIVE = 0,  // syscall(2)
    SBX_SELFTEST_ABI_I386 = 1,    // `int $0x80` on x86_64 (AUDIT_ARCH_I386); -ENOSYS elsewhere
};

/// Where the child failed before it could run the probe (sbx_seccomp_selftest_result.setup_stage).
enum sbx_seccomp_selftest_stage {
    SBX_SELFTEST_OK = 0,
    SBX_SELFTEST_SOCKETPAIR = 1,
    SBX_SELFTEST_FORK = 2,
    SBX_SELFTEST_CHILD_STDIO = 3,
    SBX_SELFTEST_CHILD_NO_NEW_PRIVS = 4,
    SBX_SELFTEST_CHILD_INSTALL = 5,
    SBX_SELFTEST_CHILD_EXEC = 6,
    SBX_SELFTEST_PIDFD = 7,
    SBX_SELFTEST_GETFD = 8,
    SBX_SELFTEST_WAIT = 9,
};

struct sbx_seccomp_selftest_req {
    /// Raw `struct sock_filter` array, or NULL to run the probe without a filter (a baseline).
    const void *_Nullable prog;
    size_t prog_len;
    /// Install with SECCOMP_FILTER_FLAG_NEW_LISTENER and answer every notification with
    /// `-answer_errno`, recording the syscall numbers (for SECCOMP_RET_USER_NOTIF filters).
    int use_listener;
    int answer_errno;
    /// Syscall probe (when `path` is NULL): the child calls nr(args) and exits with the errno it
    /// got, or 0 on success.
    int abi;
    long nr;
    unsigned long args[6];
    /// Exec probe (when `path` is non-NULL): the child execs path/argv/envp with stdio on
    /// /dev/null and the result is the program's exit status.
    const char *_Nullable path;
    char *const _Nullable *_Nullable argv;
    char *const _Nullable *_Nullable envp;
    /// The child is SIGKILLed after this many milliseconds (<= 0: 10 s).
    int timeout_ms;
};

#define SBX_SELFTEST_MAX_NOTIFIED 128

struct sbx_seccomp_selftest_result {
    int setup_stage;   // enum sbx_seccomp_selftest_stage; non-zero = harness failure, not a verdict
    int setup_errno;
    int exited;        // WIFEXITED
    int exit_code;     // syscall probe: the errno seen (0 = the call succeeded)
    int signaled;      // WIFSIGNALED (e.g. SIGSYS from a KILL action)
    int signal_number;
    int timed_out;
    int notified_count;                          // notifications answered (listener mode)
    int notified_nr[SBX_SELFTEST_MAX_NOTIFIED];  // their syscall numbers (first N)
    uint32_t notified_arch[SBX_SELFTEST_MAX_NOTIFIED];  // and the AUDIT_ARCH_* they came with
};

/// Forks a child that resets its signal mask and dispositions (a libdispatch worker forks with
/// nearly every signal blocked, and that survives execve), sets PR_SET_NO_NEW_PRIVS, installs
/// `prog` with seccomp(2) and runs the probe; the parent waits (and answers notifications in
/// listener mode). The child makes only raw syscalls after fork. Returns 0 when a verdict was
/// obtained (see `res`), otherwise a negative errno with `res->setup_stage` set.
int sbx_seccomp_selftest(const struct sbx_seccomp_selftest_req *_Nonnull req,
                         struct sbx_seccomp_selftest_result *_Nonnull res);

#ifdef __cplusplus
}
#endif

#endif /* SBX_SECCOMP_H */
