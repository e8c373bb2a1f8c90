#!/usr/bin/env bash
# Per-pod limits on a shared ztunnel (tenant.c): with --pod-max-connections 4 a pod's fifth and
# sixth connections are reset at once while its first four work, another pod on the same
# ztunnel is not affected, the refusals are counted, and closing connections frees the pod's
# share; with --pod-max-dials 2, connects to a destination that never answers hold two dials
# and the rest are refused at once instead of piling up. Runs with the default workers (each
# gets its share of a cap; balancing spreads one pod's connections over them).
. "$(dirname "$0")/lib.sh"
require_root
topo_two_nodes 4
make_ca "$WORK/ca"
write_config "$WORK/mesh.yaml"
CLIENT2_IP=198.18.250.21
BLACKHOLE=198.18.99.1
ip -n "$N1" addr add $CLIENT2_IP/32 dev lo
add_client2 "$WORK/mesh.yaml" "$CLIENT2_IP" client2
# A destination outside the mesh that drops every SYN: a dial to it stays in progress.
ip -n "$N2" addr add $BLACKHOLE/32 dev lo
ip netns exec "$N2" iptables -A INPUT -d $BLACKHOLE -p tcp --syn -j DROP
start_server "$N2" "$SERVER_IP" 8080 "$WORK/server.log"
start_ztunnel "$N1" node-1 "$WORK/mesh.yaml" "$WORK/ca" "$WORK/zt1.log" \
    --pod-max-connections 4 --pod-max-dials 2
ZT1=$LAST_PID
start_ztunnel "$N2" node-2 "$WORK/mesh.yaml" "$WORK/ca" "$WORK/zt2.log"
ZT2=$LAST_PID
capture_outbound "$N1"
say "ztunnel workers: $ZT_WORKERS"

# open N connections from SRC to DST, send on each, print "ok K fail M" once every one echoed
# or failed, then hold them until the stop file appears.
cat >"$WORK/conns.py" <<'PY'
import os, socket, sys, time
src, host, port, n, stop, wait = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5], float(sys.argv[6])
socks, ok, fail = [], 0, 0
for i in range(n):
    s = socket.socket()
    s.bind((src, 0))
    s.settimeout(wait)
    try:
        s.connect((host, port))
        s.sendall(b"ping-%d\n" % i)
        data = s.recv(64)
        if data.startswith(b"ping-"):
            ok += 1
            socks.append(s)
        else:
            fail += 1
            s.close()
    except OSError:
        fail += 1
        s.close()
print("ok %d fail %d" % (ok, fail), flush=True)
deadline = time.time() + 60
while not os.path.exists(stop) and time.time() < deadline:
    time.sleep(0.05)
PY
conns() { # out src host port n wait -> starts it in the background (LAST_PID)
    start_bg "$1" ip netns exec "$N1" $PY "$WORK/conns.py" "$2" "$3" "$4" "$5" "$WORK/$(basename "$1").stop" "$6"
}
result() { wait_secs 20 grep -q '^ok ' "$1"; sed -n 's/^\(ok .*\)$/\1/p' "$1"; }
metric() { # series
    ip netns exec "$N1" $PY -c "
import sys, urllib.request
for l in urllib.request.urlopen('http://127.0.0.1:15020/metrics', timeout=3).read().decode().splitlines():
    if l.startswith(sys.argv[1] + ' '): print(int(float(l.split()[1])))" "$1"
}

# ---- connections ----------------------------------------------------------------------------
conns "$WORK/a" "$CLIENT_IP" "$SERVER_IP" 8080 6 3
A_PID=$LAST_PID
R=$(result "$WORK/a")
say "client, 6 connections with a cap of 4: $R"
check "the pod's first four connections work, the fifth and sixth are refused ($R)" test "$R" = "ok 4 fail 2"
conns "$WORK/b" "$CLIENT2_IP" "$SERVER_IP" 8080 3 3
B_PID=$LAST_PID
R2=$(result "$WORK/b")
check "another pod on the same ztunnel is not affected ($R2)" test "$R2" = "ok 3 fail 0"
check "the refusals are counted: limit=connections 2" \
    test "$(metric 'amesh_ztunnel_pod_limit_refused_total{limit="connections"}')" = 2
check "the refusal is logged with the pod" grep -q 'ip/198.18.250.20: at its limit of .* connections' "$WORK/zt1.log"
touch "$WORK/a.stop" "$WORK/b.stop"
wait "$A_PID" "$B_PID" 2>/dev/null || true
wait_secs 10 sh -c "[ \$(ip netns exec $N1 ss -Htn state established '( sport = :15001 )' | wc -l) -eq 0 ]" || true
conns "$WORK/c" "$CLIENT_IP" "$SERVER_IP" 8080 4 3
R3=$(result "$WORK/c")
check "closed connections free the pod's share: four work again ($R3)" test "$R3" = "ok 4 fail 0"
touch "$WORK/c.stop"

# ---- dials in progress ----------------------------------------------------------------------
conns "$WORK/d" "$CLIENT_IP" "$BLACKHOLE" 9 4 2
D_PID=$LAST_PID
R4=$(result "$WORK/d")
check "connects to a black hole: none succeeds ($R4)" test "$R4" = "ok 0 fail 4"
DIALS_REFUSED=$(metric 'amesh_ztunnel_pod_limit_refused_total{limit="dials"}')
# Each of the 2 workers may have 1 dial of the pod's 2 in progress; which worker a connection
# lands on, and whether a dial slot came free meanwhile, varies: at least one is refused.
check "connects past the dial cap were refused at once: limit=dials >= 1 (got $DIALS_REFUSED)" \
    test "${DIALS_REFUSED:-0}" -ge 1 -a "${DIALS_REFUSED:-0}" -le 2
check "the dial refusal is logged with the pod" grep -q 'ip/198.18.250.20: at its limit of .* dials' "$WORK/zt1.log"
touch "$WORK/d.stop"
wait "$D_PID" 2>/dev/null || true
# The two dials in progress end at ztunnel's connect timeout (10 s): then the pod may dial again.
check "the dials in progress time out and are logged" \
    wait_secs 15 sh -c "[ \$(grep -c 'connection to the destination failed' '$WORK/zt1.log') -ge 2 ]"

check "node-1 ztunnel exits 0 on SIGTERM, sanitizers clean" stop_ztunnel "$ZT1" "$WORK/zt1.log"
check "node-2 ztunnel exits 0 on SIGTERM, sanitizers clean" stop_ztunnel "$ZT2" "$WORK/zt2.log"
finish
