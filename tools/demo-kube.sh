#!/usr/bin/env bash
# demo-kube.sh - the `make demo` narrative against a real Kubernetes control plane. Run by
# `make demo-kube` (as root).
#
# meshctl install --kubernetes runs etcd, kube-apiserver v1.20.2, the controller-manager and
# the scheduler in the cluster's control-plane namespace, a kubelet per node, and meshd and
# mesh-cni watching the API server. The user's CLI is the machine's kubectl: Deployments,
# ReplicaSets and scheduling are Kubernetes' own; the kubelets run the pods in network
# namespaces. Then, as in demo.sh: plaintext curl; the namespace enrolled with one label;
# the same curl riding HBONE while no pod restarts; an L4 policy admits curl and refuses
# another client; a waypoint (a Gateway applied with kubectl, deployed by meshd, run by a
# kubelet) serves the L7 route and policies of samples/waypoint.yaml. It ends by
# uninstalling, leaving the machine as it was.
set -euo pipefail
BUILD=${1:-build}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=$ROOT/$BUILD/bin
PY=/usr/bin/python3
export PATH=$BIN:$PATH
# A private cluster directory: the demo never touches a cluster of yours in /run/amesh.
W=$(mktemp -d /tmp/amesh-demo-kube.XXXXXX)
export MESH_CLUSTER_DIR=$W/cluster
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
    rm -rf "$W"
    exit $rc
}
trap cleanup EXIT
[ "$(id -u)" = 0 ] || { echo "make demo-kube needs root (network namespaces)"; exit 1; }

# The pod's network namespace, from the kubelet's record of it (pods/<ns>_<name>/run.json).
netns_of() { # deployment -> netns of its (first) pod
    local pod
    pod=$(kubectl get pods -n demo -l "app=$1" -o jsonpath='{.items[0].metadata.name}')
    $PY -c "import json; print(json.load(open('$MESH_CLUSTER_DIR/pods/demo_$pod/run.json'))['netns'])"
}
capture() { # netns pcap: tcpdump on the pod's eth0 (all it sends and receives)
    ip netns exec "$1" tcpdump -Z root --immediate-mode -i eth0 -n -U -w "$2" tcp >/dev/null 2>&1 &
    CAPS+=($!)
    sleep 1
}
stop_capture() { sleep 0.5; kill -INT "${CAPS[-1]}"; wait "${CAPS[-1]}" 2>/dev/null || true; unset 'CAPS[-1]'; }

step "1. A local cluster with a real Kubernetes control plane: two nodes, a kubelet on each"
show meshctl install --kubernetes --nodes 2
show export KUBECONFIG=$MESH_CLUSTER_DIR/kubeconfig
show kubectl get nodes -o wide
show kubectl get pods -A
say "(the control plane runs as processes in the cluster's control-plane namespace, not as pods)"

step "2. The sample apps, applied with kubectl: Deployments -> ReplicaSets -> Pods -> scheduled"
show kubectl apply -f "$ROOT/samples/echo.yaml" -f "$ROOT/samples/curl.yaml" -f "$ROOT/samples/sleep.yaml"
show kubectl wait -n demo --for=condition=Ready pod --all --timeout=120s
ready() { [ "$(meshctl ztunnel-config workloads --node node-1 | grep -c '^demo ')" -ge 4 ]; }
for _ in $(seq 100); do ready && break; sleep 0.2; done
show kubectl get deploy,rs,pods -n demo -o wide
show meshctl ztunnel-config workloads --node node-1

step "3. Not in the mesh yet: curl talks to echo in plaintext"
CURL_NS=$(netns_of curl)
capture "$CURL_NS" "$W/plain.pcap"
show meshctl exec -n demo deploy/curl -- curl -s http://echo/hello
stop_capture
say "What the wire next to the curl pod carries: the HTTP text"
tcpdump -n -A -r "$W/plain.pcap" 2>/dev/null | grep -a -m3 -E 'GET /hello|pod=echo' || true

step "4. Enroll the namespace: one label, no pod restarted"
show kubectl label ns demo istio.io/dataplane-mode=ambient
hbone() { meshctl ztunnel-config workloads --node node-1 | grep -Eq '^demo +curl.* HBONE'; }
for _ in $(seq 50); do hbone && break; sleep 0.2; done
show meshctl ztunnel-config workloads --node node-1
say "mesh-cni marks each enrolled pod as Istio's node agent does:"
show kubectl get pods -n demo -o custom-columns='NAME:.metadata.name,REDIRECTION:.metadata.annotations.ambient\.istio\.io/redirection'
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
meshctl logs ztunnel --node node-1 | grep 'connection complete' | grep 'sa/curl' | tail -1 || true
show meshctl ztunnel-config certificates --node node-1

step "6. L4 authorization: only curl's identity may reach echo"
show cat "$ROOT/samples/allow-curl.yaml"
show kubectl apply -f "$ROOT/samples/allow-curl.yaml"
sleep 1.5
show meshctl exec -n demo deploy/curl -- curl -s http://echo/hello
rc=0
printf '\033[2m$ %s\033[0m\n' "meshctl exec -n demo deploy/sleep -- curl -s http://echo/hello"
meshctl exec -n demo deploy/sleep -- curl -s http://echo/hello || rc=$?
# As in demo.sh: 56 when the reset follows curl's connect(), 7 when it comes first.
say "curl from the sleep pod: exit code $rc (56 or 7: the connection was reset, the destination ztunnel refused it)"
[ "$rc" = 56 ] || [ "$rc" = 7 ] || { say "UNEXPECTED exit code"; exit 1; }
say "The refusals counted by the echo pods' ztunnels (istio_tcp_connections_failed_total, DENY):"
for n in node-1 node-2; do
    ip netns exec "$(cat "$MESH_CLUSTER_DIR/nodes/$n/netns")" curl -s http://127.0.0.1:15020/metrics |
        grep '^istio_tcp_connections_failed_total{' | grep 'response_flags="DENY"' |
        sed -E 's/\{.*(destination_workload="[^"]*").*\}/{\1,response_flags="DENY",...}/' || true
done

step "7. L7 through a waypoint: meshd deploys it, Kubernetes schedules it, a kubelet runs it"
meshctl waypoint generate -n demo >"$W/waypoint-gw.yaml"
show cat "$W/waypoint-gw.yaml"
show kubectl apply -f "$W/waypoint-gw.yaml"
show kubectl label ns demo istio.io/use-waypoint=waypoint
show kubectl wait -n demo --for=condition=Programmed gateway/waypoint --timeout=120s
kubectl wait -n demo --for=condition=Ready pod -l gateway.networking.k8s.io/gateway-name=waypoint --timeout=60s >/dev/null
show kubectl get gateway,deploy,pods -n demo -l gateway.networking.k8s.io/gateway-name=waypoint
show cat "$ROOT/samples/waypoint.yaml"
show kubectl apply -f "$ROOT/samples/waypoint.yaml"
l7_ready() { meshctl exec -n demo deploy/curl -- curl -s -o /dev/null -w '%{http_code}' \
                 http://echo/admin | grep -qx 403; }
for _ in $(seq 100); do l7_ready && break; sleep 0.2; done
WP_POD=$(kubectl get pods -n demo -l gateway.networking.k8s.io/gateway-name=waypoint -o jsonpath='{.items[0].metadata.name}')
WP_NS=$($PY -c "import json; print(json.load(open('$MESH_CLUSTER_DIR/pods/demo_$WP_POD/run.json'))['netns'])")
wp_metrics() { ip netns exec "$WP_NS" curl -s http://127.0.0.1:15020/metrics; }
wp_requests() { wp_metrics | awk '/^istio_requests_total\{/ {n += $NF} END {print n + 0}'; }
REQ0=$(wp_requests)
say "100 requests to echo: the HTTPRoute sends 90% to v1 and 10% to v2"
for _ in $(seq 100); do meshctl exec -n demo deploy/curl -- curl -s http://echo/hello; done |
    grep -o 'version=v[12]' | sort | uniq -c
show meshctl exec -n demo deploy/curl -- curl -s -w ' (%{http_code})\n' http://echo/admin/users
say "an L7 DENY on /admin*: the waypoint answers 403 itself; echo never sees it"
printf '\033[2m$ %s\033[0m\n' "meshctl exec -n demo deploy/sleep -- curl -s http://echo/hello"
meshctl exec -n demo deploy/sleep -- curl -s -w ' (%{http_code})\n' http://echo/hello || true
say "the sleep pod's identity is not allowed at L7: 403 from the waypoint"
REQ1=$(wp_requests)
say "requests sent since the 90/10 run began: 102; the waypoint's istio_requests_total grew by $((REQ1 - REQ0))"
[ "$((REQ1 - REQ0))" = 102 ] || { say "UNEXPECTED: the waypoint counted $((REQ1 - REQ0))"; exit 1; }

step "8. No pod was restarted"
show kubectl get pods -n demo
say "(RESTARTS 0: enrollment changed the pods' network namespaces, not their processes)"
