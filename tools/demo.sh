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
W=$(dirname "$MESH_CLUSTER_DIR")
. "$ROOT/tools/demo-lib.sh"
trap demo_cleanup EXIT
[ "$(id -u)" = 0 ] || { echo "make demo needs root (network namespaces)"; exit 1; }

netns_of() { # pod -> its network namespace (what mesh-cni reads from the pod's annotation)
    meshctl get pods -n demo -o json | $PY -c "
import json,sys
for i in json.load(sys.stdin)['items']:
    if i['metadata']['name'].startswith('$1'):
        print(i['metadata']['annotations']['amesh.io/netns'].rsplit('/',1)[1]); break"
}
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
demo_plaintext "$CURL_NS"

step "4. Enroll the namespace: one label, no pod restarted"
show meshctl label ns demo istio.io/dataplane-mode=ambient
hbone() { meshctl ztunnel-config workloads --node node-1 | grep -Eq '^demo +curl.* HBONE'; }
for _ in $(seq 50); do hbone && break; sleep 0.1; done
show meshctl ztunnel-config workloads --node node-1
sleep 1

step "5. The same curl now rides HBONE: mutual TLS to port 15008"
demo_hbone "$CURL_NS"

step "6. L4 authorization: only curl's identity may reach echo"
show cat "$ROOT/samples/allow-curl.yaml"
show meshctl apply -f "$ROOT/samples/allow-curl.yaml"
demo_l4_policy

step "7. L7 through a waypoint: routing and HTTP authorization"
show meshctl waypoint apply -n demo --enroll-namespace --wait
show meshctl waypoint list -n demo
show cat "$ROOT/samples/waypoint.yaml"
show meshctl apply -f "$ROOT/samples/waypoint.yaml"
wp_metrics() { meshctl exec -n demo deploy/waypoint -- curl -s http://127.0.0.1:15020/metrics; }
# The route and policies reach the waypoint within a second; a few requests show it in force.
demo_l7_traffic
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
demo_l7_count

step "8. No pod was restarted"
show meshctl get pods -n demo
say "(RESTARTS 0: enrollment changed the pods' network namespaces, not their processes)"
