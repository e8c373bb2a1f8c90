#!/usr/bin/env bash
# What ztunnel's HBONE server (15008) must refuse, seen from clients that share no
# code with amesh (python3-h2 + Python ssl, openssl s_client; certificates from
# python3-cryptography). Each case asserts the precise refusal (TLS alert or
# HTTP status) and that 0 connections and 0 bytes reached the apps; afterwards a
# valid client still works, and ztunnel exits cleanly.
#
#   netns node-1: clients (src 198.18.250.20)
#   netns node-2: ztunnel; app "server" 198.18.250.10:8080 (HBONE workload),
#                 app "legacy" 198.18.250.11:9090 (non-mesh workload, same node)
. "$(dirname "$0")/lib.sh"
require_root
topo_two_nodes "${FAMILY:-4}"
make_ca "$WORK/ca"
write_config "$WORK/mesh.yaml"

HBONE="$PY $ROOT/tests/support/hbone_client.py"
MKCERTS="$PY $ROOT/tests/support/mkcerts.py"
APP="$PY $ROOT/tests/support/hbone_app.py"
TD=cluster.local
SRC_ID="spiffe://$TD/ns/default/sa/client"
DST_ID="spiffe://$TD/ns/default/sa/server"
AUTH=$(hostport "$SERVER_IP" 8080)

# ---- certificates ------------------------------------------------------------
leaf() { # name ca-dir [mkcerts leaf flags...]
    local name=$1 ca=$2; shift 2
    $MKCERTS leaf --ca "$ca" --cert "$WORK/$name.pem" --key "$WORK/$name-key.pem" "$@"
}
make_ca "$WORK/other-ca" other-root
leaf good         "$WORK/ca"       --uri "$SRC_ID"
leaf otherroot    "$WORK/other-ca" --uri "$SRC_ID"
leaf othertd      "$WORK/ca"       --uri "spiffe://other.local/ns/default/sa/client"
leaf expired      "$WORK/ca"       --uri "$SRC_ID" --expired
leaf notyet       "$WORK/ca"       --uri "$SRC_ID" --not-yet-valid
leaf twouris      "$WORK/ca"       --uri "$SRC_ID" --uri "spiffe://$TD/ns/default/sa/other"
leaf notspiffe    "$WORK/ca"       --uri "https://$TD/ns/default/sa/client"
leaf nosan        "$WORK/ca"       --no-san
leaf catrue       "$WORK/ca"       --uri "$SRC_ID" --ca-true

# ---- workloads -----------------------------------------------------------------
start_bg "$WORK/app-server.log" ip netns exec "$N2" $APP --bind "$SERVER_IP" --port 8080 --log "$WORK/app-server.events"
start_bg "$WORK/app-legacy.log" ip netns exec "$N2" $APP --bind "$SERVER2_IP" --port 9090 --log "$WORK/app-legacy.events"
wait_for sh -c "ip netns exec $N2 ss -Hltn 'sport = :8080' | grep -q . && ip netns exec $N2 ss -Hltn 'sport = :9090' | grep -q ."
start_ztunnel "$N2" node-2 "$WORK/mesh.yaml" "$WORK/ca" "$WORK/zt2.log"
ZT2=$LAST_PID

client() { # cert-name|none [hbone_client flags...]
    local cert=$1; shift
    local c=()
    [ "$cert" != none ] && c=(--cert "$WORK/$cert.pem" --key "$WORK/$cert-key.pem")
    ip netns exec "$N1" $HBONE --addr "$SERVER_IP" --bind "$CLIENT_IP" --ca "$WORK/ca/root-cert.pem" \
        --expect-san "$DST_ID" --timeout 10 "${c[@]}" "$@"
}

app_events() { cat "$WORK/app-server.events" "$WORK/app-legacy.events" 2>/dev/null | wc -l; }

# refused "description" command...: the command must succeed (it asserts the
# refusal itself) and neither app may see a connection meanwhile.
refused() {
    local what=$1; shift
    local before after
    before=$(app_events)
    if ! "$@"; then fail "$what"; return; fi
    sleep 0.1
    after=$(app_events)
    if [ "$before" != "$after" ]; then
        fail "$what (the apps saw $((after - before)) connection events)"
        tail -n $((after - before)) "$WORK/app-server.events" "$WORK/app-legacy.events"
        return
    fi
    pass "$what; 0 connections/bytes reached the apps"
}

# ---- a valid client works before the refusals --------------------------------
check "valid client: CONNECT $AUTH echoes" client good --authority "$AUTH" --expect echo
check "the app saw exactly that one tunnel" sh -c "[ \$(grep -c '^accept' '$WORK/app-server.events') = 1 ]"

# ---- TLS-level refusals ----------------------------------------------------------
# TLS 1.3: the client finishes its handshake before the server checks the client
# certificate, so these refusals arrive as the first record after the handshake.
refused "no client certificate: alert certificate_required (116)" \
    client none --authority "$AUTH" --expect tls-alert:TLSV13_ALERT_CERTIFICATE_REQUIRED
refused "client certificate from another root: alert unknown_ca (48)" \
    client otherroot --authority "$AUTH" --expect tls-alert:TLSV1_ALERT_UNKNOWN_CA
refused "valid chain, other trust domain (spiffe://other.local/...): alert handshake_failure (40)" \
    client othertd --authority "$AUTH" --expect tls-alert:SSLV3_ALERT_HANDSHAKE_FAILURE
refused "expired client certificate: alert certificate_expired (45)" \
    client expired --authority "$AUTH" --expect tls-alert:SSLV3_ALERT_CERTIFICATE_EXPIRED
refused "not-yet-valid client certificate: alert bad_certificate (42)" \
    client notyet --authority "$AUTH" --expect tls-alert:SSLV3_ALERT_BAD_CERTIFICATE
refused "client certificate with two URI SANs: alert handshake_failure (40)" \
    client twouris --authority "$AUTH" --expect tls-alert:SSLV3_ALERT_HANDSHAKE_FAILURE
refused "client certificate whose URI SAN is not SPIFFE: alert handshake_failure (40)" \
    client notspiffe --authority "$AUTH" --expect tls-alert:SSLV3_ALERT_HANDSHAKE_FAILURE
refused "client certificate without SAN: alert handshake_failure (40)" \
    client nosan --authority "$AUTH" --expect tls-alert:SSLV3_ALERT_HANDSHAKE_FAILURE
# X509-SVID: a leaf must have cA=false; a CA certificate is not a workload identity.
refused "client certificate with CA:TRUE/keyCertSign used as a leaf: rejected" \
    client catrue --authority "$AUTH" --expect tls-alert:SSLV3_ALERT_HANDSHAKE_FAILURE
refused "TLS 1.2-only client: alert protocol_version (70)" \
    client good --tls-max 1.2 --authority "$AUTH" --expect tls-alert:TLSV1_ALERT_PROTOCOL_VERSION
refused "client offering only ALPN http/1.1: alert no_application_protocol (120)" \
    client good --alpn http/1.1 --authority "$AUTH" --expect tls-alert:TLSV1_ALERT_NO_APPLICATION_PROTOCOL
refused "client offering no ALPN: connection closed after the handshake, no HTTP/2" \
    client good --no-alpn --authority "$AUTH" --expect closed
chacha() {
    local out
    out=$(ip netns exec "$N1" timeout 10 openssl s_client -connect "$(hostport "$SERVER_IP" 15008)" \
        -tls1_3 -ciphersuites TLS_CHACHA20_POLY1305_SHA256 -noservername -alpn h2 \
        -CAfile "$WORK/ca/root-cert.pem" -cert "$WORK/good.pem" -key "$WORK/good-key.pem" \
        </dev/null 2>&1) || true
    echo "$out" | grep -E 'alert|error' | head -3
    echo "$out" | grep -q 'alert handshake failure' && ! echo "$out" | grep -q 'Cipher is TLS_CHACHA'
}
refused "openssl s_client offering only TLS_CHACHA20_POLY1305_SHA256: alert handshake_failure (40)" chacha

# ---- not TLS at all ------------------------------------------------------------------
refused "plaintext 'GET / HTTP/1.1' to 15008: closed within 1 s, no HTTP answer" \
    client none --raw 'GET / HTTP/1.1\r\nHost: x\r\n\r\n' --close-within 1 --expect closed
refused "plaintext HTTP/2 preface to 15008: closed within 1 s" \
    client none --raw 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00' \
    --close-within 1 --expect closed

# ---- HTTP-level refusals (mTLS is fine) --------------------------------------------
refused "authority is the client's pod IP (not local): 400" \
    client good --authority "$(hostport "$CLIENT_IP" 8080)" --expect status:400
refused "authority is another workload on the same node ($(hostport "$SERVER2_IP" 9090), app listening): 400" \
    client good --authority "$(hostport "$SERVER2_IP" 9090)" --expect status:400
refused "GET instead of CONNECT: 400" \
    client good --method GET --authority "$AUTH" --expect status:400
refused "authority with a hostname (server.default.svc.cluster.local:8080): 400" \
    client good --authority "server.default.svc.cluster.local:8080" --expect status:400
for p in 15008 15006 15001; do
    refused "authority is a ztunnel port ($(hostport "$SERVER_IP" $p)): 400" \
        client good --authority "$(hostport "$SERVER_IP" $p)" --expect status:400
done
refused "CONNECT to a closed port on the server pod: 503" \
    client good --authority "$(hostport "$SERVER_IP" 8081)" --expect status:503
refused "five refused CONNECTs on one connection: all 400" \
    client good --streams 5 --authority "$(hostport "$CLIENT_IP" 8080)" --expect status:400

# ---- ztunnel survived ----------------------------------------------------------------
check "after the refusals a valid client still works (40 streams)" \
    client good --authority "$AUTH" --streams 40 --expect echo
# (Only the connection's survival is asserted here; the status itself is asserted above.)
check "a refused CONNECT leaves its connection usable (refused, then a good tunnel on it)" \
    client good --authority "$(hostport "$CLIENT_IP" 8080)" --followup "$AUTH" --expect 'status:400|stream-reset'
check "the non-mesh app on the same node ($(hostport "$SERVER2_IP" 9090)) never saw a connection" \
    sh -c "! grep -q . '$WORK/app-legacy.events'"
for why in 'unable to get local issuer certificate' 'peer is not in our trust domain' \
    'certificate has expired' 'certificate is not yet valid' 'more than one URI SAN' \
    'URI SAN is not a SPIFFE workload identity' 'no URI SAN'; do
    check "ztunnel logged the refusal reason '$why'" grep -q "HBONE handshake from .* failed: $why" "$WORK/zt2.log"
done
check "node-2 ztunnel exits 0 on SIGTERM, sanitizers clean" stop_ztunnel "$ZT2" "$WORK/zt2.log"
finish
