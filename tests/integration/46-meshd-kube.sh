#!/usr/bin/env bash
# meshd's Kubernetes source against the real kube-apiserver v1.20.2 (tests/support/kube.sh):
# meshd --kubeconfig feeds a ztunnel over xDS from what kubectl applies.
#
#   netns N1: etcd, kube-apiserver, controller-manager, scheduler (the samples' Deployments
#   become Pods bound to node-1; this script plays the kubelet through pods/status), meshd
#   (--kubeconfig, no --config-dir) and a ztunnel of node-1 fed by it (xDS, node token).
#
# Checks: meshd is not ready before the API is listed and ready after; istio-ca-root-cert
# in every namespace (re-created when deleted, restored when edited); the samples reach
# ztunnel's config_dump (workloads with their pod IPs, the echo Service, the policy); a
# pod IP change, a label change and a deletion reach it within 1 s; an invalid
# AuthorizationPolicy gets a Warning Event (InvalidConfig) and the previous policy stays
# served; an apiserver restart loses nothing (a change after it arrives), and a pod deleted
# behind the apiserver's back with etcd compacted past meshd's resourceVersion disappears
# (a relist with a synthesised delete).
. "$(dirname "$0")/lib.sh"
. "$ROOT/tests/support/kube.sh"
. "$ROOT/tests/support/zt_dump.sh"
require_root
kube_require || exit 1

kc() { kube_kubectl "$K" "$@"; }

# No config source: refused; KUBERNETES_SERVICE_HOST alone means --in-cluster (here without the
# service-account files, so it says which file is missing and exits).
if env -u KUBERNETES_SERVICE_HOST "$BIN/meshd" --state-dir "$WORK/s0" >"$WORK/nosrc.log" 2>&1; then
    fail "meshd without a config source exits non-zero"
else
    check "meshd without a config source is refused, saying which flags give one" \
        grep -q 'a config source (--config-dir, --kubeconfig, --in-cluster) are required' "$WORK/nosrc.log"
fi
if KUBERNETES_SERVICE_HOST=198.18.0.1 KUBERNETES_SERVICE_PORT=6443 "$BIN/meshd" --state-dir "$WORK/s0" \
        >"$WORK/incluster.log" 2>&1; then
    fail "in-cluster without service-account files exits non-zero"
else
    check "KUBERNETES_SERVICE_HOST alone selects --in-cluster (it names the missing token file)" \
        sh -c "grep -q 'no config source given: --in-cluster' '$WORK/incluster.log' &&
               grep -q 'serviceaccount/token' '$WORK/incluster.log'"
fi
ip netns add "$N1"
K=$WORK/kube
STATE=$WORK/state
kube_up "$N1" "$K"

ready() { # expected HTTP status of meshd's /ready
    [ "$(ip netns exec "$N1" curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:15014/ready)" = "$1" ]
}

# ---- meshd before the API server answers: not ready, then ready once every kind is listed ----
APISERVER_CMD=$(tr '\0' '\n' <"/proc/$(cat "$K/apiserver.pid")/cmdline")
kube__stop "$(cat "$K/apiserver.pid")"
mkdir -p "$STATE"
MESHD_ADDR=127.0.0.1:15012
start_bg "$WORK/meshd.log" ip netns exec "$N1" "$BIN/meshd" --kubeconfig "$K/kubeconfig" \
    --state-dir "$STATE" --listen "$MESHD_ADDR" --monitoring 127.0.0.1:15014 --log-level debug
MESHD_PID=$LAST_PID
wait_for ready 503 || true
sleep 1
check "meshd with the API server down: not ready (503)" ready 503
restart_apiserver() {
    local args=()
    mapfile -t args <<<"$APISERVER_CMD"
    kube__start "$K" apiserver "$N1" "${args[@]}"
    kube__wait 60 kube__readyz "$K"
}
t0=$(date +%s%N)
restart_apiserver
WAIT_SECS=30 wait_for ready 200 || { cat "$WORK/meshd.log"; }
check "meshd ready once every kind is listed" ready 200
say "$(grep -o 'every kind listed.*' "$WORK/meshd.log" | head -1) (from meshd's start, API server down first)"
# The controllers after the restart above: kube-controller-manager exits when it loses the server.
kube_up_controllers "$N1" "$K"
kube_add_node "$N1" "$K" node-1 198.18.0.1

# ---- istio-ca-root-cert ---------------------------------------------------------------------
cm_pem() { # namespace -> root-cert.pem of its istio-ca-root-cert
    kc -n "$1" get configmap istio-ca-root-cert -o jsonpath='{.data.root-cert\.pem}' 2>/dev/null
}
cm_ok() { # namespace
    [ "$(cm_pem "$1")" = "$(cat "$STATE/root-cert.pem")" ]
}
all_cms() { for n in default kube-system kube-public kube-node-lease; do cm_ok "$n" || return 1; done; }
check "istio-ca-root-cert holds meshd's root in every namespace" kube__wait 10 all_cms

# ---- the samples ----------------------------------------------------------------------------
for f in echo curl sleep allow-curl; do
    kc apply -f "$ROOT/samples/$f.yaml" >/dev/null
done
kc label namespace demo istio.io/dataplane-mode=ambient >/dev/null
check "istio-ca-root-cert in the new namespace demo" kube__wait 10 cm_ok demo
pods_bound() {
    [ "$(kc -n demo get pods -o jsonpath='{range .items[*]}{.spec.nodeName} {end}' | wc -w)" = 4 ]
}
check "the samples' Deployments made 4 pods bound to node-1 (60 s)" kube__wait 60 pods_bound
# The kubelet's part: each pod Running with an IP.
i=10
declare -A IP_OF
for p in $(kc -n demo get pods -o jsonpath='{.items[*].metadata.name}'); do
    i=$((i + 1))
    IP_OF[$p]=198.18.1.$i
    kube_pod_running "$K" demo "$p" "198.18.1.$i"
done
ECHO1=$(kc -n demo get pods -l app=echo,version=v1 -o jsonpath='{.items[0].metadata.name}')
SLEEP=$(kc -n demo get pods -l app=sleep -o jsonpath='{.items[0].metadata.name}')

start_ztunnel_xds "$N1" node-1 "$STATE" "$WORK/zt.log"
ZT=$LAST_PID

# dump_has <description> <seconds> <python expression over W, S, P...> (tests/support/zt_dump.sh)
dump_has() { zt_dump_has "$N1" "$@"; }
dump_has "every sample pod is a workload with its pod IP" 10 \
    "all(W.get(n,{}).get('addresses')==[ip] for n,ip in $(for p in "${!IP_OF[@]}"; do printf "[('%s','%s')]+" "$p" "${IP_OF[$p]}"; done)[])"
dump_has "the echo Service with its ports" 5 \
    "'echo.demo.svc.cluster.local' in S and sorted(p['servicePort'] for p in S['echo.demo.svc.cluster.local']['ports'])==[80,9000]"
dump_has "AuthorizationPolicy demo/echo-allow-curl is served" 5 "'demo/echo-allow-curl' in P"

# ---- changes through the API reach ztunnel within 1 s ----------------------------------------
kube_pod_running "$K" demo "$ECHO1" 198.18.1.99
dump_has "a pod IP changed through pods/status" 1 "W['$ECHO1']['addresses']==['198.18.1.99']"
kc -n demo label pod "$ECHO1" service.istio.io/canonical-revision=v9 >/dev/null
dump_has "a pod label (canonical revision)" 1 "W['$ECHO1'].get('canonicalRevision')=='v9'"
# No kubelet confirms a graceful deletion here: removed at once, as a kubelet's confirmation would.
kc -n demo delete pod "$ECHO1" --grace-period=0 --force >/dev/null 2>&1
dump_has "a deleted pod" 1 "'$ECHO1' not in W"

# ---- an invalid AuthorizationPolicy: a Warning Event, the last good one stays ------------------
sed 's/action: ALLOW/action: NOPE/' "$ROOT/samples/allow-curl.yaml" | kc apply -f - >/dev/null
bad_rv=$(kc -n demo get authorizationpolicy echo-allow-curl -o jsonpath='{.metadata.resourceVersion}')
event() {
    kc -n demo get events --field-selector involvedObject.name=echo-allow-curl,type=Warning \
        -o jsonpath='{range .items[*]}{.reason}|{.involvedObject.kind}|{.involvedObject.resourceVersion}|{.message}{"\n"}{end}'
}
has_event() { event | grep -q "^InvalidConfig|AuthorizationPolicy|$bad_rv|.*NOPE"; }
check "a Warning Event InvalidConfig on the policy, for its resourceVersion (5 s)" kube__wait 5 has_event
event
check "meshd logged the error" grep -q 'api:AuthorizationPolicy/demo/echo-allow-curl:0: error: .*NOPE' "$WORK/meshd.log"
dump_has "the previous echo-allow-curl is still served (ALLOW, the curl account)" 1 \
    "P['demo/echo-allow-curl']['action']=='ALLOW' and 'curl' in json.dumps(P['demo/echo-allow-curl']['rules'])"
kc -n demo annotate pod "$SLEEP" touched=1 >/dev/null
sleep 1
n_ev=$(event | grep -c "^InvalidConfig|AuthorizationPolicy|$bad_rv|" || true)
check "one Event for that version, however often meshd rebuilds ($n_ev)" test "$n_ev" = 1

metrics() { ip netns exec "$N1" curl -s http://127.0.0.1:15014/metrics; }
check "/metrics: synced, one Warning Event sent, ConfigMaps created" sh -c "m=\$(ip netns exec $N1 curl -s http://127.0.0.1:15014/metrics) &&
    echo \"\$m\" | grep -qx 'meshd_kube_synced 1' &&
    echo \"\$m\" | grep -qx 'meshd_kube_warning_events_total{result=\"sent\"} 1' &&
    echo \"\$m\" | grep -q 'meshd_kube_root_configmap_writes_total{result=\"created\"} [1-9]'"
metrics | grep '^meshd_kube' | grep -v ' 0$' || true

# ---- istio-ca-root-cert re-created when deleted, restored when edited -----------------------------
kc -n demo delete configmap istio-ca-root-cert >/dev/null
check "a deleted istio-ca-root-cert comes back (5 s)" kube__wait 5 cm_ok demo
kc -n demo patch configmap istio-ca-root-cert --type=merge -p '{"data":{"root-cert.pem":"junk"}}' >/dev/null
check "an edited istio-ca-root-cert is restored (5 s)" kube__wait 5 cm_ok demo

# ---- an apiserver restart loses nothing ------------------------------------------------------
kube__stop "$(cat "$K/apiserver.pid")"
sleep 1
check "meshd keeps serving while the API server is down" ready 200
restart_apiserver
SVC2=$(cat <<'YAML'
apiVersion: v1
kind: Service
metadata: {name: after-restart, namespace: demo}
spec: {selector: {app: sleep}, ports: [{name: tcp, port: 7000}]}
YAML
)
kc apply -f - <<<"$SVC2" >/dev/null
# The watch comes back after the reflector's backoff, which grew while the server restarted
# (800 ms doubling, 30 s at most; ~10 s seen under ASan).
dump_has "a Service created after the restart (the watch is re-established)" 45 \
    "'after-restart.demo.svc.cluster.local' in S"

# ---- etcd compacted past meshd's resourceVersion, a pod deleted meanwhile: relisted ---------------
kube__stop "$(cat "$K/apiserver.pid")"
ETCD="ip netns exec $N1 etcdctl --endpoints http://127.0.0.1:2379"
check "the sleep pod deleted in etcd behind the API server" \
    sh -c "$ETCD del /registry/pods/demo/$SLEEP | grep -qx 1"
rev=$($ETCD endpoint status -w json | $PY -c 'import json,sys; print(json.load(sys.stdin)[0]["Status"]["header"]["revision"])')
check "etcd compacted to revision $rev" sh -c "$ETCD compact $rev >/dev/null"
restart_apiserver
# The relist waits for the reflector's backoff, which two outages may have raised to its 30 s
# cap, before the re-watch that is told 410 and maybe before the relist (as in test 54).
dump_has "the pod deleted while meshd could not watch is gone (relist, 90 s)" 90 "'$SLEEP' not in W"
dump_has "... and nothing else was lost" 1 "'after-restart.demo.svc.cluster.local' in S and 'demo/echo-allow-curl' in P"
say "$(grep -E 'watch [^ ]*pods.*relisting' "$WORK/meshd.log" | tail -1)"
check "meshd's pod watch was told its version is too old and relisted" \
    grep -Eq 'watch [^ ]*pods.*relisting' "$WORK/meshd.log"

stop_ztunnel "$ZT" "$WORK/zt.log"
check "meshd exits cleanly" stop_meshd "$MESHD_PID" "$WORK/meshd.log"
finish
