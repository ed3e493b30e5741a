#!/usr/bin/env bash
# Sets up the machine (scripts/setup.sh), builds sealbox and runs the whole test suite, then
# (without arguments) a schemathesis fuzz pass of the HTTP API (scripts/api-fuzz.sh).
# The jail tests need root (uid maps, cgroups); run as root so none of them is skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh

if [ "$(id -u)" -ne 0 ]; then
    printf 'test: warning: not root; the privileged jail tests will be skipped\n' >&2
fi

# A standalone debootstrap rootfs for the --rootfs tests; built once (about a minute), then
# reused: build-rootfs.sh returns at once when the finished marker is there.
if [ -z "${SEALBOX_TEST_ROOTFS:-}" ] && [ "$(id -u)" -eq 0 ]; then
    export SEALBOX_TEST_ROOTFS=/var/cache/sealbox/rootfs-test
    scripts/build-rootfs.sh "$SEALBOX_TEST_ROOTFS" >&2
fi

swift build
# At most 24 tests at once. Unbounded, the suite ran ~290 tests at a time on 2 cores, and the
# test process held up to ~1,500 descriptors (each server test's databases and sockets). With
# that many, Foundation's Process.run in Swift 6.3.1 can read past a buffer while listing
# /proc/self/fd and crash the whole test process (swift-corelibs-foundation#5472, seen here
# once). Bounded, the peak is ~330 descriptors and the suite takes about 10% longer.
export SWT_EXPERIMENTAL_MAXIMUM_PARALLELIZATION_WIDTH="${SWT_EXPERIMENTAL_MAXIMUM_PARALLELIZATION_WIDTH:-24}"
swift test "$@"

# The whole suite (no filter given): also fuzz the HTTP API against its OpenAPI document.
if [ "$#" -eq 0 ]; then
    scripts/api-fuzz.sh
fi
