#!/usr/bin/env bash
# meshd as istiod's deployment controller and status writer for waypoints, on the real
# kube-apiserver 1.20.2 (tests/support/kube.sh) with kube-controller-manager (Deployments,
# ReplicaSets, garbage collector) and the scheduler; this script plays the kubelet for the
# waypoint's pod (pods/status).
#
#   netns N1: etcd, kube-apiserver, controller-manager, scheduler, meshd --kubeconfig
#
# Checks: GatewayClass istio-waypoint Accepted; a waypoint Gateway applied with kubectl gets
# its ServiceAccount, Deployment and Service as istiod renders them (owned by the Gateway,
# labels, istio.io/dataplane-mode none, ports 15021 and 15008/hbone, the waypoint's flags with
# the istiod Service's cluster IP, the projected istio-ca token and istio-ca-root-cert
# volumes); Programmed False (Pending) until a replica is ready, then True with
# status.addresses = the Service's cluster IP; attachedRoutes counts an HTTPRoute; a real
# waypoint started with the rendered args (token and root as the kubelet would mount them)
# gets its certificate and config from meshd and is ready; a deleted Deployment is
# re-created, a scaled one put back, a replicas annotation and spec.infrastructure labels
# applied; 40 annotation changes make no status patch and 20 spec changes a handful, with
# none after they stop (no loop on meshd's own updates); a Gateway of another class is left
# alone; a Gateway changed to another class loses all three (meshd deletes them: the garbage
# collector would not, the owner still exists), and deleting the Gateway removes them;
# /debug/waypoints and the metrics show them.
. "$(dirname "$0")/lib.sh"
. "$ROOT/tests/support/kube.sh"
require_root
kube_require || exit 1

K=$WORK/kube
STATE=$WORK/state
MLOG=$WORK/meshd.log
kc() { kube_kubectl "$K" "$@"; }
jp() { kc -n "$1" get "$2" -o jsonpath="$3" 2>/dev/null; } # ns object jsonpath
now() { date +%s%N; }
ms_since() { echo $((($(now) - $1) / 1000000)); }
within() { # secs command...: polls every 50 ms
    local deadline=$(($(date +%s) + $1))
    shift
    until "$@" >/dev/null 2>&1; do
        [ "$(date +%s)" -lt "$deadline" ] || return 1
        sleep 0.05
    done
}
monitoring_get() { ip netns exec "$N1" curl -sf --max-time 2 "http://127.0.0.1:15014$1"; }
status_patches() { # ok status patches of Gateways so far
    monitoring_get /metrics |
        awk '/^meshd_kube_waypoint_writes_total\{kind="Gateway",verb="status",result="ok"\}/ {n = $2}
             END {print n + 0}'
}
cond() { jp demo gateway/waypoint "{.status.conditions[?(@.type==\"$1\")].$2}"; } # type field

ip netns add "$N1"
kube_up "$N1" "$K"
kube_up_controllers "$N1" "$K"
kube_add_node "$N1" "$K" node-1 198.18.0.1
kc create namespace istio-system >/dev/null
kc create namespace demo >/dev/null
# What the waypoint's --xds-address names (manifests/base: meshd behind Service istiod).
kc -n istio-system create service clusterip istiod --tcp=15012:15012 >/dev/null
ISTIOD_IP=$(jp istio-system service/istiod '{.spec.clusterIP}')
say "Service istio-system/istiod: $ISTIOD_IP"

# No kube-proxy here: meshd listens on that cluster IP itself, so the waypoint run below from
# the rendered args reaches it.
ip -n "$N1" addr add "$ISTIOD_IP/32" dev lo

mkdir -p "$STATE"
start_bg "$MLOG" ip netns exec "$N1" "$BIN/meshd" --kubeconfig "$K/kubeconfig" \
    --state-dir "$STATE" --listen "$ISTIOD_IP:15012" --monitoring 127.0.0.1:15014
MESHD_PID=$LAST_PID
check "meshd is ready on the API server" within 60 monitoring_get /ready

# ---- GatewayClass -------------------------------------------------------------------------
kc apply -f - >/dev/null <<'YAML'
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: istio-waypoint}
spec: {controllerName: istio.io/mesh-controller}
YAML
class_accepted() {
    [ "$(kc get gatewayclass istio-waypoint -o jsonpath='{.status.conditions[?(@.type=="Accepted")].status}')" = True ]
}
check "GatewayClass istio-waypoint is Accepted" within 10 class_accepted

# ---- a waypoint Gateway ---------------------------------------------------------------------
t0=$(now)
kc apply -f - >/dev/null <<'YAML'
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: waypoint
  namespace: demo
  labels: {istio.io/waypoint-for: service}
spec:
  gatewayClassName: istio-waypoint
  listeners: [{name: mesh, port: 15008, protocol: HBONE}]
YAML
dep_exists() { kc -n demo get deployment waypoint; }
check "kubectl apply of a waypoint Gateway: its Deployment appears" within 15 dep_exists
T_DEPLOY=$(ms_since "$t0")
say "Gateway applied -> Deployment created: $T_DEPLOY ms"
check "...with its ServiceAccount and Service" within 10 kc -n demo get serviceaccount/waypoint service/waypoint
GW_UID=$(jp demo gateway/waypoint '{.metadata.uid}')
for o in serviceaccount/waypoint deployment/waypoint service/waypoint; do
    check "$o is owned by the Gateway (ownerReferences uid)" \
        test "$(jp demo "$o" '{.metadata.ownerReferences[0].kind}/{.metadata.ownerReferences[0].uid}')" = "Gateway/$GW_UID"
    check "$o carries gateway.networking.k8s.io/gateway-name" \
        test "$(jp demo "$o" '{.metadata.labels.gateway\.networking\.k8s\.io/gateway-name}')" = waypoint
done
kc -n demo get deployment waypoint -o json >"$WORK/deployment.json"
check "the Deployment is what istiod renders on Kubernetes" $PY -c '
import json, sys
d = json.load(open(sys.argv[1])); ip = sys.argv[2]
t = d["spec"]["template"]; s = t["spec"]; c = s["containers"][0]; a = c["args"]
def arg(f): return a[a.index(f) + 1]
vols = {v["name"]: v for v in s["volumes"]}
mounts = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
sat = vols["istio-token"]["projected"]["sources"][0]["serviceAccountToken"]
want = [
    (d["spec"]["replicas"], 1),
    (t["metadata"]["labels"]["istio.io/dataplane-mode"], "none"),
    (t["metadata"]["labels"]["gateway.networking.k8s.io/gateway-name"], "waypoint"),
    (t["metadata"]["labels"]["gateway.istio.io/managed"], "istio.io-mesh-controller"),
    (s["serviceAccountName"], "waypoint"),
    (s["automountServiceAccountToken"], False),
    (arg("--xds-address"), ip + ":15012"),
    (arg("--root-cert"), mounts["istiod-ca-cert"] + "/root-cert.pem"),
    (arg("--token"), mounts["istio-token"] + "/istio-token"),
    (arg("--namespace"), "$(POD_NAMESPACE)"), (arg("--name"), "waypoint"),
    (arg("--service-account"), "$(SERVICE_ACCOUNT)"), (arg("--node"), "$(NODE_NAME)"),
    (sat["audience"], "istio-ca"), (sat["path"], "istio-token"),
    (vols["istiod-ca-cert"]["configMap"]["name"], "istio-ca-root-cert"),
    (c["readinessProbe"]["httpGet"]["port"], 15021),
    (c["readinessProbe"]["httpGet"]["path"], "/healthz/ready"),
    (c["securityContext"]["runAsNonRoot"], True),
]
bad = [(g, w) for g, w in want if g != w]
print("  mismatches (got, want):", bad) if bad else None
sys.exit(1 if bad else 0)' "$WORK/deployment.json" "$ISTIOD_IP"
check "the Service has status-port 15021 (tcp) and mesh 15008 (appProtocol hbone)" test \
    "$(jp demo service/waypoint '{range .spec.ports[*]}{.name}:{.port}:{.appProtocol} {end}')" = \
    "status-port:15021:tcp mesh:15008:hbone "
check "the Service selects the waypoint's pods" \
    test "$(jp demo service/waypoint '{.spec.selector.gateway\.networking\.k8s\.io/gateway-name}')" = waypoint

# ---- status before and after a ready replica -----------------------------------------------
accepted() { [ "$(cond Accepted status)" = True ]; }
check "the Gateway is Accepted" within 10 accepted
pending() { [ "$(cond Programmed status)/$(cond Programmed reason)" = False/Pending ]; }
check "Programmed is False (Pending) before a replica is ready" within 10 pending
say "Programmed message: $(cond Programmed message)"
msg_waits() { case "$(cond Programmed message)" in *"ready replica of deployment demo/waypoint"*) ;; *) return 1 ;; esac; }
check "...its message says what it waits for" msg_waits
check "observedGeneration is the Gateway's generation" \
    test "$(cond Programmed observedGeneration)" = "$(jp demo gateway/waypoint '{.metadata.generation}')"
wp_pod() { kc -n demo get pods -l gateway.networking.k8s.io/gateway-name=waypoint \
    -o jsonpath='{range .items[?(@.spec.nodeName=="node-1")]}{.metadata.name}{"\n"}{end}' | head -1; }
scheduled() { [ -n "$(wp_pod)" ]; }
check "the ReplicaSet's pod is scheduled to node-1" within 30 scheduled
POD=$(wp_pod)
check "the pod is labelled istio.io/dataplane-mode=none" \
    test "$(jp demo "pod/$POD" '{.metadata.labels.istio\.io/dataplane-mode}')" = none
sleep 1
check "Programmed is still False while the pod is not ready" pending
t1=$(now)
kube_pod_running "$K" demo "$POD" 198.18.250.10
programmed() { [ "$(cond Programmed status)" = True ]; }
check "Programmed turns True once the replica is Ready" within 20 programmed
T_PROG=$(ms_since "$t1")
say "pod Ready -> Programmed=True: $T_PROG ms (through the Deployment's readyReplicas)"
SVC_IP=$(jp demo service/waypoint '{.spec.clusterIP}')
check "status.addresses has the Service's cluster IP ($SVC_IP) and hostname" test \
    "$(jp demo gateway/waypoint '{range .status.addresses[*]}{.type}={.value} {end}')" = \
    "IPAddress=$SVC_IP Hostname=waypoint.demo.svc.cluster.local "
check "the Programmed message names the Service, as istiod's" test "$(cond Programmed message)" = \
    "Resource programmed, assigned to service(s) waypoint.demo.svc.cluster.local:15008"
listener() { jp demo gateway/waypoint "{.status.listeners[0].name}/{.status.listeners[0].attachedRoutes}/{.status.listeners[0].conditions[?(@.type==\"Programmed\")].status}"; }
check "listener mesh: 0 attachedRoutes, Programmed" test "$(listener)" = mesh/0/True
kc apply -f - >/dev/null <<'YAML'
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: r1, namespace: demo}
spec:
  parentRefs: [{name: waypoint}]
  rules: [{backendRefs: [{name: waypoint, port: 15021}]}]
YAML
attached1() { [ "$(listener)" = mesh/1/True ]; }
check "an HTTPRoute with the Gateway as parent: attachedRoutes 1" within 10 attached1

# ---- the rendered args run a real waypoint -------------------------------------------------
# As the kubelet would: the projected token (TokenRequest: audience istio-ca, bound to the pod)
# and the istio-ca-root-cert ConfigMap meshd published as files under the mount paths, the
# $(VAR)s expanded from the pod; the process runs in N1 where the istiod cluster IP is.
PODFS=$WORK/podfs
mkdir -p "$PODFS/var/run/secrets/tokens" "$PODFS/var/run/secrets/istio"
kube_curl "$K" "/api/v1/namespaces/demo/serviceaccounts/waypoint/token" -X POST \
    -H 'Content-Type: application/json' -d "{\"apiVersion\":\"authentication.k8s.io/v1\",
    \"kind\":\"TokenRequest\",\"spec\":{\"audiences\":[\"istio-ca\"],\"expirationSeconds\":3600,
    \"boundObjectRef\":{\"kind\":\"Pod\",\"apiVersion\":\"v1\",\"name\":\"$POD\",
    \"uid\":\"$(jp demo "pod/$POD" '{.metadata.uid}')\"}}}" |
    $PY -c "import json, sys; sys.stdout.write(json.load(sys.stdin)['status']['token'])" \
        >"$PODFS/var/run/secrets/tokens/istio-token"
kc -n demo get configmap istio-ca-root-cert -o jsonpath='{.data.root-cert\.pem}' \
    >"$PODFS/var/run/secrets/istio/root-cert.pem"
mapfile -t WP_ARGS < <($PY -c '
import json, sys
d = json.load(open(sys.argv[1])); fs = sys.argv[2]
env = {"NODE_NAME": "node-1", "POD_NAMESPACE": "demo", "SERVICE_ACCOUNT": "waypoint", "POD_NAME": sys.argv[3]}
for a in d["spec"]["template"]["spec"]["containers"][0]["args"]:
    for k, v in env.items():
        a = a.replace("$(%s)" % k, v)
    print(fs + a if a.startswith("/var/run/secrets/") else a)' "$WORK/deployment.json" "$PODFS" "$POD")
say "waypoint ${WP_ARGS[*]}"
WLOG=$WORK/waypoint.log
start_bg "$WLOG" ip netns exec "$N1" "$BIN/waypoint" "${WP_ARGS[@]}"
WPID=$LAST_PID
wp_ready() { ip netns exec "$N1" curl -sf --max-time 1 http://127.0.0.1:15021/healthz/ready; }
if within 30 wp_ready; then pass "a waypoint run with the rendered Deployment's args is ready (15021)"; else
    fail "a waypoint run with the rendered Deployment's args is ready (15021)"; tail -n 20 "$WLOG" | sed 's/^/    /'; fi
check "...with its certificate from meshd's CA for demo/waypoint (projected token reviewed)" \
    grep -q "ready: certificate spiffe://cluster.local/ns/demo/sa/waypoint" "$WLOG"
kill -TERM "$WPID"
wait "$WPID" && rc=0 || rc=$?
check "the waypoint exits cleanly" test "$rc" = 0

# ---- drift: what users do to the Deployment is put back -------------------------------------
OLD_UID=$(jp demo deployment/waypoint '{.metadata.uid}')
t2=$(now)
kc -n demo delete deployment waypoint --wait=false >/dev/null
recreated() { u=$(jp demo deployment/waypoint '{.metadata.uid}'); [ -n "$u" ] && [ "$u" != "$OLD_UID" ]; }
check "a deleted Deployment is created again" within 15 recreated
say "Deployment deleted -> created again: $(ms_since "$t2") ms"
kc -n demo scale deployment waypoint --replicas=3 >/dev/null
replicas_are() { [ "$(jp demo deployment/waypoint '{.spec.replicas}')" = "$1" ]; }
check "a Deployment scaled by hand is put back to 1 replica" within 10 replicas_are 1
kc -n demo annotate gateway waypoint amesh.io/waypoint-replicas=2 >/dev/null
check "the Gateway's replicas annotation (2) reaches the Deployment" within 10 replicas_are 2
kc -n demo label gateway waypoint amesh.io/test=on >/dev/null
kc -n demo annotate gateway waypoint amesh.io/waypoint-replicas=1 --overwrite >/dev/null
check "...and back to 1" within 10 replicas_are 1
kc -n demo patch gateway waypoint --type=merge -p '{"spec":{"infrastructure":{"labels":{"team":"a"}}}}' >/dev/null
team_label() { [ "$(jp demo deployment/waypoint '{.metadata.labels.team}/{.spec.template.metadata.labels.team}')" = a/a ]; }
check "spec.infrastructure.labels of the Gateway reach the Deployment and its pods" within 10 team_label

# Without the label meshd watches Deployments by, the Deployment is invisible to meshd: its
# create is refused (409) and backed off (1, 2, 4 s...), never a loop; the label back, all
# is well.
dep_creates_failed() {
    monitoring_get /metrics | awk '/^meshd_kube_waypoint_writes_total\{kind="Deployment",verb="create",result="failed"\}/ {n = $2}
        END {print n + 0}'
}
f0=$(dep_creates_failed)
kc -n demo label deployment waypoint gateway.networking.k8s.io/gateway-name- >/dev/null
sleep 5
f1=$(dep_creates_failed)
say "Deployment unlabelled for 5 s: $((f1 - f0)) refused creates"
check "an unlabelled Deployment: creates refused and backed off (1 to 4 in 5 s), not a loop" \
    test "$((f1 - f0))" -ge 1 -a "$((f1 - f0))" -le 4
kc -n demo label deployment waypoint gateway.networking.k8s.io/gateway-name=waypoint >/dev/null
sleep 1
f2=$(dep_creates_failed)
sleep 3
check "...and none once the label is back" test "$(dep_creates_failed)" = "$f2"

# ---- no status loop ----------------------------------------------------------------------
# The Deployment's own changes (new pods, not ready after the re-creation) settle first.
# (Pods of the deleted or scaled-down ReplicaSets stay Terminating: no kubelet confirms.)
live_pods() { kc -n demo get pods -l gateway.networking.k8s.io/gateway-name=waypoint -o json |
    $PY -c 'import json, sys; [print(p["metadata"]["name"]) for p in json.load(sys.stdin)["items"]
                                if "deletionTimestamp" not in p["metadata"]]'; }
n=11
for p in $(live_pods); do kube_pod_running "$K" demo "$p" "198.18.250.$n"; n=$((n + 1)); done
check "the new replica Ready: Programmed again" within 20 programmed
sleep 2
p0=$(status_patches)
for i in $(seq 1 40); do kc -n demo annotate gateway waypoint --overwrite "amesh.io/storm=$i" >/dev/null; done
sleep 3
p1=$(status_patches)
say "40 annotation updates of the Gateway: $((p1 - p0)) status patches"
check "40 annotation updates (same generation): no status patch" test "$((p1 - p0))" = 0
t3=$(now)
for i in $(seq 1 20); do
    from=Same; [ $((i % 2)) = 1 ] && from=All
    kc -n demo patch gateway waypoint --type=merge \
        -p "{\"spec\":{\"listeners\":[{\"name\":\"mesh\",\"port\":15008,\"protocol\":\"HBONE\",\"allowedRoutes\":{\"namespaces\":{\"from\":\"$from\"}}}]}}" >/dev/null
done
STORM_MS=$(ms_since "$t3")
gen_seen() { [ "$(cond Programmed observedGeneration)" = "$(jp demo gateway/waypoint '{.metadata.generation}')" ]; }
check "after 20 spec updates the status has the last generation" within 10 gen_seen
sleep 3
p2=$(status_patches)
say "20 spec updates in $STORM_MS ms: $((p2 - p1)) status patches (at most one per second per Gateway)"
check "20 spec updates: fewer status patches than updates, bounded by the 1 s spacing" \
    test "$((p2 - p1))" -le $((STORM_MS / 1000 + 3)) -a "$((p2 - p1))" -lt 20
sleep 3
check "no status patch once the updates stop (meshd's own updates cause none)" test "$(status_patches)" = "$p2"

# ---- another class is left alone -------------------------------------------------------------
kc apply -f - >/dev/null <<'YAML'
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: ingress, namespace: demo}
spec:
  gatewayClassName: other
  listeners: [{name: http, port: 80, protocol: HTTP}]
YAML
sleep 2
check "a Gateway of class 'other' gets no Deployment" sh -c "! '$KUBECTL' --kubeconfig '$K/kubeconfig' -n demo get deployment ingress 2>/dev/null"
check "...and no status from meshd" test -z "$(jp demo gateway/ingress '{.status}')"

# ---- diagnostics ---------------------------------------------------------------------------
monitoring_get /debug/waypoints >"$WORK/debug.txt" || true
sed 's/^/    /' "$WORK/debug.txt"
check "/debug/waypoints lists demo/waypoint, its deployment and Programmed" \
    grep -Eq '^demo +waypoint +waypoint +1/1 +yes +True' "$WORK/debug.txt"
monitoring_get /metrics | grep -E '^meshd_kube_waypoint' | sed 's/^/    /'
check "meshd_kube_waypoints counts it as programmed" \
    sh -c "ip netns exec '$N1' curl -sf http://127.0.0.1:15014/metrics | grep -qx 'meshd_kube_waypoints{programmed=\"true\"} 1'"

# ---- the Gateway stops being a waypoint, then goes: so do its objects ---------------------------
# Another class: the owner stays, so the garbage collector (running here) deletes nothing;
# meshd must.
gone() { ! kc -n demo get "$1" >/dev/null 2>&1; }
kc -n demo patch gateway waypoint --type=merge -p '{"spec":{"gatewayClassName":"other"}}' >/dev/null
all_gone() { gone deployment/waypoint && gone service/waypoint && gone serviceaccount/waypoint; }
check "a Gateway changed to another class loses its Deployment, Service and ServiceAccount (meshd deletes them)" \
    within 15 all_gone
kc -n demo patch gateway waypoint --type=merge -p '{"spec":{"gatewayClassName":"istio-waypoint"}}' >/dev/null
check "...and gets them back as a waypoint again" within 15 dep_exists
kc -n demo delete gateway waypoint >/dev/null
check "deleting the Gateway removes its Deployment" within 15 gone deployment/waypoint
check "...its Service" within 15 gone service/waypoint
check "...and its ServiceAccount" within 15 gone serviceaccount/waypoint
check "meshd logged no refused request (403)" sh -c "! grep -m3 'HTTP 403' '$MLOG'"

kill -TERM "$MESHD_PID"
wait "$MESHD_PID" && rc=0 || rc=$?
check "meshd exits cleanly (ASan/UBSan quiet)" test "$rc" = 0
grep -q 'ERROR: AddressSanitizer\|runtime error' "$MLOG" && { fail "sanitizer report in meshd's log"; tail -40 "$MLOG"; }
say "figures: apply->Deployment $T_DEPLOY ms; Ready->Programmed $T_PROG ms; 40 annotation updates -> $((p1 - p0)) patches; 20 spec updates -> $((p2 - p1)) patches"
[ "$FAILS" = 0 ] || { echo "--- meshd log"; tail -n 40 "$MLOG"; }
finish
