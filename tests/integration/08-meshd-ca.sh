#!/usr/bin/env bash
# meshd's CA and xDS on 15012 against a client that shares no code with amesh:
# tests/support/cp_client.py (Python ssl + python3-h2 + hand-made gRPC framing +
# protoc-generated python3-protobuf modules + python3-cryptography CSRs).
#
#   netns node-1                                     netns node-2
#   meshd 198.18.0.1:15012 (TLS 1.3, h2, gRPC)  <==  cp_client.py ca / xds
#         127.0.0.1:15014 (metrics)
#
# The CA grants an identity only to the node that runs a pod with it (the node
# restriction, reference 4.2), refuses bad CSRs (4.3) with INVALID_ARGUMENT, and
# logs why it refused. A decoder not built from amesh code (protoc --decode with
# the project's .proto and python3-protobuf) reads the captured responses.
. "$(dirname "$0")/lib.sh"
require_root
topo_two_nodes 4

CFG=$WORK/config
STATE=$WORK/state
MLOG=$WORK/meshd.log
PB=$WORK/pb
MESHD_LISTEN=198.18.0.1:15012
CP="$PY $ROOT/tests/support/cp_client.py"
TD=cluster.local
CLIENT_ID=spiffe://$TD/ns/default/sa/client
SERVER_ID=spiffe://$TD/ns/default/sa/server
DAY=86400

mkdir -p "$CFG" "$PB"
cat >"$CFG/mesh.yaml" <<YAML
apiVersion: v1
kind: Namespace
metadata:
  name: default
  labels:
    istio.io/dataplane-mode: ambient
---
apiVersion: v1
kind: Pod
metadata:
  name: client
  namespace: default
  labels: {app: client}
spec:
  serviceAccountName: client
  nodeName: node-1
  containers:
  - name: main
    image: none
status:
  phase: Running
  conditions: [{type: Ready, status: "True"}]
  podIPs: [{ip: "$CLIENT_IP"}]
---
apiVersion: v1
kind: Pod
metadata:
  name: server
  namespace: default
  labels: {app: echo}
spec:
  serviceAccountName: server
  nodeName: node-2
  containers:
  - name: main
    image: none
    ports: [{name: http, containerPort: 8080}]
status:
  phase: Running
  conditions: [{type: Ready, status: "True"}]
  podIPs: [{ip: "$SERVER_IP"}]
---
apiVersion: v1
kind: Service
metadata:
  name: echo
  namespace: default
spec:
  selector: {app: echo}
  clusterIP: "$VIP"
  clusterIPs: ["$VIP"]
  ports:
  - {name: http, port: 80, targetPort: 8080}
YAML

# Python modules from the project's .proto, made by protoc: the independent decoder.
run protoc -I"$ROOT/proto" -I/usr/include --python_out="$PB" "$ROOT"/proto/*.proto

start_bg "$MLOG" ip netns exec "$N1" "$BIN/meshd" --config-dir "$CFG" --state-dir "$STATE" \
    --listen "$MESHD_LISTEN" --monitoring 127.0.0.1:15014 --log-level debug
MESHD_PID=$LAST_PID
monitoring_get() { # path
    ip netns exec "$N1" $PY -c "
import sys, urllib.request
sys.stdout.write(urllib.request.urlopen('http://127.0.0.1:15014' + sys.argv[1], timeout=2).read().decode())" "$1"
}
if ! wait_for monitoring_get /ready; then
    echo "meshd did not become ready:"; cat "$MLOG"; exit 1
fi
wait_for ip netns exec "$N2" $PY -c "
import socket; socket.create_connection(('198.18.0.1', 15012), timeout=1).close()" \
    || { echo "15012 not reachable from node-2"; cat "$MLOG"; exit 1; }

check "meshd created its state: root-cert.pem, root-key.pem (0600), token-key" sh -c "
    [ -s '$STATE/root-cert.pem' ] && [ -s '$STATE/token-key' ] &&
    [ \"\$(stat -c %a '$STATE/root-key.pem')\" = 600 ] &&
    openssl x509 -in '$STATE/root-cert.pem' -noout -ext basicConstraints | grep -q 'CA:TRUE'"

"$BIN/meshd" token --state-dir "$STATE" --node node-1 >"$WORK/token-node-1"
"$BIN/meshd" token --state-dir "$STATE" --node node-2 >"$WORK/token-node-2"
check "meshd token prints a credential for node-1 and for node-2 (different)" sh -c "
    [ -s '$WORK/token-node-1' ] && [ -s '$WORK/token-node-2' ] &&
    ! cmp -s '$WORK/token-node-1' '$WORK/token-node-2'"

NOUT=0
# Runs cp_client.py in node-2's namespace; output in $OUT (printed when a check fails).
cpc() { # subcommand args...
    NOUT=$((NOUT + 1))
    OUT=$WORK/cp.$NOUT.out
    local sub=$1; shift
    ip netns exec "$N2" $CP "$sub" --addr "$MESHD_LISTEN" --root "$STATE/root-cert.pem" \
        --pb-dir "$PB" --timeout 10 "$@" >"$OUT" 2>&1
}
show() { sed 's/^/    /' "${1:-$OUT}"; }
# check_show FILE "description" command...: like check, and prints FILE when it fails.
check_show() {
    local file=$1 what=$2; shift 2
    if "$@"; then pass "$what"; else fail "$what"; show "$file"; fi
}
field() { # name -> value of "name: value" in $OUT
    sed -n "s/^$1: //p" "$OUT" | head -1
}
in_range() { # value lo hi
    [ -n "$1" ] && [ "$1" -ge "$2" ] && [ "$1" -le "$3" ]
}

# ---- grants ------------------------------------------------------------------
SUCCESS=0
if cpc ca --token "$WORK/token-node-1" --identity "$CLIENT_ID" --expect-status 0 \
        --save-response "$WORK/ca-response.bin"; then ok=1; else ok=0; fi
check_show "$OUT" "CA grants node-1 $CLIENT_ID: status 0, leaf+root, leaf URI, key, root = STATE/root-cert.pem" sh -c "
    [ $ok = 1 ] && grep -qx 'status: 0' '$OUT' && grep -qx 'chain-elements: 2' '$OUT' &&
    grep -qx 'leaf-uri: $CLIENT_ID' '$OUT' && grep -qx 'leaf-sans: 1' '$OUT' &&
    grep -qx 'leaf-verifies-against-root: yes' '$OUT' && grep -qx 'root-equals-root-file: yes' '$OUT' &&
    grep -qx 'leaf-key-matches-csr: yes' '$OUT' && grep -qx 'leaf-is-ca: no' '$OUT'"
SUCCESS=$((SUCCESS + ok))
REM=$(field leaf-remaining-seconds)
check "default validity is 24 h (remaining $REM s)" in_range "$REM" $((DAY - 30)) $((DAY + 5))
AGE=$(field leaf-not-before-age-seconds)
check "not_before is at most a few minutes in the past (age $AGE s)" in_range "$AGE" 0 300

if cpc ca --token "$WORK/token-node-1" --identity "$CLIENT_ID" --ttl $((100 * DAY)) --expect-status 0; then
    ok=1; else ok=0; fi
SUCCESS=$((SUCCESS + ok))
REM=$(field leaf-remaining-seconds)
check_show "$OUT" "100 days asked: granted, capped at 90 days (remaining $REM s)" sh -c "
    [ $ok = 1 ] && [ -n '$REM' ] && [ '$REM' -ge $((90 * DAY - 30)) ] && [ '$REM' -le $((90 * DAY + 5)) ]"

if cpc ca --token "$WORK/token-node-1" --identity "$CLIENT_ID" --ttl 3600 --expect-status 0; then
    ok=1; else ok=0; fi
SUCCESS=$((SUCCESS + ok))
REM=$(field leaf-remaining-seconds)
check_show "$OUT" "a shorter validity (1 h) is honoured (remaining $REM s)" sh -c "
    [ $ok = 1 ] && [ -n '$REM' ] && [ '$REM' -ge 3570 ] && [ '$REM' -le 3605 ]"

if cpc ca --token "$WORK/token-node-2" --identity "$SERVER_ID" --expect-status 0; then ok=1; else ok=0; fi
SUCCESS=$((SUCCESS + ok))
check_show "$OUT" "CA grants node-2 $SERVER_ID (its own pod's identity)" [ $ok = 1 ]

# ---- refusals ----------------------------------------------------------------
AUTHFAIL=0
REFUSED=0
# refusal "what" status log-regex counter cp-ca-args...: the call is refused with
# |status|, no certificate comes back, and meshd's log got a line matching the regex.
refusal() {
    local what=$1 st=$2 re=$3 counter=$4; shift 4
    local before ok=1
    before=$(wc -l <"$MLOG")
    cpc ca --expect-status "$st" "$@" || ok=0
    [ "$(field certificates)" = 0 ] || ok=0
    check_show "$OUT" "refused with status $st, no certificate: $what" [ $ok = 1 ]
    sleep 0.05
    if tail -n +$((before + 1)) "$MLOG" | grep -E -q "$re"; then
        pass "meshd log says why: $what"
    else
        fail "meshd log says why: $what (wanted /$re/ in:)"
        tail -n +$((before + 1)) "$MLOG" | sed 's/^/    /'
    fi
    [ "$ok" = 1 ] && eval "$counter=\$(($counter + 1))"
    return 0
}

refusal "no credential" 16 "CA call from .* refused: no authorization header" AUTHFAIL \
    --no-token --identity "$CLIENT_ID"
refusal "a garbage token" 16 "CA call from .* refused: (malformed token|token signature)" AUTHFAIL \
    --token-string "garbage.not-a-token" --identity "$CLIENT_ID"
refusal "node-2's credential asking for client's identity (credential of another node)" 16 \
    "refused node node-2 for $CLIENT_ID: no pod on node node-2 runs as service account default/client" \
    REFUSED --token "$WORK/token-node-2" --identity "$CLIENT_ID"
refusal "a service account with no pod on the caller's node" 16 \
    "refused node node-1 .*no pod on node node-1 runs as service account default/nobody" REFUSED \
    --token "$WORK/token-node-1" --identity "spiffe://$TD/ns/default/sa/nobody"
refusal "another trust domain" 16 "refused node node-1 .*outside trust domain $TD" REFUSED \
    --token "$WORK/token-node-1" --identity "spiffe://other.example/ns/default/sa/client"
refusal "a CSR with two URI SANs" 3 "refused node node-1.*CSR refused: SubjectAltName must hold exactly one URI" \
    REFUSED --token "$WORK/token-node-1" --identity "$CLIENT_ID" --csr two-sans
refusal "an RSA key" 3 "refused node node-1.*CSR refused: key is not ECDSA P-256" REFUSED \
    --token "$WORK/token-node-1" --identity "$CLIENT_ID" --csr rsa
refusal "a P-384 key" 3 "refused node node-1.*CSR refused: key is not ECDSA P-256" REFUSED \
    --token "$WORK/token-node-1" --identity "$CLIENT_ID" --csr p384
refusal "ImpersonatedIdentity differing from the CSR" 16 \
    "refused node node-1.*impersonated identity $SERVER_ID differs from the CSR's $CLIENT_ID" REFUSED \
    --token "$WORK/token-node-1" --identity "$CLIENT_ID" --impersonate "$SERVER_ID"

check "refusal messages are opaque (no reason leaks to the caller)" sh -c "
    ! grep -h '^grpc-message:' $WORK/cp.*.out | grep -q -i -E 'pod|node|P-256|SubjectAltName|trust domain|impersonat'"

cpc ca --token "$WORK/token-node-1" --identity "$CLIENT_ID" --server-name istiod.wrong.svc --expect-status 0 || true
check_show "$OUT" "cp_client really verifies the server name (a wrong name is refused)" \
    grep -q 'server certificate refused' "$OUT"

# ---- xDS and the independent decoders ----------------------------------------
cpc xds --token "$WORK/token-node-2" --node-name node-2 --save-response "$WORK/xds-response.bin" \
    --summary "$WORK/xds.json" --expect-workload Kubernetes//Pod/default/server \
    --expect-workload Kubernetes//Pod/default/client --expect-service echo.default.svc.cluster.local \
    && ok=1 || ok=0
check_show "$OUT" "xDS (node-2's credential): Address response with both workloads and the echo service, ACKed, clean end" \
    [ $ok = 1 ]

check "python3-protobuf decode: server workload HBONE, 198.18.250.10, SA server, node-2, services map 80->8080" \
    $PY - "$WORK/xds.json" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
w = {x["uid"]: x for x in d["workloads"]}
s = w["Kubernetes//Pod/default/server"]
ok = (s["tunnelProtocol"] == "HBONE" and s["addresses"] == ["198.18.250.10"]
      and s["serviceAccount"] == "server" and s["node"] == "node-2" and s["namespace"] == "default"
      and s["name"] == "server"
      and s["services"] == {"default/echo.default.svc.cluster.local": [{"servicePort": 80, "targetPort": 8080}]})
c = w["Kubernetes//Pod/default/client"]
ok = ok and c["tunnelProtocol"] == "HBONE" and c["addresses"] == ["198.18.250.20"] and c["node"] == "node-1"
ok = ok and c["serviceAccount"] == "client"
if not ok:
    print(json.dumps(d, indent=1))
sys.exit(0 if ok else 1)
EOF
check "python3-protobuf decode: service echo.default.svc.cluster.local on 198.19.0.10 port 80->8080, resource names" \
    $PY - "$WORK/xds.json" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
s = [x for x in d["services"] if x["hostname"] == "echo.default.svc.cluster.local"]
ok = (len(s) == 1 and [a["address"] for a in s[0]["addresses"]] == ["198.19.0.10"]
      and [(p["servicePort"], p["targetPort"]) for p in s[0]["ports"]] == [(80, 8080)]
      and s[0]["resource_name"] == "default/echo.default.svc.cluster.local"
      and d["type_url"] == "type.googleapis.com/istio.workload.Address" and d["nonce"] != ""
      and d["status"] in (0, None))
if not ok:
    print(json.dumps(d, indent=1))
sys.exit(0 if ok else 1)
EOF

protoc --decode=envoy.service.discovery.v3.DeltaDiscoveryResponse -I"$ROOT/proto" -I/usr/include \
    "$ROOT/proto/discovery.proto" <"$WORK/xds-response.bin" >"$WORK/xds-response.txt" 2>&1 || true
check_show "$WORK/xds-response.txt" "protoc --decode reads the captured xDS response: type URL and resource names" sh -c "
    grep -q 'type_url: \"type.googleapis.com/istio.workload.Address\"' '$WORK/xds-response.txt' &&
    grep -q 'name: \"Kubernetes//Pod/default/server\"' '$WORK/xds-response.txt' &&
    grep -q 'name: \"Kubernetes//Pod/default/client\"' '$WORK/xds-response.txt' &&
    grep -q 'name: \"default/echo.default.svc.cluster.local\"' '$WORK/xds-response.txt' &&
    grep -q '^nonce: \"' '$WORK/xds-response.txt'"
# protoc prints Any payloads as bytes; python3-protobuf cuts each Resource's Any value out
# of the captured response and protoc decodes it as istio.workload.Address.
$PY - "$PB" "$WORK/xds-response.bin" "$WORK/any" <<'EOF' || true
import sys
sys.path.insert(0, sys.argv[1])
import discovery_pb2
r = discovery_pb2.DeltaDiscoveryResponse()
r.ParseFromString(open(sys.argv[2], "rb").read())
for i, res in enumerate(r.resources):
    open("%s.%d.bin" % (sys.argv[3], i), "wb").write(res.resource.value)
EOF
: >"$WORK/xds-response-any.txt"
for f in "$WORK"/any.*.bin; do
    [ -e "$f" ] || continue
    protoc --decode=istio.workload.Address -I"$ROOT/proto" -I/usr/include "$ROOT/proto/workload.proto" \
        <"$f" >>"$WORK/xds-response-any.txt" 2>&1 || true
done
check_show "$WORK/xds-response-any.txt" "protoc --decode=istio.workload.Address reads each payload (HBONE, uid, SA, hostname, ports)" sh -c "
    [ \$(grep -c '^workload {' '$WORK/xds-response-any.txt') = 2 ] &&
    [ \$(grep -c '^service {' '$WORK/xds-response-any.txt') = 1 ] &&
    [ \$(grep -c '  tunnel_protocol: HBONE' '$WORK/xds-response-any.txt') = 2 ] &&
    grep -q '  uid: \"Kubernetes//Pod/default/server\"' '$WORK/xds-response-any.txt' &&
    grep -q '  service_account: \"server\"' '$WORK/xds-response-any.txt' &&
    grep -q '  hostname: \"echo.default.svc.cluster.local\"' '$WORK/xds-response-any.txt' &&
    grep -q 'key: \"default/echo.default.svc.cluster.local\"' '$WORK/xds-response-any.txt' &&
    grep -q 'target_port: 8080' '$WORK/xds-response-any.txt'"

protoc --decode=istio.v1.auth.IstioCertificateResponse -I"$ROOT/proto" -I/usr/include \
    "$ROOT/proto/ca.proto" <"$WORK/ca-response.bin" >"$WORK/ca-response.txt" 2>&1 || true
check_show "$WORK/ca-response.txt" "protoc --decode reads the captured CA response: two cert_chain PEM certificates" sh -c "
    [ \$(grep -c '^cert_chain: \"-----BEGIN CERTIFICATE-----' '$WORK/ca-response.txt') = 2 ]"
check "python3-protobuf reads the captured CA response: leaf URI $CLIENT_ID, root = STATE/root-cert.pem" \
    $PY - "$PB" "$WORK/ca-response.bin" "$STATE/root-cert.pem" "$CLIENT_ID" <<'EOF'
import sys
sys.path.insert(0, sys.argv[1])
import ca_pb2
from cryptography import x509
r = ca_pb2.IstioCertificateResponse()
r.ParseFromString(open(sys.argv[2], "rb").read())
leaf = x509.load_pem_x509_certificate(r.cert_chain[0].encode())
root = x509.load_pem_x509_certificate(r.cert_chain[-1].encode())
want = x509.load_pem_x509_certificate(open(sys.argv[3], "rb").read())
uris = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value \
    .get_values_for_type(x509.UniformResourceIdentifier)
sys.exit(0 if len(r.cert_chain) == 2 and uris == [sys.argv[4]] and root == want else 1)
EOF

# A reconnect that says what it kept (initial_resource_versions, reference 3.1): the
# unchanged server workload is not sent again, a name meshd does not have is removed.
SRV_VER=$($PY -c "
import json, sys
d = json.load(open(sys.argv[1]))
print([r['version'] for r in d['resources'] if r['name'] == 'Kubernetes//Pod/default/server'][0])" \
    "$WORK/xds.json" 2>/dev/null || true)
cpc xds --token "$WORK/token-node-2" --node-name node-2 --summary "$WORK/xds2.json" \
    --initial "Kubernetes//Pod/default/server=$SRV_VER" --initial "Kubernetes//Pod/default/gone=1" \
    --expect-workload Kubernetes//Pod/default/client --expect-service echo.default.svc.cluster.local \
    && ok=1 || ok=0
check_show "$OUT" "xDS reconnect with initial versions: unchanged server workload not resent, unknown name removed" \
    sh -c "[ $ok = 1 ] && [ -n '$SRV_VER' ] && $PY -c \"
import json, sys
d = json.load(open('$WORK/xds2.json'))
names = sorted(r['name'] for r in d['resources'])
sys.exit(0 if names == ['Kubernetes//Pod/default/client', 'default/echo.default.svc.cluster.local']
         and d['removed'] == ['Kubernetes//Pod/default/gone'] else 1)\""

# NACK (reference 3.1): the rejected resource is reported and not resent in a loop.
cpc xds --token "$WORK/token-node-2" --node-name node-2 --summary "$WORK/xds-nack.json" \
    --nack-address --linger 1.5 && ok=1 || ok=0
check_show "$OUT" "xDS NACK: reported by meshd, no Address response sent again" sh -c "
    [ $ok = 1 ] && $PY -c \"
import json, sys
d = json.load(open('$WORK/xds-nack.json'))
sys.exit(0 if d['nacked'] and d['address_responses_after'] == 0 else 1)\" &&
    grep -q 'rejected .* version .*: .*rejected by the test' '$MLOG'"

XDS_AUTH_BEFORE=$(grep -c 'xDS stream from .* refused' "$MLOG" || true)
cpc xds --no-token --node-name node-2 --expect-status 16 && ok=1 || ok=0
check_show "$OUT" "xDS without a credential: UNAUTHENTICATED, no resources" [ $ok = 1 ]
check "meshd log says why the xDS stream was refused" \
    test "$(grep -c 'xDS stream from .* refused: no authorization header' "$MLOG" || true)" -gt "${XDS_AUTH_BEFORE:-0}"

# ---- metrics -----------------------------------------------------------------
monitoring_get /metrics >"$WORK/metrics.txt" || true
metric_is() { # name value
    if grep -q -x "$1 $2" "$WORK/metrics.txt"; then return 0; fi
    echo "    wanted '$1 $2', have: $(grep "^$1[ {]" "$WORK/metrics.txt" || echo none)"
    return 1
}
check "/metrics: citadel_server_success_cert_issuance_count $SUCCESS" \
    metric_is citadel_server_success_cert_issuance_count "$SUCCESS"
check "/metrics: citadel_server_authentication_failure_count $AUTHFAIL" \
    metric_is citadel_server_authentication_failure_count "$AUTHFAIL"
check "/metrics: meshd_ca_refusals_total $REFUSED" metric_is meshd_ca_refusals_total "$REFUSED"
check "/metrics: citadel_server_csr_count $((SUCCESS + REFUSED))" \
    metric_is citadel_server_csr_count "$((SUCCESS + REFUSED))"
check "/metrics: meshd_xds_auth_failures_total 1" metric_is meshd_xds_auth_failures_total 1
check "/metrics: pilot_total_xds_rejects counts the NACK" \
    metric_is 'pilot_total_xds_rejects{type="wds"}' 1
grep -E '^(meshd_xds|pilot_xds)' "$WORK/metrics.txt" >"$WORK/metrics-xds.txt" || true
check_show "$WORK/metrics-xds.txt" "/metrics: three xDS streams accepted, none connected now, pushes ACKed" sh -c "
    grep -q -x 'meshd_xds_streams_total 3' '$WORK/metrics.txt' &&
    grep -q -x 'pilot_xds{version=\"amesh\"} 0' '$WORK/metrics.txt' &&
    awk '\$1 == \"meshd_xds_acks_total\" && \$2 >= 1 {f=1} END {exit !f}' '$WORK/metrics.txt'"

# A connection that never makes an authenticated call does not keep its slot (10 s).
check "an idle unauthenticated connection is closed after about 10 s" \
    ip netns exec "$N2" $PY - "$STATE/root-cert.pem" <<'EOF'
import socket, ssl, sys, time
ctx = ssl.create_default_context(cafile=sys.argv[1])
ctx.check_hostname = False
ctx.set_alpn_protocols(["h2"])
s = ctx.wrap_socket(socket.create_connection(("198.18.0.1", 15012), timeout=5))
s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0]))
start = time.monotonic()
s.settimeout(1)
while time.monotonic() - start < 20:
    try:
        b = s.recv(4096)
    except socket.timeout:
        continue
    except (ssl.SSLError, OSError):
        break
    if not b:
        break
took = time.monotonic() - start
print("# closed after %.1f s" % took)
sys.exit(0 if 8 <= took <= 15 else 1)
EOF
check "meshd exits 0 on SIGTERM, sanitizers clean" stop_ztunnel "$MESHD_PID" "$MLOG"
check "meshd logged no sanitizer report" sh -c "! grep -q -E 'AddressSanitizer|LeakSanitizer|runtime error' '$MLOG'"
finish
