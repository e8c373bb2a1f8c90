#!/usr/bin/env bash
# The waypoint's kept-alive upstream closed by the server (issue 10 section 3, retries), real
# binaries over HBONE: client ztunnel -> waypoint -> server ztunnel -> server.
#
#   node-1: ztunnel, client 198.18.250.20 (outbound captured)
#   node-2: ztunnel, server 198.18.250.10: HTTP/1.1 on 8081 that answers the first request
#           of each connection (keep-alive) and closes the connection when a second one
#           arrives, answering nothing: the race of a server closing an idle connection just
#           as the proxy reuses it, made certain
#   pod wp-1 198.18.251.30 behind node-2: the waypoint binary; service echo VIP .10:81 (HTTP1)
#
# Checks: a GET sent on the reused upstream connection and cut with no response is sent again
# on a new connection: the client sees 200, never 503 UC (the server saw it twice, the second
# time first on its connection); a POST on it is not replayed (it reached the server and may
# have been acted on: 503 UC, as Envoy answers); a server that closes an idle connection
# between requests: the next request is answered; the server's ztunnel logs every tunnel the
# waypoint closed as a clean end (no "Broken pipe", no reset).
. "$(dirname "$0")/lib.sh"
require_root
AL="$PY $ROOT/tests/support/envoy_access_log.py"
topo_two_nodes 4
make_ca "$WORK/ca"
WPIP=198.18.251.30 WPNS=amt-wp-$ID
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
  services:
    default/echo.default.svc.cluster.local: {ports: [{servicePort: 81, targetPort: 8081}, {servicePort: 82, targetPort: 8082}]}
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
  ports: [{servicePort: 81, targetPort: 8081}, {servicePort: 82, targetPort: 8082}]
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
- service: {namespace: default, hostname: echo.default.svc.cluster.local}
  port: 82
  protocol: HTTP1
  rules:
  - name: idle
    match: {prefix: /}
    backends: [{service: {namespace: default, hostname: echo.default.svc.cluster.local}, port: 82, weight: 1}]
waypointPolicies: []
YAML
# 8081: closes a connection at its second request; 8082: closes it 200 ms after each answer.
cat >"$WORK/srv.py" <<'PY'
import socket, sys, threading
def serve(port, mode):
    l = socket.socket(); l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    l.bind((sys.argv[1], port)); l.listen(64)
    while True:
        c, _ = l.accept()
        threading.Thread(target=conn, args=(c, port, mode), daemon=True).start()
def conn(c, port, mode):
    n, buf = 0, b""
    c.settimeout(0.2 if mode == "idle" else None)
    try:
        while True:
            while b"\r\n\r\n" not in buf:
                b = c.recv(4096)
                if not b:
                    return
                buf += b
            head, _, buf = buf.partition(b"\r\n\r\n")
            line = head.split(b"\r\n")[0].decode()
            clen = [int(h.split(b":")[1]) for h in head.split(b"\r\n")[1:] if h.lower().startswith(b"content-length:")]
            while clen and len(buf) < clen[0]:
                buf += c.recv(4096)
            buf = buf[clen[0]:] if clen else buf
            n += 1
            print("%d %s #%d" % (port, line, n), flush=True)
            if mode == "race" and n == 2:
                return  # closed, nothing answered
            body = ("%s answered as #%d\n" % (line, n)).encode()
            c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
    except socket.timeout:
        return  # idle too long: closed
    finally:
        c.close()
threading.Thread(target=serve, args=(8082, "idle"), daemon=True).start()
serve(8081, "race")
PY
start_bg "$WORK/srv.log" ip netns exec "$N2" $PY -u "$WORK/srv.py" "$SERVER_IP"
wait_for sh -c "[ \$(ip netns exec $N2 ss -Hltn 'sport = :8081 or sport = :8082' | wc -l) = 2 ]"
start_ztunnel "$N1" node-1 "$WORK/mesh.yaml" "$WORK/ca" "$WORK/zt1.log"
start_ztunnel "$N2" node-2 "$WORK/mesh.yaml" "$WORK/ca" "$WORK/zt2.log"
start_bg "$WORK/wp.log" ip netns exec "$WPNS" "$BIN/waypoint" --local-config "$WORK/mesh.yaml" \
    --ca-dir "$WORK/ca" --namespace default --name wp --service-account waypoint --node node-2
WPPID=$LAST_PID
wait_for sh -c "[ \"\$(ip netns exec $WPNS curl -s -o /dev/null -w '%{http_code}' http://$WPIP:15021/healthz/ready)\" = 200 ]" ||
    cat "$WORK/wp.log"
capture_outbound "$N1"

# Two requests on one client connection (curl reuses it; the waypoint reuses its upstream).
two() { # method port path1 path2
    ip netns exec "$N1" curl -s -m 10 --interface "$CLIENT_IP" -X "$1" ${5:+-d "$5"} \
        -w '=%{http_code}\n' "http://$VIP:$2$3" "http://$VIP:$2$4" || true
}
out=$(two GET 81 /a /b)
echo "$out"
check "GET on a kept-alive upstream the server closes as it arrives: retried, 200 (not 503 UC)" \
    [ "$(echo "$out" | grep -c '^=200$')" = 2 ]
check "... the second answer came from a new server connection" sh -c "
echo '$out' | grep -q 'GET /b HTTP/1.1 answered as #1'"
check "... the waypoint logged it 200 with no flag" sh -c "
[ \"\$($AL text path=/b response_code=200 response_flags=- <'$WORK/wp.log')\" = 1 ]"
out=$(two POST 81 /p /q x)
echo "$out"
check "POST cut the same way: not replayed, 503 UC (it reached the server)" sh -c "
echo '$out' | grep -q '^=200$' && echo '$out' | grep -q 'connection termination=503'"
check "... the server saw POST /q once" [ "$(grep -c 'POST /q' "$WORK/srv.log")" = 1 ]
check "... logged 503 UC by the waypoint" sh -c "
[ \"\$($AL text path=/q response_code=503 response_flags=UC <'$WORK/wp.log')\" = 1 ]"

# A server that closes idle connections after 200 ms: the next request, 500 ms later, works.
out=$(ip netns exec "$N1" $PY - "$CLIENT_IP" "$VIP" <<'PY'
import socket, sys, time
s = socket.socket(); s.settimeout(10); s.bind((sys.argv[1], 0)); s.connect((sys.argv[2], 82))
res = []
for i in range(3):
    s.sendall(b"GET /k%d HTTP/1.1\r\nHost: echo\r\n\r\n" % i)
    got = b""
    while b"answered" not in got or not got.endswith(b"\n"):
        got += s.recv(4096)
    res.append(got.split(b"\r\n")[0].decode())
    time.sleep(0.5)
print(" ".join(res))
PY
)
echo "idle-closed upstream: $out"
check "a server closing idle upstream connections: every next request on the client's kept-alive connection is answered" \
    [ "$out" = "HTTP/1.1 200 OK HTTP/1.1 200 OK HTTP/1.1 200 OK" ]
sleep 0.3
grep 'connection complete' "$WORK/zt2.log" | grep 'sa/waypoint' | sed 's/.*dst.hbone_addr/dst.hbone_addr/' || true
check "the server's ztunnel saw every waypoint tunnel end cleanly (no Broken pipe, no reset)" sh -c "
grep 'connection complete' '$WORK/zt2.log' | grep -q 'sa/waypoint' &&
! grep 'connection complete' '$WORK/zt2.log' | grep 'sa/waypoint' | grep -q 'error=\"Broken pipe\"\|reset'"
kill -TERM $WPPID
rc=0; wait $WPPID || rc=$?
check "the waypoint exits 0 on SIGTERM, sanitizers clean" sh -c "
[ $rc = 0 ] && ! grep -q 'Sanitizer\|runtime error' '$WORK/wp.log'"
finish
