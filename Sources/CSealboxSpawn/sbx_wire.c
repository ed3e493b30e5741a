// A spawn request as bytes plus descriptors, so the spawner process (Sources/SealboxSpawner)
// can carry out a request built in sealbox. The request is copied into one buffer in which
// every pointer is an offset from the buffer's start and every descriptor an index into the
// SCM_RIGHTS array sent with it; unpacking turns them back in place.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "sbx_internal.h"

#define SBX_WIRE_MAGIC 0x73627877u  // "sbxw"

struct sbx_wire_header {
    uint32_t magic;
    uint32_t reserved;
    uint64_t size;
};

struct wire_builder {
    char *buf;
    size_t size, capacity;
    int *fds;
    size_t fd_count, fd_capacity;
    int failed;  // errno
};

static size_t wire_reserve(struct wire_builder *b, size_t length) {
    size_t at = (b->size + 7) & ~(size_t)7;
    if (b->failed) return 0;
    if (at + length > SBX_WIRE_MAX_BYTES) {
        b->failed = E2BIG;
        return 0;
    }
    if (at + length > b->capacity) {
        size_t capacity = b->capacity ? b->capacity : 4096;
        while (capacity < at + length) capacity *= 2;
        char *grown = realloc(b->buf, capacity);
        if (grown == NULL) {
            b->failed = ENOMEM;
            return 0;
        }
        memset(grown + b->capacity, 0, capacity - b->capacity);
        b->buf = grown;
        b->capacity = capacity;
    }
    b->size = at + length;
    return at;
}

static uint64_t wire_bytes(struct wire_builder *b, const void *data, size_t length) {
    if (data == NULL) return 0;
    size_t at = wire_reserve(b, length ? length : 1);
    if (b->failed) return 0;
    if (length) memcpy(b->buf + at, data, length);
    return at;
}

static uint64_t wire_string(struct wire_builder *b, const char *s) {
    return s == NULL ? 0 : wire_bytes(b, s, strlen(s) + 1);
}

/// A NULL-terminated list (count == SIZE_MAX) or `count` strings, as offsets.
static uint64_t wire_string_list(struct wire_builder *b, const char *const *list, size_t count) {
    if (list == NULL) return 0;
    if (count == SIZE_MAX) for (count = 0; list[count] != NULL; count++) {}
    size_t at = wire_reserve(b, (count + 1) * sizeof(uint64_t));
    for (size_t i = 0; i < count && !b->failed; i++) {
        uint64_t off = wire_string(b, list[i]);
        if (!b->failed) ((uint64_t *)(b->buf + at))[i] = off;
    }
    return b->failed ? 0 : at;
}

/// A descriptor travels as its index in the SCM_RIGHTS array; -1 (none) stays -1.
static int64_t wire_fd(struct wire_builder *b, int fd) {
    if (fd < 0) return -1;
    for (size_t i = 0; i < b->fd_count; i++)
        if (b->fds[i] == fd) return (int64_t)i;
    if (b->fd_count == b->fd_capacity) {
        b->failed = EMFILE;
        return -1;
    }
    b->fds[b->fd_count] = fd;
    return (int64_t)b->fd_count++;
}

#define AS_PTR(type, off) ((type)(uintptr_t)(off))

int sbx_wire_pack(const struct sbx_spawn_req *req, int *fds, size_t max_fds, size_t *fd_count) {
    struct wire_builder b = { .fds = fds, .fd_capacity = max_fds };
    size_t header_at = wire_reserve(&b, sizeof(struct sbx_wire_header));
    size_t req_at = wire_reserve(&b, sizeof(struct sbx_spawn_req));
    if (b.failed) goto out;
    struct sbx_spawn_req packed = *req;
    packed.exec_candidates = AS_PTR(const char *const *, wire_string_list(&b, (const char *const *)req->exec_candidates, req->exec_candidate_count));
    packed.argv = AS_PTR(const char *const *, wire_string_list(&b, (const char *const *)req->argv, SIZE_MAX));
    packed.envp = AS_PTR(const char *const *, wire_string_list(&b, (const char *const *)req->envp, SIZE_MAX));
    packed.stdin_fd = (int)wire_fd(&b, req->stdin_fd);
    packed.stdout_fd = (int)wire_fd(&b, req->stdout_fd);
    packed.stderr_fd = (int)wire_fd(&b, req->stderr_fd);
    packed.cgroup_v2_fd = (int)wire_fd(&b, req->cgroup_v2_fd);
    if (req->cgroup_procs_fd_count > 0) {
        int indexes[64];
        if (req->cgroup_procs_fd_count > 64) b.failed = E2BIG;
        for (size_t i = 0; i < req->cgroup_procs_fd_count && !b.failed; i++) indexes[i] = (int)wire_fd(&b, req->cgroup_procs_fds[i]);
        packed.cgroup_procs_fds = AS_PTR(const int *, wire_bytes(&b, indexes, req->cgroup_procs_fd_count * sizeof(int)));
    }
    packed.newroot = AS_PTR(const char *, wire_string(&b, req->newroot));
    packed.newroot_tmpfs_data = AS_PTR(const char *, wire_string(&b, req->newroot_tmpfs_data));
    if (req->fs_op_count > 0) {
        size_t ops_at = wire_reserve(&b, req->fs_op_count * sizeof(struct sbx_fs_op));
        for (size_t i = 0; i < req->fs_op_count && !b.failed; i++) {
            struct sbx_fs_op op = req->fs_ops[i];
            op.source = AS_PTR(const char *, wire_string(&b, req->fs_ops[i].source));
            op.path = AS_PTR(const char *, wire_string(&b, req->fs_ops[i].path));
            op.data = AS_PTR(const char *, wire_bytes(&b, req->fs_ops[i].data, req->fs_ops[i].data_len));
            op.fd = op.kind == SBX_FS_MOVE_MOUNT ? (int)wire_fd(&b, req->fs_ops[i].fd) : -1;
            if (!b.failed) memcpy(b.buf + ops_at + i * sizeof op, &op, sizeof op);
        }
        packed.fs_ops = AS_PTR(const struct sbx_fs_op *, ops_at);
    }
    packed.workdir = AS_PTR(const char *, wire_string(&b, req->workdir));
    packed.hostname = AS_PTR(const char *, wire_string(&b, req->hostname));
    packed.rlimits = AS_PTR(const struct sbx_rlimit *, wire_bytes(&b, req->rlimits, req->rlimit_count * sizeof(struct sbx_rlimit)));
    packed.seccomp_program = AS_PTR(const void *, wire_bytes(&b, req->seccomp_program, req->seccomp_instruction_count * 8));
    if (b.failed) goto out;
    memcpy(b.buf + req_at, &packed, sizeof packed);
    struct sbx_wire_header header = { .magic = SBX_WIRE_MAGIC, .size = b.size };
    memcpy(b.buf + header_at, &header, sizeof header);

    int memfd = sbx_sealed_memfd("sealbox-spawn", b.buf, b.size);
    if (memfd < 0) {
        b.failed = -memfd;
        goto out;
    }
    free(b.buf);
    *fd_count = b.fd_count;
    return memfd;
out:
    free(b.buf);
    *fd_count = 0;
    return -(b.failed ? b.failed : EINVAL);
}

/// Checks that [off, off + length) lies inside the buffer (offset 0 means NULL).
static int wire_range_ok(uint64_t off, uint64_t length, uint64_t size) {
    return off >= sizeof(struct sbx_wire_header) && off <= size && length <= size - off;
}

static int wire_string_ok(const char *base, uint64_t off, uint64_t size) {
    return wire_range_ok(off, 1, size) && memchr(base + off, 0, size - off) != NULL;
}

static int wire_fix_string(char *base, uint64_t size, const char **field, int optional) {
    uint64_t off = (uint64_t)(uintptr_t)*field;
    if (off == 0) return optional ? 0 : -1;
    if (!wire_string_ok(base, off, size)) return -1;
    *field = base + off;
    return 0;
}

static int wire_fix_list(char *base, uint64_t size, const char *const **field, size_t count) {
    uint64_t off = (uint64_t)(uintptr_t)*field;
    if (off == 0) return -1;  // every list is present (argv, envp, candidates)
    // count == SIZE_MAX: NULL-terminated (the 0 offset ends it).
    for (size_t i = 0;; i++) {
        if (!wire_range_ok(off + i * 8, 8, size)) return -1;
        uint64_t *slot = (uint64_t *)(base + off + i * 8);
        if (count == SIZE_MAX ? *slot == 0 : i == count) {
            *slot = 0;
            break;
        }
        if (!wire_string_ok(base, *slot, size)) return -1;
        *slot = (uint64_t)(uintptr_t)(base + *slot);
    }
    *field = (const char *const *)(base + off);
    return 0;
}

static int wire_fix_fd(int *field, const int *fds, size_t fd_count) {
    if (*field < 0) return 0;
    if ((size_t)*field >= fd_count) return -1;
    *field = fds[*field];
    return 0;
}

int sbx_wire_unpack(void *mapping, size_t size, const int *fds, size_t fd_count, struct sbx_spawn_req **out) {
    char *base = mapping;
    if (size < sizeof(struct sbx_wire_header) + sizeof(struct sbx_spawn_req)) return -EINVAL;
    struct sbx_wire_header *header = (struct sbx_wire_header *)base;
    if (header->magic != SBX_WIRE_MAGIC || header->size != size) return -EINVAL;
    size_t req_at = (sizeof *header + 7) & ~(size_t)7;
    struct sbx_spawn_req *req = (struct sbx_spawn_req *)(base + req_at);
    if (wire_fix_list(base, size, (const char *const **)&req->exec_candidates, req->exec_candidate_count) < 0 ||
        wire_fix_list(base, size, (const char *const **)&req->argv, SIZE_MAX) < 0 ||
        wire_fix_list(base, size, (const char *const **)&req->envp, SIZE_MAX) < 0)
        return -EINVAL;
    if (wire_fix_fd(&req->stdin_fd, fds, fd_count) < 0 || wire_fix_fd(&req->stdout_fd, fds, fd_count) < 0 ||
        wire_fix_fd(&req->stderr_fd, fds, fd_count) < 0 || wire_fix_fd(&req->cgroup_v2_fd, fds, fd_count) < 0)
        return -EINVAL;
    if (req->cgroup_procs_fd_count > 0) {
        uint64_t off = (uint64_t)(uintptr_t)req->cgroup_procs_fds;
        if (req->cgroup_procs_fd_count > 64 || !wire_range_ok(off, req->cgroup_procs_fd_count * sizeof(int), size)) return -EINVAL;
        int *procs = (int *)(base + off);
        for (size_t i = 0; i < req->cgroup_procs_fd_count; i++)
            if (procs[i] < 0 || wire_fix_fd(&procs[i], fds, fd_count) < 0) return -EINVAL;
        req->cgroup_procs_fds = procs;
    } else {
        req->cgroup_procs_fds = NULL;
    }
    if (wire_fix_string(base, size, (const char **)&req->newroot, 0) < 0 ||
        wire_fix_string(base, size, (const char **)&req->newroot_tmpfs_data, 0) < 0 ||
        wire_fix_string(base, size, (const char **)&req->workdir, 0) < 0 ||
        wire_fix_string(base, size, (const char **)&req->hostname, 0) < 0)
        return -EINVAL;
    if (req->fs_op_count > 0) {
        uint64_t off = (uint64_t)(uintptr_t)req->fs_ops;
        if (req->fs_op_count > 100000 || !wire_range_ok(off, req->fs_op_count * sizeof(struct sbx_fs_op), size)) return -EINVAL;
        struct sbx_fs_op *ops = (struct sbx_fs_op *)(base + off);
        for (size_t i = 0; i < req->fs_op_count; i++) {
            struct sbx_fs_op *op = &ops[i];
            if (wire_fix_string(base, size, (const char **)&op->source, 1) < 0 || wire_fix_string(base, size, (const char **)&op->path, 0) < 0)
                return -EINVAL;
            uint64_t data = (uint64_t)(uintptr_t)op->data;
            if (data != 0) {
                if (!wire_range_ok(data, op->data_len, size)) return -EINVAL;
                op->data = base + data;
            }
            // Mount options are handed to mount(2) as a C string: it must end inside its bytes.
            if ((op->kind == SBX_FS_TMPFS || op->kind == SBX_FS_DEVPTS) &&
                (op->data == NULL || op->data_len == 0 || op->data[op->data_len - 1] != '\0'))
                return -EINVAL;
            if (op->kind == SBX_FS_MOVE_MOUNT && (op->fd < 0 || wire_fix_fd(&op->fd, fds, fd_count) < 0)) return -EINVAL;
        }
        req->fs_ops = ops;
    } else {
        req->fs_ops = NULL;
    }
    uint64_t rl = (uint64_t)(uintptr_t)req->rlimits;
    if (req->rlimit_count > 0) {
        if (req->rlimit_count > 64 || !wire_range_ok(rl, req->rlimit_count * sizeof(struct sbx_rlimit), size)) return -EINVAL;
        req->rlimits = (const struct sbx_rlimit *)(base + rl);
    } else {
        req->rlimits = NULL;
    }
    uint64_t prog = (uint64_t)(uintptr_t)req->seccomp_program;
    if (req->seccomp_instruction_count > 0) {
        if (req->seccomp_instruction_count > 65535 || !wire_range_ok(prog, req->seccomp_instruction_count * 8, size)) return -EINVAL;
        req->seccomp_program = base + prog;
    } else {
        req->seccomp_program = NULL;
    }
    *out = req;
    return 0;
}
