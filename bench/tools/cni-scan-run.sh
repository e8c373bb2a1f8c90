#!/usr/bin/env bash
# bench/tools/cni-scan-run.sh - the body of bench/cni-scan.sh (see there).
. "$(dirname "$0")/../../tests/integration/lib.sh"
require_root
ip netns add "$N1"
made=0
for n in $SCAN_NS; do
    while [ "$made" -lt "$n" ]; do # namespaces kept from the previous N: only the new ones made
        made=$((made + 1))
        p=amt-scan-$made-$ID
        ip netns add "$p"
        POD_NETNS+=("$p")
        ip -n "$p" link set lo up
        ip -n "$p" addr add "198.19.$((64 + made / 250)).$((made % 250 + 1))/32" dev lo
        start_bg /dev/null ip netns exec "$p" sleep 3600
    done
    want="198.19.$((64 + made / 250)).$((made % 250 + 1))"
    rm -rf "$WORK/cfg" && mkdir -p "$WORK/cfg"
    cat >"$WORK/cfg/pod.yaml" <<YAML
apiVersion: v1
kind: Namespace
metadata: {name: amb, labels: {istio.io/dataplane-mode: ambient}}
---
apiVersion: v1
kind: Pod
metadata: {name: old, namespace: amb, uid: u-old}
spec: {nodeName: node-1, containers: [{name: c, image: x}]}
status: {phase: Running, podIPs: [{ip: $want}]}
YAML
    start_bg "$WORK/cni-$n.log" ip netns exec "$N1" "$BIN/mesh-cni" --zds-socket "$WORK/zds-$n.sock" \
        --config-dir "$WORK/cfg" --node node-1
    pid=$LAST_PID
    WAIT_SECS=30 wait_for grep -q 'netns scan:' "$WORK/cni-$n.log" || { cat "$WORK/cni-$n.log"; exit 1; }
    say "N=$n: $(grep -o 'netns scan: .*' "$WORK/cni-$n.log" | head -1)"
    grep -q "amb/old: its network namespace is /var/run/netns/amt-scan-$made-$ID" "$WORK/cni-$n.log" ||
        { echo "FAIL: the pod's namespace was not found"; cat "$WORK/cni-$n.log"; exit 1; }
    kill -TERM "$pid"
    WAIT_SECS=10 wait_for sh -c "! kill -0 $pid 2>/dev/null"
done
