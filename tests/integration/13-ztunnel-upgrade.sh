#!/usr/bin/env bash
# ztunnel upgrade under load, in-pod mode (reference 2.7): a new ztunnel starts
# next to the old one on each node, gets the pods from mesh-cni and binds the
# same ports inside them (SO_REUSEPORT), becomes ready; then the old one gets
# SIGTERM, closes its listeners and drains. Meanwhile the client opens new
# connections at a steady rate and one long-lived connection stays open.
#
# Reported: failed connections out of those attempted during the upgrade.
# Required: none fails, a connection open across the switch ends normally
# within the drain period (5 s), both old ztunnels exit 0.
. "$(dirname "$0")/lib.sh"
require_root
inpod_two_nodes ambient
enrolled() { grep -q 'pod demo/client .* enrolled' "$WORK/zt1.log" &&
             grep -q 'pod demo/server .* enrolled' "$WORK/zt2.log" &&
             ip netns exec "$PC" $TCPTOOL echo --connect "$VIP:80" >/dev/null 2>&1; }
check "both pods are in the mesh and reachable over HBONE" wait_secs 10 enrolled

start_bg "$WORK/probe.json" ip netns exec "$PC" $PY "$ROOT/tests/support/lifecycle_probe.py" \
    --connect "$VIP:80" --interval 0.1 --duration 6 --ready-file "$WORK/probe.ready"
PROBE=$LAST_PID
wait_for test -f "$WORK/probe.ready"
RATE=100 SECS=10
start_bg "$WORK/load.json" ip netns exec "$PC" $PY "$ROOT/tests/support/steady_load.py" \
    --connect "$VIP:80" --rate $RATE --duration $SECS --ready-file "$WORK/load.ready"
LOAD=$LAST_PID
wait_for test -f "$WORK/load.ready"
sleep 2

# The upgrade, node by node: new ztunnel up and ready, then the old one stopped.
upgrade() { # netns node zds-sock old-pid n
    local ns=$1 node=$2 sock=$3 old=$4 n=$5
    start_bg "$WORK/zt$n-new.log" ip netns exec "$ns" "$BIN/ztunnel" --xds-address "$MESHD_ADDR" \
        --root-cert "$STATE/root-cert.pem" --token "$WORK/token-$node" --node "$node" --zds-socket "$sock"
    NEW_PID=$LAST_PID
    new_ready() { grep -q 'node agent snapshot' "$WORK/zt$n-new.log" &&
                  grep -q 'xDS: synced' "$WORK/zt$n-new.log"; }
    wait_secs 10 new_ready || { echo "new ztunnel on $node not ready:"; cat "$WORK/zt$n-new.log"; return 1; }
    sleep 0.5
    stop_ztunnel "$old" "$WORK/zt$n.log"
}
check "node-2: new ztunnel ready, old one drained and exited 0" upgrade "$N2" node-2 "$WORK/zds2.sock" "$ZT2" 2
ZT2=$NEW_PID
sleep 1
check "node-1: new ztunnel ready, old one drained and exited 0" upgrade "$N1" node-1 "$WORK/zds1.sock" "$ZT1" 1
ZT1=$NEW_PID

wait "$LOAD" || true
wait "$PROBE" || true
cat "$WORK/load.json"
FAILED=$($PY -c "import json; print(json.load(open('$WORK/load.json'))['failed'])")
ATTEMPTED=$($PY -c "import json; print(json.load(open('$WORK/load.json'))['attempted'])")
say "upgrade under load: $FAILED failed of $ATTEMPTED connections ($RATE/s for $SECS s, both nodes upgraded)"
check "no connection failed during the upgrade ($FAILED of $ATTEMPTED)" test "$FAILED" = 0
check "a connection open during the upgrade finished normally within the drain period" $PY -c "
import json; r=json.load(open('$WORK/probe.json')); assert r['end_reason']=='done' and r['ok']>40, r"
check "new connections go through the new ztunnels" sh -c "
ip netns exec $PC $TCPTOOL echo --connect $VIP:80 >/dev/null &&
sleep 0.5 && grep -q 'connection complete' '$WORK/zt1-new.log'"
check "node-1 new ztunnel exits 0" stop_ztunnel "$ZT1" "$WORK/zt1-new.log"
check "node-2 new ztunnel exits 0" stop_ztunnel "$ZT2" "$WORK/zt2-new.log"
finish
