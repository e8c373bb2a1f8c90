# lib.sh - helpers for the network-namespace integration tests.
#
# A test sources this file, calls topo_two_nodes, starts what it needs and
# asserts. Everything it creates (namespaces, processes, files) is removed by
# the EXIT trap. Addresses come from 198.18.0.0/15 and 2001:db8::/32 only, so
# nothing can leave the machine. Without root the tests FAIL: CI runs as root.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BIN=${MESH_BIN:-$ROOT/build-asan/bin}
PY=/usr/bin/python3
TCPTOOL="$PY $ROOT/tests/support/tcptool.py"
ID=${ID:-$$}
N1=amt-n1-$ID
N2=amt-n2-$ID
WORK=$(mktemp -d "${TMPDIR:-/tmp}/amesh-it.XXXXXX") # run.sh gives each test its own TMPDIR
PIDS=()
FAILS=0
PASSES=0
# The worker threads each ztunnel runs (its default: ZTUNNEL_WORKERS, else the CPUs it may use,
# at most 2). Each worker has its own HBONE pool, so tunnels share a connection per worker.
ZT_WORKERS=${ZTUNNEL_WORKERS:-$(if [ "$(nproc)" -ge 2 ]; then echo 2; else echo 1; fi)}
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
# The `tsan` tier (make tsan) sets its own; by hand: a race stops the process with status 66.
export TSAN_OPTIONS=${TSAN_OPTIONS:-halt_on_error=1:exitcode=66:suppressions=$ROOT/tests/tsan.supp}

say() { printf '# %s\n' "$*"; }
run() { printf '+ %s\n' "$*"; "$@"; }

pass() { PASSES=$((PASSES + 1)); printf 'ok - %s\n' "$*"; }
fail() { FAILS=$((FAILS + 1)); printf 'not ok - %s\n' "$*"; }
check() { # check "description" command...
    local what=$1; shift
    if "$@"; then pass "$what"; else fail "$what"; fi
}

# The pids given and all their descendants. start_bg of a shell function (or of a
# pipeline) makes $! a subshell whose children are the real workload: killing only the
# subshell leaves them running.
pid_tree() { # pid...
    local p
    for p in "$@"; do
        [ -n "$p" ] || continue
        echo "$p"
        pid_tree $(pgrep -P "$p" || true)
    done
}
# SIGTERM the processes of $PIDS and their descendants, SIGKILL what is left after 0.2 s.
kill_pids() {
    local all
    all=$(pid_tree "${PIDS[@]:-}")
    [ -n "$all" ] || return 0
    kill $all 2>/dev/null || true
    sleep 0.2
    kill -9 $all 2>/dev/null || true
}

cleanup() {
    local rc=$?
    kill_pids
    ip netns del "$N1" 2>/dev/null || true
    ip netns del "$N2" 2>/dev/null || true
    for p in "${POD_NETNS[@]:-}"; do [ -n "$p" ] && ip netns del "$p" 2>/dev/null || true; done
    if [ "${KEEP_WORK:-0}" = 1 ]; then echo "work dir kept: $WORK"; else rm -rf "$WORK"; fi
    exit $rc
}
trap cleanup EXIT

require_root() {
    if [ "$(id -u)" -ne 0 ] || ! ip netns add "amt-probe-$ID" 2>/dev/null; then
        echo "FAIL: integration tests need root and network namespaces" >&2
        exit 1
    fi
    ip netns del "amt-probe-$ID"
}

# Waits up to $2 seconds (default 10) for command $1... to succeed.
wait_for() {
    local deadline=$(( $(date +%s) + ${WAIT_SECS:-10} ))
    until "$@" >/dev/null 2>&1; do
        [ "$(date +%s)" -lt "$deadline" ] || return 1
        sleep 0.1
    done
}

# Root CA for local mode (EC P-256), the files ztunnel --ca-dir expects.
make_ca() { # dir [cn]
    mkdir -p "$1"
    openssl ecparam -name prime256v1 -genkey -noout -out "$1/root-key.pem" 2>/dev/null
    openssl req -x509 -new -key "$1/root-key.pem" -days 3650 -subj "/O=amesh-test/CN=${2:-root}" \
        -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
        -out "$1/root-cert.pem" 2>/dev/null
    chmod 600 "$1/root-key.pem"
}

# Two node namespaces joined by a veth pair; pod addresses live on the
# loopback interface of their node and are routed across the link.
#   n1: veth 198.18.0.1 / 2001:db8::1     pods CLIENT_IP
#   n2: veth 198.18.0.2 / 2001:db8::2     pods SERVER_IP
topo_two_nodes() { # family(4|6)
    FAMILY=${1:-4}
    ip netns add "$N1"
    ip netns add "$N2"
    ip link add v1 netns "$N1" type veth peer name v2 netns "$N2"
    for ns in "$N1" "$N2"; do
        ip -n "$ns" link set lo up
        ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=0 2>/dev/null || true
    done
    ip -n "$N1" link set v1 up
    ip -n "$N2" link set v2 up
    if [ "$FAMILY" = 6 ]; then
        CLIENT_IP=2001:db8:250::20 SERVER_IP=2001:db8:250::10 SERVER2_IP=2001:db8:250::11
        VIP=2001:db8:19::10
        ip -n "$N1" addr add 2001:db8::1/64 dev v1 nodad
        ip -n "$N2" addr add 2001:db8::2/64 dev v2 nodad
        ip -n "$N1" addr add $CLIENT_IP/128 dev lo nodad
        ip -n "$N2" addr add $SERVER_IP/128 dev lo nodad
        ip -n "$N2" addr add $SERVER2_IP/128 dev lo nodad
        ip -n "$N1" -6 route add default via 2001:db8::2
        ip -n "$N2" -6 route add default via 2001:db8::1
        LINK_PEER=2001:db8::2 LINK_SELF=2001:db8::1
    else
        CLIENT_IP=198.18.250.20 SERVER_IP=198.18.250.10 SERVER2_IP=198.18.250.11
        VIP=198.19.0.10
        ip -n "$N1" addr add 198.18.0.1/24 dev v1
        ip -n "$N2" addr add 198.18.0.2/24 dev v2
        ip -n "$N1" addr add $CLIENT_IP/32 dev lo
        ip -n "$N2" addr add $SERVER_IP/32 dev lo
        ip -n "$N2" addr add $SERVER2_IP/32 dev lo
        ip -n "$N1" route add default via 198.18.0.2
        ip -n "$N2" route add default via 198.18.0.1
        LINK_PEER=198.18.0.2 LINK_SELF=198.18.0.1
    fi
}

# The mesh config both ztunnels read: a client pod on node-1, an HBONE server
# pod and a plain (non-mesh) pod on node-2, and service "echo" on VIP:80.
write_config() { # file
    cat >"$1" <<YAML
workloads:
- uid: Kubernetes//Pod/default/client
  name: client
  namespace: default
  serviceAccount: client
  addresses: ["$CLIENT_IP"]
  node: node-1
  tunnelProtocol: HBONE
- uid: Kubernetes//Pod/default/server
  name: server
  namespace: default
  serviceAccount: server
  addresses: ["$SERVER_IP"]
  node: node-2
  tunnelProtocol: HBONE
  canonicalName: echo
  canonicalRevision: v1
  services:
    default/echo.default.svc.cluster.local:
      ports:
      - servicePort: 80
        targetPort: 8080
- uid: Kubernetes//Pod/default/legacy
  name: legacy
  namespace: default
  addresses: ["$SERVER2_IP"]
  node: node-2
  tunnelProtocol: NONE
services:
- name: echo
  namespace: default
  hostname: echo.default.svc.cluster.local
  addresses: ["$VIP"]
  ports:
  - servicePort: 80
    targetPort: 8080
policies: []
YAML
}

# A second client pod on node-1 in the config |file| (write_config's): workload client2 at |ip|,
# namespace default, service account |sa|. The address must be on node-1 (add_client2 does not).
add_client2() { # file ip sa
    local tmp=$1.tmp
    {
        echo "workloads:"
        cat <<YAML
- uid: Kubernetes//Pod/default/client2
  name: client2
  namespace: default
  serviceAccount: $3
  addresses: ["$2"]
  node: node-1
  tunnelProtocol: HBONE
YAML
        sed 1d "$1"
    } >"$tmp"
    mv "$tmp" "$1"
}

start_bg() { # logfile command...
    local log=$1; shift
    "$@" >"$log" 2>&1 &
    PIDS+=($!)
    LAST_PID=$!
}

# ZTUNNEL_WORKERS set (test 65 runs other tests so): a ztunnel started without --workers must
# run that many worker threads, or the run would not test what it says.
check_worker_count() { # netns [ztunnel flags...]
    local ns=$1 n
    shift
    [ -n "${ZTUNNEL_WORKERS:-}" ] || return 0
    case " $* " in *" --workers "*) return 0 ;; esac
    n=$(ip netns exec "$ns" $PY -c "
import json,urllib.request
print(len(json.load(urllib.request.urlopen('http://127.0.0.1:15000/debug/workers',timeout=2))))") || n=?
    [ "$n" = "$ZTUNNEL_WORKERS" ] || { echo "ztunnel in $ns runs $n workers, not ZTUNNEL_WORKERS=$ZTUNNEL_WORKERS"; return 1; }
}

start_ztunnel() { # netns node config cadir log [extra flags]
    local ns=$1 node=$2 cfg=$3 ca=$4 log=$5; shift 5
    start_bg "$log" ip netns exec "$ns" "$BIN/ztunnel" --local-config "$cfg" --node "$node" \
        --ca-dir "$ca" "$@"
    wait_for ip netns exec "$ns" $PY -c "
import urllib.request,sys
sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:15021/healthz/ready',timeout=1).status==200 else 1)" \
        || { echo "ztunnel in $ns did not become ready:"; cat "$log"; return 1; }
    check_worker_count "$ns" "$@"
}

# REDIRECT the node's outbound TCP to ztunnel, exempting ztunnel's own sockets (mark 0x539).
capture_outbound() { # netns
    local ipt=iptables
    [ "$FAMILY" = 6 ] && ipt=ip6tables
    local lo=127.0.0.0/8
    [ "$FAMILY" = 6 ] && lo=::1/128
    # --syn: only new connections; one conntrack first meets mid-stream (it predates the
    # rule, e.g. ztunnel's own control-plane connection) is left alone.
    ip netns exec "$1" $ipt -t nat -A OUTPUT -p tcp --syn ! -d $lo -m mark ! --mark 0x539/0xfff \
        -j REDIRECT --to-ports 15001
}

# REDIRECT inbound TCP (except HBONE 15008) to ztunnel's plaintext port 15006.
capture_inbound() { # netns
    local ipt=iptables
    [ "$FAMILY" = 6 ] && ipt=ip6tables
    ip netns exec "$1" $ipt -t nat -A PREROUTING -p tcp --syn ! --dport 15008 -m mark ! --mark 0x539/0xfff \
        -j REDIRECT --to-ports 15006
}

start_server() { # netns ip port log [flags]
    local ns=$1 ip=$2 port=$3 log=$4; shift 4
    start_bg "$log" ip netns exec "$ns" $TCPTOOL serve --bind "$ip" --port "$port" "$@"
    wait_for ip netns exec "$ns" ss -ltn "sport = :$port" | grep -q LISTEN || true
    wait_for sh -c "ip netns exec $ns ss -Hltn 'sport = :$port' | grep -q ."
}

hostport() { # ip port
    case $1 in *:*) echo "[$1]:$2" ;; *) echo "$1:$2" ;; esac
}

finish() {
    echo "$PASSES passed, $FAILS failed"
    [ "$FAILS" -eq 0 ]
}

# SIGTERM a ztunnel and require a clean exit: status 0 and no sanitizer report.
stop_ztunnel() { # pid log
    kill -TERM "$1" 2>/dev/null || return 1
    local rc=0
    wait "$1" || rc=$?
    if [ "$rc" -ne 0 ] || grep -q -E 'AddressSanitizer|LeakSanitizer|ThreadSanitizer|runtime error' "$2"; then
        echo "ztunnel exited with $rc:"; tail -40 "$2"; return 1
    fi
}

# ---- control plane (meshd) ------------------------------------------------

# The same mesh as write_config, as the Kubernetes YAML meshd reads: namespace
# default enrolled (ambient), client pod on node-1, server pod (app=echo) and a
# pod of the non-enrolled namespace legacy on node-2, Service echo on VIP:80.
write_k8s_config() { # dir
    mkdir -p "$1"
    cat >"$1/namespaces.yaml" <<YAML
apiVersion: v1
kind: Namespace
metadata:
  name: default
  labels:
    istio.io/dataplane-mode: ambient
---
apiVersion: v1
kind: Namespace
metadata:
  name: legacy
YAML
    cat >"$1/pods.yaml" <<YAML
apiVersion: v1
kind: Pod
metadata: {name: client, namespace: default, uid: 0c11e7e0-0001, labels: {app: client}}
spec:
  serviceAccountName: client
  nodeName: node-1
  containers: [{name: main, image: none}]
status:
  phase: Running
  conditions: [{type: Ready, status: "True"}]
  podIPs: [{ip: "$CLIENT_IP"}]
---
apiVersion: v1
kind: Pod
metadata: {name: server, namespace: default, uid: 0c11e7e0-0002, labels: {app: echo, version: v1}}
spec:
  serviceAccountName: server
  nodeName: node-2
  containers: [{name: main, image: none, ports: [{name: http, containerPort: 8080}]}]
status:
  phase: Running
  conditions: [{type: Ready, status: "True"}]
  podIPs: [{ip: "$SERVER_IP"}]
---
apiVersion: v1
kind: Pod
metadata: {name: legacy, namespace: legacy, uid: 0c11e7e0-0003}
spec:
  nodeName: node-2
  containers: [{name: main, image: none}]
status:
  phase: Running
  conditions: [{type: Ready, status: "True"}]
  podIPs: [{ip: "$SERVER2_IP"}]
YAML
    cat >"$1/services.yaml" <<YAML
apiVersion: v1
kind: Service
metadata: {name: echo, namespace: default}
spec:
  selector: {app: echo}
  clusterIP: "$VIP"
  clusterIPs: ["$VIP"]
  ports: [{name: http, port: 80, targetPort: 8080}]
YAML
}

# meshd in node-1's namespace on its link address; state and tokens under $WORK.
MESHD_ADDR=
start_meshd() { # configdir statedir log [extra flags]
    local cfg=$1 state=$2 log=$3; shift 3
    MESHD_ADDR=$(hostport "$LINK_SELF" 15012)
    start_bg "$log" ip netns exec "$N1" "$BIN/meshd" --config-dir "$cfg" --state-dir "$state" \
        --listen "$MESHD_ADDR" --monitoring 127.0.0.1:15014 "$@"
    MESHD_PID=$LAST_PID
    wait_for ip netns exec "$N1" $PY -c "
import urllib.request,sys
sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:15014/ready',timeout=1).status==200 else 1)" \
        || { echo "meshd did not become ready:"; cat "$log"; return 1; }
}

# SIGTERM meshd and require a clean exit.
stop_meshd() { # pid log
    stop_ztunnel "$@"
}

# A ztunnel fed by meshd: node tokens (xds and ca, lifetime $TOKEN_TTL or meshd's
# default) minted into $WORK/token-<node>.
start_ztunnel_xds() { # netns node statedir log [extra flags]
    local ns=$1 node=$2 state=$3 log=$4; shift 4
    (umask 077; "$BIN/meshd" token --state-dir "$state" --node "$node" ${TOKEN_TTL:+--ttl "$TOKEN_TTL"} \
        >"$WORK/token-$node")
    start_bg "$log" ip netns exec "$ns" "$BIN/ztunnel" --xds-address "$MESHD_ADDR" \
        --root-cert "$state/root-cert.pem" --token "$WORK/token-$node" --node "$node" "$@"
    wait_for ip netns exec "$ns" $PY -c "
import urllib.request,sys
sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:15021/healthz/ready',timeout=1).status==200 else 1)" \
        || { echo "ztunnel in $ns did not become ready:"; cat "$log"; return 1; }
    check_worker_count "$ns" "$@"
}

# Prints a ztunnel's config_dump (JSON).
config_dump() { # netns
    ip netns exec "$1" $PY -c "
import urllib.request,sys
sys.stdout.write(urllib.request.urlopen('http://127.0.0.1:15000/config_dump',timeout=2).read().decode())"
}

# wait_for with its own deadline: wait_secs SECS command...
wait_secs() {
    local WAIT_SECS=$1
    shift
    wait_for "$@"
}

# ---- pods as network namespaces (in-pod mode) ------------------------------

# A pod namespace hanging off a node namespace by a veth pair: the pod has
# IP/24 on eth0 and a default route via GW (the node's end of the pair), as a
# CNI would set it up. The node forwards. Removed by the EXIT trap.
POD_NETNS=()
add_pod() { # node-netns pod-netns pod-ip gw-ip
    local node=$1 pod=$2 ip=$3 gw=$4 host=v${RANDOM}
    ip netns add "$pod"
    POD_NETNS+=("$pod")
    ip link add "$host" netns "$node" type veth peer name eth0 netns "$pod"
    ip -n "$pod" link set lo up
    ip -n "$pod" link set eth0 up
    ip -n "$pod" addr add "$ip/24" dev eth0
    ip -n "$pod" route add default via "$gw"
    ip -n "$node" link set "$host" up
    ip -n "$node" addr add "$gw/24" dev "$host" 2>/dev/null || true
    ip netns exec "$node" sysctl -qw net.ipv4.ip_forward=1
}

# Two nodes in in-pod mode, as 11-inpod-mesh.sh describes: meshd in node-1,
# mesh-cni and ztunnel (--zds-socket) on both, pod client (PC, CIP) on node-1,
# pod server (PS, SIP; echo servers on 8080 with a banner and 8081 plain) on
# node-2, service echo on VIP:80 -> 8081. $1: the namespace's dataplane mode.
inpod_two_nodes() { # mode
topo_two_nodes 4
PC=amt-pc-$ID PS=amt-ps-$ID
add_pod "$N1" "$PC" 198.18.1.10 198.18.1.1
add_pod "$N2" "$PS" 198.18.2.10 198.18.2.1
CIP=198.18.1.10 SIP=198.18.2.10 VIP=198.19.0.10
CFG=$WORK/config STATE=$WORK/state
mkdir -p "$CFG"
cat >"$CFG/demo.yaml" <<YAML
apiVersion: v1
kind: Namespace
metadata: {name: demo, labels: {istio.io/dataplane-mode: $1}}
---
apiVersion: v1
kind: Pod
metadata:
  name: client
  namespace: demo
  uid: 00000000-0000-0000-0000-00000000c11e
  annotations: {amesh.io/netns: /run/netns/$PC}
spec: {serviceAccountName: client, nodeName: node-1, containers: [{name: c, image: x}]}
status: {phase: Running, conditions: [{type: Ready, status: "True"}], podIPs: [{ip: $CIP}]}
---
apiVersion: v1
kind: Pod
metadata:
  name: server
  namespace: demo
  uid: 00000000-0000-0000-0000-0000000005e7
  labels: {app: echo}
  annotations: {amesh.io/netns: /run/netns/$PS}
spec:
  serviceAccountName: server
  nodeName: node-2
  containers: [{name: c, image: x, ports: [{name: http, containerPort: 8080}]}]
status: {phase: Running, conditions: [{type: Ready, status: "True"}], podIPs: [{ip: $SIP}]}
---
apiVersion: v1
kind: Service
metadata: {name: echo, namespace: demo}
spec: {selector: {app: echo}, clusterIP: $VIP, ports: [{port: 80, targetPort: 8081}]}
YAML

start_meshd "$CFG" "$STATE" "$WORK/meshd.log"
start_bg "$WORK/cni1.log" ip netns exec "$N1" "$BIN/mesh-cni" --zds-socket "$WORK/zds1.sock" \
    --config-dir "$CFG" --node node-1
CNI1=$LAST_PID
start_bg "$WORK/cni2.log" ip netns exec "$N2" "$BIN/mesh-cni" --zds-socket "$WORK/zds2.sock" \
    --config-dir "$CFG" --node node-2
CNI2=$LAST_PID
wait_for test -S "$WORK/zds1.sock"
wait_for test -S "$WORK/zds2.sock"
start_ztunnel_xds "$N1" node-1 "$STATE" "$WORK/zt1.log" --zds-socket "$WORK/zds1.sock"
ZT1=$LAST_PID
start_ztunnel_xds "$N2" node-2 "$STATE" "$WORK/zt2.log" --zds-socket "$WORK/zds2.sock"
ZT2=$LAST_PID
start_bg "$WORK/server.log" ip netns exec "$PS" $TCPTOOL serve --bind "$SIP" --port 8080 --banner server
start_bg "$WORK/server2.log" ip netns exec "$PS" $TCPTOOL serve --bind "$SIP" --port 8081
wait_for sh -c "ip netns exec $PS ss -Hltn 'sport = :8080' | grep -q ."
wait_for sh -c "ip netns exec $PS ss -Hltn 'sport = :8081' | grep -q ."

}

# Stops what inpod_two_nodes started, checking that each exits 0 with sanitizers clean.
stop_inpod_two_nodes() {
    check "node-1 ztunnel exits 0 on SIGTERM, sanitizers clean" stop_ztunnel "$ZT1" "$WORK/zt1.log"
    check "node-2 ztunnel exits 0 on SIGTERM, sanitizers clean" stop_ztunnel "$ZT2" "$WORK/zt2.log"
    check "mesh-cni (node-1) exits 0 on SIGTERM, sanitizers clean" stop_ztunnel "$CNI1" "$WORK/cni1.log"
    check "mesh-cni (node-2) exits 0 on SIGTERM, sanitizers clean" stop_ztunnel "$CNI2" "$WORK/cni2.log"
    check "meshd exits 0 on SIGTERM, sanitizers clean" stop_meshd "$MESHD_PID" "$WORK/meshd.log"
}
