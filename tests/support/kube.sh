# kube.sh - a real Kubernetes control plane (etcd + kube-apiserver v1.20.2, optionally
# kube-controller-manager and kube-scheduler) inside a test's network namespace.
#
# Source it AFTER tests/integration/lib.sh (it chains lib.sh's EXIT trap). The binaries come
# from the cache tools/kube/build.sh fills (`make kube`; `make test` runs it before ctest);
# kubectl is the machine's /usr/bin/kubectl. Everything a DIR holds is that server's own:
#
#   kube_up NETNS DIR               etcd (127.0.0.1:2379/2380, metrics 2381) and kube-apiserver (6443) in NETNS
#                                   (lo brought up), /readyz waited for, CRDs of manifests/crds
#                                   applied and Established. Leaves in DIR:
#       kubeconfig                  admin (token in group system:masters), CA verified, no skip
#       admin.token                 that token alone (curl -H "Authorization: Bearer $(cat ...)")
#       pki/ca.crt, pki/ca.key      the test CA; pki/apiserver.{crt,key} is the serving cert
#                                   (SANs 127.0.0.1, $KUBE_ADDR, localhost, kubernetes.default.svc...)
#       sa.key, sa.pub              service-account token signing key pair
#       tokens.csv                  the static token file (admin, controller-manager, scheduler)
#       netns, server, url          the namespace name, "https://ADDR:6443", same
#       etcd/, etcd.log, apiserver.log, apiserver.args (its command line, one per line), *.pid
#   kube_up_controllers NETNS DIR   kube-controller-manager (the controllers of $KUBE_CONTROLLERS)
#                                   and kube-scheduler, healthz waited for; adds
#                                   controller-manager.kubeconfig, scheduler.kubeconfig and logs
#   kube_add_node NETNS DIR NAME [IP]  a Node, status Ready (capacity for 110 pods), the
#                                   not-ready taint removed; IP becomes its InternalIP
#   kube_pod_running DIR NAMESPACE POD IP  plays the kubelet for one pod: status Running,
#                                   Ready, podIP(s) IP
#   kube_pod DIR NAMESPACE POD SA NODE IP  a pod of SA bound to NODE, then kube_pod_running
#   kube_client_cert DIR USER [GROUP]  a client certificate of the test CA: pki/USER.{crt,key}
#   kube_stop_apiserver DIR, kube_start_apiserver DIR, kube_restart_apiserver DIR
#                                   only kube-apiserver (same flags, files; etcd keeps its data);
#                                   the new server's watch cache starts at etcd's revision
#   kube_kubectl DIR ARGS...        /usr/bin/kubectl in DIR's namespace against DIR/kubeconfig
#   kube_curl DIR PATH [CURL ARGS...]  curl --http2 of https://server/PATH as admin, CA verified
#   kube_logs DIR                   the tail of each DIR/*.log
#   kube_wait SECS COMMAND...       runs COMMAND (a function too) until it succeeds, at most SECS
#   kube_down DIR                   stops every process of DIR (TERM, then KILL after 5 s) and
#                                   removes DIR. Every DIR still up at exit is brought down by the
#                                   EXIT trap, with its logs printed when the script failed.
#
# Settings (environment): AMESH_KUBE_CACHE (the build cache), KUBE_ADDR (default 127.0.0.1: the
# address the API server advertises and the kubeconfig names; any other address makes it bind
# 0.0.0.0 so other namespaces can reach it), KUBE_TIMEOUT (seconds per wait, default 60),
# KUBE_SERVICE_CIDR (default 198.19.0.0/16), KUBE_CONTROLLERS.

KUBE_VERSION=v1.20.2
KUBE_CACHE=${AMESH_KUBE_CACHE:-/var/cache/amesh/kube-$KUBE_VERSION}
KUBE_BIN=$KUBE_CACHE/bin
KUBECTL=${KUBECTL:-/usr/bin/kubectl}
KUBE_ADDR=${KUBE_ADDR:-127.0.0.1}
KUBE_TIMEOUT=${KUBE_TIMEOUT:-60}
KUBE_SERVICE_CIDR=${KUBE_SERVICE_CIDR:-198.19.0.0/16}
KUBE_SERVICE_IP=${KUBE_SERVICE_IP:-198.19.0.1}
KUBE_CONTROLLERS=${KUBE_CONTROLLERS:-deployment,replicaset,daemonset,endpoint,endpointslice,endpointslicemirroring,serviceaccount,serviceaccount-token,namespace,garbagecollector,root-ca-cert-publisher}
KUBE_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
KUBE_DIRS=()

kube__say() { printf '# kube: %s\n' "$*"; }
kube__die() { printf 'FAIL: kube: %s\n' "$*" >&2; return 1; }

# The cache, etcd, kubectl and openssl, or a message saying what to do.
kube_require() {
    local b
    [ -f "$KUBE_CACHE/stamp" ] || kube__die "no Kubernetes build in $KUBE_CACHE: run 'make kube' (or tools/kube/build.sh) first" || return 1
    for b in kube-apiserver kube-controller-manager kube-scheduler; do
        [ -x "$KUBE_BIN/$b" ] || kube__die "$KUBE_BIN/$b missing: run tools/kube/build.sh" || return 1
    done
    for b in etcd etcdctl openssl curl; do
        command -v "$b" >/dev/null || kube__die "'$b' not found: run 'tools/install-deps.sh kube'" || return 1
    done
    [ -x "$KUBECTL" ] || kube__die "$KUBECTL not found (the kube tier uses the machine's kubectl, 1.27+)" || return 1
}

# Runs "$@" until it succeeds, for at most $1 seconds.
kube_wait() { # secs command...
    local end=$(( $(date +%s) + $1 )); shift
    until "$@" >/dev/null 2>&1; do
        [ "$(date +%s)" -lt "$end" ] || return 1
        sleep 0.2
    done
}

# Its first name: tests written against it (meshd's kube tests) keep working.
kube__wait() { kube_wait "$@"; }

kube__start() { # dir name netns command... ; log in DIR/name.log, pid in DIR/name.pid
    local dir=$1 name=$2 ns=$3; shift 3
    ip netns exec "$ns" "$@" >>"$dir/$name.log" 2>&1 &
    echo $! >"$dir/$name.pid"
}

kube_logs() { # dir
    local f
    for f in "$1"/*.log; do
        [ -f "$f" ] || continue
        printf -- '---- %s (last 40 lines)\n' "$f"
        tail -n 40 "$f"
    done
}

kube__on_exit() {
    local rc=$? d
    set +e
    for d in "${KUBE_DIRS[@]:-}"; do
        [ -n "$d" ] && [ -d "$d" ] || continue
        [ "$rc" -eq 0 ] || kube_logs "$d"
        kube_down "$d" || true
    done
    if declare -F cleanup >/dev/null; then (exit "$rc"); cleanup; fi
    exit "$rc"
}
trap kube__on_exit EXIT

kube__kubeconfig() { # dir file user token
    local ca
    ca=$(base64 -w0 <"$1/pki/ca.crt")
    cat >"$2" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: amesh-test
  cluster:
    server: $(cat "$1/server")
    certificate-authority-data: $ca
users:
- name: $3
  user:
    token: $4
contexts:
- name: amesh-test
  context: {cluster: amesh-test, user: $3}
current-context: amesh-test
EOF
    chmod 600 "$2"
}

# The test CA and the API server's serving certificate (EC P-256).
kube__pki() { # dir
    local p=$1/pki
    mkdir -p "$p"
    openssl ecparam -name prime256v1 -genkey -noout -out "$p/ca.key" 2>/dev/null &&
    openssl req -x509 -new -key "$p/ca.key" -days 30 -subj "/CN=amesh-test-kube-ca" \
        -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
        -out "$p/ca.crt" 2>/dev/null &&
    openssl ecparam -name prime256v1 -genkey -noout -out "$p/apiserver.key" 2>/dev/null &&
    openssl req -new -key "$p/apiserver.key" -subj "/CN=kube-apiserver" -out "$p/apiserver.csr" 2>/dev/null &&
    printf '%s\n' "basicConstraints=CA:FALSE" "keyUsage=critical,digitalSignature" \
        "extendedKeyUsage=serverAuth" \
        "subjectAltName=IP:127.0.0.1,IP:$KUBE_ADDR,IP:$KUBE_SERVICE_IP,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local" \
        >"$p/apiserver.ext" &&
    openssl x509 -req -in "$p/apiserver.csr" -CA "$p/ca.crt" -CAkey "$p/ca.key" -CAcreateserial \
        -days 30 -extfile "$p/apiserver.ext" -out "$p/apiserver.crt" 2>/dev/null &&
    openssl genrsa -out "$1/sa.key" 2048 2>/dev/null &&
    openssl rsa -in "$1/sa.key" -pubout -out "$1/sa.pub" 2>/dev/null &&
    chmod 600 "$p/ca.key" "$p/apiserver.key" "$1/sa.key"
}

kube_client_cert() { # dir user [group]
    local p=$1/pki subj="/CN=$2"
    [ -n "${3:-}" ] && subj="/O=$3/CN=$2"
    openssl ecparam -name prime256v1 -genkey -noout -out "$p/$2.key" 2>/dev/null &&
    openssl req -new -key "$p/$2.key" -subj "$subj" -out "$p/$2.csr" 2>/dev/null &&
    printf '%s\n' "basicConstraints=CA:FALSE" "keyUsage=critical,digitalSignature" \
        "extendedKeyUsage=clientAuth" >"$p/client.ext" &&
    openssl x509 -req -in "$p/$2.csr" -CA "$p/ca.crt" -CAkey "$p/ca.key" -CAcreateserial \
        -days 30 -extfile "$p/client.ext" -out "$p/$2.crt" 2>/dev/null &&
    chmod 600 "$p/$2.key"
}

kube_kubectl() { # dir args...
    local dir=$1; shift
    ip netns exec "$(cat "$dir/netns")" "$KUBECTL" --kubeconfig "$dir/kubeconfig" \
        --cache-dir "$dir/.kubectl-cache" --request-timeout=30s "$@"
}

kube_curl() { # dir path [curl args...]
    local dir=$1 path=$2; shift 2
    ip netns exec "$(cat "$dir/netns")" curl -sS --http2 --max-time "${KUBE_CURL_TIME:-30}" \
        --cacert "$dir/pki/ca.crt" -H "Authorization: Bearer $(cat "$dir/admin.token")" \
        "$@" "$(cat "$dir/server")/${path#/}"
}

kube_up() { # netns dir
    local ns=$1 dir=$2 t0 bind=127.0.0.1 adm kcm sch
    kube_require || return 1
    [ -n "$ns" ] && [ -n "$dir" ] || kube__die "usage: kube_up NETNS DIR" || return 1
    ip netns pids "$ns" >/dev/null 2>&1 || kube__die "no network namespace '$ns' (the test creates it)" || return 1
    [ -e "$dir/apiserver.pid" ] && { kube__die "$dir already holds a server"; return 1; }
    mkdir -p "$dir" && dir=$(cd "$dir" && pwd)
    KUBE_DIRS+=("$dir")
    t0=$(date +%s.%N)
    ip -n "$ns" link set lo up
    echo "$ns" >"$dir/netns"
    echo "https://$KUBE_ADDR:6443" >"$dir/server"
    cp "$dir/server" "$dir/url"
    [ "$KUBE_ADDR" = 127.0.0.1 ] || bind=0.0.0.0
    kube__pki "$dir" || kube__die "making the test PKI in $dir/pki failed" || return 1
    adm=$(openssl rand -hex 16) kcm=$(openssl rand -hex 16) sch=$(openssl rand -hex 16)
    (umask 077
     echo "$adm" >"$dir/admin.token"
     printf '%s\n' "$adm,admin,uid-admin,\"system:masters\"" \
         "$kcm,system:kube-controller-manager,uid-kcm" "$sch,system:kube-scheduler,uid-sched" \
         >"$dir/tokens.csv"
     echo "$kcm" >"$dir/.kcm.token"; echo "$sch" >"$dir/.sched.token")
    kube__kubeconfig "$dir" "$dir/kubeconfig" admin "$adm"

    kube__start "$dir" etcd "$ns" etcd --name amesh-test --data-dir "$dir/etcd" --logger zap \
        --listen-client-urls http://127.0.0.1:2379 --advertise-client-urls http://127.0.0.1:2379 \
        --listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
        --initial-cluster amesh-test=http://127.0.0.1:2380 --listen-metrics-urls http://127.0.0.1:2381
    if ! kube_wait "$KUBE_TIMEOUT" ip netns exec "$ns" etcdctl --endpoints http://127.0.0.1:2379 \
            --command-timeout=2s endpoint health; then
        kube_logs "$dir"; kube__die "etcd in $ns not healthy within ${KUBE_TIMEOUT} s"; return 1
    fi

    local recon=()
    # A loopback advertise address cannot be an Endpoints address: reconciling the `kubernetes`
    # Service's endpoints would only log an error every 10 s.
    [ "$KUBE_ADDR" = 127.0.0.1 ] && recon=(--endpoint-reconciler-type=none)
    printf '%s\n' "$KUBE_BIN/kube-apiserver" \
        --etcd-servers=http://127.0.0.1:2379 --bind-address="$bind" --advertise-address="$KUBE_ADDR" \
        --secure-port=6443 --insecure-port=0 --tls-cert-file="$dir/pki/apiserver.crt" \
        --tls-private-key-file="$dir/pki/apiserver.key" --client-ca-file="$dir/pki/ca.crt" \
        --token-auth-file="$dir/tokens.csv" --authorization-mode=RBAC \
        --service-account-issuer=https://kubernetes.default.svc \
        --service-account-key-file="$dir/sa.pub" --service-account-signing-key-file="$dir/sa.key" \
        --api-audiences=https://kubernetes.default.svc,istio-ca \
        --service-cluster-ip-range="$KUBE_SERVICE_CIDR" --allow-privileged=true \
        --disable-admission-plugins=ServiceAccount --enable-priority-and-fairness=false \
        --profiling=false "${recon[@]}" >"$dir/apiserver.args"
    kube_start_apiserver "$dir" || return 1
    KUBE_READY_SECS=$(printf %.1f "$(echo "$(date +%s.%N) - $t0" | bc)")
    if ! kube_kubectl "$dir" apply -k "$KUBE_ROOT/manifests/crds" >"$dir/crds.out" 2>&1 ||
       ! kube_kubectl "$dir" wait --for condition=established --timeout="${KUBE_TIMEOUT}s" \
            crd -l app.kubernetes.io/part-of=amesh-test-crds >>"$dir/crds.out" 2>&1; then
        cat "$dir/crds.out"; kube__die "applying manifests/crds failed"; return 1
    fi
    kube__say "apiserver ready in ${KUBE_READY_SECS} s ($(cat "$dir/server") in netns $ns), CRDs established after $(printf %.1f "$(echo "$(date +%s.%N) - $t0" | bc)") s"
}

# Stops only kube-apiserver (etcd and the controllers keep running): watches end, clients see
# connection errors until kube_start_apiserver.
kube_stop_apiserver() { # dir
    [ -f "$1/apiserver.pid" ] || return 0
    kube__stop "$(cat "$1/apiserver.pid")"
    rm -f "$1/apiserver.pid"
}

# Starts kube-apiserver with the arguments kube_up gave it and waits for /readyz. Its watch cache
# starts empty at etcd's current revision, so a watch from an older RV gets ERROR 410 Expired.
kube_start_apiserver() { # dir
    local dir=$1 args
    mapfile -t args <"$dir/apiserver.args"
    kube__start "$dir" apiserver "$(cat "$dir/netns")" "${args[@]}"
    if ! kube_wait "$KUBE_TIMEOUT" kube__readyz "$dir"; then
        kube_logs "$dir"; kube__die "kube-apiserver not ready (/readyz) within ${KUBE_TIMEOUT} s"; return 1
    fi
}

kube_restart_apiserver() { # dir
    kube_stop_apiserver "$1" && kube_start_apiserver "$1"
}

kube__readyz() { # dir
    [ "$(kube_curl "$1" /readyz -o /dev/null -w '%{http_code}' 2>/dev/null)" = 200 ]
}

kube__healthz() { # netns port
    ip netns exec "$1" curl -sf --max-time 2 "http://127.0.0.1:$2/healthz" >/dev/null
}

kube_up_controllers() { # netns dir
    local ns=$1 dir=$2
    [ -f "$dir/kubeconfig" ] || kube__die "kube_up_controllers: $dir has no server (kube_up first)" || return 1
    dir=$(cd "$dir" && pwd)
    kube__kubeconfig "$dir" "$dir/controller-manager.kubeconfig" system:kube-controller-manager "$(cat "$dir/.kcm.token")"
    kube__kubeconfig "$dir" "$dir/scheduler.kubeconfig" system:kube-scheduler "$(cat "$dir/.sched.token")"
    # Health on the (deprecated, 1.20 still has it) plain-HTTP port on the namespace's
    # loopback; no secure port, so no authentication delegation to set up.
    kube__start "$dir" controller-manager "$ns" "$KUBE_BIN/kube-controller-manager" \
        --kubeconfig="$dir/controller-manager.kubeconfig" --leader-elect=false \
        --controllers="$KUBE_CONTROLLERS" --use-service-account-credentials=true \
        --service-account-private-key-file="$dir/sa.key" --root-ca-file="$dir/pki/ca.crt" \
        --secure-port=0 --port=10252 --address=127.0.0.1 --profiling=false
    kube__start "$dir" scheduler "$ns" "$KUBE_BIN/kube-scheduler" \
        --kubeconfig="$dir/scheduler.kubeconfig" --leader-elect=false \
        --secure-port=0 --port=10251 --address=127.0.0.1 --profiling=false
    if ! kube_wait "$KUBE_TIMEOUT" kube__healthz "$ns" 10252 ||
       ! kube_wait "$KUBE_TIMEOUT" kube__healthz "$ns" 10251; then
        kube_logs "$dir"; kube__die "controller-manager or scheduler not healthy within ${KUBE_TIMEOUT} s"; return 1
    fi
    kube__say "controller-manager and scheduler up"
}

kube_add_node() { # netns dir name [ip]
    local ns=$1 dir=$2 name=$3 ip=${4:-} now addrs
    now=$(date -u +%FT%TZ)
    addrs="{\"type\":\"Hostname\",\"address\":\"$name\"}"
    [ -n "$ip" ] && addrs="{\"type\":\"InternalIP\",\"address\":\"$ip\"},$addrs"
    echo "{\"apiVersion\":\"v1\",\"kind\":\"Node\",\"metadata\":{\"name\":\"$name\",\"labels\":{
      \"kubernetes.io/hostname\":\"$name\",\"kubernetes.io/os\":\"linux\",\"kubernetes.io/arch\":\"amd64\"}}}" |
        kube_kubectl "$dir" create -f - >/dev/null || kube__die "creating Node $name failed" || return 1
    kube_kubectl "$dir" patch node "$name" --subresource=status --type=merge -p "{\"status\":{
      \"capacity\":{\"cpu\":\"4\",\"memory\":\"8Gi\",\"pods\":\"110\"},
      \"allocatable\":{\"cpu\":\"4\",\"memory\":\"8Gi\",\"pods\":\"110\"},
      \"addresses\":[$addrs],
      \"conditions\":[{\"type\":\"Ready\",\"status\":\"True\",\"reason\":\"KubeletReady\",
        \"message\":\"amesh test node\",\"lastHeartbeatTime\":\"$now\",\"lastTransitionTime\":\"$now\"}]}}" \
        >/dev/null || kube__die "setting Node $name Ready failed" || return 1
    # The TaintNodesByCondition admission plugin gives every new Node the not-ready taint; no
    # node lifecycle controller runs here to take it off.
    kube_kubectl "$dir" taint node "$name" node.kubernetes.io/not-ready:NoSchedule- >/dev/null 2>&1 || true
    if kube_kubectl "$dir" get node "$name" -o jsonpath='{.spec.taints}' | grep -q not-ready; then
        kube__die "Node $name still has the not-ready taint"; return 1
    fi
}

kube_pod_running() { # dir namespace pod ip
    local now
    now=$(date -u +%FT%TZ)
    kube_kubectl "$1" -n "$2" patch pod "$3" --subresource=status --type=merge -p "{\"status\":{
      \"phase\":\"Running\",\"podIP\":\"$4\",\"podIPs\":[{\"ip\":\"$4\"}],\"startTime\":\"$now\",
      \"conditions\":[{\"type\":\"Ready\",\"status\":\"True\",\"lastTransitionTime\":\"$now\"},
        {\"type\":\"ContainersReady\",\"status\":\"True\",\"lastTransitionTime\":\"$now\"},
        {\"type\":\"PodScheduled\",\"status\":\"True\",\"lastTransitionTime\":\"$now\"}]}}" >/dev/null
}

# A pod of |sa| bound to |node| (spec.nodeName, as the scheduler would), then running with |ip|.
kube_pod() { # dir namespace pod serviceaccount node ip
    kube_kubectl "$1" apply -f - >/dev/null <<YAML || return 1
apiVersion: v1
kind: Pod
metadata: {name: $3, namespace: $2, labels: {app: $3}}
spec:
  serviceAccountName: $4
  nodeName: $5
  containers: [{name: main, image: none}]
YAML
    kube_pod_running "$1" "$2" "$3" "$6"
}

# The token tests' cluster (48, 56): namespaces istio-system and demo (ambient), accounts
# istio-system/ztunnel and demo/<each SA given>, Nodes node-1 (198.18.0.1) and node-2
# (198.18.0.2), and running pods istio-system/ztunnel-n1 on node-1, demo/echo-1 (account echo)
# on node-1, demo/curl-2 (account curl) on node-2.
kube_token_cluster() { # netns dir demo-account...
    local ns=$1 dir=$2 sa
    shift 2
    kube_kubectl "$dir" create namespace istio-system >/dev/null &&
        kube_kubectl "$dir" create namespace demo >/dev/null &&
        kube_kubectl "$dir" label namespace demo istio.io/dataplane-mode=ambient >/dev/null &&
        kube_kubectl "$dir" -n istio-system create serviceaccount ztunnel >/dev/null || return 1
    for sa in "$@"; do kube_kubectl "$dir" -n demo create serviceaccount "$sa" >/dev/null || return 1; done
    kube_add_node "$ns" "$dir" node-1 198.18.0.1 && kube_add_node "$ns" "$dir" node-2 198.18.0.2 &&
        kube_pod "$dir" istio-system ztunnel-n1 ztunnel node-1 198.18.0.1 &&
        kube_pod "$dir" demo echo-1 echo node-1 198.18.250.31 &&
        kube_pod "$dir" demo curl-2 curl node-2 198.18.250.32
}

# TERM, then up to 5 s for them to go, then KILL.
kube__stop() { # pid...
    local p i alive
    [ $# -gt 0 ] || return 0
    for p in "$@"; do kill -TERM "$p" 2>/dev/null || true; done
    for i in $(seq 50); do
        alive=0
        for p in "$@"; do kill -0 "$p" 2>/dev/null && alive=1; done
        [ "$alive" = 0 ] && break
        sleep 0.1
    done
    for p in "$@"; do kill -KILL "$p" 2>/dev/null || true; done
    for p in "$@"; do wait "$p" 2>/dev/null || true; done
}

kube_down() { # dir
    local dir=$1 f n first=() keep=()
    [ -d "$dir" ] || return 0
    dir=$(cd "$dir" && pwd)
    # etcd last, so the API server's own shutdown still reaches its store
    for n in controller-manager scheduler apiserver; do
        [ -f "$dir/$n.pid" ] && first+=("$(cat "$dir/$n.pid")")
    done
    kube__stop "${first[@]}"
    [ -f "$dir/etcd.pid" ] && kube__stop "$(cat "$dir/etcd.pid")"
    rm -rf "$dir"
    for f in "${KUBE_DIRS[@]:-}"; do [ -n "$f" ] && [ "$f" != "$dir" ] && keep+=("$f"); done
    KUBE_DIRS=("${keep[@]:-}")
    return 0
}
