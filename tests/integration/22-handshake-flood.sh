#!/usr/bin/env bash
# Half-open TLS handshakes against ztunnel's HBONE port (issue 9, attack 5).
#
#   netns node-1: hs_flood.py from 12 addresses 198.18.251.1-12 --3,000 x 10 bytes of a ClientHello-->
#                 (half of them from 198.18.251.1, which meets the per-source cap)
#   netns node-2: ztunnel 198.18.250.10:15008 (default caps: 512 pending, 64 per source, 5 s)
#   and meanwhile hbone_client.py (198.18.250.20) --mTLS + CONNECT--> the echo server behind it.
#
# Before the handshake guard every such connection held ~80 KB (ASan build; 47 KB
# release) and a descriptor for 10 s and logged one line. Now: at most 64 pending
# per address (198.18.251.1 is refused) and 512 in all (the other 11 send enough
# to fill more than that, so the oldest are evicted),
# a few hundred bytes each (no TLS state until the ClientHello record is whole),
# closed after 5 s, a few log lines a second, counted on 15020, and a legitimate
# client still gets through. Then the same against meshd's 15012, which shares the guard.
. "$(dirname "$0")/lib.sh"
require_root
topo_two_nodes 4
make_ca "$WORK/ca"
write_config "$WORK/mesh.yaml"

FLOOD="$PY $ROOT/tests/support/hs_flood.py"
HBONE="$PY $ROOT/tests/support/hbone_client.py"
SRC_ID='spiffe://cluster.local/ns/default/sa/client'
DST_ID='spiffe://cluster.local/ns/default/sa/server'
AUTH=$(hostport "$SERVER_IP" 8080)
COUNT=3000
MAX_PENDING=512           # the defaults under test
RSS_BOUND_KB=$((10 * 1024)) # 512 pending x well under 1 KB, plus the legitimate tunnel: far below
SOURCES=
ip -n "$N1" addr add 198.18.251.1/32 dev lo
for i in $(seq 2 12); do
    ip -n "$N1" addr add "198.18.251.$i/32" dev lo
    SOURCES="$SOURCES,198.18.251.1,198.18.251.$i" # round robin: .1 sends half
done
SOURCES=${SOURCES#,}

run $PY "$ROOT/tests/support/mkcerts.py" leaf --ca "$WORK/ca" --cert "$WORK/client.pem" \
    --key "$WORK/client-key.pem" --uri "$SRC_ID"
start_server "$N2" "$SERVER_IP" 8080 "$WORK/server.log"
start_ztunnel "$N2" node-2 "$WORK/mesh.yaml" "$WORK/ca" "$WORK/zt2.log"
ZT=$LAST_PID

rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$ZT/status"; }
n_fds() { ls "/proc/$ZT/fd" | wc -l; }
client() {
    ip netns exec "$N1" $HBONE --addr "$SERVER_IP" --bind "$CLIENT_IP" --ca "$WORK/ca/root-cert.pem" \
        --cert "$WORK/client.pem" --key "$WORK/client-key.pem" --timeout 10 \
        --authority "$AUTH" --expect-san "$DST_ID" --expect echo "$@"
}
scrape() { # file
    ip netns exec "$N2" $PY -c "
import sys, urllib.request
open(sys.argv[1], 'wb').write(urllib.request.urlopen('http://127.0.0.1:15020/metrics', timeout=3).read())" "$1"
}
value() { # file series -> value (0 if absent)
    awk -v s="$2" '$1 == s {v = $2} END {print v + 0}' "$1"
}
flood_field() { # status-file field -> value
    tr ' ' '\n' <"$1" 2>/dev/null | awk -F= -v k="$2" '$1 == k {print $2}'
}
ge() { [ "${1:-0}" -ge "$2" ]; }
le() { [ "${1:-999999999}" -le "$2" ]; }

check "a legitimate HBONE client connects before the flood" client --message before
sleep 1
RSS0=$(rss_kb)
FD0=$(n_fds)
LOG0=$(wc -l <"$WORK/zt2.log")
say "baseline: rss ${RSS0} kB, ${FD0} fds"

# ---- 3,000 half-open handshakes from 12 addresses ---------------------------------------------
start_bg "$WORK/flood.out" ip netns exec "$N1" $FLOOD --addr "$SERVER_IP" --sources "$SOURCES" \
    --count $COUNT --bytes 10 --hold 30 --status "$WORK/flood" --stop-file "$WORK/flood.stop"
FLOOD_PID=$LAST_PID
check "the flooder opened $COUNT connections" \
    wait_secs 20 sh -c "[ \"\$(tr ' ' '\n' <'$WORK/flood' | grep '^opened=')\" = opened=$COUNT ]"
PEAK_RSS=0 PEAK_FD=0
sample() {
    local r f
    r=$(rss_kb) f=$(n_fds)
    [ "$r" -gt "$PEAK_RSS" ] && PEAK_RSS=$r
    [ "$f" -gt "$PEAK_FD" ] && PEAK_FD=$f
    return 0
}
for _ in 1 2 3 4 5; do sample; sleep 0.1; done

check "a legitimate HBONE client connects and echoes during the flood" \
    client --message "during-the-flood-$RANDOM" --streams 4
sample
scrape "$WORK/m1.txt"
sample
say "flood: $(cat "$WORK/flood"); peak rss ${PEAK_RSS} kB (+$((PEAK_RSS - RSS0))), peak fds ${PEAK_FD}"
check "ztunnel's RSS grew by less than $RSS_BOUND_KB kB with $COUNT half-open handshakes (grew $((PEAK_RSS - RSS0)) kB)" \
    le $((PEAK_RSS - RSS0)) $RSS_BOUND_KB
check "ztunnel's descriptors stay within the pending cap (peak $PEAK_FD, baseline $FD0)" \
    le "$PEAK_FD" $((FD0 + MAX_PENDING + 16))
check "the server closed the connections over the caps at once (>= $((COUNT - MAX_PENDING - 8)))" \
    wait_secs 3 sh -c "[ \$(tr ' ' '\n' <'$WORK/flood' | awk -F= '\$1==\"closed_by_server\"{print \$2}') -ge $((COUNT - MAX_PENDING - 8)) ]"
PENDING=$(value "$WORK/m1.txt" amesh_hbone_handshakes_pending)
check "pending handshakes gauge is at most $MAX_PENDING and well above 0 (got $PENDING)" \
    sh -c "[ $PENDING -le $MAX_PENDING ] && [ $PENDING -ge 400 ]"
check "per-source refusals are counted (>= 1000)" \
    ge "$(value "$WORK/m1.txt" 'amesh_hbone_handshakes_total{outcome="refused"}')" 1000
check "evictions of the oldest at the total cap are counted (>= 500)" \
    ge "$(value "$WORK/m1.txt" 'amesh_hbone_handshakes_total{outcome="evicted"}')" 500
check "completed handshakes are counted (the legitimate client's)" \
    ge "$(value "$WORK/m1.txt" 'amesh_hbone_handshakes_total{outcome="completed"}')" 2

# ---- the deadline releases everything ----------------------------------------------------------
check "every flood connection is closed by the server at the 5 s deadline (not 10 s)" \
    wait_secs 6 sh -c "[ \"\$(tr ' ' '\n' <'$WORK/flood' | grep '^open=')\" = open=0 ]"
touch "$WORK/flood.stop"
wait "$FLOOD_PID" || true
sleep 0.5
scrape "$WORK/m2.txt"
check "no handshake is pending after the flood" \
    le "$(value "$WORK/m2.txt" amesh_hbone_handshakes_pending)" 0
check "timeouts are counted (>= 400)" \
    ge "$(value "$WORK/m2.txt" 'amesh_hbone_handshakes_total{outcome="timeout"}')" 400
FD1=$(n_fds)
check "descriptors are back to the baseline ($FD1 vs $FD0)" le "$FD1" $((FD0 + 2))
LINES=$(($(wc -l <"$WORK/zt2.log") - LOG0))
check "log lines are rate-limited: $LINES for $COUNT refused, evicted and timed-out handshakes" \
    le "$LINES" 60

# ---- complete ClientHellos that stall: the deadline holds after TLS started too ----------------
TO0=$(value "$WORK/m2.txt" 'amesh_hbone_handshakes_total{outcome="timeout"}')
start_bg "$WORK/flood2.out" ip netns exec "$N1" $FLOOD --addr "$SERVER_IP" \
    --sources 198.18.251.1,198.18.251.2 --count 40 --bytes all --hold 20 --status "$WORK/flood2" \
    --stop-file "$WORK/flood2.stop"
FLOOD2_PID=$LAST_PID
check "40 complete ClientHellos that stall are closed by the 5 s deadline (within 8 s)" \
    wait_secs 8 sh -c "[ \"\$(tr ' ' '\n' <'$WORK/flood2' | grep '^closed_by_server=')\" = closed_by_server=40 ]"
touch "$WORK/flood2.stop"
wait "$FLOOD2_PID" || true
scrape "$WORK/m3.txt"
check "their timeouts are counted" \
    ge "$(value "$WORK/m3.txt" 'amesh_hbone_handshakes_total{outcome="timeout"}')" $((TO0 + 40))
check "the rate-limited lines report what they suppressed" grep -q 'similar suppressed' "$WORK/zt2.log"
check "a legitimate HBONE client connects after the floods" client --message after
check "descriptors are back to the baseline after both floods" le "$(n_fds)" $((FD0 + 2))

say "figures: rss +$((PEAK_RSS - RSS0)) kB and $PEAK_FD fds (baseline $FD0) with $COUNT half-open; $LINES log lines"
check "ztunnel exits 0 on SIGTERM, sanitizers clean" stop_ztunnel "$ZT" "$WORK/zt2.log"

# ---- meshd's 15012 shares the guard -------------------------------------------------------------
# 1,500 half-open handshakes from 12 addresses of node-2 (64 per address, meshd's
# --max-conns-per-ip, so 768 would be admitted: the oldest are evicted at 512), and
# meanwhile node-2's ztunnel connects to meshd for its config and certificate.
write_k8s_config "$WORK/k8s"
start_meshd "$WORK/k8s" "$WORK/state" "$WORK/meshd.log"
MD=$MESHD_PID
MSOURCES=
for i in $(seq 1 12); do
    ip -n "$N2" addr add "198.18.252.$i/32" dev lo
    MSOURCES="$MSOURCES,198.18.252.$i"
done
md_scrape() { # file
    ip netns exec "$N1" $PY -c "
import sys, urllib.request
open(sys.argv[1], 'wb').write(urllib.request.urlopen('http://127.0.0.1:15014/metrics', timeout=3).read())" "$1"
}
sleep 0.5
MRSS0=$(awk '/^VmRSS:/ {print $2}' "/proc/$MD/status")
MFD0=$(ls "/proc/$MD/fd" | wc -l)
start_bg "$WORK/flood3.out" ip netns exec "$N2" $FLOOD --addr "$LINK_SELF" --port 15012 \
    --sources "${MSOURCES#,}" --count 1500 --bytes 10 --hold 20 --status "$WORK/flood3" \
    --stop-file "$WORK/flood3.stop"
FLOOD3_PID=$LAST_PID
check "the flooder opened 1500 connections to meshd" \
    wait_secs 20 sh -c "[ \"\$(tr ' ' '\n' <'$WORK/flood3' | grep '^opened=')\" = opened=1500 ]"
MRSS1=$(awk '/^VmRSS:/ {print $2}' "/proc/$MD/status")
MFD1=$(ls "/proc/$MD/fd" | wc -l)
check "a ztunnel gets its config and certificate from meshd during the flood" \
    start_ztunnel_xds "$N2" node-2 "$WORK/state" "$WORK/zt2x.log"
ZTX=$LAST_PID
md_scrape "$WORK/md1.txt"
say "meshd flood: $(cat "$WORK/flood3"); rss +$((MRSS1 - MRSS0)) kB, fds $MFD1 (baseline $MFD0)"
check "meshd's RSS grew by less than $RSS_BOUND_KB kB ($((MRSS1 - MRSS0)) kB)" \
    le $((MRSS1 - MRSS0)) $RSS_BOUND_KB
check "meshd's descriptors stay within the pending cap ($MFD1, baseline $MFD0)" \
    le "$MFD1" $((MFD0 + MAX_PENDING + 16))
check "meshd counts evictions at its total cap" \
    ge "$(value "$WORK/md1.txt" 'meshd_tls_handshakes_total{outcome="evicted"}')" 100
check "meshd counts the ztunnel's completed handshake" \
    ge "$(value "$WORK/md1.txt" 'meshd_tls_handshakes_total{outcome="completed"}')" 1
check "meshd closes every flood connection at the 5 s deadline" \
    wait_secs 8 sh -c "[ \"\$(tr ' ' '\n' <'$WORK/flood3' | grep '^open=')\" = open=0 ]"
touch "$WORK/flood3.stop"
wait "$FLOOD3_PID" || true
md_scrape "$WORK/md2.txt"
check "no handshake is pending at meshd after the flood" \
    le "$(value "$WORK/md2.txt" meshd_tls_handshakes_pending)" 0
check "meshd's log lines are rate-limited ($(grep -c handshake "$WORK/meshd.log") about handshakes)" \
    le "$(grep -c handshake "$WORK/meshd.log")" 40
check "node-2's ztunnel (xDS) exits 0 on SIGTERM" stop_ztunnel "$ZTX" "$WORK/zt2x.log"
check "meshd exits 0 on SIGTERM, sanitizers clean" stop_meshd "$MD" "$WORK/meshd.log"
finish
