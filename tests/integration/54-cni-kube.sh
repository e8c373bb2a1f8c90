#!/usr/bin/env bash
# mesh-cni, the node agent, on the real kube-apiserver v1.20.2 (tests/support/kube.sh):
# mesh-cni --node node-1 --kubeconfig watches node-1's pods (fieldSelector spec.nodeName)
# and the namespaces, and enrolls, as on a Kubernetes node.
#
#   netns N1 (node-1): etcd, kube-apiserver, meshd --kubeconfig, a ztunnel of node-1 fed by
#   it (xDS) and by mesh-cni (ZDS), mesh-cni --kubeconfig with the CNI plugin's socket;
#   the pods are network namespaces of their own. This script plays the kubelet: pods are
#   created with kubectl already bound (spec.nodeName) and their status patched (podIP).
#   A pod's network namespace reaches mesh-cni by its amesh.io/netns annotation, or by the
#   CNI plugin (amesh-cni chained after bridge + host-local, as a runtime calls it).
#
# Checks: no ZDS socket before the first list; node-1's ambient pods get the rules in their
# namespace, are handed to ztunnel and are annotated ambient.istio.io/redirection=enabled
# (kubectl shows it); node-2's pods are not even listed; a namespace labelled ambient later
# enrolls its pod without a restart, and un-labelling takes it out and the annotation off;
# an agent restarted while the API server is down opens no ZDS socket until it has listed
# (ztunnel drops nothing), and no pod is patched again; an API server restart and an etcd
# compaction (a pod deleted behind the server's back) drop no enrolled pod, and the
# vanished pod leaves. Prints label-to-enrolled times and the patches sent.
. "$(dirname "$0")/lib.sh"
. "$ROOT/tests/support/kube.sh"
. "$(dirname "$0")/cni_lib.sh"
require_root
kube_require || exit 1

kc() { kube_kubectl "$K" "$@"; }
K=$WORK/kube
ZDS=$WORK/zds.sock
ip netns add "$N1"
kube_up "$N1" "$K"
kube_add_node "$N1" "$K" node-1 198.18.0.1
kube_add_node "$N1" "$K" node-2 198.18.0.2

mkdir -p "$STATE"
MESHD_ADDR=127.0.0.1:15012
start_bg "$WORK/meshd.log" ip netns exec "$N1" "$BIN/meshd" --kubeconfig "$K/kubeconfig" \
    --state-dir "$STATE" --listen "$MESHD_ADDR" --monitoring 127.0.0.1:15014
MESHD_PID=$LAST_PID
meshd_ready() {
    [ "$(ip netns exec "$N1" curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:15014/ready)" = 200 ]
}
WAIT_SECS=30 wait_for meshd_ready || { cat "$WORK/meshd.log"; exit 1; }

# ---- the cluster: an ambient namespace, one that is not (yet), pods on node-1 and node-2 ------
ns_yaml() { # name [mode]
    printf 'apiVersion: v1\nkind: Namespace\nmetadata:\n  name: %s\n' "$1"
    [ -z "${2:-}" ] || printf '  labels: {istio.io/dataplane-mode: %s}\n' "$2"
}
pod_yaml() { # ns name node [netns]
    printf 'apiVersion: v1\nkind: Pod\nmetadata:\n  name: %s\n  namespace: %s\n  labels: {app: %s}\n' "$2" "$1" "$2"
    [ -z "${4:-}" ] || printf '  annotations: {amesh.io/netns: /run/netns/%s}\n' "$4"
    printf 'spec: {nodeName: %s, serviceAccountName: default, containers: [{name: c, image: x}]}\n' "$3"
}
uid_of() { kc -n "$1" get pod "$2" -o jsonpath='{.metadata.uid}'; }
redir() { # ns pod -> the annotation as kubectl shows it
    kc -n "$1" get pod "$2" -o jsonpath='{.metadata.annotations.ambient\.istio\.io/redirection}'
}
annotated() { [ "$(redir "$1" "$2")" = enabled ]; }
in_mesh() { # pod-netns...: ztunnel listens in each
    local p
    for p in "$@"; do zt_listens "$p" || return 1; done
}
all_annotated() { # ns/pod...
    local p
    for p in "$@"; do annotated "${p%/*}" "${p#*/}" || return 1; done
}
unannotated() { [ -z "$(redir "$1" "$2")" ] && ! kc -n "$1" get pod "$2" -o yaml | grep -q 'ambient.istio.io/redirection'; }

PA1=amt-ck-a1-$ID PA2=amt-ck-a2-$ID PA3=amt-ck-a3-$ID PB1=amt-ck-b1-$ID PL1=amt-ck-l1-$ID
for p in "$PA1" "$PA2" "$PA3" "$PB1" "$PL1"; do cni_pod "$p"; done
# What the runtime's loopback plugin does; the CNI path (a2) gets it from cni_run.
for p in "$PA1" "$PA3" "$PB1" "$PL1"; do ip -n "$p" link set lo up; done
ns_yaml amb ambient | kc apply -f - >/dev/null
ns_yaml late | kc apply -f - >/dev/null
pod_yaml amb a1 node-1 "$PA1" | kc create -f - >/dev/null
pod_yaml amb b1 node-2 "$PB1" | kc create -f - >/dev/null
pod_yaml late l1 node-1 "$PL1" | kc create -f - >/dev/null
kube_pod_running "$K" amb a1 198.18.61.11
kube_pod_running "$K" amb b1 198.18.61.21
kube_pod_running "$K" late l1 198.18.61.12
A1_UID=$(uid_of amb a1) L1_UID=$(uid_of late l1)

# ---- mesh-cni: the synced gate, then enrollment --------------------------------------------------
cni_conflist "$WORK/net.conflist"
CNI_FLAGS=(--kubeconfig "$K/kubeconfig")
start_cni() { # log
    start_bg "$1" ip netns exec "$N1" "$BIN/mesh-cni" --zds-socket "$ZDS" --node node-1 \
        --plugin-socket "$PLUGIN_SOCK" "${CNI_FLAGS[@]}"
    CNI_PID=$LAST_PID
}
zds_open() { test -S "$ZDS"; }
kube_stop_apiserver "$K"
start_cni "$WORK/cni.log"
sleep 2
check "mesh-cni with the API server down: no ZDS socket after 2 s (nothing listed yet)" sh -c "! test -S '$ZDS'"
check "... and it says why" grep -q 'waiting for the API server' "$WORK/cni.log"
kube_start_apiserver "$K"
check "the ZDS socket opens once the pods and namespaces are listed (30 s)" wait_secs 30 zds_open
check "mesh-cni listed node-1's pods only (a1, l1; not node-2's b1)" \
    grep -q 'pods of the node and namespaces listed in [0-9]* ms: 2 pods' "$WORK/cni.log"
start_ztunnel_xds "$N1" node-1 "$STATE" "$WORK/zt.log" --zds-socket "$ZDS"
ZT=$LAST_PID

check "amb/a1 (node-1, ambient): ztunnel listens in its namespace (10 s)" wait_secs 10 zt_listens "$PA1"
check "... the redirection rules are in it" has_rules "$PA1"
check "... ztunnel took it over ZDS with its uid" grep -q "pod amb/a1 ($A1_UID) enrolled" "$WORK/zt.log"
check "... kubectl shows ambient.istio.io/redirection=enabled (10 s)" kube_wait 10 annotated amb a1
b1_out() { no_rules "$PB1" && no_listener "$PB1"; }
check "amb/b1 (node-2): no rules, ztunnel does not listen" b1_out
check "... ztunnel was not given it" sh -c "! grep -q 'pod amb/b1' '$WORK/zt.log'"
check "... and it is not annotated" unannotated amb b1
check "late/l1 (namespace not ambient): no rules" no_rules "$PL1"
check "... not annotated" unannotated late l1

# ---- a pod whose namespace reaches mesh-cni through the CNI plugin ------------------------------
pod_yaml amb a2 node-1 | kc create -f - >/dev/null
A2_UID=$(uid_of amb a2)
if cni_run ADD "$PA2" ctr-a2 amb a2 "$A2_UID" >"$WORK/a2.result"; then
    check "amb/a2 through the CNI plugin: ztunnel listens in it when ADD returns" zt_listens "$PA2"
    check "... the rules are in it when ADD returns" has_rules "$PA2"
    pass "amb/a2: ADD (bridge, host-local, amesh-cni) succeeds"
else
    fail "amb/a2: ADD (bridge, host-local, amesh-cni) succeeds"; cat "$WORK/a2.result"
fi
A2_IP=$(result_ip <"$WORK/a2.result" || echo 198.18.60.99)
kube_pod_running "$K" amb a2 "$A2_IP"
check "... mesh-cni answered the plugin: enrolled" grep -q "plugin ADD amb/a2 (/run/netns/$PA2): enrolled" "$WORK/cni.log"
check "... kubectl shows ambient.istio.io/redirection=enabled (10 s)" kube_wait 10 annotated amb a2

# ---- enrollment by namespace label, live --------------------------------------------------------
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
poll_ms() { # secs command...: runs it every 10 ms until it succeeds
    local end=$(( $(now_ms) + $1 * 1000 )); shift
    until "$@" >/dev/null 2>&1; do [ "$(now_ms)" -lt "$end" ] || return 1; sleep 0.01; done
}
t0=$(now_ms)
kc label namespace late istio.io/dataplane-mode=ambient >/dev/null
check "late labelled ambient: ztunnel listens in l1 without a restart (10 s)" poll_ms 10 zt_listens "$PL1"
T_IN=$(( $(now_ms) - t0 ))
check "... the rules are in l1" has_rules "$PL1"
check "... annotated (kubectl, 10 s)" kube_wait 10 annotated late l1
T_ANN=$(( $(now_ms) - t0 ))
say "label -> l1 in the mesh (ztunnel listening) ${T_IN} ms; -> annotation seen by kubectl ${T_ANN} ms (kubectl's polling included); $(grep -o 'late/l1: annotated .*' "$WORK/cni.log" | tail -1)"

t0=$(now_ms)
kc label namespace late istio.io/dataplane-mode- >/dev/null
check "label removed: ztunnel no longer listens in l1 (10 s)" poll_ms 10 no_listener "$PL1"
T_OUT=$(( $(now_ms) - t0 ))
check "... the rules are gone from l1" no_rules "$PL1"
check "... ztunnel removed it" grep -q 'pod late/l1 removed' "$WORK/zt.log"
check "... the annotation is gone (kubectl, 10 s)" kube_wait 10 unannotated late l1
say "label removed -> l1 out of the mesh ${T_OUT} ms; $(grep -o 'late/l1: ambient.istio.io/redirection removed.*' "$WORK/cni.log" | tail -1)"
kc label namespace late istio.io/dataplane-mode=ambient >/dev/null
check "labelled again: l1 back in the mesh, annotated (10 s)" kube_wait 10 annotated late l1
check "... and ztunnel listens in it" wait_secs 10 zt_listens "$PL1"

# ---- mesh-cni restarted while the API server is down: no ZDS until listed, nothing dropped ---------
check "mesh-cni exits 0 on SIGTERM, sanitizers clean" stop_ztunnel "$CNI_PID" "$WORK/cni.log"
kube_stop_apiserver "$K"
start_cni "$WORK/cni2.log"
sleep 3
check "restarted mesh-cni, API server down: no ZDS socket after 3 s" sh -c "! test -S '$ZDS'"
check "... ztunnel still serves a1, a2 and l1" in_mesh "$PA1" "$PA2" "$PL1"
kube_start_apiserver "$K"
check "the ZDS socket opens once listed (30 s)" wait_secs 30 zds_open
check "ztunnel got the new agent's snapshot of 3 pods (15 s)" wait_secs 15 grep -q 'connected; snapshot of 3 workloads' "$WORK/cni2.log"
sleep 1
check "... and dropped no pod" sh -c "! grep -q 'not in the node agent.s snapshot' '$WORK/zt.log'"
check "... a1, a2, l1 still in the mesh" in_mesh "$PA1" "$PA2" "$PL1"
check "... still annotated" all_annotated amb/a1 amb/a2 late/l1
check "the restarted agent patched nothing (the annotations were right)" sh -c "! grep -q ': annotated ambient' '$WORK/cni2.log'"


# ---- an API server restart, then etcd compacted past the agent's resourceVersion ------------------
kube_restart_apiserver "$K"
pod_yaml amb a3 node-1 "$PA3" | kc create -f - >/dev/null
kube_pod_running "$K" amb a3 198.18.61.13
check "after an API server restart: a pod created then is enrolled (30 s: the watch is re-established)" \
    wait_secs 30 zt_listens "$PA3"
check "... and annotated (10 s)" kube_wait 10 annotated amb a3
check "... no pod left the mesh" sh -c "! grep -q 'left the mesh' '$WORK/cni2.log'"

kube_stop_apiserver "$K"
ETCD="ip netns exec $N1 etcdctl --endpoints http://127.0.0.1:2379"
check "late/l1 deleted in etcd behind the API server" sh -c "$ETCD del /registry/pods/late/l1 | grep -qx 1"
rev=$($ETCD endpoint status -w json | $PY -c 'import json,sys; print(json.load(sys.stdin)[0]["Status"]["header"]["revision"])')
check "etcd compacted to revision $rev" sh -c "$ETCD compact $rev >/dev/null"
kube_start_apiserver "$K"
# The relist waits for the reflector's backoff, which two outages may have raised to its 30 s
# cap, once before the re-watch that is told 410 and maybe once more before the relist; a loaded
# CI machine adds the API server's start (seen: just over 45 s in a full ASan run).
check "the vanished l1 leaves the mesh (relist, synthesised delete; 90 s)" \
    wait_secs 90 grep -q 'late/l1 left the mesh (pod deleted)' "$WORK/cni2.log"
check "... its rules are gone" no_rules "$PL1"
check "... ztunnel no longer listens in it (5 s)" wait_secs 5 no_listener "$PL1"
check "... the pod watch was told its version is too old and relisted" \
    grep -Eq 'watch [^ ]*pods.*relisting' "$WORK/cni2.log"
check "... a1, a2 and a3 stayed in the mesh" sh -c "! grep -Eq 'amb/a[123] left the mesh' '$WORK/cni2.log'"
check "... ztunnel listens in them" in_mesh "$PA1" "$PA2" "$PA3"
check "... and they are annotated" all_annotated amb/a1 amb/a2 amb/a3

check "mesh-cni exits 0 on SIGTERM, sanitizers clean" stop_ztunnel "$CNI_PID" "$WORK/cni2.log"
say "patches: first agent: $(grep -o 'redirection annotation: .*' "$WORK/cni.log"); restarted agent: $(grep -o 'redirection annotation: .*' "$WORK/cni2.log")"
check "the first agent sent 5 patches, all succeeded (a1, a2, l1 on, l1 off, l1 on)" \
    grep -q 'redirection annotation: 5 patches sent, 5 succeeded, 0 failed' "$WORK/cni.log"
check "the restarted one sent 1 (a3)" \
    grep -q 'redirection annotation: 1 patches sent, 1 succeeded, 0 failed' "$WORK/cni2.log"
check "ztunnel exits 0 on SIGTERM, sanitizers clean" stop_ztunnel "$ZT" "$WORK/zt.log"
check "meshd exits cleanly" stop_meshd "$MESHD_PID" "$WORK/meshd.log"
finish
