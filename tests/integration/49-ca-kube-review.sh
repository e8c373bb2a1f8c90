#!/usr/bin/env bash
# meshd's CA and xDS with Kubernetes service-account tokens, against a scripted
# TokenReview server (tests/support/fake_tokenreview.py: TLS, ALPN h2) for what
# the real API server cannot do on demand: answer late, fail, flood. The real
# server's side (TokenRequest tokens, the same decisions) is test 48.
#
#   netns node-1                                       netns node-2
#   fake apiserver 127.0.0.1:6443 <-- meshd --kubeconfig  <==  cp_client.py / ca_burst.py
#                                     198.18.0.1:15012
#
# Checks: a ztunnel token (istio-system/ztunnel, trusted node account) gets the
# identity of a pod on its node and not one on node-2; a workload token only its
# own; the API server's "no" is UNAUTHENTICATED and cached a few seconds; no
# answer in 5 s or a 500 is UNAVAILABLE; 16 held calls per address and 64 reviews in
# flight at most, the rest UNAVAILABLE at once; calls with one token share a review; an answer is cached
# no longer than the token's exp; xDS with a Kubernetes token is bound to the
# pod's node; no token ever appears in a log; without --kubeconfig such tokens
# are refused as before.
. "$(dirname "$0")/lib.sh"
require_root
topo_two_nodes 4

CFG=$WORK/config
STATE=$WORK/state
MLOG=$WORK/meshd.log
FLOG=$WORK/fake.log
PB=$WORK/pb
FX=$ROOT/tests/unit/kubeauth
MESHD_LISTEN=198.18.0.1:15012
CP="$PY $ROOT/tests/support/cp_client.py"
BURST="$PY $ROOT/tests/support/ca_burst.py"
TD=cluster.local
ECHO_ID=spiffe://$TD/ns/demo/sa/echo
CURL_ID=spiffe://$TD/ns/demo/sa/curl
ZT_ID=spiffe://$TD/ns/istio-system/sa/ztunnel
UID_ECHO=5d1c1d6e-3b1f-4c53-9c1a-0e6f3e0b6a01
UID_ZT=8a0e6f52-7d4e-4f0e-8b63-2c2f7b9c3d10
UID_WP=3e8d1c55-2f6a-4b7e-9d01-6c2b8a4f1e77
mkdir -p "$CFG" "$PB"

# Pods as the API server would have them (the UIDs the answers in $FX name).
cat >"$CFG/pods.yaml" <<YAML
apiVersion: v1
kind: Namespace
metadata: {name: demo, labels: {istio.io/dataplane-mode: ambient}}
---
apiVersion: v1
kind: Namespace
metadata: {name: istio-system}
---
apiVersion: v1
kind: Pod
metadata: {name: echo-1, namespace: demo, uid: $UID_ECHO, labels: {app: echo}}
spec: {serviceAccountName: echo, nodeName: node-1, containers: [{name: main, image: none}]}
status: {phase: Running, podIPs: [{ip: "198.18.250.31"}]}
---
apiVersion: v1
kind: Pod
metadata: {name: curl-2, namespace: demo, uid: 0b3e9a47-5a9c-4d0e-a7a4-91c5a3f2e7b3}
spec: {serviceAccountName: curl, nodeName: node-2, containers: [{name: main, image: none}]}
status: {phase: Running, podIPs: [{ip: "198.18.250.32"}]}
---
apiVersion: v1
kind: Pod
metadata:
  name: wp-1
  namespace: demo
  uid: $UID_WP
  labels: {gateway.networking.k8s.io/gateway-name: wp}
spec: {serviceAccountName: wp, nodeName: node-1, containers: [{name: main, image: none}]}
status: {phase: Running, podIPs: [{ip: "198.18.250.35"}]}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: wp, namespace: demo}
spec:
  gatewayClassName: istio-waypoint
  listeners: [{name: mesh, port: 15008, protocol: HBONE}]
---
apiVersion: v1
kind: Pod
metadata: {name: ztunnel-n1, namespace: istio-system, uid: $UID_ZT}
spec: {serviceAccountName: ztunnel, nodeName: node-1, containers: [{name: main, image: none}]}
status: {phase: Running, podIPs: [{ip: "198.18.0.1"}]}
YAML

# Tokens: JWS-shaped (header.payload.signature), payload {"exp": ..., "jti": tag}.
jws() { # exp tag
    $PY -c "
import base64, json, sys
b = lambda o: base64.urlsafe_b64encode(json.dumps(o).encode()).rstrip(b'=').decode()
print(b({'alg': 'RS256'}) + '.' + b({'exp': int(sys.argv[1]), 'jti': sys.argv[2]}) + '.c2lnbmF0dXJl')" "$1" "$2"
}
NOW=$(date +%s)
ZT=$(jws $((NOW + 3600)) ztunnel)
ECHO=$(jws $((NOW + 3600)) echo)
SLOW=$(jws $((NOW + 3600)) slow)
ERR=$(jws $((NOW + 3600)) err)
SAME=$(jws $((NOW + 3600)) same)
WP=$(jws $((NOW + 3600)) waypoint)
GARBAGE=bm90LWEtdG9rZW4
BURST_TOKENS=()
for i in $(seq 1 70); do BURST_TOKENS+=("$(jws $((NOW + 3600)) burst-$i)"); done
PERADDR_TOKENS=()
for i in $(seq 1 20); do PERADDR_TOKENS+=("$(jws $((NOW + 3600)) peraddr-$i)"); done
$PY - "$WORK/script.json" "$FX" "$ZT" "$ECHO" "$SLOW" "$ERR" "$SAME" "${BURST_TOKENS[@]}" "${PERADDR_TOKENS[@]}" <<'EOF'
import json, sys
out, fx, zt, echo, slow, err, same = sys.argv[1:8]
s = {zt: {"answer": fx + "/ztunnel-bound.json"}, echo: {"answer": fx + "/echo-bound.json"},
     slow: {"answer": fx + "/echo-bound.json", "delay": 8}, err: {"status": 500},
     same: {"answer": fx + "/echo-bound.json", "delay": 1}}
for t in sys.argv[8:]:
    s[t] = {"answer": fx + "/echo-bound.json", "delay": 2}
json.dump(s, open(out, "w"))
EOF

# Waypoint demo/wp's token: echo's answer made demo/wp's (pod wp-1).
sed -e 's/system:serviceaccount:demo:echo/system:serviceaccount:demo:wp/' -e 's/"echo-1"/"wp-1"/' \
    -e "s/$UID_ECHO/$UID_WP/" "$FX/echo-bound.json" >"$WORK/wp-bound.json"
$PY - "$WORK/script.json" "$WP" "$WORK/wp-bound.json" <<'EOF'
import json, sys
s = json.load(open(sys.argv[1]))
s[sys.argv[2]] = {"answer": sys.argv[3]}
json.dump(s, open(sys.argv[1], "w"))
EOF

# The fake API server: a self-signed certificate for 127.0.0.1, meshd's kubeconfig trusts it.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 \
    -subj /CN=kube-apiserver -addext subjectAltName=IP:127.0.0.1 \
    -keyout "$WORK/api-key.pem" -out "$WORK/api-cert.pem" 2>/dev/null
cat >"$WORK/kubeconfig" <<YAML
apiVersion: v1
kind: Config
clusters:
- name: fake
  cluster: {server: "https://127.0.0.1:6443", certificate-authority: $WORK/api-cert.pem}
users:
- name: meshd
  user: {token: meshd-admin-token}
contexts:
- name: fake
  context: {cluster: fake, user: meshd}
current-context: fake
YAML
start_bg "$FLOG" ip netns exec "$N1" $PY "$ROOT/tests/support/fake_tokenreview.py" --port 6443 \
    --cert "$WORK/api-cert.pem" --key "$WORK/api-key.pem" --admin-token meshd-admin-token \
    --script "$WORK/script.json"
wait_for grep -q listening "$FLOG" || { echo "fake API server did not start:"; cat "$FLOG"; exit 1; }

run protoc -I"$ROOT/proto" -I/usr/include --python_out="$PB" "$ROOT"/proto/*.proto
start_bg "$MLOG" ip netns exec "$N1" "$BIN/meshd" --config-dir "$CFG" --kubeconfig "$WORK/kubeconfig" \
    --state-dir "$STATE" --listen "$MESHD_LISTEN" --monitoring 127.0.0.1:15014 --log-level debug
. "$ROOT/tests/support/cp_calls.sh"
WAIT_SECS=20 wait_for monitoring_get /ready || { echo "meshd did not become ready:"; cat "$MLOG"; exit 1; }

reviews() { grep -c '^review ' "$FLOG" || true; }

# ---- who may obtain what ---------------------------------------------------------
ca "ztunnel token (node-1) gets demo/echo, whose pod runs on node-1" "$ZT" "$ECHO_ID" 0
ca "ztunnel token (node-1) is refused demo/curl, whose pod runs on node-2" "$ZT" "$CURL_ID" 16 \
    "CA: refused pod istio-system/ztunnel-n1 .*on node node-1 for $CURL_ID: no pod on node node-1"
check_show "$OUT" "the caller learns only 'certificate request refused'" \
    grep -qx 'grpc-message: certificate request refused' "$OUT"
ca "ztunnel token gets its own identity" "$ZT" "$ZT_ID" 0
ca "workload token (demo/echo) gets its own identity" "$ECHO" "$ECHO_ID" 0
ca "workload token is refused another identity on its node (istio-system/ztunnel)" "$ECHO" "$ZT_ID" 16 \
    "not a trusted node account: it may obtain only its own identity"

# ---- xDS ----------------------------------------------------------------------------
cpc xds --token-string "$ZT" --node-name node-2 --expect-workload Kubernetes//Pod/demo/echo-1 && ok=1 || ok=0
check_show "$OUT" "xDS with the ztunnel token: served" [ $ok = 1 ]
check "...and bound to node-1, the pod's node, whatever NODE_NAME it claims" \
    grep -q 'xDS stream of node node-1 says NODE_NAME node-2; its credential wins' "$MLOG"
# A waypoint's claim holds with its own pod's token; the ztunnel's token on the same node does
# not make it (a node token would: any pod of that waypoint on the node is enough).
WPMETA=(--meta WAYPOINT=wp --meta NAMESPACE=demo --meta SERVICE_ACCOUNT=wp)
cpc xds --token-string "$WP" --node-name node-1 "${WPMETA[@]}" && ok=1 || ok=0
check_show "$OUT" "xDS with waypoint demo/wp's own token, claiming demo/wp: served" [ $ok = 1 ]
check "...and meshd takes it as waypoint demo/wp" grep -q 'is waypoint demo/wp: ' "$MLOG"
cpc xds --token-string "$ZT" --node-name node-1 "${WPMETA[@]}" && ok=1 || ok=0
check_show "$OUT" "xDS with the ztunnel's token claiming waypoint demo/wp: served (Address only)" [ $ok = 1 ]
check "...but the claim is denied: the caller is not the waypoint's account" \
    grep -q 'claims waypoint demo/wp as service account wp, but node node-1 runs no pod of it as that service account: permission denied' "$MLOG"
check "three tokens, three reviews: the other calls were answered from the cache" test "$(reviews)" = 3

# ---- the API server says no ----------------------------------------------------------
ca "a token the API server does not authenticate: UNAUTHENTICATED" "$GARBAGE" "$ECHO_ID" 16 \
    "refused: API server did not authenticate the token: .*compact JWS"
check_show "$OUT" "...with 'authentication failure' only" grep -qx 'grpc-message: authentication failure' "$OUT"
ca "the same token again: refused from the negative cache" "$GARBAGE" "$ECHO_ID" 16
cpc xds --token-string "$GARBAGE" --node-name node-1 --expect-status 16 && ok=1 || ok=0
check_show "$OUT" "xDS with that token: UNAUTHENTICATED (from the cache too)" [ $ok = 1 ]
check "the refusal was cached: 4 reviews in all" test "$(reviews)" = 4

# ---- failures to get an answer ---------------------------------------------------
T0=$(date +%s%N)
ca "no answer in 5 s: UNAVAILABLE" "$SLOW" "$ECHO_ID" 14 "TokenReview: no answer from the API server in 5000 ms"
EL=$(( ($(date +%s%N) - T0) / 1000000 ))
check "...after about 5 s ($EL ms)" test "$EL" -ge 4800 -a "$EL" -le 8000
ca "the API server answers 500: UNAVAILABLE" "$ERR" "$ECHO_ID" 14 "TokenReview failed: HTTP 500"
ca "failures are not cached: the 500 is asked again" "$ERR" "$ECHO_ID" 14
check "7 reviews in all" test "$(reviews)" = 7

# ---- the cache lives no longer than the token ------------------------------------
SHORT_EXP=$(( $(date +%s) + 3 ))
SHORT=$(jws $SHORT_EXP short)
$PY - "$WORK/script.json" "$SHORT" "$FX/echo-bound.json" <<'EOF'
import json, sys
s = json.load(open(sys.argv[1]))
s[sys.argv[2]] = {"answer": sys.argv[3]}
json.dump(s, open(sys.argv[1], "w"))
EOF
ca "a token 3 s from its exp is accepted" "$SHORT" "$ECHO_ID" 0
ca "...and answered from the cache right after" "$SHORT" "$ECHO_ID" 0
check "one review for it" test "$(reviews)" = 8
sleep $(( SHORT_EXP + 1 - $(date +%s) > 0 ? SHORT_EXP + 1 - $(date +%s) : 0 ))
ca "past its exp the cached answer is gone: reviewed again (the fake still says yes)" \
    "$SHORT" "$ECHO_ID" 0
check "a second review for it" test "$(reviews)" = 9

# ---- one review for calls with the same token ------------------------------------
CO_BEFORE=$(metric meshd_kube_token_review_coalesced_total)
SAME_ARGS=()
for i in $(seq 1 10); do SAME_ARGS+=(--token "$SAME"); done
ip netns exec "$N2" $BURST --addr "$MESHD_LISTEN" --root "$STATE/root-cert.pem" --pb-dir "$PB" \
    --identity "$ECHO_ID" "${SAME_ARGS[@]}" >"$WORK/same.out" 2>&1 || true
check_show "$WORK/same.out" "10 calls at once with one token: all granted" \
    test "$(grep -c 'status=0 ' "$WORK/same.out")" = 10
CO=$(( $(metric meshd_kube_token_review_coalesced_total) - CO_BEFORE ))
check "...after one review, which the 9 others waited for ($CO)" sh -c "[ $(reviews) = 10 ] && [ $CO = 9 ]"

# ---- caps: held calls per address, reviews in flight ------------------------------
# 20 tokens from one address: 16 calls held for their reviews, the other 4 UNAVAILABLE at once.
PA_ARGS=()
for t in "${PERADDR_TOKENS[@]}"; do PA_ARGS+=(--token "$t"); done
ip netns exec "$N2" $BURST --addr "$MESHD_LISTEN" --root "$STATE/root-cert.pem" --pb-dir "$PB" \
    --identity "$ECHO_ID" "${PA_ARGS[@]}" >"$WORK/peraddr.out" 2>&1 || true
FAST14=$(awk '/status=14 / {split($4, a, "="); if (a[2] < 1.5) n++} END {print n + 0}' "$WORK/peraddr.out")
check_show "$WORK/peraddr.out" "20 new tokens at once from one address: 16 held and granted, 4 UNAVAILABLE at once ($FAST14 in < 1.5 s)" \
    sh -c "[ \$(grep -c 'status=0 ' '$WORK/peraddr.out') = 16 ] && [ $FAST14 = 4 ]"
check "...the API server saw 16 reviews" test "$(reviews)" = $((10 + 16))
# 70 tokens from 5 addresses (14 each): 64 reviews in flight, the other 6 UNAVAILABLE at once.
for i in 1 2 3 4 5; do ip -n "$N2" addr add 198.18.251.$i/32 dev lo; done
for i in 1 2 3 4 5; do
    args=()
    for t in "${BURST_TOKENS[@]:$(( (i - 1) * 14 )):14}"; do args+=(--token "$t"); done
    ip netns exec "$N2" $BURST --addr "$MESHD_LISTEN" --root "$STATE/root-cert.pem" --pb-dir "$PB" \
        --bind 198.18.251.$i --identity "$ECHO_ID" "${args[@]}" >"$WORK/burst.$i.out" 2>&1 &
    BPIDS[$i]=$!
done
for i in 1 2 3 4 5; do wait "${BPIDS[$i]}" || true; done
cat "$WORK"/burst.?.out >"$WORK/burst.out"
FAST14=$(awk '/status=14 / {split($4, a, "="); if (a[2] < 1.5) n++} END {print n + 0}' "$WORK/burst.out")
check_show "$WORK/burst.out" "70 new tokens at once from 5 addresses: 64 reviewed and granted, 6 UNAVAILABLE at once ($FAST14 in < 1.5 s)" \
    sh -c "[ \$(grep -c 'status=0 ' '$WORK/burst.out') = 64 ] && [ $FAST14 = 6 ]"
check "...the API server saw 64 more reviews" test "$(reviews)" = $((10 + 16 + 64))

# ---- secrets and metrics ------------------------------------------------------------
leaked=0
for t in "$ZT" "$ECHO" "$WP" "$SLOW" "$SHORT" "$SAME" "$GARBAGE" "${BURST_TOKENS[@]}" "${PERADDR_TOKENS[@]}"; do
    if grep -q -F -- "$t" "$MLOG" "$FLOG"; then leaked=1; fi
done
check "no token appears in meshd's log (debug level) or the fake's" [ $leaked = 0 ]
monitoring_get /metrics | grep '^meshd_kube' >"$WORK/metrics.txt" || true
check_show "$WORK/metrics.txt" "/metrics: 90 reviews; 13 failures (timeout, two 500s, 4 + 6 over the caps); 1 refusal" sh -c "
    grep -qx 'meshd_kube_token_reviews_total 90' '$WORK/metrics.txt' &&
    grep -qx 'meshd_kube_token_review_failures_total 13' '$WORK/metrics.txt' &&
    grep -qx 'meshd_kube_token_review_refusals_total 1' '$WORK/metrics.txt' &&
    grep -qx 'meshd_kube_token_reviews_in_flight 0' '$WORK/metrics.txt' &&
    grep -qx 'meshd_kube_token_review_waiting_calls 0' '$WORK/metrics.txt'"
HITS=$(metric meshd_kube_token_review_cache_hits_total)
SUM=$(metric meshd_kube_token_review_duration_seconds_sum)
CNT=$(metric meshd_kube_token_review_duration_seconds_count)
MAX=$(metric meshd_kube_token_review_duration_seconds_max)
say "figures: cache hits $HITS; answers $CNT in ${SUM} s (max ${MAX} s, scripted delays included)"
# ZT x4 (CA curl, CA own, xDS, waypoint claim), ECHO x1, GARBAGE x2 (CA, xDS), SHORT x1
check "cache hits: the 8 calls above that repeat a token" test "$HITS" = 8

# ---- --ca-trusted-node-accounts -------------------------------------------------------
check "a bad --ca-trusted-node-accounts is refused at start, naming the entry" sh -c "
    ! '$BIN/meshd' --config-dir '$CFG' --state-dir '$WORK/s3' --ca-trusted-node-accounts 'ztunnel' 2>'$WORK/bad-flag.err' &&
    grep -q 'ca-trusted-node-accounts: \"ztunnel\" is not NAMESPACE/SERVICEACCOUNT' '$WORK/bad-flag.err'"
start_bg "$WORK/meshd3.log" ip netns exec "$N1" "$BIN/meshd" --config-dir "$CFG" --kubeconfig "$WORK/kubeconfig" \
    --state-dir "$STATE" --listen 198.18.0.1:15016 --monitoring 127.0.0.1:15017 \
    --ca-trusted-node-accounts demo/echo
M3=$LAST_PID
wait_for ip netns exec "$N2" $PY -c "
import socket; socket.create_connection(('198.18.0.1', 15016), timeout=1).close()"
ca3() { # token identity status
    NOUT=$((NOUT + 1)); OUT=$WORK/cp.$NOUT.out
    ip netns exec "$N2" $CP ca --addr 198.18.0.1:15016 --root "$STATE/root-cert.pem" --pb-dir "$PB" \
        --timeout 10 --token-string "$1" --identity "$2" --expect-status "$3" >"$OUT" 2>&1
}
ca3 "$ZT" "$ECHO_ID" 16 && ok=1 || ok=0
check_show "$OUT" "trusted accounts demo/echo only: the ztunnel's token no longer gets demo/echo" [ $ok = 1 ]
ca3 "$ECHO" "$ZT_ID" 0 && ok=1 || ok=0
check_show "$OUT" "...and demo/echo's token gets istio-system/ztunnel, whose pod runs on its node" [ $ok = 1 ]
stop_meshd "$M3" "$WORK/meshd3.log"

# ---- without a Kubernetes client, as before --------------------------------------
start_bg "$WORK/meshd2.log" ip netns exec "$N1" "$BIN/meshd" --config-dir "$CFG" --state-dir "$STATE" \
    --listen 198.18.0.1:15013 --monitoring 127.0.0.1:15015
M2=$LAST_PID
wait_for ip netns exec "$N2" $PY -c "
import socket; socket.create_connection(('198.18.0.1', 15013), timeout=1).close()"
NOUT=$((NOUT + 1)); OUT=$WORK/cp.$NOUT.out
ip netns exec "$N2" $CP ca --addr 198.18.0.1:15013 --root "$STATE/root-cert.pem" --pb-dir "$PB" \
    --timeout 10 --token-string "$ZT" --identity "$ECHO_ID" --expect-status 16 >"$OUT" 2>&1 && ok=1 || ok=0
check_show "$OUT" "meshd without --kubeconfig refuses a Kubernetes token (UNAUTHENTICATED)" sh -c "
    [ $ok = 1 ] && grep -q 'refused: malformed token (not a node token' '$WORK/meshd2.log'"
stop_meshd "$M2" "$WORK/meshd2.log"

finish
