# shellcheck shell=bash disable=SC2034,SC2153,SC2154
# bench/workers.sh - steps "workers", "fair" and "affinity" of bench/run.sh (issue 12).
#
# Sourced by run.sh with the topology up; uses its helpers (amesh_restart, iperf_run, wrk_run,
# rtt_run, m_begin / m_end, rec, progress) and writes "wk.*", "fair.*" and "aff.*" lines that
# tools/workers_report.py turns into tables and goals. Every comparison is interleaved: each
# round restarts both ztunnels once per configuration, in the same order, so slow drift of the
# shared machine hits every configuration alike; ratios are taken within a round.
#
#   workers   8 parallel bulk streams (iperf3 -P 8) and 1 KB req/s at 16 connections (wrk -c16)
#             through the pair with --workers 1 and --workers 2; proxies' CPU per GB / request
#   fair      a victim pod (CLIENT_IP) doing 1 KB round trips at FAIR_RATE/s on one connection,
#             latency from the fixed schedule (benchtool lat), alone and while the flood pod
#             (FLOOD_IP, same node, same ztunnels, own origins) runs (a) FAIR_BULK_P bulk
#             streams, (b) FAIR_CONNS connections doing 1 KB round trips back to back, (c) a
#             storm of new connections, FAIR_STORM at a time; also on the direct path, which
#             shows what the flood costs the victim without any proxy (the shared 2 CPUs)
#   affinity  1 KB round trips paced at 2,000/s (benchtool rtt, as step rtt), direct and through
#             the pair with --workers 1 / 2, each with and without --worker-affinity
#
# BENCH_BASE_BIN=DIR adds configuration "base" to fair and affinity: DIR/ztunnel with its
# default flags (e.g. main's single event loop), measured in the same rounds.
# Without a ztunnel that knows --workers (main before the lead's commit), "workers" and
# "affinity" measure only what they can (the default single loop) and "fair" measures the
# default ztunnel: the single-event-loop baseline.
WK_ROUNDS=${BENCH_WK_ROUNDS:-2}
FAIR_RATE=${BENCH_FAIR_RATE:-500}
FAIR_SECS=${BENCH_FAIR_SECS:-$SECS}
FAIR_BULK_P=${BENCH_FAIR_BULK_P:-4}
FAIR_CONNS=${BENCH_FAIR_CONNS:-500}
FAIR_STORM=${BENCH_FAIR_STORM:-64}

ZT_HAS_WORKERS=0 # does this ztunnel take --workers / --worker-affinity?
"$BIN/ztunnel" --help 2>&1 | grep -q -- '--workers' && ZT_HAS_WORKERS=1
rec wk.supported $ZT_HAS_WORKERS
rec fair.rate "$FAIR_RATE"
rec fair.secs "$FAIR_SECS"
rec fair.bulk_p "$FAIR_BULK_P"
rec fair.conns "$FAIR_CONNS"
rec fair.storm "$FAIR_STORM"

# Configurations by name: dflt (no flag: the binary's default), w1, w2, w1a, w2a (a = affinity).
wk_flags() { # config -> ztunnel flags
    case $1 in
    dflt) ;;
    w1) echo --workers 1 ;;
    w2) echo --workers 2 ;;
    w1a) echo --workers 1 --worker-affinity ;;
    w2a) echo --workers 2 --worker-affinity ;;
    esac
}
wk_use() { # config: both ztunnels restarted with its flags ("base": BENCH_BASE_BIN's ztunnel)
    if [ "$1" = base ]; then
        BIN=$BENCH_BASE_BIN amesh_restart || { BROKEN[amesh]="$BENCH_BASE_BIN/ztunnel failed its path check"; return 1; }
        return 0
    fi
    # shellcheck disable=SC2046
    amesh_restart $(wk_flags "$1") || { BROKEN[amesh]="ztunnel $(wk_flags "$1") failed its path check"; return 1; }
}
# Put the pair back as the rest of the run expects it (this build, default flags).
wk_reset() { [ "${WK_LAST:-dflt}" = dflt ] || amesh_restart || true; }

# ---------------------------------------------------------------- workers
thr_ticks() { # pid -> utime+stime ticks of each of its threads (same order every time)
    local t
    for t in "/proc/$1/task"/*; do awk '{ printf "%d ", $14 + $15 }' "$t/stat" 2>/dev/null; done
}
thr_diff() { # "a b ..." "c d ..." -> "c-a d-b ..."
    awk -v a="$1" -v b="$2" 'BEGIN { n = split(a, x); split(b, y); for (i = 1; i <= n; i++) printf "%d%s", y[i] - x[i], i < n ? " " : "" }'
}
admin_get() { # netns path -> body of ztunnel's admin endpoint, on one line
    ip netns exec "$1" /usr/bin/python3 -c '
import sys, urllib.request
print(urllib.request.urlopen("http://127.0.0.1:15000" + sys.argv[1], timeout=2).read().decode().replace("\n", " "))' "$2" 2>/dev/null
}
# iperf_run with, for the scaling model, the CPU of each ztunnel thread and each side's
# /debug/workers sampled halfway through.
bulk_threads() { # key
    local c0 s0 c1 s1
    c0=$(thr_ticks "${PC[amesh]}") s0=$(thr_ticks "${PS[amesh]}")
    (sleep "$(awk -v s="$SECS" 'BEGIN { print s / 2 }')"
     admin_get "$N1" /debug/workers >"$WORK/dbg-c.json"; admin_get "$N2" /debug/workers >"$WORK/dbg-s.json") &
    local sampler=$!
    iperf_run "$1" amesh -P 8
    wait $sampler || true
    c1=$(thr_ticks "${PC[amesh]}") s1=$(thr_ticks "${PS[amesh]}")
    rec "$1.threads_c" "$(thr_diff "$c0" "$c1")"
    rec "$1.threads_s" "$(thr_diff "$s0" "$s1")"
    [ ! -s "$WORK/dbg-c.json" ] || rec "$1.debug_c" "$(cat "$WORK/dbg-c.json")"
    [ ! -s "$WORK/dbg-s.json" ] || rec "$1.debug_s" "$(cat "$WORK/dbg-s.json")"
}

if step workers && usable amesh; then
    if [ $ZT_HAS_WORKERS = 1 ]; then
        echo "== workers: 8 streams (iperf3 -P 8) and 1 KB req/s (wrk -c16), --workers 1 vs 2, $WK_ROUNDS rounds"
        for r in $(seq 1 "$WK_ROUNDS"); do
            for c in w1 w2; do
                wk_use $c || break 2
                WK_LAST=$c
                echo "  round $r, $(wk_flags $c)"
                bulk_threads "wk.bulk8.$c.r$r"
                wrk_run "wk.rps.$c.r$r" amesh
            done
        done
        wk_reset
    else
        echo "== workers: skipped, this ztunnel has no --workers"
    fi
fi

# ---------------------------------------------------------------- fairness
fair_flood() { # kind host secs -> starts the flood from FLOOD_IP in the background (FLOOD_PID)
    case $1 in
    bulk)
        start_bg "$WORK/fair-flood.json" ip netns exec "$N1" iperf3 -c "$2" -p "$P_IPERF_FLOOD" \
            -B "$FLOOD_IP" -P "$FAIR_BULK_P" -t "$3" -J ;;
    conns)
        start_bg "$WORK/fair-flood.txt" ip netns exec "$N1" "$BT" -b "$FLOOD_IP" busy "$2" \
            "$P_ECHO_FLOOD" "$FAIR_CONNS" "$3" 1024 ;;
    storm)
        start_bg "$WORK/fair-flood.txt" ip netns exec "$N1" "$BT" -b "$FLOOD_IP" storm "$2" \
            "$P_ECHO_FLOOD" "$FAIR_STORM" "$3" ;;
    esac
    FLOOD_PID=$LAST_PID
}
fair_run() { # key impl host flood(none|bulk|conns|storm)
    local key=$1 i=$2 h=$3 f=$4 line fl=''
    # The flood starts a second ahead (connections up) and ends after the victim.
    local fsecs
    fsecs=$(awk -v s="$FAIR_SECS" 'BEGIN { x = s * 1.1 + 2; printf "%d", x == int(x) ? x : int(x) + 1 }')
    if [ "$f" != none ]; then
        fair_flood "$f" "$h" "$fsecs"
        sleep 1
    fi
    m_begin "$i"
    if line=$(timeout $((fsecs + 30)) ip netns exec "$N1" "$BT" -b "$CLIENT_IP" lat "$h" "$P_ECHO" \
        "$FAIR_RATE" "$FAIR_SECS" 1024 2>&1); then
        m_end "$key" "$i"
        line=$(echo "$line" | grep '^RESULT' || true)
        for kv in ${line#RESULT }; do rec "$key.${kv%%=*}" "${kv#*=}"; done
    else
        line="FAILED: $line"
    fi
    if [ "$f" != none ]; then
        wait "$FLOOD_PID" 2>/dev/null || true
        if [ "$f" = bulk ]; then
            fl=$(/usr/bin/python3 -c '
import json, sys
try:
    s = json.load(open(sys.argv[1]))["end"]["sum_received"]
    print("gbps=%.2f" % (s["bytes"] * 8 / s["seconds"] / 1e9))
except Exception:
    print("gbps=0")' "$WORK/fair-flood.json")
        else
            fl=$(sed -n 's/^RESULT //p' "$WORK/fair-flood.txt")
        fi
        for kv in $fl; do rec "$key.flood_${kv%%=*}" "${kv#*=}"; done
    fi
    progress "$i" "$f: ${line#RESULT } (us)${fl:+; flood $fl}"
}
if step fair; then
    FAIR_CFGS=${BENCH_FAIR_WORKERS:-}
    [ -n "$FAIR_CFGS" ] || { [ $ZT_HAS_WORKERS = 1 ] && FAIR_CFGS="w1 w2" || FAIR_CFGS=dflt; }
    [ -z "${BENCH_BASE_BIN:-}" ] || FAIR_CFGS="base $FAIR_CFGS"
    echo "== fairness: victim 1 KB round trips at $FAIR_RATE/s (latency from schedule), alone and with a"
    echo "   neighbour's flood: $FAIR_BULK_P bulk streams / $FAIR_CONNS busy connections / storm of $FAIR_STORM; $WK_ROUNDS rounds"
    for r in $(seq 1 "$WK_ROUNDS"); do
        for c in direct $FAIR_CFGS; do
            if [ "$c" = direct ]; then
                usable direct || continue
                h=$PLAIN_IP i=direct
            else
                usable amesh || continue
                wk_use "$c" || continue
                WK_LAST=$c
                h=$SERVER_IP i=amesh
            fi
            echo "  round $r, $c"
            for f in none bulk conns storm; do
                fair_run "fair.$c.$f.r$r" "$i" "$h" "$f"
            done
        done
    done
    wk_reset
fi

# ---------------------------------------------------------------- affinity
if step affinity; then
    AFF_CFGS=dflt
    [ $ZT_HAS_WORKERS = 0 ] || AFF_CFGS="w1 w1a w2 w2a"
    [ -z "${BENCH_BASE_BIN:-}" ] || AFF_CFGS="base $AFF_CFGS"
    echo "== affinity: 1 KB round trips paced at 2000/s on one connection, $WK_ROUNDS rounds ($AFF_CFGS)"
    for r in $(seq 1 "$WK_ROUNDS"); do
        usable direct && rtt_run "aff.direct.r$r" direct 2000
        for c in $AFF_CFGS; do
            usable amesh || break
            wk_use "$c" || continue
            WK_LAST=$c
            printf '  %s:\n' "$(wk_flags "$c")"
            rtt_run "aff.$c.r$r" amesh 2000
        done
    done
    wk_reset
fi
