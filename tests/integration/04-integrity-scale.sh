#!/usr/bin/env bash
# Data integrity and scale through HBONE, two nodes as in 01-two-node-hbone.sh:
#   - 1 GiB through one tunnel, SHA-256 equal at both ends;
#   - 1,000 concurrent tunnels, every byte echoed, carried by ~ceil(1000/100)
#     pooled HBONE connections (counted with ss while they are all open);
#   - half-close in both directions;
#   - an app that stops reading (server app, then client app): the sender is
#     stopped after a bounded amount, neither ztunnel's memory grows without
#     bound, and other tunnels on the same HBONE connection keep flowing;
#   - pooling never mixes identities: a second client workload with another
#     serviceAccount on node-1 gets its own HBONE connection.
#
#   node-1: client  198.18.250.20 (sa client)    node-2: server 198.18.250.10
#           client2 198.18.250.21 (sa client2)           ports 8080 sha256, 8081 echo,
#                                                         8082 stall, 8083 half-close, 8084 echo,
#                                                         8085 push to a client that never reads
. "$(dirname "$0")/lib.sh"
require_root
ulimit -n 8192 2>/dev/null || ulimit -n "$(ulimit -Hn)"
topo_two_nodes "${FAMILY:-4}"
make_ca "$WORK/ca"
if [ "$FAMILY" = 6 ]; then
    CLIENT2_IP=2001:db8:250::21
    ip -n "$N1" addr add $CLIENT2_IP/128 dev lo nodad
else
    CLIENT2_IP=198.18.250.21
    ip -n "$N1" addr add $CLIENT2_IP/32 dev lo
fi
# lib.sh's config plus client2: same node, same namespace, another serviceAccount.
write_config "$WORK/mesh.yaml"
add_client2 "$WORK/mesh.yaml" "$CLIENT2_IP" client2

SUPPORT=$ROOT/tests/support
SRC_ID='spiffe://cluster.local/ns/default/sa/client'
SRC2_ID='spiffe://cluster.local/ns/default/sa/client2'

start_server "$N2" "$SERVER_IP" 8080 "$WORK/sha.log" --sha256
start_server "$N2" "$SERVER_IP" 8081 "$WORK/echo.log"
start_server "$N2" "$SERVER_IP" 8082 "$WORK/stall.log" --stall 600
STALL_PID=$LAST_PID
start_bg "$WORK/half.log" ip netns exec "$N2" $TCPTOOL halfserve --bind "$SERVER_IP" --port 8083
wait_for sh -c "ip netns exec $N2 ss -Hltn 'sport = :8083' | grep -q ."
start_server "$N2" "$SERVER_IP" 8084 "$WORK/echo2.log"
# Short pool idle timeout so each scenario starts from an empty pool.
start_ztunnel "$N1" node-1 "$WORK/mesh.yaml" "$WORK/ca" "$WORK/zt1.log" --pool-idle-timeout 2
ZT1=$LAST_PID
start_ztunnel "$N2" node-2 "$WORK/mesh.yaml" "$WORK/ca" "$WORK/zt2.log"
ZT2=$LAST_PID
capture_outbound "$N1"

rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
max_rss() { # pid-1 pid-2: samples VmRSS for 2 s, prints the two maxima in kB
    local m1=0 m2=0 r1 r2
    for _ in $(seq 10); do
        r1=$(rss_kb "$1") r2=$(rss_kb "$2")
        [ "$r1" -gt "$m1" ] && m1=$r1
        [ "$r2" -gt "$m2" ] && m2=$r2
        sleep 0.2
    done
    echo "$m1 $m2"
}
# Established TCP connections to (node-1) or on (node-2) port 15008.
hbone_out() { ip netns exec "$N1" ss -Htn state established "( dport = :15008 )" | wc -l; }
hbone_out_from() { # source ip
    local a=$1
    case $a in *:*) a="[$a]" ;; esac
    ip netns exec "$N1" ss -Htn state established "( dport = :15008 )" src "$a" | wc -l
}
hbone_in() { ip netns exec "$N2" ss -Htn state established "( sport = :15008 )" | wc -l; }
no_hbone() { [ "$(hbone_out)" -eq 0 ] && [ "$(hbone_in)" -eq 0 ]; }
# Live connections in ztunnel's /config_dump.
dump_conns() { # netns
    ip netns exec "$1" $PY -c "
import json,urllib.request
print(len(json.load(urllib.request.urlopen('http://127.0.0.1:15000/config_dump',timeout=5))['connections']))"
}
no_conns() { [ "$(dump_conns "$N1")" -eq 0 ] && [ "$(dump_conns "$N2")" -eq 0 ]; }
log_has() { $PY "$SUPPORT/scale_accesslog.py" "$@" | grep -q .; }
# shellcheck disable=SC2034 # WAIT_SECS is read by wait_for
within() { local WAIT_SECS=$1; shift; wait_for "$@"; } # secs command...

# ---- 1 GiB through one tunnel ----------------------------------------------
say "1 GiB through one tunnel"
T0=$(date +%s.%N)
if ip netns exec "$N1" $TCPTOOL bulk --bind "$CLIENT_IP" --connect "$(hostport "$SERVER_IP" 8080)" \
    --bytes 1073741824 --timeout 60 >"$WORK/bulk.out" 2>&1; then
    pass "1 GiB arrives with the same SHA-256 at both ends"
else
    fail "1 GiB arrives with the same SHA-256 at both ends"
fi
T1=$(date +%s.%N)
cat "$WORK/bulk.out"
GIB_SECS=$(echo "$T1 - $T0" | bc)
say "1 GiB took ${GIB_SECS} s"
sleep 0.5
check "server ztunnel's access log counts the 1 GiB inbound" \
    log_has "$WORK/zt2.log" direction=inbound bytes_sent=1073741824 bytes_recv=76
check "client ztunnel's access log counts the 1 GiB outbound" \
    log_has "$WORK/zt1.log" direction=outbound bytes_sent=1073741824 bytes_recv=76

# ---- 1,000 concurrent tunnels over pooled connections -----------------------
say "1000 concurrent tunnels"
within 20 no_hbone || say "pooled connections from the 1 GiB run still open"
start_bg "$WORK/scale.out" ip netns exec "$N1" $PY "$SUPPORT/scale_tunnels.py" \
    --bind "$CLIENT_IP" --connect "$(hostport "$SERVER_IP" 8081)" --count 1000 --tag s \
    --ready-file "$WORK/scale.ready" --go-file "$WORK/scale.go" --timeout 120
SCALE_PID=$LAST_PID
T0=$(date +%s.%N)
within 90 test -e "$WORK/scale.ready" || true
T1=$(date +%s.%N)
say "all 1000 tunnels open and echoing after $(echo "$T1 - $T0" | bc) s: $(cat "$WORK/scale.ready" 2>/dev/null)"
OUT_CONNS=$(hbone_out)
IN_CONNS=$(hbone_in)
ZT1_CONNS=$(dump_conns "$N1")
ZT2_CONNS=$(dump_conns "$N2")
say "while 1000 tunnels are open: HBONE connections node-1 -> :15008 = $OUT_CONNS, node-2 :15008 = $IN_CONNS"
say "config_dump connections: node-1 $ZT1_CONNS, node-2 $ZT2_CONNS"
touch "$WORK/scale.go"
SCALE_RC=0
wait "$SCALE_PID" || SCALE_RC=$?
cat "$WORK/scale.out"
check "1000 tunnels: every payload echoed intact" test "$SCALE_RC" -eq 0
check "1000 tunnels ride on ceil(1000/100)=10 HBONE connections (saw $OUT_CONNS)" \
    test "$OUT_CONNS" -ge 10 -a "$OUT_CONNS" -le 12
check "server side sees the same HBONE connections (saw $IN_CONNS)" test "$IN_CONNS" -eq "$OUT_CONNS"
check "config_dump lists 1000 live connections on each side" \
    test "$ZT1_CONNS" -eq 1000 -a "$ZT2_CONNS" -eq 1000
sleep 0.5
check "access logs account for every byte of the 1000 tunnels" $PY - "$SUPPORT" "$WORK" \
    "$(hostport "$SERVER_IP" 8081)" <<'PY'
import json, sys
sys.path.insert(0, sys.argv[1])
import scale_accesslog as al
work, hb = sys.argv[2], sys.argv[3]
res = json.loads(open(work + "/scale.out").read().strip().splitlines()[-1])
per = res["bytes_sent"] // 1000
ok = True
for log, d in (("zt1", "outbound"), ("zt2", "inbound")):
    rs = [r for r in al.records("%s/%s.log" % (work, log)) if r.get("direction") == d
          and r.get("dst.hbone_addr") == hb]
    sent = sum(r["bytes_sent"] for r in rs)
    recv = sum(r["bytes_recv"] for r in rs)
    errs = [r for r in rs if "error" in r]
    print("# %s: %d lines, bytes_sent %d bytes_recv %d, %d errors" % (log, len(rs), sent, recv, len(errs)))
    if len(rs) != 1000 or sent != res["bytes_sent"] or recv != res["bytes_sent"] or errs:
        ok = False
    if any(r["bytes_sent"] != per or r["bytes_recv"] != per for r in rs):
        ok = False
sys.exit(0 if ok else 1)
PY
check "idle pooled connections close on both nodes after --pool-idle-timeout 2" within 15 no_hbone

# ---- half-close in both directions ------------------------------------------
say "half-close"
check "client shuts write first and still receives the server's data" \
    ip netns exec "$N1" $TCPTOOL halfclient --mode client-first --bind "$CLIENT_IP" \
    --connect "$(hostport "$SERVER_IP" 8083)" --bytes $((3 << 20)) --reply $((5 << 20)) --delay 1
ip netns exec "$N1" $TCPTOOL halfclient --mode server-first --bind "$CLIENT_IP" \
    --connect "$(hostport "$SERVER_IP" 8083)" --bytes $((5 << 20)) --reply $((3 << 20)) --delay 1 \
    >"$WORK/halfS.out" 2>&1 && HS_RC=0 || HS_RC=$?
cat "$WORK/halfS.out"
check "server shuts write first: client reads to its EOF intact" test "$HS_RC" -eq 0
HS_SUM=$(sed -n 's/^half S sent //p' "$WORK/halfS.out")
check "server shuts write first: client keeps sending and the server gets every byte" \
    within 10 grep -q "half S received ${HS_SUM:-none}" "$WORK/half.log"
grep 'half' "$WORK/half.log" | sed 's/^/# server: /'
sleep 0.5
check "half-closed tunnels end cleanly in both access logs (no error)" $PY - "$SUPPORT" "$WORK" \
    "$(hostport "$SERVER_IP" 8083)" <<'PY'
import sys
sys.path.insert(0, sys.argv[1])
import scale_accesslog as al
work, hb = sys.argv[2], sys.argv[3]
ok = True
for log in ("zt1", "zt2"):
    rs = [r for r in al.records("%s/%s.log" % (work, log)) if r.get("dst.hbone_addr") == hb]
    for r in rs:
        print("# %s: sent %d recv %d %s" % (log, r["bytes_sent"], r["bytes_recv"], r.get("error", "")))
    # client-first: "C n\n" + 3 MiB up, "count sha\n" + 5 MiB down;
    # server-first: "S n\n" + 5 MiB up (after the server's FIN), 3 MiB down.
    want = {(len("C %d\n" % (5 << 20)) + (3 << 20), len("%d %s\n" % (3 << 20, "0" * 64)) + (5 << 20)),
            (len("S %d\n" % (3 << 20)) + (5 << 20), 3 << 20)}
    got = {(r["bytes_sent"], r["bytes_recv"]) for r in rs if "error" not in r}
    if len(rs) != 2 or got != want:
        ok = False
sys.exit(0 if ok else 1)
PY

# ---- an app that stops reading ----------------------------------------------
say "back-pressure: server app accepts but never reads"
within 15 no_hbone || true
RSS1_0=$(rss_kb "$ZT1")
RSS2_0=$(rss_kb "$ZT2")
start_bg "$WORK/push.out" ip netns exec "$N1" $TCPTOOL push --bind "$CLIENT_IP" \
    --connect "$(hostport "$SERVER_IP" 8082)" --bytes $((200 << 20)) --timeout 3 --hold 600
PUSH_PID=$LAST_PID
within 60 grep -q '^push accepted' "$WORK/push.out" || true
cat "$WORK/push.out"
ACCEPTED=$(sed -n 's/^push accepted \([0-9]*\) stuck \([01]\)$/\1/p' "$WORK/push.out")
STUCK=$(sed -n 's/^push accepted \([0-9]*\) stuck \([01]\)$/\2/p' "$WORK/push.out")
# Sample memory for a few more seconds while the sender stays blocked.
read -r MAX1 MAX2 < <(max_rss "$ZT1" "$ZT2")
GROW1=$(( (MAX1 - RSS1_0) / 1024 )) GROW2=$(( (MAX2 - RSS2_0) / 1024 ))
say "sender stuck after $((${ACCEPTED:-0} >> 20)) MiB (${ACCEPTED:-?} bytes) of 200 MiB"
say "VmRSS node-1 ztunnel ${RSS1_0} -> max ${MAX1} kB (growth ${GROW1} MiB), node-2 ${RSS2_0} -> max ${MAX2} kB (growth ${GROW2} MiB)"
check "the sender is blocked (send timed out) instead of pushing 200 MiB" test "${STUCK:-0}" -eq 1
check "the sender got stuck after a bounded amount (< 32 MiB)" test "${ACCEPTED:-999999999}" -lt $((32 << 20))
check "node-1 ztunnel RSS growth stays bounded (< 64 MiB)" test "$GROW1" -lt 64
check "node-2 ztunnel RSS growth stays bounded (< 64 MiB)" test "$GROW2" -lt 64
OUT_NOW=$(hbone_out)
check "another tunnel on the same HBONE connection still flows (no head-of-line blocking)" \
    ip netns exec "$N1" $TCPTOOL bulk --bind "$CLIENT_IP" --connect "$(hostport "$SERVER_IP" 8080)" \
    --bytes $((16 << 20)) --timeout 10
check "that tunnel shared the stalled tunnel's HBONE pool (at most one connection per worker: $ZT_WORKERS)" \
    test "$OUT_NOW" -ge 1 -a "$OUT_NOW" -le "$ZT_WORKERS" -a "$(hbone_out)" -le "$ZT_WORKERS"
# The stalled app goes away: its unread data resets the connection, both tunnels end.
kill "$STALL_PID" 2>/dev/null || true
wait "$STALL_PID" 2>/dev/null || true
check "when the stalled app exits the tunnel is torn down on both nodes" within 10 no_conns
kill "$PUSH_PID" 2>/dev/null || true
wait "$PUSH_PID" 2>/dev/null || true

say "back-pressure, other direction: client app connects but never reads"
within 15 no_hbone || true
RSS1_0=$(rss_kb "$ZT1")
RSS2_0=$(rss_kb "$ZT2")
start_bg "$WORK/pushserve.log" ip netns exec "$N2" $TCPTOOL pushserve --bind "$SERVER_IP" --port 8085 \
    --bytes $((200 << 20)) --timeout 3
PUSHSERVE_PID=$LAST_PID
within 10 sh -c "ip netns exec $N2 ss -Hltn '( sport = :8085 )' | grep -q ."
start_bg "$WORK/reader.out" ip netns exec "$N1" $TCPTOOL push --bind "$CLIENT_IP" \
    --connect "$(hostport "$SERVER_IP" 8085)" --bytes 0 --hold 600
READER_PID=$LAST_PID
within 60 grep -q '^pushserve accepted' "$WORK/pushserve.log" || true
cat "$WORK/pushserve.log"
DL_ACCEPTED=$(sed -n 's/^pushserve accepted \([0-9]*\) stuck \([01]\)$/\1/p' "$WORK/pushserve.log")
DL_STUCK=$(sed -n 's/^pushserve accepted \([0-9]*\) stuck \([01]\)$/\2/p' "$WORK/pushserve.log")
read -r MAX1 MAX2 < <(max_rss "$ZT1" "$ZT2")
DL_GROW1=$(( (MAX1 - RSS1_0) / 1024 )) DL_GROW2=$(( (MAX2 - RSS2_0) / 1024 ))
say "server app stuck after $((${DL_ACCEPTED:-0} >> 20)) MiB (${DL_ACCEPTED:-?} bytes) of 200 MiB"
say "VmRSS node-1 ztunnel ${RSS1_0} -> max ${MAX1} kB (growth ${DL_GROW1} MiB), node-2 ${RSS2_0} -> max ${MAX2} kB (growth ${DL_GROW2} MiB)"
check "the sending server app is blocked instead of pushing 200 MiB" test "${DL_STUCK:-0}" -eq 1
check "... after a bounded amount (< 32 MiB)" test "${DL_ACCEPTED:-999999999}" -lt $((32 << 20))
check "node-1 ztunnel RSS growth stays bounded (< 64 MiB)" test "$DL_GROW1" -lt 64
check "node-2 ztunnel RSS growth stays bounded (< 64 MiB)" test "$DL_GROW2" -lt 64
kill "$READER_PID" 2>/dev/null || true
wait "$READER_PID" 2>/dev/null || true
check "when the non-reading client exits the tunnel is torn down on both nodes" within 10 no_conns
kill "$PUSHSERVE_PID" 2>/dev/null || true

# ---- pooling never mixes identities -----------------------------------------
say "two identities on node-1 to the same destination"
within 15 no_hbone || true
HB=$(hostport "$SERVER_IP" 8084)
start_bg "$WORK/id1.out" ip netns exec "$N1" $PY "$SUPPORT/scale_tunnels.py" --bind "$CLIENT_IP" \
    --connect "$HB" --count 30 --tag c1 --ready-file "$WORK/id1.ready" --go-file "$WORK/id.go" --timeout 60
ID1_PID=$LAST_PID
start_bg "$WORK/id2.out" ip netns exec "$N1" $PY "$SUPPORT/scale_tunnels.py" --bind "$CLIENT2_IP" \
    --connect "$HB" --count 30 --tag c2 --ready-file "$WORK/id2.ready" --go-file "$WORK/id.go" --timeout 60
ID2_PID=$LAST_PID
within 30 test -e "$WORK/id1.ready" -a -e "$WORK/id2.ready" || true
ID_OUT=$(hbone_out) ID_OUT1=$(hbone_out_from "$CLIENT_IP") ID_OUT2=$(hbone_out_from "$CLIENT2_IP")
say "HBONE connections while 2 x 30 tunnels are open: $ID_OUT ($ID_OUT1 from client, $ID_OUT2 from client2)"
touch "$WORK/id.go"
ID_RC=0
wait "$ID1_PID" || ID_RC=1
wait "$ID2_PID" || ID_RC=1
cat "$WORK/id1.out" "$WORK/id2.out"
check "both workloads' tunnels echo intact" test "$ID_RC" -eq 0
check "each identity has its own HBONE connections (1 to $ZT_WORKERS each, one per worker; not shared)" \
    test "$ID_OUT" -eq $((ID_OUT1 + ID_OUT2)) -a "$ID_OUT1" -ge 1 -a "$ID_OUT1" -le "$ZT_WORKERS" \
    -a "$ID_OUT2" -ge 1 -a "$ID_OUT2" -le "$ZT_WORKERS"
sleep 0.5
check "server access log: each src.identity arrives on its own connection, never mixed" \
    $PY - "$SUPPORT" "$WORK" "$HB" "$CLIENT_IP" "$CLIENT2_IP" "$SRC_ID" "$SRC2_ID" "$ZT_WORKERS" <<'PY'
import sys
sys.path.insert(0, sys.argv[1])
import scale_accesslog as al
work, hb, ip1, ip2, id1, id2 = sys.argv[2:8]
rs = [r for r in al.records(work + "/zt2.log") if r.get("dst.hbone_addr") == hb]
by_id = {}
for r in rs:
    host, _, port = r["src.addr"].rpartition(":")
    by_id.setdefault(r.get("src.identity"), set()).add((host.strip("[]"), port))
for k, v in sorted(by_id.items()):
    print("# %s: %d lines via %s" % (k, sum(1 for r in rs if r.get("src.identity") == k), sorted(v)))
ok = len(rs) == 60 and set(by_id) == {id1, id2}
ok = ok and all(h == ip1 for h, _ in by_id.get(id1, ())) and all(h == ip2 for h, _ in by_id.get(id2, ()))
ok = ok and 1 <= len(by_id.get(id1, ())) <= int(sys.argv[8]) and 1 <= len(by_id.get(id2, ())) <= int(sys.argv[8])
ok = ok and not (by_id.get(id1, set()) & by_id.get(id2, set()))
sys.exit(0 if ok else 1)
PY
check "client access log: each tunnel carries its own workload's identity" \
    $PY - "$SUPPORT" "$WORK" "$HB" "$CLIENT_IP" "$CLIENT2_IP" "$SRC_ID" "$SRC2_ID" <<'PY'
import sys
sys.path.insert(0, sys.argv[1])
import scale_accesslog as al
work, hb, ip1, ip2, id1, id2 = sys.argv[2:8]
rs = [r for r in al.records(work + "/zt1.log") if r.get("dst.hbone_addr") == hb]
want = {ip1: id1, ip2: id2}
bad = [r for r in rs if want.get(r["src.addr"].rpartition(":")[0].strip("[]")) != r.get("src.identity")]
print("# %d outbound lines, %d with a wrong identity" % (len(rs), len(bad)))
sys.exit(0 if len(rs) == 60 and not bad else 1)
PY

check "node-1 ztunnel exits 0 on SIGTERM, sanitizers clean" stop_ztunnel "$ZT1" "$WORK/zt1.log"
check "node-2 ztunnel exits 0 on SIGTERM, sanitizers clean" stop_ztunnel "$ZT2" "$WORK/zt2.log"
say "numbers: 1 GiB ${GIB_SECS} s; 1000 tunnels on $OUT_CONNS HBONE connections; stalled upload accepted ${ACCEPTED:-?} bytes (RSS growth ${GROW1} / ${GROW2} MiB); stalled download accepted ${DL_ACCEPTED:-?} bytes (RSS growth ${DL_GROW1} / ${DL_GROW2} MiB)"
finish
