#!/usr/bin/env bash
# The waypoint's HTTP/2 engine (issue 10; waypoint.md): HTTP2 and GRPC service ports of a bound
# service are served request by request, not piped. Local-config mode, real binaries:
#
#   node-1: ztunnel, client 198.18.250.20 (outbound to the VIP captured)
#   node-2: ztunnel, server 198.18.250.10: an h2c server on 8083 (python3-h2) and a gRPC
#           server on 8082 (python3-grpcio, a generic handler: no generated code)
#   pod wp-1 198.18.251.30 behind node-2: the waypoint binary
#   service echo VIP .10: port 83 -> 8083 (HTTP2), port 82 -> 8082 (GRPC), waypoint wp
#
# Checks: curl --http2-prior-knowledge and a python3-h2 client through client ztunnel ->
# waypoint -> server ztunnel -> the h2c server, with the route's response header added by the
# waypoint; gRPC unary and server-streaming calls; an L7 DENY seen by gRPC as status 7
# PERMISSION_DENIED and by h2c as 403; h2load -n 10000 -c 4 -m 10 all 2xx; the waypoint's access
# log has the requests; the destination ztunnel sees the waypoint's identity; istio_requests_total
# has the gRPC calls as request_protocol "grpc" with their grpc_response_status (0, and 7 for
# the denied one); SIGTERM with an h2 request in flight: GOAWAY, the response, exit in < 3.5 s.
# Against a waypoint that pipes these ports (before the engine) the header, the DENY and the
# access lines are missing.
. "$(dirname "$0")/lib.sh"
require_root
AL="$PY $ROOT/tests/support/envoy_access_log.py"
PQ="$PY $ROOT/tests/support/prom_query.py"
topo_two_nodes 4
make_ca "$WORK/ca"
WPIP=198.18.251.30 WPNS=amt-wp-$ID
TD=spiffe://cluster.local/ns/default/sa
add_pod "$N2" "$WPNS" $WPIP 198.18.251.1
# The client's requests to the VIP leave from the client's address (tools cannot bind one).
ip -n "$N1" route add $VIP/32 via $LINK_PEER src $CLIENT_IP

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
    default/echo.default.svc.cluster.local: {ports: [{servicePort: 82, targetPort: 8082}, {servicePort: 83, targetPort: 8083}]}
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
  ports: [{servicePort: 82, targetPort: 8082}, {servicePort: 83, targetPort: 8083}]
  waypoint: {hostname: {namespace: default, hostname: wp.default.svc.cluster.local}, hboneMtlsPort: 15008}
- name: wp
  namespace: default
  hostname: wp.default.svc.cluster.local
  addresses: ["198.19.0.20"]
  ports: [{servicePort: 15008, targetPort: 15008}]
policies: []
routes:
- service: {namespace: default, hostname: echo.default.svc.cluster.local}
  port: 83
  protocol: HTTP2
  rules:
  - name: h2
    match: {prefix: /}
    backends: [{service: {namespace: default, hostname: echo.default.svc.cluster.local}, port: 83, weight: 1}]
    responseHeaders: {set: [{name: x-waypoint, value: wp}]}
- service: {namespace: default, hostname: echo.default.svc.cluster.local}
  port: 82
  protocol: GRPC
  rules:
  - name: grpc
    match: {prefix: /}
    backends: [{service: {namespace: default, hostname: echo.default.svc.cluster.local}, port: 82, weight: 1}]
    timeout: 5s
waypointPolicies:
- name: deny-forbidden
  namespace: default
  targets: [{gateway: wp}]
  action: DENY
  rules: [{clauses: [{matches: [{paths: [{prefix: /amesh.test.Echo/Forbidden}, {prefix: /admin}]}]}]}]
YAML

# An h2c server (prior knowledge): "<METHOD> <path> h2c" for any request, with the request's
# x-request-id echoed; trailers when asked (x-want-trailers); /slow answered after 1.5 s.
cat >"$WORK/h2c.py" <<'PY'
import socket, sys, threading, time
import h2.config, h2.connection, h2.events
def serve(sock):
    c = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
    c.initiate_connection(); sock.sendall(c.data_to_send())
    reqs, slow = {}, []
    sock.settimeout(0.05)
    while True:
        for due, sid, body in [x for x in slow if x[0] <= time.time()]:
            slow.remove((due, sid, body))
            c.send_headers(sid, [(":status", "200"), ("content-length", str(len(body)))])
            c.send_data(sid, body, end_stream=True)
            sock.sendall(c.data_to_send())
        try:
            data = sock.recv(65536)
        except socket.timeout:
            continue
        if not data:
            return
        for ev in c.receive_data(data):
            if isinstance(ev, h2.events.RequestReceived):
                reqs[ev.stream_id] = dict((k.decode() if isinstance(k, bytes) else k,
                                           v.decode() if isinstance(v, bytes) else v)
                                          for k, v in ev.headers)
            elif isinstance(ev, h2.events.DataReceived):
                c.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            elif isinstance(ev, h2.events.StreamEnded):
                h = reqs.pop(ev.stream_id, {})
                body = ("%s %s h2c\n" % (h.get(":method"), h.get(":path"))).encode()
                if h.get(":path") == "/slow":
                    slow.append((time.time() + 1.5, ev.stream_id, body))
                    continue
                hdrs = [(":status", "200"), ("content-length", str(len(body))),
                        ("x-seen-request-id", h.get("x-request-id", "-"))]
                trailers = "x-want-trailers" in h
                if trailers:
                    hdrs = [x for x in hdrs if x[0] != "content-length"]
                c.send_headers(ev.stream_id, hdrs)
                c.send_data(ev.stream_id, body, end_stream=not trailers)
                if trailers:
                    c.send_headers(ev.stream_id, [("x-trailer", "t1")], end_stream=True)
        sock.sendall(c.data_to_send())
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], 8083)); s.listen(64)
while True:
    a, _ = s.accept()
    threading.Thread(target=serve, args=(a,), daemon=True).start()
PY
# A gRPC server with a generic handler: raw bytes in and out, no protoc.
cat >"$WORK/grpcd.py" <<'PY'
import sys
from concurrent import futures
import grpc
def unary(req, ctx):
    return b"echo:" + req
def stream(req, ctx):
    for i in range(5):
        yield b"part%d:" % i + req
h = {"Unary": grpc.unary_unary_rpc_method_handler(unary),
     "Stream": grpc.unary_stream_rpc_method_handler(stream),
     "Forbidden": grpc.unary_unary_rpc_method_handler(unary)}
srv = grpc.server(futures.ThreadPoolExecutor(8))
srv.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("amesh.test.Echo", h),))
srv.add_insecure_port("%s:8082" % sys.argv[1])
srv.start()
srv.wait_for_termination()
PY
start_bg "$WORK/h2c.log" ip netns exec "$N2" $PY "$WORK/h2c.py" "$SERVER_IP"
start_bg "$WORK/grpcd.log" ip netns exec "$N2" $PY "$WORK/grpcd.py" "$SERVER_IP"
wait_for sh -c "ip netns exec $N2 ss -Hltn 'sport = :8083' | grep -q ."
wait_for sh -c "ip netns exec $N2 ss -Hltn 'sport = :8082' | grep -q ."
start_ztunnel "$N1" node-1 "$WORK/mesh.yaml" "$WORK/ca" "$WORK/zt1.log"
start_ztunnel "$N2" node-2 "$WORK/mesh.yaml" "$WORK/ca" "$WORK/zt2.log"
start_bg "$WORK/wp.log" ip netns exec "$WPNS" "$BIN/waypoint" --local-config "$WORK/mesh.yaml" \
    --ca-dir "$WORK/ca" --namespace default --name wp --service-account waypoint --node node-2
WPPID=$LAST_PID
wait_for sh -c "[ \"\$(ip netns exec $WPNS curl -s -o /dev/null -w '%{http_code}' http://$WPIP:15021/healthz/ready)\" = 200 ]" ||
    cat "$WORK/wp.log"
capture_outbound "$N1"

# ---- h2c: curl and python3-h2 ----
out=$(ip netns exec "$N1" curl -s -m 8 --http2-prior-knowledge -D "$WORK/h1.hdr" \
    -H 'x-request-id: rid-35' http://$VIP:83/hello?a=1 || true)
cat "$WORK/h1.hdr" 2>/dev/null || true
check "curl --http2-prior-knowledge through the waypoint: the h2c server answers" \
    [ "$out" = "GET /hello?a=1 h2c" ]
check "... over HTTP/2 end to end, with the route's response header set by the waypoint" sh -c "
grep -q '^HTTP/2 200' '$WORK/h1.hdr' && grep -qi '^x-waypoint: wp' '$WORK/h1.hdr' &&
grep -qi '^x-seen-request-id: rid-35' '$WORK/h1.hdr'"
code=$(ip netns exec "$N1" curl -s -m 8 --http2-prior-knowledge -o /dev/null -w '%{http_code}' \
    http://$VIP:83/admin/x || true)
check "an L7 DENY on the HTTP2 port: 403" [ "$code" = 403 ]

ip netns exec "$N1" $PY - "$VIP" >"$WORK/pyh2.out" 2>&1 <<'PY' || true
import socket, sys
import h2.config, h2.connection, h2.events
s = socket.create_connection((sys.argv[1], 83), timeout=8)
c = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
c.initiate_connection()
ids, left = [], {}
for i in range(20):
    sid = c.get_next_available_stream_id()
    hdrs = [(":method", "POST"), (":scheme", "http"), (":path", "/py/%d" % i),
            (":authority", "echo")]
    if i == 0:
        hdrs.append(("x-want-trailers", "1"))
    c.send_headers(sid, hdrs)
    ids.append(sid)
    left[sid] = 100000
def send_bodies():
    # As much as the waypoint's windows allow: it credits them as the endpoint reads.
    for sid in ids:
        while left[sid] > 0:
            n = min(left[sid], c.local_flow_control_window(sid), c.max_outbound_frame_size)
            if n <= 0:
                break
            left[sid] -= n
            c.send_data(sid, b"x" * n, end_stream=left[sid] == 0)
bodies, status, trailers, ended = {}, {}, {}, set()
send_bodies()
s.sendall(c.data_to_send())
while len(ended) < len(ids):
    data = s.recv(65536)
    if not data:
        break
    for ev in c.receive_data(data):
        if isinstance(ev, h2.events.ResponseReceived):
            status[ev.stream_id] = dict(ev.headers)[b":status"]
        elif isinstance(ev, h2.events.DataReceived):
            bodies[ev.stream_id] = bodies.get(ev.stream_id, b"") + ev.data
            c.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
        elif isinstance(ev, h2.events.TrailersReceived):
            trailers[ev.stream_id] = dict(ev.headers)
        elif isinstance(ev, h2.events.StreamEnded):
            ended.add(ev.stream_id)
    send_bodies()
    s.sendall(c.data_to_send())
ok = sum(1 for i, sid in enumerate(ids)
         if status.get(sid) == b"200" and bodies.get(sid) == b"POST /py/%d h2c\n" % i)
print("ok=%d trailer=%s" % (ok, trailers.get(ids[0], {}).get(b"x-trailer", b"-").decode()))
PY
cat "$WORK/pyh2.out"
check "python3-h2: 20 concurrent POSTs of 100 kB on one connection, all answered" \
    grep -q '^ok=20 ' "$WORK/pyh2.out"
check "... and the endpoint's trailers reach the client" grep -q 'trailer=t1$' "$WORK/pyh2.out"

# ---- gRPC ----
ip netns exec "$N1" $PY - "$VIP" >"$WORK/grpc.out" 2>&1 <<'PY' || true
import sys
import grpc
ch = grpc.insecure_channel("%s:82" % sys.argv[1])
try:
    print("unary=%s" % ch.unary_unary("/amesh.test.Echo/Unary")(b"hi", timeout=8).decode())
except grpc.RpcError as e:
    print("unary error %s" % e.code())
try:
    parts = list(ch.unary_stream("/amesh.test.Echo/Stream")(b"s", timeout=8))
    print("stream=%s" % ",".join(p.decode() for p in parts))
except grpc.RpcError as e:
    print("stream error %s" % e.code())
try:
    ch.unary_unary("/amesh.test.Echo/Forbidden")(b"x", timeout=8)
    print("forbidden=allowed")
except grpc.RpcError as e:
    print("forbidden=%d %s" % (e.code().value[0], e.details()))
PY
cat "$WORK/grpc.out"
check "gRPC unary call through the waypoint" grep -qx 'unary=echo:hi' "$WORK/grpc.out"
check "gRPC server-streaming call: all 5 messages" \
    grep -qx 'stream=part0:s,part1:s,part2:s,part3:s,part4:s' "$WORK/grpc.out"
check "an L7 DENY on the GRPC port: grpc-status 7 PERMISSION_DENIED, RBAC: access denied" \
    grep -qx 'forbidden=7 RBAC: access denied' "$WORK/grpc.out"
# Istio's waypoint reports gRPC as request_protocol="grpc" with the grpc-status the client got;
# the denied call is a 200 on the wire (Envoy's %RESPONSE_CODE%) with grpc-status 7.
ip netns exec "$WPNS" curl -s http://$WPIP:15020/metrics >"$WORK/m-grpc.txt" || true
grep '^istio_requests_total.*grpc' "$WORK/m-grpc.txt" || true
check "istio_requests_total: the 2 good calls as grpc, grpc_response_status 0" \
    [ "$($PQ istio_requests_total request_protocol=grpc grpc_response_status=0 response_code=200 \
        <"$WORK/m-grpc.txt")" = 2 ]
check "... the denied call as grpc, grpc_response_status 7, response_code 200; the histograms too" sh -c "
[ \"\$($PQ istio_requests_total request_protocol=grpc grpc_response_status=7 response_code=200 \
    <'$WORK/m-grpc.txt')\" = 1 ] &&
[ \"\$($PQ istio_request_duration_milliseconds_count request_protocol=grpc grpc_response_status=7 \
    <'$WORK/m-grpc.txt')\" = 1 ]"

# ---- load ----
ip netns exec "$N1" h2load -n 10000 -c 4 -m 10 http://$VIP:83/load >"$WORK/h2load.out" 2>&1 || true
cat "$WORK/h2load.out" | grep -E 'finished in|requests:|status codes:' || true
check "h2load -n 10000 -c 4 -m 10 through the waypoint: all 2xx" \
    grep -Eq 'status codes: 10000 2xx, 0 3xx, 0 4xx, 0 5xx' "$WORK/h2load.out"

# ---- what the waypoint and the destination ztunnel saw ----
check "the waypoint's access log has the requests (h2c, gRPC and the 403)" sh -c "
[ \"\$($AL text path=/hello?a=1 protocol=HTTP/2 <'$WORK/wp.log')\" -ge 1 ] &&
[ \"\$($AL text path=/amesh.test.Echo/Stream protocol=HTTP/2 <'$WORK/wp.log')\" -ge 1 ] &&
[ \"\$($AL text path=/amesh.test.Echo/Forbidden upstream_host=- <'$WORK/wp.log')\" -ge 1 ]"
check "the destination ztunnel sees the waypoint's identity on the h2c and gRPC ports" sh -c "
grep 'direction=\"inbound\"' '$WORK/zt2.log' | grep 'src.identity=\"$TD/waypoint\"' | grep -q ':8083' &&
grep 'direction=\"inbound\"' '$WORK/zt2.log' | grep 'src.identity=\"$TD/waypoint\"' | grep -q ':8082'"

# ---- drain: SIGTERM with an HTTP/2 request in flight and an idle HTTP/2 connection ----
# nghttp (nghttp2's client) keeps the stream going after a graceful GOAWAY and logs frames;
# the idle client (one request done, then waiting) leaves only when the waypoint says so.
ip netns exec "$N1" $PY - "$VIP" >"$WORK/idle.out" 2>&1 <<'PY' &
import socket, sys
import h2.config, h2.connection, h2.events
s = socket.create_connection((sys.argv[1], 83), timeout=10)
c = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
c.initiate_connection()
c.send_headers(1, [(":method", "GET"), (":scheme", "http"), (":path", "/idle"),
                   (":authority", "echo")], end_stream=True)
s.sendall(c.data_to_send())
how = "timeout"
try:
    while how == "timeout":
        data = s.recv(65536)
        if not data:
            how = "closed"
            break
        for ev in c.receive_data(data):
            if isinstance(ev, h2.events.StreamEnded):
                print("answered", flush=True)
            elif isinstance(ev, h2.events.ConnectionTerminated):
                how = "goaway=%d" % ev.error_code
        out = c.data_to_send()
        if out and how == "timeout":
            s.sendall(out)
except (socket.timeout, OSError) as e:
    how = "error %s" % e if how == "timeout" else how
print(how)
PY
IDLEPID=$!
wait_for grep -q answered "$WORK/idle.out"
ip netns exec "$N1" timeout 15 nghttp -v http://$VIP:83/slow >"$WORK/drain.out" 2>&1 &
NGPID=$!
wait_for grep -q 'send HEADERS frame' "$WORK/drain.out"
sleep 0.5 # the request is at the endpoint (answered 1.5 s after it arrived)
t0=$(date +%s%N)
kill -TERM $WPPID
wait_for sh -c "! kill -0 $WPPID 2>/dev/null"
t1=$(date +%s%N)
rc=0; wait $WPPID || rc=$?
wait $NGPID || true
wait $IDLEPID || true
cat "$WORK/idle.out"
grep -E 'GOAWAY|:status|GET /slow' "$WORK/drain.out" || true
ms=$(( (t1 - t0) / 1000000 ))
echo "waypoint exit after SIGTERM: $ms ms (drain timeout 5000 ms)"
check "drain: the in-flight h2 request gets its response, after a GOAWAY NO_ERROR" sh -c "
grep -A1 'recv GOAWAY frame' '$WORK/drain.out' | grep -q 'error_code=NO_ERROR' &&
grep -q ':status: 200' '$WORK/drain.out' && grep -q 'GET /slow h2c' '$WORK/drain.out' &&
[ \$(grep -n 'recv GOAWAY' '$WORK/drain.out' | head -1 | cut -d: -f1) -lt \$(grep -n ':status: 200' '$WORK/drain.out' | head -1 | cut -d: -f1) ]"
check "... the idle HTTP/2 connection gets GOAWAY NO_ERROR" grep -qx 'goaway=0' "$WORK/idle.out"
check "SIGTERM: the waypoint exits 0 once the stream is done, well before its 5 s deadline, with no sanitizer report" sh -c "
[ $rc = 0 ] && [ $ms -lt 3500 ] && ! grep -q 'Sanitizer\|runtime error' '$WORK/wp.log' &&
grep -q 'drained in' '$WORK/wp.log'"
finish
