# shellcheck shell=bash disable=SC2034,SC2153,SC2154
# bench/tools/contention_hook.sh - a BENCH_HOOK: what multi-threading costs inside ztunnel.
#
#   BENCH_STEPS=hook BENCH_ONLY=amesh BENCH_HOOK=$PWD/bench/tools/contention_hook.sh \
#       CT_WORKERS="1 2" CT_LOADS="bulk8 storm" bench/run.sh build
#
# For each worker count and load, both ztunnels restarted with --workers N, the load run from
# the flood pod (bench/workers.sh's fair_flood: bulk = iperf3 -P CT_P, storm = new connections)
# or 8 streams (bulk8), and `perf record -g` (cpu-clock) of both ztunnels, all threads, for
# CT_SECS (default 4). Printed per side: samples, and the share of them (self time, any thread)
# in what threads contend on: locks (pthread_mutex_*, futex, __lll_lock_wait), cross-thread
# posts and wake-ups (loop_post, eventfd, on_post), hand-offs between workers, and the idle
# loop (epoll_wait with nothing to do).
CT_SECS=${CT_SECS:-4}
BENCH_STEPS_SAVED=$STEPS
STEPS=" none " # load workers.sh's helpers without running its steps
# shellcheck source=/dev/null
. "$BENCH/workers.sh"
STEPS=$BENCH_STEPS_SAVED
for w in ${CT_WORKERS:-1 2}; do
    amesh_restart --workers "$w" || continue
    for load in ${CT_LOADS:-bulk8 storm}; do
        case $load in
        bulk8)
            start_bg "$WORK/ct-load.txt" ip netns exec "$N1" iperf3 -c "$SERVER_IP" -p "$P_IPERF_FLOOD" \
                -B "$FLOOD_IP" -P 8 -t $((CT_SECS + 3)) ;;
        *) fair_flood "$load" "$SERVER_IP" $((CT_SECS + 3)) ;;
        esac
        CT_L=$LAST_PID
        sleep 1
        CT_P=()
        for side in c s; do
            pid=${PC[amesh]}
            [ $side = c ] || pid=${PS[amesh]}
            perf record -q -g -o "$WORK/ct-$side.data" -p "$pid" -- sleep "$CT_SECS" >/dev/null 2>&1 &
            CT_P+=($!)
        done
        wait "${CT_P[@]}" || true
        wait "$CT_L" 2>/dev/null || true
        for side in c s; do
            perf report -i "$WORK/ct-$side.data" --no-children --sort sym -g none --stdio 2>/dev/null |
                /usr/bin/python3 -c '
import re, sys
tag = sys.argv[1]
total, groups = 0.0, {"locks": 0.0, "posts/wake-ups": 0.0, "hand-off": 0.0, "epoll_wait": 0.0}
pat = {"locks": r"pthread_mutex|futex|__lll_lock|lll_lock|_raw_spin_lock",
       "posts/wake-ups": r"loop_post|loop_call|on_post|eventfd",
       "hand-off": r"hand_?off|handoff",
       "epoll_wait": r"ep_poll|do_epoll_wait"}
samples = "?"
for line in sys.stdin:
    m = re.match(r"#\s*Samples:\s*(\S+)", line)
    if m:
        samples = m.group(1)
    m = re.match(r"\s+([\d.]+)%\s+\[.\]\s+(.*)", line)
    if not m:
        continue
    pct, sym = float(m.group(1)), m.group(2)
    for g, p in pat.items():
        if re.search(p, sym):
            groups[g] += pct
            break
print(f"CONTENTION {tag}: {samples} samples; " + ", ".join(f"{g} {v:.1f} %" for g, v in groups.items()))
' "--workers $w $load $([ $side = c ] && echo client || echo server)"
        done
    done
done
amesh_restart || true
