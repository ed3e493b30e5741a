#!/usr/bin/env bash
# Sets up the machine (scripts/setup.sh), builds sealbox and runs the whole test suite.
# The jail tests need root (uid maps, cgroups); run as root so none of them is skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh

if [ "$(id -u)" -ne 0 ]; then
    printf 'test: warning: not root; the privileged jail tests will be skipped\n' >&2
fi

swift build
swift test "$@"
