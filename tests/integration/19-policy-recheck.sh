#!/usr/bin/env bash
# Open connections are checked again when what decides them changes, not only
# when a policy does (issue 9, section 3):
#
#   1. a label change on the server pod makes an existing selector DENY select
#      it: only the Workload's authorizationPolicies change (the policy does
#      not), and the open connection is closed; new ones are refused; the label
#      removed, they pass again;
#   2. a connection authorized while the app is still being dialled (its SYNs
#      dropped in node-2) when a DENY arrives is closed once the dial completes
#      (HBONE, 15008), and the same for plaintext on 15006 under STRICT.
#
#   node-1: meshd, ztunnel, client 198.18.250.20 (REDIRECTed)   node-2: ztunnel, server :8080
. "$(dirname "$0")/lib.sh"
require_root
topo_two_nodes 4
CFG=$WORK/config
STATE=$WORK/state
write_k8s_config "$CFG"
capture_outbound "$N1"
cat >"$CFG/quarantine.yaml" <<'YAML'
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-quarantined, namespace: default}
spec:
  selector: {matchLabels: {quarantine: "yes"}}
  action: DENY
  rules:
  - to: [{operation: {ports: ["8080"]}}]
YAML
start_meshd "$CFG" "$STATE" "$WORK/meshd.log"
start_server "$N2" "$SERVER_IP" 8080 "$WORK/server.log"
start_ztunnel_xds "$N1" node-1 "$STATE" "$WORK/zt1.log"
ZT1=$LAST_PID
start_ztunnel_xds "$N2" node-2 "$STATE" "$WORK/zt2.log" --log-level debug
ZT2=$LAST_PID
SERVER=$(hostport "$SERVER_IP" 8080)
echo_ok() { ip netns exec "$N1" $TCPTOOL echo --bind "$CLIENT_IP" --connect "$SERVER" --timeout "${1:-5}" >/dev/null 2>&1; }
echo_refused() { ! echo_ok 5; }
dump2() { config_dump "$N2"; }
server_policies() { # prints the server workload's authorizationPolicies as ztunnel-2 has them
    dump2 | $PY -c "
import json,sys
print(' '.join(p for w in json.load(sys.stdin)['workloads'] if w['name']=='server' for p in w.get('authorizationPolicies',[])))"
}
has_policy() { dump2 | grep -q "\"$1\""; }
no_policy() { ! has_policy "$1"; }

# ---- 1. a workload update (not a policy update) makes the DENY apply ----
check "the selector DENY is known to ztunnel-2" wait_secs 10 has_policy deny-quarantined
check "it selects no pod yet: the client reaches the server" echo_ok
start_bg "$WORK/probe.json" ip netns exec "$N1" $PY "$ROOT/tests/support/lifecycle_probe.py" \
    --connect "$SERVER" --bind "$CLIENT_IP" --interval 0.1 --duration 20 --ready-file "$WORK/probe.ready"
PROBE=$LAST_PID
wait_for test -f "$WORK/probe.ready"
sed -i 's/labels: {app: echo, version: v1}/labels: {app: echo, version: v1, quarantine: "yes"}/' "$CFG/pods.yaml"
selected() { server_policies | grep -q deny-quarantined; }
check "the label change reaches ztunnel-2 as the workload's policy list" wait_secs 10 selected
closed() { grep -q 'connection closed due to workload change' "$WORK/zt2.log"; }
check "the open connection is closed by the workload update" wait_secs 5 closed
wait "$PROBE" || true
check "the long-lived client saw its connection end before its 20 s" $PY -c "
import json; r=json.load(open('$WORK/probe.json')); assert r['end_reason'] != 'done', r"
check "new connections are refused" echo_refused
sed -i 's/, quarantine: "yes"}/}/' "$CFG/pods.yaml"
check "the label removed, connections pass again" wait_secs 10 echo_ok 2
rm "$CFG/quarantine.yaml"
check "(the selector DENY removed)" wait_secs 10 no_policy deny-quarantined

# ---- 2. a DENY that arrives while the app is being dialled ----
# ztunnel-2's SYNs to the app are dropped until the DENY is in place; the dial then completes.
drop_syn() { ip netns exec "$N2" iptables "$1" OUTPUT -p tcp --syn -d "$SERVER_IP" --dport 8080 -j DROP; }
cat >"$WORK/deny.yaml" <<'YAML'
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-client, namespace: default}
spec:
  action: DENY
  rules:
  - from: [{source: {principals: ["cluster.local/ns/default/sa/client"]}}]
    to: [{operation: {ports: ["8080"]}}]
YAML
drop_syn -I
start_bg "$WORK/slow.log" ip netns exec "$N1" $TCPTOOL echo --bind "$CLIENT_IP" --connect "$SERVER" \
    --timeout 15 --message slow-dial
SLOW=$LAST_PID
sleep 0.5
cp "$WORK/deny.yaml" "$CFG/deny.yaml"
check "HBONE: the DENY reaches ztunnel-2 while it still dials the app" wait_secs 5 has_policy deny-client
drop_syn -D
rc=0
wait "$SLOW" || rc=$?
say "HBONE slow dial: client exit $rc: $(tail -1 "$WORK/slow.log")"
check "HBONE: the connection is closed when its dial completes (client got no echo)" test "$rc" -ne 0
check "HBONE: ztunnel-2 says why" grep -q 'policy change while dialling the app' "$WORK/zt2.log"
rm "$CFG/deny.yaml"
check "(the DENY removed)" wait_secs 10 no_policy deny-client
check "and the client reaches the server again" wait_secs 10 echo_ok 2

# The same on 15006: plaintext (no capture in node-1), STRICT arrives during the dial.
capture_inbound "$N2"
ip netns exec "$N1" iptables -t nat -F OUTPUT
plain_ok() { ip netns exec "$N1" $TCPTOOL echo --connect "$SERVER" --timeout 2 >/dev/null 2>&1; }
check "plaintext reaches the server through 15006" wait_secs 5 plain_ok
drop_syn -I
start_bg "$WORK/slow2.log" ip netns exec "$N1" $TCPTOOL echo --connect "$SERVER" --timeout 15 \
    --message slow-plain
SLOW=$LAST_PID
sleep 0.5
cat >"$CFG/strict.yaml" <<'YAML'
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: strict, namespace: default}
spec: {mtls: {mode: STRICT}}
YAML
check "plaintext: STRICT reaches ztunnel-2 while it still dials the app" \
    wait_secs 5 has_policy istio_converted_static_strict
drop_syn -D
rc=0
wait "$SLOW" || rc=$?
say "plaintext slow dial: client exit $rc: $(tail -1 "$WORK/slow2.log")"
check "plaintext: the connection is closed when its dial completes" test "$rc" -ne 0
check "plaintext: ztunnel-2 says why" sh -c \
    "[ \$(grep -c 'policy change while dialling the app' '$WORK/zt2.log') -ge 2 ]"

check "node-1 ztunnel exits 0 on SIGTERM, sanitizers clean" stop_ztunnel "$ZT1" "$WORK/zt1.log"
check "node-2 ztunnel exits 0 on SIGTERM, sanitizers clean" stop_ztunnel "$ZT2" "$WORK/zt2.log"
check "meshd exits 0 on SIGTERM, sanitizers clean" stop_meshd "$MESHD_PID" "$WORK/meshd.log"
finish
