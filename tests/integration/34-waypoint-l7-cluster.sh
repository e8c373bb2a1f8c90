#!/usr/bin/env bash
# L7 through a waypoint on the local cluster, end to end with the real binaries, as `make demo`
# shows it: meshd converts samples/waypoint.yaml (HTTPRoute 90/10 between echo-v1 and echo-v2,
# L7 AuthorizationPolicies with targetRefs) and serves it to the waypoint replica that
# `meshctl waypoint apply --enroll-namespace --wait` deployed; curl's requests go
# client ztunnel -> waypoint -> echo's ztunnel -> echo.
#
# Checks: 200 requests split within 3 sigma of 90/10; /admin* denied by the waypoint (403
# "RBAC: access denied", never reaching echo); another identity (sleep) denied at L7; echo's
# ztunnel sees the waypoint's identity; one waypoint access-log line per request sent (Envoy's
# format); istio_requests_total grows by the requests sent; meshctl waypoint-config shows the
# replica's route table and policies.
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

"$M" install --nodes 2 >"$WORK/install.out" 2>&1 || { cat "$WORK/install.out"; exit 1; }
run "$M" apply -f "$ROOT/samples/echo.yaml" -f "$ROOT/samples/curl.yaml" >/dev/null
cat >"$WORK/client.yaml" <<'YAML'
apiVersion: v1
kind: ServiceAccount
metadata: {name: other, namespace: demo}
---
apiVersion: v1
kind: Pod
metadata: {name: other, namespace: demo, labels: {app: other}}
spec:
  serviceAccountName: other
  containers:
  - name: other
    command: [sleep, infinity]
YAML
run "$M" apply -f "$WORK/client.yaml" >/dev/null
run "$M" label ns demo istio.io/dataplane-mode=ambient >/dev/null
"$M" waypoint apply -n demo --enroll-namespace --wait --waypoint-timeout 60s >"$WORK/wp.out" 2>&1
check "the waypoint is deployed and ready" grep -qx '✅ waypoint demo/waypoint is ready!' "$WORK/wp.out"
run "$M" apply -f "$ROOT/samples/waypoint.yaml" >/dev/null

req() { # pod path -> "<code> <body's first line>"
    "$M" exec -n demo "$1" -- curl -s -m 5 -w '\n%{http_code}' "http://echo$2" |
        $PY -c 'import sys; l = sys.stdin.read().split("\n"); print(l[-1], l[0])'
}
WAIT_SECS=20 wait_for sh -c "'$M' exec -n demo deploy/curl -- curl -s -o /dev/null -w '%{http_code}' http://echo/admin | grep -qx 403"
: >"$WORK/split.txt"
"$M" exec -n demo deploy/waypoint -- curl -s http://127.0.0.1:15020/metrics >"$WORK/wpm0.txt"
for _ in $(seq 200); do req deploy/curl /hello >>"$WORK/split.txt"; done
v1=$(grep -c '^200 .*version=v1' "$WORK/split.txt" || true)
v2=$(grep -c '^200 .*version=v2' "$WORK/split.txt" || true)
echo "200 requests: v1 $v1, v2 $v2"
check "all 200 answered 200" [ "$((v1 + v2))" = 200 ]
# sigma = sqrt(200 * 0.1 * 0.9) = 4.2; 4 sigma keeps a correct split from failing CI (6e-5).
check "the HTTPRoute splits 90/10 within 4 sigma (v2 in [3, 37])" [ "$v2" -ge 3 -a "$v2" -le 37 ]
out=$(req deploy/curl /admin/users)
check "an L7 DENY on /admin* answers 403 RBAC: access denied" [ "$out" = "403 RBAC: access denied" ]
# (The wait above probes /admin until the policy is in force; those early probes may reach echo.)
check "echo never saw /admin/users (it logged the /hello requests)" sh -c "
cat '$MESH_CLUSTER_DIR'/pods/demo_echo-*/log | grep -q 'path=/hello' &&
! cat '$MESH_CLUSTER_DIR'/pods/demo_echo-*/log | grep -q 'path=/admin/users'"
out=$(req pod/other /hello)
check "another identity is not allowed at L7: 403 from the waypoint" [ "$out" = "403 RBAC: access denied" ]
check "echo's ztunnel sees the waypoint's identity, never curl's, for HTTP" sh -c "
cat '$MESH_CLUSTER_DIR'/nodes/node-*/ztunnel.log | grep 'direction=\"inbound\"' | grep 'dst.hbone_addr=[0-9.]*:8080' |
grep -q 'src.identity=\"spiffe://cluster.local/ns/demo/sa/waypoint\"' &&
! cat '$MESH_CLUSTER_DIR'/nodes/node-*/ztunnel.log | grep 'direction=\"inbound\"' | grep 'dst.hbone_addr=[0-9.]*:8080' |
grep -q 'src.identity=\"spiffe://cluster.local/ns/demo/sa/curl\"'"
sleep 0.5
n=$("$M" logs deploy/waypoint -n demo | grep -cF '"GET /hello HTTP/1.1" 200 - via_upstream ' || true)
check "one waypoint access-log line per /hello request, Envoy's format (>= 200)" [ "$n" -ge 200 ]
check "the route that decided is named in the log" sh -c "
'$M' logs deploy/waypoint -n demo | grep -F '\"GET /hello HTTP/1.1\" 200 ' | grep -q ' demo.echo-split.0\$'"
curl_ok() { # metrics file -> istio_requests_total with response 200 from curl's identity
    $PY "$ROOT/tests/support/prom_query.py" istio_requests_total reporter=waypoint response_code=200 \
        source_principal=spiffe://cluster.local/ns/demo/sa/curl source_workload=curl <"$1"
}
before=$(curl_ok "$WORK/wpm0.txt")
"$M" exec -n demo deploy/waypoint -- curl -s http://127.0.0.1:15020/metrics >"$WORK/wpm1.txt"
after=$(curl_ok "$WORK/wpm1.txt")
echo "istio_requests_total 200 from curl: $before before the 200 requests, $after after"
check "the waypoint's istio_requests_total grew by the 200 requests (curl's principal, 200)" \
    [ "$((after - before))" = 200 ]
check "... split over echo-v1 and echo-v2 as the answers were" sh -c "
[ \"\$($PY '$ROOT/tests/support/prom_query.py' istio_requests_total response_code=200 destination_service=echo-v2.demo.svc.cluster.local <'$WORK/wpm1.txt')\" -ge $v2 ]"

# meshctl waypoint-config: the replica's route table and policies.
"$M" waypoint-config routes waypoint -n demo >"$WORK/wc-routes.txt" 2>"$WORK/wc.err" || true
"$M" waypoint-config policies -n demo >"$WORK/wc-pols.txt" 2>>"$WORK/wc.err" || true
cat "$WORK/wc-routes.txt" "$WORK/wc-pols.txt" "$WORK/wc.err"
check "meshctl waypoint-config routes: the HTTPRoute's rule, 90/10 over echo-v1 and echo-v2" sh -c "
head -1 '$WORK/wc-routes.txt' | grep -Eq '^NAMESPACE +SERVICE +PORT +PROTOCOL +RULE +MATCH +ACTION\$' &&
grep -Eq '^demo +echo +80 +[A-Z0-9]+ +demo.echo-split.0 +prefix / +echo-v1:80 90%, echo-v2:80 10%\$' '$WORK/wc-routes.txt'"
check "meshctl waypoint-config policies: both L7 policies on the echo Service" sh -c "
grep -Eq '^demo +echo-l7-allow-curl +ALLOW +service echo +1\$' '$WORK/wc-pols.txt' &&
grep -Eq '^demo +echo-l7-deny-admin +DENY +service echo +1\$' '$WORK/wc-pols.txt'"
check "... it says which replica it asked" grep -q 'waypoint demo/waypoint: asking replica waypoint-' "$WORK/wc.err"
rc=0; "$M" waypoint-config routes nosuch -n demo >/dev/null 2>"$WORK/wc-nosuch.err" || rc=$?
check "a waypoint that does not exist: exit 1 and an error naming it" sh -c "
[ $rc = 1 ] && grep -q 'waypoint demo/nosuch not found' '$WORK/wc-nosuch.err'"
finish
