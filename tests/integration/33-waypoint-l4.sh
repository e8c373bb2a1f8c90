#!/usr/bin/env bash
# The waypoint binary on the L4 path (issue 10 section 3; waypoint.md 1-3): ztunnel sends bound
# traffic to it over HBONE, it terminates HBONE, selects the bound service or workload from
# the CONNECT's :authority, and opens its own HBONE tunnel, from the waypoint's identity, to
# the endpoint's ztunnel. Local-config mode; the same file for both ztunnels and the waypoint.
#
#   node-1: ztunnel, client 198.18.250.20 (outbound captured)
#   node-2: ztunnel, server 198.18.250.10 (echo on 8080, an HTTP server on 8081)
#   pod wp-1 198.18.251.30 behind node-2 (its own namespace): the waypoint binary
#   services: echo VIP .10:80 -> server:8080 and web :81 -> server:8081 (waypoint wp);
#             direct VIP .11:80 (no waypoint); wp VIP .20:15008 (the waypoint's service)
#   the workload server itself has waypoint wp (pod-addressed traffic)
#
# Checks: service and pod traffic round-trip through the waypoint; the destination ztunnel's
# access log names the waypoint's identity as src.identity; bytes pass through unchanged on
# TCP/DETECT ports, while the HTTP1 port (81) is served by the HTTP/1.1 engine (200 from an
# HTTP server, an access line per request in Envoy's format, the DENY policy's 403); CONNECTs to what is not
# bound get 503, malformed ones 400; a flood of half-open handshakes is capped per source;
# the local config's routes and policies; the waypoint's readiness, /config_dump and a clean
# SIGTERM.
. "$(dirname "$0")/lib.sh"
require_root
topo_two_nodes 4
make_ca "$WORK/ca"
WPIP=198.18.251.30 WPNS=amt-wp-$ID VIP_DIRECT=198.19.0.11
TD=spiffe://cluster.local/ns/default/sa
HBONE="$PY $ROOT/tests/support/hbone_client.py"
MKCERTS="$PY $ROOT/tests/support/mkcerts.py"
add_pod "$N2" "$WPNS" $WPIP 198.18.251.1

cat >"$WORK/mesh.yaml" <<YAML
workloads:
- uid: Kubernetes//Pod/default/client
  name: client
  namespace: default
  serviceAccount: client
  addresses: ["$CLIENT_IP"]
  node: node-1
  tunnelProtocol: HBONE
- uid: Kubernetes//Pod/default/server
  name: server
  namespace: default
  serviceAccount: server
  addresses: ["$SERVER_IP"]
  node: node-2
  tunnelProtocol: HBONE
  waypoint: {hostname: {namespace: default, hostname: wp.default.svc.cluster.local}, hboneMtlsPort: 15008}
  services:
    default/echo.default.svc.cluster.local: {ports: [{servicePort: 80, targetPort: 8080}, {servicePort: 81, targetPort: 8081}]}
    default/direct.default.svc.cluster.local: {ports: [{servicePort: 80, targetPort: 8080}]}
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
- name: direct
  namespace: default
  hostname: direct.default.svc.cluster.local
  addresses: ["$VIP_DIRECT"]
  ports: [{servicePort: 80, targetPort: 8080}]
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
    timeout: 2.5s
waypointPolicies:
- name: deny-admin
  namespace: default
  targets: [{gateway: wp}]
  action: DENY
  rules: [{clauses: [{matches: [{paths: [{prefix: /admin}], notMethods: [{exact: GET}]}]}]}]
YAML
$MKCERTS leaf --ca "$WORK/ca" --cert "$WORK/client.pem" --key "$WORK/client-key.pem" --uri "$TD/client"

start_server "$N2" "$SERVER_IP" 8080 "$WORK/server.log"
# An HTTP/1.1 server on 8081 (the HTTP1 port 81): echoes method and path, keep-alive.
cat >"$WORK/http81.py" <<'PY'
import http.server, socketserver, sys
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def reply(self):
        n = int(self.headers.get("Content-Length") or 0)
        if n:
            self.rfile.read(n)
        body = ("%s %s from 8081\n" % (self.command, self.path)).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    do_GET = do_POST = reply
# TCPServer, not HTTPServer: its getfqdn() would wait on DNS in the netns.
socketserver.TCPServer((sys.argv[1], 8081), H).serve_forever()
PY
start_bg "$WORK/server81.log" ip netns exec "$N2" $PY "$WORK/http81.py" "$SERVER_IP"
wait_for sh -c "ip netns exec $N2 ss -Hltn 'sport = :8081' | grep -q ."
start_ztunnel "$N1" node-1 "$WORK/mesh.yaml" "$WORK/ca" "$WORK/zt1.log"
start_ztunnel "$N2" node-2 "$WORK/mesh.yaml" "$WORK/ca" "$WORK/zt2.log"
start_bg "$WORK/wp.log" ip netns exec "$WPNS" "$BIN/waypoint" --local-config "$WORK/mesh.yaml" \
    --ca-dir "$WORK/ca" --namespace default --name wp --service-account waypoint --node node-2
WPPID=$LAST_PID
ready() { ip netns exec "$WPNS" curl -s -o /dev/null -w '%{http_code}' http://$WPIP:15021/healthz/ready; }
wait_for sh -c "[ \"\$(ip netns exec $WPNS curl -s -o /dev/null -w '%{http_code}' http://$WPIP:15021/healthz/ready)\" = 200 ]" ||
    { cat "$WORK/wp.log"; }
check "the waypoint is ready on 15021 (its certificate and config)" [ "$(ready)" = 200 ]
capture_outbound "$N1"

# Sends |msg| from the client to |dst| through node-1's capture, prints what came back.
roundtrip() { # dst msg
    ip netns exec "$N1" $PY - "$CLIENT_IP" "$1" "$2" <<'PY'
import socket, sys
src, dst, msg = sys.argv[1], sys.argv[2], sys.argv[3].encode().decode("unicode_escape").encode()
host, port = dst.rsplit(":", 1)
s = socket.socket(); s.settimeout(8)
try:
    s.bind((src, 0)); s.connect((host, int(port))); s.sendall(msg); s.shutdown(socket.SHUT_WR)
    got = b""
    while True:
        b = s.recv(65536)
        if not b:
            break
        got += b
    sys.stdout.write("same" if got == msg else "differs: %r" % got)
except OSError as e:
    print("error %s" % e.__class__.__name__)
PY
}
count() { grep -c "$1" "$2" 2>/dev/null || true; }

out=$(roundtrip $VIP:80 "hello via the waypoint $RANDOM")
check "service traffic (VIP:80) round-trips through the waypoint" [ "$out" = same ]
check "... the waypoint logged it: client identity, service, the upstream server:8080" sh -c "
grep 'connection complete' '$WORK/wp.log' | grep 'src.identity=\"$TD/client\"' |
grep 'dst.addr=$VIP:80' | grep 'dst.service=\"echo.default.svc.cluster.local\"' | grep -q 'upstream=$SERVER_IP:8080'"
check "... the destination ztunnel saw the waypoint's identity as the source" sh -c "
grep 'connection complete' '$WORK/zt2.log' | grep 'direction=\"inbound\"' |
grep -q 'src.identity=\"$TD/waypoint\"'"
check "... and no connection from the client's identity reached it directly" sh -c "
! grep 'connection complete' '$WORK/zt2.log' | grep 'direction=\"inbound\"' | grep -q 'src.identity=\"$TD/client\"'"

# The HTTP1 port (81): the waypoint's HTTP/1.1 engine serves each request (l7_in.c).
web() { # method path -> "status body"
    ip netns exec "$N1" curl -s -m 8 --interface "$CLIENT_IP" -X "$1" -w ' %{http_code}' \
        "http://$VIP:81$2" || true
}
out=$(web GET /hello)
echo "GET /hello via the waypoint: $out"
check "an HTTP/1.1 request on the HTTP1 port gets the server's 200 through the waypoint" \
    [ "$out" = "GET /hello from 8081
 200" ]
check "... the waypoint's access log has a line for the request (Envoy's format: method, path, status, upstream)" sh -c "
grep -F '\"GET /hello HTTP/1.1\" 200 - via_upstream ' '$WORK/wp.log' |
grep -qF '\"$SERVER_IP:8081\" inbound-vip|81|http|echo.default.svc.cluster.local - $VIP:81 $CLIENT_IP:'"
# (ztunnel logs a connection when it ends: the engine closes its upstream when curl has gone.)
check "... the server's ztunnel saw the waypoint's identity on 8081" wait_for sh -c "
grep 'connection complete' '$WORK/zt2.log' | grep 'direction=\"inbound\"' | grep 'dst.hbone_addr=$SERVER_IP:8081' |
grep -q 'src.identity=\"$TD/waypoint\"'"
out=$(web POST /admin/users)
echo "POST /admin/users via the waypoint: $out"
check "an L7 DENY policy (POST /admin): 403 RBAC: access denied from the waypoint" \
    [ "$out" = "RBAC: access denied 403" ]
check "... logged with status 403, the policy that denied it, no upstream" sh -c "
grep -F '\"POST /admin/users HTTP/1.1\" 403 - rbac_access_denied_matched_policy[default/deny-admin] ' '$WORK/wp.log' |
grep -qF '\"-\" - - $VIP:81'"
check "... and it never reached the server" sh -c "! grep -q '/admin' '$WORK/server81.log'"
out=$(web GET /admin/users)
check "GET /admin (not denied) is served" [ "$out" = "GET /admin/users from 8081
 200" ]

out=$(roundtrip $SERVER_IP:8080 "pod addressed $RANDOM")
check "pod-addressed traffic to a workload bound to the waypoint round-trips through it" [ "$out" = same ]
check "... the waypoint logged :authority podIP:port" sh -c "
grep 'connection complete' '$WORK/wp.log' | grep 'dst.addr=$SERVER_IP:8080' | grep -q 'dst.workload=\"server\"'"

# Straight to the waypoint with the client's certificate (python3-h2, no amesh code), from
# node-2 where nothing is captured.
hb() { # expect authority [args]
    local e=$1 a=$2; shift 2
    ip netns exec "$N2" $HBONE --addr $WPIP --ca "$WORK/ca/root-cert.pem" \
        --cert "$WORK/client.pem" --key "$WORK/client-key.pem" --expect-san "$TD/waypoint" \
        --timeout 10 --authority "$a" --expect "$e" "$@"
}
check "an independent HBONE client gets an echo through the waypoint (VIP:80)" hb echo $VIP:80
check "a service without a waypoint: 503" hb status:503 $VIP_DIRECT:80
check "a port the bound service does not have: 503" hb status:503 $VIP:82
check "a workload not bound to the waypoint: 503" hb status:503 $CLIENT_IP:8080
check "an unknown address: 503" hb status:503 198.18.99.99:80
check "an authority that is not IP:port: 400" hb status:400 echo.default.svc.cluster.local:80
check "a method other than CONNECT: 400" hb status:400 $VIP:80 --method GET
check "refusals are logged with their reason" grep -q "service is not bound to this waypoint" "$WORK/wp.log"

# Half-open handshakes from one address (the handshake guard, as ztunnel's 15008): the
# waypoint closes what is over the per-source cap (64) at once and keeps serving others.
start_bg "$WORK/flood.out" ip netns exec "$N2" $PY "$ROOT/tests/support/hs_flood.py" --addr $WPIP \
    --sources 198.18.251.1 --count 300 --bytes 10 --hold 4 --status "$WORK/flood.status"
FLOOD=$LAST_PID
wait_for sh -c "grep -q 'opened=300' '$WORK/flood.status' 2>/dev/null"
pending=$(ip netns exec $WPNS curl -s http://$WPIP:15020/metrics | awk '/^waypoint_hbone_pending_handshakes / {print $2}')
echo "pending handshakes during the flood: $pending"
check "a flood of 300 half-open handshakes from one address: at most 64 held" [ "${pending:-999}" -le 64 ]
check "... and a client from another address is served meanwhile" hb echo $VIP:80 --bind $SERVER_IP
wait $FLOOD || true
check "... the rest were closed by the waypoint" sh -c "
tail -1 '$WORK/flood.status' | grep -Eq 'closed_by_server=(2[3-9][0-9]|300)'"

ip netns exec "$WPNS" curl -s http://127.0.0.1:15000/config_dump >"$WORK/dump.json"
check "/config_dump lists the bound service and workload, not the others, and the identity" \
    $PY -c "
import json, sys
d = json.load(open('$WORK/dump.json'))
svcs = sorted(s['hostname'] for s in d['services'])
wls = sorted(w['name'] for w in d['workloads'])
assert svcs == ['echo.default.svc.cluster.local'], svcs
assert wls == ['server'], wls
assert d['config']['identity'] == '$TD/waypoint', d['config']
assert d['config']['ready'] is True
assert d['certificates']
"
check "/config_dump shows the local config's route table and L7 policy" $PY -c "
import json
d = json.load(open('$WORK/dump.json'))
r = d['routes']
assert len(r) == 1 and r[0]['name'] == 'default/echo.default.svc.cluster.local:81', r
assert r[0]['protocol'] == 'HTTP1', r[0]
p = d['policies']
assert len(p) == 1 and p[0]['name'] == 'deny-admin' and p[0]['action'] == 'DENY', p
"
sed 's/protocol: HTTP1/protocol: SCTP/' "$WORK/mesh.yaml" >"$WORK/bad.yaml"
rc=0; ip netns exec "$WPNS" "$BIN/waypoint" --local-config "$WORK/bad.yaml" --ca-dir "$WORK/ca" \
    --namespace default --name wp --service-account waypoint >"$WORK/bad.log" 2>&1 || rc=$?
cat "$WORK/bad.log"
check "a bad route in the local config: refused at start, naming its line and field" sh -c "
[ $rc != 0 ] && grep -Eq 'bad.yaml:[0-9]+: routes\[0\]: protocol: \"SCTP\" is not a value of amesh.waypoint.v1.Protocol' '$WORK/bad.log'"
check "metrics on 15020 count the connections" sh -c "
ip netns exec $WPNS curl -s http://$WPIP:15020/metrics | grep -Eq '^waypoint_connections_total ([4-9]|[1-9][0-9]+)\$'"

kill -TERM $WPPID
wait_for sh -c "! kill -0 $WPPID 2>/dev/null"
rc=0; wait $WPPID || rc=$?
check "SIGTERM: the waypoint drains and exits 0 with no sanitizer report" sh -c "
[ $rc = 0 ] && ! grep -q 'Sanitizer\|runtime error' '$WORK/wp.log'"
finish
