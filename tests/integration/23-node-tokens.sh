#!/usr/bin/env bash
# Node tokens: short-lived and renewed, one audience each, revocable per node.
#
#   netns node-1: meshd 198.18.0.1:15012, ztunnel node-1 (client pod)
#   netns node-2: ztunnel node-2 (server pod), cp_client.py
#
# 1. Both ztunnels start with 20 s tokens and 60 s certificates. Each token is
#    renewed at half-life through meshd (NodeToken/Renew) and written back to
#    the token file; across three expiries the xDS streams opened with the
#    first tokens stay up, certificates are renewed with renewed CA tokens,
#    and traffic flows.
# 2. An xds token is refused by the CA, a ca token by xDS (and the same
#    tokens on their own path are granted).
# 3. `meshd token --revoke --node node-1`: meshd closes node-1's xDS stream
#    within two seconds and refuses node-1's (renewed) tokens on xDS, CA and
#    renewal; node-2's stream and calls are untouched. A fresh token for
#    node-1, written over its token file, brings its ztunnel back.
. "$(dirname "$0")/lib.sh"
require_root
topo_two_nodes 4
CFG=$WORK/config
STATE=$WORK/state
PB=$WORK/pb
CP="$PY $ROOT/tests/support/cp_client.py"
CLIENT_ID='spiffe://cluster.local/ns/default/sa/client'
SERVER_ID='spiffe://cluster.local/ns/default/sa/server'
write_k8s_config "$CFG"
mkdir -p "$PB"
capture_outbound "$N1"
start_meshd "$CFG" "$STATE" "$WORK/meshd.log" --log-level debug
start_server "$N2" "$SERVER_IP" 8080 "$WORK/server.log"
TOKEN_TTL=20s start_ztunnel_xds "$N1" node-1 "$STATE" "$WORK/zt1.log" --cert-ttl 60
ZT1=$LAST_PID
TOKEN_TTL=20s start_ztunnel_xds "$N2" node-2 "$STATE" "$WORK/zt2.log" --cert-ttl 60
ZT2=$LAST_PID
T0=$(date +%s)
cp "$WORK/token-node-1" "$WORK/token-node-1.first"

metric() { # name -> value on meshd's /metrics
    ip netns exec "$N1" $PY -c "
import sys, urllib.request
t = urllib.request.urlopen('http://127.0.0.1:15014/metrics', timeout=2).read().decode()
print(int(float([l.split()[1] for l in t.splitlines()
                 if l and not l.startswith('#') and l.split()[0].split('{')[0] == sys.argv[1]][0])))" "$1"
}
NOUT=0
cpc() { # subcommand args... (from node-2's namespace; output in $OUT)
    NOUT=$((NOUT + 1))
    OUT=$WORK/cp.$NOUT.out
    local sub=$1; shift
    ip netns exec "$N2" $CP "$sub" --addr "$MESHD_ADDR" --root "$STATE/root-cert.pem" \
        --pb-dir "$PB" --timeout 10 "$@" >"$OUT" 2>&1
}
check_out() { # description command... (prints $OUT when it fails)
    local what=$1; shift
    if "$@"; then pass "$what"; else fail "$what"; sed 's/^/    /' "$OUT"; fi
}
serial() { # netns identity
    config_dump "$1" | $PY -c "
import json,sys
c=[c for c in json.load(sys.stdin)['certificates'] if c['identity']=='$2']
print(c[0]['certChain'][0]['serialNumber'] if c and c[0]['certChain'] else '')"
}
ready() { # netns
    ip netns exec "$1" $PY -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:15021/healthz/ready',timeout=1)"
}
echo_ok() {
    ip netns exec "$N1" $TCPTOOL echo --bind "$CLIENT_IP" --connect "$(hostport "$VIP" 80)"
}
renewals() { # log audience -> renewed tokens of that audience in a ztunnel log
    grep -c "$2 token for node .* from meshd (renewed)" "$1" || true
}
exp_of() { # token-file audience -> the expiry field of that line
    sed -n "s/^v2:$2:[^:]*:[0-9]*:[0-9]*:\([0-9]*\):.*/\1/p" "$1"
}

# ---- 1. renewal across expiries -------------------------------------------------
check "meshd token writes an xds line and a ca line, 20 s apart from issue to expiry" sh -c "
    [ \$(wc -l <'$WORK/token-node-1.first') = 2 ] &&
    head -1 '$WORK/token-node-1.first' | grep -q '^v2:xds:node-1:0:' &&
    tail -1 '$WORK/token-node-1.first' | grep -q '^v2:ca:node-1:0:' &&
    awk -F: '{ if (\$6 - \$5 != 20) exit 1 }' '$WORK/token-node-1.first'"
SERIAL0=$(serial "$N1" "$CLIENT_ID")
check "node-1 holds a certificate for $CLIENT_ID" test -n "$SERIAL0"
check "traffic flows at the start" echo_ok
# Renewals at 10, 20, 30 and 40 s: by then three generations of tokens have expired.
renewed_4x() { [ "$(renewals "$WORK/zt1.log" xds)" -ge 4 ] && [ "$(renewals "$WORK/zt1.log" ca)" -ge 4 ] &&
               [ "$(renewals "$WORK/zt2.log" xds)" -ge 4 ] && [ "$(renewals "$WORK/zt2.log" ca)" -ge 4 ]; }
check "each ztunnel renewed each token four times (at half-life)" wait_secs 60 renewed_4x
say "after $(( $(date +%s) - T0 )) s: node-1 renewed xds $(renewals "$WORK/zt1.log" xds)x, ca $(renewals "$WORK/zt1.log" ca)x"
FIRST_EXP=$(exp_of "$WORK/token-node-1.first" xds)
check "the first tokens have long expired (now $(date +%s), they ended ${FIRST_EXP:-?})" \
    test -n "$FIRST_EXP" -a "$(date +%s)" -gt "$(( ${FIRST_EXP:-0} + 15 ))"
check "meshd counted the renewals and refused none" sh -c "
    [ $(metric meshd_token_renewals_total) -ge 16 ] && [ $(metric meshd_token_renewal_failures_total) = 0 ]"
file_fresh() { # token-file
    local now; now=$(date +%s)
    [ "$(exp_of "$1" xds)" -gt "$now" ] && [ "$(exp_of "$1" ca)" -gt "$now" ] &&
    ! cmp -s "$1" "$WORK/token-node-1.first" && [ "$(stat -c %a "$1")" = 600 ]
}
check "the token file holds the renewed tokens, still valid, mode 0600" file_fresh "$WORK/token-node-1"
check "the xDS streams opened with the first tokens are still the only ones (no reconnect)" sh -c "
    [ \$(grep -c 'xDS stream from .*(node node-1)' '$WORK/meshd.log') = 1 ] &&
    [ \$(grep -c 'xDS stream from .*(node node-2)' '$WORK/meshd.log') = 1 ] &&
    [ $(metric pilot_xds) = 2 ] && [ $(metric meshd_xds_auth_failures_total) = 0 ]"
rotated() { s=$(serial "$N1" "$CLIENT_ID"); [ -n "$s" ] && [ "$s" != "$SERIAL0" ]; }
check "the certificate was renewed with a renewed CA token" wait_secs 20 rotated
check "the CA refused nothing" test "$(metric citadel_server_authentication_failure_count)" = 0
all_good() { ready "$N1" && ready "$N2" && echo_ok; }
check "both ztunnels are ready and traffic flows" all_good

# ---- 2. audiences -----------------------------------------------------------------
(umask 077
 "$BIN/meshd" token --state-dir "$STATE" --node node-2 --audience xds >"$WORK/n2-xds"
 "$BIN/meshd" token --state-dir "$STATE" --node node-2 --audience ca >"$WORK/n2-ca")
check "--audience prints one token of that audience" sh -c "
    [ \$(wc -l <'$WORK/n2-xds') = 1 ] && grep -q '^v2:xds:node-2:' '$WORK/n2-xds' &&
    grep -q '^v2:ca:node-2:' '$WORK/n2-ca'"
cpc ca --token "$WORK/n2-xds" --identity "$SERVER_ID" --expect-status 16
check_out "the CA refuses an xds token (UNAUTHENTICATED)" grep -qx 'result: ok' "$OUT"
cpc ca --token "$WORK/n2-ca" --identity "$SERVER_ID" --expect-status 0
check_out "the CA grants the same node's ca token" grep -qx 'result: ok' "$OUT"
cpc xds --token "$WORK/n2-ca" --node-name node-2 --expect-status 16
check_out "xDS refuses a ca token (UNAUTHENTICATED)" grep -qx 'result: ok' "$OUT"
cpc xds --token "$WORK/n2-xds" --node-name node-2 --expect-service echo.default.svc.cluster.local
check_out "xDS serves the same node's xds token" grep -qx 'result: ok' "$OUT"
check "meshd logs why: the audience" sh -c "
    grep -q 'CA call from node node-2.* refused: token is for xDS, not the CA' '$WORK/meshd.log' &&
    grep -q 'xDS stream from node node-2.* refused: token is for the CA, not xDS' '$WORK/meshd.log'"
cpc renew --token "$WORK/n2-ca" --audience ca --save-token "$WORK/n2-ca-renewed" --expect-status 0
check_out "a renewal returns a token of the same audience and node" \
    grep -q '^v2:ca:node-2:0:' "$WORK/n2-ca-renewed"
V1='v1:node-2:4102444800:0000000000000000000000000000000000000000000000000000000000000000'
cpc xds --token-string "$V1" --node-name node-2 --expect-status 16
check_out "a v1 token is refused, and meshd says to issue a new one" sh -c "
    grep -qx 'result: ok' '$OUT' && grep -q 'refused: v1 token' '$WORK/meshd.log'"

# ---- 3. per-node revocation ---------------------------------------------------------------
cp "$WORK/token-node-1" "$WORK/token-node-1.before-revoke"
ended_before=$(grep -c 'stream ended with status' "$WORK/zt2.log" || true)
check "meshd token --revoke --node node-1" \
    "$BIN/meshd" token --state-dir "$STATE" --node node-1 --revoke
REVOKED_AT=$(date +%s%N)
closed() { [ "$(metric meshd_xds_streams_revoked_total)" = 1 ]; }
check "meshd closes node-1's xDS stream within 2 s" wait_secs 2 closed
say "closed after $(( ($(date +%s%N) - REVOKED_AT) / 1000000 )) ms"
check "node-1's ztunnel saw its stream end UNAUTHENTICATED" \
    wait_secs 5 grep -q 'stream ended with status 16' "$WORK/zt1.log"
cpc xds --token "$WORK/token-node-1.before-revoke" --node-name node-1 --expect-status 16
check_out "meshd refuses node-1's (renewed) xds token on a new stream" grep -qx 'result: ok' "$OUT"
cpc ca --token "$WORK/token-node-1.before-revoke" --identity "$CLIENT_ID" --expect-status 16
check_out "the CA refuses node-1's ca token" grep -qx 'result: ok' "$OUT"
cpc renew --token "$WORK/token-node-1.before-revoke" --audience xds --expect-status 16
check_out "a revoked token renews nothing" grep -qx 'result: ok' "$OUT"
check "meshd logs why: revoked" grep -q 'node node-1.* refused: token revoked (older generation)' "$WORK/meshd.log"
cpc xds --token "$WORK/token-node-2" --node-name node-2 --expect-service echo.default.svc.cluster.local
check_out "node-2's tokens still work" grep -qx 'result: ok' "$OUT"
check "node-2's ztunnel kept its stream" test "$(grep -c 'stream ended with status' "$WORK/zt2.log" || true)" = "$ended_before"
check "node-2's ztunnel is ready" ready "$N2"

# The operator issues node-1 a fresh token (generation 1) and replaces its file.
(umask 077; "$BIN/meshd" token --state-dir "$STATE" --node node-1 --ttl 20s >"$WORK/token-node-1.new")
check "the fresh token carries generation 1" grep -q '^v2:xds:node-1:1:' "$WORK/token-node-1.new"
mv "$WORK/token-node-1.new" "$WORK/token-node-1"
back() { [ "$(grep -c 'xDS stream from .*(node node-1)' "$WORK/meshd.log")" = 2 ] && ready "$N1"; }
check "node-1's ztunnel reads the new file and gets a stream again" wait_secs 25 back
check "ztunnel took the new tokens from the file" grep -q 'xds token for node node-1 from .*token-node-1, valid until .* (generation 1)' "$WORK/zt1.log"
cpc ca --token "$WORK/token-node-1" --identity "$CLIENT_ID" --expect-status 0
check_out "the CA grants node-1 again with the fresh token" grep -qx 'result: ok' "$OUT"
check "traffic flows after the revocation round" echo_ok

check "ztunnel node-1 exits cleanly" stop_ztunnel "$ZT1" "$WORK/zt1.log"
check "ztunnel node-2 exits cleanly" stop_ztunnel "$ZT2" "$WORK/zt2.log"
check "meshd exits cleanly" stop_meshd "$MESHD_PID" "$WORK/meshd.log"
finish
