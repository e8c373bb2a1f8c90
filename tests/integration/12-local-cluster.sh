#!/usr/bin/env bash
# The local cluster end to end, driven only by meshctl, as a user would:
#
#   fabric (bridge) -- cp: meshd 198.18.0.2
#                   -- node-1: mesh-cni, ztunnel   pods 198.18.1.0/24
#                   -- node-2: mesh-cni, ztunnel   pods 198.18.2.0/24
#
# install --nodes 2; apply samples/echo.yaml (echo-v1, echo-v2: one per node) and
# samples/curl.yaml; plaintext by service name (kube-proxy DNAT in the nodes); enroll the
# namespace with one label: the same pods (RESTARTS 0, same processes) now ride HBONE, same
# node and across nodes, and the access logs name both SPIFFE identities; un-enroll:
# plaintext again; delete curl; uninstall leaves no namespace, link, /etc/netns entry,
# process or file behind. The cluster lives in $WORK, never in /run/amesh.
. "$(dirname "$0")/lib.sh"
require_root

export MESH_CLUSTER_DIR=$WORK/cluster
M=$BIN/meshctl
SAMPLES=$ROOT/samples
# Whatever happens, the cluster goes (uninstall); with KEEP_WORK=1 its logs stay in
# $WORK/kept-logs.
cluster_cleanup() {
    local rc=$?
    if [ -e "$MESH_CLUSTER_DIR" ]; then
        KEEP=$WORK/kept-logs
        mkdir -p "$KEEP"
        cp -r "$MESH_CLUSTER_DIR"/*.log "$MESH_CLUSTER_DIR"/nodes "$KEEP" 2>/dev/null || true
        "$M" uninstall >/dev/null 2>&1 || true
    fi
    (exit $rc)
    cleanup
}
trap cluster_cleanup EXIT

# ---- the machine before ------------------------------------------------------
host_links() { ip -o link show | awk -F': ' '{print $2}' | sed 's/@.*//' | sort; }
ip netns list | awk '{print $1}' | sort >"$WORK/netns.before"
host_links >"$WORK/links.before"
ETC_NETNS_BEFORE=no
[ -d /etc/netns ] && ETC_NETNS_BEFORE=yes

# ---- install ---------------------------------------------------------------------
"$M" install --nodes 2 >"$WORK/install.out" 2>&1 || { cat "$WORK/install.out"; exit 1; }
cat "$WORK/install.out"
PREFIX=$($PY -c "import json; print(json.load(open('$MESH_CLUSTER_DIR/cluster.json'))['prefix'])")
check "install prints a check line per component" sh -c "
grep -q '✔ meshd (control plane) ready' '$WORK/install.out' &&
grep -q '✔ mesh-cni on node-1 ready' '$WORK/install.out' && grep -q '✔ mesh-cni on node-2 ready' '$WORK/install.out' &&
grep -q '✔ ztunnel on node-1 ready' '$WORK/install.out' && grep -q '✔ ztunnel on node-2 ready' '$WORK/install.out'"
check "install on an installed cluster says so and fails" sh -c "
! '$M' install >'$WORK/install2.out' 2>&1 && grep -q 'already installed' '$WORK/install2.out'"
check "the node tokens are private (0600)" sh -c "
[ \"\$(stat -c %a '$MESH_CLUSTER_DIR/nodes/node-1/token')\" = 600 ] &&
[ \"\$(stat -c %a '$MESH_CLUSTER_DIR/nodes/node-2/token')\" = 600 ]"
links_as_before() { host_links | cmp -s - "$WORK/links.before"; }
check "the host's own namespace got no link" links_as_before

# ---- apply -------------------------------------------------------------------------
run "$M" apply -f "$SAMPLES/echo.yaml" | tee "$WORK/apply1.out"
run "$M" apply -f "$SAMPLES/curl.yaml" | tee -a "$WORK/apply1.out"
check "apply prints kubectl's lines" sh -c "
grep -qx 'namespace/demo created' '$WORK/apply1.out' && grep -qx 'service/echo created' '$WORK/apply1.out' &&
grep -qx 'deployment.apps/echo-v1 created' '$WORK/apply1.out' && grep -qx 'deployment.apps/curl created' '$WORK/apply1.out'"
"$M" apply -f "$SAMPLES/echo.yaml" >"$WORK/apply2.out"
check "applying the same file again changes nothing" sh -c "
[ \$(grep -c ' unchanged\$' '$WORK/apply2.out') -eq 5 ] && [ \$(wc -l <'$WORK/apply2.out') -eq 5 ]"

"$M" get pods -n demo -o wide | tee "$WORK/pods.txt"
"$M" get svc -n demo | tee "$WORK/svc.txt"
pod_field() { awk -v p="$1" -v f="$2" '$1 ~ "^"p"-" {print $f; exit}' "$WORK/pods.txt"; }
CURL=$(pod_field curl 1) CURL_IP=$(pod_field curl 6) CURL_NODE=$(pod_field curl 7)
V1=$(pod_field echo-v1 1) V1_IP=$(pod_field echo-v1 6) V1_NODE=$(pod_field echo-v1 7)
V2=$(pod_field echo-v2 1) V2_IP=$(pod_field echo-v2 6) V2_NODE=$(pod_field echo-v2 7)
pod_netns() { $PY -c "import json,sys; print(json.load(open(sys.argv[1]))['netns'])" \
    "$MESH_CLUSTER_DIR/pods/demo_$1/run.json"; }
CURL_NETNS=$(pod_netns "$CURL")
say "curl $CURL $CURL_IP on $CURL_NODE; echo-v1 $V1_IP on $V1_NODE; echo-v2 $V2_IP on $V2_NODE"
check "three pods Running 1/1 with addresses in their node's subnet" sh -c "
[ \$(awk 'NR>1 && \$2==\"1/1\" && \$3==\"Running\" && \$6 ~ /^198\\.18\\.[12]\\.[0-9]+\$/' '$WORK/pods.txt' | wc -l) -eq 3 ]"
check "the echo pods are spread over both nodes" [ "$V1_NODE" != "$V2_NODE" ]
check "the service got a VIP from 198.19.0.0/16" grep -qE '^echo +ClusterIP +198\.19\.[0-9]+\.[0-9]+ ' "$WORK/svc.txt"
wait_for "$M" exec -n demo deploy/curl -- curl -sf -m 2 http://echo/healthz
# Services as other projects write them: clusterIP "" or only clusterIPs get one as the API
# server would; ExternalName and headless get none.
cat >"$WORK/raw-services.yaml" <<'EOF'
apiVersion: v1
kind: Service
metadata: {name: raw, namespace: demo}
spec: {clusterIP: "", selector: {app: nothing}, ports: [{port: 80}]}
---
apiVersion: v1
kind: Service
metadata: {name: ips-only, namespace: demo}
spec: {clusterIPs: [198.19.200.7], selector: {app: nothing}, ports: [{port: 80}]}
---
apiVersion: v1
kind: Service
metadata: {name: alias, namespace: demo}
spec: {type: ExternalName, externalName: example.invalid}
---
apiVersion: v1
kind: Service
metadata: {name: headless, namespace: demo}
spec: {clusterIP: None, selector: {app: nothing}, ports: [{port: 80}]}
EOF
check "apply: Services without a usable clusterIP are accepted" sh -c "
'$M' apply -f '$WORK/raw-services.yaml' >'$WORK/raw.out' && [ \$(grep -c ' created\$' '$WORK/raw.out') -eq 4 ]"
"$M" get svc -n demo | tee "$WORK/svc2.txt"
check "clusterIP \"\" gets a VIP, clusterIPs alone keep theirs, ExternalName and headless none" sh -c "
grep -qE '^raw +ClusterIP +198\.19\.[0-9]+\.[0-9]+ ' '$WORK/svc2.txt' &&
grep -qE '^ips-only +ClusterIP +198\.19\.200\.7 ' '$WORK/svc2.txt' &&
grep -qE '^alias +ExternalName +<none> ' '$WORK/svc2.txt' &&
grep -qE '^headless +ClusterIP +None ' '$WORK/svc2.txt'"
"$M" delete -f "$WORK/raw-services.yaml" >/dev/null

ex() { "$M" exec -n demo deploy/curl -- "$@"; }
# Functions run under pipefail: a grep -q that stops reading would fail its writer (EPIPE).
curl_ok() { ex curl -sS -m 5 "http://$1/hello" | grep '^pod=echo-v[12]-' >/dev/null; }
check "plaintext: curl echo (short name)" curl_ok echo
check "plaintext: curl echo.demo" curl_ok echo.demo
check "plaintext: curl echo.demo.svc.cluster.local" curl_ok echo.demo.svc.cluster.local
# Both versions through the VIP: one pod is on curl's node, the other across.
both_versions() {
    local seen=""
    for _ in $(seq 1 40); do
        seen="$seen $(ex curl -sS -m 5 http://echo/hello | grep -o 'version=v[12]')"
        case $seen in *v1*v2* | *v2*v1*) return 0 ;; esac
    done
    return 1
}
check "plaintext: the VIP reaches both versions (same node and across nodes)" both_versions
check "plaintext: the server sees the client pod's address" sh -c "
'$M' exec -n demo deploy/curl -- curl -sS -m 5 http://$V2_IP:8080/ | grep -q 'peer=$CURL_IP:'"
exit7() { local rc=0; "$M" exec -n demo "pod/$CURL" -- sh -c 'exit 7' || rc=$?; [ "$rc" -eq 7 ]; }
check "exec propagates the exit status" exit7
workloads() { "$M" ztunnel-config workloads --node "$1"; }
check "not enrolled: ztunnel lists the demo pods as TCP" sh -c "
[ \$('$M' ztunnel-config workloads --node node-1 | awk '\$1==\"demo\" && \$6==\"TCP\"' | wc -l) -eq 3 ]"
check "without --node: node-1's ztunnel, said on stderr (as istioctl picks one)" sh -c "
'$M' ztunnel-config workloads 2>'$WORK/zc.err' | awk '\$1==\"demo\"' | grep -q . &&
grep -q 'asking the ztunnel of node-1' '$WORK/zc.err'"
pids_of() { cat "$MESH_CLUSTER_DIR"/pids/pod_demo_*.pid | awk '{print $1}' | sort | tr '\n' ' '; }
PIDS_BEFORE=$(pids_of)

# ---- enroll ----------------------------------------------------------------------
check "label ns demo istio.io/dataplane-mode=ambient" sh -c "
'$M' label ns demo istio.io/dataplane-mode=ambient | grep -qx 'namespace/demo labeled'"
hbone_all() { [ "$(workloads "$1" | awk '$1=="demo" && $6=="HBONE"' | wc -l)" -eq 3 ]; }
check "enrolled within seconds: PROTOCOL HBONE for the demo pods (node-1)" wait_secs 10 hbone_all node-1
check "enrolled within seconds: PROTOCOL HBONE for the demo pods (node-2)" wait_secs 10 hbone_all node-2
workloads node-1
check "enrolled: curl echo still works" wait_secs 10 curl_ok echo
check "enrolled: curl echo.demo.svc.cluster.local" curl_ok echo.demo.svc.cluster.local
check "enrolled: the VIP reaches both versions (same node and across nodes)" both_versions
check "enrolled: same node by pod IP, the server sees the client's address" sh -c "
'$M' exec -n demo deploy/curl -- curl -sS -m 5 http://$( [ "$V1_NODE" = "$CURL_NODE" ] && echo "$V1_IP" || echo "$V2_IP"):8080/ | grep -q 'peer=$CURL_IP:'"
check "enrolled: across nodes by pod IP, the server sees the client's address" sh -c "
'$M' exec -n demo deploy/curl -- curl -sS -m 5 http://$( [ "$V1_NODE" = "$CURL_NODE" ] && echo "$V2_IP" || echo "$V1_IP"):8080/ | grep -q 'peer=$CURL_IP:'"
sleep 0.5
ids_in() { "$M" logs ztunnel --node "$1" 2>/dev/null | grep \
    'src.identity="spiffe://cluster.local/ns/demo/sa/curl".*dst.identity="spiffe://cluster.local/ns/demo/sa/echo".*direction="inbound"' >/dev/null; }
check "node-1's ztunnel access log names both SPIFFE identities" wait_secs 5 ids_in node-1
check "node-2's ztunnel access log names both SPIFFE identities" wait_secs 5 ids_in node-2
ids_in node-1 || "$M" logs ztunnel --node node-1 | tail -20
restarts_zero() { "$M" get pods -n demo | awk 'NR>1 && $4!="0" {bad=1} END {exit bad}'; }
check "RESTARTS stay 0" restarts_zero
check "the pods' processes are the same ones (no restart)" [ "$(pids_of)" = "$PIDS_BEFORE" ]
check "logs pod/NAME shows the echo server's requests" sh -c "
'$M' logs -n demo pod/$V1 | grep -q 'http peer='"

# ---- un-enroll -------------------------------------------------------------------
check "label ns demo istio.io/dataplane-mode- (un-enroll)" sh -c "
'$M' label ns demo istio.io/dataplane-mode- | grep -qx 'namespace/demo unlabeled'"
tcp_all() { [ "$(workloads node-1 | awk '$1=="demo" && $6=="TCP"' | wc -l)" -eq 3 ]; }
check "un-enrolled: PROTOCOL TCP again" wait_secs 10 tcp_all
no_rules() { ! ip netns exec "$CURL_NETNS" iptables-save | grep ISTIO_ >/dev/null; }
check "un-enrolled: no redirection rules left in the curl pod" wait_secs 10 no_rules
check "plaintext again: curl echo" wait_secs 10 curl_ok echo
check "plaintext again: the VIP reaches both versions" both_versions
check "RESTARTS still 0" restarts_zero

# ---- delete ------------------------------------------------------------------------
"$M" delete -f "$SAMPLES/curl.yaml" | tee "$WORK/delete.out"
check "delete prints kubectl's lines" grep -qx 'deployment.apps "curl" deleted' "$WORK/delete.out"
check "delete -f samples/curl.yaml removes its pods" sh -c "! '$M' get pods -n demo | grep -q '^curl-'"
check "and the curl pod's network namespace" test ! -e "/run/netns/$CURL_NETNS"
check "the echo pods keep running" sh -c "[ \$('$M' get pods -n demo | grep -c ' Running ') -eq 2 ]"
check "no sanitizer report in the cluster's logs" sh -c "
! grep -l -E 'AddressSanitizer|LeakSanitizer|runtime error' '$MESH_CLUSTER_DIR'/*.log '$MESH_CLUSTER_DIR'/nodes/*/*.log '$MESH_CLUSTER_DIR'/pods/*/log"

# ---- uninstall -----------------------------------------------------------------------
cat "$MESH_CLUSTER_DIR"/pids/*.pid | awk '{print $1}' >"$WORK/pids.all"
run "$M" uninstall
ip netns list | awk '{print $1}' | sort >"$WORK/netns.after"
check "uninstall: no namespace of the cluster left" sh -c "! grep -q -- '^$PREFIX-' '$WORK/netns.after'"
check "uninstall: every namespace there before is still there" sh -c "[ -z \"\$(comm -23 '$WORK/netns.before' '$WORK/netns.after')\" ]"
check "uninstall: the host's links are as before" links_as_before
etc_netns_as_before() {
    # Nothing of ours; and if /etc/netns was not there, it is gone again (unless another
    # cluster on this machine uses it meanwhile).
    ! ls -A /etc/netns 2>/dev/null | grep -- "^$PREFIX-" >/dev/null &&
    { [ "$ETC_NETNS_BEFORE" = yes ] || [ ! -d /etc/netns ] || [ -n "$(ls -A /etc/netns)" ]; }
}
check "uninstall: /etc/netns as before" etc_netns_as_before
no_process_left() {
    local p
    if pgrep -af "$MESH_CLUSTER_DIR" | grep -v '<defunct>'; then return 1; fi
    for p in $(cat "$WORK/pids.all"); do
        # A zombie is dead (it waits for init, its parent since meshctl exited, to reap it).
        case $(ps -o stat= -p "$p" 2>/dev/null) in
        "" | Z*) ;;
        *) ps -o pid,stat,cmd -p "$p"; return 1 ;;
        esac
    done
}
check "uninstall: no process of the cluster left" no_process_left
check "uninstall: the cluster directory is gone" test ! -e "$MESH_CLUSTER_DIR"
check "uninstall again: nothing to remove, says so" sh -c "! '$M' uninstall >/dev/null 2>&1"
finish
