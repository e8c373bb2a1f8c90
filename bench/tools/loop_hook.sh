# shellcheck shell=bash disable=SC2034,SC2153,SC2154
# bench/tools/loop_hook.sh - a BENCH_HOOK: how long each ztunnel's event-loop turns last under a
# neighbour's flood (the fairness step's question: why does the victim wait?).
#
#   BENCH_STEPS=hook BENCH_ONLY="direct amesh" BENCH_HOOK=$PWD/bench/tools/loop_hook.sh \
#       LOOP_FLOODS="none bulk conns storm" bench/run.sh build
#
# Per flood (bench/workers.sh's fair_flood, from the flood pod), with the victim's paced round
# trips running too, `perf record` of syscall tracepoints on both ztunnels (all threads) for
# LOOP_SECS (default 2): a loop turn is the time from one epoll_wait's return to the next
# epoll_wait's entry on the same thread. Printed per side: turns/s, turn length p50 / p99 /
# max, and bytes received (read/recvfrom/recvmsg) per turn p50 / max. A victim event that
# becomes ready during a long turn waits for the rest of that turn (and for the other side's).
LOOP_SECS=${LOOP_SECS:-2}
BENCH_STEPS_SAVED=$STEPS
STEPS=" none " # load workers.sh's helpers (fair_flood) without running its steps
# shellcheck source=/dev/null
. "$BENCH/workers.sh"
STEPS=$BENCH_STEPS_SAVED
for f in ${LOOP_FLOODS:-none bulk conns storm}; do
    [ "$f" = none ] || { fair_flood "$f" "$SERVER_IP" $((LOOP_SECS + 4)); sleep 1; }
    ip netns exec "$N1" "$BT" -b "$CLIENT_IP" lat "$SERVER_IP" "$P_ECHO" "$FAIR_RATE" $((LOOP_SECS + 1)) 1024 \
        >"$WORK/loop-victim.txt" 2>&1 &
    LOOP_V=$!
    LOOP_P=()
    for side in c s; do
        pid=${PC[amesh]}
        [ $side = c ] || pid=${PS[amesh]}
        perf record -q -o "$WORK/loop-$side.data" -e syscalls:sys_enter_epoll_wait -e syscalls:sys_exit_epoll_wait \
            -e syscalls:sys_exit_read -e syscalls:sys_exit_recvfrom -e syscalls:sys_exit_recvmsg \
            -p "$pid" -- sleep "$LOOP_SECS" >/dev/null 2>&1 &
        LOOP_P+=($!)
    done
    wait "$LOOP_V" "${LOOP_P[@]}" || true
    echo "LOOP $f: victim $(sed -n 's/^RESULT //p' "$WORK/loop-victim.txt")"
    for side in c s; do
        perf script -i "$WORK/loop-$side.data" -F tid,time,event,trace 2>/dev/null |
            /usr/bin/python3 -c '
import re, statistics, sys
side, secs = sys.argv[1], float(sys.argv[2])
start, turns, got = {}, [], {}
for line in sys.stdin:
    m = re.match(r"\s*(\d+)\s+([\d.]+):\s+syscalls:(sys_\w+):\s*(.*)", line)
    if not m:
        continue
    tid, t, ev, rest = int(m.group(1)), float(m.group(2)), m.group(3), m.group(4)
    if ev == "sys_exit_epoll_wait":
        start[tid], got[tid] = t, 0
    elif ev == "sys_enter_epoll_wait" and tid in start:
        turns.append(((t - start.pop(tid)) * 1e6, got.pop(tid, 0)))
    elif tid in got:
        r = re.search(r"0x([0-9a-f]+)", rest)
        v = int(r.group(1), 16) if r else 0
        if v < 1 << 40:
            got[tid] += v
if not turns:
    print(f"LOOP   {side}: no loop turns recorded"); sys.exit()
us = sorted(x[0] for x in turns); by = sorted(x[1] for x in turns)
pick = lambda a, p: a[int((len(a) - 1) * p)]
name = "client" if side == "c" else "server"
print(f"LOOP   {name} ztunnel: {len(turns) / secs:,.0f} turns/s, turn p50 {pick(us, .5):,.0f} us, "
      f"p99 {pick(us, .99):,.0f} us, max {us[-1]:,.0f} us; received per turn p50 {pick(by, .5):,} B, max {by[-1]:,} B; "
      f"busy {sum(us) / secs / 1e4:.0f} %")' "$side" "$LOOP_SECS"
    done
    [ "$f" = none ] || wait "$FLOOD_PID" 2>/dev/null || true
done
