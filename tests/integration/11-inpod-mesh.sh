#!/usr/bin/env bash
# In-pod mode end to end: pods are network namespaces behind their node's
# namespace; meshd serves config and certificates; on each node mesh-cni
# follows enrollment (a namespace label in the config directory), installs the
# redirection rules inside the pod's namespace and hands the pod to the
# node's ztunnel over ZDS; ztunnel listens inside the pod.
#
#   node-1 (n1): meshd, mesh-cni, ztunnel      pod client 198.18.1.10 (gw 198.18.1.1)
#   node-2 (n2): mesh-cni, ztunnel             pod server 198.18.2.10 (gw 198.18.2.1)
#
# Before enrollment the client talks to the server in plaintext; after it, the
# same pods (never restarted) talk over HBONE, a connection opened before the
# change keeps working, and the server still sees the client's own address.
. "$(dirname "$0")/lib.sh"
require_root
inpod_two_nodes none

no_rules() { ! ip netns exec "$1" iptables-save | grep -q ISTIO_; }
no_rules_both() { no_rules "$PC" && no_rules "$PS"; }
check "not enrolled: no redirection rules in the pods" no_rules_both
# first_line: the server's banner names the peer it sees.
banner() { ip netns exec "$PC" $PY -c "
import socket,sys
s=socket.create_connection(('$1',$2),timeout=5); s.sendall(b'x'); s.shutdown(socket.SHUT_WR)
print(s.makefile().readline().strip())"; }
sees_client() { [ "$(banner "$SIP" 8080)" = "server $CIP" ]; }
check "plaintext before enrollment; the server sees the client's address" sees_client

# A connection opened before enrollment, probed every 100 ms throughout.
start_bg "$WORK/probe.json" ip netns exec "$PC" $PY "$ROOT/tests/support/lifecycle_probe.py" \
    --connect "$SIP:8081" --interval 0.1 --duration 8 --ready-file "$WORK/probe.ready"
PROBE=$LAST_PID
wait_for test -f "$WORK/probe.ready"

# Enroll the namespace: one label, no pod restarted.
sed -i 's#istio.io/dataplane-mode: none#istio.io/dataplane-mode: ambient#' "$CFG/demo.yaml"
enrolled() { ip netns exec "$PC" iptables-save | grep -q ISTIO_OUTPUT &&
             ip netns exec "$PS" iptables-save | grep -q ISTIO_PRERT &&
             grep -q 'pod demo/client .* enrolled' "$WORK/zt1.log" &&
             grep -q 'pod demo/server .* enrolled' "$WORK/zt2.log"; }
check "enrolling the namespace installs rules and hands both pods to their ztunnel" wait_secs 5 enrolled
NORM="$PY $ROOT/tests/support/inpod_save.py"
ip netns exec "$PC" iptables-save | $NORM --ours >"$WORK/rules.txt"
$NORM --ours <"$ROOT/tests/unit/inpod/ipv4.rules" >"$WORK/golden.txt"
check "the rules in the enrolled pod match the golden file" cmp -s "$WORK/golden.txt" "$WORK/rules.txt"
check "the pod's policy route for the return path is in place" \
    sh -c "ip -n $PC rule | grep -q 'fwmark 0x111/0xfff lookup 100' && ip -n $PC route show table 100 | grep -q 'local default dev lo'"
# ZDS interop with a peer not built from amesh code (Python socket + SCM_RIGHTS + protobuf).
ZDSPROBE="$PY $ROOT/tests/support/zds_probe.py"
check "a Python ZDS client gets mesh-cni's snapshot: the client pod with its netns" \
    ip netns exec "$N1" $ZDSPROBE as-ztunnel "$WORK/zds1.sock" --expect demo/client --netns "/run/netns/$PC"
start_bg "$WORK/zds-agent.log" ip netns exec "$N2" $ZDSPROBE as-agent "$WORK/py-agent.sock" \
    --netns "/run/netns/$PS" --uid py-server --name server --namespace demo --sa server
AGENT=$LAST_PID
wait_for test -S "$WORK/py-agent.sock"
start_bg "$WORK/zt-py.log" ip netns exec "$N2" "$BIN/ztunnel" --xds-address "$MESHD_ADDR" \
    --root-cert "$STATE/root-cert.pem" --token "$WORK/token-node-2" --node node-2 \
    --zds-socket "$WORK/py-agent.sock"
ZTPY=$LAST_PID
agent_done() { wait "$AGENT"; }
check "ztunnel completes Hello, Add and SnapshotSent with a Python node agent" agent_done
cat "$WORK/zds-agent.log"
check "that ztunnel took the pod from it" grep -q 'pod demo/server (py-server) enrolled' "$WORK/zt-py.log"
check "and exits 0 on SIGTERM" stop_ztunnel "$ZTPY" "$WORK/zt-py.log"

hbone_ready() { grep -q 'certificate for spiffe://cluster.local/ns/demo/sa/server from the CA' "$WORK/zt2.log"; }
wait_secs 5 hbone_ready || true

# The connection opened before enrollment stays direct (as it was) until it ends.
wait "$PROBE" || true
check "the connection opened before enrollment kept working" $PY -c "
import json; r=json.load(open('$WORK/probe.json')); assert r['end_reason']=='done' and r['ok']>40, r"

start_bg "$WORK/tcpdump.log" ip netns exec "$N2" tcpdump -Z root --immediate-mode -i v2 -n -U -w "$WORK/link.pcap" tcp
TCPDUMP=$LAST_PID
sleep 1
MARKER="inpod-marker-$RANDOM$RANDOM"
check "enrolled: the client reaches the server by pod IP" \
    ip netns exec "$PC" $TCPTOOL echo --connect "$SIP:8081" --message "$MARKER"
check "enrolled: and by service VIP" ip netns exec "$PC" $TCPTOOL echo --connect "$VIP:80" --message "$MARKER-vip"
check "the server still sees the client's own address" sees_client
sleep 0.5
kill -INT "$TCPDUMP"; wait "$TCPDUMP" 2>/dev/null || true
tcpdump -n -r "$WORK/link.pcap" 2>/dev/null >"$WORK/link.txt"
check "between the nodes only HBONE (15008) and the control plane (15012)" \
    sh -c "test -s '$WORK/link.txt' && ! grep -v -E '\\.(15008|15012)[ :]' '$WORK/link.txt' | grep -q ."
check "the payload never crosses in clear" \
    sh -c "! tcpdump -n -A -r '$WORK/link.pcap' 2>/dev/null | grep -q '$MARKER'"
sleep 0.3
check "access logs name both SPIFFE identities" sh -c "
grep -q 'src.identity=\"spiffe://cluster.local/ns/demo/sa/client\".*dst.identity=\"spiffe://cluster.local/ns/demo/sa/server\".*direction=\"inbound\"' '$WORK/zt2.log' &&
grep -q 'src.identity=\"spiffe://cluster.local/ns/demo/sa/client\".*direction=\"outbound\"' '$WORK/zt1.log'"

# Un-enroll: rules out, plaintext again, the pods untouched.
sed -i 's#istio.io/dataplane-mode: ambient#istio.io/dataplane-mode: none#' "$CFG/demo.yaml"
unenrolled() { no_rules "$PC" && no_rules "$PS" && grep -q 'pod demo/client removed' "$WORK/zt1.log"; }
check "un-enrolling removes the rules and the pods from ztunnel" wait_secs 5 unenrolled
check "the pod's policy route is gone too" sh -c "! ip -n $PC rule | grep -q 'lookup 100'"
check "plaintext again after un-enrolling" ip netns exec "$PC" $TCPTOOL echo --connect "$SIP:8081"

stop_inpod_two_nodes
finish
