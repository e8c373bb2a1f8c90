#!/usr/bin/env bash
# meshd's Kubernetes source at scale on the real kube-apiserver v1.20.2: 2,000 pods created
# through the API (status patched as a kubelet would), then meshd --kubeconfig.
#
#   - the first list (paged, 500 per page) ends in ONE snapshot; time and meshd's RSS reported;
#   - a relist (the API server restarted after pods were deleted in etcd behind it and etcd
#     compacted, so the pod watch gets 410) arriving page by page makes ONE more snapshot,
#     with the deleted pods gone; relists of the unchanged kinds make none.
#
# MESHD_KUBE_PODS overrides the pod count (default 2000).
. "$(dirname "$0")/lib.sh"
. "$ROOT/tests/support/kube.sh"
require_root
kube_require || exit 1
PODS=${MESHD_KUBE_PODS:-2000}
GONE=10

ip netns add "$N1"
K=$WORK/kube
STATE=$WORK/state
kube_up "$N1" "$K"

# Namespace scale (ambient), $PODS pods on node-1, each Running with an IP (tests/support/kube_pods.py).
say "$(ip netns exec "$N1" $PY "$ROOT/tests/support/kube_pods.py" "$K" "$PODS")"

snapshots() { grep -c 'config: [0-9]* resources' "$WORK/meshd.log" || true; }
ready() { [ "$(ip netns exec "$N1" curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:15014/ready)" = 200 ]; }
mkdir -p "$STATE"
t0=$(date +%s%N)
start_bg "$WORK/meshd.log" ip netns exec "$N1" "$BIN/meshd" --kubeconfig "$K/kubeconfig" \
    --state-dir "$STATE" --listen 127.0.0.1:15012 --monitoring 127.0.0.1:15014
MESHD_PID=$LAST_PID
WAIT_SECS=60 wait_for ready || true
ready_ms=$(( ($(date +%s%N) - t0) / 1000000 ))
check "meshd ready after listing $PODS pods" ready
say "ready in $ready_ms ms; $(grep -o 'every kind listed.*' "$WORK/meshd.log")"
say "$(grep -o 'config: [0-9]* resources.*' "$WORK/meshd.log" | head -1)"
sleep 1
check "the first list made one snapshot ($(snapshots))" test "$(snapshots)" = 1
check "it holds a workload per pod (and the kubernetes Service)" \
    grep -q "config: $((PODS + 1)) resources" "$WORK/meshd.log"
rss=$(awk '/VmRSS/ {print $2}' "/proc/$MESHD_PID/status") # ip netns exec became meshd
say "meshd RSS with $PODS pods: ${rss} kB (this build: $(basename "$(dirname "$BIN")"))"

# ---- a relist with changes: one snapshot ------------------------------------------------------
tr '\0' '\n' <"/proc/$(cat "$K/apiserver.pid")/cmdline" >"$K/apiserver.args"
kube__stop "$(cat "$K/apiserver.pid")"
ETCD="ip netns exec $N1 etcdctl --endpoints http://127.0.0.1:2379"
for i in $(seq 0 $((GONE - 1))); do
    $ETCD del "/registry/pods/scale/p$(printf %05d "$i")" >/dev/null
done
rev=$($ETCD endpoint status -w json | $PY -c 'import json,sys; print(json.load(sys.stdin)[0]["Status"]["header"]["revision"])')
$ETCD compact "$rev" >/dev/null
before=$(snapshots)
mapfile -t args <"$K/apiserver.args"
kube__start "$K" apiserver "$N1" "${args[@]}"
kube__wait 60 kube__readyz "$K"
relisted() { grep -q "config: $((PODS + 1 - GONE)) resources" "$WORK/meshd.log"; }
WAIT_SECS=60 wait_for relisted || true
sleep 2
check "the pods deleted behind the API server are gone after the relist" relisted
say "$(grep -E 'watch [^ ]*pods.*relisting' "$WORK/meshd.log" | tail -1)"
say "$(grep -o 'config: [0-9]* resources.*' "$WORK/meshd.log" | tail -1)"
check "the relist of $PODS pods made one snapshot ($(( $(snapshots) - before )))" \
    test "$(( $(snapshots) - before ))" = 1
check "meshd exits cleanly" stop_meshd "$MESHD_PID" "$WORK/meshd.log"
finish
