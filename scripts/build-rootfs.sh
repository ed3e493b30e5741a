#!/usr/bin/env bash
# Builds a standalone minimal Debian root filesystem for `sealbox run --rootfs DIR`.
# See docs/rootfs.md.
set -euo pipefail

PROG=build-rootfs
PATH="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin${PATH:+:$PATH}"
export PATH
MARKER_NAME=.sealbox-rootfs
FALLBACK_SUITE=bookworm
FALLBACK_MIRROR=http://deb.debian.org/debian
# python3 (full stdlib: json, sqlite3, ...) costs ~15 MB over python3-minimal alone.
INCLUDE_PACKAGES=python3-minimal,python3
SYNTHETIC_ETC_FILES=(passwd group hosts resolv.conf nsswitch.conf hostname)

msg() { printf '%s: %s\n' "$PROG" "$*" >&2; }
die() { msg "error: $*"; exit 1; }

usage_error() {
    msg "$*"
    printf 'Usage: scripts/build-rootfs.sh [--suite SUITE] [--mirror URL] [--force] DIR (see --help)\n' >&2
    exit 2
}

usage() {
    cat <<EOF
Usage: scripts/build-rootfs.sh [--suite SUITE] [--mirror URL] [--force] DIR

Builds a standalone minimal Debian root filesystem in DIR with debootstrap
(--variant=minbase plus ${INCLUDE_PACKAGES//,/ }), for use with
'sealbox run --rootfs DIR'. Must run as root; installs debootstrap with apt-get
if it is missing.

The rootfs is built in DIR.tmp-PID next to DIR and renamed to DIR only once it
is complete; a finished rootfs carries the marker file DIR/$MARKER_NAME.
sealbox's synthetic /etc files (rootfs/etc in the repository: passwd, group,
hosts, resolv.conf, nsswitch.conf, hostname) replace Debian's, so the jail has
exactly one user, 'sandbox' (uid/gid 1000); shadow files are removed, as are
downloaded .debs and apt lists.

Options:
  --suite SUITE   Debian suite to install (default: this host's
                  VERSION_CODENAME from /etc/os-release, else $FALLBACK_SUITE)
  --mirror URL    Debian archive mirror (default: the first main-archive URI
                  (http(s)://.../debian) in this host's apt sources, else
                  $FALLBACK_MIRROR)
  --force         rebuild even if DIR already holds a finished rootfs, and
                  replace DIR if it exists without a marker (the old DIR is
                  removed only after the new rootfs is complete)
  -h, --help      show this help

If DIR already holds a finished rootfs and --force is not given, nothing is
done and the exit status is 0.

Example:
  sudo scripts/build-rootfs.sh /var/cache/sealbox/rootfs-bookworm
  sealbox run --rootfs /var/cache/sealbox/rootfs-bookworm -- python3 -c 'print(42)'
EOF
}

# --- defaults ---------------------------------------------------------------

host_suite() {
    local codename=""
    if [[ -r /etc/os-release ]]; then
        # shellcheck disable=SC1091
        codename=$(. /etc/os-release 2>/dev/null && printf '%s' "${VERSION_CODENAME:-}") || codename=""
    fi
    printf '%s\n' "${codename:-$FALLBACK_SUITE}"
}

# Prints every "deb" URI of apt's sources, in apt's reading order: sources.list, then
# sources.list.d/*.list and *.sources in name order. Comments and deb-src are skipped,
# as are deb822 stanzas with "Enabled: no". APT_ETC (default /etc/apt) is a test hook.
apt_deb_uris() {
    local etc=${APT_ETC:-/etc/apt} f
    local files=()
    [[ -f $etc/sources.list ]] && files+=("$etc/sources.list")
    if [[ -d $etc/sources.list.d ]]; then
        for f in "$etc"/sources.list.d/*; do
            case $f in *.list|*.sources) [[ -f $f ]] && files+=("$f") ;; esac
        done
    fi
    for f in ${files[@]+"${files[@]}"}; do
        case $f in
        *.sources)
            awk '
                function flush() {
                    if (is_deb && enabled != "no") { n = split(uris, u, /[ \t]+/); for (i = 1; i <= n; i++) if (u[i] != "") print u[i] }
                    is_deb = 0; enabled = ""; uris = ""; field = ""
                }
                /^[ \t]*#/ { next }
                /^[ \t]*$/ { flush(); next }
                /^[ \t]/ { if (field == "uris") uris = uris " " $0; next }   # continuation line
                {
                    name = tolower($0); sub(/:.*/, "", name)
                    value = $0; sub(/^[^:]*:[ \t]*/, "", value)
                    field = name
                    if (name == "types") { n = split(value, t, /[ \t]+/); for (i = 1; i <= n; i++) if (t[i] == "deb") is_deb = 1 }
                    else if (name == "uris") uris = value
                    else if (name == "enabled") enabled = tolower(value)
                }
                END { flush() }
            ' "$f" ;;
        *)
            # deb [options] URI suite [components...]
            sed -n -E 's/^[[:space:]]*deb[[:space:]]+(\[[^]]*\][[:space:]]+)?([^[:space:]]+)[[:space:]].*/\2/p' "$f" ;;
        esac
    done
}

# The first http(s) URI whose path ends in /debian, i.e. the main archive (deb.debian.org/debian,
# ftp.XX.debian.org/debian, a local mirror's /debian), not debian-security or third-party repos.
host_mirror() {
    local uri
    while IFS= read -r uri; do
        if [[ $uri =~ ^https?://[^/[:space:]]+(/[^[:space:]]*)?/debian/?$ ]]; then
            printf '%s\n' "${uri%/}"
            return 0
        fi
    done < <(apt_deb_uris 2>/dev/null || true)
    printf '%s\n' "$FALLBACK_MIRROR"
}

# --- helpers ----------------------------------------------------------------

# Lazily unmounts anything mounted at or below $1 (debootstrap mounts /proc and /sys in the
# target during its second stage and may leave them behind if it is killed).
unmount_below() {
    local root=$1 m
    [[ -r /proc/self/mounts ]] || return 0
    while IFS= read -r m; do
        umount -l "$m" 2>/dev/null || msg "warning: could not unmount $m"
    done < <(awk -v r="$root" '$2 == r || index($2, r "/") == 1 { print $2 }' /proc/self/mounts | sort -r)
}

remove_tree() {
    local dir=$1
    [[ -e $dir || -L $dir ]] || return 0
    unmount_below "$dir"
    # --one-file-system: never descend into something still mounted inside.
    rm -rf --one-file-system -- "$dir"
}

# --- arguments --------------------------------------------------------------

orig_args=("$@")
suite=""
mirror=""
force=0
dir=""
while (($#)); do
    case $1 in
    -h|--help) usage; exit 0 ;;
    --suite) (($# >= 2)) || usage_error "--suite needs a value"; suite=$2; shift 2 ;;
    --suite=*) suite=${1#*=}; shift ;;
    --mirror) (($# >= 2)) || usage_error "--mirror needs a value"; mirror=$2; shift 2 ;;
    --mirror=*) mirror=${1#*=}; shift ;;
    --force) force=1; shift ;;
    --) shift; break ;;
    -*) usage_error "unknown option: $1" ;;
    *) [[ -z $dir ]] || usage_error "more than one DIR given: $dir, $1"; dir=$1; shift ;;
    esac
done
if (($#)); then
    [[ -z $dir && $# -eq 1 ]] || usage_error "more than one DIR given"
    dir=$1
fi
[[ -n $dir ]] || usage_error "missing DIR"

suite=${suite:-$(host_suite)}
mirror=${mirror:-$(host_mirror)}
[[ $suite =~ ^[A-Za-z0-9][A-Za-z0-9._-]*$ ]] || die "invalid suite name: $suite"
[[ $mirror =~ ^(https?|file)://[^[:space:]]+$ ]] || die "invalid mirror URL: $mirror (expected http://, https:// or file://)"

[[ $(id -u) -eq 0 ]] || die "must run as root (debootstrap creates device nodes and chowns files); try: sudo $0 ${orig_args[*]}"

# Resolve DIR to an absolute path (its parent is created if needed).
base=$(basename -- "$dir")
[[ -n $base && $base != . && $base != .. && $base != / ]] || die "invalid DIR: $dir"
parent_arg=$(dirname -- "$dir")
mkdir -p -- "$parent_arg" || die "cannot create $parent_arg"
parent=$(cd -P -- "$parent_arg" && pwd) || die "cannot resolve $parent_arg"
dir="${parent%/}/$base"
case $dir in
/bin|/boot|/dev|/etc|/home|/lib|/lib32|/lib64|/libx32|/media|/mnt|/opt|/proc|/root|/run|/sbin|/srv|/sys|/tmp|/usr|/usr/bin|/usr/sbin|/usr/lib|/usr/lib32|/usr/lib64|/usr/libexec|/usr/libx32|/usr/local|/usr/share|/var|/var/cache|/var/lib|/var/log|/var/tmp)
    die "refusing to use $dir as a rootfs directory" ;;
esac
repo=$(cd -P -- "$(dirname -- "$0")/.." && pwd)
[[ $dir != "$repo" && $repo != "$dir"/* ]] || die "refusing to use $dir: it is or contains the sealbox repository"
etc_src="$repo/rootfs/etc"
for f in "${SYNTHETIC_ETC_FILES[@]}"; do
    [[ -f $etc_src/$f ]] || die "missing $etc_src/$f (is $repo the sealbox repository?)"
done
marker="$dir/$MARKER_NAME"

# Serialise builds in the same parent directory; a second concurrent run waits, then finds
# the marker and exits.
exec 9<"$parent"
if ! flock -n 9; then
    msg "another build is running in $parent; waiting for it"
    flock 9
fi

# Leftovers of earlier runs that were killed (we hold the lock, so none is in progress). A
# DIR.old-PID with no DIR means a --force run died between its two renames: put it back.
for stale in "$dir".tmp-* "$dir".old-*; do
    [[ -e $stale ]] || continue
    stale_pid=${stale##*[.-]}
    if [[ $stale_pid =~ ^[0-9]+$ ]] && [[ $stale_pid != "$$" ]] && ! kill -0 "$stale_pid" 2>/dev/null; then
        if [[ $stale == "$dir".old-* && ! -e $dir && -f $stale/$MARKER_NAME ]]; then
            msg "restoring $dir from leftover $stale"
            mv -T -- "$stale" "$dir"
        else
            msg "removing leftover $stale"
            remove_tree "$stale"
        fi
    fi
done

if [[ -f $marker && $force -eq 0 ]]; then
    msg "$dir already holds a finished rootfs (use --force to rebuild):"
    sed 's/^/  /' "$marker" >&2
    built_suite=$(sed -n 's/^suite=//p' "$marker")
    if [[ -n $built_suite && $built_suite != "$suite" ]]; then
        msg "warning: it was built for suite '$built_suite', not '$suite'"
    fi
    exit 0
fi
if [[ -e $dir || -L $dir ]]; then
    [[ -d $dir && ! -L $dir ]] || die "$dir exists and is not a directory"
    if [[ ! -f $marker && $force -eq 0 ]] && [[ -n $(ls -A -- "$dir") ]]; then
        die "$dir exists, is not empty and has no $MARKER_NAME marker; use --force to replace it"
    fi
fi

# --- debootstrap ------------------------------------------------------------

if ! command -v debootstrap >/dev/null 2>&1; then
    command -v apt-get >/dev/null 2>&1 || die "debootstrap is not installed and apt-get is not available"
    msg "installing debootstrap with apt-get"
    DEBIAN_FRONTEND=noninteractive apt-get update || die "apt-get update failed"
    DEBIAN_FRONTEND=noninteractive apt-get install -y debootstrap || die "apt-get install debootstrap failed"
    command -v debootstrap >/dev/null 2>&1 || die "debootstrap still not found after installing it"
fi
for tool in chroot flock du; do
    command -v "$tool" >/dev/null 2>&1 || die "required tool not found: $tool"
done

tmp="$dir.tmp-$$"
old="$dir.old-$$"
done_ok=0
cleanup() {
    local rc=$?
    if ((done_ok == 0)); then
        if [[ -e $tmp ]]; then
            msg "build failed; removing $tmp"
            remove_tree "$tmp" || msg "warning: could not remove $tmp"
        fi
        # If the swap was interrupted between the two renames, put the old rootfs back.
        if [[ -e $old && ! -e $dir ]]; then mv -T -- "$old" "$dir" || true; fi
        ((rc != 0)) || rc=1
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

msg "building $suite rootfs from $mirror in $tmp"
start=$(date +%s)
[[ ! -e $tmp ]] || remove_tree "$tmp"
if ! debootstrap --variant=minbase --include="$INCLUDE_PACKAGES" "$suite" "$tmp" "$mirror"; then
    [[ -f $tmp/debootstrap/debootstrap.log ]] && { msg "tail of $tmp/debootstrap/debootstrap.log:"; tail -n 20 "$tmp/debootstrap/debootstrap.log" >&2; }
    die "debootstrap failed"
fi
unmount_below "$tmp"

# --- sealbox's /etc ---------------------------------------------------------

msg "installing sealbox's synthetic /etc files"
for f in "${SYNTHETIC_ETC_FILES[@]}"; do
    # rm first: debootstrap's copy may be a symlink (resolv.conf), which cp would follow
    # out of the rootfs and onto the host.
    rm -f -- "$tmp/etc/$f"
    install -m 0644 -o 0 -g 0 -- "$etc_src/$f" "$tmp/etc/$f"
done
# One user only: no shadow databases, no backups of Debian's passwd/group.
rm -f -- "$tmp/etc/shadow" "$tmp/etc/gshadow" "$tmp/etc/shadow-" "$tmp/etc/gshadow-" \
    "$tmp/etc/passwd-" "$tmp/etc/group-"

# --- trim -------------------------------------------------------------------

find "$tmp/var/cache/apt/archives" -maxdepth 1 -type f -name '*.deb' -delete 2>/dev/null || true
rm -f -- "$tmp"/var/cache/apt/*.bin
if [[ -d $tmp/var/lib/apt/lists ]]; then
    find "$tmp/var/lib/apt/lists" -mindepth 1 -maxdepth 1 ! -name partial -exec rm -rf -- {} +
fi

# --- check ------------------------------------------------------------------

[[ -x $tmp/usr/bin/python3 ]] || die "no usr/bin/python3 in the new rootfs"
chroot_bin=$(command -v chroot)
out=$(env -i PATH=/usr/bin:/bin LANG=C.UTF-8 "$chroot_bin" "$tmp" /usr/bin/python3 -c 'import json, sys; print(json.dumps(6*7))') \
    || die "python3 does not run in the new rootfs"
[[ $out == 42 ]] || die "python3 in the new rootfs printed '$out', expected 42"

# --- finish -----------------------------------------------------------------

{
    printf 'suite=%s\n' "$suite"
    printf 'mirror=%s\n' "$mirror"
    printf 'date=%s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
    printf 'arch=%s\n' "$(chroot "$tmp" /usr/bin/dpkg --print-architecture 2>/dev/null || uname -m)"
    printf 'packages=minbase,%s\n' "$INCLUDE_PACKAGES"
} >"$tmp/$MARKER_NAME"
chmod 0644 "$tmp/$MARKER_NAME"
sync -f "$tmp/$MARKER_NAME" 2>/dev/null || true

if [[ -e $dir ]]; then
    # Replace: an empty DIR is renamed over; a non-empty one (--force) is moved aside first
    # and removed only after the new rootfs is in place.
    if [[ -n $(ls -A -- "$dir") ]]; then
        mv -T -- "$dir" "$old"
    fi
fi
mv -T -- "$tmp" "$dir"
done_ok=1
if [[ -e $old ]]; then
    msg "removing the previous rootfs"
    remove_tree "$old" || msg "warning: could not remove $old"
fi

elapsed=$(($(date +%s) - start))
msg "done in ${elapsed}s: $dir"
du -sh --one-file-system -- "$dir"
cat -- "$dir/$MARKER_NAME"
