#!/usr/bin/env bash
# meshctl __kubelet on the real kube-apiserver v1.20.2 (tests/support/kube.sh) with the
# controller-manager (deployment, replicaset, endpoint, nodelifecycle ...) and the scheduler.
#
# The cluster layout of kcluster.h, made here by hand (what install --kubernetes makes):
#   <p>-fabric bridge; <p>-cp 198.18.0.2 (etcd, kube-apiserver :6443, controllers);
#   <p>-node-K 198.18.0.(10+K), 198.18.K.1 on lo, routes to the other nodes' pod subnets;
#   in each node: mesh-cni --kubeconfig --plugin-socket nodes/node-K/cni/plugin.sock and
#   meshctl __kubelet --node node-K (MESH_CLUSTER_DIR private to this test).
#
# The kubelets authenticate as system:node:node-K (group system:nodes, client certificates),
# bound to the ClusterRoles system:node and system:node-proxier, as install --kubernetes does.
# Checks: the Nodes register Ready (podCIDR, InternalIP), hold their Leases and stay Ready
# past the lifecycle controller's grace (40 s); a Deployment of 2 replicas gets Running/Ready
# through kubectl with IPs of the CNI chain (ptp + host-local + amesh-cni, its conflist and
# host-local state inside the cluster dir); the Endpoints controller's endpoints become the
# node's nat rules: a pod on node-1 curls the Service VIP and its name (meshctl exec
# deploy/curl); a deleted pod is replaced by the ReplicaSet and leaves no netns, veth or
# host-local lease; a killed container is restarted (restartCount 1); an API server restart
# kills no pod; a restarted kubelet adopts its pods (same supervisor, no restart).
# Prints apply -> Running, create -> Ready latencies and the idle kubelet's CPU and RSS.
. "$(dirname "$0")/lib.sh"
KUBE_ADDR=198.18.0.2
KUBE_CONTROLLERS=deployment,replicaset,endpoint,endpointslice,serviceaccount,namespace,garbagecollector,nodelifecycle
. "$ROOT/tests/support/kube.sh"
require_root
kube_require || exit 1
[ -x /usr/lib/cni/ptp ] && [ -x /usr/lib/cni/host-local ] ||
    { echo "FAIL: /usr/lib/cni/ptp, host-local missing (tools/install-deps.sh)"; exit 1; }

P=amk$ID
C=$WORK/cluster
K=$WORK/kube
export MESH_CLUSTER_DIR=$C
NODES=2
KL_PIDS=()

kl_teardown() { # supervisors, pod namespaces and /etc/netns files the kubelets made
    local f p
    for p in "${KL_PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
    for f in "$C"/pids/pod_*.pid; do
        [ -f "$f" ] || continue
        p=$(cut -d' ' -f1 "$f")
        kill -KILL -- "-$p" 2>/dev/null || true
    done
    for f in "$C"/pods/*/run.json; do # mount points the kubelets made, deepest first
        [ -f "$f" ] || continue
        $PY -c 'import json,sys; [print(d) for d in json.load(open(sys.argv[1])).get("mountDirs", [])]' "$f" |
            while read -r d; do rmdir "$d" 2>/dev/null || true; done
    done
    for f in "$C"/netns.d/*; do
        [ -f "$f" ] || continue
        ip netns del "$(basename "$f")" 2>/dev/null || true
        rm -rf "/etc/netns/$(basename "$f")"
    done
    for n in fabric cp $(seq -f node-%g "$NODES"); do ip netns del "$P-$n" 2>/dev/null || true; done
}
eval "lib_$(declare -f cleanup)"
cleanup() {
    local rc=$? f
    if [ "$rc" != 0 ]; then
        for f in "$C"/nodes/*/kubelet.log "$C"/nodes/*/mesh-cni.log; do
            [ -f "$f" ] && { echo "---- $f (last 30 lines)"; tail -n 30 "$f"; }
        done
    fi
    kl_teardown
    (exit "$rc")
    lib_cleanup
}

kc() { kube_kubectl "$K" "$@"; }
now_ms() { date +%s%3N; }

# ---- the layout: namespaces, links, routes (as net_create makes them) ---------------------------
mkdir -p "$C/nodes" "$C/netns.d"
printf '{"prefix": "%s", "nodes": %d, "kubernetes": true}\n' "$P" "$NODES" >"$C/cluster.json"
ip netns add "$P-fabric"
ip -n "$P-fabric" link add br0 type bridge
ip -n "$P-fabric" link set br0 up
link() { # netns port addr
    ip netns add "$1"
    ip -n "$1" link set lo up
    ip link add eth0 netns "$1" type veth peer name "$2" netns "$P-fabric"
    ip -n "$P-fabric" link set "$2" master br0 up
    ip -n "$1" addr add "$3" dev eth0
    ip -n "$1" link set eth0 up
}
link "$P-cp" cp 198.18.0.2/24
for k in $(seq "$NODES"); do
    link "$P-node-$k" "node$k" "198.18.0.$((10 + k))/24"
    ip -n "$P-node-$k" addr add "198.18.$k.1/32" dev lo
    ip netns exec "$P-node-$k" sysctl -qw net.ipv4.ip_forward=1
    ip -n "$P-cp" route add "198.18.$k.0/24" via "198.18.0.$((10 + k))"
    for j in $(seq "$NODES"); do
        [ "$j" = "$k" ] || ip -n "$P-node-$k" route add "198.18.$j.0/24" via "198.18.0.$((10 + j))"
    done
    mkdir -p "$C/nodes/node-$k/cni"
    echo "$P-node-$k" >"$C/nodes/node-$k/netns"
done

kube_up "$P-cp" "$K"
kube_up_controllers "$P-cp" "$K"
# The kubelets' identity as install gives it: user system:node:NAME in group system:nodes,
# bound to system:node and system:node-proxier (RBAC here; install adds the Node authorizer).
kc create clusterrolebinding amesh-test-nodes --clusterrole=system:node --group=system:nodes >/dev/null
kc create clusterrolebinding amesh-test-node-proxier --clusterrole=system:node-proxier \
    --group=system:nodes >/dev/null

start_node() { # k: mesh-cni (once) and the kubelet of node-k
    local k=$1 d=$C/nodes/node-$1
    local u=system:node:node-$k
    [ -f "$K/pki/$u.crt" ] || kube_client_cert "$K" "$u" system:nodes
    cat >"$d/kubelet.kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://198.18.0.2:6443", certificate-authority: "$K/pki/ca.crt"}}]
users: [{name: $u, user: {client-certificate: "$K/pki/$u.crt", client-key: "$K/pki/$u.key"}}]
contexts: [{name: c, context: {cluster: c, user: $u}}]
current-context: c
EOF
    if [ ! -S "$d/cni/plugin.sock" ]; then
        start_bg "$d/mesh-cni.log" ip netns exec "$P-node-$k" "$BIN/mesh-cni" --node "node-$k" \
            --kubeconfig "$K/kubeconfig" --zds-socket "$d/zds.sock" \
            --plugin-socket "$d/cni/plugin.sock"
        wait_for test -S "$d/cni/plugin.sock" || { cat "$d/mesh-cni.log"; exit 1; }
    fi
    # Only the network namespace (as install's sys_spawn does): `ip netns exec` would give it a
    # mount namespace of its own, and the pod namespaces it mounts would not reach the host.
    nsenter --net="/run/netns/$P-node-$k" "$BIN/meshctl" __kubelet --node "node-$k" >>"$d/kubelet.log" 2>&1 &
    KL_PIDS[$k]=$!
}
T_NODES=$(now_ms)
for k in $(seq "$NODES"); do start_node "$k"; done

# ---- 1. Nodes ---------------------------------------------------------------------------------------
node_ready() { [ "$(kc get node "$1" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}')" = True ]; }
no_taints() { kc get node "$1" >/dev/null 2>&1 && [ -z "$(kc get node "$1" -o jsonpath='{.spec.taints}')" ]; }
WAIT_SECS=60 wait_for node_ready node-1 || true
WAIT_SECS=60 wait_for node_ready node-2 || true
check "node-1 and node-2 register Ready" node_ready node-2
say "nodes Ready after $(( $(now_ms) - T_NODES )) ms"
check "node-1: InternalIP 198.18.0.11, podCIDR 198.18.1.0/24" test \
    "$(kc get node node-1 -o jsonpath='{.status.addresses[?(@.type=="InternalIP")].address} {.spec.podCIDR}')" \
    = "198.18.0.11 198.18.1.0/24"
check "node-2 holds its Lease in kube-node-lease" test \
    "$(kc -n kube-node-lease get lease node-2 -o jsonpath='{.spec.holderIdentity}')" = node-2
WAIT_SECS=30 wait_for no_taints node-1 || true
check "the lifecycle controller removes the not-ready taint" no_taints node-1
check "the conflist chains ptp, amesh-cni in the cluster dir" grep -q '"type": "amesh-cni"' \
    "$C/nodes/node-1/cni/net.d/10-amesh.conflist"

# ---- 2. a Deployment of 2 replicas, a Service, a client ---------------------------------------------
T_APPLY=$(now_ms)
kc apply -f - >/dev/null <<'YAML'
apiVersion: v1
kind: Namespace
metadata: {name: demo}
---
apiVersion: v1
kind: Service
metadata: {name: echo, namespace: demo}
spec:
  selector: {app: echo}
  ports: [{name: http, port: 80, targetPort: http}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: echo, namespace: demo}
spec:
  replicas: 2
  selector: {matchLabels: {app: echo}}
  template:
    metadata: {labels: {app: echo}}
    spec:
      terminationGracePeriodSeconds: 5
      containers:
      - name: echo
        image: none
        command: ["echo-server"]
        args: ["--version", "v1"]
        env: [{name: POD_NAME, valueFrom: {fieldRef: {fieldPath: metadata.name}}}]
        ports: [{name: http, containerPort: 8080}]
        readinessProbe: {httpGet: {path: /hello, port: http}, periodSeconds: 2}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: curl, namespace: demo}
spec:
  replicas: 1
  selector: {matchLabels: {app: curl}}
  template:
    metadata: {labels: {app: curl}}
    spec:
      nodeSelector: {kubernetes.io/hostname: node-1}
      terminationGracePeriodSeconds: 2
      containers: [{name: curl, image: none, command: ["sleep", "infinity"]}]
YAML
running() { # selector count
    [ "$(kc -n demo get pods -l "$1" --field-selector status.phase=Running -o name | wc -l)" = "$2" ]
}
all_ready() { # selector count
    [ "$(kc -n demo get pods -l "$1" -o jsonpath='{range .items[*]}{.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}' | grep -c True)" = "$2" ]
}
WAIT_SECS=60 wait_for running app=echo 2 || true
T_RUN=$(now_ms)
WAIT_SECS=60 wait_for all_ready app=echo 2 || true
T_READY=$(now_ms)
check "2 echo replicas Running" running app=echo 2
check "2 echo replicas Ready (readinessProbe httpGet)" all_ready app=echo 2
say "apply -> 2 Running: $((T_RUN - T_APPLY)) ms; apply -> 2 Ready: $((T_READY - T_APPLY)) ms"
IPS=$(kc -n demo get pods -l app=echo -o jsonpath='{range .items[*]}{.status.podIP}{"\n"}{end}')
in_subnets() {
    local ip
    for ip in $IPS; do [[ $ip =~ ^198\.18\.[12]\.[0-9]+$ ]] || return 1; done
    [ "$(echo "$IPS" | wc -w)" = 2 ]
}
check "pod IPs from the nodes' ranges: $(echo $IPS)" in_subnets
KL_NET=amesh-pods
check "host-local holds a lease for each IP in the cluster dir" \
    bash -c "[ -n '$(echo $IPS)' ] && for i in $(echo $IPS); do ls $C/nodes/node-*/cni/ipam/$KL_NET/\$i >/dev/null || exit 1; done"
WAIT_SECS=60 wait_for all_ready app=curl 1 || true
check "the curl pod runs on node-1" test "$(kc -n demo get pods -l app=curl -o jsonpath='{.items[0].spec.nodeName}')" = node-1

# ---- 3. Services: the VIP and the name from a pod of node-1 -----------------------------------------
VIP=$(kc -n demo get svc echo -o jsonpath='{.spec.clusterIP}')
ex() { "$BIN/meshctl" exec -n demo deploy/curl -- "$@"; }
vip_ok() { ex curl -sS --max-time 3 "http://$VIP/hello" | grep -q 'pod=echo-'; }
name_ok() { ex curl -sS --max-time 3 http://echo/hello | grep -q 'pod=echo-'; }
WAIT_SECS=30 wait_for vip_ok || true
check "curl http://$VIP/hello (the Service VIP) from the curl pod" vip_ok
check "curl http://echo/hello (the name, /etc/netns hosts)" name_ok
check "meshctl logs deploy/echo shows the server's log" bash -c "'$BIN/meshctl' logs -n demo deploy/echo | grep -q ."

# ---- 3a. one pod: create -> Ready (kubectl create, then kubectl wait); tcpSocket probes ------------
probe_pod() { # name port
    cat <<YAML
apiVersion: v1
kind: Pod
metadata: {name: $1, namespace: demo}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: c
    image: none
    command: ["echo-server"]
    readinessProbe: {tcpSocket: {port: $2}, periodSeconds: 1}
YAML
}
T0=$(now_ms)
probe_pod bare 9000 | kc create -f - >/dev/null
kc -n demo wait --for=condition=Ready pod/bare --timeout=60s >/dev/null || true
T1=$(now_ms)
check "a pod with a tcpSocket probe on its open port gets Ready" test \
    "$(kc -n demo get pod bare -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}')" = True
say "create -> Ready of one pod (kubectl create + wait): $((T1 - T0)) ms"
probe_pod shut 9999 | kc create -f - >/dev/null
running_shut() { [ "$(kc -n demo get pod shut -o jsonpath='{.status.phase}')" = Running ]; }
WAIT_SECS=30 wait_for running_shut || true
sleep 3
check "a pod whose tcpSocket probe finds the port closed runs but stays not Ready" test \
    "$(kc -n demo get pod shut -o jsonpath='{.status.phase} {.status.conditions[?(@.type=="Ready")].status}')" = "Running False"
kc -n demo delete pod bare shut --wait=true --timeout=60s >/dev/null

# ---- 3b. a projected service-account token (audience istio-ca) at its mountPath -----------------
TOKDIR_EXISTED=0
[ -e /run/secrets/tokens ] && TOKDIR_EXISTED=1
kc apply -f - >/dev/null <<'YAML'
apiVersion: v1
kind: Pod
metadata: {name: tok, namespace: demo}
spec:
  serviceAccountName: default
  terminationGracePeriodSeconds: 1
  containers:
  - name: c
    image: none
    command: ["sh", "-c", "cat /var/run/secrets/tokens/istio-token > seen; exec sleep infinity"]
    volumeMounts: [{name: istio-token, mountPath: /var/run/secrets/tokens}]
  volumes:
  - name: istio-token
    projected:
      sources: [{serviceAccountToken: {audience: istio-ca, expirationSeconds: 43200, path: istio-token}}]
YAML
tok_ready() { [ "$(kc -n demo get pod tok -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}')" = True ] && [ -s "$C/pods/demo_tok/root/seen" ]; }
WAIT_SECS=60 wait_for tok_ready || true
check "the token pod runs and read its file" tok_ready
claims() { $PY -c '
import base64, json, sys
p = open(sys.argv[1]).read().strip().split(".")[1]
c = json.loads(base64.urlsafe_b64decode(p + "=" * (-len(p) % 4)))
print(",".join(c["aud"]), c["sub"], c["kubernetes.io"]["pod"]["name"])' "$C/pods/demo_tok/root/seen"; }
check "the token: audience istio-ca, the pod's service account, bound to the pod" test \
    "$(claims 2>/dev/null)" = "istio-ca system:serviceaccount:demo:default tok"
check "the token is the pod's alone (not on the host's /var/run/secrets/tokens)" \
    test ! -e /run/secrets/tokens/istio-token
kc -n demo delete pod tok --wait=true --timeout=60s >/dev/null
tok_gone() { [ ! -e "$C/pods/demo_tok" ] && { [ "$TOKDIR_EXISTED" = 1 ] || [ ! -e /run/secrets/tokens ]; }; }
check "the token pod's files and mount point are gone with it" tok_gone

# ---- 3c. configMap volumes: files, updates, a missing one holds the pod, an optional one does not --
kc -n demo create configmap cfg --from-literal=greeting=hello >/dev/null
kc apply -f - >/dev/null <<'YAML'
apiVersion: v1
kind: Pod
metadata: {name: cmv, namespace: demo}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: c
    image: none
    command: ["sh", "-c", "(test -s /etc/amesh-cfg/greeting && ! touch /etc/amesh-cfg/w 2>/dev/null && echo ro || echo rw-or-none) > rw; while :; do cat /etc/amesh-cfg/greeting /etc/amesh-proj/sub/g > seen.t 2>&1; mv seen.t seen; sleep 0.2; done"]
    volumeMounts:
    - {name: cfg, mountPath: /etc/amesh-cfg}
    - {name: proj, mountPath: /etc/amesh-proj}
    - {name: opt, mountPath: /etc/amesh-opt}
  volumes:
  - {name: cfg, configMap: {name: cfg}}
  - name: proj
    projected:
      sources: [{configMap: {name: cfg, items: [{key: greeting, path: sub/g}]}}]
  - {name: opt, configMap: {name: nosuch, optional: true}}
YAML
seen() { cat "$C/pods/demo_cmv/root/seen" 2>/dev/null; }
cm_ready() { [ "$(kc -n demo get pod cmv -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}')" = True ] && [ "$(seen)" = hellohello ]; }
WAIT_SECS=60 wait_for cm_ready || true
check "the configMap pod runs (an optional missing ConfigMap does not hold it) and reads its files" cm_ready
check "the ConfigMap files are the pod's alone (not on the host)" test ! -e /etc/amesh-cfg/greeting
check "meshctl exec joins the pod's mount namespace: it sees the files" \
    test "$("$BIN/meshctl" exec -n demo pod/cmv -- cat /etc/amesh-proj/sub/g 2>/dev/null)" = hello
check "the files are read-only in the pod" test "$(cat "$C/pods/demo_cmv/root/rw")" = ro
kc -n demo create configmap cfg --from-literal=greeting=changed --dry-run=client -o yaml | kc apply -f - >/dev/null 2>&1
cm_changed() { [ "$(seen)" = changedchanged ]; }
WAIT_SECS=20 wait_for cm_changed || true
check "a ConfigMap change reaches the running pod's files" cm_changed
kc apply -f - >/dev/null <<'YAML'
apiVersion: v1
kind: Pod
metadata: {name: cmw, namespace: demo}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - {name: c, image: none, command: ["sh", "-c", "cat /etc/amesh-late/v > seen; exec sleep infinity"], volumeMounts: [{name: late, mountPath: /etc/amesh-late}]}
  volumes: [{name: late, configMap: {name: late}}]
YAML
sleep 3
cmw_reason() { kc -n demo get pod cmw -o jsonpath='{.status.phase}/{.status.containerStatuses[0].state.waiting.reason}'; }
check "a missing ConfigMap holds the pod in ContainerCreating" test "$(cmw_reason)" = Pending/ContainerCreating
check "the held pod was not started" test ! -e "$C/pods/demo_cmw/root/seen"
kc -n demo create configmap late --from-literal=v=now >/dev/null
cmw_ready() { [ "$(cat "$C/pods/demo_cmw/root/seen" 2>/dev/null)" = now ]; }
WAIT_SECS=30 wait_for cmw_ready || true
check "the held pod starts once its ConfigMap exists" cmw_ready
kc -n demo delete pod cmv cmw --wait=true --timeout=60s >/dev/null
cm_gone() { [ ! -e "$C/pods/demo_cmv" ] && [ ! -e "$C/pods/demo_cmw" ] && [ ! -e /etc/amesh-cfg ] && [ ! -e /etc/amesh-proj ] &&
    [ ! -e /etc/amesh-opt ] && [ ! -e /etc/amesh-late ]; }
check "the configMap pods' files and mount points are gone with them" cm_gone

# ---- 4. delete a pod: replaced, nothing left behind ---------------------------------------------------
VICTIM=$(kc -n demo get pods -l app=echo -o jsonpath='{.items[0].metadata.name}')
VIP_OF=$(kc -n demo get pod "$VICTIM" -o jsonpath='{.status.podIP}')
VNS=$(cat "$C/pods/demo_$VICTIM/run.json" | $PY -c 'import json,sys; print(json.load(sys.stdin)["netns"])')
VNODE=$(kc -n demo get pod "$VICTIM" -o jsonpath='{.spec.nodeName}')
T_DEL=$(now_ms)
kc -n demo delete pod "$VICTIM" --wait=true --timeout=60s >/dev/null
say "delete -> gone: $(( $(now_ms) - T_DEL )) ms"
gone() {
    ! kc -n demo get pod "$VICTIM" >/dev/null 2>&1 && ! ip netns list | grep -qw "$VNS" &&
        [ ! -e "$C/pods/demo_$VICTIM" ] && ! ls "$C"/nodes/*/cni/ipam/$KL_NET/"$VIP_OF" >/dev/null 2>&1 &&
        ! ip -n "$P-${VNODE}" route | grep -q "^$VIP_OF "
}
check "deleted pod: no pod, netns, directory, host-local lease or route left" gone
WAIT_SECS=60 wait_for all_ready app=echo 2 || true
check "the ReplicaSet replaced it: 2 Ready again" all_ready app=echo 2
veths_match() { # node: one veth per pod of the node
    [ "$(ip -n "$P-$1" -o link show type veth | grep -vc ' eth0@')" = \
      "$(kc get pods -A --field-selector "spec.nodeName=$1" -o name | wc -l)" ]
}
check "no veth left on $VNODE: one per pod" veths_match "$VNODE"

# ---- 5. a killed container restarts ------------------------------------------------------------------
POD=$(kc -n demo get pods -l app=echo -o jsonpath='{.items[0].metadata.name}')
SUP=$(cut -d' ' -f1 "$C/pids/pod_demo_$POD.pid")
pkill -KILL -s "$SUP" -f 'echo-server' || true
restarted() { [ "$(kc -n demo get pod "$POD" -o jsonpath='{.status.containerStatuses[0].restartCount}')" = 1 ]; }
WAIT_SECS=30 wait_for restarted || true
check "a killed container is restarted: restartCount 1" restarted
WAIT_SECS=30 wait_for all_ready app=echo 2 || true
check "and Ready again" all_ready app=echo 2

# ---- 6. the API server restarts: no pod is lost --------------------------------------------------------
sups() { cat "$C"/pids/pod_*.pid 2>/dev/null | cut -d' ' -f1 | sort | tr '\n' ' '; }
same_sups() { [ -n "$BEFORE" ] && [ "$(sups)" = "$BEFORE" ]; }
BEFORE=$(sups)
kube_restart_apiserver "$K"
sleep 3
WAIT_SECS=30 wait_for all_ready app=echo 2 || true
check "after an API server restart: the same supervisors" same_sups
check "after an API server restart: still 2 Ready and Running" running app=echo 2
check "kubelets alive after the restart" kill -0 "${KL_PIDS[1]}" "${KL_PIDS[2]}"

# ---- 7. a kubelet restart adopts its pods --------------------------------------------------------------
RC_BEFORE=$(kc -n demo get pods -o jsonpath='{range .items[*]}{.metadata.name}={.status.containerStatuses[0].restartCount} {end}')
kill -TERM "${KL_PIDS[1]}"
wait "${KL_PIDS[1]}" || true
check "the stopped kubelet left its pods running" same_sups
start_node 1
sleep 4
check "the new kubelet adopted them: the same supervisors" same_sups
check "no restart counted" test -n "$RC_BEFORE" -a \
    "$(kc -n demo get pods -o jsonpath='{range .items[*]}{.metadata.name}={.status.containerStatuses[0].restartCount} {end}')" = "$RC_BEFORE"
check "vip still answers" vip_ok

# ---- 8. the lifecycle controller's grace: still Ready ----------------------------------------------------
left=$(( 45 - ( $(now_ms) - T_NODES ) / 1000 ))
[ "$left" -gt 0 ] && sleep "$left"
both_ready() { node_ready node-1 && node_ready node-2; }
no_node_taints() {
    [ "$(kc get nodes -o name | wc -l)" = 2 ] && [ -z "$(kc get nodes -o jsonpath='{.items[*].spec.taints}')" ]
}
check "node-1 and node-2 still Ready after the lifecycle controller's 40 s grace" both_ready
check "no node got a taint" no_node_taints

# ---- figures: the idle kubelet --------------------------------------------------------------------------
KP=${KL_PIDS[2]}
t0=$(awk '{print $14 + $15}' "/proc/$KP/stat"); sleep 10; t1=$(awk '{print $14 + $15}' "/proc/$KP/stat")
say "idle kubelet (node-2, $(ls "$C"/pods | wc -l) pods in the cluster): CPU $(( (t1 - t0) * 1000 / $(getconf CLK_TCK) / 10 )) ms/s, RSS $(awk '/VmRSS/ {print $2, $3}' "/proc/$KP/status")"

for k in $(seq "$NODES"); do
    kill -TERM "${KL_PIDS[$k]}"
    rc=0
    wait "${KL_PIDS[$k]}" || rc=$?
    check "kubelet of node-$k exits 0 on SIGTERM (no sanitizer report)" test "$rc" = 0
done
finish
