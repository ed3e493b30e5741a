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
swift test "$@"

# The whole suite (no filter given): also fuzz the HTTP API against its OpenAPI document.
if [ "$#" -eq 0 ]; then
    scripts/api-fuzz.sh
fi
