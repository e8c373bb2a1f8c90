#!/usr/bin/env bash
# meshd's absence and certificate rotation, under a long-lived tunnel.
#
# Certificates live 60 s (renewed at half-life, ~30 s) while one client
# connection is probed every 200 ms for the whole run. meshd is stopped before
# the first renewal and kept away past it: the renewal fails and backs off,
# the still-valid certificate keeps being served, the open tunnel and new
# connections between known workloads keep working. meshd comes back on the
# same state: the renewal then succeeds, and the ztunnels resync with
# initial_resource_versions, so nothing unchanged is sent again.
. "$(dirname "$0")/lib.sh"
require_root
topo_two_nodes 4
CFG=$WORK/config
STATE=$WORK/state
write_k8s_config "$CFG"
# Capture first: conntrack then knows meshd's connections from their start, so the
# REDIRECT rule (new connections only) never picks one of them up mid-stream.
capture_outbound "$N1"
start_meshd "$CFG" "$STATE" "$WORK/meshd.log" --log-level debug
start_server "$N2" "$SERVER_IP" 8080 "$WORK/server.log"
start_ztunnel_xds "$N1" node-1 "$STATE" "$WORK/zt1.log" --cert-ttl 60
ZT1=$LAST_PID
start_ztunnel_xds "$N2" node-2 "$STATE" "$WORK/zt2.log" --cert-ttl 60
ZT2=$LAST_PID
SRC_ID='spiffe://cluster.local/ns/default/sa/client'

start_bg "$WORK/probe.json" ip netns exec "$N1" $PY "$ROOT/tests/support/lifecycle_probe.py" \
    --connect "$(hostport "$VIP" 80)" --bind "$CLIENT_IP" --interval 0.2 --duration 55 \
    --ready-file "$WORK/probe.ready"
PROBE=$LAST_PID
check "long-lived tunnel is up" wait_for test -f "$WORK/probe.ready"
sleep 1
applied_before=$(config_dump "$N2" | $PY -c "import json,sys; print(json.load(sys.stdin)['xds']['applied'])")
serial() { # netns identity
    config_dump "$1" | $PY -c "
import json,sys
c=[c for c in json.load(sys.stdin)['certificates'] if c['identity']=='$2']
print(c[0]['certChain'][0]['serialNumber'] if c and c[0]['certChain'] else '')"
}
SERIAL0=$(serial "$N1" "$SRC_ID")

# meshd away, before the first renewal (~30 s after start) and past it.
check "meshd stops cleanly" stop_meshd "$MESHD_PID" "$WORK/meshd.log"
mv "$WORK/meshd.log" "$WORK/meshd-1.log"
renewal_failed() { grep -q "certificate for $SRC_ID: .*retrying in .*(still serving the current one)" "$WORK/zt1.log"; }
check "the renewal fails while meshd is away and backs off" wait_secs 40 renewal_failed
check "the still-valid certificate keeps being served" test "$(serial "$N1" "$SRC_ID")" = "$SERIAL0"
check "new connections between known workloads work while meshd is away" \
    ip netns exec "$N1" $TCPTOOL echo --bind "$CLIENT_IP" --connect "$(hostport "$VIP" 80)"
ready_both() {
    ip netns exec "$N1" $PY -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:15021/healthz/ready',timeout=1)" &&
    ip netns exec "$N2" $PY -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:15021/healthz/ready',timeout=1)"
}
check "both ztunnels stay ready while meshd is away" ready_both
check "ztunnel says it is retrying and serving the last config" \
    grep -q 'reconnecting in .* (serving the last config)' "$WORK/zt2.log"

# meshd back on the same state directory.
start_meshd "$CFG" "$STATE" "$WORK/meshd.log" --log-level debug
proxies() {
    ip netns exec "$N1" $PY -c "
import urllib.request,sys
t=urllib.request.urlopen('http://127.0.0.1:15014/metrics',timeout=1).read().decode()
sys.exit(0 if 'pilot_xds{version=\"amesh\"} 2' in t.splitlines() else 1)"
}
check "both ztunnels reconnect" wait_secs 20 proxies
rotated() { s=$(serial "$N1" "$SRC_ID"); [ -n "$s" ] && [ "$s" != "$SERIAL0" ]; }
check "the renewal succeeds once meshd is back" wait_secs 20 rotated
check "the new certificate came from meshd's CA" grep -q "CA: signed $SRC_ID for node node-1" "$WORK/meshd.log"
check "resync sent no unchanged resource" ip netns exec "$N1" $PY -c "
import urllib.request
t=urllib.request.urlopen('http://127.0.0.1:15014/metrics',timeout=2).read().decode()
m={l.split()[0]:float(l.split()[1]) for l in t.splitlines() if l and not l.startswith('#')}
assert m['meshd_xds_resources_sent_total']==0, m['meshd_xds_resources_sent_total']
assert m['meshd_xds_acks_total']>=4, m
"
applied_after=$(config_dump "$N2" | $PY -c "import json,sys; print(json.load(sys.stdin)['xds']['applied'])")
check "ztunnel applied nothing again on resync ($applied_before -> $applied_after)" \
    test "$applied_before" = "$applied_after"
# A change after the resync still flows.
sed -i 's/version: v1/version: v9/' "$CFG/pods.yaml"
v9() {
    config_dump "$N2" | $PY -c "
import json,sys
d=json.load(sys.stdin)
sys.exit(0 if [w for w in d['workloads'] if w['name']=='server'][0].get('canonicalRevision')=='v9' else 1)"
}
check "a change after the resync arrives" wait_secs 3 v9

wait "$PROBE" || true
check "the long-lived tunnel flowed through meshd's absence and the rotation" $PY -c "
import json
r=json.load(open('$WORK/probe.json'))
assert r['end_reason']=='done' and r['ok']>150, r
"
check "node-1 ztunnel exits 0 on SIGTERM, sanitizers clean" stop_ztunnel "$ZT1" "$WORK/zt1.log"
check "node-2 ztunnel exits 0 on SIGTERM, sanitizers clean" stop_ztunnel "$ZT2" "$WORK/zt2.log"
check "meshd exits 0 on SIGTERM, sanitizers clean" stop_meshd "$MESHD_PID" "$WORK/meshd.log"
finish
