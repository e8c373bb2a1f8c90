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
. "$ROOT/tools/demo-lib.sh"
trap demo_cleanup EXIT
[ "$(id -u)" = 0 ] || { echo "make demo-kube needs root (network namespaces)"; exit 1; }

# The pod's network namespace, from the kubelet's record of it (pods/<ns>_<name>/run.json).
netns_of() { # deployment -> netns of its (first) pod
    local pod
    pod=$(kubectl get pods -n demo -l "app=$1" -o jsonpath='{.items[0].metadata.name}')
    $PY -c "import json; print(json.load(open('$MESH_CLUSTER_DIR/pods/demo_$pod/run.json'))['netns'])"
}
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
demo_plaintext "$CURL_NS"

step "4. Enroll the namespace: one label, no pod restarted"
show kubectl label ns demo istio.io/dataplane-mode=ambient
hbone() { meshctl ztunnel-config workloads --node node-1 | grep -Eq '^demo +curl.* HBONE'; }
for _ in $(seq 50); do hbone && break; sleep 0.2; done
show meshctl ztunnel-config workloads --node node-1
say "mesh-cni marks each enrolled pod as Istio's node agent does:"
show kubectl get pods -n demo -o custom-columns='NAME:.metadata.name,REDIRECTION:.metadata.annotations.ambient\.istio\.io/redirection'
sleep 1

step "5. The same curl now rides HBONE: mutual TLS to port 15008"
demo_hbone "$CURL_NS"

step "6. L4 authorization: only curl's identity may reach echo"
show cat "$ROOT/samples/allow-curl.yaml"
show kubectl apply -f "$ROOT/samples/allow-curl.yaml"
demo_l4_policy

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
WP_POD=$(kubectl get pods -n demo -l gateway.networking.k8s.io/gateway-name=waypoint -o jsonpath='{.items[0].metadata.name}')
WP_NS=$($PY -c "import json; print(json.load(open('$MESH_CLUSTER_DIR/pods/demo_$WP_POD/run.json'))['netns'])")
wp_metrics() { ip netns exec "$WP_NS" curl -s http://127.0.0.1:15020/metrics; }
demo_l7_traffic
demo_l7_count

step "8. No pod was restarted"
show kubectl get pods -n demo
say "(RESTARTS 0: enrollment changed the pods' network namespaces, not their processes)"
