#!/usr/bin/env bash
# Regenerates the learned profiles shipped in profiles/ (python, node, strict) from the
# workloads in profiles/workloads/, with `sealbox profile learn`: each workload is recorded
# and merged into the profile, and every step re-runs its workload under the result.
#   scripts/learn-profiles.sh            # all three
#   scripts/learn-profiles.sh python     # one
# Uses SEALBOX (default .build/debug/sealbox; run `swift build` first).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
sealbox="${SEALBOX:-$root/.build/debug/sealbox}"
export SEALBOX_DATA_DIR="$root"
[ -x "$sealbox" ] || { printf 'learn-profiles: %s not found; run swift build\n' "$sealbox" >&2; exit 2; }

# Variants another libc or interpreter build may use for the same operation (stat vs statx,
# open vs openat, ...): harmless, and they keep a profile learned here working elsewhere.
portable="stat,lstat,fstat,newfstatat,statx,open,openat,access,faccessat,faccessat2,readlink,readlinkat"
portable+=",getdents,getdents64,pipe,pipe2,dup,dup2,dup3,poll,ppoll,select,pselect6,epoll_wait,epoll_pwait"
portable+=",clock_gettime,clock_getres,clock_nanosleep,nanosleep,gettimeofday,time,getrandom,rseq,sched_yield"
portable+=",rename,renameat,renameat2,unlink,unlinkat,mkdir,mkdirat,rmdir,chmod,fchmod,fchmodat,fchmodat2"
# Calls a workload makes only sometimes: signal returns, yielding under lock contention, memory
# returned or grown by the allocator or a garbage collector, flushes. One recording may miss them.
portable+=",rt_sigreturn,sched_yield,madvise,mremap,writev,readv,pwrite64,pread64,ftruncate,fsync,fdatasync,statfs,fstatfs"

learn() {  # learn NAME BASE COMMENT EXTRA LANG FILE...
    local name="$1" base="$2" comment="$3" extra="$4" lang="$5"; shift 5
    local out="profiles/$name.json" first=1
    for file in "$@"; do
        local merge=()
        [ "$first" -eq 1 ] || merge=(--merge "$out")
        printf 'learn-profiles: %s <- %s\n' "$name" "$file" >&2
        "$sealbox" profile learn -o "$out.tmp" --base "$base" --comment "$comment" --allow "$extra" \
            "${merge[@]}" --timeout 60 --memory 1G --lang "$lang" --file "$file"
        mv "$out.tmp" "$out"
        first=0
    done
}

# strict: the base is default.json with clone narrowed to threads (CLONE_THREAD set, no
# namespace flags), so what strict learns from clone cannot create a process.
strict_base() {
    python3 - "$1" <<'PY'
import json, sys
profile = json.load(open("profiles/default.json"))
for rule in profile["syscalls"]:
    if rule["names"] == ["clone"]:
        rule["comment"] = "clone only for threads: CLONE_THREAD set and no namespace flag, (flags & 0x7E030000) == 0x10000; no new processes"
        rule["args"] = [{"index": 0, "value": 0x7E030000, "valueTwo": 0x10000, "op": "SCMP_CMP_MASKED_EQ"}]
# No sockets at all: socket fails with EAFNOSUPPORT, which programs treat as "no network"
# (glibc's nscd lookup falls back to /etc files).
profile["syscalls"] = [r for r in profile["syscalls"] if r["names"] != ["socket"]]
profile["syscalls"].append({"comment": "strict has no sockets: socket fails with EAFNOSUPPORT", "names": ["socket"], "action": "SCMP_ACT_ERRNO", "errnoRet": 97})
json.dump(profile, open(sys.argv[1], "w"), indent=2)
PY
}

targets=("$@")
selected() { [ "${#targets[@]}" -eq 0 ] && return 0; local t; for t in "${targets[@]}"; do [ "$t" = "$1" ] && return 0; done; return 1; }

if selected python; then
    learn python default "python: for Python 3 snippets using the standard library: files in /work and /tmp, threads, subprocesses and fork, multiprocessing (every start method, Pool, Queue, ProcessPoolExecutor, Manager, shared_memory: semaphores and segments in /dev/shm), pseudo-terminals (pty, openpty), signals and timers, mmap, archives, loopback TCP/UDP/unix sockets, asyncio, http on 127.0.0.1, sqlite, venv. Keeps default.json's argument checks (clone without namespace flags, unix/IPv4/IPv6 sockets only, no TIOCSTI/TIOCLINUX) and denies everything else with EPERM. Regenerate with scripts/learn-profiles.sh from profiles/workloads/python/." \
        "$portable" python profiles/workloads/python/*.py
fi
if selected node; then
    learn node default "node: for Node.js snippets: files in /work and /tmp (sync and promise APIs), worker threads, child processes (and the coreutils they run), timers, loopback TCP/UDP/http, crypto and zlib. Keeps default.json's argument checks (clone without namespace flags, unix/IPv4/IPv6 sockets only, no TIOCSTI/TIOCLINUX) and denies everything else with EPERM. Regenerate with scripts/learn-profiles.sh from profiles/workloads/node/." \
        "$portable" node profiles/workloads/node/*.js
fi
if selected strict; then
    base="$(mktemp --suffix=.json)"
    trap 'rm -f "$base"' EXIT
    strict_base "$base"
    # The portable list without pipes and polling (no processes to talk to in strict).
    strict_extra="${portable//,pipe,pipe2/}"
    comment="strict: the smallest profile for self-contained interpreted snippets (python, node, bash builtins): computation, the standard library, files in /work and /tmp. No subprocesses (clone only with CLONE_THREAD, no fork, vfork or clone3), no sockets (socket fails with EAFNOSUPPORT), no exec beyond the jail's own start. Denies everything else with EPERM. Regenerate with scripts/learn-profiles.sh from profiles/workloads/strict/."
    for pair in python:profiles/workloads/strict/snippet.py node:profiles/workloads/strict/snippet.js bash:profiles/workloads/strict/snippet.sh; do
        lang="${pair%%:*}" file="${pair#*:}"
        merge=()
        [ -f profiles/strict.json.building ] && merge=(--merge profiles/strict.json.building)
        printf 'learn-profiles: strict <- %s\n' "$file" >&2
        "$sealbox" profile learn -o profiles/strict.json.tmp --base "$base" --comment "$comment" --allow "$strict_extra" \
            "${merge[@]}" --timeout 60 --memory 1G --lang "$lang" --file "$file"
        mv profiles/strict.json.tmp profiles/strict.json.building
    done
    # The comment names the temporary base; say what it was.
    sed -e "s|Base: $base|Base: default.json with clone narrowed to threads|" -e "s|profiles/strict.json.building|profiles/strict.json|" profiles/strict.json.building > profiles/strict.json
    rm -f profiles/strict.json.building
fi
