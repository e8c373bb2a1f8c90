#!/usr/bin/env bash
# run.sh SCRIPT [ARGS...] - runs one integration test, then fails it if the test left
# anything of its own behind (ctest runs every integration test through this wrapper).
#
# What a test leaves can only be told apart from what other tests and clusters on this
# machine are doing at the same time if the test has its own places to leave it in, so
# the test runs in
#   - its own cgroup (cgroup v2): every process it starts, daemons included (setsid or a
#     double fork does not leave a cgroup); without cgroup v2, its own session;
#   - its own network namespace (loopback up): the links of "the root namespace" it sees
#     are its own;
#   - its own mount namespace, with a private tmpfs on /run/netns (the names `ip netns
#     add` makes);
#   - its own TMPDIR, /tmp/amesh-run.XXXXXX, where lib.sh makes its WORK dir (amesh-it.*)
#     and mktemp and Python put their files (not bound over /tmp: the checkout, or a
#     test's own scripts, may live under /tmp);
#   - its own session (setsid), so that a terminal's or ctest's signals reach it whole.
# After the test exits (any status), the wrapper waits up to 3 s for its processes to go,
# then fails the test naming each process, network namespace, link, TMPDIR entry, and
# /run/amesh or /etc/netns entry (shared with the host: compared by name, before/after)
# that is left, and removes them. The test's own exit status is kept when it failed.
set -uo pipefail

TEST=${1:?usage: run.sh SCRIPT [ARGS...]}

say() { printf 'run.sh: %s\n' "$*"; }

# cgroup v2 mount point (/sys/fs/cgroup, or /sys/fs/cgroup/unified on a hybrid set-up).
cgroup2_root() { awk '$3 == "cgroup2" { print $2; exit }' /proc/self/mounts; }

if [ -z "${AMESH_IT_INNER:-}" ]; then
    # ---- outer half, in the host's namespaces ---------------------------------------
    [ "$(id -u)" = 0 ] || { echo "FAIL: integration tests need root" >&2; exit 1; }
    ls_shared() { ls -A /run/amesh /etc/netns 2>/dev/null | sort; }
    before_shared=$(ls_shared)
    PRIVTMP=$(mktemp -d /tmp/amesh-run.XXXXXX)
    CG=
    # AMESH_IT_NO_CGROUP=1: the session-only fallback (to try it where cgroup v2 exists).
    if [ -z "${AMESH_IT_NO_CGROUP:-}" ] && root=$(cgroup2_root) && [ -n "$root" ] && [ -w "$root" ]; then
        # Cgroups of wrappers that died (e.g. SIGKILLed by ctest's timeout): end them.
        for old in "$root"/amesh-it-*; do
            [ -d "$old" ] || continue
            kill -0 "${old##*-}" 2>/dev/null && continue
            echo 1 >"$old/cgroup.kill" 2>/dev/null || true
            rmdir "$old" 2>/dev/null || true
        done
        CG=$root/amesh-it-$$
        mkdir "$CG" || CG=
    fi
    rc=0
    AMESH_IT_INNER=1 AMESH_IT_CG=$CG AMESH_IT_TMP=$PRIVTMP \
        unshare --mount --propagation private --net "$0" "$@" || rc=$?
    if [ -n "$CG" ]; then
        # The inner half emptied it; anything here escaped both the session and the kill.
        [ -s "$CG/cgroup.procs" ] && { echo 1 >"$CG/cgroup.kill"; sleep 0.5; }
        rmdir "$CG" 2>/dev/null || say "cannot remove cgroup $CG"
    fi
    left=$(comm -13 <(echo "$before_shared") <(ls_shared) | grep . || true)
    if [ -n "$left" ]; then
        say "LEFT BEHIND in /run/amesh or /etc/netns: $(echo $left)"
        [ $rc = 0 ] && rc=1
    fi
    rm -rf --one-file-system "$PRIVTMP"
    exit $rc
fi

# ---- inner half: own mount and network namespaces ---------------------------------------
CG=${AMESH_IT_CG:-}
unset AMESH_IT_INNER AMESH_IT_CG
ip link set lo up
mkdir -p /run/netns
mount -t tmpfs -o mode=755 tmpfs /run/netns
links_before=$(ip -o link show | awk -F': ' '{print $2}' | sed 's/@.*//' | sort)

# The test: in the cgroup first, then its own session (not a group leader here, so setsid
# does not fork and $! is the session id).
TMPDIR=$AMESH_IT_TMP bash -c '[ -z "$1" ] || echo $$ >"$1/cgroup.procs" || exit 125
    shift; exec setsid bash "$@"' run.sh "$CG" "$@" &
SID=$!
rc=0
wait $SID || rc=$?

members() { # the test's processes still alive
    if [ -n "$CG" ]; then cat "$CG/cgroup.procs"; else ps -eo pid=,sid= | awk -v s=$SID '$2 == s {print $1}'; fi
}
leaks=()
for _ in $(seq 30); do [ -z "$(members)" ] && break; sleep 0.1; done
if [ -n "$(members)" ]; then
    while read -r pid; do
        leaks+=("process $pid: $(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | cut -c1-160)")
    done < <(members)
    if [ -n "$CG" ]; then echo 1 >"$CG/cgroup.kill"; else members | xargs -r kill -9; fi
    for _ in $(seq 30); do [ -z "$(members)" ] && break; sleep 0.1; done
fi
for ns in $(ls -A /run/netns); do
    leaks+=("network namespace $ns")
    ip netns del "$ns" 2>/dev/null || true
done
for l in $(comm -13 <(echo "$links_before") \
    <(ip -o link show | awk -F': ' '{print $2}' | sed 's/@.*//' | sort)); do
    leaks+=("link $l")
    ip link del "$l" 2>/dev/null || true
done
for f in $(ls -A "$AMESH_IT_TMP"); do
    leaks+=("file $AMESH_IT_TMP/$f")
done
if [ ${#leaks[@]} -gt 0 ]; then
    say "FAIL: $(basename "$1") left behind:"
    printf 'run.sh:   %s\n' "${leaks[@]}"
    [ $rc = 0 ] && rc=1
fi
exit $rc
