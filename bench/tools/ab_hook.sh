# bench/tools/ab_hook.sh - a BENCH_HOOK for A/B runs of ztunnel binaries on the bench topology.
#
#   BENCH_STEPS=hook BENCH_ONLY="amesh haproxy" BENCH_HOOK=$PWD/bench/tools/ab_hook.sh \
#       AB_BINS="/tmp/a /tmp/b" AB_ROUNDS=4 bench/run.sh build
#
# Sourced by run.sh with the topology up (N1, N2, PC/PS, HOST_*/PORT_*, WORK, CA, BT, helpers).
# Each directory in AB_BINS holds a `ztunnel`; per round, both ztunnels are restarted from each
# binary in turn and measured on one iperf3 stream (AB_SECS, default 5 s), so A and B alternate
# under the same conditions. Printed per run: Gbit/s, CPU of both proxy processes per GB
# (schedstat: ns on CPU, all threads) and others' CPU (machine busy time minus the bench's cgroup,
# share of the box) - compare the ratios of the same round, not absolute figures.
# Options: AB_P=16 (iperf3 -P: parallel streams, one HBONE connection for amesh), AB_HAP=0 (skip the HAProxy mTLS pair each round), AB_WRK=1 (also wrk -c16 1 KB GETs:
# req/s and proxy us/request), AB_PLAIN=1 (also two plain-TCP HAProxy relay pairs, no TLS, with
# 16 KB and 256 KB buffers: what the kernel path alone costs), AB_PERF=DIR (perf record -g both
# ztunnels of that binary during one transfer (AB_PERF_CG=dwarf for user-space callers,
# AB_PERF_P=16 for parallel streams), into $AB_OUT/perf-{c,s}.data), AB_STRACE="DIR..."
# (strace -c -f of both sides during one transfer each: $AB_OUT/strace-{c,s}-NAME.txt);
# AB_PERF_LOAD=wrk runs wrk -c16 1 KB GETs instead of iperf3 under perf and strace.
AB_SECS=${AB_SECS:-5}
AB_OUT=${AB_OUT:-$BENCH/results}
mkdir -p "$AB_OUT"

ab_restart() { # bindir: both ztunnels from this binary (run.sh's amesh_restart)
    BIN=$1 amesh_restart || echo "AB: the path check through $1 failed"
}
ab_sns() { # pid... -> ns on CPU, summed
    local t=0 p
    for p in "$@"; do t=$((t + $(cut -d' ' -f1 "/proc/$p/schedstat" 2>/dev/null || echo 0))); done
    echo $t
}
ab_iperf() { # impl tag
    local i=$1 out=$WORK/ab.json c0 c1 m0 m1 b0 b1 t0 t1
    c0=$(ab_sns ${PC[$i]} ${PS[$i]}) m0=$(mticks) b0=$(bench_ns) t0=$(now)
    timeout $((AB_SECS + 30)) ip netns exec "$N1" iperf3 -c "${HOST_IPERF[$i]}" -p "${PORT_IPERF[$i]}" \
        -t "$AB_SECS" -P "${AB_P:-1}" -J >"$out" 2>/dev/null || { echo "AB $2 iperf3 FAILED"; return 0; }
    c1=$(ab_sns ${PC[$i]} ${PS[$i]}) m1=$(mticks) b1=$(bench_ns) t1=$(now)
    /usr/bin/python3 - "$out" "$2" $((c1 - c0)) $((m1 - m0)) $((b1 - b0)) "$t0" "$t1" "$(nproc)" <<'PY'
import json, os, sys
s = json.load(open(sys.argv[1]))["end"]["sum_received"]
tag, cpu, m, b = sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
wall, ncpu = float(sys.argv[7]) - float(sys.argv[6]), int(sys.argv[8])
others = max(0.0, (m / os.sysconf("SC_CLK_TCK") - b / 1e9) / (wall * ncpu)) if b else float("nan")
print(f"AB {tag:14s} {s['bytes'] * 8 / s['seconds'] / 1e9:6.2f} Gbit/s  proxies "
      f"{cpu / 1e9 / (s['bytes'] / 1e9):5.3f} core-s/GB  others {others * 100:4.1f}%", flush=True)
PY
}
ab_wrk() { # impl tag
    local i=$1 out=$WORK/ab-wrk.txt c0 c1 line
    c0=$(ab_sns ${PC[$i]} ${PS[$i]})
    timeout $((AB_SECS + 30)) ip netns exec "$N1" wrk -t1 -c16 -d"${AB_SECS}s" -s "$BENCH/tools/report.lua" \
        "http://${HOST_HTTP[$i]}:${PORT_HTTP[$i]}/1k" >"$out" 2>&1 || { echo "AB $2 wrk FAILED"; return 0; }
    c1=$(ab_sns ${PC[$i]} ${PS[$i]})
    line=$(grep '^RESULT' "$out" || true)
    awk -v l="$line" -v c=$((c1 - c0)) -v t="$2" -v s="$AB_SECS" 'BEGIN {
        split(l, a, "[ =]"); if (a[3] == 0) { print "AB " t " wrk: no requests"; exit }
        printf "AB %-14s %8.0f req/s  proxies %5.2f us/request  p50 %s us\n", t, a[3] / s, c / 1000 / a[3], a[7] }'
}
ab_plain_pair() { # name port bufsize-line: a plain-TCP HAProxy relay pair, iperf3 through it
    local name=$1 port=$2 tune=$3 side
    for side in c s; do
        {
            printf 'global\n    nbthread 1\n%s\ndefaults\n    mode tcp\n    timeout connect 5s\n' "$tune"
            printf '    timeout client 1h\n    timeout server 1h\nlisten p\n'
            if [ $side = c ]; then
                printf '    bind 127.0.0.1:2%s\n    server s %s:3%s\n' "$port" "$PLAIN_IP" "$port"
            else
                printf '    bind %s:3%s\n    server o 127.0.0.1:%s\n' "$PLAIN_IP" "$port" "$P_IPERF"
            fi
        } >"$WORK/ab-$name-$side.cfg"
    done
    start_bg "$WORK/ab-$name-s.log" ip netns exec "$N2" haproxy -db -f "$WORK/ab-$name-s.cfg"
    PS[$name]=$LAST_PID
    start_bg "$WORK/ab-$name-c.log" ip netns exec "$N1" haproxy -db -f "$WORK/ab-$name-c.cfg"
    PC[$name]=$LAST_PID
    HOST_IPERF[$name]=127.0.0.1 PORT_IPERF[$name]=2$port
    wait_for listening "$N1" "2$port" && wait_for listening "$N2" "3$port"
}

if [ -n "${AB_PERF:-}" ]; then
    ab_restart "$AB_PERF"
    if [ "${AB_PERF_LOAD:-iperf}" = wrk ]; then
        ip netns exec "$N1" wrk -t1 -c16 -d$((AB_SECS + 4))s \
            "http://${HOST_HTTP[amesh]}:${PORT_HTTP[amesh]}/1k" >/dev/null &
    else
        ip netns exec "$N1" iperf3 -c "${HOST_IPERF[amesh]}" -p "${PORT_IPERF[amesh]}" -t $((AB_SECS + 4)) \
            -P "${AB_PERF_P:-1}" >/dev/null &
    fi
    AB_IP=$!
    sleep 1
    perf record --call-graph "${AB_PERF_CG:-fp}" -o "$AB_OUT/perf-c.data" -p "${PC[amesh]}" -- sleep "$AB_SECS" 2>/dev/null &
    perf record --call-graph "${AB_PERF_CG:-fp}" -o "$AB_OUT/perf-s.data" -p "${PS[amesh]}" -- sleep "$AB_SECS" 2>/dev/null || true
    wait $AB_IP || true
fi
for ab_b in ${AB_STRACE:-}; do
    ab_restart "$ab_b"
    ab_n=$(basename "$ab_b")
    strace -c -f -o "$AB_OUT/strace-c-$ab_n.txt" -p "${PC[amesh]}" &
    AB_S1=$!
    strace -c -f -o "$AB_OUT/strace-s-$ab_n.txt" -p "${PS[amesh]}" &
    AB_S2=$!
    sleep 1
    if [ "${AB_PERF_LOAD:-iperf}" = wrk ]; then ab_wrk amesh "strace-$ab_n"; else ab_iperf amesh "strace-$ab_n"; fi
    kill -INT $AB_S1 $AB_S2 2>/dev/null || true
    wait $AB_S1 $AB_S2 || true
done
if [ -n "${AB_PLAIN:-}" ]; then
    ab_plain_pair plain16k 5301 ''
    ab_plain_pair plain256k 5302 '    tune.bufsize 262144'
fi
for ab_r in $(seq 1 "${AB_ROUNDS:-0}"); do
    if [ "${AB_HAP:-1}" != 0 ]; then
        ab_iperf haproxy "r$ab_r-haproxy"
        [ "${AB_WRK:-0}" = 0 ] || ab_wrk haproxy "r$ab_r-haproxy"
    fi
    if [ -n "${AB_PLAIN:-}" ]; then
        ab_iperf plain16k "r$ab_r-plain16k"
        ab_iperf plain256k "r$ab_r-plain256k"
    fi
    for ab_b in ${AB_BINS:-}; do
        ab_restart "$ab_b"
        ab_iperf amesh "r$ab_r-$(basename "$ab_b")"
        [ "${AB_WRK:-0}" = 0 ] || ab_wrk amesh "r$ab_r-$(basename "$ab_b")"
    done
done
