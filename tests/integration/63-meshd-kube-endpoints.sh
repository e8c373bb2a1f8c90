#!/usr/bin/env bash
# meshd --kubeconfig on the real kube-apiserver v1.20.2 watches EndpointSlices and Nodes, and a
# ztunnel fed by it sees what istiod would give it:
#
#   - the server serves discovery.k8s.io/v1beta1 only, so meshd falls back from v1;
#   - a Service without a selector and an EndpointSlice written by hand (label
#     kubernetes.io/service-name): each endpoint that is not a pod becomes a workload
#     "Kubernetes/discovery.k8s.io/EndpointSlice/<ns>/<slice>/<ip>" with the Service in its
#     services map (slice port joined to the Service port by name), health from
#     conditions.ready; an endpoint naming a Pod is left to the pod's own workload;
#   - an edit of the slice (an address replaced) and its deletion reach ztunnel within 1 s;
#   - a pod's locality comes from its Node's topology labels; a label change, and the labels'
#     removal, reach the pod's workload within 1 s; a Node status update alone changes nothing.
#   - meshctl ztunnel-config shows the same: the Service with 1/2 endpoints healthy, the
#     locality in -o json.
. "$(dirname "$0")/lib.sh"
. "$ROOT/tests/support/kube.sh"
. "$ROOT/tests/support/zt_dump.sh"
require_root
kube_require || exit 1

kc() { kube_kubectl "$K" "$@"; }
dump_has() { zt_dump_has "$N1" "$@"; }

ip netns add "$N1"
K=$WORK/kube
STATE=$WORK/state
kube_up "$N1" "$K"
kube_add_node "$N1" "$K" node-1 198.18.0.1
kc label node node-1 topology.kubernetes.io/region=region-a topology.kubernetes.io/zone=zone-1 >/dev/null

groups=$(kc api-versions | grep '^discovery.k8s.io/' | tr '\n' ' ')
say "the API server serves: $groups"
check "discovery.k8s.io/v1beta1 is served and v1 is not (so meshd must fall back)" \
    sh -c "echo '$groups' | grep -q 'discovery.k8s.io/v1beta1' && ! echo '$groups' | grep -q 'discovery.k8s.io/v1 '"

kc apply -f - >/dev/null <<'YAML'
apiVersion: v1
kind: Namespace
metadata: {name: demo, labels: {istio.io/dataplane-mode: ambient}}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: app, namespace: demo}
---
apiVersion: v1
kind: Service
metadata: {name: db, namespace: demo}
spec:
  ports:
  - {name: sql, port: 5432}
  - {name: admin, port: 8080}
YAML
kube_pod "$K" demo app-1 app node-1 198.18.1.1

mkdir -p "$STATE"
MESHD_ADDR=127.0.0.1:15012
start_bg "$WORK/meshd.log" ip netns exec "$N1" "$BIN/meshd" --kubeconfig "$K/kubeconfig" \
    --state-dir "$STATE" --listen "$MESHD_ADDR" --monitoring 127.0.0.1:15014
MESHD_PID=$LAST_PID
ready() { [ "$(ip netns exec "$N1" curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:15014/ready)" = 200 ]; }
WAIT_SECS=30 wait_for ready || true
check "meshd ready" ready
check "meshd watches EndpointSlice in v1beta1 after v1 was not served" \
    grep -q 'EndpointSlice: listed (discovery.k8s.io/v1beta1)' "$WORK/meshd.log"
check "meshd lists Nodes" grep -q 'Node: listed (v1)' "$WORK/meshd.log"
start_ztunnel_xds "$N1" node-1 "$STATE" "$WORK/zt.log"
ZT=$LAST_PID

# ---- locality from the Node ------------------------------------------------------------------
POD="U['Kubernetes//Pod/demo/app-1']"
dump_has "the pod's workload has its Node's region and zone" 10 \
    "$POD.get('locality')=={'region':'region-a','zone':'zone-1','subzone':''}"
kc label node node-1 topology.kubernetes.io/zone=zone-2 topology.istio.io/subzone=rack-7 --overwrite >/dev/null
dump_has "a zone label change (and a new subzone) reaches the pod's workload" 1 \
    "$POD.get('locality')=={'region':'region-a','zone':'zone-2','subzone':'rack-7'}"
kc label node node-1 topology.kubernetes.io/region- topology.kubernetes.io/zone- topology.istio.io/subzone- >/dev/null
dump_has "the labels removed: no locality" 1 "'locality' not in $POD"
kc label node node-1 topology.kubernetes.io/zone=zone-3 >/dev/null
dump_has "a zone label again" 1 "$POD.get('locality',{}).get('zone')=='zone-3'"
# A kubelet heartbeat (status only) is not a change of anything meshd serves: no new snapshot.
snapshots() { grep -c 'config: [0-9]* resources' "$WORK/meshd.log" || true; }
sleep 0.5
before=$(snapshots)
kc patch node node-1 --subresource=status --type=merge \
    -p "{\"status\":{\"conditions\":[{\"type\":\"Ready\",\"status\":\"True\",\"reason\":\"KubeletReady\",\"lastHeartbeatTime\":\"$(date -u +%FT%TZ)\"}]}}" >/dev/null
sleep 1
check "a Node status update alone makes no snapshot ($before -> $(snapshots))" test "$(snapshots)" = "$before"

# ---- EndpointSlice workloads -----------------------------------------------------------------
kc apply -f - >/dev/null <<'YAML'
apiVersion: discovery.k8s.io/v1beta1
kind: EndpointSlice
metadata:
  name: db-manual
  namespace: demo
  labels: {kubernetes.io/service-name: db}
addressType: IPv4
ports:
- {name: sql, port: 15432, protocol: TCP}
- {name: admin, port: 18080, protocol: TCP}
endpoints:
- addresses: [198.18.5.1]
  conditions: {ready: true}
- addresses: [198.18.5.2]
  conditions: {ready: false}
- addresses: [198.18.1.1]
  targetRef: {kind: Pod, name: app-1, namespace: demo}
YAML
E="Kubernetes/discovery.k8s.io/EndpointSlice/demo/db-manual"
KEY="demo/db.demo.svc.cluster.local"
dump_has "each endpoint that is not a pod is a workload with the Service's ports" 1 \
    "U.get('$E/198.18.5.1',{}).get('addresses')==['198.18.5.1'] and
     U['$E/198.18.5.1']['status']=='Healthy' and U['$E/198.18.5.1'].get('networkMode')=='HostNetwork' and
     sorted((p['servicePort'],p['targetPort']) for p in U['$E/198.18.5.1']['services']['$KEY']['ports'])==[(5432,15432),(8080,18080)] and
     U.get('$E/198.18.5.2',{}).get('status')=='Unhealthy'"
dump_has "the endpoint naming a Pod is not a workload of its own (the pod is)" 1 \
    "'$E/198.18.1.1' not in U and 'Kubernetes//Pod/demo/app-1' in U"
dump_has "the selector-less Service is served" 1 "'db.demo.svc.cluster.local' in S"
ip netns exec "$N1" "$BIN/meshctl" ztunnel-config services -n demo --admin 127.0.0.1:15000 >"$WORK/zc-svc.txt"
cat "$WORK/zc-svc.txt"
check "meshctl ztunnel-config services: db has 1 of its 2 endpoints healthy" \
    grep -qE '^demo +db .* 1/2 *$' "$WORK/zc-svc.txt"
ip netns exec "$N1" "$BIN/meshctl" ztunnel-config workloads -n demo -o json --admin 127.0.0.1:15000 >"$WORK/zc-wl.json"
check "meshctl ztunnel-config workloads -o json shows the pod's locality" \
    $PY -c "import json,sys; w=[x for x in json.load(open('$WORK/zc-wl.json')) if x['name']=='app-1']; sys.exit(0 if w and w[0].get('locality',{}).get('zone')=='zone-3' else 1)"
kc -n demo patch endpointslice db-manual --type=json \
    -p '[{"op":"replace","path":"/endpoints/0/addresses/0","value":"198.18.5.3"}]' >/dev/null
dump_has "an address replaced in the slice: the old workload gone, the new one there" 1 \
    "'$E/198.18.5.1' not in U and U.get('$E/198.18.5.3',{}).get('addresses')==['198.18.5.3']"
kc -n demo delete endpointslice db-manual >/dev/null
dump_has "the slice deleted: its workloads are gone" 1 \
    "not any(u.startswith('$E/') for u in U) and 'Kubernetes//Pod/demo/app-1' in U"

check "meshd logged no errors" sh -c "! grep -E '\\berror\\b' '$WORK/meshd.log'"
stop_ztunnel "$ZT" "$WORK/zt.log"
check "meshd exits cleanly" stop_meshd "$MESHD_PID" "$WORK/meshd.log"
finish
