#!/usr/bin/env bash
# Two nodes, each with a ztunnel in local mode; the client's outbound TCP is
# REDIRECTed to its ztunnel and carried over HBONE to the server's ztunnel.
#
#   netns node-1                                  netns node-2
#   client 198.18.250.20 --REDIRECT--> ztunnel    ztunnel :15008 --> server 198.18.250.10:8080
#                         ===== mTLS + HTTP/2 CONNECT over veth =====>
#
# Run with FAMILY=6 for the same over IPv6 (2001:db8::/32).
. "$(dirname "$0")/lib.sh"
require_root
topo_two_nodes "${FAMILY:-4}"
make_ca "$WORK/ca"
write_config "$WORK/mesh.yaml"

start_server "$N2" "$SERVER_IP" 8080 "$WORK/server.log"
start_server "$N2" "$SERVER2_IP" 9090 "$WORK/legacy.log"
start_ztunnel "$N1" node-1 "$WORK/mesh.yaml" "$WORK/ca" "$WORK/zt1.log"
ZT1=$LAST_PID
start_ztunnel "$N2" node-2 "$WORK/mesh.yaml" "$WORK/ca" "$WORK/zt2.log"
ZT2=$LAST_PID
capture_outbound "$N1"

# Capture everything on node-2's side of the link while the client talks.
start_bg "$WORK/tcpdump.log" ip netns exec "$N2" tcpdump -Z root --immediate-mode -i v2 -n -U -w "$WORK/link.pcap" tcp
TCPDUMP_PID=$LAST_PID
sleep 1

MARKER="amesh-plaintext-marker-$RANDOM$RANDOM"
check "client reaches server by pod IP" \
    ip netns exec "$N1" $TCPTOOL echo --bind "$CLIENT_IP" --connect "$(hostport "$SERVER_IP" 8080)" --message "$MARKER"
check "client reaches server by service VIP" \
    ip netns exec "$N1" $TCPTOOL echo --bind "$CLIENT_IP" --connect "$(hostport "$VIP" 80)" --message "$MARKER-vip"

sleep 0.5
kill -INT "$TCPDUMP_PID"; wait "$TCPDUMP_PID" 2>/dev/null || true
tcpdump -n -r "$WORK/link.pcap" 2>/dev/null >"$WORK/link.txt"
check "capture saw traffic" test -s "$WORK/link.txt"
check "capture shows only port 15008" \
    sh -c "! grep -v -E '\\.15008[ :]' '$WORK/link.txt' | grep -q ."
check "capture never shows the payload" \
    sh -c "! tcpdump -n -A -r '$WORK/link.pcap' 2>/dev/null | grep -q '$MARKER'"

# Non-mesh destination (tunnelProtocol NONE): plain TCP, no HBONE.
check "client reaches a non-mesh workload over plain TCP" \
    ip netns exec "$N1" $TCPTOOL echo --bind "$CLIENT_IP" --connect "$(hostport "$SERVER2_IP" 9090)"

# Access logs: both SPIFFE identities, on both sides.
sleep 0.5
SRC_ID='spiffe://cluster.local/ns/default/sa/client'
DST_ID='spiffe://cluster.local/ns/default/sa/server'
check "server access log shows both identities" \
    grep -q "src.identity=\"$SRC_ID\".*dst.identity=\"$DST_ID\".*direction=\"inbound\"" "$WORK/zt2.log"
check "client access log shows both identities" \
    grep -q "src.identity=\"$SRC_ID\".*dst.identity=\"$DST_ID\".*direction=\"outbound\"" "$WORK/zt1.log"
check "access log counts the echoed bytes" \
    grep -q "bytes_sent=${#MARKER} bytes_recv=${#MARKER} " "$WORK/zt2.log"

# Plaintext inbound through 15006: a non-mesh peer (node-1's own address, not captured).
capture_inbound "$N2"
check "plaintext inbound via 15006 reaches the workload" \
    ip netns exec "$N1" sh -c "iptables -t nat -F OUTPUT 2>/dev/null; ip6tables -t nat -F OUTPUT 2>/dev/null; $TCPTOOL echo --connect $(hostport "$SERVER_IP" 8080) --message plain15006"
check "15006 access log line written" grep -q 'dst.workload="server".*direction="inbound"' "$WORK/zt2.log"

# config_dump
check "config_dump lists workloads and certificates" ip netns exec "$N2" $PY -c "
import json,urllib.request
d=json.load(urllib.request.urlopen('http://127.0.0.1:15000/config_dump',timeout=2))
assert any(w['name']=='server' and w['tunnelProtocol']=='HBONE' for w in d['workloads'])
assert any(c['identity']=='$DST_ID' for c in d['certificates'])
assert d['services'][0]['hostname']=='echo.default.svc.cluster.local'
"
check "node-1 ztunnel exits 0 on SIGTERM, sanitizers clean" stop_ztunnel "$ZT1" "$WORK/zt1.log"
check "node-2 ztunnel exits 0 on SIGTERM, sanitizers clean" stop_ztunnel "$ZT2" "$WORK/zt2.log"
finish
