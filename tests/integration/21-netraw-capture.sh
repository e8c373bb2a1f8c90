#!/usr/bin/env bash
# What a process with CAP_NET_RAW (containers have it by default) can do against in-pod
# capture (issue 9, attack 4), and IPv6 capture of a pod that has only a link-local IPv6
# address (issue 9, section 3). The topology is 11-inpod-mesh.sh's: pods client (node-1)
# and server (node-2), both enrolled, a DENY policy on the server's port 8080.
#
# The attack: one raw TCP ACK from source port P to the server, then connect() from P;
# or one raw SYN "from" the server to the pod itself, then connect() from P (reflected).
# Conntrack meets the flow first without SYN; rules that exempt such a first packet (so
# connections older than enrollment survive) leave the flow un-NATed in both pods, and the
# connection reaches the app directly, past both ztunnels and their policy. Captured, it
# is refused by the DENY. A connection opened before enrollment must still keep working.
. "$(dirname "$0")/lib.sh"
require_root
inpod_two_nodes none
NETRAW="$PY $ROOT/tests/support/netraw_probe.py"

cat >"$CFG/deny.yaml" <<YAML
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-8080, namespace: demo}
spec:
  action: DENY
  rules:
  - to: [{operation: {ports: ["8080", "8082"]}}]
YAML

# The server pod is IPv4 only (its podIPs), but its kernel gives eth0 a link-local IPv6
# address, and an app listening on [::] answers there.
ip netns exec "$PS" sysctl -qw net.ipv6.conf.all.disable_ipv6=0 net.ipv6.conf.eth0.disable_ipv6=0
start_bg "$WORK/server6.log" ip netns exec "$PS" $TCPTOOL serve --bind :: --port 8082 --banner v6app
wait_for sh -c "ip netns exec $PS ss -Hltn 'sport = :8082' | grep -q ."
# The node's end of the server pod's link, and both link-local addresses.
PEERIDX=$(ip -n "$PS" -o link show dev eth0 | sed -n 's/.*eth0@if\([0-9]*\):.*/\1/p')
HOSTIF=$(ip -n "$N2" -o link show | awk -F': ' -v i="$PEERIDX" '$1 == i {print $2}' | sed 's/@.*//')
ll_of() { ip -n "$1" -6 -o addr show dev "$2" scope link | awk '{print $4}' | cut -d/ -f1; }
wait_for sh -c "ip -n $PS -6 -o addr show dev eth0 scope link | grep -v tentative | grep -q fe80"
wait_for sh -c "ip -n $N2 -6 -o addr show dev $HOSTIF scope link | grep -v tentative | grep -q fe80"
PS_LL=$(ll_of "$PS" eth0)
say "server pod link-local $PS_LL, reached from node-2 over $HOSTIF"
ll_answer() { ip netns exec "$N2" $NETRAW connect --to "[$PS_LL%$HOSTIF]:8082"; }
N2_LL=$(ll_of "$N2" "$HOSTIF")
got=$(ll_answer)
check "not enrolled: the app answers on its link-local address directly ($got)" [ "$got" = "v6app $N2_LL" ]

# A connection opened before enrollment, probed every 100 ms throughout.
start_bg "$WORK/probe.json" ip netns exec "$PC" $PY "$ROOT/tests/support/lifecycle_probe.py" \
    --connect "$SIP:8081" --interval 0.1 --duration 8 --ready-file "$WORK/probe.ready"
PROBE=$LAST_PID
wait_for test -f "$WORK/probe.ready"

sed -i 's#istio.io/dataplane-mode: none#istio.io/dataplane-mode: ambient#' "$CFG/demo.yaml"
enrolled() { grep -q 'pod demo/client .* enrolled' "$WORK/zt1.log" &&
             grep -q 'pod demo/server .* enrolled' "$WORK/zt2.log"; }
check "both pods enrolled" wait_secs 5 enrolled
certs() { grep -q 'certificate for spiffe://cluster.local/ns/demo/sa/server from the CA' "$WORK/zt2.log" &&
          grep -q 'certificate for spiffe://cluster.local/ns/demo/sa/client from the CA' "$WORK/zt1.log"; }
wait_secs 5 certs || true

banner() { ip netns exec "$1" $NETRAW "${@:2}"; }
allowed() { [ "$(banner "$PC" connect --to "$SIP:8080")" != "server $CIP" ]; }
check "enrolled: a plain connection to the server's 8080 is refused by the DENY" wait_secs 5 allowed

say "raw ACK from port P, then connect() from P"
# Everything between the nodes is recorded: captured traffic crosses only as HBONE (15008).
start_bg "$WORK/tcpdump.log" ip netns exec "$N2" tcpdump -Z root --immediate-mode -i v2 -n -U \
    -w "$WORK/link.pcap" tcp
TCPDUMP=$LAST_PID
sleep 1
MARKER="netraw-$RANDOM$RANDOM"
check "control: a plain connection from a chosen source port is served" \
    [ "$(banner "$PC" connect --to "$SIP:8081" --sport 31001 --message "$MARKER-plain")" = "$MARKER-plain" ]
# The ACK dies at the first hop (TTL 1), as behind a stateful firewall that drops it: no
# reset comes back to end the conntrack entry it made. A Linux peer that gets the ACK
# resets it, and conntrack drops an entry whose only reply is a reset.
for i in 1 2 3; do
    got=$(banner "$PC" ackconnect --to "$SIP:8081" --sport $((31010 + i)) --ttl 1 --message "$MARKER-$i")
    say "attempt $i from the client pod (port $((31010 + i))): $got"
done
# A raw SYN "from" the server to the client pod itself (over lo, bad checksum: no reset)
# leaves an entry whose reply direction is the connect() that follows: not NEW, so nat
# never sees it, unless the pod may not send from an address that is not its own.
for i in 4 5 6; do
    got=$(banner "$PC" reflectconnect --to "$SIP:8081" --sport $((31010 + i)) --message "$MARKER-$i")
    say "reflected SYN, attempt $i from the client pod (port $((31010 + i))): $got"
done
# A neighbour outside the mesh tries the same against the server pod's DENY on 8080.
got=$(banner "$N2" ackconnect --to "$SIP:8080")
say "from node-2, outside the mesh, to the denied port: $got"
check "a neighbour outside the mesh: captured by the server pod and refused, not served" \
    [ "${got%% *}" != server ]
sleep 0.5
kill -INT "$TCPDUMP"; wait "$TCPDUMP" 2>/dev/null || true
tcpdump -n -r "$WORK/link.pcap" 2>/dev/null >"$WORK/link.txt"
check "the link between the nodes carried traffic" test -s "$WORK/link.txt"
attacker_ports() { grep -E '\.3101[1-6] > ' "$WORK/link.txt" || true; }
check "no packet left the client pod from the attacker's ports (only ztunnel's HBONE)" \
    [ -z "$(attacker_ports)" ]
attacker_ports | head -3 | sed 's/^/#   /'
check "the attacker's payload never crossed in clear" \
    sh -c "! tcpdump -n -A -r '$WORK/link.pcap' 2>/dev/null | grep -q '$MARKER'"
sleep 0.3
carried() { grep -E "src\.addr=$CIP:3101[1-6] .*direction=\"outbound\"" "$WORK/zt1.log" | wc -l; }
check "the client pod's ztunnel carried all six attacker connections (access log)" \
    [ "$(carried)" -ge 6 ]

wait "$PROBE" || true
check "the connection opened before enrollment kept working through it" $PY -c "
import json; r=json.load(open('$WORK/probe.json')); assert r['end_reason']=='done' and r['ok']>40, r"

say "IPv6 link-local, v4-only pod"
got=$(ll_answer)
say "node-2 -> [$PS_LL]:8082: $got"
check "the link-local connection does not reach the app directly" \
    [ "$got" != "v6app $N2_LL" ]
check "the server pod's ztunnel got it (captured to 15006)" \
    wait_secs 3 grep -q -F "$PS_LL" "$WORK/zt2.log"
check "ip6tables capture rules are in the v4-only pod" \
    sh -c "ip netns exec $PS ip6tables-save -t nat | grep -q 'REDIRECT --to-ports 15006'"

sed -i 's#istio.io/dataplane-mode: ambient#istio.io/dataplane-mode: none#' "$CFG/demo.yaml"
gone() { ! ip netns exec "$PS" iptables-save | grep -q ISTIO_ &&
         ! ip netns exec "$PS" ip6tables-save | grep -q ISTIO_ &&
         ! ip netns exec "$PC" iptables-save | grep -q ISTIO_; }
check "un-enrolling removes the rules of both families" wait_secs 5 gone
stop_inpod_two_nodes
finish
