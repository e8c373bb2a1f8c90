#!/usr/bin/env bash
# demo.sh - ambient mesh on a local cluster, narrated. Run by `make demo` (as root).
#
# meshctl builds a two-node cluster out of network namespaces (meshd, and on
# each node mesh-cni and ztunnel), deploys the sample apps, and shows: curl
# between pods in plaintext; the namespace enrolled with one label; the same
# curl riding HBONE (mTLS to 15008) with certificates from meshd's CA, while
# no pod restarts; then an L4 policy admits curl and refuses another client.
# It ends by uninstalling, leaving the machine as it was.
set -euo pipefail
BUILD=${1:-build}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=$ROOT/$BUILD/bin
PY=/usr/bin/python3
export PATH=$BIN:$PATH
# A private cluster directory: the demo never touches a cluster of yours in /run/amesh.
export MESH_CLUSTER_DIR=$(mktemp -d /tmp/amesh-demo.XXXXXX)/cluster
CAPS=()

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
say() { printf '# %s\n' "$*"; }
show() { printf '\033[2m$ %s\033[0m\n' "$*"; "$@"; }
cleanup() {
    local rc=$?
    for p in "${CAPS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
    if [ -d "$MESH_CLUSTER_DIR" ]; then
        step "Uninstall: everything the cluster made goes away"
        meshctl uninstall || rc=1
    fi
    rm -rf "$(dirname "$MESH_CLUSTER_DIR")"
    exit $rc
}
trap cleanup EXIT
[ "$(id -u)" = 0 ] || { echo "make demo needs root (network namespaces)"; exit 1; }

netns_of() { # pod -> its network namespace (what mesh-cni reads from the pod's annotation)
    meshctl get pods -n demo -o json | $PY -c "
import json,sys
for i in json.load(sys.stdin)['items']:
    if i['metadata']['name'].startswith('$1'):
        print(i['metadata']['annotations']['amesh.io/netns'].rsplit('/',1)[1]); break"
}
capture() { # netns pcap: tcpdump on the pod's eth0 (all it sends and receives)
    ip netns exec "$1" tcpdump -Z root --immediate-mode -i eth0 -n -U -w "$2" tcp >/dev/null 2>&1 &
    CAPS+=($!)
    sleep 1
}
stop_capture() { sleep 0.5; kill -INT "${CAPS[-1]}"; wait "${CAPS[-1]}" 2>/dev/null || true; unset 'CAPS[-1]'; }

step "1. A local cluster: two nodes, meshd, and on each node mesh-cni and ztunnel"
show meshctl install --nodes 2

step "2. The sample apps: echo (two versions), a curl pod and a sleep pod, in namespace demo"
show meshctl apply -f "$ROOT/samples/echo.yaml" -f "$ROOT/samples/curl.yaml" -f "$ROOT/samples/sleep.yaml"
ready() { [ "$(meshctl get pods -n demo | grep -c Running)" -ge 4 ] &&
          [ "$(meshctl ztunnel-config workloads --node node-1 | grep -c '^demo ')" -ge 4 ]; }
for _ in $(seq 100); do ready && break; sleep 0.1; done
show meshctl get pods -n demo -o wide
show meshctl ztunnel-config workloads --node node-1

step "3. Not in the mesh yet: curl talks to echo in plaintext"
CURL_NS=$(netns_of curl)
W=$(dirname "$MESH_CLUSTER_DIR")
capture "$CURL_NS" "$W/plain.pcap"
show meshctl exec -n demo deploy/curl -- curl -s http://echo/hello
stop_capture
say "What the wire next to the curl pod carries: the HTTP text"
tcpdump -n -A -r "$W/plain.pcap" 2>/dev/null | grep -a -m3 -E 'GET /hello|pod=echo' || true

step "4. Enroll the namespace: one label, no pod restarted"
show meshctl label ns demo istio.io/dataplane-mode=ambient
hbone() { meshctl ztunnel-config workloads --node node-1 | grep -Eq '^demo +curl.* HBONE'; }
for _ in $(seq 50); do hbone && break; sleep 0.1; done
show meshctl ztunnel-config workloads --node node-1
sleep 1

step "5. The same curl now rides HBONE: mutual TLS to port 15008"
capture "$CURL_NS" "$W/mesh.pcap"
show meshctl exec -n demo deploy/curl -- curl -s http://echo/hello
show meshctl exec -n demo deploy/curl -- curl -s http://echo.demo.svc.cluster.local/hello
stop_capture
say "The wire now carries only TLS to 15008:"
tcpdump -n -r "$W/mesh.pcap" 2>/dev/null | head -4
if tcpdump -n -A -r "$W/mesh.pcap" 2>/dev/null | grep -q 'GET /hello'; then
    say "UNEXPECTED: HTTP visible"; exit 1
fi
say "...and no HTTP text anywhere in the capture. The server still sees the client's own IP."
say "ztunnel's access log names both SPIFFE identities:"
meshctl logs ztunnel --node node-1 | grep 'connection complete' | grep 'sa/curl' | tail -1
show meshctl ztunnel-config certificates --node node-1

step "6. L4 authorization: only curl's identity may reach echo"
show cat "$ROOT/samples/allow-curl.yaml"
show meshctl apply -f "$ROOT/samples/allow-curl.yaml"
sleep 1.5
show meshctl exec -n demo deploy/curl -- curl -s http://echo/hello
rc=0
printf '\033[2m$ %s\033[0m\n' "meshctl exec -n demo deploy/sleep -- curl -s http://echo/hello"
meshctl exec -n demo deploy/sleep -- curl -s http://echo/hello || rc=$?
# The destination ztunnel refuses the HBONE CONNECT and the sleep pod's ztunnel resets the
# connection. curl says 56 when the reset comes after its connect() completed, and 7 when it
# comes first (its non-blocking connect then reads ECONNRESET from SO_ERROR; seen on a slow
# machine). Either way nothing reached echo; anything else (0: served) is a failure.
say "curl from the sleep pod: exit code $rc (56 or 7: the connection was reset, the destination ztunnel refused it)"
[ "$rc" = 56 ] || [ "$rc" = 7 ] || { say "UNEXPECTED exit code"; exit 1; }
say "The refusals counted by the echo pods' ztunnels (istio_tcp_connections_failed_total, DENY):"
for n in node-1 node-2; do
    ip netns exec "$(cat "$MESH_CLUSTER_DIR/nodes/$n/netns")" curl -s http://127.0.0.1:15020/metrics |
        grep '^istio_tcp_connections_failed_total{' | grep 'response_flags="DENY"' |
        sed -E 's/\{.*(destination_workload="[^"]*").*\}/{\1,response_flags="DENY",...}/' || true
done

step "7. L7 through a waypoint: routing and HTTP authorization"
show meshctl waypoint apply -n demo --enroll-namespace --wait
show meshctl waypoint list -n demo
show cat "$ROOT/samples/waypoint.yaml"
show meshctl apply -f "$ROOT/samples/waypoint.yaml"
# The route and policies reach the waypoint within a second; a few requests show it in force.
l7_ready() { meshctl exec -n demo deploy/curl -- curl -s -o /dev/null -w '%{http_code}' \
                 http://echo/admin | grep -qx 403; }
for _ in $(seq 50); do l7_ready && break; sleep 0.2; done
wp_metrics() { meshctl exec -n demo deploy/waypoint -- curl -s http://127.0.0.1:15020/metrics; }
wp_requests() { # the sum of the waypoint's istio_requests_total
    wp_metrics | awk '/^istio_requests_total\{/ {n += $NF} END {print n + 0}'
}
REQ0=$(wp_requests)
say "100 requests to echo: the HTTPRoute sends 90% to v1 and 10% to v2"
for _ in $(seq 100); do meshctl exec -n demo deploy/curl -- curl -s http://echo/hello; done |
    grep -o 'version=v[12]' | sort | uniq -c
show meshctl exec -n demo deploy/curl -- curl -s -w ' (%{http_code})\n' http://echo/admin/users
say "an L7 DENY on /admin*: the waypoint answers 403 itself; echo never sees it"
rc=0
printf '\033[2m$ %s\033[0m\n' "meshctl exec -n demo deploy/sleep -- curl -s http://echo/hello"
meshctl exec -n demo deploy/sleep -- curl -s -w ' (%{http_code})\n' http://echo/hello || rc=$?
say "the sleep pod's identity is not allowed at L7: 403 from the waypoint"
say "The waypoint's access log (Envoy's format, as Istio's waypoints write it), one line per request:"
meshctl logs deploy/waypoint -n demo | grep '^\[' | tail -3
say "What the waypoint holds: its route table and L7 policies"
show meshctl waypoint-config routes waypoint -n demo
show meshctl waypoint-config policies waypoint -n demo
say "The waypoint's istio_requests_total (reporter=\"waypoint\"; 6 of its 25 labels shown):"
printf '\033[2m$ %s\033[0m\n' "meshctl exec -n demo deploy/waypoint -- curl -s http://127.0.0.1:15020/metrics"
wp_metrics | $PY -c '
import re, sys
keep = ("source_workload", "source_principal", "destination_service", "destination_workload",
        "response_code", "response_flags")
for line in sys.stdin:
    if line.startswith("istio_requests_total{"):
        labels = dict(re.findall(r"(\w+)=\"([^\"]*)\"", line))
        value = line.rsplit(" ", 1)[1].strip()
        shown = ",".join("%s=\"%s\"" % (k, labels[k]) for k in keep)
        print("istio_requests_total{%s,...} %s" % (shown, value))'
REQ1=$(wp_requests)
say "requests sent since the 90/10 run began: 102 (100 + /admin/users + sleep's); istio_requests_total grew by $((REQ1 - REQ0))"
[ "$((REQ1 - REQ0))" = 102 ] || { say "UNEXPECTED: the waypoint counted $((REQ1 - REQ0))"; exit 1; }

step "8. No pod was restarted"
show meshctl get pods -n demo
say "(RESTARTS 0: enrollment changed the pods' network namespaces, not their processes)"
