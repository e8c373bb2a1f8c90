#!/usr/bin/env bash
# A pod cannot make ztunnel dial itself (issue 9, attack 1). In in-pod mode an
# unprivileged process of an enrolled pod connects straight to ztunnel's own
# listeners inside its namespace (127.0.0.1:15001, 127.0.0.2:15001,
# 127.0.0.2:15006, <pod-ip>:15001, [::1]:15001, the v4-mapped form ...): none of
# these was REDIRECTed, so the "original destination" is the listener itself.
# Before the fix ztunnel dialled it, accepted its own connection, dialled again,
# and so on until it ran out of descriptors. Now each is closed at once,
# counted in amesh_ztunnel_self_connections_refused_total and logged a few
# times at most; descriptors stay flat and another pod on the node keeps
# reaching the server through the mesh during and after.
#
#   node-1: meshd, mesh-cni, ztunnel   pod client 198.18.1.10 (attacker, as nobody)
#                                      pod other  198.18.3.10 (victim traffic)
#   node-2: mesh-cni, ztunnel          pod server 198.18.2.10 (:8081 echo, service VIP:80)
. "$(dirname "$0")/lib.sh"
require_root
inpod_two_nodes ambient
PO=amt-po-$ID OIP=198.18.3.10
add_pod "$N1" "$PO" $OIP 198.18.3.1
cat >>"$CFG/demo.yaml" <<YAML
---
apiVersion: v1
kind: Pod
metadata:
  name: other
  namespace: demo
  uid: 00000000-0000-0000-0000-0000000000e1
  annotations: {amesh.io/netns: /run/netns/$PO}
spec: {serviceAccountName: other, nodeName: node-1, containers: [{name: c, image: x}]}
status: {phase: Running, conditions: [{type: Ready, status: "True"}], podIPs: [{ip: $OIP}]}
YAML
enrolled() { grep -q 'pod demo/client .* enrolled' "$WORK/zt1.log" &&
             grep -q 'pod demo/other .* enrolled' "$WORK/zt1.log" &&
             grep -q 'pod demo/server .* enrolled' "$WORK/zt2.log"; }
check "the three pods are enrolled" wait_secs 10 enrolled
through_mesh() { ip netns exec "$PO" $TCPTOOL echo --connect "$VIP:80" --timeout 3 >/dev/null 2>&1; }
check "the other pod reaches the server through the mesh" wait_secs 10 through_mesh

fds() { ls "/proc/$ZT1/fd" | wc -l; }
refused_count() {
    ip netns exec "$N1" $PY -c "
import urllib.request
t=urllib.request.urlopen('http://127.0.0.1:15020/metrics',timeout=2).read().decode()
print(int(sum(float(l.rsplit(' ',1)[1]) for l in t.splitlines()
    if l.startswith('amesh_ztunnel_self_connections_refused_total'))))" 2>/dev/null || echo 0
}
sleep 0.5
FD0=$(fds)
say "ztunnel (node-1) descriptors before: $FD0"

# The attacker: as nobody inside the client pod, $ROUNDS rounds of one connection to each
# target, each sending a byte; every connection is held open until the end.
ROUNDS=20
TARGETS="127.0.0.1:15001 127.0.0.2:15001 127.0.0.9:15006 127.0.0.1:15006 $CIP:15001 $CIP:15006 [::1]:15001 [::1]:15006 [::ffff:127.0.0.1]:15001 [::ffff:$CIP]:15001"
ATTACK_PY=$(cat <<'PY'
import os, socket, sys, time
rounds, hold, targets = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3:]
socks, opened, failed = [], 0, 0
for _ in range(rounds):
    for t in targets:
        host, _, port = t.rpartition(":")
        host = host.strip("[]")
        s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
        s.settimeout(2)
        try:
            s.connect((host, int(port)))
            s.sendall(b"x")
            opened += 1
            socks.append(s)
        except OSError:
            failed += 1
            s.close()
print("uid %d opened %d failed %d" % (os.getuid(), opened, failed), flush=True)
time.sleep(hold)
PY
)
# (The script is passed inline: nobody cannot read the test's private work directory.)
start_bg "$WORK/attack.log" ip netns exec "$PC" setpriv --reuid nobody --regid nogroup --clear-groups \
    $PY -c "$ATTACK_PY" $ROUNDS 6 $TARGETS
ATTACK=$LAST_PID
attacked() { grep -q '^uid [1-9][0-9]* opened' "$WORK/attack.log"; }
check "the attacker ran as nobody (not root) and made its connections" wait_secs 30 attacked
cat "$WORK/attack.log"
check "during the attack, the other pod still reaches the server" through_mesh
sleep 1
FD1=$(fds)
say "ztunnel (node-1) descriptors during the attack ($ROUNDS x $(echo $TARGETS | wc -w) connections): $FD1"
check "descriptors stay flat (before $FD0, during $FD1, bound +20)" test "$FD1" -le $((FD0 + 20))
N=$(refused_count)
say "amesh_ztunnel_self_connections_refused_total: $N"
ip netns exec "$N1" $PY -c "
import urllib.request
t=urllib.request.urlopen('http://127.0.0.1:15020/metrics',timeout=2).read().decode()
print(''.join('#   '+l+'\\n' for l in t.splitlines() if l.startswith('amesh_ztunnel_self')), end='')" || true
check "each connection to ztunnel itself is counted ($N >= $ROUNDS)" test "${N:-0}" -ge "$ROUNDS"
LINES=$(grep -c 'refused a connection to ztunnel itself' "$WORK/zt1.log" || true)
say "log lines about it: $LINES"
check "logged, but only a few times ($LINES)" test "$LINES" -ge 1 -a "$LINES" -le 5
# From outside the pod (the node's namespace), <pod-ip>:15001 is REDIRECTed to 15006 with
# the original destination kept: that is one of ztunnel's listeners in the pod, refused too.
from_node() { ! ip netns exec "$N1" $TCPTOOL echo --connect "$CIP:15001" --timeout 2 >/dev/null 2>&1; }
check "from the node, plaintext to $CIP:15001 (REDIRECTed to 15006) gets nothing" from_node
own_counted() { ip netns exec "$N1" $PY -c "
import urllib.request
t=urllib.request.urlopen('http://127.0.0.1:15020/metrics',timeout=2).read().decode()
assert any(l.startswith('amesh_ztunnel_self_connections_refused_total{listener=\"inbound-plaintext\",reason=\"the pod\'s own listener\"}') for l in t.splitlines())"; }
check "and it is counted as the pod's own listener" own_counted
wait "$ATTACK" || true
check "after the attack, the other pod still reaches the server" through_mesh
sleep 0.5
FD2=$(fds)
say "ztunnel (node-1) descriptors after: $FD2"
check "descriptors back to where they were (before $FD0, after $FD2)" test "$FD2" -le $((FD0 + 5))
check "the client pod itself still reaches the server" \
    ip netns exec "$PC" $TCPTOOL echo --connect "$VIP:80" --timeout 3

stop_inpod_two_nodes
finish
