#ifndef SBX_INTERNAL_H
#define SBX_INTERNAL_H

#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include "sbx_spawn.h"

/// One failure report from the child; written with a single write(2), which is atomic on a
/// pipe for sizes under PIPE_BUF. Also carries the seccomp listener handoff.
struct sbx_child_msg {
    int32_t stage;
    int32_t err;
    int64_t index;   // failing op index, or the listener fd number for SBX_STAGE_SECCOMP_HANDOFF
};
_Static_assert(sizeof(struct sbx_child_msg) == 16, "child message is 16 bytes");

/// Child entry point; never returns. report_fd (SEQPACKET socket), sync_fd (pipe, read) and
/// status_fd (pipe, write) are the child's ends.
__attribute__((noreturn))
void sbx_child_main(const struct sbx_spawn_req *req, int report_fd, int sync_fd, int status_fd);

/// Control buffer for exactly one SCM_RIGHTS descriptor.
union sbx_fd_control {
    char buf[CMSG_SPACE(sizeof(int))];
    struct cmsghdr align;
};

/// Points `mh` at one iovec and a zeroed one-descriptor control buffer. Pure memory writes,
/// so the child may call it (both ends of the report socket use it).
static inline void sbx_msghdr_for_one_fd(struct msghdr *mh, struct iovec *iov, union sbx_fd_control *control) {
    memset(control, 0, sizeof *control);
    memset(mh, 0, sizeof *mh);
    mh->msg_iov = iov;
    mh->msg_iovlen = 1;
    mh->msg_control = control->buf;
    mh->msg_controllen = sizeof control->buf;
}

/// The byte on the sync pipe that releases the child.
#define SBX_SYNC_GO 'G'

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
