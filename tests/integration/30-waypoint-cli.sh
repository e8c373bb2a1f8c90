#!/usr/bin/env bash
# meshctl waypoint on the local cluster, as istioctl's users drive it: generate prints the
# Gateway; apply deploys what istiod renders for a waypoint (ServiceAccount, Deployment and
# Service named after the Gateway and owned by it; pods labelled istio.io/dataplane-mode=none,
# Service ports 15021/tcp and 15008/hbone); list and status report Programmed from the replicas'
# readiness (the pod's readinessProbe on 15021); --enroll-namespace labels the namespace and
# refuses to replace another waypoint without --overwrite; --for and --replicas follow into
# the Gateway and the Deployment; delete removes the Gateway and everything it owned.
# Readiness probes (httpGet) decide READY for any pod.
. "$(dirname "$0")/lib.sh"
require_root

export MESH_CLUSTER_DIR=$WORK/cluster
M=$BIN/meshctl
cluster_cleanup() {
    local rc=$?
    [ -e "$MESH_CLUSTER_DIR" ] && { "$M" uninstall >/dev/null 2>&1 || true; }
    (exit $rc)
    cleanup
}
trap cluster_cleanup EXIT

# ---- generate: no cluster needed -----------------------------------------------------
"$M" waypoint generate -n demo --for workload >"$WORK/gen.yaml"
check "generate prints istioctl's Gateway" diff -u - "$WORK/gen.yaml" <<'YAML'
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  labels:
    istio.io/waypoint-for: workload
  name: waypoint
  namespace: demo
spec:
  gatewayClassName: istio-waypoint
  listeners:
  - name: mesh
    port: 15008
    protocol: HBONE
YAML
check "generate without -n leaves the namespace out" sh -c "! '$M' waypoint generate | grep -q namespace"
check "'none' is a reserved name (usage error)" sh -c "
'$M' waypoint generate --name none 2>&1 | grep -q \"'none' is a reserved value\";
'$M' waypoint generate --name none >/dev/null 2>&1; [ \$? = 2 ]"
check "a bad --for is refused" sh -c "
'$M' waypoint generate --for pods 2>&1 | grep -q 'invalid traffic type: pods. Valid options are: \[all none service workload\]'"

# ---- a cluster -------------------------------------------------------------------------
"$M" install --nodes 1 >"$WORK/install.out" 2>&1 || { cat "$WORK/install.out"; exit 1; }
run "$M" apply -f "$ROOT/samples/echo.yaml" >/dev/null
check "list with no Gateway says so" sh -c "'$M' waypoint list -n demo | grep -qx 'No waypoints found.'"

"$M" waypoint apply -n demo >"$WORK/apply.out" 2>&1
check "apply prints istioctl's line" grep -qx '✅ waypoint demo/waypoint applied' "$WORK/apply.out"
obj() { "$M" get "$1" "$2" -n demo -o json; }
check "the Deployment is rendered as istiod's waypoint.yaml" sh -c "
obj() { '$M' get \"\$1\" \"\$2\" -n demo -o json; }
obj deploy waypoint | $PY -c '
import json, sys
d = json.load(sys.stdin)
m, t = d[\"metadata\"], d[\"spec\"][\"template\"]
assert m[\"labels\"][\"gateway.networking.k8s.io/gateway-name\"] == \"waypoint\", m
assert m[\"labels\"][\"gateway.istio.io/managed\"] == \"istio.io-mesh-controller\", m
assert m[\"ownerReferences\"][0][\"kind\"] == \"Gateway\" and m[\"ownerReferences\"][0][\"name\"] == \"waypoint\"
l = t[\"metadata\"][\"labels\"]
assert l[\"istio.io/dataplane-mode\"] == \"none\" and l[\"service.istio.io/canonical-name\"] == \"waypoint\", l
c = t[\"spec\"][\"containers\"][0]
assert t[\"spec\"][\"serviceAccountName\"] == \"waypoint\"
assert c[\"readinessProbe\"][\"httpGet\"] == {\"path\": \"/healthz/ready\", \"port\": 15021, \"scheme\": \"HTTP\"}, c
assert c[\"command\"] == [\"waypoint\"] and \"--xds-address\" in c[\"args\"] and \"--service-account\" in c[\"args\"]
assert d[\"spec\"][\"replicas\"] == 1
'"
check "the Service has status-port 15021/tcp and mesh 15008/hbone and a VIP" sh -c "
'$M' get svc waypoint -n demo -o json | $PY -c '
import json, sys
s = json.load(sys.stdin)
p = [(x[\"name\"], x[\"port\"], x[\"appProtocol\"]) for x in s[\"spec\"][\"ports\"]]
assert p == [(\"status-port\", 15021, \"tcp\"), (\"mesh\", 15008, \"hbone\")], p
assert s[\"spec\"][\"selector\"] == {\"gateway.networking.k8s.io/gateway-name\": \"waypoint\"}
assert s[\"spec\"][\"clusterIP\"].startswith(\"198.19.\")
assert s[\"metadata\"][\"annotations\"][\"networking.istio.io/traffic-distribution\"] == \"PreferClose\"
'"
check "the ServiceAccount exists" sh -c "'$M' get sa waypoint -n demo -o name | grep -qx 'serviceaccount/waypoint'"
check "meshd sees the Gateway" sh -c "ls '$MESH_CLUSTER_DIR'/config | grep -q '^gateway.*demo_waypoint'"
# The replica is the waypoint binary: its one certificate from meshd's CA (node token) and
# its Address config over delta ADS, as the pod log shows.
check "the replica runs the waypoint binary and gets its certificate from meshd's CA" wait_for sh -c "
cat '$MESH_CLUSTER_DIR'/pods/demo_waypoint-*/log 2>/dev/null |
grep -q 'waypoint.certificate spiffe://cluster.local/ns/demo/sa/waypoint valid until'"
check "... and its Address config over xDS" wait_for sh -c "
cat '$MESH_CLUSTER_DIR'/pods/demo_waypoint-*/log 2>/dev/null | grep -Eq 'config.xDS: [1-9][0-9]* workloads'"
# Ready = its certificate and every watched type (Address, and the Route and Policy meshd
# serves only to a waypoint whose pod runs on the token's node): then Programmed.
"$M" waypoint apply -n demo --wait --waypoint-timeout 60s >"$WORK/wait.out" 2>&1
cat "$WORK/wait.out"
check "apply --wait prints istioctl's ready line once a replica is ready" \
    grep -qx '✅ waypoint demo/waypoint is ready!' "$WORK/wait.out"
# meshd may see the stream a moment before the pod that grants its claim; it then grants.
check "meshd grants the replica's waypoint claim (Route and Policy types)" wait_for sh -c "
grep -q 'is waypoint demo/waypoint: [0-9]* Route and Policy resources' '$MESH_CLUSTER_DIR/meshd.log' &&
cat '$MESH_CLUSTER_DIR'/pods/demo_waypoint-*/log | grep -Eq 'xDS: synced \([0-9]+ workloads, [0-9]+ services, [0-9]+ routes, [0-9]+ policies\)'"
"$M" waypoint list -n demo >"$WORK/list.out"
cat "$WORK/list.out"
check "list: istioctl's columns, programmed" sh -c "
head -1 '$WORK/list.out' | grep -Eq '^NAME +REVISION +TRAFFIC TYPE +PROGRAMMED\$' &&
grep -Eq '^waypoint +default +service +True\$' '$WORK/list.out'"
"$M" waypoint status -n demo >"$WORK/status.out"
cat "$WORK/status.out"
check "status: Programmed True with istiod's message" sh -c "
head -1 '$WORK/status.out' | grep -Eq '^NAME +STATUS +TYPE +REASON +MESSAGE\$' &&
grep -Eq '^waypoint +True +Programmed +Programmed +Resource programmed, assigned to service\(s\) waypoint.demo.svc.cluster.local:15008\$' '$WORK/status.out'"
check "list -A adds the namespace column" sh -c "
'$M' waypoint list -A | grep -Eq '^demo +waypoint +default +service +True\$'"

# ---- enrollment, --for, --replicas -----------------------------------------------------------
"$M" waypoint apply -n demo --enroll-namespace >"$WORK/enroll.out" 2>&1
check "--enroll-namespace warns that demo is not ambient and labels it" sh -c "
grep -q 'namespace is not enrolled in ambient' '$WORK/enroll.out' &&
grep -qx '✅ namespace demo labeled with \"istio.io/use-waypoint: waypoint\"' '$WORK/enroll.out' &&
'$M' get ns demo -o json | $PY -c 'import json,sys; assert json.load(sys.stdin)[\"metadata\"][\"labels\"][\"istio.io/use-waypoint\"] == \"waypoint\"'"
"$M" waypoint apply -n demo --name other --enroll-namespace >"$WORK/enroll2.out" 2>&1
check "another waypoint does not replace the enrolled one without --overwrite" sh -c "
grep -q 'already has an enrolled Waypoint' '$WORK/enroll2.out' &&
! '$M' waypoint list -n demo | grep -q '^other'"
run "$M" waypoint apply -n demo --for all --replicas 2 >/dev/null
check "--for and --replicas reach the Gateway and the Deployment (2 pods)" sh -c "
'$M' waypoint list -n demo | grep -Eq '^waypoint +default +all +(True|False)\$' &&
[ \$('$M' get deploy waypoint -n demo -o json | $PY -c 'import json,sys; print(json.load(sys.stdin)[\"spec\"][\"replicas\"])') = 2 ] &&
[ \$('$M' get pods -n demo | grep -c '^waypoint-') = 2 ]"
check "both replicas become ready (READY 1/1)" wait_for sh -c "
[ \$('$M' get pods -n demo | grep -E '^waypoint-' | grep -c ' 1/1 ') = 2 ]"
run "$M" waypoint apply -n demo --for all --replicas 0 >/dev/null
check "with no replica: Programmed False, reason Pending, with the count" sh -c "
'$M' waypoint status -n demo | grep -Eq '^waypoint +False +Programmed +Pending +Waiting for a ready replica of deployment demo/waypoint \(0/0 ready\)\$'"
check "apply --wait then gives up after --waypoint-timeout with istioctl's error" sh -c "
! '$M' waypoint apply -n demo --for all --replicas 0 --wait --waypoint-timeout 2s >'$WORK/wait0.out' 2>&1 &&
grep -q 'timed out while waiting for waypoint' '$WORK/wait0.out'"

# ---- readiness probes decide READY ------------------------------------------------------
cat >"$WORK/probed.yaml" <<'YAML'
apiVersion: v1
kind: Pod
metadata: {name: probed, namespace: demo}
spec:
  containers:
  - name: echo
    command: [echo-server, --http-port, "8080"]
    ports: [{name: http, containerPort: 8080}]
    readinessProbe: {httpGet: {path: /, port: http}}
---
apiVersion: v1
kind: Pod
metadata: {name: unprobed-port, namespace: demo}
spec:
  containers:
  - name: echo
    command: [echo-server, --http-port, "8080"]
    readinessProbe: {httpGet: {path: /, port: 8081}}
YAML
run "$M" apply -f "$WORK/probed.yaml" >/dev/null
check "a pod whose readinessProbe answers is 1/1" wait_for sh -c "[ \"\$('$M' get pods probed -n demo | awk 'NR==2 {print \$2}')\" = 1/1 ]"
check "a running pod whose probe fails is 0/1 Running" sh -c "[ \"\$('$M' get pods unprobed-port -n demo | awk 'NR==2 {print \$2 \" \" \$3}')\" = '0/1 Running' ]"

# ---- delete ---------------------------------------------------------------------------
"$M" waypoint delete -n demo waypoint nope >"$WORK/delete.out"
check "delete: one deleted, one not found (istioctl's lines)" sh -c "
grep -qx 'waypoint demo/waypoint deleted' '$WORK/delete.out' && grep -qx 'waypoint demo/nope not found' '$WORK/delete.out'"
check "what the Gateway owned went with it" sh -c "
! '$M' get deploy waypoint -n demo >/dev/null 2>&1 && ! '$M' get svc waypoint -n demo >/dev/null 2>&1 &&
! '$M' get sa waypoint -n demo >/dev/null 2>&1 && ! '$M' get pods -n demo | grep -q '^waypoint-'"
check "delete with neither names nor --all is a usage error" sh -c "
'$M' waypoint delete -n demo >/dev/null 2>&1; [ \$? = 2 ]"
check "list is empty again" sh -c "'$M' waypoint list -n demo | grep -qx 'No waypoints found.'"
finish
