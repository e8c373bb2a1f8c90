#!/usr/bin/env bash
# The demo narrative (tools/demo-kube.sh) on a real Kubernetes control plane, through kubectl,
# with assertions:
#
#   meshctl install --kubernetes --nodes 2: etcd, kube-apiserver, controller-manager,
#   scheduler; kubectl on the host through the forwarder; Nodes registered and Ready
#   kubectl apply -f samples/{echo,curl,sleep}.yaml: Deployments -> ReplicaSets -> Pods by
#   Kubernetes' own controllers, bound by its scheduler, run by the kubelets: Running, Ready
#   ztunnel knows the pods; curl -> echo in plaintext (HTTP text on the wire)
#   kubectl label ns demo istio.io/dataplane-mode=ambient: the same pods (same uids, no
#   restart) ride HBONE (only TLS to 15008 on the wire), redirection annotation set
#   kubectl apply -f samples/allow-curl.yaml: curl admitted, sleep refused, DENY counted
#   a waypoint Gateway (kubectl apply, namespace labelled istio.io/use-waypoint): meshd's
#   Deployment, run by a kubelet with its token and istio-ca-root-cert volumes, Programmed;
#   samples/waypoint.yaml: requests counted by the waypoint, its L7 DENY answers 403
#   meshctl uninstall: no namespace, process, /etc/netns entry, CNI state or directory left
# The cluster lives in $WORK, never in /run/amesh.
. "$(dirname "$0")/lib.sh"
. "$ROOT/tests/support/kube.sh"
require_root
kube_require || exit 1

export MESH_CLUSTER_DIR=$WORK/cluster
M=$BIN/meshctl
SAMPLES=$ROOT/samples
export PATH=$BIN:$PATH
K() { "$KUBECTL" --kubeconfig "$MESH_CLUSTER_DIR/kubeconfig" --cache-dir "$WORK/.kube-cache" \
        --request-timeout=30s "$@"; }
cluster_cleanup() {
    local rc=$? f
    set +e
    if [ -e "$MESH_CLUSTER_DIR" ]; then
        if [ "$rc" != 0 ]; then
            for f in "$MESH_CLUSTER_DIR"/kube/*.log "$MESH_CLUSTER_DIR"/meshd.log \
                     "$MESH_CLUSTER_DIR"/nodes/*/*.log; do
                if [ -f "$f" ]; then echo "---- $f"; tail -n 25 "$f"; fi
            done
        fi
        "$M" uninstall >/dev/null 2>&1 || true
    fi
    (exit $rc)
    kube__on_exit
}
trap cluster_cleanup EXIT

ip netns list | awk '{print $1}' | sort >"$WORK/netns.before"

# ---- install ------------------------------------------------------------------------------
t0=$(date +%s.%N)
"$M" install --kubernetes --nodes 2 >"$WORK/install.out" 2>&1 || { cat "$WORK/install.out"; exit 1; }
say "install took $(echo "$(date +%s.%N) - $t0" | bc) s"
cat "$WORK/install.out"
for line in 'etcd ready' 'kube-apiserver ready' 'kube-controller-manager ready' \
            'kube-scheduler ready' 'kubectl access' 'meshd (control plane) ready' \
            'mesh-cni on node-2 ready' 'ztunnel on node-2 ready' 'kubelet on node-1 ready' \
            'kubelet on node-2 ready' 'Installation complete'; do
    check "install: ✔ $line" grep -q "✔ $line" "$WORK/install.out"
done
check "install prints the export line with the real path" \
    grep -qx "export KUBECONFIG=$MESH_CLUSTER_DIR/kubeconfig" "$WORK/install.out"
check "the kubeconfig is private (0600)" [ "$(stat -c %a "$MESH_CLUSTER_DIR/kubeconfig")" = 600 ]
readyz() { [ "$(K get --raw /readyz)" = ok ]; }
check "kubectl on the host reaches the API server (/readyz)" readyz
check "the kubernetes Service has 198.19.0.1" sh -c "
[ \"\$($KUBECTL --kubeconfig '$MESH_CLUSTER_DIR/kubeconfig' get svc kubernetes -o jsonpath='{.spec.clusterIP}')\" = 198.19.0.1 ]"
nodes_ready() { [ "$(K get nodes --no-headers | grep -c ' Ready ')" = 2 ]; }
check "two Nodes, both Ready" nodes_ready
K get nodes -o wide

# ---- the sample apps ------------------------------------------------------------------------
run K apply -f "$SAMPLES/echo.yaml" -f "$SAMPLES/curl.yaml" -f "$SAMPLES/sleep.yaml"
check "all demo pods Ready (kubectl wait)" K wait -n demo --for=condition=Ready pod --all --timeout=120s
K get deploy,rs,pods -n demo -o wide | tee "$WORK/pods.out"
running() { [ "$(K get pods -n demo --no-headers | grep -c ' Running ')" = 4 ]; }
check "4 pods Running (echo-v1, echo-v2, curl, sleep)" running
check "ReplicaSets made by the deployment controller" sh -c "
[ \$($KUBECTL --kubeconfig '$MESH_CLUSTER_DIR/kubeconfig' get rs -n demo --no-headers | wc -l) -ge 4 ]"
on_both() { [ "$(K get pods -n demo -o jsonpath='{.items[*].spec.nodeName}' | tr ' ' '\n' | sort -u | wc -l)" = 2 ]; }
check "the scheduler used both nodes" on_both
pod_ips() { [ "$(K get pods -n demo -o jsonpath='{.items[*].status.podIP}' | wc -w)" = 4 ]; }
check "every pod has a podIP" pod_ips
ztw() { "$M" ztunnel-config workloads --node "$1"; }
zt_knows() { [ "$(ztw node-1 | grep -c '^demo ')" -ge 4 ]; }
WAIT_SECS=30 wait_for zt_knows
check "ztunnel on node-1 knows the 4 demo pods (from meshd, from the API server)" zt_knows
UIDS_BEFORE=$(K get pods -n demo -o jsonpath='{range .items[*]}{.metadata.uid}{"\n"}{end}' | sort)

netns_of() { # app -> netns of its pod, from the kubelet's record
    local pod
    pod=$(K get pods -n demo -l "app=$1" -o jsonpath='{.items[0].metadata.name}')
    $PY -c "import json; print(json.load(open('$MESH_CLUSTER_DIR/pods/demo_$pod/run.json'))['netns'])"
}
CURL_NS=$(netns_of curl)
capture() { # pcap
    start_bg "$WORK/tcpdump.log" ip netns exec "$CURL_NS" tcpdump -Z root --immediate-mode -i eth0 \
        -n -U -w "$1" tcp
    sleep 1
}
stop_capture() { sleep 0.5; kill -INT "$LAST_PID" 2>/dev/null; wait "$LAST_PID" 2>/dev/null || true; }

# ---- plaintext ------------------------------------------------------------------------------
capture "$WORK/plain.pcap"
check "curl -> echo by service name, plaintext" sh -c "
'$M' exec -n demo deploy/curl -- curl -s --max-time 10 http://echo/hello | grep -q 'pod=echo'"
stop_capture
check "the wire carries the HTTP text" sh -c "tcpdump -n -A -r '$WORK/plain.pcap' 2>/dev/null | grep -aq 'GET /hello'"

# ---- enrollment -----------------------------------------------------------------------------
run K label ns demo istio.io/dataplane-mode=ambient
hbone() { ztw node-1 | grep -Eq '^demo +curl.* HBONE'; }
WAIT_SECS=30 wait_for hbone
check "ztunnel: curl now HBONE" hbone
annotated() { [ "$(K get pods -n demo -o jsonpath='{.items[*].metadata.annotations.ambient\.istio\.io/redirection}' | grep -o enabled | wc -l)" = 4 ]; }
WAIT_SECS=30 wait_for annotated
check "mesh-cni marked the 4 pods (ambient.istio.io/redirection)" annotated
sleep 1
capture "$WORK/mesh.pcap"
check "curl -> echo through the mesh" sh -c "
'$M' exec -n demo deploy/curl -- curl -s --max-time 10 http://echo/hello | grep -q 'pod=echo'"
check "curl -> echo.demo.svc.cluster.local" sh -c "
'$M' exec -n demo deploy/curl -- curl -s --max-time 10 http://echo.demo.svc.cluster.local/hello | grep -q 'pod=echo'"
stop_capture
check "HBONE on the wire: TLS to 15008" sh -c "tcpdump -n -r '$WORK/mesh.pcap' 2>/dev/null | grep -q '\.15008'"
check "no HTTP text on the wire" sh -c "! tcpdump -n -A -r '$WORK/mesh.pcap' 2>/dev/null | grep -aq 'GET /hello'"
check "ztunnel's access log names curl's SPIFFE identity" sh -c "
'$M' logs ztunnel --node node-1 | grep 'connection complete' | grep -q 'sa/curl' ||
'$M' logs ztunnel --node node-2 | grep 'connection complete' | grep -q 'sa/curl'"
UIDS_AFTER=$(K get pods -n demo -o jsonpath='{range .items[*]}{.metadata.uid}{"\n"}{end}' | sort)
check "no pod replaced (same uids)" [ "$UIDS_BEFORE" = "$UIDS_AFTER" ]
restarts() { [ "$(K get pods -n demo -o jsonpath='{.items[*].status.containerStatuses[*].restartCount}' | tr ' ' '\n' | sort -u)" = 0 ]; }
check "no container restarted" restarts

# ---- L4 policy ------------------------------------------------------------------------------
run K apply -f "$SAMPLES/allow-curl.yaml"
denied() { ! "$M" exec -n demo deploy/sleep -- curl -s --max-time 5 http://echo/hello >/dev/null 2>&1; }
WAIT_SECS=20 wait_for denied
check "the policy admits curl" sh -c "
'$M' exec -n demo deploy/curl -- curl -s --max-time 10 http://echo/hello | grep -q 'pod=echo'"
rc=0
"$M" exec -n demo deploy/sleep -- curl -s --max-time 10 http://echo/hello || rc=$?
check "the policy refuses sleep (curl exit 56 or 7, got $rc)" sh -c "[ $rc = 56 ] || [ $rc = 7 ]"
deny_count() {
    local n total=0 v
    for n in node-1 node-2; do
        v=$(ip netns exec "$(cat "$MESH_CLUSTER_DIR/nodes/$n/netns")" curl -s http://127.0.0.1:15020/metrics |
            grep '^istio_tcp_connections_failed_total{' | grep 'response_flags="DENY"' |
            awk '{n += $NF} END {print n + 0}')
        total=$((total + v))
    done
    echo "$total"
}
check "the refusals are counted (istio_tcp_connections_failed_total DENY >= 1)" sh -c "[ $(deny_count) -ge 1 ]"
opened() {
    ip netns exec "$(cat "$MESH_CLUSTER_DIR/nodes/node-1/netns")" curl -s http://127.0.0.1:15020/metrics |
        grep '^istio_tcp_connections_opened_total{' | awk '{n += $NF} END {exit !(n > 0)}'
}
check "ztunnel counted opened connections" opened

check "meshctl apply/get/label point at kubectl on this cluster" sh -c "
! '$M' apply -f '$SAMPLES/curl.yaml' 2>'$WORK/ma.err' && grep -q 'use kubectl apply' '$WORK/ma.err' &&
grep -qx 'export KUBECONFIG=$MESH_CLUSTER_DIR/kubeconfig' '$WORK/ma.err' &&
! '$M' get pods -n demo 2>/dev/null && ! '$M' label ns demo a=b 2>/dev/null"

# ---- L7 through a waypoint: meshd deploys it, the scheduler binds it, a kubelet runs it ------
"$M" waypoint generate -n demo >"$WORK/waypoint-gw.yaml"
t_wp=$(date +%s.%N)
run K apply -f "$WORK/waypoint-gw.yaml"
run K label ns demo istio.io/use-waypoint=waypoint
check "the waypoint Gateway is Programmed (kubectl wait)" \
    K wait -n demo --for=condition=Programmed gateway/waypoint --timeout=120s
say "waypoint Gateway applied -> Programmed=True: $(echo "$(date +%s.%N) - $t_wp" | bc) s"
WPSEL=gateway.networking.k8s.io/gateway-name=waypoint
check "the waypoint pod is Ready" K wait -n demo --for=condition=Ready pod -l "$WPSEL" --timeout=60s
K get gateway,deploy,pods -n demo -l "$WPSEL" -o wide 2>/dev/null || K get gateway -n demo
WP_POD=$(K get pods -n demo -l "$WPSEL" -o jsonpath='{.items[0].metadata.name}')
WP_NS=$($PY -c "import json; print(json.load(open('$MESH_CLUSTER_DIR/pods/demo_$WP_POD/run.json'))['netns'])")
run K apply -f "$SAMPLES/waypoint.yaml"
l7_deny() { [ "$("$M" exec -n demo deploy/curl -- curl -s --max-time 5 -o /dev/null -w '%{http_code}' http://echo/admin)" = 403 ]; }
WAIT_SECS=30 wait_for l7_deny
wp_requests() {
    ip netns exec "$WP_NS" curl -s --max-time 5 http://127.0.0.1:15020/metrics |
        awk '/^istio_requests_total\{/ {n += $NF} END {print n + 0}'
}
REQ0=$(wp_requests)
check "the L7 DENY on /admin*: 403 from the waypoint" l7_deny
for _ in $(seq 20); do "$M" exec -n demo deploy/curl -- curl -s --max-time 5 http://echo/hello; done |
    grep -o 'version=v[12]' | sort | uniq -c | tee "$WORK/split.out"
check "requests through the waypoint reach echo (HTTPRoute: v1 and/or v2)" grep -q version=v "$WORK/split.out"
REQ1=$(wp_requests)
say "waypoint istio_requests_total: $REQ0 -> $REQ1"
check "the waypoint counted the 21 requests (istio_requests_total +21, got +$((REQ1 - REQ0)))" \
    [ "$((REQ1 - REQ0))" -ge 21 ]
sleep_l7() { "$M" exec -n demo deploy/sleep -- curl -s --max-time 5 -o /dev/null -w '%{http_code}' http://echo/hello; }
check "sleep's identity is refused at L7 (403)" [ "$(sleep_l7)" = 403 ]
check "the waypoint's istio-ca-root-cert volume is mounted in its own pod only" sh -c "
[ -s '$MESH_CLUSTER_DIR/pods/demo_$WP_POD/volumes/istiod-ca-cert/root-cert.pem' ] &&
[ ! -e /var/run/secrets/istio/root-cert.pem ]"

# ---- uninstall ------------------------------------------------------------------------------
PREFIX=$($PY -c "import json; print(json.load(open('$MESH_CLUSTER_DIR/cluster.json'))['prefix'])")
check "the pods have their /etc/netns DNS files ($PREFIX-pod-demo-*, the waypoint's too)" sh -c "
[ \$(ls -A /etc/netns | grep -c '^$PREFIX-pod-demo-') = 5 ]"
t0=$(date +%s.%N)
"$M" uninstall >"$WORK/uninstall.out" 2>&1 || { cat "$WORK/uninstall.out"; fail "uninstall"; }
say "uninstall took $(echo "$(date +%s.%N) - $t0" | bc) s"
cat "$WORK/uninstall.out"
check "uninstall: the directory is gone" [ ! -e "$MESH_CLUSTER_DIR" ]
check "uninstall: no network namespace left" sh -c "ip netns list | awk '{print \$1}' | sort | cmp -s - '$WORK/netns.before'"
# /etc/netns and /var/lib/cni are the host's, shared with whatever else runs: only what names
# this cluster (its netns prefix, its directory) counts.
check "uninstall: no /etc/netns entry left" sh -c "! ls -A /etc/netns 2>/dev/null | grep -q '^$PREFIX-'"
check "uninstall: nothing of the cluster in /var/lib/cni" sh -c "
! find /var/lib/cni -name '*$PREFIX*' 2>/dev/null | grep -q . &&
! grep -rqs -e '$PREFIX-' -e '$MESH_CLUSTER_DIR' /var/lib/cni"
# A process of the cluster names its directory on its command line, or (meshctl's hidden
# daemons: __kubelet, __forward, __pod-run) has it as MESH_CLUSTER_DIR.
leftovers() {
    $PY - "$MESH_CLUSTER_DIR" <<'EOF'
import os, sys
d = sys.argv[1]
left = []
for p in filter(str.isdigit, os.listdir("/proc")):
    if int(p) == os.getpid():
        continue
    try:
        cmd = open("/proc/%s/cmdline" % p, "rb").read().replace(b"\0", b" ").decode(errors="replace")
        env = open("/proc/%s/environ" % p, "rb").read().split(b"\0")
    except OSError:
        continue
    hidden = "meshctl __" in cmd and ("MESH_CLUSTER_DIR=" + d).encode() in env
    if d in cmd or hidden:
        left.append("%s %s" % (p, cmd))
print("\n".join(left))
sys.exit(1 if left else 0)
EOF
}
check "uninstall: no process of the cluster left" leftovers
check "uninstall: no netns named $PREFIX-*" sh -c "! ip netns list | grep -q '^$PREFIX-'"
check "uninstall: no mount point left (the waypoint's token and root cert)" sh -c "
! grep -q -e '$MESH_CLUSTER_DIR' -e ' /var/run/secrets/istio' /proc/self/mountinfo && ! grep -qs '$MESH_CLUSTER_DIR' /proc/*/mountinfo"
finish
