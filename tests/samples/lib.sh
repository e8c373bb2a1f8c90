# lib.sh - helpers for the sample-app tests (tests/samples/*.sh).
#
# A test sources this file, which creates one network namespace of its own
# (loopback only: nothing leaves it) and removes it, with every process the
# test started, at exit. Needs root, as the integration tests do; without it
# the test fails rather than skips.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BIN=${MESH_BIN:-$ROOT/build-asan/bin}
PY=/usr/bin/python3
CLIENT="$PY $ROOT/tests/samples/echo_client.py"
NS=ams-$(basename "$0" .sh)-$$
WORK=$(mktemp -d /tmp/amesh-samples.XXXXXX)
PIDS=()
FAILS=0
PASSES=0
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

say() { printf '# %s\n' "$*"; }
pass() { PASSES=$((PASSES + 1)); printf 'ok - %s\n' "$*"; }
fail() { FAILS=$((FAILS + 1)); printf 'not ok - %s\n' "$*"; }
check() { # check "description" command...
    local what=$1; shift
    if "$@"; then pass "$what"; else fail "$what"; fi
}
# expect "description" REGEX TEXT: TEXT matches the extended REGEX (printed when not).
# A here-string, not a pipe: grep -q exits at the first match, and with pipefail the
# writer's SIGPIPE would turn a match in a long text into a failure.
expect() {
    if grep -Eq -- "$2" <<<"$3"; then pass "$1"; else
        fail "$1"; printf '#   wanted /%s/ in:\n%s\n' "$2" "$3" | sed 's/^/#   /'
    fi
}

cleanup() {
    local rc=$?
    for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
    sleep 0.2
    for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill -9 "$p" 2>/dev/null || true; done
    ip netns del "$NS" 2>/dev/null || true
    if [ "${KEEP_WORK:-0}" = 1 ]; then echo "work dir kept: $WORK"; else rm -rf "$WORK"; fi
    exit $rc
}
trap cleanup EXIT

if [ "$(id -u)" -ne 0 ] || ! ip netns add "$NS" 2>/dev/null; then
    echo "FAIL: the sample tests need root and network namespaces" >&2
    exit 1
fi
ip -n "$NS" link set lo up

in_ns() { ip netns exec "$NS" "$@"; }

# Waits up to WAIT_SECS (default 10) for command... to succeed.
wait_for() {
    local deadline=$(( $(date +%s) + ${WAIT_SECS:-10} ))
    until "$@" >/dev/null 2>&1; do
        [ "$(date +%s)" -lt "$deadline" ] || return 1
        sleep 0.05
    done
}

# start_bg NAME command...: runs command in the namespace, stdout in $WORK/NAME.out and stderr
# in $WORK/NAME.err; the pid is in $LAST_PID (ip netns exec execs, so it is the command's own).
start_bg() {
    local name=$1; shift
    ip netns exec "$NS" "$@" >"$WORK/$name.out" 2>"$WORK/$name.err" &
    LAST_PID=$!
    PIDS+=("$LAST_PID")
}

# stop_ok "description" PID ERRFILE: SIGTERM, then exit status 0 and no sanitizer report.
stop_ok() {
    local what=$1 pid=$2 err=$3 rc=0
    kill -TERM "$pid"
    wait "$pid" || rc=$?
    if [ "$rc" -eq 0 ] && ! grep -Eq 'Sanitizer|runtime error' "$err"; then pass "$what"; else
        fail "$what (exit $rc)"; sed 's/^/#   /' "$err"
    fi
}

# A random port; every port is free in a namespace of our own.
random_port() { echo $(( 20000 + RANDOM % 20000 )); }

finish() {
    printf '%d passed, %d failed\n' "$PASSES" "$FAILS"
    [ "$FAILS" -eq 0 ]
}
