#!/usr/bin/env bash
# Waypoint failures under load (issue 10 sections 3 and 5), real binaries: two waypoint
# replicas of one waypoint, two endpoints of the service behind it, HTTP/1.1 clients through
# the client's ztunnel, one connection per request, 6 at a time, each request held 150 ms by
# the server (so requests are in flight when something dies).
#
#   node-1: ztunnel, client 198.18.250.20 (outbound captured)
#   node-2: ztunnel, servers 198.18.250.10 and .11 (HTTP on 8081, "ok from <name>")
#   pods wp-1 198.18.251.30 and wp-2 198.18.252.30 behind node-2: the waypoint binary
#   service echo VIP .10:81 (HTTP1 Route) -> both servers, waypoint wp (its replicas)
#
# Checks: (1) kill -9 of replica wp-2 mid-run: failed requests <= requests in flight at the
# kill, and none of those started after it (ztunnel passes over the dead replica, whose
# connection fails, and sends that connection to wp-1); (2) kill -9 of one server mid-run: the
# waypoint's retries (connect failure, another endpoint) carry every later request to the
# other one, failures <= in flight; (3) SIGTERM of wp-1 while a request is in flight and a
# client holds an idle kept-alive connection: the request completes (200, Connection: close),
# the idle connection is closed, the waypoint exits 0 well before the drain deadline.
. "$(dirname "$0")/lib.sh"
require_root
AL="$PY $ROOT/tests/support/envoy_access_log.py"
topo_two_nodes 4
make_ca "$WORK/ca"
WP1=198.18.251.30 WP2=198.18.252.30 WPNS1=amt-wa-$ID WPNS2=amt-wb-$ID
add_pod "$N2" "$WPNS1" $WP1 198.18.251.1
add_pod "$N2" "$WPNS2" $WP2 198.18.252.1
LOAD="$PY $ROOT/tests/support/http_kill_load.py"

wl() { # name ip sa services-yaml
    printf -- '- uid: Kubernetes//Pod/default/%s\n  name: %s\n  namespace: default\n  serviceAccount: %s\n  addresses: ["%s"]\n  node: %s\n  tunnelProtocol: HBONE\n%s\n' \
        "$1" "$1" "$3" "$2" "${5:-node-2}" "$4"
}
{
    echo "workloads:"
    wl client $CLIENT_IP client "" node-1
    for s in "server $SERVER_IP" "server2 $SERVER2_IP"; do
        set -- $s
        wl "$1" "$2" server "  services:
    default/echo.default.svc.cluster.local: {ports: [{servicePort: 81, targetPort: 8081}]}"
    done
    wl wp-1 $WP1 waypoint "  services:
    default/wp.default.svc.cluster.local: {ports: [{servicePort: 15008, targetPort: 15008}]}"
    wl wp-2 $WP2 waypoint "  services:
    default/wp.default.svc.cluster.local: {ports: [{servicePort: 15008, targetPort: 15008}]}"
    cat <<YAML
services:
- name: echo
  namespace: default
  hostname: echo.default.svc.cluster.local
  addresses: ["$VIP"]
  ports: [{servicePort: 81, targetPort: 8081}]
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
waypointPolicies: []
YAML
} >"$WORK/mesh.yaml"

# An HTTP/1.1 server: /slow?ms=N waits N ms, then "ok from <name>"; threads, keep-alive.
cat >"$WORK/httpsrv.py" <<'PY'
import http.server, socketserver, sys, time, urllib.parse
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        q = urllib.parse.parse_qs(urllib.parse.urlparse(self.path).query)
        time.sleep(int(q.get("ms", ["0"])[0]) / 1000.0)
        body = ("ok from %s\n" % sys.argv[2]).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
class S(socketserver.ThreadingMixIn, socketserver.TCPServer):
    daemon_threads = True
    allow_reuse_address = True
S((sys.argv[1], 8081), H).serve_forever()
PY
start_bg "$WORK/srv1.log" ip netns exec "$N2" $PY "$WORK/httpsrv.py" "$SERVER_IP" server
start_bg "$WORK/srv2.log" ip netns exec "$N2" $PY "$WORK/httpsrv.py" "$SERVER2_IP" server2
wait_for sh -c "[ \$(ip netns exec $N2 ss -Hltn 'sport = :8081' | wc -l) = 2 ]"
start_ztunnel "$N1" node-1 "$WORK/mesh.yaml" "$WORK/ca" "$WORK/zt1.log"
start_ztunnel "$N2" node-2 "$WORK/mesh.yaml" "$WORK/ca" "$WORK/zt2.log"
start_wp() { # netns ip log
    start_bg "$3" ip netns exec "$1" "$BIN/waypoint" --local-config "$WORK/mesh.yaml" \
        --ca-dir "$WORK/ca" --namespace default --name wp --service-account waypoint --node node-2
    wait_for sh -c "[ \"\$(ip netns exec $1 curl -s -o /dev/null -w '%{http_code}' http://$2:15021/healthz/ready)\" = 200 ]" ||
        { cat "$3"; return 1; }
}
start_wp "$WPNS1" $WP1 "$WORK/wp1.log"
WPPID1=$LAST_PID
start_wp "$WPNS2" $WP2 "$WORK/wp2.log"
WPPID2=$LAST_PID
capture_outbound "$N1"
load() { # out [load flags]
    local out=$1; shift
    ip netns exec "$N1" $LOAD --connect $VIP:81 --bind $CLIENT_IP --path '/slow?ms=150' "$@" >"$out"
    cat "$out"
}
field() { $PY -c "import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])" "$1" "$2"; }

load "$WORK/warm.json" --duration 1.5
check "warm-up: every request answered 200 through the waypoint replicas" \
    [ "$(field "$WORK/warm.json" failed)" = 0 ]
check "... both replicas served requests" sh -c "
[ \"\$($AL text response_code=200 <'$WORK/wp1.log')\" -gt 0 ] && [ \"\$($AL text response_code=200 <'$WORK/wp2.log')\" -gt 0 ]"

# (0) One of the two replicas is stopped (SIGTERM, a rollout): it drains; nothing fails.
load "$WORK/wpterm.json" --duration 4 --kill-after 1.5 --kill-pid $WPPID2 --signal TERM
f=$(field "$WORK/wpterm.json" failed) n=$(field "$WORK/wpterm.json" inflight_at_kill)
echo "replica stopped: $f failed, $n in flight at the SIGTERM"
rc=0; wait $WPPID2 || rc=$?
check "SIGTERM of a waypoint replica under load: no request fails ($f failed)" [ "$f" = 0 ]
check "... it exited 0 after draining" sh -c "[ $rc = 0 ] && grep -q 'drained in' '$WORK/wp2.log'"
start_wp "$WPNS2" $WP2 "$WORK/wp2b.log"
WPPID2=$LAST_PID
# (ztunnel passed over it when its listener had closed: again after ZT_WAYPOINT_AVOID_MS, 5 s)
load "$WORK/warm2.json" --duration 6
f=$(field "$WORK/warm2.json" failed)
check "... restarted, it serves again (once ztunnel's 5 s pass-over ended), $f failed" sh -c "
[ \"\$($AL text response_code=200 <'$WORK/wp2b.log')\" -gt 0 ] && [ $f = 0 ]"

# (1) One of the two replicas dies.
load "$WORK/wpkill.json" --duration 5 --kill-after 1.5 --kill-pid $WPPID2
f=$(field "$WORK/wpkill.json" failed) n=$(field "$WORK/wpkill.json" inflight_at_kill)
echo "replica killed: $f failed, $n in flight at the kill, $(field "$WORK/wpkill.json" sent) sent"
check "kill -9 of a waypoint replica: failed requests ($f) <= requests in flight at the kill ($n)" \
    [ "$f" -le "$n" ]
check "... no request started after the kill failed (ztunnel stops choosing the dead replica)" \
    [ "$(field "$WORK/wpkill.json" failed_after_kill)" = 0 ]
check "... and requests kept flowing through the survivor" \
    [ "$(field "$WORK/wpkill.json" ok)" -ge 40 ]
check "... the client's ztunnel logged the dead replica passed over" \
    grep -q "waypoint replica $WP2:15008 unreachable" "$WORK/zt1.log"

# (2) One of the two servers dies: the waypoint retries on the other one.
load "$WORK/bekill.json" --duration 5 --kill-after 1.5 --kill-pid $(pgrep -f "httpsrv.py $SERVER2_IP" | head -1)
f=$(field "$WORK/bekill.json" failed) n=$(field "$WORK/bekill.json" inflight_at_kill)
echo "server killed: $f failed, $n in flight at the kill"
check "kill -9 of a server: failed requests ($f) <= requests in flight at the kill ($n)" [ "$f" -le "$n" ]
check "... no request started after the kill failed (retried on the other server)" \
    [ "$(field "$WORK/bekill.json" failed_after_kill)" = 0 ]
check "... the waypoint logged requests served by the other server" sh -c "
[ \"\$($AL text response_code=200 upstream_host=$SERVER_IP:8081 <'$WORK/wp1.log')\" -gt 0 ]"
check "... and in-flight requests cut by the kill as 503 UC (Istio's retry_on has no reset)" sh -c "
[ $f = 0 ] || [ \"\$($AL text response_code=503 response_flags=UC <'$WORK/wp1.log')\" -gt 0 ]"

# (3) Drain: SIGTERM while a request is in flight and an idle kept-alive client waits.
ip netns exec "$N1" $PY - "$CLIENT_IP" "$VIP" "$WORK/idle.state" >"$WORK/idle.out" 2>&1 <<'PY' &
import socket, sys, time
src, vip, state = sys.argv[1:4]
s = socket.socket(); s.settimeout(20); s.bind((src, 0)); s.connect((vip, 81))
s.sendall(b"GET /fast HTTP/1.1\r\nHost: echo\r\n\r\n")
got = b""
while b"ok from" not in got:
    got += s.recv(4096)
open(state, "w").write("ready\n")
try:
    rest = s.recv(4096)
    print("eof" if rest == b"" else "data %r" % rest)
except OSError as e:
    print("error %s" % e.__class__.__name__)
s.close()
PY
IDLE=$!
wait_for grep -q ready "$WORK/idle.state"
ip netns exec "$N1" $PY - "$CLIENT_IP" "$VIP" >"$WORK/busy.out" 2>&1 <<'PY' &
import socket, sys
s = socket.socket(); s.settimeout(20); s.bind((sys.argv[1], 0)); s.connect((sys.argv[2], 81))
s.sendall(b"GET /slow?ms=1500 HTTP/1.1\r\nHost: echo\r\n\r\n")
got = b""
while True:
    b = s.recv(4096)
    if not b:
        break
    got += b
print(got.decode("latin-1"))
PY
BUSY=$!
sleep 0.3
t0=$(date +%s%N)
kill -TERM $WPPID1
rc=0; wait $WPPID1 || rc=$?
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
wait $IDLE || true
wait $BUSY || true
echo "drain: waypoint exited $rc after ${ms} ms; $(grep -o 'drained in [0-9]* ms' "$WORK/wp1.log" || grep 'drain deadline' "$WORK/wp1.log")"
check "drain: the request in flight completes with 200 and Connection: close" sh -c "
grep -q '^HTTP/1.1 200' '$WORK/busy.out' && grep -qi '^connection: close' '$WORK/busy.out' &&
grep -q 'ok from' '$WORK/busy.out'"
check "... the idle kept-alive connection is closed by the waypoint (EOF)" grep -qx eof "$WORK/idle.out"
check "... the waypoint exits 0 once they are done, not at the 5 s deadline (${ms} ms)" sh -c "
[ $rc = 0 ] && [ $ms -lt 3000 ] && grep -q 'drained in' '$WORK/wp1.log' && ! grep -q 'drain deadline' '$WORK/wp1.log'"
check "... no sanitizer report from the waypoints" sh -c "
! grep -q 'Sanitizer\|runtime error' '$WORK/wp1.log' '$WORK/wp2.log' '$WORK/wp2b.log'"
check "the server ztunnel logged no failed tunnel from the waypoint for completed requests" sh -c "
! grep 'connection complete' '$WORK/zt2.log' | grep 'src.identity=\"spiffe://cluster.local/ns/default/sa/waypoint\"' |
grep -q 'Broken pipe'"
finish
