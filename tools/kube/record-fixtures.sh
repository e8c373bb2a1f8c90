#!/usr/bin/env bash
# Records what the real kube-apiserver 1.20.2 answers on the wire, as fixtures for lib/kube's
# unit tests (tests/fixtures/kube/). Each fixture is a raw HTTP/2 response body, exactly as curl
# --http2 received it; index.tsv gives its status code, content type, method and path.
#
#   tools/kube/record-fixtures.sh            re-record tests/fixtures/kube/ (root: it makes a netns)
#   tools/kube/record-fixtures.sh --check    record into a temp dir and compare the SHAPE with the
#                                            committed set (statuses, event types, kinds, reasons,
#                                            codes, list sizes; not bytes: uids, times and RVs
#                                            differ per run). Test 43 runs this.
#   tools/kube/record-fixtures.sh --out DIR  record into DIR
#
# Needs the cached build (tools/kube/build.sh) and the kube packages (tools/install-deps.sh kube).
# Takes about 40 s: two watches run to their timeout and the future-RV LIST waits 3 s for its 504.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
FIX=$ROOT/tests/fixtures/kube
MODE=record OUT=$FIX
case "${1:-}" in
    "") ;;
    --check) MODE=check ;;
    --out) OUT=${2:?--out DIR}; mkdir -p "$OUT"; OUT=$(cd "$OUT" && pwd) ;;
    *) echo "usage: $0 [--check | --out DIR]" >&2; exit 2 ;;
esac
. "$ROOT/tests/integration/lib.sh"
. "$ROOT/tests/support/kube.sh"
require_root
kube_require
SHAPE="$PY $ROOT/tools/kube/fixture_shape.py"
[ "$MODE" = check ] && OUT=$WORK/fixtures
REC=$WORK/rec
mkdir -p "$REC"

ip netns add "$N1"
K=$WORK/kube
kube_up "$N1" "$K"
NS=fx

# The API server pretty-prints JSON for a curl or wget User-Agent; lib/kube gets compact JSON,
# so the recorder says it is something else.
UA=(-A amesh-fixture-recorder/1)

# rec NAME METHOD PATH [BODY-JSON]: one request; body to $REC/NAME, a line to the index.
rec() {
    local name=$1 method=$2 path=$3 body=${4:-} args=() out
    [ -n "$body" ] && args=(-H 'Content-Type: application/json' --data-binary "$body")
    out=$(kube_curl "$K" "$path" "${UA[@]}" -X "$method" "${args[@]}" -o "$REC/$name" \
        -w '%{http_code}\t%{content_type}\t%{http_version}')
    printf '%s\t%s\t%s\t%s\n' "$name" "$out" "$method" "$path" >>"$REC/index.tsv.tmp"
    say "$name: $(cut -f1 <<<"$out") $method $path"
}
# api METHOD PATH [BODY]: a request whose answer is not a fixture, 2xx required.
api() {
    local method=$1 path=$2 body=${3:-} args=()
    [ -n "$body" ] && args=(-H 'Content-Type: application/merge-patch+json' --data-binary "$body")
    [ "$method" = POST ] && args=(-H 'Content-Type: application/json' --data-binary "$body")
    kube_curl "$K" "$path" -X "$method" "${args[@]}" -f -o /dev/null
}
jget() { # file python-expression over d
    $PY -c "import json,sys; d=json.load(open(sys.argv[1])); print($2)" "$1"
}
cm() { echo "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"$1\"},\"data\":{\"k\":\"$2\"}}"; }

: >"$REC/index.tsv.tmp"
api POST /api/v1/namespaces '{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"fx"}}'
for i in 1 2 3 4 5; do api POST /api/v1/namespaces/$NS/configmaps "$(cm cm$i v$i)"; done

# ---- paged LIST: limit=2 gives cm1,cm2 + continue; then cm3,cm4 + continue; then cm5 ---------
CM=/api/v1/namespaces/$NS/configmaps
rec list-page1.json GET "$CM?limit=2"
c1=$(jget "$REC/list-page1.json" "d['metadata']['continue']")
LIST_RV=$(jget "$REC/list-page1.json" "d['metadata']['resourceVersion']")
rec list-page2.json GET "$CM?limit=2&continue=$c1"
c2=$(jget "$REC/list-page2.json" "d['metadata']['continue']")
rec list-page3.json GET "$CM?limit=2&continue=$c2"

# ---- watch from the list's RV: ADDED, MODIFIED, DELETED, then the BOOKMARK the server sends
# about 2 s before timeoutSeconds, then a clean end of stream -----------------------------------
kube_curl "$K" "$CM?watch=1&allowWatchBookmarks=true&timeoutSeconds=6&resourceVersion=$LIST_RV" "${UA[@]}" \
    -o "$REC/watch-events.jsonl" -w '%{http_code}\t%{content_type}\t%{http_version}' \
    >"$REC/watch.status" &
WPID=$!
sleep 1
api POST "$CM" "$(cm cm6 v6)"
api PATCH "$CM/cm6" '{"data":{"k":"v6b"}}'
api DELETE "$CM/cm6"
wait "$WPID"
printf '%s\t%s\t%s\t%s\n' watch-events.jsonl "$(cat "$REC/watch.status")" GET \
    "$CM?watch=1&allowWatchBookmarks=true&timeoutSeconds=6&resourceVersion=$LIST_RV" >>"$REC/index.tsv.tmp"
say "watch-events.jsonl: $(cut -f1 "$REC/watch.status") (ADDED, MODIFIED, DELETED, BOOKMARK expected)"

# ---- compaction: a continue token taken before it answers HTTP 410 Expired ----------------------
rec list-before-compact.json GET "$CM?limit=2"
stale=$(jget "$REC/list-before-compact.json" "d['metadata']['continue']")
rm "$REC/list-before-compact.json"; sed -i '/^list-before-compact.json/d' "$REC/index.tsv.tmp"
for i in 1 2 3; do api PATCH "$CM/cm1" "{\"data\":{\"k\":\"c$i\"}}"; done
rev=$(ip netns exec "$N1" etcdctl --endpoints http://127.0.0.1:2379 endpoint status -w json |
    $PY -c 'import json,sys; print(json.load(sys.stdin)[0]["Status"]["header"]["revision"])')
ip netns exec "$N1" etcdctl --endpoints http://127.0.0.1:2379 compact "$rev" >/dev/null
say "etcd compacted at revision $rev"
rec list-continue-expired.json GET "$CM?limit=2&continue=$stale"
# an exact-RV LIST at the old RV: HTTP 410 too
rec list-rv-expired.json GET "$CM?resourceVersion=$LIST_RV&resourceVersionMatch=Exact"
# a watch from an RV older than the watch cache: HTTP 200 and one in-stream ERROR 410 Expired.
# A restarted server's cache starts at etcd's current revision, so the list's RV is too old for it
# (a long-running server's cache grows with the event rate and may still hold it).
kube_restart_apiserver "$K"
rec watch-expired.jsonl GET "$CM?watch=1&allowWatchBookmarks=true&timeoutSeconds=5&resourceVersion=$LIST_RV"

# ---- a LIST at a future RV: the server waits 3 s, then HTTP 504 with cause ResourceVersionTooLarge
rec list-rv-too-large.json GET "$CM?resourceVersion=999999999"

# ---- discovery misses: an unserved version (1.20 has discovery.k8s.io/v1beta1 only) and an
# unserved group -----------------------------------------------------------------------------------
rec unserved-version.json GET "/apis/discovery.k8s.io/v1/endpointslices"
rec unserved-group.json GET "/apis/amesh-unserved.example.com/v1/widgets"

# ---- TokenRequest (audience istio-ca, bound to a pod) and TokenReview of it; a bad token ------
api POST /api/v1/namespaces/$NS/serviceaccounts \
    '{"apiVersion":"v1","kind":"ServiceAccount","metadata":{"name":"echo"}}'
kube_curl "$K" /api/v1/namespaces/$NS/pods -X POST -H 'Content-Type: application/json' -f \
    -o "$WORK/pod.json" --data-binary '{"apiVersion":"v1","kind":"Pod","metadata":{"name":"echo-0"},
      "spec":{"serviceAccountName":"echo","nodeName":"node-1","containers":[{"name":"c","image":"x"}]}}'
uid=$(jget "$WORK/pod.json" "d['metadata']['uid']")
rec tokenrequest.json POST /api/v1/namespaces/$NS/serviceaccounts/echo/token \
    "{\"apiVersion\":\"authentication.k8s.io/v1\",\"kind\":\"TokenRequest\",\"spec\":{
      \"audiences\":[\"istio-ca\"],\"expirationSeconds\":3600,
      \"boundObjectRef\":{\"kind\":\"Pod\",\"apiVersion\":\"v1\",\"name\":\"echo-0\",\"uid\":\"$uid\"}}}"
tok=$(jget "$REC/tokenrequest.json" "d['status']['token']")
review() { echo "{\"apiVersion\":\"authentication.k8s.io/v1\",\"kind\":\"TokenReview\",\"spec\":{\"token\":\"$1\",\"audiences\":[\"$2\"]}}"; }
rec tokenreview.json POST /apis/authentication.k8s.io/v1/tokenreviews "$(review "$tok" istio-ca)"
rec tokenreview-wrong-audience.json POST /apis/authentication.k8s.io/v1/tokenreviews \
    "$(review "$tok" some-other-audience)"
rec tokenreview-bad.json POST /apis/authentication.k8s.io/v1/tokenreviews \
    "$(review "${tok%?????}AAAAA" istio-ca)"

# ---- what meshd reads of EndpointSlices and Nodes: a slice written by hand for a Service without
# a selector (v1beta1, all 1.20 serves: the server fills in the port name "" and protocol TCP)
# and a Node with topology labels (the pods' locality) ------------------------------------------
api POST /api/v1/namespaces/$NS/services \
    '{"apiVersion":"v1","kind":"Service","metadata":{"name":"db"},"spec":{"ports":[{"name":"sql","port":5432},{"port":8080,"name":"admin"}]}}'
api POST /apis/discovery.k8s.io/v1beta1/namespaces/$NS/endpointslices \
    '{"apiVersion":"discovery.k8s.io/v1beta1","kind":"EndpointSlice","metadata":{"name":"db-manual",
      "labels":{"kubernetes.io/service-name":"db"}},"addressType":"IPv4",
      "ports":[{"name":"sql","port":15432},{"name":"admin","port":18080,"protocol":"TCP"},{"port":9}],
      "endpoints":[{"addresses":["198.18.5.1"],"conditions":{"ready":true},"topology":{"kubernetes.io/hostname":"node-fx"}},
                   {"addresses":["198.18.5.2"],"conditions":{"ready":false}},
                   {"addresses":["198.18.5.3"],"targetRef":{"kind":"Pod","name":"echo-0","namespace":"fx"}}]}'
rec endpointslices.json GET "/apis/discovery.k8s.io/v1beta1/namespaces/$NS/endpointslices"
api POST /api/v1/nodes '{"apiVersion":"v1","kind":"Node","metadata":{"name":"node-fx","labels":{
    "kubernetes.io/hostname":"node-fx","topology.kubernetes.io/region":"region-a",
    "topology.kubernetes.io/zone":"zone-1","topology.istio.io/subzone":"rack-7"}}}'
rec node.json GET /api/v1/nodes/node-fx

mv "$REC/index.tsv.tmp" "$REC/index.tsv"
rm -f "$REC/watch.status"
kube_down "$K"

# The recorded shapes must be the ones the fixtures are for, in either mode.
$SHAPE "$REC" >"$WORK/shape.new"
if ! $SHAPE --expect "$REC"; then
    fail "the recorded answers are not what the fixtures are meant to show (see above)"
    finish; exit 1
fi
pass "recorded $(wc -l <"$REC/index.tsv") fixtures, each with its expected shape"

if [ "$MODE" = check ]; then
    $SHAPE "$FIX" >"$WORK/shape.committed"
    if diff -u "$WORK/shape.committed" "$WORK/shape.new"; then
        pass "the real server's answers have the shape of the committed fixtures"
    else
        fail "the real server's answers drifted from tests/fixtures/kube (diff above: - committed, + now)"
    fi
else
    mkdir -p "$OUT"
    rm -f "$OUT"/*.json "$OUT"/*.jsonl "$OUT"/index.tsv
    cp "$REC"/* "$OUT"/
    say "fixtures written to $OUT"
fi
finish
