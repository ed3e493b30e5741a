#!/usr/bin/env bash
# Sets up the machine (scripts/setup.sh), builds sealbox and runs the whole test suite, then
# (without arguments) a schemathesis fuzz pass of the HTTP API (scripts/api-fuzz.sh).
# The jail tests need root (uid maps, cgroups); run as root so none of them is skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh

# A privileged test that skips is a failing test in disguise: without root the jail tests
# would skip, so refuse unless the caller asks for the unprivileged part on purpose.
if [ "$(id -u)" -ne 0 ] && [ "${SEALBOX_ALLOW_SKIPS:-}" != 1 ]; then
    printf 'test: error: not root, so the privileged jail tests would be skipped; run as root (or SEALBOX_ALLOW_SKIPS=1 for the unprivileged part only)\n' >&2
    exit 1
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
log=$(mktemp /tmp/sealbox-test-XXXXXX.log)
trap 'rm -f "$log"' EXIT
swift test "$@" 2>&1 | tee "$log"
# Swift Testing marks a skipped test or suite with "➜ ... skipped": any skip fails the run
# (SEALBOX_ALLOW_SKIPS=1 lists them and goes on).
if grep -E '^➜ (Test|Suite) .* skipped' "$log" >/tmp/sealbox-test-skipped.$$; then
    printf '\ntest: these tests were skipped:\n' >&2
    cat /tmp/sealbox-test-skipped.$$ >&2
    rm -f /tmp/sealbox-test-skipped.$$
    if [ "${SEALBOX_ALLOW_SKIPS:-}" != 1 ]; then
        printf 'test: error: a skipped test is a failing test here (SEALBOX_ALLOW_SKIPS=1 to allow)\n' >&2
        exit 1
    fi
fi
rm -f /tmp/sealbox-test-skipped.$$

# The whole suite (no filter given): also fuzz the HTTP API against its OpenAPI document.
if [ "$#" -eq 0 ]; then
    scripts/api-fuzz.sh
fi
