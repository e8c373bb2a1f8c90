#!/usr/bin/env bash
# The real waypoint fed by meshd (xDS and CA, no local config, no local cluster), and config
# changes applied to the next request of a kept-alive connection (issue 10 section 5).
#
#   netns node-1: meshd 198.18.0.1:15012 (its CA signs every certificate of the test)
#   netns node-2: hbone_http.py serve on 198.18.250.10:15008 (pod "server", app echo)
#                 hbone_http.py client (python3-h2, no amesh code) as the client's ztunnel
#   pod wp-0 198.18.251.30 behind node-2: `waypoint --xds-address ...` as meshctl renders it
#   Service echo (VIP 198.19.0.10:80 -> 8080) labelled istio.io/use-waypoint: wp
#
# Checks: the waypoint gets its certificate from meshd's CA for its own service account and
# its config over delta ADS; one client tunnel, one kept-alive HTTP/1.1 connection inside it:
# request 1 is served; an AuthorizationPolicy (targetRefs the Gateway) denying the path is
# written, and request 2 on the same connection gets 403; an HTTPRoute that sets a header is
# written, and request 3 on the same connection reaches the server with it; a broken
# HTTPRoute keeps the last good table.
. "$(dirname "$0")/lib.sh"
require_root
topo_two_nodes 4
CFG=$WORK/config STATE=$WORK/state
WPIP=198.18.251.30 WPNS=amt-wp-$ID
TD=spiffe://cluster.local/ns/default/sa
MKCERTS="$PY $ROOT/tests/support/mkcerts.py"
HH="$PY $ROOT/tests/support/hbone_http.py"
add_pod "$N2" "$WPNS" $WPIP 198.18.251.1
ip -n "$N1" route add 198.18.251.0/24 via 198.18.0.2
write_k8s_config "$CFG"
sed -i 's/^metadata: {name: echo, namespace: default}$/metadata: {name: echo, namespace: default, labels: {istio.io\/use-waypoint: wp}}/' \
    "$CFG/services.yaml"
grep -q 'use-waypoint: wp' "$CFG/services.yaml" || { echo "services.yaml not labelled"; exit 1; }
cat >"$CFG/waypoint.yaml" <<YAML
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: wp, namespace: default}
spec:
  gatewayClassName: istio-waypoint
  listeners:
  - {name: mesh, port: 15008, protocol: HBONE}
---
apiVersion: v1
kind: Pod
metadata: {name: wp-0, namespace: default, uid: 0c11e7e0-wp-0, labels: {gateway.networking.k8s.io/gateway-name: wp}}
spec:
  serviceAccountName: wp
  nodeName: node-2
  containers: [{name: istio-proxy, image: none}]
status:
  phase: Running
  conditions: [{type: Ready, status: "True"}]
  podIPs: [{ip: "$WPIP"}]
YAML
mkdir -p "$STATE"
make_ca "$STATE"
start_meshd "$CFG" "$STATE" "$WORK/meshd.log"
(umask 077; "$BIN/meshd" token --state-dir "$STATE" --node node-2 >"$WORK/token-node-2")
for who in client server; do
    $MKCERTS leaf --ca "$STATE" --cert "$WORK/$who.pem" --key "$WORK/$who-key.pem" --uri "$TD/$who"
done
start_bg "$WORK/dest.out" ip netns exec "$N2" $HH serve --bind $SERVER_IP --ca "$STATE/root-cert.pem" \
    --cert "$WORK/server.pem" --key "$WORK/server-key.pem" --log "$WORK/dest.log"
wait_for grep -q listening "$WORK/dest.log"
start_bg "$WORK/wp.log" ip netns exec "$WPNS" "$BIN/waypoint" --xds-address "$MESHD_ADDR" \
    --root-cert "$STATE/root-cert.pem" --token "$WORK/token-node-2" --node node-2 \
    --namespace default --name wp --service-account wp
WPPID=$LAST_PID
ready() { [ "$(ip netns exec $WPNS curl -s -o /dev/null -w '%{http_code}' http://$WPIP:15021/healthz/ready)" = 200 ]; }
check "the waypoint becomes ready from meshd (certificate and every config type)" wait_for ready ||
    cat "$WORK/wp.log"
dump() { ip netns exec "$WPNS" curl -s http://127.0.0.1:15000/config_dump; }
dump >"$WORK/dump0.json"
check "its certificate is its own service account's, from meshd's CA" $PY -c "
import json; d = json.load(open('$WORK/dump0.json'))
assert d['config']['identity'] == '$TD/wp', d['config']
assert [s['hostname'] for s in d['services']] == ['echo.default.svc.cluster.local'], d['services']"

# One tunnel, one HTTP/1.1 connection inside it, three requests with config changes between.
start_bg "$WORK/client.out" ip netns exec "$N2" $HH client --addr $WPIP --ca "$STATE/root-cert.pem" \
    --cert "$WORK/client.pem" --key "$WORK/client-key.pem" --expect-san "$TD/wp" \
    --authority $VIP:80 --host echo.default --timeout 40 \
    --request "GET /x" --request "WAIT $WORK/go1" --request "GET /x" \
    --request "WAIT $WORK/go2" --request "GET /y"
CPID=$LAST_PID
lines() { grep -c '^{' "$WORK/client.out" 2>/dev/null || true; }
line() { sed -n "$1p" "$WORK/client.out"; }
field() { $PY -c "import json,sys; r=json.loads(sys.argv[1]); b=json.loads(r['body']) if r.get('body','').startswith('{') else {}; h=dict(b.get('headers', [])); print($2)" "$1"; }
wait_for sh -c "[ \$(grep -c '^{' '$WORK/client.out' 2>/dev/null || echo 0) -ge 1 ]"
check "request 1 (GET /x) is served: 200 from the server" [ "$(field "$(line 1)" "r['status'], b.get('path')")" = "200 /x" ]

cat >"$CFG/deny.yaml" <<YAML
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-x, namespace: default}
spec:
  targetRefs: [{group: gateway.networking.k8s.io, kind: Gateway, name: wp}]
  action: DENY
  rules:
  - to: [{operation: {paths: ["/x"]}}]
YAML
has_policy() { dump | $PY -c "import json,sys; sys.exit(0 if any(p['name']=='deny-x' for p in json.load(sys.stdin)['policies']) else 1)"; }
t0=$(date +%s%N)
check "the DENY policy reaches the waypoint" wait_for has_policy
echo "policy at the waypoint after $(( ($(date +%s%N) - t0) / 1000000 )) ms"
touch "$WORK/go1"
wait_for sh -c "[ \$(grep -c '^{' '$WORK/client.out' 2>/dev/null || echo 0) -ge 2 ]"
check "request 2, same connection: 403 RBAC: access denied" \
    [ "$(field "$(line 2)" "r['status'], r['body']")" = "403 RBAC: access denied" ]

cat >"$CFG/route.yaml" <<YAML
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: tag-y, namespace: default}
spec:
  parentRefs: [{group: "", kind: Service, name: echo, port: 80}]
  rules:
  - matches: [{path: {type: PathPrefix, value: /y}}]
    filters: [{type: RequestHeaderModifier, requestHeaderModifier: {set: [{name: x-route, value: tag-y}]}}]
    backendRefs: [{name: echo, port: 80}]
YAML
has_route() { dump | $PY -c "
import json,sys
d = json.load(sys.stdin)
sys.exit(0 if any('HTTPRoute/default/tag-y' in r.get('sources', []) for r in d['routes']) else 1)"; }
check "the HTTPRoute reaches the waypoint" wait_for has_route || dump | head -c 2000
touch "$WORK/go2"
wait $CPID || true
cat "$WORK/client.out"
check "request 3, same connection: the new route's header reached the server" \
    [ "$(field "$(line 3)" "r['status'], b.get('path'), h.get('x-route')")" = "200 /y tag-y" ]
check "... over the one client tunnel the test opened, and one upstream tunnel" \
    [ "$(grep -c '^connect ' "$WORK/dest.log")" = 1 ]

# A broken HTTPRoute: meshd reports it, the waypoint keeps the last good table.
printf 'apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: tag-y, namespace: default}\nspec: [\n' \
    >"$CFG/route.yaml"
check "meshd reports the broken file (file and line)" wait_for grep -q "error.*route.yaml:5: error: YAML syntax error" "$WORK/meshd.log"
sleep 1
check "... and the waypoint still has the last good route" has_route
out=$(ip netns exec "$N2" $HH client --addr $WPIP --ca "$STATE/root-cert.pem" --cert "$WORK/client.pem" \
    --key "$WORK/client-key.pem" --expect-san "$TD/wp" --authority $VIP:80 --host echo.default \
    --request "GET /y" || true)
check "... which still routes: x-route set" [ "$(field "$out" "r['status'], h.get('x-route')")" = "200 tag-y" ]

kill -TERM $WPPID
wait_for sh -c "! kill -0 $WPPID 2>/dev/null"
rc=0; wait $WPPID || rc=$?
check "SIGTERM: the waypoint exits 0 with no sanitizer report" sh -c "
[ $rc = 0 ] && ! grep -q 'Sanitizer\|runtime error' '$WORK/wp.log'"
stop_meshd "$MESHD_PID" "$WORK/meshd.log"
finish
