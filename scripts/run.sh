#!/usr/bin/env bash
# Sets up the machine (scripts/setup.sh), builds sealbox in release mode when the sources are
# newer than the binary, and runs it with the given arguments, e.g.
#   scripts/run.sh run --lang python --code 'print(6*7)' --json
set -euo pipefail
# Relative paths in the arguments (--file, --stdin-file, -o, ...) are the caller's: set up
# and build from the checkout, then run sealbox from where it was called.
caller="$PWD"
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
source scripts/setup.sh

binary="$root/.build/release/sealbox"
if [ ! -x "$binary" ] || [ -n "$(find Package.swift Sources -newer "$binary" -print -quit)" ]; then
    printf 'run: building sealbox (release)...\n' >&2
    swift build -c release >&2
fi
export SEALBOX_DATA_DIR="$root"
cd "$caller"
exec "$binary" "$@"
