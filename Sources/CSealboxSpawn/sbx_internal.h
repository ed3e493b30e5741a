#ifndef SBX_INTERNAL_H
#define SBX_INTERNAL_H

#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include "sbx_spawn.h"

/// One failure report from the child; written with a single write(2), which is atomic on a
/// pipe for sizes under PIPE_BUF. Also carries the seccomp listener handoff.
struct sbx_child_msg {
    int32_t stage;
    int32_t err;
    int64_t index;   // failing op index, or the listener fd number for SBX_STAGE_SECCOMP_HANDOFF
};
_Static_assert(sizeof(struct sbx_child_msg) == 16, "child message is 16 bytes");

/// Timestamps of a spawn's stages, on a MAP_SHARED page the parent maps before clone3, so the
/// child (and the program it forks) write where the parent reads. The steps of
/// `sbx_spawn_result.step_ns` are the differences.
enum sbx_mark {
    SBX_MARK_CLONE_CALL = 0,  // parent, just before clone3
    SBX_MARK_CHILD_START,     // child, first instruction
    SBX_MARK_RELEASED,        // child, the parent's go byte read
    SBX_MARK_IDENTITY,        // child, after step 3
    SBX_MARK_MOUNTS,          // child, after step 4
    SBX_MARK_PIVOT,           // child, after step 5
    SBX_MARK_SETUP,           // child, after step 8
    SBX_MARK_FORKED,          // program, right after the fork
    SBX_MARK_EXEC_SEEN,       // parent, EOF on the report socket
    SBX_MARK_ACTIVATE_SENT,   // parent, a prepared jail's task sent
    SBX_MARK_ACTIVATED,       // child, the task received and in place
    SBX_MARK_COUNT
};

struct sbx_marks {
    volatile uint64_t ns[SBX_MARK_COUNT];
};

/// CLOCK_MONOTONIC in ns. clock_gettime is served by the vDSO (no syscall, no lock), so the
/// child may call it; it is never called after seccomp is installed, where a filter that
/// notifies it would wait on a parent still blocked in sbx_spawn.
static inline void sbx_mark(struct sbx_marks *marks, enum sbx_mark which) {
    if (marks == NULL) return;
    struct timespec ts;
    if (clock_gettime(CLOCK_MONOTONIC, &ts) == 0) marks->ns[which] = (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/// Child entry point; never returns. report_fd (SEQPACKET socket), sync_fd (pipe, read) and
/// status_fd (pipe, write) are the child's ends; marks may be NULL (no timing).
__attribute__((noreturn))
void sbx_child_main(const struct sbx_spawn_req *req, int report_fd, int sync_fd, int status_fd, struct sbx_marks *marks);

/// Most descriptors one message carries (sbx_io.c).
#define SBX_MAX_PASSED_FDS 64

/// sendmsg of `data` with `fd_count` descriptors (SCM_RIGHTS), EINTR retried, no SIGPIPE.
/// Returns sendmsg's result (-1 with errno). Child-safe, like everything in sbx_io.c.
ssize_t sbx_send_with_fds(int sock, const void *data, size_t length, const int *fds, size_t fd_count);
/// recvmsg of one message and up to `max_fds` descriptors (close-on-exec). Returns the byte
/// count (0 = EOF) or -errno; -EMSGSIZE, with every descriptor closed, when more came than
/// fit. *fd_count says how many are in fds.
ssize_t sbx_receive_with_fds(int sock, void *data, size_t length, int *fds, size_t max_fds, size_t *fd_count);
/// write(2) until all of `data` is written, EINTR retried. 0, or -1 with errno.
int sbx_write_all(int fd, const void *data, size_t length);

/// Message kinds on the report socket besides failures (whose `stage` is an sbx_stage):
/// a prepared jail reports READY (with its /work as SCM_RIGHTS) and receives ACTIVATE
/// (with the task's payload memfd and stdio).
#define SBX_MSG_READY 0x5245
#define SBX_MSG_ACTIVATE 0x4143
/// Instead of ACTIVATE (no descriptors): the prepared jail stays, as a sandbox's init that
/// runs commands (sbx_resident.c); it answers with an sbx_resident_msg of kind READY.
#define SBX_MSG_RESIDENT 0x5253

/// The task a prepared jail receives, in a memfd: this header, then (argc + 1 + envc + 1 +
/// candidate_count + has_cwd) uint64 offsets of NUL-terminated strings from the start of the
/// memfd (0 for the two NULL terminators), then the strings. The last string, when has_cwd is
/// 1, is the directory the program starts in.
struct sbx_task_header {
    uint32_t magic;
    uint32_t argc;
    uint32_t envc;
    uint32_t candidate_count;
    uint32_t has_cwd;
    uint32_t reserved;
};
#define SBX_TASK_MAGIC 0x7462780aU
/// Upper bound for the payload (argv + environment + candidates), as execve's own.
#define SBX_TASK_MAX_BYTES (4u << 20)

/// Upper bound for a packed spawn request (the filesystem plan's files included).
#define SBX_WIRE_MAX_BYTES (64u << 20)

/// Packs `req` into a sealed memfd (returned, or -errno); the descriptors it names are put in
/// fds[0..*fd_count) (at most max_fds), in the order the memfd refers to them.
int sbx_wire_pack(const struct sbx_spawn_req *req, int *fds, size_t max_fds, size_t *fd_count);
/// Turns a packed request mapped (privately, writable) at `mapping` back into a request, in
/// place, with `fds` being the descriptors received with it. 0 or -EINVAL (malformed).
int sbx_wire_unpack(void *mapping, size_t size, const int *fds, size_t fd_count, struct sbx_spawn_req **out);

/// The byte on the sync pipe that releases the child.
#define SBX_SYNC_GO 'G'

/// The task's payload in a sealed memfd (`sbx_task_header`): the program, environment,
/// candidates and, with `with_cwd` and task->workdir set, the directory to start in (a pooled
/// run's program starts where init is, its /work). The fd or -errno.
int sbx_task_memfd(const struct sbx_spawn_req *task, int with_cwd);

/// What to execute: from the request, or for a prepared jail from its task.
struct sbx_program {
    const char *const *candidates;
    size_t candidate_count;
    const char *const *argv;
    const char *const *envp;
    /// NULL: the jail's working directory.
    const char *cwd;
};

/// Child side: writes {stage, err, index} to `report_fd` (the parent's report of where a child
/// failed) and exits 125. Nothing can be done if the write fails.
__attribute__((noreturn)) void sbx_fail_in_child(int report_fd, int stage, int err, long index);
/// Child side, shared by sbx_child.c and sbx_resident.c. Turns a task memfd mapped privately
/// at `base` into `program`, in place, checking every offset. 0 or -1.
int sbx_decode_task_in_child(char *base, size_t size, struct sbx_program *program);
/// The program's side: seccomp (its listener sent on `report_fd`), then execve of each
/// candidate; failures are written to `report_fd` as an sbx_child_msg. Never returns.
__attribute__((noreturn)) void sbx_exec_program_in_child(const struct sbx_spawn_req *req, const struct sbx_program *program, int report_fd);
/// A prepared jail told SBX_MSG_RESIDENT: becomes the sandbox's init (sbx_resident.c).
__attribute__((noreturn)) void sbx_resident_main_in_child(const struct sbx_spawn_req *req, int control_fd, int status_fd);

/// The resident protocol on a sandbox's control socket (after SBX_MSG_RESIDENT), both ways.
struct sbx_resident_msg {
    int32_t kind;    // SBX_RESIDENT_*
    int32_t stage;   // FAILED: the sbx_stage that failed
    int32_t err;     // FAILED: errno; SIGNAL: the signal number
    int32_t pid;     // STARTED: the command's pid inside the jail
    int64_t id;      // the command's id, chosen by the parent
    int64_t index;   // FAILED: the failing candidate or step index, or -1
};
_Static_assert(sizeof(struct sbx_resident_msg) == 32, "resident message is 32 bytes");
enum {
    SBX_RESIDENT_READY = 0x5259,    // init -> parent: resident, taking commands
    SBX_RESIDENT_EXEC = 0x4558,     // parent -> init: fds [task memfd, stdin, stdout, stderr, exit pipe]
    SBX_RESIDENT_STARTED = 0x5354,  // init -> parent: exec'd; with the seccomp listener as SCM_RIGHTS when notifying
    SBX_RESIDENT_FAILED = 0x4641,   // init -> parent: nothing runs; stage, err, index say why
    SBX_RESIDENT_SIGNAL = 0x5347,   // parent -> init: signal the command's process group
};

/// What init writes on the status pipe when the program ends.
struct sbx_program_status {
    int32_t exited;  // 1: exited with `code`; 0: killed by signal `code`
    int32_t code;
};

/// sealbox's own argv and environment strings, found once in the parent (/proc/self/stat
/// fields arg_start..env_end); init wipes its copy of them.
struct sbx_scrub_region {
    char *start;
    size_t length;
};
extern struct sbx_scrub_region sbx_scrub_args, sbx_scrub_env;

/// pidfd on the sealbox process (CLOEXEC), or -1; see open_parent_pidfd in sbx_parent.c.
extern int sbx_parent_pidfd;

#endif
