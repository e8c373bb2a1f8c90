#!/usr/bin/env bash
# hold-conn.sh - hold-conn (samples/hold-conn) against echo-server's TCP port.
#
#   netns ams-hold-conn-PID (lo only)
#     echo-server --tcp-port TP  <--one connection, a probe line every few ms--  hold-conn
#
# Probes pass and the count ends the run with 0; the first connection is retried
# until the server is up; names resolve, and the Kubernetes service variable
# <LABEL>_SERVICE_HOST wins when set; the server going away fails the run with 1 on
# the spot; SIGTERM ends it with 0; a target that never comes up fails it.
. "$(dirname "$0")/lib.sh"

HP=$(random_port)
TP=$((HP + 1))
HOLD="$BIN/hold-conn"

start_bg echo "$BIN/echo-server" --http-port "$HP" --tcp-port "$TP" --name echo-hold --version v2
ECHO_PID=$LAST_PID
check "echo-server up" wait_for in_ns curl -fsS "http://127.0.0.1:$HP/healthz"

say "a bounded run"
rc=0; out=$(in_ns "$HOLD" --count 5 --interval-ms 20 "127.0.0.1:$TP") || rc=$?
check "exit 0 after --count probes" test "$rc" -eq 0
expect "connected line" "^connected to=127\.0\.0\.1:$TP$" "$out"
expect "banner shows pod, version and our address" \
    '^banner pod=echo-hold version=v2 peer=127\.0\.0\.1:[0-9]+$' "$out"
expect "one line per probe" '^probe=5 ok rtt_ms=[0-9.]+$' "$out"
expect "summary" '^done probes=5$' "$out"
rc=0; out=$(in_ns "$HOLD" --count 2 --interval-ms 20 "[::1]:$TP") || rc=$?
check "IPv6 target in brackets" test "$rc" -eq 0

say "waiting for a server that is not up yet"
TP2=$((HP + 3))
in_ns "$HOLD" --count 2 --interval-ms 20 --wait-secs 15 "127.0.0.1:$TP2" >"$WORK/wait.out" 2>&1 &
WAIT_PID=$!
sleep 1.2
start_bg echo2 "$BIN/echo-server" --http-port 0 --tcp-port "$TP2"
ECHO2_PID=$LAST_PID
rc=0; wait "$WAIT_PID" || rc=$?
check "connects once the server is up, exit 0" test "$rc" -eq 0
expect "said what it waited for" "^waiting: connect 127\.0\.0\.1:$TP2: Connection refused" \
    "$(cat "$WORK/wait.out")"
stop_ok "second server: SIGTERM, exit 0" "$ECHO2_PID" "$WORK/echo2.err"

say "names: the resolver, or the Kubernetes service variable when set"
rc=0; out=$(in_ns "$HOLD" --count 1 "localhost:$TP") || rc=$?
check "localhost resolves, exit 0" test "$rc" -eq 0
rc=0
out=$(ECHO_HOLD_SERVICE_HOST=127.0.0.1 in_ns "$HOLD" --count 1 --wait-secs 5 \
    "echo-hold.demo.svc.cluster.local:$TP") || rc=$?
check "ECHO_HOLD_SERVICE_HOST used for echo-hold.demo.svc.cluster.local, exit 0" test "$rc" -eq 0
expect "connected through the variable" "^connected to=127\.0\.0\.1:$TP$" "$out"

say "a long-running probe: SIGTERM to hold-conn ends it with 0"
start_bg hold1 "$HOLD" --interval-ms 50 "127.0.0.1:$TP"
HOLD1=$LAST_PID
check "probing" wait_for grep -q '^probe=3 ok' "$WORK/hold1.out"
kill -TERM "$HOLD1"
rc=0; wait "$HOLD1" || rc=$?
check "exit 0 on SIGTERM" test "$rc" -eq 0
expect "stopped line" '^stopped probes=[0-9]+$' "$(cat "$WORK/hold1.out")"

say "the server going away fails the probe at once"
start_bg hold2 "$HOLD" --interval-ms 1000 "127.0.0.1:$TP"
HOLD2=$LAST_PID
check "probing" wait_for grep -q '^probe=1 ok' "$WORK/hold2.out"
stop_ok "echo-server: SIGTERM, exit 0" "$ECHO_PID" "$WORK/echo.err"
t0=$(date +%s%N)
rc=0; wait "$HOLD2" || rc=$?
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
check "exit 1" test "$rc" -eq 1
check "within the probe interval (${ms} ms)" test "$ms" -lt 900
expect "the failure is explained" '^probe=2 FAIL connection closed by peer$' \
    "$(cat "$WORK/hold2.out")"

say "a target that never comes up"
rc=0; out=$(in_ns "$HOLD" --wait-secs 1 "127.0.0.1:$TP") || rc=$?
check "exit 1 after --wait-secs" test "$rc" -eq 1
expect "with the reason" '^FAIL connect 127\.0\.0\.1:[0-9]+: Connection refused$' "$out"
rc=0; in_ns "$HOLD" "no-port" >/dev/null 2>&1 || rc=$?
check "usage error: exit 2" test "$rc" -eq 2

finish
