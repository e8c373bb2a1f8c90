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
# Without a ztunnel that knows --workers (main before the lead's commit), "workers" and
# "affinity" measure only what they can (the default single loop) and "fair" measures the
# default ztunnel: the single-event-loop baseline.
WK_ROUNDS=${BENCH_WK_ROUNDS:-2}
FAIR_RATE=${BENCH_FAIR_RATE:-500}
FAIR_SECS=${BENCH_FAIR_SECS:-$SECS}
FAIR_BULK_P=${BENCH_FAIR_BULK_P:-4}
FAIR_CONNS=${BENCH_FAIR_CONNS:-500}
FAIR_STORM=${BENCH_FAIR_STORM:-64}

ZT_WORKERS=0 # does this ztunnel take --workers / --worker-affinity?
"$BIN/ztunnel" --help 2>&1 | grep -q -- '--workers' && ZT_WORKERS=1
rec wk.supported $ZT_WORKERS
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
wk_use() { # config: both ztunnels restarted with its flags
    # shellcheck disable=SC2046
    amesh_restart $(wk_flags "$1") || { BROKEN[amesh]="ztunnel $(wk_flags "$1") failed its path check"; return 1; }
}
# Put the pair back as the rest of the run expects it (the default flags).
wk_reset() { [ "$(wk_flags "${WK_LAST:-dflt}")" = "" ] || amesh_restart || true; }

# ---------------------------------------------------------------- workers
if step workers && usable amesh; then
    if [ $ZT_WORKERS = 1 ]; then
        echo "== workers: 8 streams (iperf3 -P 8) and 1 KB req/s (wrk -c16), --workers 1 vs 2, $WK_ROUNDS rounds"
        for r in $(seq 1 "$WK_ROUNDS"); do
            for c in w1 w2; do
                wk_use $c || break 2
                WK_LAST=$c
                echo "  round $r, $(wk_flags $c)"
                iperf_run "wk.bulk8.$c.r$r" amesh -P 8
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
    [ -n "$FAIR_CFGS" ] || { [ $ZT_WORKERS = 1 ] && FAIR_CFGS="w1 w2" || FAIR_CFGS=dflt; }
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
    [ $ZT_WORKERS = 0 ] || AFF_CFGS="w1 w1a w2 w2a"
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
