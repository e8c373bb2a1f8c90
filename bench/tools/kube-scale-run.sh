#!/usr/bin/env bash
# bench/tools/kube-scale-run.sh - the body of bench/kube-scale.sh (see there). Run through
# tests/integration/run.sh: one real API server (tests/support/kube.sh) for every size, pods
# added through the API (tests/support/kube_pods.py); per size, meshd --kubeconfig, then meshd
# --config-dir with the same pods as YAML files, each feeding one ztunnel (debug log: the change
# driver bench/tools/kube_scale.py reads its model updates from it).
. "$(dirname "$0")/../../tests/integration/lib.sh"
. "$ROOT/tests/support/kube.sh"
require_root
kube_require || exit 1
SIZES=${KUBE_SCALE_SIZES:-1000 10000}
ROUNDS=${KUBE_SCALE_ROUNDS:-20}
OUT=${KUBE_SCALE_OUT:-$ROOT/bench/results/kube-scale.jsonl}
DRIVER=$ROOT/bench/tools/kube_scale.py
mkdir -p "$(dirname "$OUT")"
: >"$OUT"
say "binaries: $BIN; sizes: $SIZES; $ROUNDS rounds of 4 changes"

ip netns add "$N1"
K=$WORK/kube
kube_up "$N1" "$K"
kube_add_node "$N1" "$K" node-1 198.18.0.1
MESHD_ADDR=127.0.0.1:15012

ms_since() { echo $(( ($(date +%s%N) - $1) / 1000000 )); }
rss_of() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
ready() { [ "$(ip netns exec "$N1" curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:15014/ready)" = 200 ]; }

# measure SOURCE PODS TARGET meshd-flags...: start meshd, wait ready, start a ztunnel, wait until
# it holds every pod, then the change rounds; one JSON line of figures per step into $OUT.
measure() {
    local src=$1 n=$2 target=$3; shift 3
    local state=$WORK/state-$src-$n zlog=$WORK/zt-$src-$n.log t0 ready_ms synced_ms rss rss_after
    mkdir -p "$state"
    t0=$(date +%s%N)
    start_bg "$WORK/meshd-$src-$n.log" ip netns exec "$N1" "$BIN/meshd" "$@" --state-dir "$state" \
        --listen "$MESHD_ADDR" --monitoring 127.0.0.1:15014
    local mp=$LAST_PID
    WAIT_SECS=300 wait_for ready || { tail -5 "$WORK/meshd-$src-$n.log"; return 1; }
    ready_ms=$(ms_since "$t0")
    t0=$(date +%s%N)
    start_ztunnel_xds "$N1" node-1 "$state" "$zlog" --log-level debug || return 1
    local zp=$LAST_PID
    synced() { grep -qE "xDS: model now $n workloads" "$zlog"; }
    WAIT_SECS=300 wait_for synced || { tail -5 "$zlog"; return 1; }
    synced_ms=$(ms_since "$t0")
    sleep 2
    rss=$(rss_of "$mp")
    say "$src, $n pods: meshd ready in $ready_ms ms, ztunnel synced in $synced_ms ms, meshd RSS $rss kB"
    ip netns exec "$N1" $PY "$DRIVER" changes "$src" "$target" "$zlog" "$n" "$ROUNDS" "$OUT" || return 1
    rss_after=$(rss_of "$mp")
    # meshd's own time per rebuild during the changes (its log: "config: N resources ... (X ms)").
    local rebuild
    rebuild=$(grep -o 'config: [0-9]* resources, version [0-9a-f]* ([0-9]* ms)' "$WORK/meshd-$src-$n.log" |
        tail -n $((ROUNDS * 4)) | sed 's/.*(\([0-9]*\) ms)/\1/' | sort -n |
        awk '{v[NR]=$1} END {print NR ? v[int((NR+1)/2)] : "null"}')
    echo "{\"source\":\"$src\",\"pods\":$n,\"ready_ms\":$ready_ms,\"synced_ms\":$synced_ms,\"rss_kb\":$rss,\"rss_after_kb\":$rss_after,\"rebuild_ms\":$rebuild}" >>"$OUT"
    stop_ztunnel "$zp" "$zlog" || true
    stop_meshd "$mp" "$WORK/meshd-$src-$n.log" || true
}

have=0
for n in $SIZES; do
    say "$(ip netns exec "$N1" $PY "$ROOT/tests/support/kube_pods.py" "$K" "$n" "$have")"
    have=$n
    check "kube: $n pods" measure kube "$n" "$K" --kubeconfig "$K/kubeconfig"
    rm -rf "$WORK/cfg-$n"
    $PY "$DRIVER" files "$WORK/cfg-$n" "$n"
    check "directory: $n pods" measure dir "$n" "$WORK/cfg-$n" --config-dir "$WORK/cfg-$n"
done
$PY "$DRIVER" report "$OUT" | tee "${OUT%.jsonl}.md"
finish
