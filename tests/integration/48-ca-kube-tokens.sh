#!/usr/bin/env bash
# meshd's CA and xDS take Kubernetes service-account tokens from the REAL API server
# (kube-apiserver v1.20.2 of tools/kube/build.sh's cache, tests/support/kube.sh), as
# istiod does (reference istio-ambient.md 4.2): TokenRequest (audience istio-ca, bound
# to a pod) makes the tokens, meshd checks them with TokenReview and finds the caller's
# node from its pod.
#
#   netns node-1                                                netns node-2
#   etcd + kube-apiserver 127.0.0.1:6443                        cp_client.py (CA, xDS)
#   meshd --kubeconfig (TokenReview) 198.18.0.1:15012     <==
#
# ServiceAccounts istio-system/ztunnel, demo/echo, demo/curl; pods ztunnel-n1 and echo-1
# on node-1, curl-2 on node-2. The ztunnel's token gets demo/echo's certificate (echo
# runs on node-1) and not demo/curl's (node-2); a workload's token gets only its own;
# a token for another audience, a deleted pod's token and garbage are refused; a pod
# the API server still vouches for but that has terminated is refused by meshd's own
# check; xDS with the ztunnel's token is bound to node-1; a pod deleted while its token's
# answer is cached loses its certificates as soon as meshd's watch sees it. meshd runs with --kubeconfig
# alone: its store is fed by its reflectors from the same API server.
. "$(dirname "$0")/lib.sh"
. "$ROOT/tests/support/kube.sh"
require_root
kube_require || exit 1
topo_two_nodes 4

K=$WORK/kube
STATE=$WORK/state
MLOG=$WORK/meshd.log
PB=$WORK/pb
MESHD_LISTEN=198.18.0.1:15012
CP="$PY $ROOT/tests/support/cp_client.py"
TD=cluster.local
ECHO_ID=spiffe://$TD/ns/demo/sa/echo
CURL_ID=spiffe://$TD/ns/demo/sa/curl
ZT_ID=spiffe://$TD/ns/istio-system/sa/ztunnel
mkdir -p "$PB"

kube_up "$N1" "$K"
kc() { kube_kubectl "$K" "$@"; }

# ---- the cluster: namespaces, accounts, nodes, pods bound to nodes ------------------------
kube_token_cluster "$N1" "$K" echo curl batch || exit 1
pod() { kube_pod "$K" "$@"; } # ns name sa node ip
pod demo gone-1 echo node-1 198.18.250.33
pod demo batch-1 batch node-1 198.18.250.34
uid() { kc -n "$1" get pod "$2" -o jsonpath='{.metadata.uid}'; }

# TokenRequest: audience (default istio-ca), bound to the pod, an hour.
token() { # ns sa pod [audience]
    kube_curl "$K" "/api/v1/namespaces/$1/serviceaccounts/$2/token" -X POST \
        -H 'Content-Type: application/json' -d "{\"apiVersion\":\"authentication.k8s.io/v1\",
        \"kind\":\"TokenRequest\",\"spec\":{\"audiences\":[\"${4:-istio-ca}\"],\"expirationSeconds\":3600,
        \"boundObjectRef\":{\"kind\":\"Pod\",\"apiVersion\":\"v1\",\"name\":\"$3\",\"uid\":\"$(uid "$1" "$3")\"}}}" |
        $PY -c "import json, sys; print(json.load(sys.stdin)['status']['token'])"
}
ZT=$(token istio-system ztunnel ztunnel-n1)
ECHO=$(token demo echo echo-1)
OTHER_AUD=$(token demo echo echo-1 https://kubernetes.default.svc)
GONE=$(token demo echo gone-1)
BATCH=$(token demo batch batch-1)
check "TokenRequest gave five tokens" sh -c "[ -n '$ZT' ] && [ -n '$ECHO' ] && [ -n '$OTHER_AUD' ] &&
    [ -n '$GONE' ] && [ -n '$BATCH' ]"
kc -n demo delete pod gone-1 --grace-period=0 --force >/dev/null 2>&1
kc -n demo patch pod batch-1 --subresource=status --type=merge -p '{"status":{"phase":"Succeeded"}}' >/dev/null

gone_and_done() {
    ! kc -n demo get pod gone-1 >/dev/null 2>&1 &&
        [ "$(kc -n demo get pod batch-1 -o jsonpath='{.status.phase}')" = Succeeded ]
}
check "gone-1 is deleted, batch-1 has Succeeded" gone_and_done

# ---- meshd with the API server as its TokenReview authority ---------------------------------
run protoc -I"$ROOT/proto" -I/usr/include --python_out="$PB" "$ROOT"/proto/*.proto
start_bg "$MLOG" ip netns exec "$N1" "$BIN/meshd" --kubeconfig "$K/kubeconfig" \
    --state-dir "$STATE" --listen "$MESHD_LISTEN" --monitoring 127.0.0.1:15014 --log-level debug
. "$ROOT/tests/support/cp_calls.sh"
WAIT_SECS=30 wait_for monitoring_get /ready || { echo "meshd did not become ready:"; cat "$MLOG"; exit 1; }

ca "ztunnel's token (pod on node-1) gets demo/echo, which runs on node-1" "$ZT" "$ECHO_ID" 0
ca "ztunnel's token is refused demo/curl, which runs only on node-2" "$ZT" "$CURL_ID" 16 \
    "CA: refused pod istio-system/ztunnel-n1 .*on node node-1 for $CURL_ID: no pod on node node-1"
check_show "$OUT" "...and the caller learns only 'certificate request refused'" \
    grep -qx 'grpc-message: certificate request refused' "$OUT"
ca "ztunnel's token gets its own identity" "$ZT" "$ZT_ID" 0
ca "echo's token gets demo/echo" "$ECHO" "$ECHO_ID" 0
ca "echo's token is refused demo/curl (not a trusted node account)" "$ECHO" "$CURL_ID" 16 \
    "demo/echo is not a trusted node account: it may obtain only its own identity"
ca "echo's token is refused istio-system/ztunnel, though that pod runs on its node" "$ECHO" "$ZT_ID" 16 \
    "may obtain only its own identity"
ca "a token for another audience is refused" "$OTHER_AUD" "$ECHO_ID" 16 \
    "refused: API server did not authenticate the token: .*audiences"
ca "a deleted pod's token is refused" "$GONE" "$ECHO_ID" 16 \
    "refused: API server did not authenticate the token"
ca "garbage is refused" "bm90LWEtdG9rZW4.Z2FyYmFnZQ.eA" "$ECHO_ID" 16 \
    "refused: API server did not authenticate the token"
ca "a terminated pod's token (the API server still vouches for it) is refused by meshd" \
    "$BATCH" "spiffe://$TD/ns/demo/sa/batch" 16 "pod demo/batch-1 has terminated"

cpc xds --token-string "$ZT" --node-name node-2 --expect-workload Kubernetes//Pod/demo/echo-1 && ok=1 || ok=0
check_show "$OUT" "xDS with ztunnel's token: served" [ $ok = 1 ]
check "...bound to node-1, its pod's node, whatever NODE_NAME it claims" \
    grep -q 'xDS stream of node node-1 says NODE_NAME node-2; its credential wins' "$MLOG"

# A pod deleted while its token's answer is cached: meshd's store (fed by its watch) decides.
kc -n demo delete pod echo-1 --grace-period=0 --force >/dev/null 2>&1
refused_now() { cpc ca --token-string "$ECHO" --identity "$ECHO_ID" --expect-status 16; }
WAIT_SECS=15 wait_for refused_now && ok=1 || ok=0
check_show "$OUT" "echo-1 deleted: its token (answer still cached) is refused once meshd's watch saw it" sh -c "
    [ $ok = 1 ] && grep -q 'bound to pod demo/echo-1, which meshd does not know' '$MLOG'"
ca "...and the ztunnel's token no longer gets demo/echo on node-1" "$ZT" "$ECHO_ID" 16 \
    "no pod on node node-1 .* runs as service account demo/echo"

# ---- figures -----------------------------------------------------------------------------
REV=$(metric meshd_kube_token_reviews_total)
HITS=$(metric meshd_kube_token_review_cache_hits_total)
SUM=$(metric meshd_kube_token_review_duration_seconds_sum)
CNT=$(metric meshd_kube_token_review_duration_seconds_count)
MAX=$(metric meshd_kube_token_review_duration_seconds_max)
FAILS=$(metric meshd_kube_token_review_failures_total)
say "figures: $REV reviews, $HITS cache hits ($(( 100 * HITS / (REV + HITS) ))% of $((REV + HITS)) calls)," \
    "review latency mean $($PY -c "print('%.1f' % (1000 * $SUM / max($CNT, 1)))") ms, max $($PY -c "print('%.1f' % (1000 * $MAX))") ms"
check "6 tokens, 6 reviews; the calls repeating a token came from the cache; no review failed" \
    sh -c "[ '$REV' = 6 ] && [ '$HITS' -ge 7 ] && [ '$FAILS' = 0 ]"
leaked=0
for t in "$ZT" "$ECHO" "$OTHER_AUD" "$GONE" "$BATCH"; do grep -q -F -- "$t" "$MLOG" && leaked=1; done
check "no token appears in meshd's log (debug level)" [ $leaked = 0 ]

# Recorded answers for the parser's unit test (tests/fixtures/kube/tokenreview/): RECORD=DIR.
if [ -n "${RECORD:-}" ]; then
    review() { # token -> answer, spec.token scrubbed
        kube_curl "$K" /apis/authentication.k8s.io/v1/tokenreviews -X POST -H 'Content-Type: application/json' \
            -d "{\"apiVersion\":\"authentication.k8s.io/v1\",\"kind\":\"TokenReview\",\"spec\":{\"token\":\"$1\",\"audiences\":[\"istio-ca\"]}}" |
            $PY -c "import json, sys; d = json.load(sys.stdin); d['spec']['token'] = 'REDACTED'; print(json.dumps(d, indent=2))"
    }
    mkdir -p "$RECORD"
    review "$ZT" >"$RECORD/ztunnel.json"
    review "$ECHO" >"$RECORD/echo.json"
    review "$OTHER_AUD" >"$RECORD/wrong-audience.json"
    review "$GONE" >"$RECORD/deleted-pod.json"
    review "bm90LWEtdG9rZW4.Z2FyYmFnZQ.eA" >"$RECORD/garbage.json"
    say "recorded TokenReview answers in $RECORD"
fi

finish
