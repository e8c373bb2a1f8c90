#!/usr/bin/env bash
# A real ztunnel authenticates to meshd with a Kubernetes projected service-account token
# (audience istio-ca, bound to its pod), as Istio's ztunnel does (reference istio-ambient.md
# 4.2): the same JWT for xDS and the CA, read from the token file and read again when the
# kubelet rotates it; meshd checks it with a TokenReview against the REAL API server
# (tests/support/kube.sh) and grants workload certificates by node (ImpersonatedIdentity).
#
#   netns node-1                                              netns node-2
#   etcd + kube-apiserver 127.0.0.1:6443                      ztunnel --node node-1
#   meshd --kubeconfig 198.18.0.1:15012                 <==     --token tokens/istio-token
#
# Last, a waypoint (demo/wp, Gateway demo/wp, pod wp-1 on node-1) on its own pod's token: ready
# with its certificate and config.
#
# ServiceAccounts istio-system/ztunnel, demo/echo, demo/curl, demo/fresh; pods ztunnel-n1 and
# echo-1 on node-1, curl-2 on node-2. The token directory is laid out as the kubelet's atomic
# writer does it (istio-token -> ..data/istio-token, ..data -> a timestamped directory) and
# rotated the same way, to a token bound to a second ztunnel pod; the first pod is then
# deleted, so its token is dead, and a new workload on node-1 gets its certificate only if
# ztunnel presents the rotated token.
. "$(dirname "$0")/lib.sh"
. "$ROOT/tests/support/kube.sh"
require_root
kube_require || exit 1
topo_two_nodes 4

K=$WORK/kube
STATE=$WORK/state
MLOG=$WORK/meshd.log
ZLOG=$WORK/ztunnel.log
TOK=$WORK/tokens
MESHD_LISTEN=198.18.0.1:15012
TD=cluster.local

kube_up "$N1" "$K"
kc() { kube_kubectl "$K" "$@"; }

kube_token_cluster "$N1" "$K" echo curl fresh || exit 1
pod() { kube_pod "$K" "$@"; } # ns name sa node ip
uid() { kc -n "$1" get pod "$2" -o jsonpath='{.metadata.uid}'; }
# TokenRequest: audience istio-ca, bound to POD, an hour (istio-system/ztunnel by default).
token() { # pod [ns sa]
    local ns=${2:-istio-system} sa=${3:-ztunnel}
    kube_curl "$K" "/api/v1/namespaces/$ns/serviceaccounts/$sa/token" -X POST \
        -H 'Content-Type: application/json' -d "{\"apiVersion\":\"authentication.k8s.io/v1\",
        \"kind\":\"TokenRequest\",\"spec\":{\"audiences\":[\"istio-ca\"],\"expirationSeconds\":3600,
        \"boundObjectRef\":{\"kind\":\"Pod\",\"apiVersion\":\"v1\",\"name\":\"$1\",\"uid\":\"$(uid "$ns" "$1")\"}}}" |
        $PY -c "import json, sys; sys.stdout.write(json.load(sys.stdin)['status']['token'])"
}
# The kubelet's atomic writer: a new timestamped directory, then ..data swapped by rename.
GEN=0
project() { # token
    GEN=$((GEN + 1))
    mkdir -p "$TOK/..gen$GEN"
    printf '%s' "$1" >"$TOK/..gen$GEN/istio-token"
    chmod 0644 "$TOK/..gen$GEN/istio-token"
    ln -sfn "..gen$GEN" "$TOK/..data_tmp"
    mv -T "$TOK/..data_tmp" "$TOK/..data"
    [ -L "$TOK/istio-token" ] || ln -s ..data/istio-token "$TOK/istio-token"
}
T1=$(token ztunnel-n1)
project "$T1"
say "projected token: ${#T1} bytes"
check "the projected token is a JWT larger than a node token (512 bytes)" \
    sh -c "[ ${#T1} -gt 512 ] && [ \"\$(printf '%s' '$T1' | tr -cd . | wc -c)\" = 2 ]"

start_bg "$MLOG" ip netns exec "$N1" "$BIN/meshd" --kubeconfig "$K/kubeconfig" \
    --state-dir "$STATE" --listen "$MESHD_LISTEN" --monitoring 127.0.0.1:15014 --log-level debug
monitoring_get() { # path
    ip netns exec "$N1" $PY -c "
import sys, urllib.request
sys.stdout.write(urllib.request.urlopen('http://127.0.0.1:15014' + sys.argv[1], timeout=2).read().decode())" "$1"
}
WAIT_SECS=30 wait_for monitoring_get /ready || { echo "meshd did not become ready:"; cat "$MLOG"; exit 1; }
metric() { monitoring_get /metrics | awk -v n="$1" '$1 == n {print $2}'; }

# ---- ztunnel with the projected token ----------------------------------------------------------
T0=$(date +%s%N)
start_bg "$ZLOG" ip netns exec "$N2" "$BIN/ztunnel" --xds-address "$MESHD_LISTEN" \
    --root-cert "$STATE/root-cert.pem" --token "$TOK/istio-token" --node node-1 --log-level debug
ZPID=$LAST_PID
ready() { ip netns exec "$N2" $PY -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:15021/healthz/ready',timeout=1)"; }
if WAIT_SECS=30 wait_for ready; then
    say "ztunnel ready $(( ($(date +%s%N) - T0) / 1000000 )) ms after it started"
    pass "ztunnel with the projected token is ready (15021)"
else
    fail "ztunnel with the projected token is ready (15021)"; tail -n 20 "$ZLOG" | sed 's/^/    /'; fi
check "ztunnel read the token as a Kubernetes token" \
    grep -q "token $TOK/istio-token: a Kubernetes service-account token (${#T1} bytes) for xDS and the CA" "$ZLOG"
check "ztunnel never said its token file was unusable" sh -c "! grep -q 'holds no token' '$ZLOG'"
check "meshd bound the xDS stream to node-1 through the token's pod" \
    grep -q "pod istio-system/ztunnel-n1 (account istio-system/ztunnel) on node node-1" "$MLOG"

# What ztunnel holds: "workloads NAME..." and "certs IDENTITY..." (those with a chain).
held() {
    ip netns exec "$N2" $PY -c "
import json, urllib.request
d = json.loads(urllib.request.urlopen('http://127.0.0.1:15000/config_dump', timeout=2).read())
print('workloads', ' '.join(sorted(w.get('name', '') for w in d['workloads'])))
print('certs', ' '.join(sorted(c['identity'] for c in d['certificates'] if c.get('certChain'))))"
}
has() { # kind word
    held | awk -v k="$1" '$1 == k' | tr ' ' '\n' | grep -qx -- "$2"
}
lacks() { held >"$WORK/held" && ! has "$@"; }
both_workloads() { has workloads echo-1 && has workloads curl-2; }
check "config_dump shows echo-1 (node-1) and curl-2 (node-2) from meshd's xDS" \
    wait_secs 20 both_workloads
check "ztunnel prefetched demo/echo's certificate (echo-1 runs on node-1)" \
    wait_secs 20 has certs spiffe://$TD/ns/demo/sa/echo
check "...signed for the ztunnel pod on node-1 (ImpersonatedIdentity, granted by node)" \
    grep -q "CA: signed spiffe://$TD/ns/demo/sa/echo for pod istio-system/ztunnel-n1 (account istio-system/ztunnel) on node node-1" "$MLOG"
check "ztunnel holds no certificate for demo/curl (curl-2 runs on node-2)" \
    lacks certs spiffe://$TD/ns/demo/sa/curl
REV1=$(metric meshd_kube_token_reviews_total)
say "reviews after start: $REV1"
check "one token, one review (xDS and the CA share its cached answer)" [ "$REV1" = 1 ]

# ---- rotation: a token bound to a new pod, then the old pod (and its token) gone ---------------
pod istio-system ztunnel-n1b ztunnel node-1 198.18.0.1
T2=$(token ztunnel-n1b)
project "$T2"
kc -n istio-system delete pod ztunnel-n1 --grace-period=0 --force >/dev/null 2>&1
gone() { ! kc -n istio-system get pod ztunnel-n1 >/dev/null 2>&1; }
check "the old token's pod is deleted (its token is dead)" gone
pod demo fresh-1 fresh node-1 198.18.250.35
check "after rotation, ztunnel gets demo/fresh's certificate (fresh-1 appeared on node-1)" \
    wait_secs 30 has certs spiffe://$TD/ns/demo/sa/fresh
check "...presenting the rotated token: meshd signed it for the new pod ztunnel-n1b" \
    grep -q "CA: signed spiffe://$TD/ns/demo/sa/fresh for pod istio-system/ztunnel-n1b (account istio-system/ztunnel) on node node-1" "$MLOG"
check "ztunnel logged the rotated token (its size, not its text)" \
    grep -q "token $TOK/istio-token: a Kubernetes service-account token (${#T2} bytes)" "$ZLOG"
REV2=$(metric meshd_kube_token_reviews_total)
say "reviews after rotation: $REV2"
check "the rotated token cost one more review" [ "$REV2" -ge 2 ]
check "ztunnel never tried to renew the token through meshd" \
    sh -c "! grep -qiE 'renew[a-z]* the|token.*renew' '$ZLOG' && ! grep -q 'NodeToken/Renew' '$MLOG'"
check "ztunnel is still ready" ready
leaked=0
for t in "$T1" "$T2"; do grep -q -F -- "$t" "$MLOG" "$ZLOG" && leaked=1; done
check "neither token appears in meshd's or ztunnel's log (debug level)" [ $leaked = 0 ]
check "ztunnel exits cleanly" stop_ztunnel "$ZPID" "$ZLOG"

# ---- the waypoint: its own pod's token (demo/wp, not a node account) ---------------------------
WLOG=$WORK/waypoint.log
kc -n demo create serviceaccount wp >/dev/null
kc apply -f - >/dev/null <<YAML
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: wp, namespace: demo}
spec:
  gatewayClassName: istio-waypoint
  listeners: [{name: mesh, port: 15008, protocol: HBONE}]
---
apiVersion: v1
kind: Pod
metadata: {name: wp-1, namespace: demo, labels: {gateway.networking.k8s.io/gateway-name: wp}}
spec:
  serviceAccountName: wp
  nodeName: node-1
  containers: [{name: istio-proxy, image: none}]
YAML
kube_pod_running "$K" demo wp-1 198.18.250.40
WT=$(token wp-1 demo wp)
printf '%s\n' "$WT" >"$WORK/wp-token" # as `kubectl create token > FILE` leaves it
start_bg "$WLOG" ip netns exec "$N2" "$BIN/waypoint" --xds-address "$MESHD_LISTEN" \
    --root-cert "$STATE/root-cert.pem" --token "$WORK/wp-token" --node node-1 \
    --namespace demo --name wp --service-account wp --log-level debug
WPID=$LAST_PID
if WAIT_SECS=30 wait_for ready; then pass "the waypoint with its pod's token is ready (15021)"; else
    fail "the waypoint with its pod's token is ready (15021)"; tail -n 20 "$WLOG" | sed 's/^/    /'; fi
check "...with its certificate and every config type from meshd" \
    grep -q "ready: certificate spiffe://$TD/ns/demo/sa/wp, config synced" "$WLOG"
check "...signed for its own pod (a workload account gets only its own identity)" \
    grep -q "CA: signed spiffe://$TD/ns/demo/sa/wp for pod demo/wp-1 (account demo/wp) on node node-1" "$MLOG"
check "the waypoint's token appears in no log" sh -c "! grep -q -F -- '$WT' '$MLOG' '$WLOG'"
check "the waypoint exits cleanly" stop_ztunnel "$WPID" "$WLOG"
finish
