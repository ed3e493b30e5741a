#!/usr/bin/env bash
# Prepares a Debian/Ubuntu machine to build and run sealbox: system packages and a check for
# the Swift toolchain. Safe to run again; installs only what is missing. Needs root for apt.
set -euo pipefail

log() { printf 'setup: %s\n' "$*" >&2; }

# What the build links against (libseccomp), what jails run by default (python3, node, bash)
# and what scripts/build-rootfs.sh uses (debootstrap).
packages=(libseccomp-dev libcap-dev pkg-config python3 nodejs bash coreutils procps iproute2 debootstrap)

missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    if [ "$(id -u)" -ne 0 ]; then
        log "missing packages: ${missing[*]}; run as root or: sudo apt-get install -y ${missing[*]}"
        exit 1
    fi
    log "installing: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Swift: on PATH, or the usual /opt/swift install.
if ! command -v swift >/dev/null 2>&1; then
    for dir in /opt/swift/usr/bin /opt/swift/bin /usr/share/swift/usr/bin; do
        if [ -x "$dir/swift" ]; then export PATH="$dir:$PATH"; break; fi
    done
fi
if ! command -v swift >/dev/null 2>&1; then
    log "no Swift toolchain found: install Swift 6.0 or newer (https://www.swift.org/install/linux/) and put it on PATH"
    exit 1
fi
