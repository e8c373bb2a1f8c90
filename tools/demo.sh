#!/usr/bin/env bash
# demo.sh - the control plane and two nodes, narrated. Run by `make demo` (as root).
#
# It builds two "nodes" out of network namespaces, starts meshd (config from a
# directory of Kubernetes YAML, CA, delta xDS) and one ztunnel per node fed by
# it, then shows a TCP exchange in plaintext, enrolls the namespace by editing
# one label in the config directory, and shows the same exchange carried in an
# mTLS HBONE tunnel with certificates from meshd's CA. Everything it makes is
# removed at the end.
set -euo pipefail
BUILD=${1:-build}
export MESH_BIN=$(cd "$(dirname "$0")/.." && pwd)/$BUILD/bin
export ASAN_OPTIONS= UBSAN_OPTIONS=
. "$(dirname "$0")/../tests/integration/lib.sh"

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
show() { printf '\033[2m$ %s\033[0m\n' "$*"; "$@"; }
MESHCTL=$MESH_BIN/meshctl

require_root
step "1. Two nodes as network namespaces, joined by a veth link"
topo_two_nodes 4
say "node-1 ($N1): client pod $CLIENT_IP      node-2 ($N2): server pod $SERVER_IP, service echo on $VIP:80"
CFG=$WORK/config STATE=$WORK/state
write_k8s_config "$CFG"
# Start with the namespace not enrolled: the demo enrolls it live in step 5.
sed -i 's#istio.io/dataplane-mode: ambient#istio.io/dataplane-mode: none#' "$CFG/namespaces.yaml"
say "The config directory meshd reads (Kubernetes YAML):"
show ls "$CFG"
show cat "$CFG/namespaces.yaml"
show "$MESHCTL" analyze -f "$CFG"

step "2. meshd, the control plane: creates its CA root, serves xDS and the CA on 15012"
capture_outbound "$N1" # node-1's outbound TCP goes to its ztunnel (ztunnel's own sockets are exempt)
start_meshd "$CFG" "$STATE" "$WORK/meshd.log"
show ls -l "$STATE"
say "Each node's ztunnel gets a credential that is good for its own node only:"
show "$MESH_BIN/meshd" token --state-dir "$STATE" --node node-1

step "3. One ztunnel per node, config and certificates from meshd"
start_ztunnel_xds "$N1" node-1 "$STATE" "$WORK/zt1.log"
ZT1=$LAST_PID
start_ztunnel_xds "$N2" node-2 "$STATE" "$WORK/zt2.log"
ZT2=$LAST_PID
say "ztunnel on node-2, as istioctl would show it:"
show ip netns exec "$N2" "$MESHCTL" ztunnel-config workloads

step "4. An echo server on node-2; the namespace is not enrolled yet, so traffic is plaintext"
start_server "$N2" "$SERVER_IP" 8080 "$WORK/server.log"
start_bg "$WORK/cap1.log" ip netns exec "$N2" tcpdump -Z root --immediate-mode -i v2 -n -U -w "$WORK/plain.pcap" tcp
CAP=$LAST_PID; sleep 1
show ip netns exec "$N1" $TCPTOOL echo --bind "$CLIENT_IP" --connect "$SERVER_IP:8080" --message "secret-plaintext-payload" || true
sleep 0.5; kill -INT $CAP; wait $CAP 2>/dev/null || true
say "What an observer on the link sees: the payload in clear text"
tcpdump -n -A -r "$WORK/plain.pcap" 2>/dev/null | grep -a -m2 'secret-plaintext-payload' || true

step "5. Enroll the namespace: one label in the config directory; meshd pushes it within a second"
show sed -i 's#istio.io/dataplane-mode: none#istio.io/dataplane-mode: ambient#' "$CFG/namespaces.yaml"
hbone() { ip netns exec "$N2" "$MESHCTL" ztunnel-config workloads | grep -Eq '^default +server .* HBONE'; }
wait_secs 5 hbone || say "UNEXPECTED: the change did not arrive"
show ip netns exec "$N2" "$MESHCTL" ztunnel-config workloads
say "node-2 fetched a certificate for its own workload from meshd's CA:"
show ip netns exec "$N2" "$MESHCTL" ztunnel-config certificates

step "6. The same request, now carried over HBONE (mTLS + HTTP/2 CONNECT to :15008)"
start_bg "$WORK/cap2.log" ip netns exec "$N2" tcpdump -Z root --immediate-mode -i v2 -n -U -w "$WORK/mesh.pcap" tcp
CAP=$LAST_PID; sleep 1
show ip netns exec "$N1" $TCPTOOL echo --bind "$CLIENT_IP" --connect "$SERVER_IP:8080" --message "secret-plaintext-payload"
show ip netns exec "$N1" $TCPTOOL echo --bind "$CLIENT_IP" --connect "$VIP:80" --message "via the service VIP"
sleep 0.5; kill -INT $CAP; wait $CAP 2>/dev/null || true
say "The link now carries only TLS to port 15008 (and node-2's xDS/CA connection to 15012):"
tcpdump -n -r "$WORK/mesh.pcap" 2>/dev/null | grep -v '\.15012[: ]' | head -6
if tcpdump -n -A -r "$WORK/mesh.pcap" 2>/dev/null | grep -q 'secret-plaintext-payload'; then
    say "UNEXPECTED: payload visible"; exit 1
fi
say "...and the payload appears nowhere in the capture."

step "7. The access logs name both SPIFFE identities"
grep 'connection complete' "$WORK/zt1.log" | grep 'spiffe' | head -2
grep 'connection complete' "$WORK/zt2.log" | grep 'spiffe' | head -2

step "8. A broken config file changes nothing that is served"
show sh -c "printf 'kind: Pod\nmetadata: {name: oops\n' >'$CFG/typo.yaml'"
sleep 1
show "$MESHCTL" analyze -f "$CFG" || true
show ip netns exec "$N1" $TCPTOOL echo --bind "$CLIENT_IP" --connect "$VIP:80" --message "still served"
show ip netns exec "$N1" sh -c "$PY -c \"import urllib.request;print(urllib.request.urlopen('http://127.0.0.1:15014/metrics').read().decode())\" | grep -E '^(pilot_xds|meshd_config_errors|citadel_server_success)'"

step "9. Graceful shutdown: SIGTERM drains and exits 0"
kill -TERM $ZT1 $ZT2 $MESHD_PID; wait $ZT1; wait $ZT2; wait $MESHD_PID
say "meshd and both ztunnels exited cleanly; removing namespaces"
