#!/usr/bin/env bash
# The waypoint's telemetry (issue 10 section 3; istio-ambient.md 6.3): Istio's request
# metrics with reporter "waypoint", istio_tcp_* for passthrough, the access log in Istio's
# Envoy text format and (--log-format json) its JSON keys. Local-config mode, real binaries:
#
#   node-1: ztunnel, client 198.18.250.20 (outbound captured)
#   node-2: ztunnel, server 198.18.250.10 (echo on 8080, an HTTP/1.1 server on 8081)
#   pod 198.18.251.30 behind node-2: the waypoint
#   service echo VIP:80 (TCP, passthrough) and VIP:81 (HTTP1: the L7 engine), waypoint wp;
#   an L7 DENY on POST /admin*
#
# Checks: N GETs and M denied POSTs through client ztunnel -> waypoint -> server ztunnel give
# istio_requests_total == N + M in all, N with response_code 200 and M with 403, each with
# the client's principal and workload, the destination service, workload and principal;
# the three histograms count N + M (le="+Inf" == _count) and the response sizes add up;
# promtool check metrics finds nothing but Istio's unit in a name; each request has an access line that parses in the
# text format, then in JSON after a restart with --log-format json; K passthrough
# connections on the TCP port open and close K tunnels and count their bytes.
. "$(dirname "$0")/lib.sh"
require_root
command -v promtool >/dev/null || { echo "FAIL: promtool missing (Debian package prometheus)"; exit 1; }
topo_two_nodes 4
make_ca "$WORK/ca"
WPIP=198.18.251.30 WPNS=amt-wp-$ID
TD=spiffe://cluster.local/ns/default/sa
PQ="$PY $ROOT/tests/support/prom_query.py"
AL="$PY $ROOT/tests/support/envoy_access_log.py"
N=12 M=3 K=4
add_pod "$N2" "$WPNS" $WPIP 198.18.251.1

cat >"$WORK/mesh.yaml" <<YAML
workloads:
- uid: Kubernetes//Pod/default/client
  name: client
  namespace: default
  serviceAccount: client
  workloadName: client
  canonicalName: client
  canonicalRevision: v1
  addresses: ["$CLIENT_IP"]
  node: node-1
  tunnelProtocol: HBONE
- uid: Kubernetes//Pod/default/server
  name: server
  namespace: default
  serviceAccount: server
  workloadName: server
  canonicalName: echo
  canonicalRevision: v2
  addresses: ["$SERVER_IP"]
  node: node-2
  tunnelProtocol: HBONE
  services:
    default/echo.default.svc.cluster.local: {ports: [{servicePort: 80, targetPort: 8080}, {servicePort: 81, targetPort: 8081}]}
- uid: Kubernetes//Pod/default/wp-1
  name: wp-1
  namespace: default
  serviceAccount: waypoint
  addresses: ["$WPIP"]
  node: node-2
  tunnelProtocol: HBONE
  services:
    default/wp.default.svc.cluster.local: {ports: [{servicePort: 15008, targetPort: 15008}]}
services:
- name: echo
  namespace: default
  hostname: echo.default.svc.cluster.local
  addresses: ["$VIP"]
  ports: [{servicePort: 80, targetPort: 8080}, {servicePort: 81, targetPort: 8081}]
  waypoint: {hostname: {namespace: default, hostname: wp.default.svc.cluster.local}, hboneMtlsPort: 15008}
- name: wp
  namespace: default
  hostname: wp.default.svc.cluster.local
  addresses: ["198.19.0.20"]
  ports: [{servicePort: 15008, targetPort: 15008}]
policies: []
routes:
- service: {namespace: default, hostname: echo.default.svc.cluster.local}
  port: 81
  protocol: HTTP1
  rules:
  - name: all
    match: {prefix: /}
    backends: [{service: {namespace: default, hostname: echo.default.svc.cluster.local}, port: 81, weight: 1}]
waypointPolicies:
- name: deny-admin
  namespace: default
  targets: [{gateway: wp}]
  action: DENY
  rules: [{clauses: [{matches: [{paths: [{prefix: /admin}], methods: [{exact: POST}]}]}]}]
YAML

start_server "$N2" "$SERVER_IP" 8080 "$WORK/server.log"
cat >"$WORK/http81.py" <<'PY'
import http.server, socketserver, sys
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        body = b"hello from 8081\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
socketserver.TCPServer((sys.argv[1], 8081), H).serve_forever()
PY
start_bg "$WORK/server81.log" ip netns exec "$N2" $PY "$WORK/http81.py" "$SERVER_IP"
wait_for sh -c "ip netns exec $N2 ss -Hltn 'sport = :8081' | grep -q ."
start_ztunnel "$N1" node-1 "$WORK/mesh.yaml" "$WORK/ca" "$WORK/zt1.log"
start_ztunnel "$N2" node-2 "$WORK/mesh.yaml" "$WORK/ca" "$WORK/zt2.log"
capture_outbound "$N1"

start_waypoint() { # log [flags]
    local log=$1; shift
    start_bg "$log" ip netns exec "$WPNS" "$BIN/waypoint" --local-config "$WORK/mesh.yaml" \
        --ca-dir "$WORK/ca" --namespace default --name wp --service-account waypoint --node node-2 "$@"
    WPPID=$LAST_PID
    wait_for sh -c "[ \"\$(ip netns exec $WPNS curl -s -o /dev/null -w '%{http_code}' http://$WPIP:15021/healthz/ready)\" = 200 ]"
}
stop_waypoint() { # log
    kill -TERM $WPPID
    local rc=0
    wait $WPPID || rc=$?
    check "SIGTERM: the waypoint exits 0 with no sanitizer report ($1)" sh -c "
    [ $rc = 0 ] && ! grep -q 'Sanitizer\|runtime error' '$1'"
}
metrics() { ip netns exec "$WPNS" curl -s http://$WPIP:15020/metrics; }
web() { # method path -> status
    ip netns exec "$N1" curl -s -o /dev/null -m 8 --interface "$CLIENT_IP" -X "$1" -w '%{http_code}' \
        -A amesh-test/1.0 "http://$VIP:81$2" || true
}
# Sends |msg| through node-1's capture to VIP:80 and prints "same" when it comes back.
roundtrip() {
    ip netns exec "$N1" $PY - "$CLIENT_IP" "$VIP" "$1" <<'PY'
import socket, sys
s = socket.socket(); s.settimeout(8)
s.bind((sys.argv[1], 0)); s.connect((sys.argv[2], 80)); s.sendall(sys.argv[3].encode())
s.shutdown(socket.SHUT_WR)
got = b""
while True:
    b = s.recv(65536)
    if not b:
        break
    got += b
print("same" if got == sys.argv[3].encode() else "differs")
PY
}

start_waypoint "$WORK/wp.log"
ok=0 denied=0
for i in $(seq $N); do [ "$(web GET /hello/$i)" = 200 ] && ok=$((ok + 1)); done
for i in $(seq $M); do [ "$(web POST /admin/$i)" = 403 ] && denied=$((denied + 1)); done
check "$N GETs answered 200 and $M POST /admin answered 403 through the waypoint" \
    [ "$ok,$denied" = "$N,$M" ]
metrics >"$WORK/m1.txt"
grep '^istio_requests_total' "$WORK/m1.txt" || true
q() { $PQ "$@" <"$WORK/m1.txt"; }
check "istio_requests_total sums to the $((N + M)) requests sent, all reporter waypoint" sh -c "
[ \"\$($PQ istio_requests_total <'$WORK/m1.txt')\" = $((N + M)) ] &&
[ \"\$($PQ istio_requests_total reporter=waypoint <'$WORK/m1.txt')\" = $((N + M)) ]"
COMMON="reporter=waypoint source_principal=$TD/client source_workload=client source_workload_namespace=default
source_app=client source_version=v1 destination_service=echo.default.svc.cluster.local
destination_service_name=echo destination_service_namespace=default request_protocol=http
connection_security_policy=mutual_tls grpc_response_status="
check "... $N with response_code 200: the client's principal and workload, the destination service, workload and principal" \
    [ "$(q istio_requests_total $COMMON response_code=200 response_flags=- destination_workload=server \
        destination_app=echo destination_version=v2 destination_principal=$TD/server)" = $N ]
check "... $M with response_code 403 (denied by the waypoint: no destination workload)" \
    [ "$(q istio_requests_total $COMMON response_code=403 response_flags=- destination_workload=unknown)" = $M ]
for h in istio_request_duration_milliseconds istio_request_bytes istio_response_bytes; do
    check "$h counts the $((N + M)) requests (_count and le=\"+Inf\")" sh -c "
    [ \"\$($PQ ${h}_count <'$WORK/m1.txt')\" = $((N + M)) ] &&
    [ \"\$($PQ ${h}_bucket le=+Inf <'$WORK/m1.txt')\" = $((N + M)) ]"
done
check "istio_response_bytes_sum: $N bodies of 16 bytes and $M of 19 (RBAC: access denied)" \
    [ "$(q istio_response_bytes_sum)" = $((N * 16 + M * 19)) ]
check "the duration histogram has Envoy's buckets (0.5 ... 3600000)" sh -c "
grep -q '^istio_request_duration_milliseconds_bucket{.*,le=\"0.5\"}' '$WORK/m1.txt' &&
grep -q '^istio_request_duration_milliseconds_bucket{.*,le=\"3600000\"}' '$WORK/m1.txt' &&
[ \"\$(grep -c '^istio_request_duration_milliseconds_bucket{.*response_code=\"200\"' '$WORK/m1.txt')\" = 20 ]"
# promtool: no parse error (exit 1) and no lint finding but one: Istio's own name
# istio_request_duration_milliseconds is not in seconds (exit 3 with that line only). The name
# is what Istio's dashboards and alerts query, so it stays.
promtool_ok() { # file
    local rc=0
    promtool check metrics <"$1" >"$1.promtool" 2>&1 || rc=$?
    cat "$1.promtool"
    [ $rc = 0 ] && return 0
    [ $rc = 3 ] && [ -z "$(sed 's/istio_request_duration_milliseconds use base unit "seconds" instead of "milliseconds"//g' "$1.promtool" | tr -d '[:space:]')" ]
}
check "promtool check metrics: clean (but Istio's milliseconds in a name)" promtool_ok "$WORK/m1.txt"

n=$($AL text <"$WORK/wp.log")
check "one access line per request, each parsing as Istio's Envoy text format ($n)" [ "$n" = $((N + M)) ]
check "... the GETs: 200, via_upstream, the user agent, the upstream host and Istio's cluster name" [ \
    "$($AL text method=GET response_code=200 response_flags=- response_code_details=via_upstream \
       protocol=HTTP/1.1 user_agent=amesh-test/1.0 authority=$VIP:81 upstream_host=$SERVER_IP:8081 \
       upstream_cluster='inbound-vip|81|http|echo.default.svc.cluster.local' bytes_sent=16 \
       downstream_local_address=$VIP:81 route_name=all <"$WORK/wp.log")" = $N ]
check "... the denied POSTs: 403 and the policy that denied them, no upstream" [ \
    "$($AL text method=POST response_code=403 \
       'response_code_details=rbac_access_denied_matched_policy[default/deny-admin]' upstream_host=- \
       <"$WORK/wp.log")" = $M ]

# Passthrough on the TCP port: istio_tcp_* with reporter waypoint.
same=0
for i in $(seq $K); do [ "$(roundtrip "tcp payload $i")" = same ] && same=$((same + 1)); done
check "$K connections to the TCP port round-trip through the waypoint" [ $same = $K ]
bytes=0; for i in $(seq $K); do bytes=$((bytes + ${#i} + 12)); done
TCPL="reporter=waypoint source_principal=$TD/client destination_workload=server destination_principal=$TD/server destination_service=echo.default.svc.cluster.local request_protocol=tcp"
wait_for sh -c "ip netns exec $WPNS curl -s http://$WPIP:15020/metrics | $PQ istio_tcp_connections_closed_total $TCPL | grep -qx $K"
metrics >"$WORK/m2.txt"
grep '^istio_tcp' "$WORK/m2.txt" || true
check "istio_tcp_connections_opened_total and _closed_total: $K each" sh -c "
[ \"\$($PQ istio_tcp_connections_opened_total $TCPL <'$WORK/m2.txt')\" = $K ] &&
[ \"\$($PQ istio_tcp_connections_closed_total $TCPL <'$WORK/m2.txt')\" = $K ]"
check "istio_tcp_received_bytes_total and _sent_bytes_total: the $bytes bytes each way" sh -c "
[ \"\$($PQ istio_tcp_received_bytes_total $TCPL <'$WORK/m2.txt')\" = $bytes ] &&
[ \"\$($PQ istio_tcp_sent_bytes_total $TCPL <'$WORK/m2.txt')\" = $bytes ]"
check "the HTTP requests are not counted as TCP connections" \
    [ "$($PQ istio_tcp_connections_opened_total <"$WORK/m2.txt")" = $K ]
check "promtool check metrics: clean with TCP series too" promtool_ok "$WORK/m2.txt"
# meshctl waypoint-config against this waypoint's admin port (the cluster's is test 34).
WC="ip netns exec $WPNS $BIN/meshctl waypoint-config --admin 127.0.0.1:15000"
$WC routes >"$WORK/wc-routes.txt" 2>&1 || true
$WC policies >"$WORK/wc-pols.txt" 2>&1 || true
cat "$WORK/wc-routes.txt" "$WORK/wc-pols.txt"
check "meshctl waypoint-config routes: the route table, one row per rule" sh -c "
head -1 '$WORK/wc-routes.txt' | grep -Eq '^NAMESPACE +SERVICE +PORT +PROTOCOL +RULE +MATCH +ACTION\$' &&
grep -Eq '^default +echo +81 +HTTP1 +all +prefix / +echo:81\$' '$WORK/wc-routes.txt'"
check "meshctl waypoint-config policies: the L7 policy" sh -c "
head -1 '$WORK/wc-pols.txt' | grep -Eq '^NAMESPACE +POLICY NAME +ACTION +TARGETS +RULES\$' &&
grep -Eq '^default +deny-admin +DENY +gateway wp +1\$' '$WORK/wc-pols.txt'"
check "meshctl waypoint-config workloads -o json: the bound workloads" sh -c "
$WC workloads -o json | $PY -c 'import json,sys; assert [w[\"name\"] for w in json.load(sys.stdin)] == []'"
check "meshctl waypoint-config services: the bound service" sh -c "
$WC services | grep -Eq '^default +echo +$VIP '"
ip netns exec "$WPNS" curl -s http://127.0.0.1:15000/config_dump >"$WORK/dump.json"
check "meshctl waypoint-config --file of a saved dump prints what --admin printed" sh -c "
$BIN/meshctl waypoint-config routes --file '$WORK/dump.json' | cmp -s - '$WORK/wc-routes.txt'"
stop_waypoint "$WORK/wp.log"

# JSON: Istio's keys, numbers as numbers, absent values null.
start_waypoint "$WORK/wp-json.log" --log-format json
[ "$(web GET /json)" = 200 ] || true
[ "$(web POST /admin/json)" = 403 ] || true
sleep 0.2
grep '^{"authority"' "$WORK/wp-json.log" | head -2
check "--log-format json: an access object per request with Istio's keys" \
    [ "$($AL json <"$WORK/wp-json.log")" = 2 ]
check "... fields as the text format has them" sh -c "
[ \"\$($AL json path=/json response_code=200 response_flags=- x_forwarded_for=- upstream_host=$SERVER_IP:8081 <'$WORK/wp-json.log')\" = 1 ] &&
[ \"\$($AL json path=/admin/json response_code=403 'response_code_details=rbac_access_denied_matched_policy[default/deny-admin]' <'$WORK/wp-json.log')\" = 1 ]"
check "... and the waypoint's own log lines are JSON too" sh -c "
grep -q '^{\"level\":\"info\"' '$WORK/wp-json.log'"
stop_waypoint "$WORK/wp-json.log"
finish
