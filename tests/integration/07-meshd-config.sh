#!/usr/bin/env bash
# meshd feeds two ztunnels: Kubernetes YAML in a config directory -> delta xDS
# -> each ztunnel's model, certificates from meshd's CA with node tokens.
#
#   netns node-1: meshd (198.18.0.1:15012), ztunnel, client pod
#   netns node-2: ztunnel, server pod (app=echo), legacy pod (not enrolled)
#
# Then edits the config directory and requires every change (pod, service,
# namespace label; add, change, delete) in node-2's config_dump within one
# second, and a broken file to change nothing served.
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
check "meshd created its root with a private key of mode 0600" \
    sh -c "test -s '$STATE/root-cert.pem' && [ \"\$(stat -c %a '$STATE/root-key.pem')\" = 600 ]"

start_server "$N2" "$SERVER_IP" 8080 "$WORK/server.log"
start_server "$N2" "$SERVER2_IP" 9090 "$WORK/legacy.log"
start_ztunnel_xds "$N1" node-1 "$STATE" "$WORK/zt1.log"
ZT1=$LAST_PID
start_ztunnel_xds "$N2" node-2 "$STATE" "$WORK/zt2.log"
ZT2=$LAST_PID

SRC_ID='spiffe://cluster.local/ns/default/sa/client'
DST_ID='spiffe://cluster.local/ns/default/sa/server'
check "client reaches server by pod IP over HBONE" \
    ip netns exec "$N1" $TCPTOOL echo --bind "$CLIENT_IP" --connect "$(hostport "$SERVER_IP" 8080)"
check "client reaches server by service VIP" \
    ip netns exec "$N1" $TCPTOOL echo --bind "$CLIENT_IP" --connect "$(hostport "$VIP" 80)"
check "client reaches the non-enrolled pod over plain TCP" \
    ip netns exec "$N1" $TCPTOOL echo --bind "$CLIENT_IP" --connect "$(hostport "$SERVER2_IP" 9090)"
sleep 0.3
check "server access log shows both SPIFFE identities" \
    grep -q "src.identity=\"$SRC_ID\".*dst.identity=\"$DST_ID\".*direction=\"inbound\"" "$WORK/zt2.log"
check "certificates came from meshd's CA (signed lines in its log)" \
    sh -c "grep -q 'CA: signed $SRC_ID for node node-1' '$WORK/meshd.log' && grep -q 'CA: signed $DST_ID for node node-2' '$WORK/meshd.log'"
check "node-1 holds only its own identity's certificate" ip netns exec "$N1" $PY -c "
import json,urllib.request
d=json.load(urllib.request.urlopen('http://127.0.0.1:15000/config_dump',timeout=2))
ids=sorted(c['identity'] for c in d['certificates'])
assert ids==['$SRC_ID'], ids
assert d['xds']['synced'] is True
"

# meshctl reads the live dump the way istioctl reads ztunnel's.
ip netns exec "$N2" "$BIN/meshctl" ztunnel-config workloads >"$WORK/mc-workloads.txt" 2>&1 || true
ip netns exec "$N2" "$BIN/meshctl" ztunnel-config certificates >"$WORK/mc-certs.txt" 2>&1 || true
cat "$WORK/mc-workloads.txt" "$WORK/mc-certs.txt"
check "meshctl ztunnel-config workloads: istioctl's columns, server on HBONE" sh -c "
head -1 '$WORK/mc-workloads.txt' | grep -Eq '^NAMESPACE +POD NAME +IP +NODE +WAYPOINT +PROTOCOL' &&
grep -Eq '^default +server +$SERVER_IP +node-2 +None +HBONE' '$WORK/mc-workloads.txt' &&
grep -Eq '^legacy +legacy +$SERVER2_IP +node-2 +None +TCP' '$WORK/mc-workloads.txt'"
check "meshctl ztunnel-config certificates: leaf and root from meshd's CA, valid" sh -c "
grep -Eq 'spiffe://cluster.local/ns/default/sa/server +Leaf +Available +true' '$WORK/mc-certs.txt' &&
grep -Eq 'Root +Available +true' '$WORK/mc-certs.txt'"

# ---- live changes: each must reach node-2's ztunnel within one second ----
# seen <description> <python expression over d (the dump)>: polls for 1 s, then fails.
seen() {
    local what=$1 expr=$2
    check "$what (within 1 s)" ip netns exec "$N2" $PY -c "
import json,time,urllib.request
deadline=time.time()+1.0
while True:
    d=json.load(urllib.request.urlopen('http://127.0.0.1:15000/config_dump',timeout=1))
    W={w['name']:w for w in d['workloads']}
    S={s['hostname']:s for s in d['services']}
    if $expr: break
    if time.time()>deadline: raise SystemExit('not seen: $what')
    time.sleep(0.02)
"
}

cat >"$CFG/extra-pod.yaml" <<YAML
apiVersion: v1
kind: Pod
metadata: {name: extra, namespace: default, labels: {app: echo, version: v2}}
spec: {serviceAccountName: server, nodeName: node-2, containers: [{name: main, image: none}]}
status: {phase: Running, conditions: [{type: Ready, status: "True"}], podIPs: [{ip: "198.18.250.12"}]}
YAML
seen "a new pod appears" "'extra' in W and W['extra']['tunnelProtocol']=='HBONE'"
sed -i 's/version: v2/version: v3/' "$CFG/extra-pod.yaml"
seen "a pod label change reaches the workload" "W.get('extra',{}).get('canonicalRevision')=='v3'"
rm "$CFG/extra-pod.yaml"
seen "a deleted pod disappears" "'extra' not in W"

cat >"$CFG/extra-svc.yaml" <<YAML
apiVersion: v1
kind: Service
metadata: {name: other, namespace: default}
spec: {selector: {app: echo}, clusterIP: 198.19.0.11, ports: [{port: 81, targetPort: 8080}]}
YAML
seen "a new service appears" "'other.default.svc.cluster.local' in S"
sed -i 's/port: 81,/port: 82,/' "$CFG/extra-svc.yaml"
seen "a service port change arrives" \
    "[p['servicePort'] for p in S.get('other.default.svc.cluster.local',{}).get('ports',[])]==[82]"
rm "$CFG/extra-svc.yaml"
seen "a deleted service disappears" "'other.default.svc.cluster.local' not in S"

sed -i 's#istio.io/dataplane-mode: ambient#istio.io/dataplane-mode: none#' "$CFG/namespaces.yaml"
seen "un-enrolling the namespace turns its pods to plain TCP" "W['server']['tunnelProtocol']!='HBONE'"
certs_node2() {
    config_dump "$N2" | $PY -c "import json,sys; print(' '.join(sorted(c['identity'] for c in json.load(sys.stdin)['certificates'])))"
}
no_certs() { [ -z "$(certs_node2)" ]; }
check "node-2 forgets the server's certificate once no local workload uses it" wait_secs 2 no_certs
sed -i 's#istio.io/dataplane-mode: none#istio.io/dataplane-mode: ambient#' "$CFG/namespaces.yaml"
seen "re-enrolling turns them back to HBONE" "W['server']['tunnelProtocol']=='HBONE'"
has_cert() { [ "$(certs_node2)" = "$DST_ID" ]; }
check "and fetches it again from meshd's CA" wait_secs 3 has_cert

# ---- broken input changes nothing served ----
before=$(config_dump "$N2" | $PY -c "import json,sys; d=json.load(sys.stdin); print(sorted((w['uid'],w['tunnelProtocol']) for w in d['workloads']), sorted(s['hostname'] for s in d['services']))")
cp "$CFG/pods.yaml" "$WORK/pods.good"
printf 'apiVersion: v1\nkind: Pod\nmetadata: {name: broken\n  namespace: [\n' >"$CFG/pods.yaml"
sleep 1
after=$(config_dump "$N2" | $PY -c "import json,sys; d=json.load(sys.stdin); print(sorted((w['uid'],w['tunnelProtocol']) for w in d['workloads']), sorted(s['hostname'] for s in d['services']))")
check "a file that does not parse changes nothing served" test "$before" = "$after"
check "meshd reports it with file and line" grep -q "pods.yaml:[0-9]*:" "$WORK/meshd.log"
check "meshd's metrics count the standing error" ip netns exec "$N1" $PY -c "
import urllib.request
t=urllib.request.urlopen('http://127.0.0.1:15014/metrics',timeout=2).read().decode()
assert 'meshd_config_errors 1' in t.splitlines(), t
"
check "traffic still flows with the last good config" \
    ip netns exec "$N1" $TCPTOOL echo --bind "$CLIENT_IP" --connect "$(hostport "$VIP" 80)"
cp "$WORK/pods.good" "$CFG/pods.yaml"
# An invalid resource (bad IP) keeps its previous version; the rest of the file applies.
sed -i "s/ip: \"$SERVER_IP\"/ip: \"not-an-ip\"/" "$CFG/pods.yaml"
sleep 1
check "an invalid pod keeps its previous version" ip netns exec "$N2" $PY -c "
import json,urllib.request
d=json.load(urllib.request.urlopen('http://127.0.0.1:15000/config_dump',timeout=2))
W={w['name']:w for w in d['workloads']}
assert W['server']['addresses']==['$SERVER_IP'], W['server']
assert 'client' in W and 'legacy' in W
"
cp "$WORK/pods.good" "$CFG/pods.yaml"
sleep 0.5
check "meshd counted pushes and connected proxies" ip netns exec "$N1" $PY -c "
import urllib.request
t=urllib.request.urlopen('http://127.0.0.1:15014/metrics',timeout=2).read().decode()
m={l.split()[0]:float(l.split()[1]) for l in t.splitlines() if l and not l.startswith('#')}
assert m['pilot_xds{version=\"amesh\"}']==2, m
assert m['pilot_xds_pushes{type=\"wds\"}']>=10, m
assert m['citadel_server_success_cert_issuance_count']>=2, m
assert m['pilot_proxy_convergence_time_count']>=10, m
"

check "node-1 ztunnel exits 0 on SIGTERM, sanitizers clean" stop_ztunnel "$ZT1" "$WORK/zt1.log"
check "node-2 ztunnel exits 0 on SIGTERM, sanitizers clean" stop_ztunnel "$ZT2" "$WORK/zt2.log"
check "meshd exits 0 on SIGTERM, sanitizers clean" stop_meshd "$MESHD_PID" "$WORK/meshd.log"
finish
