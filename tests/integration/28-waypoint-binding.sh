#!/usr/bin/env bash
# Waypoint binding end to end: meshd reads a waypoint Gateway (class istio-waypoint)
# and istio.io/use-waypoint labels from its config directory and serves
# Service.waypoint / Workload.waypoint over delta xDS; ztunnel's config_dump and
# `meshctl ztunnel-config` show them. Every change (the Gateway's traffic type, a
# pod opting out, the Gateway deleted) must reach ztunnel within one second, and
# a label naming no Gateway is reported with file, line and IST0101 by meshd and
# `meshctl analyze`.
#
#   netns node-1: meshd (198.18.0.1:15012)
#   netns node-2: ztunnel (node-2), fed by meshd
. "$(dirname "$0")/lib.sh"
require_root
topo_two_nodes 4
CFG=$WORK/config
STATE=$WORK/state
write_k8s_config "$CFG"
# Namespace default uses waypoint "waypoint" (a service waypoint: Services only).
sed -i 's#    istio.io/dataplane-mode: ambient#    istio.io/dataplane-mode: ambient\n    istio.io/use-waypoint: waypoint#' \
    "$CFG/namespaces.yaml"
write_gateway() { # waypoint-for label value ("" for none)
    cat >"$CFG/waypoint.yaml" <<YAML
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: waypoint
  namespace: default
  labels: {${1:+istio.io/waypoint-for: $1}}
spec:
  gatewayClassName: istio-waypoint
  listeners:
  - {name: mesh, port: 15008, protocol: HBONE}
---
apiVersion: v1
kind: Service
metadata: {name: waypoint, namespace: default, labels: {gateway.networking.k8s.io/gateway-name: waypoint}}
spec:
  selector: {gateway.networking.k8s.io/gateway-name: waypoint}
  clusterIP: 198.19.0.15
  ports: [{name: mesh, port: 15008, appProtocol: hbone}]
YAML
}
write_gateway ""

start_meshd "$CFG" "$STATE" "$WORK/meshd.log"
start_ztunnel_xds "$N2" node-2 "$STATE" "$WORK/zt2.log"
ZT2=$LAST_PID

WP="default/waypoint.default.svc.cluster.local"
ECHO=echo.default.svc.cluster.local
# seen <description> <python expression over W (workloads by name), S (services by hostname)>
seen() {
    local what=$1 expr=$2
    check "$what (within 1 s)" ip netns exec "$N2" $PY - "$what" <<PYEOF
import json,sys,time,urllib.request
deadline=time.time()+1.0
def wp(o): return (o.get('waypoint') or {}).get('destination'), (o.get('waypoint') or {}).get('hboneMtlsPort')
while True:
    d=json.load(urllib.request.urlopen('http://127.0.0.1:15000/config_dump',timeout=1))
    W={w['name']:w for w in d['workloads']}
    S={s['hostname']:s for s in d['services']}
    if $expr: break
    if time.time()>deadline: raise SystemExit('not seen: %s: %s %s' % (sys.argv[1], W, S))
    time.sleep(0.02)
PYEOF
}
seen "the namespace's label binds Service echo to the waypoint (hostname form, port 15008)" \
    "wp(S['$ECHO'])==('$WP',15008)"
seen "a service waypoint binds no workload, and the waypoint's own Service has none" \
    "wp(W['server'])==(None,None) and wp(W['client'])==(None,None) and wp(S['waypoint.default.svc.cluster.local'])==(None,None)"
ip netns exec "$N2" "$BIN/meshctl" ztunnel-config services >"$WORK/mc-services.txt" 2>&1 || true
cat "$WORK/mc-services.txt"
check "meshctl ztunnel-config services: echo's WAYPOINT is waypoint" \
    grep -Eq "^default +echo +$VIP +waypoint " "$WORK/mc-services.txt"

write_gateway all
seen "waypoint-for: all binds the namespace's workloads too" \
    "wp(W['server'])==('$WP',15008) and wp(W['client'])==('$WP',15008) and wp(W['legacy'])==(None,None)"
ip netns exec "$N2" "$BIN/meshctl" ztunnel-config workloads >"$WORK/mc-workloads.txt" 2>&1 || true
cat "$WORK/mc-workloads.txt"
check "meshctl ztunnel-config workloads: server's WAYPOINT is waypoint" \
    grep -Eq "^default +server +$SERVER_IP +node-2 +waypoint " "$WORK/mc-workloads.txt"

sed -i 's#labels: {app: echo, version: v1}#labels: {app: echo, version: v1, istio.io/use-waypoint: none}#' \
    "$CFG/pods.yaml"
seen "a pod labelled istio.io/use-waypoint: none opts out, the others stay" \
    "wp(W['server'])==(None,None) and wp(W['client'])==('$WP',15008) and wp(S['$ECHO'])==('$WP',15008)"

rm "$CFG/waypoint.yaml"
seen "the Gateway deleted: nothing is bound any more" \
    "wp(S['$ECHO'])==(None,None) and wp(W['client'])==(None,None)"
check "meshd reports the label naming no Gateway with file, line and IST0101" \
    wait_secs 2 grep -Eq "namespaces.yaml:[0-9]+: error: Namespace default: istio.io/use-waypoint names waypoint default/waypoint, but there is no such Gateway.*\[IST0101\]" "$WORK/meshd.log"
rc=0
"$BIN/meshctl" analyze -f "$CFG" >"$WORK/analyze.txt" 2>&1 || rc=$?
cat "$WORK/analyze.txt"
check "meshctl analyze fails with the same IST0101 line" sh -c \
    "[ $rc -eq 1 ] && grep -Eq 'namespaces.yaml:[0-9]+: error: .*IST0101' '$WORK/analyze.txt'"

check "ztunnel exits 0 on SIGTERM, sanitizers clean" stop_ztunnel "$ZT2" "$WORK/zt2.log"
check "meshd exits 0 on SIGTERM, sanitizers clean" stop_meshd "$MESHD_PID" "$WORK/meshd.log"
finish
