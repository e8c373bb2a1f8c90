#!/usr/bin/env bash
# manifests/ (kustomize base and overlays, Helm charts) against the real kube-apiserver 1.20.2
# (tests/support/kube.sh) and the real binaries:
#
#   - `kubectl kustomize` renders the base, overlays/local and overlays/production; the base
#     holds exactly the objects an install needs (namespace, meshd, ztunnel, mesh-cni, RBAC);
#   - every flag a container passes is one its binary's --help lists ($MESH_BIN), and
#     ztunnel's $(NAME_SERVICE_HOST) names meshd's Service;
#   - the Helm charts, rendered without helm (tests/support/chart_check.py), are the base's
#     objects with their default values and the production overlay's with
#     tests/support/chart_production_values.yaml;
#   - `kubectl apply --dry-run=server` of each rendering succeeds with the CRDs applied, and a
#     manifest only the server's validation refuses (a projected token of 60 s) is refused, so
#     the dry run does validate;
#   - applied for real, the RBAC gives each service account what it needs and no more
#     (kubectl auth can-i --as), and meshd run with the Deployment's args and a token of its
#     service account lists every kind, becomes ready with no request refused, and publishes
#     istio-ca-root-cert;
#   - the amesh-ca Secret of the production overlay can be made as manifests/README.md says
#     (meshd token --state-dir, kubectl create secret).
. "$(dirname "$0")/lib.sh"
. "$ROOT/tests/support/kube.sh"
require_root
kube_require || exit 1
M=$ROOT/manifests
kc() { kube_kubectl "$K" "$@"; }
t0=$(date +%s.%N)

# ---- rendering ----------------------------------------------------------------------------
for o in base overlays/local overlays/production; do
    f=$WORK/$(basename "$o").yaml
    check "kubectl kustomize $o renders" sh -c "'$KUBECTL' kustomize '$M/$o' >'$f'"
done
objects() { # file: kind/namespace/name per object, sorted
    $PY -c '
import sys, yaml
for o in yaml.safe_load_all(open(sys.argv[1])):
    if o:
        m = o["metadata"]
        print("%s/%s/%s" % (o["kind"], m.get("namespace", ""), m["name"]))' "$1" | sort
}
want="ClusterRole//amesh-cni
ClusterRole//amesh-meshd
ClusterRoleBinding//amesh-cni
ClusterRoleBinding//amesh-meshd
ConfigMap/istio-system/meshd-config
DaemonSet/istio-system/mesh-cni
DaemonSet/istio-system/ztunnel
Deployment/istio-system/meshd
Namespace//istio-system
Service/istio-system/istiod
ServiceAccount/istio-system/mesh-cni
ServiceAccount/istio-system/meshd
ServiceAccount/istio-system/ztunnel"
check "the base renders the 13 objects of an install" test "$(objects "$WORK/base.yaml")" = "$want"
check "overlays/local: every container's imagePullPolicy is Never (the images come from archives)" \
    $PY -c '
import sys, yaml
cs = [c for o in yaml.safe_load_all(open(sys.argv[1])) if o and o["kind"] in ("Deployment", "DaemonSet")
      for c in o["spec"]["template"]["spec"]["containers"]]
assert len(cs) == 3 and all(c["imagePullPolicy"] == "Never" for c in cs), cs' "$WORK/local.yaml"

# Every --flag of every container is one its binary knows; $(X_SERVICE_HOST) names a Service.
check "every flag in the containers' args is listed by that binary's --help" $PY -c '
import re, subprocess, sys, yaml
objs = [o for o in yaml.safe_load_all(open(sys.argv[1])) if o]
bad = 0 if sum(o["kind"] in ("Deployment", "DaemonSet") for o in objs) == 3 else 1
for o in objs:
    if o["kind"] not in ("Deployment", "DaemonSet"):
        continue
    for c in o["spec"]["template"]["spec"]["containers"]:
        binary = c["image"].split("/")[-1].split(":")[0]
        usage = subprocess.run([sys.argv[2] + "/" + binary, "--help"], capture_output=True, text=True).stdout
        known = set(re.findall(r"(--[a-z0-9-]+)", usage))
        unknown = [a.split("=", 1)[0] for a in c.get("args", []) if a.split("=", 1)[0] not in known]
        for flag in unknown:
            print("  %s: %s is not a flag of %s" % (o["metadata"]["name"], flag, binary))
        if not known or not unknown:
            print("  %s: %d args, %s" % (o["metadata"]["name"], len(c.get("args", [])),
                  "all known to %s --help" % binary if known else "but %s --help lists no flag" % binary))
        bad += len(unknown) + (0 if known else 1)
svcs = {o["metadata"]["name"] for o in objs if o["kind"] == "Service"}
for o in objs:
    for c in o.get("spec", {}).get("template", {}).get("spec", {}).get("containers", []):
        for a in c.get("args", []):
            for env in re.findall(r"\$\(([A-Z0-9_]+)_SERVICE_HOST\)", a):
                name = env.lower().replace("_", "-")
                if name not in svcs:
                    print("  %s: $(%s_SERVICE_HOST) names no Service" % (o["metadata"]["name"], env)); bad += 1
                else:
                    print("  %s: $(%s_SERVICE_HOST) is Service %s" % (o["metadata"]["name"], env, name))
sys.exit(1 if bad else 0)' "$WORK/base.yaml" "$BIN"

check "the Helm charts (default values) render the base's objects" \
    $PY "$ROOT/tests/support/chart_check.py" "$M/charts" "$WORK/base.yaml"
check "the Helm charts (production values) render the production overlay's objects" \
    $PY "$ROOT/tests/support/chart_check.py" "$M/charts" "$WORK/production.yaml" \
        "$ROOT/tests/support/chart_production_values.yaml"

# ---- the real API server --------------------------------------------------------------------
ip netns add "$N1"
K=$WORK/kube
kube_up "$N1" "$K"
check "the CRDs are established (AuthorizationPolicy, Gateway)" \
    kc get crd authorizationpolicies.security.istio.io gateways.gateway.networking.k8s.io
# A server-side dry run of objects in a namespace needs the namespace itself (a dry-run
# create of the Namespace stores nothing).
check "namespace istio-system created" kc create namespace istio-system
dry_run() { # file count: the server accepts all count objects (and stores none)
    kc apply --dry-run=server -f "$1" >"$1.dry" 2>&1 || { cat "$1.dry"; return 1; }
    [ "$(grep -c '(server dry run)' "$1.dry")" -eq "$2" ] || { cat "$1.dry"; return 1; }
}
for o in base local production; do
    n=$(grep -c '^kind:' "$WORK/$o.yaml")
    check "kubectl apply --dry-run=server of $o: all $n objects accepted" dry_run "$WORK/$o.yaml" "$n"
done
# A token shorter-lived than the server allows: well-formed YAML and schema, refused only by the
# API server's own validation.
sed 's/expirationSeconds: 43200/expirationSeconds: 60/' "$WORK/base.yaml" >"$WORK/bad.yaml"
refused() {
    ! kc apply --dry-run=server -f "$WORK/bad.yaml" >"$WORK/bad.out" 2>&1 &&
        grep -q 'expirationSeconds' "$WORK/bad.out" || { cat "$WORK/bad.out"; return 1; }
}
check "a ztunnel token of 60 s (under the server's 10 min) is refused by the same dry run" refused
not_stored() { ! kc -n istio-system get deployment meshd >/dev/null 2>&1; }
check "nothing was stored by the dry runs" not_stored

# ---- applied for real: what each service account may do ---------------------------------------
check "kubectl apply -k overlays/local" kc apply -k "$M/overlays/local"
may() { # yes|no serviceaccount verb resource [flags]: kubectl auth can-i as that account
    local want=$1 sa=$2 got
    shift 2
    got=$(kc auth can-i --as="system:serviceaccount:istio-system:$sa" "$@" 2>/dev/null) || true
    [ "$got" = "$want" ] || { echo "  $sa: can-i $* is '$got', want $want"; return 1; }
}
all() { # yes|no serviceaccount verb flags -- resource...
    local want=$1 sa=$2 verb=$3 flag=$4 r rc=0
    shift 5
    for r in "$@"; do may "$want" "$sa" "$verb" "$r" $flag || rc=1; done
    return $rc
}
always() { # serviceaccount "verb resource"...: each of them allowed
    local sa=$1 v rc=0
    shift
    for v in "$@"; do may yes "$sa" $v -n demo || rc=1; done
    return $rc
}
never() { # serviceaccount "verb resource"...: none of them allowed
    local sa=$1 v rc=0
    shift
    for v in "$@"; do may no "$sa" $v -n demo || rc=1; done
    return $rc
}
# (can-i resolves a resource through discovery: VirtualService, which manifests/crds does not
# define, is checked by meshd's own run below instead.)
check "meshd may watch what it converts, in every namespace" all yes meshd watch -A -- \
    pods endpointslices.discovery.k8s.io authorizationpolicies.security.istio.io \
    peerauthentications.security.istio.io gateways.gateway.networking.k8s.io \
    gatewayclasses.gateway.networking.k8s.io httproutes.gateway.networking.k8s.io \
    grpcroutes.gateway.networking.k8s.io serviceentries.networking.istio.io \
    namespaces services serviceaccounts nodes configmaps
check "meshd may create tokenreviews (its CA's authentication)" may yes meshd create tokenreviews.authentication.k8s.io
check "meshd may create configmaps (istio-ca-root-cert) in any namespace" may yes meshd create configmaps -n demo
check "meshd may update configmaps in any namespace" may yes meshd update configmaps -n demo
check "meshd may create events" may yes meshd create events -n demo
check "meshd may patch events" may yes meshd patch events -n demo
check "meshd may patch gateways/status" may yes meshd patch gateways.gateway.networking.k8s.io --subresource=status -n demo
check "meshd may patch gatewayclasses/status" may yes meshd patch gatewayclasses.gateway.networking.k8s.io --subresource=status
check "meshd may create, patch and delete what a waypoint Gateway deploys" always meshd \
    "create deployments.apps" "patch deployments.apps" "delete deployments.apps" \
    "watch deployments.apps" "create services" "patch services" "delete services" \
    "create serviceaccounts" "patch serviceaccounts" "delete serviceaccounts"
check "meshd may not delete or create pods, read secrets, or update gateways themselves" \
    never meshd "delete pods" "create pods" "get secrets" "update gateways.gateway.networking.k8s.io" \
    "update gateways.gateway.networking.k8s.io --subresource=status" "update deployments.apps" \
    "create daemonsets.apps" "delete namespaces"
check "ztunnel may not even list pods (it needs no API access)" may no ztunnel list pods -A
check "mesh-cni may watch pods, nodes and namespaces" all yes mesh-cni watch -A -- pods nodes namespaces
check "mesh-cni may patch pods/status" may yes mesh-cni patch pods --subresource=status -n demo
check "mesh-cni may not patch, update or delete pods themselves, nor create configmaps or tokenreviews" \
    never mesh-cni "patch pods" "update pods" "delete pods" "create configmaps" "create tokenreviews.authentication.k8s.io"
jp() { kc -n istio-system get "$1" -o jsonpath="$2"; }
check "the ztunnel pod template mounts a projected token with audience istio-ca" \
    test "$(jp ds/ztunnel '{.spec.template.spec.volumes[?(@.name=="istio-token")].projected.sources[0].serviceAccountToken.audience}')" = istio-ca

# ---- the three components, run with the args the rendered manifests give them -----------------
# What the kubelet would do for their pods, in N1 (where the API server is 127.0.0.1): $(VAR)
# expanded from the container's env and the service links, each volume a directory under $R
# at its mountPath (so ztunnel and mesh-cni share /var/run/ztunnel, the hostPath), the
# projected token a TokenRequest token, the ConfigMaps' data as files. meshd's --in-cluster
# becomes a kubeconfig with a token of istio-system/meshd (in a pod it would read the same
# token from the service-account mount). Every kind meshd lists, watches and writes goes
# through the ClusterRole above: a rule missing from it leaves meshd unready (a 403 is
# retried, the synced gate stays closed).
R=$WORK/root
args_of() { # kind name KEY=VALUE...: the container's args, env expanded, paths under $R
    $PY - "$WORK/base.yaml" "$R" "$@" <<'PYEOF'
import re, sys, yaml
path, root, kind, name = sys.argv[1:5]
env = dict(kv.split("=", 1) for kv in sys.argv[5:])
for o in yaml.safe_load_all(open(path)):
    if o and o["kind"] == kind and o["metadata"]["name"] == name:
        c = o["spec"]["template"]["spec"]["containers"][0]
        for e in c.get("env", []):
            env.setdefault(e["name"], e.get("value", ""))
        for a in c["args"]:
            a = re.sub(r"\$\(([A-Za-z0-9_]+)\)", lambda m: env[m.group(1)], a)
            flag, eq, val = a.partition("=")
            if flag == "--in-cluster":
                a = "--kubeconfig=" + env["KUBECONFIG"]
            elif val.startswith("/"):
                a = flag + "=" + root + val
            print(a)
PYEOF
}
kubeconfig_for() { # serviceaccount file: a kubeconfig with a TokenRequest token of that account
    local tok
    tok=$(kc -n istio-system create token "$1" --duration=1h) || return 1
    printf '%s\n' "apiVersion: v1" "kind: Config" "clusters:" "- name: test" "  cluster:" \
        "    server: $(cat "$K/server")" "    certificate-authority: $K/pki/ca.crt" "users:" \
        "- name: $1" "  user:" "    token: $tok" "contexts:" "- name: test" \
        "  context: {cluster: test, user: $1}" "current-context: test" >"$2"
}
within() { local secs=$1; shift; WAIT_SECS=$secs wait_for "$@"; }
ready() { # port path
    [ "$(ip netns exec "$N1" curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$1$2")" = 200 ]
}

check "a token of the meshd service account (TokenRequest)" kubeconfig_for meshd "$WORK/meshd.kubeconfig"
mapfile -t MESHD_ARGS < <(args_of Deployment meshd KUBECONFIG="$WORK/meshd.kubeconfig")
say "meshd ${MESHD_ARGS[*]}"
mkdir -p "$R/etc/meshd/config" "$R/var/lib/meshd"
start_bg "$WORK/meshd.log" ip netns exec "$N1" "$BIN/meshd" "${MESHD_ARGS[@]}"
check "meshd, as the Deployment runs it, lists every kind with its ClusterRole and is ready" within 30 ready 15014 /ready
check "no request of meshd's was refused (403)" sh -c "! grep -m3 'HTTP 403' '$WORK/meshd.log'"
root_published() {
    kc -n istio-system get configmap istio-ca-root-cert -o jsonpath='{.data.root-cert\.pem}' >"$WORK/published.pem" &&
        cmp -s "$WORK/published.pem" "$R/var/lib/meshd/ca/root-cert.pem"
}
check "meshd published its root in istio-ca-root-cert (configmaps create)" within 15 root_published

# The node side: a Node, ztunnel's pod (the DaemonSet's template on that node, as the
# DaemonSet controller would make it), its projected token bound to that pod, the root.
ztunnel_pod() {
    kube_add_node "$N1" "$K" node-1 198.18.0.1 &&
    $PY -c '
import json, sys, yaml
for o in yaml.safe_load_all(open(sys.argv[1])):
    if o and o["kind"] == "DaemonSet" and o["metadata"]["name"] == "ztunnel":
        t = o["spec"]["template"]
        t["metadata"].update(name="ztunnel-node-1", namespace="istio-system")
        t["spec"]["nodeName"] = "node-1"
        print(json.dumps(dict(apiVersion="v1", kind="Pod", metadata=t["metadata"], spec=t["spec"])))' \
        "$WORK/base.yaml" | kc create -f - >/dev/null &&
    kube_pod_running "$K" istio-system ztunnel-node-1 198.18.0.11 &&
    mkdir -p "$R/var/run/secrets/tokens" "$R/var/run/secrets/istio" "$R/var/run/ztunnel" \
        "$R/var/run/amesh" &&
    kc -n istio-system create token ztunnel --audience istio-ca --bound-object-kind Pod \
        --bound-object-name ztunnel-node-1 >"$R/var/run/secrets/tokens/istio-token" &&
    cp "$WORK/published.pem" "$R/var/run/secrets/istio/root-cert.pem"
}
check "ztunnel's pod on node-1, its projected token (audience istio-ca) and the root" ztunnel_pod
say "ztunnel's projected token: $(wc -c <"$R/var/run/secrets/tokens/istio-token") bytes"
check "a token of the mesh-cni service account (TokenRequest)" kubeconfig_for mesh-cni "$WORK/mesh-cni.kubeconfig"
mapfile -t CNI_ARGS < <(args_of DaemonSet mesh-cni NODE_NAME=node-1 KUBECONFIG="$WORK/mesh-cni.kubeconfig")
say "mesh-cni ${CNI_ARGS[*]}"
start_bg "$WORK/mesh-cni.log" ip netns exec "$N1" "$BIN/mesh-cni" "${CNI_ARGS[@]}"
mapfile -t ZT_ARGS < <(args_of DaemonSet ztunnel NODE_NAME=node-1 ISTIOD_SERVICE_HOST=127.0.0.1)
say "ztunnel ${ZT_ARGS[*]}"
start_bg "$WORK/ztunnel.log" ip netns exec "$N1" "$BIN/ztunnel" "${ZT_ARGS[@]}"
# The DaemonSet's args start it, it meets mesh-cni on the shared socket, and its projected token
# (a Kubernetes JWT, reviewed by meshd) gets it meshd's xDS: ready.
check "ztunnel, as the DaemonSet runs it, gets mesh-cni's snapshot over the ZDS socket they share" \
    within 15 grep -q 'node agent snapshot: 0 pods' "$WORK/ztunnel.log"
check "ztunnel, as the DaemonSet runs it, is ready on 15021 with its projected token" \
    within 30 ready 15021 /healthz/ready
check "...having read the file as a Kubernetes token" \
    grep -q 'a Kubernetes service-account token ([0-9]* bytes) for xDS and the CA' "$WORK/ztunnel.log"
reviewed() {
    ip netns exec "$N1" curl -s http://127.0.0.1:15014/metrics |
        awk '$1 == "meshd_kube_token_reviews_total" && $2 >= 1 {ok = 1} END {exit !ok}'
}
check "...which meshd checked with a TokenReview" reviewed
check "mesh-cni, as its DaemonSet runs it, counts that ztunnel" grep -q 'ztunnel 1 connected' "$WORK/mesh-cni.log"
if [ "$FAILS" -gt 0 ]; then
    for l in meshd mesh-cni ztunnel; do echo "--- $l.log"; tail -n 15 "$WORK/$l.log"; done
fi
kill_pids
PIDS=()

# ---- the production overlay's Secret, made as manifests/README.md says -------------------------
check "meshd token --state-dir makes the CA state the amesh-ca Secret holds" \
    sh -c "'$BIN/meshd' token --state-dir '$WORK/amesh-ca' --node bootstrap >/dev/null 2>&1"
check "kubectl create secret generic amesh-ca --from-file=DIR" \
    kc -n istio-system create secret generic amesh-ca --from-file="$WORK/amesh-ca"
check "the Secret has root-cert.pem, root-key.pem and token-key, the files meshd reads" \
    test "$(kc -n istio-system get secret amesh-ca -o go-template='{{range $k, $v := .data}}{{$k}} {{end}}')" = 'root-cert.pem root-key.pem token-key '
check "kubectl apply -k overlays/production" kc apply -k "$M/overlays/production"
check "meshd's pod template now reads its state from the Secret" \
    test "$(jp deploy/meshd '{.spec.template.spec.volumes[?(@.name=="ca")].secret.secretName}')" = amesh-ca
kube_down "$K"
say "test run $(echo "$(date +%s.%N) - $t0" | bc | cut -c1-5) s (apiserver ready in ${KUBE_READY_SECS:-?} s)"
finish
