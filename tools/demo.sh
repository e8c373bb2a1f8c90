#!/usr/bin/env bash
# demo.sh - the two-node HBONE scenario, narrated. Run by `make demo` (as root).
#
# It builds two "nodes" out of network namespaces, runs a ztunnel on each in
# local mode, and shows the same TCP exchange first in plaintext, then
# captured by ztunnel and carried in an mTLS HBONE tunnel. Everything it makes
# is removed at the end.
set -euo pipefail
BUILD=${1:-build}
export MESH_BIN=$(cd "$(dirname "$0")/.." && pwd)/$BUILD/bin
export ASAN_OPTIONS= UBSAN_OPTIONS=
. "$(dirname "$0")/../tests/integration/lib.sh"

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
show() { printf '\033[2m$ %s\033[0m\n' "$*"; "$@"; }

require_root
step "1. Two nodes as network namespaces, joined by a veth link"
topo_two_nodes 4
say "node-1 ($N1): client pod $CLIENT_IP      node-2 ($N2): server pod $SERVER_IP, service echo on $VIP:80"
make_ca "$WORK/ca"
write_config "$WORK/mesh.yaml"
show cat "$WORK/mesh.yaml"

step "2. An echo server on node-2, and plaintext from the client (no mesh yet)"
start_server "$N2" "$SERVER_IP" 8080 "$WORK/server.log"
start_bg "$WORK/cap1.log" ip netns exec "$N2" tcpdump -Z root --immediate-mode -i v2 -n -U -w "$WORK/plain.pcap" tcp
CAP=$LAST_PID; sleep 1
show ip netns exec "$N1" $TCPTOOL echo --bind "$CLIENT_IP" --connect "$SERVER_IP:8080" --message "secret-plaintext-payload" || true
sleep 0.5; kill -INT $CAP; wait $CAP 2>/dev/null || true
say "What an observer on the link sees: the payload in clear text"
tcpdump -n -A -r "$WORK/plain.pcap" 2>/dev/null | grep -a -m2 'secret-plaintext-payload' || true

step "3. Start ztunnel on each node (local mode) and capture node-1's outbound TCP"
start_ztunnel "$N1" node-1 "$WORK/mesh.yaml" "$WORK/ca" "$WORK/zt1.log"
ZT1=$LAST_PID
start_ztunnel "$N2" node-2 "$WORK/mesh.yaml" "$WORK/ca" "$WORK/zt2.log"
ZT2=$LAST_PID
show ip netns exec "$N1" iptables -t nat -A OUTPUT -p tcp ! -d 127.0.0.0/8 -m mark ! --mark 0x539/0xfff -j REDIRECT --to-ports 15001
FAMILY=4
show ip netns exec "$N2" $PY -c "import urllib.request;print(urllib.request.urlopen('http://127.0.0.1:15021/healthz/ready').read().decode().strip())"

step "4. The same request, now carried over HBONE (mTLS + HTTP/2 CONNECT to :15008)"
start_bg "$WORK/cap2.log" ip netns exec "$N2" tcpdump -Z root --immediate-mode -i v2 -n -U -w "$WORK/mesh.pcap" tcp
CAP=$LAST_PID; sleep 1
show ip netns exec "$N1" $TCPTOOL echo --bind "$CLIENT_IP" --connect "$SERVER_IP:8080" --message "secret-plaintext-payload"
show ip netns exec "$N1" $TCPTOOL echo --bind "$CLIENT_IP" --connect "$VIP:80" --message "via the service VIP"
sleep 0.5; kill -INT $CAP; wait $CAP 2>/dev/null || true
say "The link now carries only TLS to port 15008:"
tcpdump -n -r "$WORK/mesh.pcap" 2>/dev/null | head -6
if tcpdump -n -A -r "$WORK/mesh.pcap" 2>/dev/null | grep -q 'secret-plaintext-payload'; then
    say "UNEXPECTED: payload visible"; exit 1
fi
say "...and the payload appears nowhere in the capture."

step "5. The access logs name both SPIFFE identities"
grep 'connection complete' "$WORK/zt1.log" | head -2
grep 'connection complete' "$WORK/zt2.log" | head -2

step "6. ztunnel's view: /config_dump on node-2 (certificates minted for its own workloads only)"
ip netns exec "$N2" $PY -c "
import json,urllib.request
d=json.load(urllib.request.urlopen('http://127.0.0.1:15000/config_dump'))
for c in d['certificates']: print('  certificate', c['identity'], c['state'], 'until', c['certChain'][0]['notAfter'])
for w in d['workloads']: print('  workload', w['namespace']+'/'+w['name'], w['addresses'], w['tunnelProtocol'], 'node', w['node'])"

step "7. Graceful shutdown: SIGTERM drains and exits 0"
kill -TERM $ZT1 $ZT2; wait $ZT1; wait $ZT2
say "both ztunnels exited cleanly; removing namespaces"
