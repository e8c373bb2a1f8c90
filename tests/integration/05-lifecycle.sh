#!/usr/bin/env bash
# Operational behaviour of ztunnel, two nodes as in 01-two-node-hbone.sh:
#   - JSON access log (--log-format json);
#   - certificate rotation (--cert-ttl 10: renewed at half-life, traffic keeps working);
#   - SIGTERM drain on the server side (--drain-timeout 3): readiness 503, new
#     connections refused at once, the open tunnel works until the deadline,
#     then is closed, and the process exits 0 shortly after;
#   - an idle ztunnel exits promptly on SIGTERM;
#   - out of file descriptors, ztunnel neither spins nor floods its log;
#   - SIGTERM drain on the client side (--drain-timeout 2);
#   - a malformed config is refused at start with "file:line: reason".
. "$(dirname "$0")/lib.sh"
require_root
topo_two_nodes "${FAMILY:-4}"
make_ca "$WORK/ca"
write_config "$WORK/mesh.yaml"

SUPPORT=$ROOT/tests/support
SRC_ID='spiffe://cluster.local/ns/default/sa/client'
DST_ID='spiffe://cluster.local/ns/default/sa/server'
DRAIN=3  # server side
DRAIN1=2 # client side
SERVER=$(hostport "$SERVER_IP" 8080)

start_server "$N2" "$SERVER_IP" 8080 "$WORK/server.log"
start_ztunnel "$N1" node-1 "$WORK/mesh.yaml" "$WORK/ca" "$WORK/zt1.log" --log-format json --cert-ttl 10 \
    --drain-timeout $DRAIN1
ZT1=$LAST_PID
ZT2_START=$(date +%s.%N) # before launch: intervals measured from here are upper bounds
start_ztunnel "$N2" node-2 "$WORK/mesh.yaml" "$WORK/ca" "$WORK/zt2.log" --cert-ttl 10 \
    --drain-timeout $DRAIN
ZT2=$LAST_PID
capture_outbound "$N1"

# shellcheck disable=SC2034 # WAIT_SECS is read by wait_for
within() { local WAIT_SECS=$1; shift; wait_for "$@"; } # secs command...
now() { date +%s.%N; }
elapsed() { echo "$(now) - $1" | bc; } # since
lt() { [ "$(echo "$1 < $2" | bc)" = 1 ]; }
ready_status() { # netns -> HTTP status of /healthz/ready, or "down"
    ip netns exec "$1" $PY -c "
import urllib.request, urllib.error
try:
    print(urllib.request.urlopen('http://127.0.0.1:15021/healthz/ready', timeout=1).status)
except urllib.error.HTTPError as e:
    print(e.code)
except OSError:
    print('down')"
}
# Serial (decimal) / validFrom of the certificate for identity $2 in /config_dump of netns $1.
cert_field() { # netns identity field
    ip netns exec "$1" $PY -c "
import json, sys, urllib.request
d = json.load(urllib.request.urlopen('http://127.0.0.1:15000/config_dump', timeout=2))
c = [c for c in d['certificates'] if c['identity'] == sys.argv[1]]
print(c[0]['certChain'][0][sys.argv[2]] if c else '')" "$2" "$3"
}
is_503() { [ "$(ready_status "$N2")" = 503 ]; }
echo_ok() { ip netns exec "$N1" $TCPTOOL echo --bind "$CLIENT_IP" --connect "$SERVER" --timeout 5 "$@" >/dev/null; }

# ---- JSON access log ---------------------------------------------------------
say "JSON access log"
MSG="json-log-probe-$RANDOM"
check "traffic flows" echo_ok --message "$MSG"
sleep 0.3
check "every line of the JSON log is a JSON object" $PY - "$WORK/zt1.log" <<'PY'
import json, sys
bad = 0
for i, line in enumerate(open(sys.argv[1]), 1):
    try:
        assert isinstance(json.loads(line), dict)
    except (ValueError, AssertionError):
        bad += 1
        if bad <= 3:
            print("# line %d is not a JSON object: %s" % (i, line.strip()[:400]))
sys.exit(0 if bad == 0 else 1)
PY
check "the JSON access line has identities, workloads, addresses and byte counts" \
    $PY - "$WORK/zt1.log" "$SRC_ID" "$DST_ID" "${#MSG}" "$SERVER_IP" <<'PY'
import json, sys
path, src, dst, n, sip = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
acc = []
for line in open(path):
    if '"connection complete"' in line:
        try:
            acc.append(json.loads(line))
        except ValueError:
            print("# access line does not parse as JSON")
            sys.exit(1)
for r in acc:
    print("# " + json.dumps(r, sort_keys=True))
ok = len(acc) == 1
r = acc[0] if acc else {}
ok = ok and r.get("src.identity") == src and r.get("dst.identity") == dst
ok = ok and r.get("direction") == "outbound" and r.get("src.workload") == "client"
ok = ok and r.get("dst.workload") == "server" and r.get("dst.namespace") == "default"
ok = ok and r.get("bytes_sent") == n and r.get("bytes_recv") == n
ok = ok and isinstance(r.get("bytes_sent"), int) and "error" not in r
ok = ok and str(r.get("dst.hbone_addr", "")).rpartition(":")[0].strip("[]") == sip
ok = ok and all(k in r for k in ("level", "time", "scope", "src.addr", "dst.addr", "duration"))
sys.exit(0 if ok else 1)
PY

# ---- certificate rotation ------------------------------------------------------
say "certificate rotation with --cert-ttl 10"
SERIAL0=$(cert_field "$N2" "$DST_ID" serialNumber)
C_SERIAL0=$(cert_field "$N1" "$SRC_ID" serialNumber)
NB0=$(cert_field "$N2" "$DST_ID" validFrom)
NA0=$(cert_field "$N2" "$DST_ID" expirationTime)
say "server certificate at start: serial $SERIAL0, notBefore $NB0, notAfter $NA0"
check "certificate lifetime is the requested 10 s (notAfter - now <= 10 s)" $PY -c "
import datetime as d, sys
na = d.datetime.strptime('$NA0', '%Y-%m-%dT%H:%M:%SZ').replace(tzinfo=d.timezone.utc)
left = (na - d.datetime.now(d.timezone.utc)).total_seconds()
print('# notAfter is %.1f s away' % left)
sys.exit(0 if 0 < left <= 11 else 1)"
# A tunnel opened before the rotation, probed every 100 ms across it.
start_bg "$WORK/rot-probe.out" ip netns exec "$N1" $PY "$SUPPORT/lifecycle_probe.py" \
    --bind "$CLIENT_IP" --connect "$SERVER" --duration 9 --ready-file "$WORK/rot-probe.ready"
ROT_PROBE=$LAST_PID
within 10 test -e "$WORK/rot-probe.ready" || true
# Watch the serial: it must change at ~half-life (5 s after minting), not much earlier.
SERIALS=("$SERIAL0")
CHANGE_AT=""
DEADLINE=$(echo "$ZT2_START + 12" | bc)
while lt "$(now)" "$DEADLINE"; do
    s=$(cert_field "$N2" "$DST_ID" serialNumber)
    if [ -n "$s" ] && [ "$s" != "${SERIALS[-1]}" ]; then
        SERIALS+=("$s")
        [ -z "$CHANGE_AT" ] && CHANGE_AT=$(elapsed "$ZT2_START")
    fi
    sleep 0.2
done
say "serials seen in the first 12 s: ${SERIALS[*]} (first change ${CHANGE_AT:-never} s after start)"
check "the serial in /config_dump changed" test -n "$CHANGE_AT" -a "${#SERIALS[@]}" -ge 2
# Certificate times have whole seconds, so half-life may come up to ~1 s early.
check "... at ~half-life: 3.5 to 7.5 s after start (saw ${CHANGE_AT:-never})" \
    sh -c "[ -n '$CHANGE_AT' ] && [ \$(echo '3.5 <= ${CHANGE_AT:-0} && ${CHANGE_AT:-0} <= 7.5' | bc) = 1 ]"
check "rotation is at half-life, not continuous (at most 4 serials in 12 s; saw ${#SERIALS[@]})" \
    test "${#SERIALS[@]}" -le 4
NB1=$(cert_field "$N2" "$DST_ID" validFrom)
check "the new certificate is newer (notBefore $NB0 -> $NB1)" test "$NB1" \> "$NB0"
check "client node rotated its certificate too" \
    test "$(cert_field "$N1" "$SRC_ID" serialNumber)" != "$C_SERIAL0"

wait "$ROT_PROBE" || true
cat "$WORK/rot-probe.out"
check "a tunnel opened before the rotation kept working across it" $PY -c "
import json, sys
r = json.loads(open('$WORK/rot-probe.out').read().strip().splitlines()[-1])
sys.exit(0 if r['end_reason'] == 'done' and r['ok'] >= 40 else 1)"
check "new connections work after the rotation" echo_ok --message after-rotation
# A brand-new HBONE connection must present the current certificate: mTLS with a
# client certificate minted from the same CA, from node-2 itself (not captured).
openssl ecparam -name prime256v1 -genkey -noout -out "$WORK/probe-key.pem" 2>/dev/null
openssl req -new -key "$WORK/probe-key.pem" -subj "/O=amesh-test" -out "$WORK/probe.csr" 2>/dev/null
printf 'subjectAltName=critical,URI:%s\nextendedKeyUsage=clientAuth\n' "$SRC_ID" >"$WORK/probe.ext"
openssl x509 -req -in "$WORK/probe.csr" -CA "$WORK/ca/root-cert.pem" -CAkey "$WORK/ca/root-key.pem" \
    -CAcreateserial -days 1 -extfile "$WORK/probe.ext" -out "$WORK/probe-cert.pem" 2>/dev/null
served_serial() {
    ip netns exec "$N2" timeout 5 openssl s_client -connect "$(hostport "$SERVER_IP" 15008)" \
        -cert "$WORK/probe-cert.pem" -key "$WORK/probe-key.pem" -CAfile "$WORK/ca/root-cert.pem" \
        -alpn h2 -tls1_3 </dev/null 2>/dev/null | openssl x509 -noout -serial 2>/dev/null | sed 's/^serial=//'
}
DUMPED_A=$(cert_field "$N2" "$DST_ID" serialNumber)
SERVED=$(served_serial)
DUMPED_B=$(cert_field "$N2" "$DST_ID" serialNumber)
say "served serial $SERVED, /config_dump serial $DUMPED_A / $DUMPED_B"
check "a new HBONE connection is served the rotated certificate of /config_dump" $PY -c "
import sys
h = lambda x: int(x) if x else -1  # /config_dump: decimal, as Istio's ztunnel
served, old = int('$SERVED', 16) if '$SERVED' else -1, h('$SERIAL0')
# a rotation may fall between the two reads of /config_dump: accept either
sys.exit(0 if served > 0 and served != old and served in (h('$DUMPED_A'), h('$DUMPED_B')) else 1)"

# ---- SIGTERM drain --------------------------------------------------------------
say "SIGTERM drain of the server-side ztunnel (--drain-timeout $DRAIN)"
start_bg "$WORK/drain-probe.out" ip netns exec "$N1" $PY "$SUPPORT/lifecycle_probe.py" \
    --bind "$CLIENT_IP" --connect "$SERVER" --duration 30 --probe-timeout 2 \
    --ready-file "$WORK/drain-probe.ready"
DRAIN_PROBE=$LAST_PID
within 10 test -e "$WORK/drain-probe.ready" || true
check "readiness is 200 before SIGTERM" test "$(ready_status "$N2")" = 200
T_TERM=$(now)
kill -TERM "$ZT2"
check "readiness turns 503 (within 2 s)" within 2 is_503
# New connections are refused quickly: through the mesh the app sees a failure, not a hang.
T0=$(now)
if echo_ok --message during-drain 2>/dev/null; then NEW_RC=0; else NEW_RC=1; fi
NEW_SECS=$(elapsed "$T0")
check "a new connection through the mesh fails (in ${NEW_SECS} s)" test "$NEW_RC" -eq 1
check "... and fails quickly (< 1.5 s), not at the drain deadline" lt "$NEW_SECS" 1.5
check "the HBONE port refuses new TCP connections" ip netns exec "$N2" $PY -c "
import socket, sys
s = socket.socket(socket.AF_INET6 if ':' in '$SERVER_IP' else socket.AF_INET)
s.settimeout(2)
try:
    s.connect(('$SERVER_IP', 15008))
except ConnectionRefusedError:
    sys.exit(0)
sys.exit(1)"
# Wait for the process to go, bounded.
EXIT_RC=""
for _ in $(seq 100); do
    if ! kill -0 "$ZT2" 2>/dev/null; then break; fi
    sleep 0.1
done
EXIT_SECS=$(elapsed "$T_TERM")
if kill -0 "$ZT2" 2>/dev/null; then
    kill -9 "$ZT2" 2>/dev/null || true
fi
wait "$ZT2" && EXIT_RC=0 || EXIT_RC=$?
wait "$DRAIN_PROBE" || true
cat "$WORK/drain-probe.out"
say "ztunnel exited with $EXIT_RC ${EXIT_SECS} s after SIGTERM"
check "the open tunnel kept working until the deadline and was then closed" \
    $PY - "$WORK/drain-probe.out" "$T_TERM" "$DRAIN" <<'PY'
import json, sys
r = json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])
t, d = float(sys.argv[2]), float(sys.argv[3])
last, end = r["last_ok"] - t, r["end"] - t
print("# last good probe %.2f s after SIGTERM, closed (%s) at %.2f s" % (last, r["end_reason"], end))
ok = last >= d - 0.5 and d - 0.5 <= end <= d + 1.5 and r["end_reason"] in ("eof", "reset")
sys.exit(0 if ok else 1)
PY
check "ztunnel exited with status 0" test "$EXIT_RC" = 0
check "... within deadline + 1 s (${EXIT_SECS} s)" lt "$EXIT_SECS" $((DRAIN + 1)).2
check "its log tells the drain story" sh -c \
    "grep -q 'received SIGTERM' '$WORK/zt2.log' && grep -q 'drain deadline reached' '$WORK/zt2.log'"
check "the force-closed tunnel is in the access log with its reason" \
    grep -q 'direction="inbound".*error="drain deadline reached"' "$WORK/zt2.log"
check "no sanitizer report from the drained ztunnel" \
    sh -c "! grep -q -E 'AddressSanitizer|LeakSanitizer|runtime error' '$WORK/zt2.log'"

# ---- idle ztunnel exits promptly ----------------------------------------------
say "SIGTERM to an idle ztunnel (default 5 s drain deadline)"
start_ztunnel "$N2" node-2 "$WORK/mesh.yaml" "$WORK/ca" "$WORK/zt2b.log"
ZT2B=$LAST_PID
T0=$(now)
kill -TERM "$ZT2B"
for _ in $(seq 60); do kill -0 "$ZT2B" 2>/dev/null || break; sleep 0.05; done
IDLE_SECS=$(elapsed "$T0")
kill -0 "$ZT2B" 2>/dev/null && kill -9 "$ZT2B"
wait "$ZT2B" && IDLE_RC=0 || IDLE_RC=$?
say "idle ztunnel exited with $IDLE_RC after ${IDLE_SECS} s"
check "idle ztunnel exits 0 promptly on SIGTERM (< 1 s)" sh -c "[ $IDLE_RC = 0 ] && [ \$(echo '$IDLE_SECS < 1' | bc) = 1 ]"
check "... sanitizers clean" sh -c "! grep -q -E 'AddressSanitizer|LeakSanitizer|runtime error' '$WORK/zt2b.log'"

# ---- malformed config -----------------------------------------------------------
say "malformed config"
bad_config() { # name sed-expression pattern-of-line -> runs ztunnel, checks file:line: reason
    local name=$1 expr=$2 reason=$3 line
    sed "$expr" "$WORK/mesh.yaml" >"$WORK/$name.yaml"
    line=$(diff "$WORK/mesh.yaml" "$WORK/$name.yaml" | sed -n 's/^\([0-9]*\)c.*/\1/p' | head -1)
    local rc=0
    timeout 10 ip netns exec "$N1" "$BIN/ztunnel" --local-config "$WORK/$name.yaml" --node node-1 \
        --ca-dir "$WORK/ca" >"$WORK/$name.out" 2>"$WORK/$name.err" || rc=$?
    say "$name (line $line): exit $rc: $(head -c 300 "$WORK/$name.err")"
    [ "$rc" -ne 0 ] && [ "$rc" -ne 124 ] && [ -n "$line" ] &&
        grep -q -F "$name.yaml:$line:" "$WORK/$name.err" && grep -q -i -E "$reason" "$WORK/$name.err"
}
check "a bad IP on a known line is refused: exit != 0, \"file:line: reason\" on stderr" \
    bad_config bad-ip "s/\"$SERVER_IP\"/\"198.18.250.999\"/" 'not an IP address'
check "an unknown key is refused with its line" \
    bad_config bad-key 's/^  serviceAccount: server$/  serviceAcount: server/' 'serviceAcount'
check "a bad port is refused with its line" \
    bad_config bad-port 's/^  - servicePort: 80$/  - servicePort: 99999/' 'port|99999'

# ---- file-descriptor exhaustion -------------------------------------------------
# More connections than ztunnel may hold fds for: the surplus must wait (or be
# refused) without ztunnel spinning on accept() or flooding its log, and service
# must resume once fds are free again.
say "file-descriptor exhaustion on the client-side ztunnel (RLIMIT_NOFILE 64, 100 connections)"
start_ztunnel "$N2" node-2 "$WORK/mesh.yaml" "$WORK/ca" "$WORK/zt2c.log"
ZT2C=$LAST_PID
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# Lower only the soft limit: raising a hard limit back may need CAP_SYS_RESOURCE.
read -r NOFILE_SOFT NOFILE_HARD < <(prlimit --pid "$ZT1" --nofile --noheadings --raw --output SOFT,HARD)
prlimit --pid "$ZT1" --nofile=64:"$NOFILE_HARD"
LINES0=$(wc -l <"$WORK/zt1.log")
TICKS0=$(cpu_ticks "$ZT1")
ip netns exec "$N1" timeout 20 $PY -c "
import socket, time
ss = [socket.create_connection(('$SERVER_IP', 8080), timeout=2, source_address=('$CLIENT_IP', 0))
      for _ in range(100)]
time.sleep(2)
" || true
TICKS1=$(cpu_ticks "$ZT1")
LINES1=$(wc -l <"$WORK/zt1.log")
prlimit --pid "$ZT1" --nofile="$NOFILE_SOFT:$NOFILE_HARD"
sleep 0.5
FD_CPU=$(echo "scale=2; ($TICKS1 - $TICKS0) / $(getconf CLK_TCK)" | bc)
FD_LINES=$((LINES1 - LINES0))
say "while over the fd limit for ~2 s: ztunnel used ${FD_CPU} s CPU and wrote ${FD_LINES} log lines"
grep -m1 'Too many open files' "$WORK/zt1.log" | sed 's/^/# /' || true
check "ztunnel does not spin on accept() when out of fds (< 0.5 s CPU in 2 s; used ${FD_CPU} s)" \
    lt "$FD_CPU" 0.5
check "ztunnel does not flood its log when out of fds (< 300 lines; wrote ${FD_LINES})" \
    test "$FD_LINES" -lt 300
check "service resumes once fds are available again" echo_ok --message after-emfile

# ---- SIGTERM drain of the client-side ztunnel ----------------------------------
say "SIGTERM drain of the client-side ztunnel (--drain-timeout $DRAIN1)"
start_bg "$WORK/drain1-probe.out" ip netns exec "$N1" $PY "$SUPPORT/lifecycle_probe.py" \
    --bind "$CLIENT_IP" --connect "$SERVER" --duration 30 --probe-timeout 2 \
    --ready-file "$WORK/drain1-probe.ready"
DRAIN1_PROBE=$LAST_PID
within 10 test -e "$WORK/drain1-probe.ready" || true
within 10 sh -c "ip netns exec $N1 $PY -c \"import json,urllib.request,sys; sys.exit(len(json.load(urllib.request.urlopen('http://127.0.0.1:15000/config_dump',timeout=2))['connections']) != 1)\"" || true
T_TERM=$(now)
kill -TERM "$ZT1"
is_503_n1() { [ "$(ready_status "$N1")" = 503 ]; }
check "client-side readiness turns 503 (within 2 s)" within 2 is_503_n1
T0=$(now)
if echo_ok --message during-client-drain 2>/dev/null; then NEW_RC=0; else NEW_RC=1; fi
NEW_SECS=$(elapsed "$T0")
check "a new outbound connection fails quickly while the client side drains (${NEW_SECS} s)" \
    sh -c "[ $NEW_RC = 1 ] && [ \$(echo '$NEW_SECS < 1.5' | bc) = 1 ]"
for _ in $(seq 100); do kill -0 "$ZT1" 2>/dev/null || break; sleep 0.1; done
EXIT1_SECS=$(elapsed "$T_TERM")
kill -0 "$ZT1" 2>/dev/null && kill -9 "$ZT1"
wait "$ZT1" && EXIT1_RC=0 || EXIT1_RC=$?
wait "$DRAIN1_PROBE" || true
cat "$WORK/drain1-probe.out"
check "the open outbound tunnel kept working until the deadline and was then closed" \
    $PY - "$WORK/drain1-probe.out" "$T_TERM" "$DRAIN1" <<'PY'
import json, sys
r = json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])
t, d = float(sys.argv[2]), float(sys.argv[3])
last, end = r["last_ok"] - t, r["end"] - t
print("# last good probe %.2f s after SIGTERM, closed (%s) at %.2f s" % (last, r["end_reason"], end))
ok = last >= d - 0.5 and d - 0.5 <= end <= d + 1.5 and r["end_reason"] in ("eof", "reset")
sys.exit(0 if ok else 1)
PY
check "client-side ztunnel exited 0 within deadline + 1 s (${EXIT1_SECS} s)" \
    sh -c "[ $EXIT1_RC = 0 ] && [ \$(echo '$EXIT1_SECS < $DRAIN1 + 1.2' | bc) = 1 ]"
check "... sanitizers clean" sh -c "! grep -q -E 'AddressSanitizer|LeakSanitizer|runtime error' '$WORK/zt1.log'"
check "the server side saw the tunnel end and is idle again" within 5 sh -c \
    "ip netns exec $N2 $PY -c \"import json,urllib.request,sys; sys.exit(len(json.load(urllib.request.urlopen('http://127.0.0.1:15000/config_dump',timeout=2))['connections']))\""
check "node-2 ztunnel exits 0 on SIGTERM, sanitizers clean" stop_ztunnel "$ZT2C" "$WORK/zt2c.log"
say "numbers: rotation after ${CHANGE_AT:-never} s; server-side drained exit after ${EXIT_SECS} s (deadline $DRAIN); idle exit after ${IDLE_SECS} s; client-side drained exit after ${EXIT1_SECS} s (deadline $DRAIN1)"
finish
