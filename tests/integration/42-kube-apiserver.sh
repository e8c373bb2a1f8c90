#!/usr/bin/env bash
# The `kube` tier's own test: the real kube-apiserver v1.20.2 (tools/kube/build.sh's cache) in a
# network namespace through tests/support/kube.sh.
#
#   - tools/kube/build.sh answers from its cache at once; tools/kube/debsrc.sh derives deb-src
#     entries from one-line and deb822 apt sources;
#   - etcd + kube-apiserver up in node-1 on 198.18.0.1, /readyz 200 over HTTP/2 with the
#     server's certificate VERIFIED against the test CA (the kubeconfig has no
#     insecure-skip-tls-verify), also from node-2; kubectl sees Kubernetes v1.20.2;
#   - manifests/crds established; the repo's samples/*.yaml apply (Deployments, Services, the
#     Istio AuthorizationPolicies and the Gateway API HTTPRoute through the CRDs), plus a
#     GatewayClass/Gateway/GRPCRoute/PeerAuthentication/ServiceEntry/WorkloadEntry, and all
#     list back, also at the v1beta1 versions the CRDs serve;
#   - a watch with allowWatchBookmarks streams ADDED and then a BOOKMARK before its timeout;
#   - kube-controller-manager + kube-scheduler turn the samples' Deployments into ReplicaSets
#     and Pods bound to the Node kube_add_node registered; a pod that kube_pod_running marks
#     Ready shows up in the Service's EndpointSlice (v1beta1 on 1.20);
#   - kube_down leaves no process in the namespace and removes its directory.
. "$(dirname "$0")/lib.sh"
. "$ROOT/tests/support/kube.sh"
require_root
kube_require || exit 1

# is EXPECTED COMMAND...: the command's output is EXPECTED (else says what it was)
is() {
    local want=$1 out
    shift
    out=$("$@" 2>&1) || true
    [ "$out" = "$want" ] || { echo "got '$out', expected '$want'"; return 1; }
}
kc() { kube_kubectl "$K" "$@"; }

# ---- the build's pieces that run without building ------------------------------------------
quick_build() {
    local t0=$(date +%s%N)
    "$ROOT/tools/kube/build.sh" | grep -q '^kube-build: cached:' &&
    [ $(( ($(date +%s%N) - t0) / 1000000 )) -lt 2000 ]
}
check "tools/kube/build.sh returns at once from the cache (< 2 s)" quick_build
mkdir -p "$WORK/apt/sources.list.d"
printf '%s\n' '# deb http://commented.invalid/ x main' \
    'deb [signed-by=/k.gpg arch=amd64] http://mirror.invalid/debian bookworm main contrib' \
    '  deb http://mirror.invalid/security bookworm-security main' \
    'deb-src http://mirror.invalid/debian bookworm main' >"$WORK/apt/sources.list"
printf '%s\n' 'Types: deb deb-src' 'URIs: http://mirror.invalid/debian' 'Suites: bookworm' 'Components: main' \
    '' 'Types: deb' 'URIs: http://mirror.invalid/updates' 'Suites: bookworm-updates' 'Components: main' \
    >"$WORK/apt/sources.list.d/debian.sources"
echo '# nothing' >"$WORK/apt/sources.list.d/empty.list"
debsrc_ok() {
    "$ROOT/tools/kube/debsrc.sh" "$WORK/apt" "$WORK/apt-out" || return 1
    is "deb-src [signed-by=/k.gpg arch=amd64] http://mirror.invalid/debian bookworm main contrib
deb-src http://mirror.invalid/security bookworm-security main" cat "$WORK/apt-out/src0.list" &&
    is "Types: deb-src|Types: deb-src" sh -c "grep ^Types: '$WORK/apt-out/src1.sources' | paste -sd'|'" &&
    is 2 sh -c "grep -c ^URIs: '$WORK/apt-out/src1.sources'" &&
    is "src0.list src1.sources" sh -c "ls '$WORK/apt-out' | xargs" &&
    ! "$ROOT/tools/kube/debsrc.sh" "$WORK/no-apt" "$WORK/apt-none" 2>/dev/null
}
check "tools/kube/debsrc.sh: deb-src from one-line and deb822 sources (comments, deb-src lines, empty files)" \
    debsrc_ok

# node-1 (198.18.0.1) holds the control plane; node-2 (198.18.0.2) reaches it over the link, as
# a ztunnel or mesh-cni on another node would.
topo_two_nodes 4
K=$WORK/kube
KUBE_ADDR=198.18.0.1 kube_up "$N1" "$K"
say "apiserver ready after $KUBE_READY_SECS s"

check "/readyz is 200 over HTTP/2 with the serving certificate verified against DIR/pki/ca.crt" \
    is "200 2" ip netns exec "$N1" curl -s --http2 --cacert "$K/pki/ca.crt" -o /dev/null \
        -w '%{http_code} %{http_version}' -H "Authorization: Bearer $(cat "$K/admin.token")" \
        https://127.0.0.1:6443/readyz
check "reachable from node-2 at https://198.18.0.1:6443, certificate verified" \
    is "200" ip netns exec "$N2" curl -s --cacert "$K/pki/ca.crt" -o /dev/null -w '%{http_code}' \
        -H "Authorization: Bearer $(cat "$K/admin.token")" https://198.18.0.1:6443/readyz
check "the kubeconfig names https://198.18.0.1:6443" grep -q 'server: https://198.18.0.1:6443' "$K/kubeconfig"
k8s_ep() {
    [ "$(kube_kubectl "$K" -n default get endpoints kubernetes \
        -o jsonpath='{.subsets[0].addresses[0].ip}:{.subsets[0].ports[0].port}')" = 198.18.0.1:6443 ]
}
check "the kubernetes Service's endpoints are 198.18.0.1:6443 (what in-cluster clients dial, 15 s)" \
    kube_wait 15 k8s_ep
check "a wrong token is refused (401), an anonymous list of namespaces forbidden (403)" \
    is "401 403" ip netns exec "$N1" sh -c "curl -s --cacert '$K/pki/ca.crt' -o /dev/null -w '%{http_code} ' \
        -H 'Authorization: Bearer wrong' https://127.0.0.1:6443/api/v1/namespaces &&
        curl -s --cacert '$K/pki/ca.crt' -o /dev/null -w '%{http_code}' https://127.0.0.1:6443/api/v1/namespaces"
check "the kubeconfig verifies the server (CA data, no insecure-skip-tls-verify)" \
    sh -c "grep -q certificate-authority-data '$K/kubeconfig' && ! grep -q insecure '$K/kubeconfig'"
kube_client_cert "$K" alice amesh-devs
check "kube_client_cert: the API server authenticates alice (group amesh-devs) by certificate, RBAC forbids her" \
    grep -q 'User \\"alice\\" cannot list resource \\"namespaces\\"' <(ip netns exec "$N1" curl -s --cacert "$K/pki/ca.crt" \
        --cert "$K/pki/alice.crt" --key "$K/pki/alice.key" https://198.18.0.1:6443/api/v1/namespaces)
kube_kubectl "$K" version -o json >"$WORK/version.json" 2>/dev/null || true
check "kubectl talks to a Kubernetes v1.20.2 server" \
    $PY -c "import json; assert json.load(open('$WORK/version.json'))['serverVersion']['gitVersion']=='v1.20.2'"
kube_curl "$K" /api/v1/namespaces/kube-system -f -o "$WORK/ks.json"
check "kube_curl GET /api/v1/namespaces/kube-system" \
    $PY -c "import json; assert json.load(open('$WORK/ks.json'))['metadata']['name']=='kube-system'"

# ---- CRDs and the samples -------------------------------------------------------------------
crds() { kc get crd -l app.kubernetes.io/part-of=amesh-test-crds -o name | wc -l; }
check "manifests/crds: 8 CRDs established" is 8 crds
for f in echo curl sleep allow-curl waypoint; do
    check "kubectl apply -f samples/$f.yaml" kube_kubectl "$K" apply -f "$ROOT/samples/$f.yaml"
done
cat >"$WORK/more.yaml" <<'YAML'
apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: amesh-waypoint}
spec: {controllerName: amesh.io/waypoint}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: waypoint, namespace: demo, labels: {istio.io/waypoint-for: service}}
spec:
  gatewayClassName: amesh-waypoint
  listeners: [{name: mesh, port: 15008, protocol: HBONE}]
---
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: echo-grpc, namespace: demo}
spec:
  parentRefs: [{group: "", kind: Service, name: echo}]
---
apiVersion: security.istio.io/v1beta1
kind: PeerAuthentication
metadata: {name: default, namespace: demo}
spec: {mtls: {mode: STRICT}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: external, namespace: demo}
spec: {hosts: [example.internal], ports: [{number: 80, name: http, protocol: HTTP}], resolution: STATIC}
---
apiVersion: networking.istio.io/v1beta1
kind: WorkloadEntry
metadata: {name: vm-1, namespace: demo}
spec: {address: 198.18.7.1, labels: {app: vm}}
YAML
check "kubectl apply of a GatewayClass, Gateway, GRPCRoute, PeerAuthentication, ServiceEntry, WorkloadEntry" \
    kube_kubectl "$K" apply -f "$WORK/more.yaml"
got() { # resource expected-names (sorted, space-separated)
    local names
    names=$(kube_kubectl "$K" get "$1" -n demo -o jsonpath='{.items[*].metadata.name}' 2>&1 | tr ' ' '\n' | sort | xargs)
    [ "$names" = "$2" ] || { echo "get $1: '$names', expected '$2'"; return 1; }
}
check "AuthorizationPolicies (security.istio.io/v1) list back" \
    got authorizationpolicies.security.istio.io "echo-allow-curl echo-allow-waypoint echo-l7-allow-curl echo-l7-deny-admin"
check "the same at v1beta1" \
    got authorizationpolicies.v1beta1.security.istio.io "echo-allow-curl echo-allow-waypoint echo-l7-allow-curl echo-l7-deny-admin"
check "HTTPRoute echo-split (gateway.networking.k8s.io/v1) lists back" \
    got httproutes.v1.gateway.networking.k8s.io echo-split
check "the same at v1beta1" got httproutes.v1beta1.gateway.networking.k8s.io echo-split
check "Gateway lists back" got gateways.gateway.networking.k8s.io waypoint
check "GRPCRoute lists back" got grpcroutes echo-grpc
check "PeerAuthentication lists back (applied as v1beta1)" got peerauthentications.v1.security.istio.io default
check "ServiceEntry lists back" got serviceentries external
check "WorkloadEntry lists back (applied as v1beta1)" got workloadentries.v1.networking.istio.io vm-1
check "GatewayClass is cluster-scoped" \
    is "amesh-waypoint|" kc get gatewayclass amesh-waypoint -o jsonpath='{.metadata.name}|{.metadata.namespace}'
check "Deployments of the samples" got deployments "curl echo-v1 echo-v2 sleep"
check "Services of the samples" got services "echo echo-v1 echo-v2"
check "a spec field the minimal CRD does not describe is kept (preserve-unknown-fields)" \
    is cluster.local/ns/demo/sa/curl kc -n demo get authorizationpolicy echo-allow-curl \
        -o jsonpath='{.spec.rules[0].from[0].source.principals[0]}'

# ---- a watch with bookmarks --------------------------------------------------------------------
rv=$(kube_kubectl "$K" get configmaps -n demo -o jsonpath='{.metadata.resourceVersion}')
KUBE_CURL_TIME=15 kube_curl "$K" \
    "/api/v1/namespaces/demo/configmaps?watch=1&allowWatchBookmarks=true&timeoutSeconds=5&resourceVersion=$rv" \
    -o "$WORK/watch.jsonl" &
WATCH=$!
sleep 1
kube_kubectl "$K" -n demo create configmap watched --from-literal=k=v >/dev/null
wait "$WATCH" || true
check "the watch streamed ADDED watched, then a BOOKMARK, then ended at its timeout" $PY -c "
import json
ev=[json.loads(l) for l in open('$WORK/watch.jsonl') if l.strip()]
t=[(e['type'],e['object']['metadata'].get('name')) for e in ev]
print(t)
assert t[0]==('ADDED','watched') and t[-1][0]=='BOOKMARK', t
assert int(ev[-1]['object']['metadata']['resourceVersion'])>=int(ev[0]['object']['metadata']['resourceVersion'])
"

# ---- controllers, scheduler, a node -------------------------------------------------------------
kube_up_controllers "$N1" "$K"
kube_add_node "$N1" "$K" node-1 198.18.0.1
check "node-1 is Ready and untainted" \
    is 'True|' kc get node node-1 -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}|{.spec.taints}'
pods_bound() {
    local out
    out=$(kube_kubectl "$K" -n demo get pods -o jsonpath='{range .items[*]}{.metadata.labels.app}={.spec.nodeName} {end}')
    for a in echo curl sleep; do
        grep -q "$a=node-1" <<<"$out" || return 1
    done
    [ "$(wc -w <<<"$out")" = 4 ]
}
check "Deployments became ReplicaSets and 4 Pods, each bound to node-1 by the scheduler (60 s)" \
    kube_wait 60 pods_bound
kube_kubectl "$K" -n demo get deploy,rs,pods -o wide || true
owners() {
    kc -n demo get pods -l app=echo,version=v1 -o jsonpath='{.items[0].metadata.ownerReferences[0].kind}/' &&
    kc -n demo get rs -l app=echo,version=v1 -o jsonpath='{.items[0].metadata.ownerReferences[0].kind}/{.items[0].metadata.ownerReferences[0].name}'
}
check "echo-v1's Pod is owned by a ReplicaSet, owned by Deployment echo-v1" is ReplicaSet/Deployment/echo-v1 owners
pod=$(kube_kubectl "$K" -n demo get pods -l app=echo,version=v1 -o jsonpath='{.items[0].metadata.name}')
kube_pod_running "$K" demo "$pod" 198.18.1.11
slice_has() {
    kube_kubectl "$K" -n demo get endpointslices.v1beta1.discovery.k8s.io -l kubernetes.io/service-name=echo \
        -o jsonpath='{.items[*].endpoints[*].addresses[*]}' | grep -qw 198.18.1.11
}
check "kube_pod_running: echo's EndpointSlice lists the Ready pod's IP (30 s)" kube_wait 30 slice_has
sa_secret() { kc -n demo get sa echo -o jsonpath='{.secrets[0].name}' | grep -q .; }
check "the serviceaccount-token controller made the echo ServiceAccount's token Secret (30 s)" \
    kube_wait 30 sa_secret

# ---- kube_down ----------------------------------------------------------------------------------
pids=$(cat "$K"/*.pid | xargs)
kube_down "$K"
check "kube_down: etcd, apiserver, controller-manager, scheduler gone ($pids)" \
    sh -c "for p in $pids; do kill -0 \$p 2>/dev/null && exit 1; done; exit 0"
check "kube_down: no process left in the namespace" is "" ip netns pids "$N1"
check "kube_down: the directory is removed" test ! -e "$K"
finish
