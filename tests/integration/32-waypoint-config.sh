#!/usr/bin/env bash
# meshd serves waypoints their config (issue 10 section 1, waypoint.md section 3):
# amesh.waypoint.v1.Route and .Policy over the delta ADS stream, only to a
# stream whose node metadata claims a waypoint (src/lib/xds/xds.h) that the
# node of its token runs a pod of, and only what is bound to that waypoint.
# tests/support/wp_client.py (python3-h2 + python3-protobuf, no amesh code)
# plays the waypoints and a ztunnel.
#
#   netns node-1: meshd (198.18.0.1:15012)
#   netns node-2: the clients; node-2 runs waypoint pods wp-a and wp-b
#
# 1. wp-a gets exactly the Routes of svc-a's ports and Policy pol-a (targets its
#    Gateway); wp-b exactly svc-b's (one from a GRPCRoute) and pol-b (targets
#    Service svc-b).
# 2. A claim on wp-a with node-1's token (no pod of wp-a on node-1) gets empty
#    Route and Policy sets and a "permission denied" line in meshd's log.
# 3. A ztunnel stream asking for Route and Policy gets no answer to them, and
#    its Authorization does not carry the targetRefs policies.
# 4. An HTTPRoute edit reaches wp-a within 1 s; a broken HTTPRoute file keeps
#    the last good table (and meshd reports it).
# 5. What the waypoint cannot serve (an AUDIT policy, a GRPCRoute mirror) is left
#    out, and meshd's log and `meshctl analyze` say so with AM0006 / AM0005.
. "$(dirname "$0")/lib.sh"
require_root
topo_two_nodes 4
CFG=$WORK/config
STATE=$WORK/state
PB=$WORK/pb
WPC="$PY $ROOT/tests/support/wp_client.py"
mkdir -p "$PB"
write_k8s_config "$CFG"
waypoint() { # name
    cat <<YAML
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: $1, namespace: default}
spec:
  gatewayClassName: istio-waypoint
  listeners:
  - {name: mesh, port: 15008, protocol: HBONE}
---
apiVersion: v1
kind: Pod
metadata: {name: $1-0, namespace: default, uid: 0c11e7e0-$1, labels: {gateway.networking.k8s.io/gateway-name: $1}}
spec:
  serviceAccountName: $1
  nodeName: node-2
  containers: [{name: istio-proxy, image: none}]
status:
  phase: Running
  conditions: [{type: Ready, status: "True"}]
---
apiVersion: v1
kind: Service
metadata: {name: svc-${1#wp-}, namespace: default, labels: {istio.io/use-waypoint: $1}}
spec:
  selector: {app: echo}
  clusterIP: 198.19.0.$2
  ports: [{name: http, port: 80, targetPort: 8080}, {name: grpc-api, port: 9090}]
---
YAML
}
{ waypoint wp-a 21; waypoint wp-b 22; } >"$CFG/waypoints.yaml"
write_route() { # path prefix of route-a
    cat >"$CFG/routes.yaml" <<YAML
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: route-a, namespace: default}
spec:
  parentRefs: [{group: "", kind: Service, name: svc-a, port: 80}]
  rules:
  - matches: [{path: {type: PathPrefix, value: $1}}]
    backendRefs: [{name: svc-a, port: 80}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: route-b, namespace: default}
spec:
  parentRefs: [{group: "", kind: Service, name: svc-b}]
  rules:
  - matches: [{headers: [{name: x-b, value: "1"}]}]
    backendRefs: [{name: svc-b, port: 80}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: grpc-b, namespace: default}
spec:
  parentRefs: [{group: "", kind: Service, name: svc-b, port: 9090}]
  rules:
  - matches: [{method: {service: pkg.Echo, method: Say}}]
    backendRefs: [{name: svc-b, port: 9090}]
YAML
}
write_route /v1
cat >"$CFG/policies.yaml" <<YAML
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: pol-a, namespace: default}
spec:
  targetRefs: [{group: gateway.networking.k8s.io, kind: Gateway, name: wp-a}]
  action: DENY
  rules:
  - to: [{operation: {methods: [DELETE], paths: ["/admin*"]}}]
    when: [{key: "request.headers[x-test]", values: ["1"]}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: pol-b, namespace: default}
spec:
  targetRefs: [{kind: Service, group: "", name: svc-b}]
  rules:
  - from: [{source: {principals: [cluster.local/ns/default/sa/client]}}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: pol-audit, namespace: default}
spec:
  targetRefs: [{group: gateway.networking.k8s.io, kind: Gateway, name: wp-a}]
  action: AUDIT
  rules: [{}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: grpc-mirror, namespace: default}
spec:
  parentRefs: [{group: "", kind: Service, name: svc-a, port: 9090}]
  rules:
  - filters: [{type: RequestMirror, requestMirror: {backendRef: {name: svc-a, port: 9090}}}]
YAML
start_meshd "$CFG" "$STATE" "$WORK/meshd.log"
for n in node-1 node-2; do
    (umask 077; "$BIN/meshd" token --state-dir "$STATE" --node "$n" >"$WORK/token-$n")
done

wpc() { # state-file duration node args... (in node-2's namespace)
    local state=$1 dur=$2 node=$3; shift 3
    ip netns exec "$N2" $WPC --addr "$MESHD_ADDR" --root "$STATE/root-cert.pem" --pb-dir "$PB" \
        --token "$WORK/token-$node" --node-name "$node" --state "$state" --duration "$dur" "$@"
}
# q state-file python-expression: evaluates it on the state (d) and prints the result
q() {
    $PY -c "
import json, sys
try:
    d = json.load(open(sys.argv[1]))
except (OSError, ValueError):
    d = {'responses': {}, 'held': {'route': {}, 'policy': {}, 'address': {}, 'authorization': {}}}
r = d['held']['route']; p = d['held']['policy']; n = d['responses']
print($2)" "$1"
}
both_answered() { [ "$(q "$1" "n.get('route', 0) >= 1 and n.get('policy', 0) >= 1")" = True ]; }

# ---- 1. each waypoint gets its own -----------------------------------------------------
A=$WORK/wp-a.json
wpc "$A" 30 node-2 --waypoint wp-a --sa wp-a --stop-file "$WORK/stop-a" >"$WORK/wp-a.out" 2>&1 &
A_PID=$!
check "wp-a gets its Route and Policy responses" wait_secs 10 both_answered "$A"
check "wp-a holds exactly the Routes of svc-a's two ports" test "$(q "$A" "sorted(r)")" = \
    "['default/svc-a.default.svc.cluster.local:80', 'default/svc-a.default.svc.cluster.local:9090']"
check "wp-a holds exactly Policy default/pol-a" test "$(q "$A" "sorted(p)")" = "['default/pol-a']"
check "wp-a's route on port 80 is route-a's PathPrefix /v1 (port 9090: the default route)" \
    test "$(q "$A" "([x['match'].get('prefix') for x in r['default/svc-a.default.svc.cluster.local:80']['value']['rules']], \
len(r['default/svc-a.default.svc.cluster.local:9090']['value'].get('rules', [])), \
r['default/svc-a.default.svc.cluster.local:9090']['value']['protocol'])")" = "(['/v1'], 0, 'GRPC')"
check "pol-a decodes: DENY, Gateway wp-a, methods, path prefix, header condition" \
    test "$(q "$A" "(lambda v: (v['action'], v['targets'], v['rules'][0]['clauses'][0]['matches'][0]['methods'][0]['exact'], \
v['rules'][0]['clauses'][0]['matches'][0]['paths'][0]['prefix'], v['rules'][0]['clauses'][1]['matches'][0]['headers'][0]['name']))(p['default/pol-a']['value'])")" \
    = "('DENY', [{'gateway': 'wp-a'}], 'DELETE', '/admin', 'x-test')"
check "wp-a also gets the shared Address resources" test "$(q "$A" "len(d['held']['address']) > 0")" = True
B=$WORK/wp-b.json
wpc "$B" 3 node-2 --waypoint wp-b --sa wp-b >"$WORK/wp-b.out" 2>&1
check "wp-b holds exactly svc-b's Routes and pol-b (a Service target)" test \
    "$(q "$B" "(sorted(r), sorted(p), p['default/pol-b']['value']['targets'][0]['service']['hostname'])")" = \
    "(['default/svc-b.default.svc.cluster.local:80', 'default/svc-b.default.svc.cluster.local:9090'], ['default/pol-b'], 'svc-b.default.svc.cluster.local')"
check "wp-b's port 9090 table: GRPCRoute grpc-b's exact /pkg.Echo/Say first, then route-b (all ports)" test \
    "$(q "$B" "(lambda v: (v['protocol'], v['rules'][0]['match'], v['sources']))(r['default/svc-b.default.svc.cluster.local:9090']['value'])")" = \
    "('GRPC', {'exact': '/pkg.Echo/Say'}, ['GRPCRoute/default/grpc-b', 'HTTPRoute/default/route-b'])"

# ---- 2. a claim the token's node cannot back ----------------------------------------------
C=$WORK/claim.json
wpc "$C" 3 node-1 --waypoint wp-a --sa wp-a >"$WORK/claim.out" 2>&1
check "wp-a claimed from node-1 (no pod of it there): answered, but no Route and no Policy" \
    test "$(q "$C" "(n['route'] >= 1, n['policy'] >= 1, len(r), len(p), len(d['held']['address']) > 0)")" = \
    "(True, True, 0, 0, True)"
check "meshd logs the denied claim" grep -q \
    'claims waypoint default/wp-a as service account wp-a, but node node-1 runs no pod of it .*permission denied' \
    "$WORK/meshd.log"
# The claim follows the pods: a replica of wp-a scheduled on node-1 grants it, its removal
# takes everything back (removals pushed), each within 1 s.
M=$WORK/moving.json
wpc "$M" 20 node-1 --waypoint wp-a --sa wp-a --stop-file "$WORK/stop-m" >"$WORK/moving.out" 2>&1 &
M_PID=$!
check "node-1's claim is answered (empty)" wait_secs 10 both_answered "$M"
cat >"$CFG/wp-a-node1.yaml" <<YAML
apiVersion: v1
kind: Pod
metadata: {name: wp-a-1, namespace: default, uid: 0c11e7e0-wp-a-1, labels: {gateway.networking.k8s.io/gateway-name: wp-a}}
spec:
  serviceAccountName: wp-a
  nodeName: node-1
  containers: [{name: istio-proxy, image: none}]
status:
  phase: Running
YAML
T0=$(date +%s%N)
granted() { [ "$(q "$M" "(len(r), sorted(p))")" = "(2, ['default/pol-a'])" ]; }
check "a wp-a pod on node-1: node-1's claim now gets wp-a's Routes and Policy" wait_secs 5 granted
MS=$(( ($(date +%s%N) - T0) / 1000000 ))
check "within 1 s ($MS ms)" test "$MS" -le 1000
rm "$CFG/wp-a-node1.yaml"
T0=$(date +%s%N)
revoked() { [ "$(q "$M" "(len(r), len(p))")" = "(0, 0)" ]; }
check "the pod gone: everything is removed from node-1's stream" wait_secs 5 revoked
MS=$(( ($(date +%s%N) - T0) / 1000000 ))
check "within 1 s ($MS ms)" test "$MS" -le 1000
touch "$WORK/stop-m"
wait "$M_PID"
S=$WORK/wrong-sa.json
wpc "$S" 3 node-2 --waypoint wp-a --sa default >"$WORK/wrong-sa.out" 2>&1
check "wp-a claimed as another service account: no Route, no Policy" \
    test "$(q "$S" "(len(r), len(p))")" = "(0, 0)"

# ---- 3. ztunnel never gets them ------------------------------------------------------------
Z=$WORK/ztunnel.json
wpc "$Z" 3 node-2 --no-waypoint >"$WORK/ztunnel.out" 2>&1
check "a ztunnel asking for Route and Policy gets no response to them (Address: yes)" \
    test "$(q "$Z" "(n['route'], n['policy'], n['address'] >= 1)")" = "(0, 0, True)"
check "its Authorization carries neither targetRefs policy" \
    test "$(q "$Z" "[k for k in d['held']['authorization'] if 'pol-' in k]")" = "[]"
check "meshd logs that it claims no waypoint" grep -q 'asked for type.googleapis.com/amesh.waypoint.v1.Route but claims no waypoint' "$WORK/meshd.log"

# ---- 4. edits reach the waypoint -----------------------------------------------------------
dump_a() { # on failure: what wp-a holds and meshd's last complaints
    $PY -c "import json,sys; print(json.dumps(json.load(open(sys.argv[1]))['held']['route']))" "$A"
    grep -i 'error\|warn' "$WORK/meshd.log" | tail -5
}
route_prefix() { q "$A" "r['default/svc-a.default.svc.cluster.local:80']['value']['rules'][0]['match'].get('prefix')"; }
T0=$(date +%s%N)
write_route /v2
has_v2() { [ "$(route_prefix)" = /v2 ]; }
check "the HTTPRoute edit reaches wp-a" wait_secs 5 has_v2
MS=$(( ($(date +%s%N) - T0) / 1000000 ))
say "HTTPRoute edit -> wp-a holds it after $MS ms"
check "within 1 s ($MS ms)" test "$MS" -le 1000
[ "$MS" -le 1000 ] || dump_a
BEFORE=$(q "$A" "n['route']")
printf 'apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: route-a\n  spec: [\n' >"$CFG/routes.yaml"
check "meshd reports the broken HTTPRoute file" wait_secs 5 grep -q 'routes.yaml.*error' "$WORK/meshd.log"
sleep 0.5
check "wp-a keeps the last good table (/v2, both routes, no new Route push)" test \
    "$(route_prefix) $(q "$A" "(len(r), n['route'] == $BEFORE)")" = "/v2 (2, True)"

# ---- 5. refused, and said so -------------------------------------------------------------------
check "neither the AUDIT policy nor the mirroring GRPCRoute reached wp-a" test \
    "$(q "$A" "('default/pol-audit' in p, r['default/svc-a.default.svc.cluster.local:9090']['value'].get('rules', []))")" = \
    "(False, [])"
rc=0
"$BIN/meshctl" analyze -f "$CFG" >"$WORK/analyze.txt" 2>&1 || rc=$?
check "meshctl analyze: AM0006 for the AUDIT policy, AM0005 for the mirror (with file:line)" sh -c "
    grep -Eq 'policies.yaml:[0-9]+: warning: .*AUDIT.*AM0006' '$WORK/analyze.txt' &&
    grep -Eq 'policies.yaml:[0-9]+: error: GRPCRoute default/grpc-mirror: .*RequestMirror.*AM0005' '$WORK/analyze.txt'" \
    || cat "$WORK/analyze.txt"
check "meshd logs both" sh -c "grep -q 'AM0006' '$WORK/meshd.log' && grep -q 'GRPCRoute default/grpc-mirror.*AM0005' '$WORK/meshd.log'"
touch "$WORK/stop-a"
wait "$A_PID"
check "wp-a's stream had no error" test "$(q "$A" "d['error']")" = None
stop_meshd "$MESHD_PID" "$WORK/meshd.log"
finish
