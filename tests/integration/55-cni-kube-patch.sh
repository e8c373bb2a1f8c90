#!/usr/bin/env bash
# mesh-cni's ambient.istio.io/redirection patches when the API server refuses them, on the
# real kube-apiserver v1.20.2 (tests/support/kube.sh): mesh-cni runs as a user (client
# certificate) whose RBAC lets it watch pods and namespaces but not patch pods/status.
#
#   netns N1: etcd, kube-apiserver, meshd (an empty --config-dir: ztunnel only needs xDS to
#   be ready), a ztunnel of node-1 and mesh-cni --kubeconfig (that user). 12 ambient pods
#   on node-1, each a network namespace named by its amesh.io/netns annotation.
#
# Checks: the refusal costs only the annotation: every pod is in the mesh (rules, ztunnel);
# each pod's patch is retried with backoff, not in a loop (attempts in ~12 s bounded), and
# the warnings are rate limited (at most 5 lines per 10 s for 12 pods); once the role is
# granted every pod gets the annotation without a restart (within the backoff's cap); the
# agent's counters add up at exit.
. "$(dirname "$0")/lib.sh"
. "$ROOT/tests/support/kube.sh"
. "$(dirname "$0")/cni_lib.sh"
require_root
kube_require || exit 1

kc() { kube_kubectl "$K" "$@"; }
K=$WORK/kube
ZDS=$WORK/zds.sock
N=12
ip netns add "$N1"
kube_up "$N1" "$K"

# ---- the agent's user: may watch pods and namespaces, may not patch pods/status ---------------
kube_client_cert "$K" amesh-cni
cat >"$WORK/cni.kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: t
  cluster: {server: "$(cat "$K/server")", certificate-authority: "$K/pki/ca.crt"}
users:
- name: amesh-cni
  user: {client-certificate: "$K/pki/amesh-cni.crt", client-key: "$K/pki/amesh-cni.key"}
contexts:
- name: t
  context: {cluster: t, user: amesh-cni}
current-context: t
EOF
kc create clusterrole amesh-cni-read --verb=get,list,watch --resource=pods,namespaces >/dev/null
kc create clusterrolebinding amesh-cni-read --clusterrole=amesh-cni-read --user=amesh-cni >/dev/null
can() { kc auth can-i "$@" --as amesh-cni; }
check "the agent's user may watch pods" can watch pods
cannot_patch() { ! can patch pods --subresource=status >/dev/null 2>&1; }
check "... and may not patch pods/status" cannot_patch

# ---- the node: meshd, ztunnel, mesh-cni; 12 ambient pods on node-1 --------------------------------
mkdir -p "$STATE" "$CFG"
MESHD_ADDR=127.0.0.1:15012
start_bg "$WORK/meshd.log" ip netns exec "$N1" "$BIN/meshd" --config-dir "$CFG" \
    --state-dir "$STATE" --listen "$MESHD_ADDR" --monitoring 127.0.0.1:15014
MESHD_PID=$LAST_PID
printf 'apiVersion: v1\nkind: Namespace\nmetadata:\n  name: amb\n  labels: {istio.io/dataplane-mode: ambient}\n' |
    kc apply -f - >/dev/null
PODS=()
for i in $(seq $N); do # not in the pipeline below: cni_pod records the namespace for the EXIT trap
    p=amt-cp-$i-$ID
    cni_pod "$p"
    ip -n "$p" link set lo up # what the runtime's loopback plugin does
    PODS+=("$p")
done
for i in $(seq $N); do
    p=amt-cp-$i-$ID
    printf 'apiVersion: v1\nkind: Pod\nmetadata:\n  name: p%s\n  namespace: amb\n  annotations: {amesh.io/netns: /run/netns/%s}\nspec: {nodeName: node-1, containers: [{name: c, image: x}]}\n' "$i" "$p"
    echo ---
done | kc create -f - >/dev/null
start_bg "$WORK/cni.log" ip netns exec "$N1" "$BIN/mesh-cni" --zds-socket "$ZDS" --node node-1 \
    --kubeconfig "$WORK/cni.kubeconfig"
CNI_PID=$LAST_PID
WAIT_SECS=30 wait_for test -S "$ZDS" || { cat "$WORK/cni.log"; exit 1; }
t0=$(date +%s)
start_ztunnel_xds "$N1" node-1 "$STATE" "$WORK/zt.log" --zds-socket "$ZDS"
ZT=$LAST_PID

all_in() { local p; for p in "${PODS[@]}"; do zt_listens "$p" && has_rules "$p" || return 1; done; }
check "all $N pods are in the mesh (rules, ztunnel listening) although the patches are refused (10 s)" \
    wait_secs 10 all_in
n_refused() { grep -c 'patching ambient.istio.io/redirection: HTTP 403' "$WORK/cni.log" || true; }
check "the refusals are logged (HTTP 403)" wait_secs 10 sh -c "grep -q 'patching ambient.istio.io/redirection: HTTP 403' '$WORK/cni.log'"
# Let the backoff run for a while: ~12 s after the first attempts.
sleep $(( 12 - ($(date +%s) - t0) > 0 ? 12 - ($(date +%s) - t0) : 0 ))
lines=$(n_refused)
say "after ~12 s of refusals: $lines warning lines for $N pods"
check "warnings rate limited: at most 10 lines in ~12 s for $N pods ($lines)" test "$lines" -le 10
none_annotated() {
    ! kc -n amb get pods -o jsonpath='{range .items[*]}{.metadata.annotations}{"\n"}{end}' | grep -q 'ambient.istio.io/redirection'
}
check "no pod is annotated" none_annotated

# ---- the role granted: every pod annotated, no restart -----------------------------------------------
kc create clusterrole amesh-cni-status --verb=patch --resource=pods/status >/dev/null
kc create clusterrolebinding amesh-cni-status --clusterrole=amesh-cni-status --user=amesh-cni >/dev/null
tg=$(date +%s)
all_annotated() {
    [ "$(kc -n amb get pods -o jsonpath='{range .items[*]}{.metadata.annotations.ambient\.istio\.io/redirection}{"\n"}{end}' | grep -cx enabled)" = "$N" ]
}
check "once granted, all $N pods are annotated without a restart (45 s: the backoff's cap is 30 s)" \
    wait_secs 45 all_annotated
say "annotated $(( $(date +%s) - tg )) s after the grant (the pods' backoffs: 0.8 s doubling, jittered, 30 s cap)"
check "ztunnel kept every pod" all_in
check "mesh-cni exits 0 on SIGTERM, sanitizers clean" stop_ztunnel "$CNI_PID" "$WORK/cni.log"
sum=$(grep -o 'redirection annotation: .*' "$WORK/cni.log")
say "$sum"
sent=$(echo "$sum" | sed -E 's/.*: ([0-9]+) patches sent, ([0-9]+) succeeded, ([0-9]+) failed.*/\1 \2 \3/')
read -r S OK F <<<"$sent"
check "$OK patches succeeded: one per pod" test "$OK" = "$N"
check "sent = succeeded + failed ($S = $OK + $F)" test "$S" = $((OK + F))
# A pod's attempts in the whole refused period (~12 s + time to grant + its backoff):
# 0, 0.8, 2.4, 5.6, 12, 24.8 s at the most (jitter only shortens); a loop would make thousands.
check "each pod retried with backoff: at most 7 refusals per pod ($F for $N pods)" test "$F" -le $((7 * N))
check "... and at least 2 per pod: the refusals were retried ($F)" test "$F" -ge $((2 * N))
check "ztunnel exits 0 on SIGTERM, sanitizers clean" stop_ztunnel "$ZT" "$WORK/zt.log"
check "meshd exits cleanly" stop_meshd "$MESHD_PID" "$WORK/meshd.log"
finish
