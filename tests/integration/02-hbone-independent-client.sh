#!/usr/bin/env bash
# ztunnel's HBONE server (15008) against a client that shares no code with amesh:
# python3-h2 + Python's ssl (tests/support/hbone_client.py) with a certificate
# minted by python3-cryptography (tests/support/mkcerts.py) from the same root.
#
#   netns node-1                                  netns node-2
#   hbone_client.py (src 198.18.250.20) ==mTLS 1.3 + h2 CONNECT==> server 198.18.250.10:15008
#                                                  ztunnel --> tcptool echo 198.18.250.10:8080
#
# Run with FAMILY=6 for the same over IPv6 (2001:db8::/32).
. "$(dirname "$0")/lib.sh"
require_root
topo_two_nodes "${FAMILY:-4}"
make_ca "$WORK/ca"
write_config "$WORK/mesh.yaml"

HBONE="$PY $ROOT/tests/support/hbone_client.py"
MKCERTS="$PY $ROOT/tests/support/mkcerts.py"
SRC_ID='spiffe://cluster.local/ns/default/sa/client'
DST_ID='spiffe://cluster.local/ns/default/sa/server'
AUTH=$(hostport "$SERVER_IP" 8080)

run $MKCERTS leaf --ca "$WORK/ca" --cert "$WORK/client.pem" --key "$WORK/client-key.pem" --uri "$SRC_ID"
check "minted client certificate has exactly one URI SAN and an EC P-256 key" sh -c "
    openssl x509 -in '$WORK/client.pem' -noout -ext subjectAltName | grep -q -x ' *URI:$SRC_ID' &&
    [ \$(openssl x509 -in '$WORK/client.pem' -noout -ext subjectAltName | grep -c 'URI:') = 1 ] &&
    openssl verify -CAfile '$WORK/ca/root-cert.pem' '$WORK/client.pem' >/dev/null &&
    openssl pkey -in '$WORK/client-key.pem' -noout -text | grep -q 'prime256v1'"

start_server "$N2" "$SERVER_IP" 8080 "$WORK/server.log"
start_ztunnel "$N2" node-2 "$WORK/mesh.yaml" "$WORK/ca" "$WORK/zt2.log"
ZT2=$LAST_PID

client() { # extra args...
    ip netns exec "$N1" $HBONE --addr "$SERVER_IP" --bind "$CLIENT_IP" --ca "$WORK/ca/root-cert.pem" \
        --cert "$WORK/client.pem" --key "$WORK/client-key.pem" --timeout 20 "$@"
}

MARKER="independent-client-$RANDOM$RANDOM"
check "CONNECT $AUTH: 200, echo matches, TLS 1.3/AES-GCM/h2, server SAN $DST_ID, SETTINGS as advertised" \
    client --authority "$AUTH" --expect-san "$DST_ID" --message "$MARKER" --check-settings --expect echo

check "40 concurrent CONNECT streams plus a 6 MiB stream on one connection all echo exactly" \
    client --authority "$AUTH" --expect-san "$DST_ID" --streams 40 --repeat 512 \
        --bulk $((6 * 1024 * 1024)) --expect echo

check "TLS sessions of the clean clients (GOAWAY + close_notify) are not logged as failed" \
    sh -c "! grep -q 'HBONE handshake from.*failed' '$WORK/zt2.log'"

# A peer may also just close the TCP connection once its tunnels are done (no
# close_notify). The handshake of that connection succeeded and carried traffic,
# so ztunnel must not report it as a failed handshake.
check "abrupt close after a good tunnel" \
    client --authority "$AUTH" --expect-san "$DST_ID" --message abrupt --abrupt-close --expect echo
sleep 0.3
check "a completed connection closed without close_notify is not logged as a failed handshake" \
    sh -c "! grep 'HBONE handshake from.*failed' '$WORK/zt2.log'"

check "client refuses a server whose URI SAN is not the expected identity" \
    client --authority "$AUTH" --expect-san 'spiffe://cluster.local/ns/default/sa/not-server' \
        --expect server-identity-mismatch

sleep 0.5
check "ztunnel access log: src/dst identities of the independent client" \
    grep -q "src.identity=\"$SRC_ID\".*dst.identity=\"$DST_ID\".*direction=\"inbound\"" "$WORK/zt2.log"
check "ztunnel access log counts the echoed marker bytes" \
    grep -q "bytes_sent=${#MARKER} bytes_recv=${#MARKER} " "$WORK/zt2.log"
check "ztunnel access log counts the 6 MiB stream" \
    grep -q "bytes_sent=$((6 * 1024 * 1024)) bytes_recv=$((6 * 1024 * 1024)) " "$WORK/zt2.log"
check "ztunnel logged no errors" sh -c "! grep -P '\\terror\\t' '$WORK/zt2.log'"

check "node-2 ztunnel exits 0 on SIGTERM, sanitizers clean" stop_ztunnel "$ZT2" "$WORK/zt2.log"
finish
