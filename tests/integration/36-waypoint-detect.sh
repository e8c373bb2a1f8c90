#!/usr/bin/env bash
# Protocol detection in the waypoint (issue 10 section 3: "the port's protocol (appProtocol,
# else sniff with a short window, then TCP passthrough so server-first protocols never
# hang)"). Client ztunnel -> waypoint -> server ztunnel, local-config mode as test 33; no
# Route table declares a protocol here, so every port below is DETECT.
#
#   node-1: ztunnel, client 198.18.250.20 (outbound captured)
#   node-2: ztunnel, server 198.18.250.10: an HTTP/1.1 server on 8081, an h2c server on 8082
#           (python3-h2), a greeting (server speaks first) echo server on 8025, an echo
#           server on 8080
#   pod wp-1 198.18.251.30 behind node-2: the waypoint binary
#   service echo VIP .10: 80 -> 8081 (HTTP/1.1), 82 -> 8082 (h2c), 25 -> 8025 (server-first),
#   90 -> 8080 (binary); the workload server has waypoint wp too (pod-addressed traffic)
#
# Checks: HTTP/1.1 on a DETECT port gets L7 treatment (the DENY policy's 403, an access line
# per request saying detected=http1), also when its first bytes come slowly; prior-knowledge
# HTTP/2 gets the HTTP/2 engine (200 from the h2c server, the DENY policy's 403) and its
# inner HTTP/2 server refuses an even stream id with GOAWAY PROTOCOL_ERROR (RFC 9113 5.1.1);
# a server-first service answers within the 200 ms window plus the path's round trips; a
# client-first binary protocol is piped byte-exact (detected=tcp); pod-addressed HTTP to the
# bound workload gets L7 policy too.
. "$(dirname "$0")/lib.sh"
require_root
AL="$PY $ROOT/tests/support/envoy_access_log.py"
topo_two_nodes 4
make_ca "$WORK/ca"
WPIP=198.18.251.30 WPNS=amt-wp-$ID
add_pod "$N2" "$WPNS" $WPIP 198.18.251.1
WPREF='{hostname: {namespace: default, hostname: wp.default.svc.cluster.local}, hboneMtlsPort: 15008}'

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
  waypoint: $WPREF
  services:
    default/echo.default.svc.cluster.local: {ports: [{servicePort: 80, targetPort: 8081}, {servicePort: 82, targetPort: 8082}, {servicePort: 25, targetPort: 8025}, {servicePort: 90, targetPort: 8080}]}
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
  ports: [{servicePort: 80, targetPort: 8081}, {servicePort: 82, targetPort: 8082}, {servicePort: 25, targetPort: 8025}, {servicePort: 90, targetPort: 8080}]
  waypoint: $WPREF
- name: wp
  namespace: default
  hostname: wp.default.svc.cluster.local
  addresses: ["198.19.0.20"]
  ports: [{servicePort: 15008, targetPort: 15008}]
policies: []
waypointPolicies:
- name: deny-admin
  namespace: default
  targets: [{gateway: wp}]
  action: DENY
  rules: [{clauses: [{matches: [{paths: [{prefix: /admin}], notMethods: [{exact: GET}]}]}]}]
YAML

start_server "$N2" "$SERVER_IP" 8080 "$WORK/echo.log"
start_server "$N2" "$SERVER_IP" 8025 "$WORK/greet.log" --banner "220 greeting"
cat >"$WORK/web8081.py" <<'PY'
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
socketserver.TCPServer((sys.argv[1], 8081), H).serve_forever()
PY
start_bg "$WORK/web8081.log" ip netns exec "$N2" $PY "$WORK/web8081.py" "$SERVER_IP"
# An h2c (prior knowledge) server on 8082: answers "h2 METHOD PATH".
cat >"$WORK/h2c8082.py" <<'PY'
import socket, sys, threading
import h2.config, h2.connection, h2.events
def serve(c):
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False, header_encoding="utf-8"))
    conn.initiate_connection()
    c.sendall(conn.data_to_send())
    try:
        while True:
            data = c.recv(65536)
            if not data:
                break
            for ev in conn.receive_data(data):
                if isinstance(ev, h2.events.RequestReceived):
                    h = dict(ev.headers)
                    body = ("h2 %s %s\n" % (h[":method"], h[":path"])).encode()
                    conn.send_headers(ev.stream_id, [(":status", "200"), ("content-length", str(len(body)))])
                    conn.send_data(ev.stream_id, body, end_stream=True)
                elif isinstance(ev, h2.events.DataReceived):
                    conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            c.sendall(conn.data_to_send())
    except Exception as e:
        print("h2c:", e, flush=True)
    c.close()
srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind((sys.argv[1], 8082)); srv.listen(64)
while True:
    c, _ = srv.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
PY
start_bg "$WORK/h2c8082.log" ip netns exec "$N2" $PY "$WORK/h2c8082.py" "$SERVER_IP"
wait_for sh -c "ip netns exec $N2 ss -Hltn 'sport = :8082' | grep -q ."
wait_for sh -c "ip netns exec $N2 ss -Hltn 'sport = :8081' | grep -q ." || cat "$WORK/web8081.log"
start_ztunnel "$N1" node-1 "$WORK/mesh.yaml" "$WORK/ca" "$WORK/zt1.log"
start_ztunnel "$N2" node-2 "$WORK/mesh.yaml" "$WORK/ca" "$WORK/zt2.log"
start_bg "$WORK/wp.log" ip netns exec "$WPNS" "$BIN/waypoint" --local-config "$WORK/mesh.yaml" \
    --ca-dir "$WORK/ca" --namespace default --name wp --service-account waypoint --node node-2
WPPID=$LAST_PID
wait_for sh -c "[ \"\$(ip netns exec $WPNS curl -s -o /dev/null -w '%{http_code}' http://$WPIP:15021/healthz/ready)\" = 200 ]" ||
    cat "$WORK/wp.log"
capture_outbound "$N1"

web() { # url [curl args] -> "body status"
    local u=$1; shift
    ip netns exec "$N1" curl -s -m 8 --interface "$CLIENT_IP" -w ' %{http_code}' "$@" "$u" || true
}

# ---- HTTP/1.1 on a DETECT port: the HTTP/1.1 engine, L7 policy ----------------------------
out=$(web http://$VIP:80/hello)
echo "GET /hello on DETECT port 80: $out"
check "HTTP/1.1 on a DETECT port: the server's 200 through the waypoint" [ "$out" = "GET /hello from 8081
 200" ]
check "... served by the HTTP/1.1 engine: an access line for the request (Envoy's format)" \
    [ "$($AL text method=GET path=/hello protocol=HTTP/1.1 response_code=200 <"$WORK/wp.log")" = 1 ]
out=$(web http://$VIP:80/admin/users -X POST)
echo "POST /admin/users on DETECT port 80: $out"
check "an L7 DENY policy on a DETECT port: 403 RBAC: access denied" [ "$out" = "RBAC: access denied 403" ]
check "... logged as denied by the policy, never reached the server" sh -c "
[ \"\$($AL text method=POST path=/admin/users response_code=403 upstream_host=- <'$WORK/wp.log')\" = 1 ] &&
grep -q 'rbac_access_denied_matched_policy' '$WORK/wp.log' && ! grep -q 'POST /admin' '$WORK/web8081.log'"

# The same request with its first byte alone and the rest after the 200 ms window: still the
# engine (no way around L7 policy by sending slowly).
slow=$(ip netns exec "$N1" $PY - "$CLIENT_IP" "$VIP" <<'PY'
import socket, sys, time
s = socket.socket(); s.settimeout(8); s.bind((sys.argv[1], 0)); s.connect((sys.argv[2], 80))
s.sendall(b"P"); time.sleep(0.5)
s.sendall(b"OST /admin/slow HTTP/1.1\r\nHost: echo\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
got = b""
while True:
    b = s.recv(4096)
    if not b:
        break
    got += b
print(got.split(b"\r\n", 1)[0].decode())
PY
)
echo "dribbled POST /admin/slow: $slow"
check "a request whose first byte comes alone, the rest after the window: 403 all the same" \
    [ "$slow" = "HTTP/1.1 403 Forbidden" ]

# ---- pod-addressed HTTP to a bound workload ------------------------------------------------
out=$(web http://$SERVER_IP:8081/admin/pod -X POST)
echo "pod-addressed POST /admin/pod: $out"
check "pod-addressed HTTP to a workload bound to the waypoint: L7 DENY applies (403)" \
    [ "$out" = "RBAC: access denied 403" ]
out=$(web http://$SERVER_IP:8081/pod)
check "... and an allowed request is served (200)" [ "$out" = "GET /pod from 8081
 200" ]
check "... the waypoint logged it as a request to the pod, served by the pod" \
    [ "$($AL text method=GET path=/pod response_code=200 upstream_host=$SERVER_IP:8081 <"$WORK/wp.log")" = 1 ]

# ---- a server that speaks first ------------------------------------------------------------
greet() { # prints "<ms to the greeting> <greeting> | <echo>"
    ip netns exec "$N1" $PY - "$CLIENT_IP" "$VIP" <<'PY'
import socket, sys, time
s = socket.socket(); s.settimeout(8); s.bind((sys.argv[1], 0)); s.connect((sys.argv[2], 25))
t0 = time.monotonic()
g = s.recv(4096)
ms = (time.monotonic() - t0) * 1000
s.sendall(b"QUIT\r\n")
e = b""
while len(e) < 6:
    b = s.recv(4096)
    if not b:
        break
    e += b
print("%d %s| %s" % (ms, g.decode().split(" 198")[0], e.decode().strip()))
PY
}
first=$(greet)  # the first also sets up the HBONE connections (TLS handshakes)
out=$(greet)
echo "server-first on DETECT port 25: first connection $first; then $out"
ms=${out%% *}
check "a server-first service on a DETECT port: the greeting arrives, then the echo" \
    sh -c "echo '$out' | grep -q '220 greeting| QUIT'"
check "... after the 200 ms window plus the path's round trips (${ms} ms; bound 150..800)" \
    [ "${ms:-0}" -ge 150 -a "${ms:-9999}" -le 800 ]
check "... the waypoint piped it: detected=tcp, upstream server:8025" sh -c "
grep 'connection complete' '$WORK/wp.log' | grep 'dst.addr=$VIP:25' | grep 'detected=tcp' |
grep -q 'upstream=$SERVER_IP:8025'"

# ---- client-first binary ------------------------------------------------------------------
binary() { # port prefix(hex) -> "same" or what differed
    ip netns exec "$N1" $PY - "$CLIENT_IP" "$VIP" "$1" "$2" <<'PY'
import os, socket, sys
s = socket.socket(); s.settimeout(8); s.bind((sys.argv[1], 0)); s.connect((sys.argv[2], int(sys.argv[3])))
msg = bytes.fromhex(sys.argv[4]) + os.urandom(200000)
s.sendall(msg); s.shutdown(socket.SHUT_WR)
got = b""
while True:
    b = s.recv(65536)
    if not b:
        break
    got += b
print("same" if got == msg else "differs: %d of %d bytes" % (len(got), len(msg)))
PY
}
out=$(binary 90 16030100c8010000c40303)
check "a client-first binary protocol (a TLS ClientHello start) on a DETECT port: byte-exact" [ "$out" = same ]
check "... piped, detected=tcp" sh -c "
grep 'connection complete' '$WORK/wp.log' | grep 'dst.addr=$VIP:90' | grep -q 'detected=tcp'"

# ---- prior-knowledge HTTP/2 on a DETECT port: the HTTP/2 engine ------------------------------
out=$(web http://$VIP:82/h2 --http2-prior-knowledge)
echo "h2 GET /h2 on DETECT port 82: $out"
check "prior-knowledge HTTP/2 on a DETECT port: the h2c server's 200 through the HTTP/2 engine" \
    [ "$out" = "h2 GET /h2
 200" ]
check "... an access line for the request, protocol HTTP/2" \
    [ "$($AL text method=GET path=/h2 protocol=HTTP/2 response_code=200 <"$WORK/wp.log")" = 1 ]
out=$(web http://$VIP:82/admin/h2 --http2-prior-knowledge -X POST)
echo "h2 POST /admin/h2: $out"
check "... and the L7 DENY policy answers 403 on HTTP/2 too" [ "$out" = "RBAC: access denied 403" ]

# The waypoint's inner HTTP/2 server on that CONNECT stream, raw frames through the client's
# ztunnel: HEADERS on an even stream id is a connection error PROTOCOL_ERROR (RFC 9113 5.1.1).
even=$(ip netns exec "$N1" $PY - "$CLIENT_IP" "$VIP" "$ROOT/tests/support" <<'PY'
import socket, struct, sys, time
sys.path.insert(0, sys.argv[3])
from unit_h2_frames import ACK, END_HEADERS, END_STREAM, GOAWAY, PREFACE, SETTINGS, frame, headers, lit_idx
s = socket.socket(); s.settimeout(5); s.bind((sys.argv[1], 0)); s.connect((sys.argv[2], 82))
s.sendall(PREFACE + frame(SETTINGS, 0, 0))
block = bytes([0x82, 0x87]) + lit_idx(4, "/even") + lit_idx(1, "echo")
buf, acked, sent = b"", False, False
goaway, closed = None, False
deadline = time.monotonic() + 5
while time.monotonic() < deadline:
    try:
        b = s.recv(65536)
    except socket.timeout:
        break
    if not b:
        closed = True
        break
    buf += b
    while len(buf) >= 9:
        n = buf[0] << 16 | buf[1] << 8 | buf[2]
        if len(buf) < 9 + n:
            break
        t, fl, payload = buf[3], buf[4], buf[9:9 + n]
        buf = buf[9 + n:]
        if t == SETTINGS and not fl & ACK and not acked:
            s.sendall(frame(SETTINGS, ACK, 0))
            s.sendall(headers(2, block, END_HEADERS | END_STREAM))
            acked = True
        if t == GOAWAY:
            goaway = struct.unpack(">II", payload[:8])
print("goaway=%s closed=%s" % ("none" if goaway is None else "%d,last=%d" % (goaway[1], goaway[0] & 0x7fffffff), closed))
PY
)
echo "HEADERS on stream 2 through the tunnel: $even"
check "the inner HTTP/2 server: HEADERS on an even stream id -> GOAWAY PROTOCOL_ERROR, closed" \
    [ "$even" = "goaway=1,last=0 closed=True" ]

ip netns exec "$WPNS" curl -s http://$WPIP:15020/metrics >"$WORK/metrics.txt"
grep detected "$WORK/metrics.txt" || true
check "waypoint_protocol_detected_total: http1 5 connections, http2 3, tcp 3" sh -c "
grep -q '^waypoint_protocol_detected_total{protocol=\"http1\"} 5\$' '$WORK/metrics.txt' &&
grep -q '^waypoint_protocol_detected_total{protocol=\"http2\"} 3\$' '$WORK/metrics.txt' &&
grep -q '^waypoint_protocol_detected_total{protocol=\"tcp\"} 3\$' '$WORK/metrics.txt'"

kill -TERM $WPPID
wait_for sh -c "! kill -0 $WPPID 2>/dev/null"
rc=0; wait $WPPID || rc=$?
check "SIGTERM: the waypoint exits 0 with no sanitizer report" sh -c "
[ $rc = 0 ] && ! grep -q 'Sanitizer\|runtime error' '$WORK/wp.log'"
finish
