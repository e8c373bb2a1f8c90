#!/usr/bin/env bash
# ztunnel sends bound traffic to a waypoint (issue 10 section 2; waypoint.md 1 "ztunnel's
# decision"). The waypoint replicas are tests/support/fake_waypoint.py, an HBONE server in
# python3-h2 sharing no code with amesh, which logs each CONNECT's :authority and the client's
# certificate and answers with its own name.
#
#   node-1: ztunnel, client 198.18.250.20, wpself 198.18.250.21 (a replica of wp, never ready)
#   node-2: ztunnel, server 198.18.250.10:8080, waypoint replicas wp-1 .30 and wp-2 .31,
#           impostor .32 (presents sa/impostor while its workload says sa/waypoint)
#   services: echo VIP .10:80 -> server (waypoint wp); direct VIP .11:80 (no waypoint);
#           lost VIP .12:80 (waypoint "nowhere": no such service); dark VIP .13:80 (waypoint
#           darkwp: its only replica unhealthy); fake VIP .14:80 (waypoint badwp -> impostor);
#           the workload server itself has waypoint wp (pod-addressed traffic)
#
# Checks: service traffic reaches a replica with :authority = VIP:port and the client's own
# identity; pod traffic with :authority = podIP:port; a service without a waypoint is direct;
# 10 held connections split 5/5 over two replicas (fewest open streams); a waypoint that does
# not resolve, or has no ready replica, refuses (reset, log line, failed counter), never direct;
# a replica whose certificate is not the waypoint's identity gets no CONNECT; a replica of the
# waypoint dialling the pod it serves is not sent back to the waypoint.
. "$(dirname "$0")/lib.sh"
require_root
topo_two_nodes 4
make_ca "$WORK/ca"
MKCERTS="$PY $ROOT/tests/support/mkcerts.py"
WP="$PY $ROOT/tests/support/fake_waypoint.py"
TD=spiffe://cluster.local/ns/default/sa
VIP_DIRECT=198.19.0.11 VIP_LOST=198.19.0.12 VIP_DARK=198.19.0.13 VIP_FAKE=198.19.0.14
WPSELF=198.18.250.21 WP1=198.18.250.30 WP2=198.18.250.31 IMP=198.18.250.32
ip -n "$N1" addr add $WPSELF/32 dev lo
for a in $WP1 $WP2 $IMP; do ip -n "$N2" addr add $a/32 dev lo; done

wl() { # name ip node sa [extra yaml lines]
    printf -- '- uid: Kubernetes//Pod/default/%s\n  name: %s\n  namespace: default\n  serviceAccount: %s\n  addresses: ["%s"]\n  node: %s\n  tunnelProtocol: HBONE\n' "$1" "$1" "$4" "$2" "$3"
    [ -n "${5:-}" ] && printf '%s\n' "$5"
    return 0
}
wpref() { # service name
    printf '  waypoint:\n    hostname: {namespace: default, hostname: %s.default.svc.cluster.local}\n    hboneMtlsPort: 15008' "$1"
}
member() { # service name, port
    printf '  services:\n    default/%s.default.svc.cluster.local:\n      ports: [{servicePort: %s, targetPort: %s}]' "$1" "$2" "$2"
}
svc() { # name vip port [extra]
    printf -- '- name: %s\n  namespace: default\n  hostname: %s.default.svc.cluster.local\n  addresses: ["%s"]\n  ports: [{servicePort: %s, targetPort: %s}]\n' "$1" "$1" "$2" "$3" "$3"
    [ -n "${4:-}" ] && printf '%s\n' "$4"
    return 0
}
{
    echo "workloads:"
    wl client $CLIENT_IP node-1 client
    wl server $SERVER_IP node-2 server "$(wpref wp)
  services:
    default/echo.default.svc.cluster.local: {ports: [{servicePort: 80, targetPort: 8080}]}
    default/direct.default.svc.cluster.local: {ports: [{servicePort: 80, targetPort: 8080}]}
    default/lost.default.svc.cluster.local: {ports: [{servicePort: 80, targetPort: 8080}]}
    default/dark.default.svc.cluster.local: {ports: [{servicePort: 80, targetPort: 8080}]}
    default/fake.default.svc.cluster.local: {ports: [{servicePort: 80, targetPort: 8080}]}"
    wl wp-1 $WP1 node-2 waypoint "$(member wp 15008)"
    wl wp-2 $WP2 node-2 waypoint "$(member wp 15008)"
    wl wpself $WPSELF node-1 waypoint "$(member wp 15008)
  status: UNHEALTHY"
    wl dark-1 198.18.250.33 node-2 waypoint "$(member darkwp 15008)
  status: UNHEALTHY"
    wl impostor $IMP node-2 waypoint "$(member badwp 15008)"
    echo "services:"
    svc echo $VIP 80 "$(wpref wp)"
    svc direct $VIP_DIRECT 80
    svc lost $VIP_LOST 80 "$(wpref nowhere)"
    svc dark $VIP_DARK 80 "$(wpref darkwp)"
    svc fake $VIP_FAKE 80 "$(wpref badwp)"
    svc wp 198.19.0.20 15008
    svc darkwp 198.19.0.21 15008
    svc badwp 198.19.0.22 15008
    echo "policies: []"
} >"$WORK/mesh.yaml"

$MKCERTS leaf --ca "$WORK/ca" --cert "$WORK/wp.pem" --key "$WORK/wp-key.pem" --uri "$TD/waypoint"
$MKCERTS leaf --ca "$WORK/ca" --cert "$WORK/imp.pem" --key "$WORK/imp-key.pem" --uri "$TD/impostor"
start_fake() { # ip name cert key
    start_bg "$WORK/$2.out" ip netns exec "$N2" $WP --bind "$1" --ca "$WORK/ca/root-cert.pem" \
        --cert "$3" --key "$4" --log "$WORK/$2.log" --name "$2"
}
start_server "$N2" "$SERVER_IP" 8080 "$WORK/server.log"
start_ztunnel "$N1" node-1 "$WORK/mesh.yaml" "$WORK/ca" "$WORK/zt1.log"
start_ztunnel "$N2" node-2 "$WORK/mesh.yaml" "$WORK/ca" "$WORK/zt2.log"
start_fake $WP1 wp-1 "$WORK/wp.pem" "$WORK/wp-key.pem"
start_fake $WP2 wp-2 "$WORK/wp.pem" "$WORK/wp-key.pem"
start_fake $IMP impostor "$WORK/imp.pem" "$WORK/imp-key.pem"
wait_for sh -c "[ \$(ip netns exec $N2 ss -Hltn 'sport = :15008' | wc -l) -ge 4 ]"
capture_outbound "$N1"

# Connects from |src| to |dst|, sends a line, prints the first line back ("" on failure).
first_line() { # src dst
    ip netns exec "$N1" $PY - "$1" "$2" <<'PY'
import socket, sys
src, dst = sys.argv[1], sys.argv[2]
host, port = dst.rsplit(":", 1)
s = socket.socket()
s.settimeout(8)
try:
    s.bind((src, 0)); s.connect((host, int(port))); s.sendall(b"hello\n")
    print(s.makefile().readline().strip())
except OSError as e:
    print("error %s" % e.__class__.__name__)
PY
}
count() { grep -c "$1" "$2" 2>/dev/null || true; }

out=$(first_line $CLIENT_IP $VIP:80)
echo "service via waypoint: $out"
check "service traffic goes to a waypoint replica" sh -c "echo '$out' | grep -Eq '^waypoint wp-[12] authority=$VIP:80\$'"
check "the replica saw :authority VIP:port, the client's identity and forwarded host" sh -c "
cat '$WORK'/wp-1.log '$WORK'/wp-2.log | grep -q 'connect authority=$VIP:80 peer=$TD/client forwarded=for=\"$CLIENT_IP:[0-9]*\";host=echo.default.svc.cluster.local'"
out=$(first_line $CLIENT_IP $SERVER_IP:8080)
echo "pod via waypoint: $out"
check "pod-addressed traffic to a workload with a waypoint goes to it, :authority podIP:port" sh -c "
echo '$out' | grep -Eq '^waypoint wp-[12] authority=$SERVER_IP:8080\$'"
out=$(first_line $CLIENT_IP $VIP_DIRECT:80)
check "a service without a waypoint goes straight to its endpoint" [ "$out" = hello ]

# Fewest open streams: 10 connections held open split evenly.
: >"$WORK/wp-1.log"; : >"$WORK/wp-2.log"
ip netns exec "$N1" $PY - $CLIENT_IP $VIP >"$WORK/hold.out" 2>&1 <<'PY' &
import socket, sys, time
src, vip = sys.argv[1], sys.argv[2]
held = []
for i in range(10):
    s = socket.socket(); s.settimeout(8); s.bind((src, 0)); s.connect((vip, 80))
    s.sendall(b"x\n"); print(s.makefile().readline().strip(), flush=True)
    held.append(s)
time.sleep(3)
PY
HOLD=$!
wait_for sh -c "[ \$(cat '$WORK/wp-1.log' '$WORK/wp-2.log' | grep -c connect) -ge 10 ]"
sleep 0.3
n1=$(count connect "$WORK/wp-1.log"); n2=$(count connect "$WORK/wp-2.log")
echo "held connections: wp-1 $n1, wp-2 $n2"
check "10 held connections split 5/5 over the two replicas (fewest open streams)" [ "$n1" = 5 -a "$n2" = 5 ]
wait $HOLD || true

failed_total() {
    ip netns exec "$N1" curl -s http://127.0.0.1:15020/metrics |
        awk '/^istio_tcp_connections_failed_total\{/ && /reporter="source"/ { s += $NF } END { print s + 0 }'
}
f0=$(failed_total)
out=$(first_line $CLIENT_IP $VIP_LOST:80)
check "a waypoint that does not resolve refuses the connection (never direct)" sh -c "echo '$out' | grep -q '^error\|^\$'"
check "... and says why" grep -q "waypoint not found default/nowhere.default.svc.cluster.local: refused" "$WORK/zt1.log"
out=$(first_line $CLIENT_IP $VIP_DARK:80)
check "a waypoint without a ready replica refuses (never direct)" sh -c "echo '$out' | grep -q '^error\|^\$'"
check "... and says why" grep -q "no ready waypoint replica default/darkwp.default.svc.cluster.local: refused" "$WORK/zt1.log"
f1=$(failed_total)
check "both refusals are counted in istio_tcp_connections_failed_total" [ "$((f1 - f0))" -ge 2 ]

out=$(first_line $CLIENT_IP $VIP_FAKE:80)
check "a replica presenting another identity gets no CONNECT" sh -c "
echo '$out' | grep -q '^error\|^\$' && ! grep -q connect '$WORK/impostor.log'"

: >"$WORK/wp-1.log"; : >"$WORK/wp-2.log"
out=$(first_line $WPSELF $SERVER_IP:8080)
check "a waypoint replica dialling the pod it serves goes direct, not back to the waypoint" sh -c "
[ '$out' = hello ] && ! grep -q connect '$WORK/wp-1.log' '$WORK/wp-2.log'"
finish
