#!/usr/bin/env python3
"""Interleaved spawn-latency comparison: sealbox (CLI and library) against bubblewrap and crun,
each running /bin/true with equivalent isolation, plus plain fork+exec as the floor.

Every contender runs --per-round times in each of --rounds rounds, in a shuffled order per
round, so that machine noise (other load, CPU frequency, page cache) spreads over all of them
instead of favouring whichever ran last. Latency is wall time from spawn to exit as this driver
sees it (os.posix_spawn + waitpid), except for the library bench, which measures inside the
sealbox process (`sealbox bench spawn --samples`) and so pays no process start of its own.
"""
import argparse, ctypes, json, os, random, shutil, subprocess, sys, tempfile, time


def spawn_ms(argv):
    t0 = time.perf_counter_ns()
    pid = os.posix_spawn(argv[0], argv, os.environ)
    _, status = os.waitpid(pid, 0)
    ms = (time.perf_counter_ns() - t0) / 1e6
    return ms, os.waitstatus_to_exitcode(status)


def percentile(values, p):
    v = sorted(values)
    if not v:
        return float("nan")
    rank = max(1, min(len(v), int(-(-p * len(v) // 100))))
    return v[rank - 1]


def hide_cgroup2_from_crun():
    """crun 1.8 refuses hybrid hosts ("cgroups in hybrid mode not supported") as soon as the
    cgroup2 mount at /sys/fs/cgroup/unified lists any controller, even with cgroups disabled.
    So this driver (and everything it starts) moves into a private mount namespace whose
    /sys/fs/cgroup shows only the v1 hierarchies: the same hierarchies, bind-mounted, so limits
    and accounting work as on the host, whose own mounts are not touched. Returns a note for
    the table, or None when nothing was needed."""
    unified = "/sys/fs/cgroup/unified"
    try:
        with open(unified + "/cgroup.controllers") as f:
            if not f.read().split():
                return None
    except OSError:
        return None
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
    def check(rc, what):
        if rc != 0:
            e = ctypes.get_errno()
            raise OSError(e, f"{what}: {os.strerror(e)}")
    MS_BIND, MS_REC, MS_PRIVATE, CLONE_NEWNS = 0x1000, 0x4000, 1 << 18, 0x20000
    check(libc.unshare(CLONE_NEWNS), "unshare(CLONE_NEWNS)")
    check(libc.mount(None, b"/", None, MS_REC | MS_PRIVATE, None), "make / private")
    keep = tempfile.mkdtemp(prefix="sealbox-bench-cgroups-")
    check(libc.mount(b"/sys/fs/cgroup", keep.encode(), None, MS_BIND | MS_REC, None), "bind /sys/fs/cgroup")
    check(libc.mount(b"none", b"/sys/fs/cgroup", b"tmpfs", 0, b"mode=755,size=64k"), "tmpfs on /sys/fs/cgroup")
    for name in sorted(os.listdir(keep)):
        source, target = os.path.join(keep, name), os.path.join("/sys/fs/cgroup", name)
        if name == "unified":
            continue
        if os.path.islink(source):
            os.symlink(os.readlink(source), target)
        elif os.path.isdir(source):
            os.mkdir(target)
            check(libc.mount(source.encode(), target.encode(), None, MS_BIND, None), f"bind {name}")
    return "run in a private mount namespace whose /sys/fs/cgroup shows only the v1 hierarchies (crun 1.8 refuses hybrid hosts)"


def crun_bundle(root, rootfs):
    """An OCI bundle for /bin/true: user, pid, mount, network, ipc, uts (and cgroup)
    namespaces, the rootfs read-only, /proc and a minimal /dev, root mapped to nobody."""
    os.makedirs(root, exist_ok=True)
    config = {
        "ociVersion": "1.0.2",
        "process": {"terminal": False, "user": {"uid": 0, "gid": 0}, "args": ["/bin/true"],
                    "env": ["PATH=/usr/bin:/bin"], "cwd": "/", "noNewPrivileges": True,
                    "capabilities": {"bounding": [], "effective": [], "permitted": []}},
        "root": {"path": rootfs, "readonly": True},
        "hostname": "bench",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "nodev", "size=65536k"]},
        ],
        "linux": {
            "uidMappings": [{"containerID": 0, "hostID": 65534, "size": 1}],
            "gidMappings": [{"containerID": 0, "hostID": 65534, "size": 1}],
            "namespaces": [{"type": t} for t in ("pid", "network", "ipc", "uts", "mount", "user", "cgroup")],
            "resources": {"memory": {"limit": 268435456}, "pids": {"limit": 64}},
            "maskedPaths": ["/proc/kcore", "/proc/keys", "/proc/timer_list"],
            "readonlyPaths": ["/proc/sys", "/proc/sysrq-trigger"],
        },
    }
    with open(os.path.join(root, "config.json"), "w") as f:
        json.dump(config, f)
    return root


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sealbox", required=True)
    ap.add_argument("--rootfs", default="/var/cache/sealbox/rootfs-test", help="root filesystem for crun")
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--per-round", type=int, default=30)
    ap.add_argument("--json", help="also write the raw samples and the table here")
    args = ap.parse_args()

    work = tempfile.mkdtemp(prefix="sealbox-bench-compare-")
    contenders = {}  # name -> (how it was run, a function returning one latency list per call)
    contenders["fork+exec"] = ("posix_spawn /bin/true, no isolation (the floor)", lambda: [spawn_ms(["/bin/true"])])
    bwrap = shutil.which("bwrap")
    if bwrap:
        argv = [bwrap, "--unshare-user", "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-net", "--unshare-cgroup-try",
                "--die-with-parent", "--ro-bind", "/usr", "/usr", "--symlink", "usr/bin", "/bin", "--symlink", "usr/lib", "/lib",
                "--symlink", "usr/lib64", "/lib64", "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp", "/bin/true"]
        contenders["bwrap"] = ("bubblewrap: user+pid+ipc+uts+net+cgroup ns, ro /usr, /proc, /dev, tmpfs /tmp; no cgroup limits, no seccomp", lambda a=argv: [spawn_ms(a)])
    crun = shutil.which("crun")
    crun_note = None
    if crun and os.path.isdir(args.rootfs) and os.geteuid() == 0:
        crun_note = hide_cgroup2_from_crun()
        bundle = crun_bundle(os.path.join(work, "bundle"), args.rootfs)
        counter = iter(range(10**9))
        def run_crun(manager):
            n = next(counter)
            return [spawn_ms([crun, f"--cgroup-manager={manager}", "run", "--bundle", bundle, f"sbx-bench-{os.getpid()}-{n}"])]
        suffix = f"; {crun_note}" if crun_note else ""
        contenders["crun"] = ("crun: the same namespaces, ro rootfs, /proc, /dev; --cgroup-manager=disabled" + suffix, lambda: run_crun("disabled"))
        contenders["crun+cgroups"] = ("crun with memory and pids limits in cgroups (cgroupfs)" + suffix, lambda: run_crun("cgroupfs"))
    sealbox = os.path.abspath(args.sealbox)
    contenders["sealbox run"] = ("sealbox CLI: a new sealbox process per run (all namespaces, cgroup limits, default seccomp profile, /proc, /dev)",
                                 lambda: [spawn_ms([sealbox, "run", "--", "/bin/true"])])
    samples_file = os.path.join(work, "library.txt")
    def library_block():
        subprocess.run([sealbox, "bench", "spawn", "-n", str(args.per_round), "--warmup", "0", "--samples", samples_file],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        with open(samples_file) as f:
            return [(float(line), 0) for line in f if line.strip()]
    contenders["sealbox library"] = ("sealbox bench spawn: Executor.runBlocking in one process (same isolation as sealbox run)", library_block)
    pool_file = os.path.join(work, "pool.txt")
    def pool_block():
        # A pool of 2; each recorded run waits until it is full again, and the refill waits
        # 20 ms after a take, so a run meets a ready jail and no refill competes with it.
        subprocess.run([sealbox, "bench", "spawn", "-n", str(args.per_round), "--warmup", "0", "--pool", "2", "--pool-refill-delay", "20",
                        "--samples", pool_file], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        with open(pool_file) as f:
            return [(float(line), 0) for line in f if line.strip()]
    contenders["sealbox warm pool"] = ("sealbox bench spawn --pool 2: a prepared jail (same isolation) given its program; request to exit", pool_block)

    # Warm up each once (page cache, profile compile), then interleave.
    for name, (_, fn) in contenders.items():
        fn()
    results = {name: [] for name in contenders}
    failures = {name: 0 for name in contenders}
    for r in range(args.rounds):
        order = list(contenders)
        random.shuffle(order)
        for name in order:
            fn = contenders[name][1]
            calls = 1 if name in ("sealbox library", "sealbox warm pool") else args.per_round
            for _ in range(calls):
                for ms, code in fn():
                    results[name].append(ms)
                    if code != 0:
                        failures[name] += 1
        print(f"bench-compare: round {r + 1}/{args.rounds}", file=sys.stderr)

    base = percentile(results.get("bwrap", []), 50) if "bwrap" in results else None
    rows = []
    for name, values in results.items():
        p50, p99 = percentile(values, 50), percentile(values, 99)
        rows.append({"name": name, "runs": len(values), "failures": failures[name], "p50_ms": round(p50, 3), "p99_ms": round(p99, 3),
                     "p50_vs_bwrap": round(p50 / base, 2) if base else None, "how": contenders[name][0]})
    print(f"{'':18} {'runs':>5} {'p50 ms':>8} {'p99 ms':>8} {'p50/bwrap':>10}")
    for row in rows:
        ratio = f"{row['p50_vs_bwrap']:.2f}x" if row["p50_vs_bwrap"] else "-"
        fails = f"  ({row['failures']} failed)" if row["failures"] else ""
        print(f"{row['name']:18} {row['runs']:5d} {row['p50_ms']:8.2f} {row['p99_ms']:8.2f} {ratio:>10}{fails}")
    print()
    for row in rows:
        print(f"  {row['name']}: {row['how']}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"rows": rows, "samples_ms": results}, f)
    shutil.rmtree(work, ignore_errors=True)
    return 1 if any(failures.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
