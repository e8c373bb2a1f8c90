#!/usr/bin/env bash
# L4 authorization at the destination ztunnel (reference 5.1), local mode:
# an ALLOW policy naming one client's principal admits it and refuses a second
# client (HBONE CONNECT answered 401, the client's connection reset); a DENY
# on a port wins over the ALLOW; plaintext (15006, no identity) is refused by
# a policy that needs one; the checked port is the app's, not 15008.
. "$(dirname "$0")/lib.sh"
require_root
topo_two_nodes 4
make_ca "$WORK/ca"
write_config "$WORK/mesh.yaml"
CLIENT2_IP=198.18.250.21
ip -n "$N1" addr add $CLIENT2_IP/32 dev lo
# A second client on node-1 with its own service account, and the policies.
add_client2 "$WORK/mesh.yaml" "$CLIENT2_IP" intruder
$PY - "$WORK/mesh.yaml" <<'PY'
import sys
p = sys.argv[1]
s = open(p).read()
s = s.replace("policies: []", """policies:
- name: allow-client
  namespace: default
  scope: NAMESPACE
  action: ALLOW
  rules:
  - clauses:
    - matches:
      - principals: [{exact: cluster.local/ns/default/sa/client}]
- name: deny-9090
  namespace: default
  scope: NAMESPACE
  action: DENY
  rules:
  - clauses:
    - matches:
      - destinationPorts: [9090]
- name: deny-client-8081
  namespace: default
  scope: WORKLOAD_SELECTOR
  action: DENY
  rules:
  - clauses:
    - matches:
      - principals: [{exact: cluster.local/ns/default/sa/client}]
        destinationPorts: [8081]
""")
# The server workload selects deny-client-8081 (Workload.authorization_policies).
s = s.replace("""  canonicalName: echo""", """  authorizationPolicies: [default/deny-client-8081]
  canonicalName: echo""", 1)
open(p, "w").write(s)
PY
start_server "$N2" "$SERVER_IP" 8080 "$WORK/server.log"
start_server "$N2" "$SERVER_IP" 9090 "$WORK/server9090.log"
start_server "$N2" "$SERVER_IP" 8081 "$WORK/server8081.log"
start_ztunnel "$N1" node-1 "$WORK/mesh.yaml" "$WORK/ca" "$WORK/zt1.log"
ZT1=$LAST_PID
start_ztunnel "$N2" node-2 "$WORK/mesh.yaml" "$WORK/ca" "$WORK/zt2.log"
ZT2=$LAST_PID
capture_outbound "$N1"

check "the allowed principal reaches the server" \
    ip netns exec "$N1" $TCPTOOL echo --bind "$CLIENT_IP" --connect "$(hostport "$SERVER_IP" 8080)"
check "another principal is refused (connection fails, nothing echoed)" \
    sh -c "! ip netns exec $N1 $TCPTOOL echo --bind $CLIENT2_IP --connect $(hostport "$SERVER_IP" 8080) --timeout 5"
check "the refusal is a 401 from the destination ztunnel, logged with the policy" \
    grep -q 'CONNECT .* refused with 401\|policy rejection: .*allow policies exist, but none allowed' "$WORK/zt2.log"
check "the denied connection's access log line says DENY" \
    grep -q 'src.identity="spiffe://cluster.local/ns/default/sa/intruder".*error="connection closed due to policy rejection"' "$WORK/zt2.log"
check "a DENY on the app port wins over the ALLOW (port 9090, allowed principal)" \
    sh -c "! ip netns exec $N1 $TCPTOOL echo --bind $CLIENT_IP --connect $(hostport "$SERVER_IP" 9090) --timeout 5"
check "the DENY names its policy" grep -q 'explicitly denied by: default/deny-9090' "$WORK/zt2.log"
check "a selector-scoped DENY listed on the server workload refuses the client on 8081" \
    sh -c "! ip netns exec $N1 $TCPTOOL echo --bind $CLIENT_IP --connect $(hostport "$SERVER_IP" 8081) --timeout 5"
check "and names its policy" grep -q 'explicitly denied by: default/deny-client-8081' "$WORK/zt2.log"
check "nothing reached the app on a refused connection" \
    sh -c "! grep -q . '$WORK/server9090.log' || ! grep -q accepted '$WORK/server9090.log'"

# Plaintext (15006): no identity, so the principal ALLOW refuses it.
capture_inbound "$N2"
check "plaintext without identity is refused by a principal ALLOW" \
    sh -c "! ip netns exec $N1 sh -c 'iptables -t nat -F OUTPUT; $TCPTOOL echo --connect $(hostport "$SERVER_IP" 8080) --timeout 5'"
check "and logged as a policy rejection" \
    grep -q 'direction="inbound".*error="connection closed due to policy rejection"' "$WORK/zt2.log"
check "config_dump lists the policies in force" ip netns exec "$N2" $PY -c "
import json,urllib.request
d=json.load(urllib.request.urlopen('http://127.0.0.1:15000/config_dump',timeout=2))
names=sorted((p['namespace'],p['name'],p['action']) for p in d['policies'])
assert names==[('default','allow-client','ALLOW'),('default','deny-9090','DENY'),('default','deny-client-8081','DENY')], names
"
ip netns exec "$N2" "$BIN/meshctl" ztunnel-config policies >"$WORK/mc-policies.txt" 2>&1 || true
cat "$WORK/mc-policies.txt"
check "meshctl ztunnel-config policies shows them" grep -q 'deny-9090' "$WORK/mc-policies.txt"
check "node-1 ztunnel exits 0 on SIGTERM, sanitizers clean" stop_ztunnel "$ZT1" "$WORK/zt1.log"
check "node-2 ztunnel exits 0 on SIGTERM, sanitizers clean" stop_ztunnel "$ZT2" "$WORK/zt2.log"
finish
