#!/usr/bin/env bash
# Wire interop of the waypoint with peers that share no amesh code (issue 10 section 5): an
# independent python3-h2 HBONE client stands where the client's ztunnel stands, and an
# independent python3-h2 HBONE server stands where the destination's ztunnel and pod stand
# (tests/support/hbone_http.py). No amesh ztunnel runs in this test.
#
#   node-1: hbone_http.py client (client.pem: .../sa/client, intruder.pem: .../sa/intruder)
#   node-2: hbone_http.py serve on 198.18.250.10:15008 (the "server" workload, HBONE)
#   pod wp-1 198.18.251.30 behind node-2: the waypoint binary (local config)
#   service echo VIP 198.19.0.10:80 -> server:8080, bound to waypoint wp, HTTP1 routes
#
# Checks: the waypoint's upstream CONNECT carries :authority podIP:targetPort and the
# waypoint's certificate; routes (header modifiers both ways, rewrite, redirect) as the
# independent server sees them; x-request-id added; several requests on one client tunnel
# reuse one upstream tunnel; the ALLOW policy on the client's principal (403 for another
# identity, nothing reaches the server); unbound authority 503; handshakes without a client
# certificate, from another root or trust domain, or in TLS 1.2 refused.
. "$(dirname "$0")/lib.sh"
require_root
topo_two_nodes 4
make_ca "$WORK/ca"
WPIP=198.18.251.30 WPNS=amt-wp-$ID
TD=spiffe://cluster.local/ns/default/sa
MKCERTS="$PY $ROOT/tests/support/mkcerts.py"
HH="$PY $ROOT/tests/support/hbone_http.py"
add_pod "$N2" "$WPNS" $WPIP 198.18.251.1
ip -n "$N1" route add 198.18.251.0/24 via 198.18.0.2

GW='{hostname: {namespace: default, hostname: wp.default.svc.cluster.local}, hboneMtlsPort: 15008}'
ECHO='{namespace: default, hostname: echo.default.svc.cluster.local}'
cat >"$WORK/mesh.yaml" <<YAML
workloads:
- uid: Kubernetes//Pod/default/server
  name: server
  namespace: default
  serviceAccount: server
  addresses: ["$SERVER_IP"]
  node: node-2
  tunnelProtocol: HBONE
  services:
    default/echo.default.svc.cluster.local: {ports: [{servicePort: 80, targetPort: 8080}]}
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
  ports: [{servicePort: 80, targetPort: 8080}]
  waypoint: $GW
- name: wp
  namespace: default
  hostname: wp.default.svc.cluster.local
  addresses: ["198.19.0.20"]
  ports: [{servicePort: 15008, targetPort: 15008}]
policies: []
routes:
- service: $ECHO
  port: 80
  protocol: HTTP1
  rules:
  - name: hdr
    match: {prefix: /hdr}
    backends: [{service: $ECHO, port: 80, weight: 1}]
    requestHeaders: {set: [{name: x-wp, value: "yes"}], remove: [x-drop]}
    responseHeaders: {add: [{name: x-from, value: waypoint}]}
  - name: rw
    match: {prefix: /old}
    backends: [{service: $ECHO, port: 80, weight: 1}]
    rewrite: {prefix: /new}
  - name: moved
    match: {prefix: /moved}
    redirect: {hostname: elsewhere.example, status: 301}
  - name: all
    match: {prefix: /}
    backends: [{service: $ECHO, port: 80, weight: 1}]
waypointPolicies:
- name: only-client
  namespace: default
  targets: [{gateway: wp}]
  action: ALLOW
  rules: [{clauses: [{matches: [{l4: {principals: [{exact: cluster.local/ns/default/sa/client}]}}]}]}]
YAML
for who in client intruder; do
    $MKCERTS leaf --ca "$WORK/ca" --cert "$WORK/$who.pem" --key "$WORK/$who-key.pem" --uri "$TD/$who"
done
$MKCERTS leaf --ca "$WORK/ca" --cert "$WORK/server.pem" --key "$WORK/server-key.pem" --uri "$TD/server"

start_bg "$WORK/dest.out" ip netns exec "$N2" $HH serve --bind $SERVER_IP --ca "$WORK/ca/root-cert.pem" \
    --cert "$WORK/server.pem" --key "$WORK/server-key.pem" --log "$WORK/dest.log"
wait_for grep -q listening "$WORK/dest.log"
start_bg "$WORK/wp.log" ip netns exec "$WPNS" "$BIN/waypoint" --local-config "$WORK/mesh.yaml" \
    --ca-dir "$WORK/ca" --namespace default --name wp --service-account waypoint --node node-2
WPPID=$LAST_PID
wait_for sh -c "[ \"\$(ip netns exec $WPNS curl -s -o /dev/null -w '%{http_code}' http://$WPIP:15021/healthz/ready)\" = 200 ]" ||
    cat "$WORK/wp.log"

client() { # cert authority request...
    local who=$1 auth=$2; shift 2
    local args=()
    for r in "$@"; do case $r in --*) args+=("$r") ;; *) args+=(--request "$r") ;; esac; done
    ip netns exec "$N1" $HH client --addr $WPIP --ca "$WORK/ca/root-cert.pem" --cert "$WORK/$who.pem" \
        --key "$WORK/$who-key.pem" --expect-san "$TD/waypoint" --authority "$auth" --host echo.default \
        "${args[@]}" || true
}
# jq-like assertions on one response line: field path and expected value.
field() { # json-line python-expression
    $PY -c "import json,sys; r=json.loads(sys.argv[1]); b=json.loads(r['body']) if r.get('body','').startswith('{') else {}; h=dict(b.get('headers', [])); print($2)" "$1"
}

client client $VIP:80 "GET /hdr/a x-drop:1 x-keep:2" "GET /old/b" "GET /moved/c" "GET /plain" >"$WORK/c1.out"
cat "$WORK/c1.out"
mapfile -t R <"$WORK/c1.out"
check "four requests on one client tunnel, four responses" [ "${#R[@]}" = 4 ]
check "GET /hdr/a: 200 from the independent server, which saw the path as sent" \
    [ "$(field "${R[0]}" "r['status'], b.get('method'), b.get('path')")" = "200 GET /hdr/a" ]
check "... the upstream CONNECT :authority is the endpoint's podIP:targetPort" \
    [ "$(field "${R[0]}" "b.get('authority')")" = "$SERVER_IP:8080" ]
check "... the upstream tunnel carries the waypoint's certificate (URI SAN)" \
    [ "$(field "${R[0]}" "b.get('peer')")" = "$TD/waypoint" ]
check "... request header modifiers: x-wp set, x-drop removed, x-keep passed" \
    [ "$(field "${R[0]}" "h.get('x-wp'), h.get('x-drop'), h.get('x-keep')")" = "yes None 2" ]
check "... an x-request-id was added (a UUID)" \
    [ "$(field "${R[0]}" "len(h.get('x-request-id', '')), h.get('x-request-id', '')[14]")" = "36 4" ]
check "... the response header modifier reached the client (x-from: waypoint)" \
    [ "$(field "${R[0]}" "r['headers'].get('x-from')")" = waypoint ]
check "GET /old/b: rewritten to /new/b before the server" \
    [ "$(field "${R[1]}" "r['status'], b.get('path')")" = "200 /new/b" ]
check "GET /moved/c: 301 from the waypoint to elsewhere.example, with a reason phrase" \
    [ "$(field "${R[2]}" "r['status'], r['headers'].get('location'), r['reason']")" = \
      "301 http://elsewhere.example/moved/c Moved Permanently" ]
check "GET /plain: 200 by the catch-all rule" [ "$(field "${R[3]}" "r['status'], b.get('path')")" = "200 /plain" ]
n=$(grep -c '^connect ' "$WORK/dest.log" || true)
check "... the three upstream requests used one upstream tunnel (kept alive), not three" [ "$n" = 1 ]
check "the destination logged the waypoint's identity on its CONNECT" \
    grep -q "connect authority=$SERVER_IP:8080 peer=$TD/waypoint method=CONNECT" "$WORK/dest.log"

before=$(grep -c '^request ' "$WORK/dest.log" || true)
out=$(client intruder $VIP:80 "GET /plain")
echo "$out"
check "another identity (sa/intruder): 403 RBAC: access denied by the ALLOW policy" \
    [ "$(field "$out" "r['status'], r['body']")" = "403 RBAC: access denied" ]
check "... and nothing reached the server" [ "$(grep -c '^request ' "$WORK/dest.log")" = "$before" ]
out=$(client client 198.19.0.99:80 "GET /")
check "an authority nothing binds to this waypoint: CONNECT answered 503" [ "$out" = '{"connect_status": 503}' ]

# Smuggling forms and oversize heads (issue 10 section 4): 400 / 431 and the tunnel ends,
# nothing reaches the server; a malformed upstream response: 502.
bad() { # expected-status raw-request
    local out before
    before=$(grep -c '^request ' "$WORK/dest.log")
    out=$(client client $VIP:80 "RAW $2" --expect-close)
    printf '%s\n' "$out" | cut -c1-200
    [ "$(printf '%s\n' "$out" | head -1 | $PY -c 'import json,sys; print(json.load(sys.stdin).get("status"))')" = "$1" ] &&
        [ "$(printf '%s\n' "$out" | tail -1)" = '{"tunnel": "ended"}' ] &&
        [ "$(grep -c '^request ' "$WORK/dest.log")" = "$before" ]
}
check "Content-Length with Transfer-Encoding (CL.TE): 400, tunnel ended, nothing upstream" \
    bad 400 'POST /plain HTTP/1.1\r\nHost: echo\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n'
check "two different Content-Lengths: 400" \
    bad 400 'POST /plain HTTP/1.1\r\nHost: echo\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab'
check "a bad chunk size: 400" \
    bad 400 'POST /plain HTTP/1.1\r\nHost: echo\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nab\r\n0\r\n\r\n'
check "obs-fold: 400" bad 400 'GET /plain HTTP/1.1\r\nHost: echo\r\nX-A: a\r\n  b\r\n\r\n'
check "bare LF line ends: 400" bad 400 'GET /plain HTTP/1.1\nHost: echo\n\n'
check "a NUL in a header value: 400" bad 400 'GET /plain HTTP/1.1\r\nHost: echo\r\nX-A: a\x00b\r\n\r\n'
check "no Host: 400" bad 400 'GET /plain HTTP/1.1\r\nX-A: a\r\n\r\n'
check "a 70 KB request head: 431" \
    bad 431 "GET /plain HTTP/1.1\\r\\nHost: echo\\r\\nX-Big: $(head -c 70000 /dev/zero | tr '\0' a)\\r\\n\\r\\n"
out=$(client client $VIP:80 "GET /bad-response")
echo "$out"
check "an upstream response with two Content-Lengths: 502 to the client" \
    [ "$(field "$out" "r['status']")" = 502 ]
check "... logged with the upstream protocol error flag (UPE)" grep -q 'UPE' "$WORK/wp.log"

# Handshakes the waypoint's 15008 refuses (issue 10 section 4), with an independent client
# (tests/support/hbone_client.py); nothing reaches the server meanwhile.
make_ca "$WORK/other-ca" other-root
$MKCERTS leaf --ca "$WORK/other-ca" --cert "$WORK/otherroot.pem" --key "$WORK/otherroot-key.pem" --uri "$TD/client"
$MKCERTS leaf --ca "$WORK/ca" --cert "$WORK/othertd.pem" --key "$WORK/othertd-key.pem" \
    --uri spiffe://other.local/ns/default/sa/client
hb() { # cert|none expect [args]
    local cert=$1 e=$2; shift 2
    local c=()
    [ "$cert" != none ] && c=(--cert "$WORK/$cert.pem" --key "$WORK/$cert-key.pem")
    ip netns exec "$N1" $PY "$ROOT/tests/support/hbone_client.py" --addr $WPIP --ca "$WORK/ca/root-cert.pem" \
        --expect-san "$TD/waypoint" --timeout 10 --authority $VIP:80 "${c[@]}" --expect "$e" "$@"
}
before=$(grep -c '^connect ' "$WORK/dest.log")
check "no client certificate: handshake refused (certificate_required)" \
    hb none tls-alert:TLSV13_ALERT_CERTIFICATE_REQUIRED
check "a certificate from another root: refused (unknown_ca)" hb otherroot tls-alert:TLSV1_ALERT_UNKNOWN_CA
check "another trust domain (spiffe://other.local/...): refused (handshake_failure)" \
    hb othertd tls-alert:SSLV3_ALERT_HANDSHAKE_FAILURE
check "TLS 1.2: refused (protocol_version)" hb client tls-alert:TLSV1_ALERT_PROTOCOL_VERSION --tls-max 1.2
check "... and none of them reached the server" [ "$(grep -c '^connect ' "$WORK/dest.log")" = "$before" ]

kill -TERM $WPPID
wait_for sh -c "! kill -0 $WPPID 2>/dev/null"
rc=0; wait $WPPID || rc=$?
check "SIGTERM: the waypoint exits 0 with no sanitizer report" sh -c "
[ $rc = 0 ] && ! grep -q 'Sanitizer\|runtime error' '$WORK/wp.log'"
finish
