#!/usr/bin/env bash
# Spawn latency of sealbox next to bubblewrap and crun on this machine, interleaved in one run
# (scripts/bench_compare.py explains the method). Installs bubblewrap and crun from apt when
# missing (as root), builds sealbox in release mode, and prints a table of p50/p99 and the
# ratio to bwrap.
#   scripts/bench-compare.sh                      # 10 rounds x 30 runs of each
#   scripts/bench-compare.sh --rounds 20 --per-round 50 --json /tmp/compare.json
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
source scripts/setup.sh

if [ "$(id -u)" -ne 0 ]; then
    printf 'bench-compare: run as root (jails with cgroup limits, crun bundles)\n' >&2
    exit 2
fi
missing=()
for p in bubblewrap crun; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    printf 'bench-compare: installing %s\n' "${missing[*]}" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# crun runs /bin/true from this rootfs (the test rootfs, built once).
scripts/build-rootfs.sh /var/cache/sealbox/rootfs-test >&2

binary="$root/.build/release/sealbox"
if [ ! -x "$binary" ] || [ -n "$(find Package.swift Sources -newer "$binary" -print -quit)" ]; then
    printf 'bench-compare: building sealbox (release)...\n' >&2
    swift build -c release >&2
fi
export SEALBOX_DATA_DIR="$root"
exec python3 scripts/bench_compare.py --sealbox "$binary" --rootfs /var/cache/sealbox/rootfs-test "$@"
