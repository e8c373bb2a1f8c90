#!/usr/bin/env bash
# fresh-check.sh - `make demo` on a fresh Debian 12 machine, as a new user would run it.
# Run by `make fresh-check` (as root) and by .ci/run after `make test`.
#
# Why: a package the project needs but tools/install-deps.sh does not install goes
# unnoticed on a machine where it was once installed by hand. Here it cannot: the root
# has only what a fresh machine has, and the check fails at the step that needs it.
#
# What a "fresh Debian 12 machine" has, honestly: mmdebstrap's minbase variant (the
# Essential packages and apt) plus make, the one command the README's first line needs.
# Not git (the checkout is copied in, as a release tarball would be), not python3,
# iproute2, procps, curl or a compiler, though a desktop or server install may have some
# of them: a Debian 12 container image has none, and the project must not rely on them.
# ca-certificates is added only when this machine's apt sources use https (apt cannot
# fetch from them without it; the user's apt could).
#
# Steps:
#   1. base root: mmdebstrap --variant=minbase --include=make bookworm, from THIS
#      machine's apt sources (/etc/apt/sources.list{,.d}, passed on as they are, so no
#      archive host is named here) and its apt proxy/validity settings. Cached as a
#      tarball under $CACHE, keyed by the sources, the settings and mmdebstrap's
#      arguments and version; rebuilt after $MAX_AGE_DAYS days.
#   2. a throw-away copy of the base root gets the working tree's files (git ls-files:
#      tracked and untracked-but-not-ignored, so no build directories).
#   3. install: `tools/install-deps.sh` inside the root (chroot in its own mount and PID
#      namespaces; /proc, /sys, /dev mounted, /run a private tmpfs), with the network,
#      via apt-get and the same sources. Every package is installed from scratch each
#      run; only the downloaded .deb files are kept between runs ($CACHE/archives).
#   4. demo: `make demo` inside the root, in a new network namespace as well (only
#      loopback): the demo's namespaces, links and /run/amesh can never meet a cluster or
#      a test on the host, and the build and demo are shown to need no network.
#      `make demo` runs install-deps.sh again, which then must find nothing missing.
#   5. on exit, success or not: every process of the root is gone (its PID namespace
#      ends with it), its mounts die with its mount namespace, and the root is removed.
#
# Environment: FRESH_CHECK_CACHE (default /var/cache/amesh-fresh-check),
# FRESH_CHECK_MAX_AGE_DAYS (7), FRESH_CHECK_CMD (what step 4 runs; default "make demo"),
# FRESH_CHECK_KEEP=1 keeps the root for a look after a failure.
set -euo pipefail

SRC=$(cd "$(dirname "$0")/.." && pwd)
CACHE=${FRESH_CHECK_CACHE:-/var/cache/amesh-fresh-check}
MAX_AGE_DAYS=${FRESH_CHECK_MAX_AGE_DAYS:-7}
CMD=${FRESH_CHECK_CMD:-make demo}
SUITE=bookworm
# A fresh machine's login environment for root, not the caller's.
CLEAN_ENV=(env -i HOME=/root TERM="${TERM:-dumb}" LANG=C.UTF-8
    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin)

say() { printf 'fresh-check: %s\n' "$*"; }
die() { printf 'fresh-check: FAIL: %s\n' "$*" >&2; exit 1; }
elapsed() { echo "$(($(date +%s) - $1)) s"; }

[ "$(id -u)" = 0 ] || die "needs root (mmdebstrap, chroot, namespaces)"
command -v mmdebstrap >/dev/null || die "mmdebstrap missing: run tools/install-deps.sh fresh-check"
git -C "$SRC" rev-parse --is-inside-work-tree >/dev/null 2>&1 ||
    die "$SRC is not a git checkout (the copy is made from git ls-files)"

# ---- this machine's apt sources and settings ------------------------------------------
sources=()
if [ -s /etc/apt/sources.list ] && grep -qE '^[[:space:]]*deb' /etc/apt/sources.list; then
    sources+=(/etc/apt/sources.list)
fi
for f in /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
    [ -s "$f" ] && sources+=("$f")
done
[ ${#sources[@]} -gt 0 ] || die "no apt sources in /etc/apt/sources.list{,.d}"

# Only the settings that decide whether and how apt reaches those sources.
aptopts=()
for opt in Acquire::http::Proxy Acquire::https::Proxy Acquire::Check-Valid-Until \
    Acquire::Check-Date Acquire::Retries; do
    v=$(apt-config dump "$opt" | sed -n "s|^$opt \"\\(.*\\)\";\$|\\1|p" | head -1)
    [ -n "$v" ] && aptopts+=("$opt \"$v\";")
done

include=make
cat "${sources[@]}" | grep -qE 'https://' && include+=,ca-certificates
mmargs=(--variant=minbase --include="$include" --mode=root --format=tar)
for o in "${aptopts[@]}"; do mmargs+=(--aptopt="$o"); done

key=$({
    mmdebstrap --version
    printf '%s\n' "$SUITE" "${mmargs[@]}" "$(dpkg --print-architecture)"
    for f in "${sources[@]}"; do printf '== %s\n' "$f"; cat "$f"; done
} | sha256sum | cut -c1-16)
base=$CACHE/base-$key.tar

# ---- 1. the cached base root ----------------------------------------------------------
mkdir -p "$CACHE/archives/partial"
exec 8>"$CACHE/lock"
flock 8 # one bootstrap at a time; readers of a finished tarball need no lock
if [ -f "$base" ] && [ -n "$(find "$base" -mtime -"$MAX_AGE_DAYS")" ]; then
    say "base root: cached $base"
else
    t0=$(date +%s)
    say "base root: mmdebstrap ${mmargs[*]} $SUITE (sources: ${sources[*]})"
    rm -f "$CACHE"/base-*.tar "$CACHE"/base-*.tar.tmp
    mmdebstrap --quiet "${mmargs[@]}" "$SUITE" "$base.tmp" "${sources[@]}" ||
        { rm -f "$base.tmp"; die "mmdebstrap failed"; }
    mv "$base.tmp" "$base"
    say "base root: built in $(elapsed "$t0")"
fi
# .deb files no run has used for 30 days (superseded versions) go.
find "$CACHE/archives" -maxdepth 1 -name '*.deb' -atime +30 -delete
exec 8>&-

# ---- 2. a throw-away root with the checkout -------------------------------------------
WORKDIR=$(mktemp -d /var/tmp/amesh-fresh-check.XXXXXX)
R=$WORKDIR/root

mounted_under() { grep -F " $WORKDIR/" /proc/self/mountinfo || true; }
procs_in_root() { # pids whose root directory is in the throw-away root
    find /proc/[0-9]*/root -maxdepth 0 \( -lname "$R" -o -lname "$R/*" \) 2>/dev/null |
        cut -d/ -f3
}
CHILD=
cleanup() {
    local rc=$?
    # Killing unshare kills its child (--kill-child), PID 1 of the namespace, and with it
    # every process in there; wait (bounded) until the kernel has reaped them all. SIGKILL:
    # unshare --fork blocks SIGTERM and SIGINT while its child runs.
    if [ -n "$CHILD" ]; then kill -KILL "$CHILD" 2>/dev/null || true; wait "$CHILD" 2>/dev/null || true; fi
    for _ in $(seq 100); do [ -z "$(procs_in_root)" ] && break; sleep 0.1; done
    if [ -n "$(procs_in_root)" ]; then
        say "processes still in the root: $(procs_in_root | tr '\n' ' ')- killing them"
        procs_in_root | xargs -r kill -9 2>/dev/null || true
        sleep 0.5
    fi
    # The namespaces' ends took every process and mount with them; check, never assume:
    # removing a root with the host's /dev bound into it would remove the host's /dev.
    if [ -n "$(mounted_under)" ]; then
        say "unmounting what is left under $WORKDIR"
        mounted_under | awk '{print $5}' | sort -r | xargs -r -n1 umount -l || true
    fi
    if [ "${FRESH_CHECK_KEEP:-0}" = 1 ]; then
        say "root kept: $R"
    elif [ -z "$(mounted_under)" ]; then
        rm -rf --one-file-system "$WORKDIR"
    else
        say "NOT removing $WORKDIR: still mounted"; rc=1
    fi
    [ $rc = 0 ] && say "PASS" || say "FAILED (exit $rc)"
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

t0=$(date +%s)
mkdir -p "$R"
tar -x -p --numeric-owner -f "$base" -C "$R"
cp -L /etc/resolv.conf "$R/etc/resolv.conf" 2>/dev/null || true
mkdir -p "$R/src/amesh"
(cd "$SRC" && git ls-files -z --cached --others --exclude-standard |
    while IFS= read -r -d '' f; do if [ -e "$f" ] || [ -L "$f" ]; then printf '%s\0' "$f"; fi; done |
    tar -c --null -T - -f -) | tar -x -f - -C "$R/src/amesh"
say "root ready in $(elapsed "$t0"): $R ($(du -sm "$R" | cut -f1) MB)"

# Runs $2 in the root (in a subshell: it execs): a new mount and PID namespace (and $1 = net: a new network
# namespace), with /proc, /sys, /dev, a private /run and the .deb cache mounted.
in_root() { # net|host command
    local net=() lo=:
    if [ "$1" = net ]; then net=(--net); lo='ip link set lo up'; fi
    exec unshare --mount --propagation private --pid --fork --kill-child "${net[@]}" \
        /bin/bash -euo pipefail -c '
        R=$1 CACHE=$2 LO=$3; shift 3
        $LO
        mount --bind "$R" "$R" # "/" must be a mount point in the root: ip netns makes it rslave
        mount -t proc proc "$R/proc"
        mount -t sysfs sysfs "$R/sys"
        mount --rbind /dev "$R/dev"
        mount -t tmpfs -o mode=755 tmpfs "$R/run"
        mkdir -p "$R/run/lock"
        mount --bind "$CACHE/archives" "$R/var/cache/apt/archives"
        exec chroot "$R" "$@"' fresh-check "$R" "$CACHE" "$lo" \
        "${CLEAN_ENV[@]}" /bin/bash -c "cd /src/amesh && $2"
}

# in_root in the background, so that a signal to this script is handled at once (bash
# runs traps only between foreground commands) and cleanup can end the namespaces.
run_root() {
    in_root "$@" &
    CHILD=$!
    local rc=0
    wait "$CHILD" || rc=$?
    CHILD=
    return $rc
}

# ---- 3. install: tools/install-deps.sh, with the network ------------------------------
t0=$(date +%s)
say "install: tools/install-deps.sh in the fresh root"
run_root host tools/install-deps.sh || die "tools/install-deps.sh failed in the fresh root"
say "install: done in $(elapsed "$t0")"

# ---- 4. demo: `make demo`, in its own network namespace -------------------------------
t0=$(date +%s)
say "demo: $CMD (own network namespace, no network)"
run_root net "$CMD" || die "'$CMD' failed on a fresh Debian 12 root with only what tools/install-deps.sh installs"
say "demo: done in $(elapsed "$t0")"
