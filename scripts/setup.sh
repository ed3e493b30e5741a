#!/usr/bin/env bash
# Prepares a Debian/Ubuntu machine to build and run sealbox: system packages and a check for
# the Swift toolchain. Safe to run again; installs only what is missing. Needs root for apt.
set -euo pipefail

log() { printf 'setup: %s\n' "$*" >&2; }

# What the build links against (libseccomp), what jails run by default (python3, node, bash),
# what scripts/build-rootfs.sh uses (debootstrap) and what makes the tests' Python venv
# (python3-venv: Debian's python3 has no ensurepip without it). The compatibility battery
# (Tests/SealboxJailTests/CompatibilityTests.swift) also compiles C in a jail (gcc, libc6-dev)
# and drives a terminal with script(1) (bsdutils) and setsid(1) (util-linux); it fails, never
# skips, when one is missing. python3-matplotlib: a code context answers the figures a chunk
# leaves open as PNGs, tested with the real library (LiveContextTests).
packages=(libseccomp-dev libcap-dev pkg-config python3 python3-venv nodejs bash coreutils procps iproute2 debootstrap
          gcc libc6-dev bsdutils util-linux python3-matplotlib)

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

# Python tools the tests use (the MCP SDK, as a real client of `sealbox mcp`): a venv in the
# cache directory, which outlives checkouts. pip runs again only when scripts/python-tools.txt
# differs from the copy kept in the venv, so a pin change takes effect and an unchanged one
# costs nothing. Debian's python3, for which python3-venv is installed above.
python_venv=${SEALBOX_VENV:-/var/cache/sealbox/venv}
python_requirements="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/python-tools.txt"
if ! cmp -s "$python_requirements" "$python_venv/python-tools.txt" || ! "$python_venv/bin/python" -c 'import sys' >/dev/null 2>&1; then
    if ! mkdir -p "$(dirname "$python_venv")" 2>/dev/null || [ ! -w "$(dirname "$python_venv")" ]; then
        log "cannot write $(dirname "$python_venv"): the Python test tools are not installed (run as root, or set SEALBOX_VENV)"
    else
        log "installing the Python test tools (scripts/python-tools.txt) into $python_venv"
        "$python_venv/bin/python" -c 'import sys' >/dev/null 2>&1 || /usr/bin/python3 -m venv --clear "$python_venv"
        rm -f "$python_venv/python-tools.txt"
        "$python_venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$python_requirements"
        cp "$python_requirements" "$python_venv/python-tools.txt"
    fi
fi

# Docker's own default seccomp profile, unmodified, for the test that runs jails under it:
# Debian ships moby's profiles/seccomp/default.json in golang-github-docker-docker-dev. Only
# that file is taken from the package (apt-get download + dpkg-deb -x: no Go toolchain and no
# dependencies installed). Skipped when the file is there already.
docker_profile=${SEALBOX_DOCKER_PROFILE:-/var/cache/sealbox/docker-default.json}
if [ ! -s "$docker_profile" ] && [ "$(id -u)" -eq 0 ]; then
    log "fetching Docker's default seccomp profile (golang-github-docker-docker-dev) into $docker_profile"
    scratch="$(mktemp -d)"
    if (cd "$scratch" && apt-get download -qq golang-github-docker-docker-dev >/dev/null 2>&1 ||
        { apt-get update -qq && apt-get download -qq golang-github-docker-docker-dev >/dev/null; }) &&
        dpkg-deb -x "$scratch"/golang-github-docker-docker-dev_*.deb "$scratch/x" &&
        mkdir -p "$(dirname "$docker_profile")" &&
        cp "$scratch/x/usr/share/gocode/src/github.com/docker/docker/profiles/seccomp/default.json" "$docker_profile.tmp" &&
        mv "$docker_profile.tmp" "$docker_profile"; then
        :
    else
        log "could not fetch Docker's default profile; the test that uses it will fail"
    fi
    rm -rf "$scratch"
fi
