#!/usr/bin/env bash
# ztunnel's Prometheus metrics on :15020 against a known traffic pattern: exact
# connection counts and bytes on both reporters, Istio's labels (workloads,
# canonical names, clusters, services, principals only from mTLS, security
# policy, response flags), a live tunnel counted while open, totals equal to
# the access log's, and Debian's promtool finding nothing wrong in a scrape.
#
#   netns node-1                                    netns node-2
#   client 198.18.250.20 --REDIRECT--> ztunnel      ztunnel :15008 --> server 198.18.250.10
#                         === HBONE over veth ===>          :15006 <-- plaintext (no capture)
#                                                           :8080 echo, :8081 halfserve
#
#   5 x VIP:80 echo of 1000 bytes       opened 5, closed 5, received 5000, sent 5000
#   1 x pod:8081 1007 bytes -> 3070     (no service: a series of its own)
#   1 x pod:9999 (nothing listens)      closed and failed with response_flags CONNECT
#   1 x plaintext pod:8080 via 15006    destination only; no principal, security unknown
. "$(dirname "$0")/lib.sh"
require_root
command -v promtool >/dev/null || { echo "FAIL: promtool missing (Debian package prometheus)"; exit 1; }
topo_two_nodes "${FAMILY:-4}"
make_ca "$WORK/ca"

cat >"$WORK/mesh.yaml" <<YAML
workloads:
- uid: Kubernetes//Pod/default/client-7d4b9-x2x
  name: client-7d4b9-x2x
  namespace: default
  serviceAccount: client
  addresses: ["$CLIENT_IP"]
  node: node-1
  tunnelProtocol: HBONE
  workloadName: client
  canonicalName: client-app
  canonicalRevision: v2
- uid: Kubernetes//Pod/default/server-5f6c8-q7w
  name: server-5f6c8-q7w
  namespace: default
  serviceAccount: server
  addresses: ["$SERVER_IP"]
  node: node-2
  tunnelProtocol: HBONE
  workloadName: server
  canonicalName: echo
  canonicalRevision: v1
  clusterId: east
  services:
    default/echo.default.svc.cluster.local:
      ports:
      - servicePort: 80
        targetPort: 8080
services:
- name: echo
  namespace: default
  hostname: echo.default.svc.cluster.local
  addresses: ["$VIP"]
  ports:
  - servicePort: 80
    targetPort: 8080
YAML

cat >"$WORK/prom.py" <<'PY'
"""prom.py FILE NAME [label=value ...]: the sum of NAME's samples whose labels match."""
import re, sys
sample = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$')
pair = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)",?')
def series(path):
    for line in open(path, encoding="utf-8"):
        line = line.rstrip("\n")
        if not line or line.startswith("#"):
            continue
        m = sample.match(line)
        if not m:
            raise SystemExit("unparsable line: %r" % line)
        labels = {k: re.sub(r'\\(.)', lambda x: {'n': '\n'}.get(x.group(1), x.group(1)), v)
                  for k, v in pair.findall(m.group(2) or "")}
        yield m.group(1), labels, float(m.group(3))
path, name, want = sys.argv[1], sys.argv[2], dict(a.split("=", 1) for a in sys.argv[3:])
total = sum(v for n, l, v in series(path)
            if n == name and all(l.get(k) == val for k, val in want.items()))
print(int(total) if total == int(total) else total)
PY
PROM="$PY $WORK/prom.py"

start_server "$N2" "$SERVER_IP" 8080 "$WORK/server.log"
start_bg "$WORK/half.log" ip netns exec "$N2" $TCPTOOL halfserve --bind "$SERVER_IP" --port 8081 --delay 0
wait_for sh -c "ip netns exec $N2 ss -Hltn 'sport = :8081' | grep -q ."
start_ztunnel "$N1" node-1 "$WORK/mesh.yaml" "$WORK/ca" "$WORK/zt1.log"
ZT1=$LAST_PID
start_ztunnel "$N2" node-2 "$WORK/mesh.yaml" "$WORK/ca" "$WORK/zt2.log"
ZT2=$LAST_PID
capture_outbound "$N1"
capture_inbound "$N2"

scrape() { # netns file [url]
    ip netns exec "$1" $PY -c "
import sys, urllib.request
r = urllib.request.urlopen(sys.argv[1], timeout=3)
assert r.status == 200, r.status
assert r.headers['Content-Type'] == 'text/plain; version=0.0.4; charset=utf-8', r.headers['Content-Type']
open(sys.argv[2], 'wb').write(r.read())" "${3:-http://127.0.0.1:15020/metrics}" "$2"
}
value() { # file name [label=value ...]
    $PROM "$@"
}
expect() { # description want file name [label=value ...]
    local what=$1 want=$2 got
    shift 2
    got=$(value "$@")
    if [ "$got" = "$want" ]; then pass "$what ($got)"; else fail "$what: want $want, got $got"; fi
}

# ---- before any traffic ------------------------------------------------------
scrape "$N1" "$WORK/m0.txt"
check "promtool check metrics: an idle ztunnel" promtool check metrics <"$WORK/m0.txt"
expect "no connection counted before traffic" 0 "$WORK/m0.txt" istio_tcp_connections_opened_total
check "istio_build names the component" grep -qE '^istio_build\{component="ztunnel",tag="[^"]+"\} 1$' "$WORK/m0.txt"

# ---- traffic -----------------------------------------------------------------
MSG=$(head -c 1000 /dev/zero | tr '\0' m)
ok=0
for i in 1 2 3 4 5; do
    ip netns exec "$N1" $TCPTOOL echo --bind "$CLIENT_IP" --connect "$(hostport "$VIP" 80)" \
        --message "$MSG" >/dev/null && ok=$((ok + 1))
done
check "5 echoes of 1000 bytes through the service VIP" test "$ok" = 5
# "C 3000\n" + 1000 bytes up (1007); "1000 <sha256 hex>\n" + 3000 bytes down (3070).
check "an asymmetric exchange with the pod (1007 up, 3070 down)" \
    ip netns exec "$N1" $TCPTOOL halfclient --bind "$CLIENT_IP" --connect "$(hostport "$SERVER_IP" 8081)" \
    --mode client-first --bytes 1000 --reply 3000
check "a connection to a closed port fails" \
    sh -c "! ip netns exec $N1 $TCPTOOL echo --bind $CLIENT_IP --connect $(hostport "$SERVER_IP" 9999) --timeout 5 2>/dev/null"
# Plaintext: node-1's capture off, so the client's bytes reach node-2's 15006 as they are.
ip netns exec "$N1" sh -c "iptables -t nat -F OUTPUT 2>/dev/null; ip6tables -t nat -F OUTPUT 2>/dev/null"
check "a plaintext echo of 500 bytes via 15006" \
    ip netns exec "$N1" $TCPTOOL echo --bind "$CLIENT_IP" --connect "$(hostport "$SERVER_IP" 8080)" \
    --message "$(head -c 500 /dev/zero | tr '\0' p)"

# Both ztunnels close their side asynchronously: wait for the last closes to be counted.
closed_is() { # netns want
    scrape "$1" "$WORK/wait.txt" && [ "$(value "$WORK/wait.txt" istio_tcp_connections_closed_total)" = "$2" ]
}
check "node-1 counted 7 closes" wait_for closed_is "$N1" 7
check "node-2 counted 8 closes" wait_for closed_is "$N2" 8
scrape "$N1" "$WORK/m1.txt"
scrape "$N2" "$WORK/m2.txt"
check "promtool check metrics: node-1 after traffic" promtool check metrics <"$WORK/m1.txt"
check "promtool check metrics: node-2 after traffic" promtool check metrics <"$WORK/m2.txt"

SRC_ID='spiffe://cluster.local/ns/default/sa/client'
DST_ID='spiffe://cluster.local/ns/default/sa/server'
SVC=(destination_service=echo.default.svc.cluster.local destination_service_name=echo
     destination_service_namespace=default)
SRC=(source_workload=client source_canonical_service=client-app source_canonical_revision=v2
     source_workload_namespace=default source_app=client-app source_version=v2
     source_cluster=Kubernetes)
DST=(destination_workload=server destination_canonical_service=echo destination_canonical_revision=v1
     destination_workload_namespace=default destination_principal=$DST_ID destination_app=echo
     destination_version=v1 destination_cluster=east)
MTLS=(request_protocol=tcp connection_security_policy=mutual_tls)
VIA_VIP=("${SRC[@]}" source_principal=$SRC_ID "${DST[@]}" "${SVC[@]}" "${MTLS[@]}" response_flags=-)
NO_SVC=("${SRC[@]}" source_principal=$SRC_ID "${DST[@]}" destination_service=unknown
        destination_service_name=unknown destination_service_namespace=unknown "${MTLS[@]}")

for side in "source $WORK/m1.txt" "destination $WORK/m2.txt"; do
    set -- $side
    r=$1 f=$2
    expect "$r: opened via the VIP, every label" 5 "$f" istio_tcp_connections_opened_total reporter=$r "${VIA_VIP[@]}"
    expect "$r: closed via the VIP" 5 "$f" istio_tcp_connections_closed_total reporter=$r "${VIA_VIP[@]}"
    expect "$r: received (request direction) via the VIP" 5000 "$f" istio_tcp_received_bytes_total reporter=$r "${VIA_VIP[@]}"
    expect "$r: sent (response direction) via the VIP" 5000 "$f" istio_tcp_sent_bytes_total reporter=$r "${VIA_VIP[@]}"
    expect "$r: received from the pod without a service" 1007 "$f" istio_tcp_received_bytes_total reporter=$r "${NO_SVC[@]}" response_flags=-
    expect "$r: sent by the pod without a service" 3070 "$f" istio_tcp_sent_bytes_total reporter=$r "${NO_SVC[@]}" response_flags=-
    expect "$r: the pod without a service: 2 opened (exchange, closed port), flags -" 2 "$f" istio_tcp_connections_opened_total reporter=$r "${NO_SVC[@]}" response_flags=-
    expect "$r: the exchange closed with flags -" 1 "$f" istio_tcp_connections_closed_total reporter=$r "${NO_SVC[@]}" response_flags=-
    expect "$r: the closed port: closed with CONNECT" 1 "$f" istio_tcp_connections_closed_total reporter=$r "${NO_SVC[@]}" response_flags=CONNECT
    expect "$r: the closed port: failed with CONNECT" 1 "$f" istio_tcp_connections_failed_total reporter=$r "${NO_SVC[@]}" response_flags=CONNECT
    expect "$r: nothing else failed" 1 "$f" istio_tcp_connections_failed_total
    expect "$r: no sample of the other reporter" 0 "$f" istio_tcp_connections_opened_total \
        reporter=$([ "$r" = source ] && echo destination || echo source)
done
expect "source: 7 opened in all" 7 "$WORK/m1.txt" istio_tcp_connections_opened_total
expect "source: no plaintext connection" 0 "$WORK/m1.txt" istio_tcp_connections_opened_total connection_security_policy=unknown
expect "destination: 8 opened in all" 8 "$WORK/m2.txt" istio_tcp_connections_opened_total
PLAIN=(reporter=destination "${SRC[@]}" source_principal=unknown "${DST[@]}" "${SVC[@]}"
       request_protocol=tcp connection_security_policy=unknown response_flags=-)
expect "plaintext: opened, no source principal, security unknown" 1 "$WORK/m2.txt" istio_tcp_connections_opened_total "${PLAIN[@]}"
expect "plaintext: received" 500 "$WORK/m2.txt" istio_tcp_received_bytes_total "${PLAIN[@]}"
expect "plaintext: sent" 500 "$WORK/m2.txt" istio_tcp_sent_bytes_total "${PLAIN[@]}"
expect "plaintext: closed" 1 "$WORK/m2.txt" istio_tcp_connections_closed_total "${PLAIN[@]}"
check "no source_principal without mTLS" \
    sh -c "! grep 'connection_security_policy=\"unknown\"' '$WORK/m2.txt' | grep -q 'source_principal=\"spiffe'"

# The totals are the access log's: received = bytes_sent of the lines, sent = bytes_recv.
log_sum() { # log field
    grep 'connection complete' "$1" | grep -o " $2=[0-9]*" | cut -d= -f2 | awk '{s+=$1} END {print s+0}'
}
for n in "1 $WORK/m1.txt $WORK/zt1.log" "2 $WORK/m2.txt $WORK/zt2.log"; do
    set -- $n
    expect "node-$1: received bytes = the access log's bytes_sent" "$(log_sum "$3" bytes_sent)" "$2" istio_tcp_received_bytes_total
    expect "node-$1: sent bytes = the access log's bytes_recv" "$(log_sum "$3" bytes_recv)" "$2" istio_tcp_sent_bytes_total
    expect "node-$1: closed = access log lines" "$(grep -c 'connection complete' "$3")" "$2" istio_tcp_connections_closed_total
done

# ---- a live tunnel: opened and its bytes counted while it is open ------------------
capture_outbound "$N1"
start_bg "$WORK/hold.log" ip netns exec "$N1" $PY -c "
import socket, sys, time
s = socket.create_connection(('$VIP', 80), timeout=5, source_address=('$CLIENT_IP', 0))
s.sendall(b'L' * 100)
got = b''
while len(got) < 100:
    got += s.recv(100)
print('echoed', len(got), flush=True)
time.sleep(float(sys.argv[1]))
s.close()" 4
HOLD=$LAST_PID
wait_for grep -q 'echoed 100' "$WORK/hold.log"
scrape "$N1" "$WORK/m3.txt"
expect "live: opened counts the open tunnel" 6 "$WORK/m3.txt" istio_tcp_connections_opened_total reporter=source "${VIA_VIP[@]}"
expect "live: its 100 bytes are already received" 5100 "$WORK/m3.txt" istio_tcp_received_bytes_total reporter=source "${VIA_VIP[@]}"
expect "live: not closed yet" 5 "$WORK/m3.txt" istio_tcp_connections_closed_total reporter=source "${VIA_VIP[@]}"
wait "$HOLD" 2>/dev/null || true
check "live: closed once it ends" wait_for closed_is "$N1" 8
scrape "$N1" "$WORK/m4.txt"
expect "live: counted once" 6 "$WORK/m4.txt" istio_tcp_connections_opened_total reporter=source "${VIA_VIP[@]}"
expect "live: bytes counted once" 5100 "$WORK/m4.txt" istio_tcp_sent_bytes_total reporter=source "${VIA_VIP[@]}"

# ---- the port itself --------------------------------------------------------------
check "/stats/prometheus serves the same metrics" scrape "$N2" "$WORK/m5.txt" http://127.0.0.1:15020/stats/prometheus
check "/stats/prometheus: istio_tcp_connections_opened_total" grep -q '^istio_tcp_connections_opened_total{' "$WORK/m5.txt"
check "15020 answers on node-1's link address, scraped from node-2 (all addresses)" \
    scrape "$N2" "$WORK/m6.txt" "http://$(hostport "$LINK_SELF" 15020)/metrics"
check "15020 answers on [::1]" scrape "$N1" "$WORK/m7.txt" "http://[::1]:15020/metrics"
# The kubelet's readinessProbe connects to the pod's address, never to its loopback.
check "15021 readiness answers on node-1's link address, from node-2" ip netns exec "$N2" $PY -c "
import sys, urllib.request
r = urllib.request.urlopen(sys.argv[1], timeout=3)
raise SystemExit(0 if r.status == 200 else 1)" "http://$(hostport "$LINK_SELF" 15021)/healthz/ready"
check "other paths are 404" ip netns exec "$N1" $PY -c "
import urllib.request, urllib.error
try:
    urllib.request.urlopen('http://127.0.0.1:15020/config_dump', timeout=3)
except urllib.error.HTTPError as e:
    raise SystemExit(0 if e.code == 404 else 1)
raise SystemExit(1)"
now=$(date +%s)
start=$(value "$WORK/m4.txt" process_start_time_seconds | cut -d. -f1)
check "process_start_time_seconds is this run's ($start)" test "$start" -le "$now" -a "$start" -gt $((now - 600))
check "process_open_fds counted" test "$(value "$WORK/m4.txt" process_open_fds)" -gt 5
check "process_resident_memory_bytes counted" test "$(value "$WORK/m4.txt" process_resident_memory_bytes)" -gt 1000000
check "process_cpu_seconds_total present" grep -q '^process_cpu_seconds_total ' "$WORK/m4.txt"
for fam in istio_tcp_connections_opened_total istio_tcp_connections_closed_total \
    istio_tcp_connections_failed_total istio_tcp_received_bytes_total istio_tcp_sent_bytes_total; do
    check "$fam: HELP and TYPE counter" grep -q "^# TYPE $fam counter$" "$WORK/m4.txt"
done

check "node-1 ztunnel exits 0 on SIGTERM, sanitizers clean" stop_ztunnel "$ZT1" "$WORK/zt1.log"
check "node-2 ztunnel exits 0 on SIGTERM, sanitizers clean" stop_ztunnel "$ZT2" "$WORK/zt2.log"

# ---- xDS client metrics: a ztunnel fed by meshd in node-1 -----------------------------
write_k8s_config "$WORK/k8s"
start_meshd "$WORK/k8s" "$WORK/state" "$WORK/meshd.log"
start_ztunnel_xds "$N1" node-1 "$WORK/state" "$WORK/zt1x.log"
ZT1X=$LAST_PID
ADDR_URL=url=type.googleapis.com/istio.workload.Address
scrape "$N1" "$WORK/x1.txt"
check "xDS: Address responses counted" test "$(value "$WORK/x1.txt" istio_xds_message_total "$ADDR_URL")" -ge 1
check "xDS: their bytes counted" test "$(value "$WORK/x1.txt" istio_xds_message_bytes_total "$ADDR_URL")" -gt 100
expect "xDS: no termination yet" 0 "$WORK/x1.txt" istio_xds_connection_terminations_total
check "promtool check metrics: a ztunnel on xDS" promtool check metrics <"$WORK/x1.txt"
check "meshd stops cleanly" stop_meshd "$MESHD_PID" "$WORK/meshd.log"
terminated() {
    scrape "$N1" "$WORK/x2.txt" && [ "$(value "$WORK/x2.txt" istio_xds_connection_terminations_total)" -ge 1 ]
}
check "xDS: the stream's end is counted when meshd goes" wait_for terminated
check "xDS: terminations carry ztunnel's reasons" \
    sh -c "grep '^istio_xds_connection_terminations_total{' '$WORK/x2.txt' | grep -qE 'reason=\"(Complete|Error|ConnectionError)\"'"
check "xDS ztunnel exits 0 on SIGTERM, sanitizers clean" stop_ztunnel "$ZT1X" "$WORK/zt1x.log"
finish
