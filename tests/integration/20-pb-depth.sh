#!/usr/bin/env bash
# Issue 9, attack 2: one node's credential must not crash meshd.
#
#   netns node-1                                 netns node-2
#   meshd 198.18.0.1:15012  <== pb_deep.py: CA and xDS requests whose metadata
#                                (google.protobuf.Struct) nests 5000 levels deep
#                           <== ztunnel (node-2), connected before the attack
#                           <== cp_client.py and a new ztunnel (node-1), after it
#
# protobuf-c unpacks recursively with no depth limit: before lib/pbcheck, ~35 KB
# nested 5000 deep overflowed meshd's stack (ASan: stack-overflow, abort; release:
# SIGSEGV), and the CA and xDS were gone for every node. Now both calls end with
# INVALID_ARGUMENT naming the reason, the refusals are logged rate-limited, and
# meshd keeps serving the ztunnel that was connected and the ones that come after.
. "$(dirname "$0")/lib.sh"
require_root
topo_two_nodes 4
CFG=$WORK/config
STATE=$WORK/state
MLOG=$WORK/meshd.log
PB=$WORK/pb
CLIENT_ID=spiffe://cluster.local/ns/default/sa/client
SERVER_ID=spiffe://cluster.local/ns/default/sa/server
write_k8s_config "$CFG"
mkdir -p "$PB"
run protoc -I"$ROOT/proto" -I/usr/include --python_out="$PB" "$ROOT"/proto/*.proto

start_meshd "$CFG" "$STATE" "$MLOG"
start_ztunnel_xds "$N2" node-2 "$STATE" "$WORK/zt2.log"
ZT2=$LAST_PID
# node-1's token for the attacker: any node's credential will do.
"$BIN/meshd" token --state-dir "$STATE" --node node-1 >"$WORK/token-node-1"

NOUT=0
# Runs a helper in node-2's namespace against meshd; output in $OUT.
cp_run() { # script subcommand args...
    NOUT=$((NOUT + 1))
    OUT=$WORK/out.$NOUT
    local script=$1 sub=$2; shift 2
    ip netns exec "$N2" $PY "$ROOT/tests/support/$script" "$sub" --addr "$MESHD_ADDR" \
        --root "$STATE/root-cert.pem" --pb-dir "$PB" --timeout 20 "$@" >"$OUT" 2>&1
}
show() { sed 's/^/    /' "$OUT"; }
check_out() { # "description" command...: like check, and prints $OUT when it fails.
    local what=$1; shift
    if "$@"; then pass "$what"; else fail "$what"; show; fi
}
alive() { # meshd's process is there (not a zombie) and answers /ready
    [ -r "/proc/$MESHD_PID/stat" ] && ! grep -q '^[0-9]* ([^)]*) Z' "/proc/$MESHD_PID/stat" &&
        ip netns exec "$N1" $PY -c "
import urllib.request
urllib.request.urlopen('http://127.0.0.1:15014/ready', timeout=2)" 2>/dev/null
}
metric() { # name -> value from meshd's /metrics
    ip netns exec "$N1" $PY -c "
import sys, urllib.request
t = urllib.request.urlopen('http://127.0.0.1:15014/metrics', timeout=2).read().decode()
print(next((l.split()[1] for l in t.splitlines() if l.split()[:1] == [sys.argv[1]]), ''))" "$1"
}
zt_ready() { # netns
    ip netns exec "$1" $PY -c "
import urllib.request
urllib.request.urlopen('http://127.0.0.1:15021/healthz/ready', timeout=1)"
}

# ---- the attack --------------------------------------------------------------
cp_run pb_deep.py ca --token "$WORK/token-node-1" --identity "$CLIENT_ID" --depth 5000 \
    --expect-status 3 && ok=1 || ok=0
check_out "CA request with 5000-deep metadata: INVALID_ARGUMENT" [ $ok = 1 ]
check_out "CA: grpc-message names the reason" \
    grep -q '^grpc-message: request does not decode: nested deeper than 32 messages' "$OUT"
check "meshd is still running after the deep CA request" alive

cp_run pb_deep.py xds --token "$WORK/token-node-1" --depth 5000 --expect-status 3 && ok=1 || ok=0
check_out "xDS request with 5000-deep Node.metadata: INVALID_ARGUMENT" [ $ok = 1 ]
check_out "xDS: grpc-message names the reason" grep -q \
    '^grpc-message: invalid DeltaDiscoveryRequest: nested deeper than 32 messages' "$OUT"
check "meshd is still running after the deep xDS request" alive
check "meshd logged why" grep -q -E \
    'CA: refused node node-1: request does not decode: nested deeper than 32|bad xDS request from .*nested deeper than 32' \
    "$MLOG"

# Many at once: each answered, the log line rate-limited (10 per 10 s per kind).
REPEAT=30
cp_run pb_deep.py xds --token "$WORK/token-node-1" --repeat $REPEAT --expect-status 3 && ok=1 || ok=0
check_out "$REPEAT deep xDS requests in a row: each INVALID_ARGUMENT" [ $ok = 1 ]
cp_run pb_deep.py ca --token "$WORK/token-node-1" --identity "$CLIENT_ID" --repeat $REPEAT \
    --expect-status 3 && ok=1 || ok=0
check_out "$REPEAT deep CA requests in a row: each INVALID_ARGUMENT" [ $ok = 1 ]
NX=$(grep -c 'bad xDS request from' "$MLOG" || true)
NC=$(grep -c 'request does not decode' "$MLOG" || true)
check "refusals are logged rate-limited ($NX xDS and $NC CA lines for $((REPEAT + 1)) each)" \
    test "$NX" -le 11 -a "$NC" -le 11 -a "$NX" -ge 1 -a "$NC" -ge 1
check "meshd is still running after $((2 * REPEAT + 2)) deep requests" alive

# ---- everyone else is still served --------------------------------------------
check "the ztunnel connected before the attack is still ready" zt_ready "$N2"
check "its xDS stream was not touched (one stream open, the attacker's are gone)" \
    test "$(metric 'pilot_xds{version="amesh"}')" = 1
cp_run cp_client.py ca --token "$WORK/token-node-2" --identity "$SERVER_ID" --expect-status 0 \
    && ok=1 || ok=0
check_out "a legitimate CreateCertificate is granted after the attack" [ $ok = 1 ]
cp_run cp_client.py xds --token "$WORK/token-node-2" --node-name node-2 \
    --expect-workload Kubernetes//Pod/default/server --expect-service echo.default.svc.cluster.local \
    && ok=1 || ok=0
check_out "a legitimate xDS stream gets its Address resources after the attack" [ $ok = 1 ]
start_ztunnel_xds "$N1" node-1 "$STATE" "$WORK/zt1.log" && ok=1 || ok=0
ZT1=$LAST_PID
check "a new ztunnel (node-1) syncs with meshd after the attack" [ $ok = 1 ]
cert_for() { # netns identity
    config_dump "$1" | $PY -c "
import json, sys
sys.exit(0 if any(c['identity'] == sys.argv[1] and c['certChain'] for c in json.load(sys.stdin)['certificates']) else 1)" "$2"
}
check "it gets its certificate for $CLIENT_ID from meshd's CA" wait_secs 10 cert_for "$N1" "$CLIENT_ID"

check "node-1 ztunnel exits 0 on SIGTERM, sanitizers clean" stop_ztunnel "$ZT1" "$WORK/zt1.log"
check "node-2 ztunnel exits 0 on SIGTERM, sanitizers clean" stop_ztunnel "$ZT2" "$WORK/zt2.log"
check "meshd exits 0 on SIGTERM, sanitizers clean" stop_meshd "$MESHD_PID" "$MLOG"
finish
