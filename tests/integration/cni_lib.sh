# cni_lib.sh - the node of tests 52 and 53: a container runtime's view of amesh-cni.
#
#   node netns $N1 (198.18.0.1 to meshd): meshd, mesh-cni --plugin-socket, ztunnel
#   bridge amcni0 198.18.60.1/24 made by Debian's bridge plugin, pods from host-local
#
# cni_run runs a conflist as libcni does (tests/support/cni_runtime.py), inside the
# node's namespace, as containerd does: first its loopback network (lo up), then the
# pod network: bridge + host-local (198.18.60.0/24), then amesh-cni.
CNI_BIN=/usr/lib/cni
CNI_PATH_ALL=$CNI_BIN:$BIN
CNI_RT="$PY $ROOT/tests/support/cni_runtime.py"
CFG=$WORK/config STATE=$WORK/state
PLUGIN_SOCK=$WORK/cni-plugin.sock

[ -x "$CNI_BIN/bridge" ] && [ -x "$CNI_BIN/host-local" ] ||
    { echo "FAIL: $CNI_BIN/bridge, host-local missing (tools/install-deps.sh)"; exit 1; }

# conflist FILE [agentSocket] [timeoutMs] [excludeNamespaces JSON list]
cni_conflist() {
    cat >"$1" <<JSON
{"cniVersion": "1.0.0", "name": "amtnet", "plugins": [
  {"type": "bridge", "bridge": "amcni0", "isGateway": true, "ipMasq": false,
   "ipam": {"type": "host-local", "ranges": [[{"subnet": "198.18.60.0/24"}]],
            "dataDir": "$WORK/ipam", "routes": [{"dst": "0.0.0.0/0"}]}},
  {"type": "amesh-cni", "agentSocket": "${2:-$PLUGIN_SOCK}", "timeoutMs": ${3:-10000},
   "logLevel": "info", "excludeNamespaces": ${4:-[\"kube-system\"]}}
]}
JSON
    cat >"$WORK/loopback.conflist" <<JSON
{"cniVersion": "1.0.0", "name": "cni-loopback", "plugins": [{"type": "loopback"}]}
JSON
}

# A pod sandbox: its network namespace (removed by the EXIT trap).
cni_pod() { # netns-name
    ip netns add "$1"
    POD_NETNS+=("$1")
}

# cni_run CMD POD-NETNS CONTAINER-ID NS NAME UID [conflist]: prints the result (or the
# error object); exit status of the run. Trace files in $WORK/trace-CONTAINER-ID.
cni_run() {
    local cmd=$1 pod=$2 id=$3 ns=$4 name=$5 uid=$6 conf=${7:-$WORK/net.conflist}
    local args="IgnoreUnknown=1;K8S_POD_NAMESPACE=$ns;K8S_POD_NAME=$name;K8S_POD_INFRA_CONTAINER_ID=$id;K8S_POD_UID=$uid"
    if [ "$cmd" = ADD ]; then
        ip netns exec "$N1" $CNI_RT ADD --conflist "$WORK/loopback.conflist" --netns "/run/netns/$pod" \
            --id "$id" --args "$args" --cache "$WORK/cache" --trace "$WORK/trace-lo-$id" \
            --cni-path "$CNI_PATH_ALL" >/dev/null || return 1
    fi
    ip netns exec "$N1" $CNI_RT "$cmd" --conflist "$conf" --netns "/run/netns/$pod" --id "$id" \
        --args "$args" --cache "$WORK/cache" --trace "$WORK/trace-$id" --cni-path "$CNI_PATH_ALL"
}

# The node: meshd, mesh-cni with the plugin socket ($@: more mesh-cni flags).
cni_node() {
    topo_two_nodes 4
    mkdir -p "$CFG"
    start_meshd "$CFG" "$STATE" "$WORK/meshd.log"
    CNI_FLAGS=("$@")
    cni_agent "$WORK/cni.log"
}

# (Re)starts mesh-cni with the flags cni_node was given; its log in $1.
cni_agent() { # log
    start_bg "$1" ip netns exec "$N1" "$BIN/mesh-cni" --zds-socket "$WORK/zds.sock" \
        --config-dir "$CFG" --node node-1 --plugin-socket "$PLUGIN_SOCK" --debounce-ms 20 \
        "${CNI_FLAGS[@]}"
    CNI_PID=$LAST_PID
    wait_for test -S "$PLUGIN_SOCK"
    wait_for test -S "$WORK/zds.sock"
}

cni_ztunnel() {
    start_ztunnel_xds "$N1" node-1 "$STATE" "$WORK/zt.log" --zds-socket "$WORK/zds.sock"
    ZT_PID=$LAST_PID
}

# The Kubernetes objects: a namespace (ambient or not) and a pod of it on node-1.
cni_ns_yaml() { # name mode
    printf 'apiVersion: v1\nkind: Namespace\nmetadata: {name: %s, labels: {istio.io/dataplane-mode: %s}}\n---\n' "$1" "$2"
}
cni_pod_yaml() { # ns name uid ip
    cat <<YAML
apiVersion: v1
kind: Pod
metadata: {name: $2, namespace: $1, uid: $3}
spec: {serviceAccountName: $2, nodeName: node-1, containers: [{name: c, image: x}]}
status: {phase: Running, conditions: [{type: Ready, status: "True"}], podIPs: [{ip: $4}]}
---
YAML
}

# In-pod state of a pod netns.
has_rules() { ip netns exec "$1" iptables-save | grep -q ISTIO_OUTPUT; }
no_rules() { ! ip netns exec "$1" iptables-save | grep -q ISTIO_; }
zt_listens() { ip netns exec "$1" ss -Hltn 'sport = :15001' | grep -q .; }
no_listener() { ! zt_listens "$1"; }
# The result's first address without its prefix.
result_ip() { $PY -c "import json,sys; print(json.load(sys.stdin)['ips'][0]['address'].split('/')[0])"; }
# Same JSON (parsed): files $1 and $2; $3: compare $1 with that key of $2.
same_json() { $PY -c "
import json,sys
a=json.load(open(sys.argv[1])); b=json.load(open(sys.argv[2]))
if len(sys.argv)>3: b=b[sys.argv[3]]
sys.exit(0 if a==b else 1)" "$@"; }
