#!/usr/bin/env bash
# Protocol conformance of the real servers, checked with peers that share no amesh code.
#
# 1. RFC 9113 5.1.1 on the two servers built on lib/h2: ztunnel's HBONE port 15008 (mutual
#    TLS, a client certificate minted by mkcerts.py) and meshd's 15012. A client opens
#    stream 5, then sends HEADERS on stream 3, an id it skipped
#    (tests/support/h2_stream_ids.py, raw frames): the server must send GOAWAY with
#    PROTOCOL_ERROR and close the connection, while a well-behaved tunnel client on another
#    connection keeps echoing (nghttp2 alone ignores the frame and keeps the connection).
# 2. meshd's control-plane TLS with `openssl s_client`: the FIPS-approved policy of HBONE
#    (TLS 1.3, AES-GCM, P-256/P-384): X25519 and ChaCha20 refused, P-256 + AES-GCM accepted;
#    with --allow-x25519, X25519 accepted (ChaCha20 still refused).
#
#   netns node-1                                   netns node-2
#   meshd 198.18.0.1:15012  <== s_client, h2_stream_ids.py
#   h2_stream_ids.py  ==mTLS + h2==>               ztunnel 198.18.250.10:15008 --> echo :8080
. "$(dirname "$0")/lib.sh"
require_root
topo_two_nodes 4
make_ca "$WORK/ca"
write_config "$WORK/mesh.yaml"
write_k8s_config "$WORK/config"

MKCERTS="$PY $ROOT/tests/support/mkcerts.py"
IDS="$PY $ROOT/tests/support/h2_stream_ids.py"
AUTH=$(hostport "$SERVER_IP" 8080)
run $MKCERTS leaf --ca "$WORK/ca" --cert "$WORK/client.pem" --key "$WORK/client-key.pem" \
    --uri 'spiffe://cluster.local/ns/default/sa/client'

# ---- 1. stream ids ------------------------------------------------------------------------
start_server "$N2" "$SERVER_IP" 8080 "$WORK/server.log"
start_ztunnel "$N2" node-2 "$WORK/mesh.yaml" "$WORK/ca" "$WORK/zt2.log"
ZT2=$LAST_PID

check "ztunnel 15008: HEADERS on skipped stream 3 after 5 gets GOAWAY PROTOCOL_ERROR and a close; a tunnel client on another connection echoes before and after" \
    ip netns exec "$N1" $IDS --addr "$SERVER_IP" --port 15008 --ca "$WORK/ca/root-cert.pem" \
        --cert "$WORK/client.pem" --key "$WORK/client-key.pem" --authority "$AUTH" --good
check "ztunnel still serves new HBONE connections" \
    ip netns exec "$N1" $IDS --addr "$SERVER_IP" --port 15008 --ca "$WORK/ca/root-cert.pem" \
        --cert "$WORK/client.pem" --key "$WORK/client-key.pem" --authority "$AUTH" --good
check "node-2 ztunnel exits 0 on SIGTERM, sanitizers clean" stop_ztunnel "$ZT2" "$WORK/zt2.log"

start_meshd "$WORK/config" "$WORK/state" "$WORK/meshd.log"
check "meshd 15012: HEADERS on skipped stream 3 after 5 gets GOAWAY PROTOCOL_ERROR and a close" \
    ip netns exec "$N2" $IDS --addr "$LINK_SELF" --port 15012 --ca "$WORK/state/root-cert.pem"

# ---- 2. control-plane TLS policy ------------------------------------------------------------
# s_client from node-2 to meshd; prints what it negotiated. Returns s_client's status.
s_client() { # args...
    ip netns exec "$N2" timeout 10 openssl s_client -connect "$MESHD_ADDR" -alpn h2 \
        -CAfile "$WORK/state/root-cert.pem" -verify_hostname istiod.istio-system.svc \
        -verify_return_error -brief "$@" </dev/null >"$WORK/s_client.out" 2>&1
}
refused() { # args...: the handshake must fail
    if s_client "$@"; then echo "handshake succeeded:"; cat "$WORK/s_client.out"; return 1; fi
}
accepted() { # pattern args...: the handshake must succeed and print |pattern|
    local want=$1; shift
    s_client "$@" && grep -q -E "$want" "$WORK/s_client.out" ||
        { echo "want /$want/:"; cat "$WORK/s_client.out"; return 1; }
}

check "meshd 15012 refuses a client offering only X25519" refused -groups X25519
check "meshd 15012 refuses a client offering only ChaCha20-Poly1305" \
    refused -ciphersuites TLS_CHACHA20_POLY1305_SHA256
check "meshd 15012 refuses TLS 1.2" refused -tls1_2
check "meshd 15012 accepts P-256 with AES-128-GCM" \
    accepted 'Ciphersuite: TLS_AES_128_GCM_SHA256' -groups P-256 -ciphersuites TLS_AES_128_GCM_SHA256
check "meshd 15012 accepts P-384 with AES-256-GCM" \
    accepted 'Server Temp Key: ECDH, secp384r1' -groups P-384 -ciphersuites TLS_AES_256_GCM_SHA384
check "meshd 15012 takes OpenSSL's default client to P-256 and AES-GCM, not X25519" \
    accepted 'Server Temp Key: ECDH, prime256v1'
check "meshd exits 0 on SIGTERM, sanitizers clean" stop_meshd "$MESHD_PID" "$WORK/meshd.log"

start_meshd "$WORK/config" "$WORK/state" "$WORK/meshd2.log" --allow-x25519
check "meshd --allow-x25519 accepts a client offering only X25519" \
    accepted 'Server Temp Key: X25519' -groups X25519
check "meshd --allow-x25519 still refuses ChaCha20-Poly1305" \
    refused -ciphersuites TLS_CHACHA20_POLY1305_SHA256
check "meshd --allow-x25519 exits 0 on SIGTERM, sanitizers clean" \
    stop_meshd "$MESHD_PID" "$WORK/meshd2.log"
finish
