#!/usr/bin/env bash
# Policies from meshd, live (reference 5.2 - 5.4): an AuthorizationPolicy written
# into the config directory reaches the ztunnels over xDS; an open connection it
# now denies is closed, new ones are refused (and counted as DENY in the
# metrics); removing it lets traffic through again. PeerAuthentication STRICT
# refuses plaintext to the namespace's workloads.
. "$(dirname "$0")/lib.sh"
require_root
topo_two_nodes 4
CFG=$WORK/config
STATE=$WORK/state
write_k8s_config "$CFG"
capture_outbound "$N1"
start_meshd "$CFG" "$STATE" "$WORK/meshd.log" --log-level debug
start_server "$N2" "$SERVER_IP" 8080 "$WORK/server.log"
start_ztunnel_xds "$N1" node-1 "$STATE" "$WORK/zt1.log"
ZT1=$LAST_PID
start_ztunnel_xds "$N2" node-2 "$STATE" "$WORK/zt2.log"
ZT2=$LAST_PID
SERVER=$(hostport "$SERVER_IP" 8080)

check "before any policy the client reaches the server" \
    ip netns exec "$N1" $TCPTOOL echo --bind "$CLIENT_IP" --connect "$SERVER"
start_bg "$WORK/probe.json" ip netns exec "$N1" $PY "$ROOT/tests/support/lifecycle_probe.py" \
    --connect "$SERVER" --bind "$CLIENT_IP" --interval 0.1 --duration 20 --ready-file "$WORK/probe.ready"
PROBE=$LAST_PID
wait_for test -f "$WORK/probe.ready"

cat >"$CFG/deny.yaml" <<'YAML'
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-client, namespace: default}
spec:
  action: DENY
  rules:
  - from: [{source: {principals: ["cluster.local/ns/default/sa/client"]}}]
    to: [{operation: {ports: ["8080"]}}]
YAML
closed() { grep -q 'connection closed due to policy change' "$WORK/zt2.log"; }
check "a DENY applied live closes the open connection it now denies" wait_secs 5 closed
wait "$PROBE" || true
check "the long-lived client saw its connection end" $PY -c "
import json; r=json.load(open('$WORK/probe.json')); assert r['end_reason'] in ('eof','reset','timeout') or r['end_reason'].startswith('error'), r"
check "new connections are refused" \
    sh -c "! ip netns exec $N1 $TCPTOOL echo --bind $CLIENT_IP --connect $SERVER --timeout 5"
deny_count() {
    ip netns exec "$N2" $PY -c "
import urllib.request
t=urllib.request.urlopen('http://127.0.0.1:15020/metrics',timeout=2).read().decode()
print(int(sum(float(l.rsplit(' ',1)[1]) for l in t.splitlines()
    if l.startswith('istio_tcp_connections_failed_total{') and 'response_flags=\"DENY\"' in l and 'reporter=\"destination\"' in l)))"
}
DENIED=$(deny_count)
say "istio_tcp_connections_failed_total{response_flags=DENY} on node-2: $DENIED"
check "DENY counter is at least 2 (closed + refused)" test "${DENIED:-0}" -ge 2

rm "$CFG/deny.yaml"
allowed() { ip netns exec "$N1" $TCPTOOL echo --bind "$CLIENT_IP" --connect "$SERVER" --timeout 2 >/dev/null 2>&1; }
check "removing the policy lets new connections through again" wait_secs 5 allowed

# PeerAuthentication STRICT: plaintext (no identity) to the namespace is refused.
capture_inbound "$N2"
plain() { ip netns exec "$N1" sh -c "iptables -t nat -F OUTPUT; $TCPTOOL echo --connect $SERVER --timeout 2" >/dev/null 2>&1; }
check "without PeerAuthentication, plaintext reaches the server" plain
cat >"$CFG/strict.yaml" <<'YAML'
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: strict, namespace: default}
spec: {mtls: {mode: STRICT}}
YAML
not_plain() { ! plain; }
check "with PeerAuthentication STRICT, plaintext is refused" wait_secs 5 not_plain

check "node-1 ztunnel exits 0 on SIGTERM, sanitizers clean" stop_ztunnel "$ZT1" "$WORK/zt1.log"
check "node-2 ztunnel exits 0 on SIGTERM, sanitizers clean" stop_ztunnel "$ZT2" "$WORK/zt2.log"
check "meshd exits 0 on SIGTERM, sanitizers clean" stop_meshd "$MESHD_PID" "$WORK/meshd.log"
finish
