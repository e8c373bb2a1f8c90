#!/usr/bin/env bash
# ztunnel's worker threads under load (issue 12, "Tests"): two nodes fed by meshd, both
# ztunnels with --workers 4.
#   a. 1 GiB each way through HBONE: 32 connections exchange 32 MiB each way at once, every byte
#      checked by SHA-256 in both directions (tests/support/workers_stress.py), from two
#      client pods of two service accounts: each node-1 worker pools one HBONE connection
#      per identity, so node-2 accepts 8 and its balancing gives every worker some;
#   b. meanwhile meshd's config changes every ~0.3 s (a pod and a Service added, changed,
#      removed): every connection still completes intact, and every worker ends on the
#      same, newer model;
#   c. node-1's connections and node-2's HBONE connections were spread over all 4 workers
#      (/debug/workers, sampled during the load);
#   d. with 32 long-lived connections open on every worker, an AuthorizationPolicy DENY
#      closes every one of them, and new ones are refused;
#   e. --workers 1 still carries the same traffic.
# W64_MIB_PER_CONN (default 32) scales the bytes: the `tsan` tier runs it with 4.
#
#   node-1: meshd, ztunnel, clients 198.18.250.20 (sa client) and .21 (sa client2), REDIRECTed
#   node-2: ztunnel, server 198.18.250.10:8080
. "$(dirname "$0")/lib.sh"
require_root
ulimit -n 8192 2>/dev/null || ulimit -n "$(ulimit -Hn)"
topo_two_nodes 4
CFG=$WORK/config
STATE=$WORK/state
write_k8s_config "$CFG"
CLIENT2_IP=198.18.250.21
ip -n "$N1" addr add $CLIENT2_IP/32 dev lo
cat >>"$CFG/pods.yaml" <<YAML
---
apiVersion: v1
kind: Pod
metadata: {name: client2, namespace: default, uid: 0c11e7e0-0004, labels: {app: client2}}
spec:
  serviceAccountName: client2
  nodeName: node-1
  containers: [{name: main, image: none}]
status:
  phase: Running
  conditions: [{type: Ready, status: "True"}]
  podIPs: [{ip: "$CLIENT2_IP"}]
YAML
capture_outbound "$N1"
start_meshd "$CFG" "$STATE" "$WORK/meshd.log"
STRESS="$PY $ROOT/tests/support/workers_stress.py"
start_bg "$WORK/server.log" ip netns exec "$N2" $STRESS serve --bind "$SERVER_IP" --port 8080
wait_for sh -c "ip netns exec $N2 ss -Hltn 'sport = :8080' | grep -q ."
SERVER=$(hostport "$SERVER_IP" 8080)
MIB=${W64_MIB_PER_CONN:-32}
CONNS=32
WORKERS=4

# |conns| exchanges of |bytes| each way, half from each client pod; JSON lines into |out|.
load2() { # conns bytes timeout out
    local rc=0 p1 p2
    ip netns exec "$N1" $STRESS load --bind "$CLIENT_IP" --connect "$SERVER" --conns $(($1 / 2)) \
        --bytes "$2" --timeout "$3" >"$4.1" 2>&1 &
    p1=$!
    ip netns exec "$N1" $STRESS load --bind "$CLIENT2_IP" --connect "$SERVER" --conns $(($1 - $1 / 2)) \
        --bytes "$2" --timeout "$3" >"$4.2" 2>&1 &
    p2=$!
    wait "$p1" || rc=1
    wait "$p2" || rc=1
    cat "$4.1" "$4.2" >"$4"
    return $rc
}

start_ztunnels() { # workers
    start_ztunnel_xds "$N1" node-1 "$STATE" "$WORK/zt1.log" --workers "$1"
    ZT1=$LAST_PID
    start_ztunnel_xds "$N2" node-2 "$STATE" "$WORK/zt2.log" --workers "$1"
    ZT2=$LAST_PID
}
workers_json() { # netns
    ip netns exec "$1" $PY -c "
import urllib.request,sys
sys.stdout.write(urllib.request.urlopen('http://127.0.0.1:15000/debug/workers',timeout=2).read().decode())"
}
# Prints the value of |field| for each worker, space separated.
workers_field() { # netns field
    workers_json "$1" | $PY -c "
import json,sys
print(' '.join(str(w['$2']) for w in json.load(sys.stdin)))"
}
n_workers() { workers_json "$1" | $PY -c "import json,sys; print(len(json.load(sys.stdin)))"; }
# True when every worker of both nodes reports zero of |field|.
all_zero() { # field
    local v
    for ns in "$N1" "$N2"; do
        v=$(workers_field "$ns" "$1") || return 1
        [ -z "$(echo "$v" | tr -d ' 0')" ] || return 1
    done
}
# True when every worker of a node has the same model_version, greater than $2.
models_agree() { # netns min
    workers_field "$1" model_version | $PY -c "
import sys
v=[int(x) for x in sys.stdin.read().split()]
sys.exit(0 if v and len(set(v))==1 and v[0]>$2 else 1)"
}
# The maximum of |field| per worker in a sampler's output: "w0 w1 ...".
sampled_max() { # file field
    $PY -c "
import json,sys
d=json.load(open('$1'))
print(' '.join(str(d['max'][k].get('$2',0)) for k in sorted(d['max'],key=int)))"
}
every_worker_had() { # "n0 n1 ..." workers: each of the first |workers| values is >= 1
    $PY -c "
import sys
v=[int(float(x)) for x in '$1'.split()]
sys.exit(0 if len(v)==$2 and all(x>=1 for x in v) else 1)"
}

start_ztunnels "$WORKERS"
check "node-1 ztunnel runs $WORKERS workers" test "$(n_workers "$N1")" -eq "$WORKERS"
check "node-2 ztunnel runs $WORKERS workers" test "$(n_workers "$N2")" -eq "$WORKERS"
check "before the load, both clients reach the server" load2 2 1024 10 "$WORK/first.json"
MODEL1=$(workers_field "$N1" model_version | tr ' ' '\n' | sort -n | tail -1)
MODEL2=$(workers_field "$N2" model_version | tr ' ' '\n' | sort -n | tail -1)

# ---- a, b, c: the load, model updates, the spread ------------------------------------
# A pod and a Service that come and go in meshd's config while the load runs: each change
# is a new model snapshot published to every worker of both ztunnels.
churn() { # stopfile countfile
    local i=0
    while [ ! -e "$1" ] && [ "$i" -lt 400 ]; do
        i=$((i + 1))
        if [ $((i % 3)) = 0 ]; then
            rm -f "$CFG/churn.yaml"
        else
            cat >"$CFG/.churn.tmp" <<YAML
apiVersion: v1
kind: Pod
metadata: {name: churn-$i, namespace: default, uid: 0c11e7e0-c$i, labels: {app: churn}}
spec:
  serviceAccountName: churn
  nodeName: node-$((i % 2 + 1))
  containers: [{name: main, image: none, ports: [{containerPort: 9000}]}]
status:
  phase: Running
  conditions: [{type: Ready, status: "True"}]
  podIPs: [{ip: "198.18.252.$((i % 200 + 1))"}]
---
apiVersion: v1
kind: Service
metadata: {name: churn, namespace: default}
spec:
  selector: {app: churn}
  clusterIP: "198.19.1.$((i % 200 + 1))"
  clusterIPs: ["198.19.1.$((i % 200 + 1))"]
  ports: [{name: tcp, port: $((9000 + i % 100)), targetPort: 9000}]
YAML
            mv "$CFG/.churn.tmp" "$CFG/churn.yaml"
        fi
        echo "$i" >"$2"
        sleep 0.3
    done
    rm -f "$CFG/churn.yaml"
}
say "load: $CONNS connections x $MIB MiB each way ($((CONNS * MIB * 2)) MiB in total), model churn"
start_bg "$WORK/sample1.log" ip netns exec "$N1" $STRESS sample --stop-file "$WORK/load.done" \
    --out "$WORK/sample1.json"
SAMPLE1=$LAST_PID
start_bg "$WORK/sample2.log" ip netns exec "$N2" $STRESS sample --stop-file "$WORK/load.done" \
    --out "$WORK/sample2.json"
SAMPLE2=$LAST_PID
start_bg "$WORK/churn.log" churn "$WORK/load.done" "$WORK/churn.count"
CHURN=$LAST_PID
T0=$(date +%s.%N)
LOAD_RC=0
load2 "$CONNS" $((MIB << 20)) 120 "$WORK/load.json" || LOAD_RC=$?
T1=$(date +%s.%N)
touch "$WORK/load.done"
wait "$CHURN" "$SAMPLE1" "$SAMPLE2" || true
cat "$WORK/load.json"
LOAD_SECS=$(echo "$T1 - $T0" | bc)
CHURNS=$(cat "$WORK/churn.count" 2>/dev/null || echo 0)
say "load took $LOAD_SECS s; $CHURNS config changes meanwhile"
check "a: every byte of $CONNS x $MIB MiB arrived intact in both directions" test "$LOAD_RC" -eq 0
check "b: the config changed while the load ran (saw $CHURNS changes)" test "$CHURNS" -ge 3

C1=$(sampled_max "$WORK/sample1.json" connections)
C2=$(sampled_max "$WORK/sample2.json" connections)
S2=$(sampled_max "$WORK/sample2.json" inbound_sessions)
say "most connections per worker while loaded: node-1 [$C1], node-2 [$C2] (inbound sessions [$S2])"
check "c: node-1's connections spread on all $WORKERS workers" every_worker_had "$C1" "$WORKERS"
# node-2 balances what it accepts, HBONE connections; their streams stay on their worker.
check "c: node-2's HBONE connections spread on all $WORKERS workers" every_worker_had "$S2" "$WORKERS"
check "b: every worker of node-1 ends on the same, newer model" wait_secs 10 models_agree "$N1" "$MODEL1"
check "b: every worker of node-2 ends on the same, newer model" wait_secs 10 models_agree "$N2" "$MODEL2"
gone_churn() { ! config_dump "$1" | grep -q 'churn-'; }
check "b: the last change (churn pod removed) reached node-1" wait_secs 10 gone_churn "$N1"
check "b: the last change (churn pod removed) reached node-2" wait_secs 10 gone_churn "$N2"
check "a: after the load no connection is left on any worker" wait_secs 10 all_zero connections

# ---- d: a DENY reaches every worker's open connections --------------------------------
HOLD=32
start_bg "$WORK/hold1.json" ip netns exec "$N1" $STRESS hold --bind "$CLIENT_IP" --connect "$SERVER" \
    --conns $((HOLD / 2)) --ready-file "$WORK/hold1.ready" --interval 0.2 --duration 20
HOLD1=$LAST_PID
start_bg "$WORK/hold2.json" ip netns exec "$N1" $STRESS hold --bind "$CLIENT2_IP" --connect "$SERVER" \
    --conns $((HOLD / 2)) --ready-file "$WORK/hold2.ready" --interval 0.2 --duration 20
HOLD2=$LAST_PID
wait_secs 20 test -s "$WORK/hold1.ready" -a -s "$WORK/hold2.ready" || true
HELD=$(cat "$WORK/hold1.ready" "$WORK/hold2.ready" 2>/dev/null | awk '{n += $1} END {print n + 0}')
say "long-lived connections open: $HELD"
H1=$(workers_field "$N1" connections)
H2=$(workers_field "$N2" connections)
HS2=$(workers_field "$N2" inbound_sessions)
say "held per worker: node-1 connections [$H1], node-2 connections [$H2] (HBONE sessions [$HS2])"
check "d: all $HOLD long-lived connections are open" test "$HELD" -eq "$HOLD"
check "d: they are open on every worker of node-1" every_worker_had "$H1" "$WORKERS"
check "d: they are open on every worker of node-2" every_worker_had "$H2" "$WORKERS"
cat >"$CFG/deny.yaml" <<'YAML'
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny-client, namespace: default}
spec:
  action: DENY
  rules:
  - from: [{source: {principals: ["cluster.local/ns/default/sa/client", "cluster.local/ns/default/sa/client2"]}}]
    to: [{operation: {ports: ["8080"]}}]
YAML
HOLD_RC=0
T0=$(date +%s.%N)
wait "$HOLD1" || HOLD_RC=$?
wait "$HOLD2" || HOLD_RC=$?
T1=$(date +%s.%N)
cat "$WORK/hold1.json" "$WORK/hold2.json"
say "all held connections ended $(echo "$T1 - $T0" | bc) s after the DENY was written"
hold_all_ended() {
    $PY -c "
import json
rs=[json.loads(open(f).read().strip().splitlines()[-1]) for f in ('$WORK/hold1.json','$WORK/hold2.json')]
assert sum(r['opened'] for r in rs)==$HOLD and sum(r['ended'] for r in rs)==$HOLD, rs
assert all(r['still_open']==0 for r in rs), rs" && test "$HOLD_RC" -eq 0
}
check "d: the DENY closed every long-lived connection, on every worker" hold_all_ended
check "d: no connection is left on any worker of either node" wait_secs 10 all_zero connections
refused() { # every one of 8 new connections, from either client
    ! ip netns exec "$N1" $STRESS load --bind "$CLIENT_IP" --connect "$SERVER" --conns 8 \
        --bytes 1024 --timeout 5 >"$WORK/refused1.json" 2>&1 &&
        ! ip netns exec "$N1" $STRESS load --bind "$CLIENT2_IP" --connect "$SERVER" --conns 8 \
            --bytes 1024 --timeout 5 >"$WORK/refused2.json" 2>&1 &&
        grep -q '"ok": 0,' "$WORK/refused1.json" && grep -q '"ok": 0,' "$WORK/refused2.json"
}
check "d: new connections are refused" refused
check "d: the closes name the policy change" grep -q 'connection closed due to policy change' "$WORK/zt2.log"
rm "$CFG/deny.yaml"
allowed() { load2 8 1024 5 "$WORK/allowed.json"; }
check "d: removing the DENY lets connections through again" wait_secs 10 allowed

check "node-1 ztunnel ($WORKERS workers) exits 0 on SIGTERM, sanitizers clean" stop_ztunnel "$ZT1" "$WORK/zt1.log"
check "node-2 ztunnel ($WORKERS workers) exits 0 on SIGTERM, sanitizers clean" stop_ztunnel "$ZT2" "$WORK/zt2.log"

# ---- e: --workers 1 ---------------------------------------------------------------------
mv "$WORK/zt1.log" "$WORK/zt1-w$WORKERS.log"
mv "$WORK/zt2.log" "$WORK/zt2-w$WORKERS.log"
start_ztunnels 1
check "e: node-1 ztunnel runs 1 worker" test "$(n_workers "$N1")" -eq 1
check "e: node-2 ztunnel runs 1 worker" test "$(n_workers "$N2")" -eq 1
ONE_RC=0
load2 8 $(((MIB < 4 ? MIB : 4) << 20)) 120 "$WORK/load1.json" || ONE_RC=$?
cat "$WORK/load1.json"
check "e: --workers 1 carries 8 exchanges intact in both directions" test "$ONE_RC" -eq 0
check "node-1 ztunnel (1 worker) exits 0 on SIGTERM, sanitizers clean" stop_ztunnel "$ZT1" "$WORK/zt1.log"
check "node-2 ztunnel (1 worker) exits 0 on SIGTERM, sanitizers clean" stop_ztunnel "$ZT2" "$WORK/zt2.log"
check "meshd exits 0 on SIGTERM, sanitizers clean" stop_meshd "$MESHD_PID" "$WORK/meshd.log"
say "numbers: $CONNS x $MIB MiB each way in $LOAD_SECS s with $CHURNS config changes; per-worker connections node-1 [$C1] node-2 [$C2]"
finish
