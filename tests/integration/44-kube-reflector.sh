#!/usr/bin/env bash
# lib/kube's reflectors against the REAL kube-apiserver v1.20.2 (tests/support/kube.sh):
# tests/support/kube_reflect runs reflectors for ConfigMaps, Namespaces and Secrets (plus a CRD
# group that does not exist and discovery.k8s.io/v1, which 1.20 does not serve) and keeps its
# view in a file; after each step the view must equal `kubectl get` within a bounded wait:
#   - the initial sync of 1,000 ConfigMaps (time and memory printed as figures);
#   - creates, modifications and deletes with kubectl, and 3 rounds of random batches;
#   - the API server stopped, ConfigMaps deleted behind its back in etcd, etcd compacted, the
#     server started again: the watch from the old resourceVersion is too old (410), the
#     reflector relists from "" and reports the vanished objects as removed;
#   - etcd compacted under a running server, then a plain restart: changes keep flowing;
#   - the unserved kinds are reported absent (synced, served=false), not fatal;
#   - a kubeconfig with a client certificate and relative file paths works as well;
#   - SIGTERM: the program exits 0 (ASan: no leak).
. "$(dirname "$0")/lib.sh"
. "$ROOT/tests/support/kube.sh"
require_root
kube_require || exit 1
PROG=$BIN/../tests/kube_reflect
[ -x "$PROG" ] || { echo "FAIL: $PROG not built"; exit 1; }

ip netns add "$N1"
K=$WORK/kube
kube_up "$N1" "$K"
kc() { kube_kubectl "$K" "$@"; }
etcdctl_() { ETCDCTL_API=3 ip netns exec "$N1" etcdctl --endpoints=http://127.0.0.1:2379 "$@"; }
VIEW=$WORK/view
N=${KUBE44_N:-1000} # ConfigMaps; more for figures (KUBE44_N=5000)

cms() { # first count [value]: a List of ConfigMaps t44/cm-NNNN
    local i
    printf 'apiVersion: v1\nkind: List\nitems:\n'
    for ((i = $1; i < $1 + $2; i++)); do
        printf -- '- {apiVersion: v1, kind: ConfigMap, metadata: {name: cm-%04d, namespace: t44}, data: {v: "%s"}}\n' \
            "$i" "${3:-$i}"
    done
}
kc create namespace t44 >/dev/null
cms 0 "$N" >"$WORK/cms.yaml"
t=$(date +%s.%N)
kc create -f "$WORK/cms.yaml" >/dev/null
say "created $N ConfigMaps in $(printf %.1f "$(echo "$(date +%s.%N) - $t" | bc)") s"

expected() {
    local r
    for r in configmaps namespaces secrets; do
        kc get "$r" -A -o jsonpath='{range .items[*]}{.metadata.namespace}/{.metadata.name} {.metadata.resourceVersion}{"\n"}{end}' |
            sed "s|^|$r |"
    done | LC_ALL=C sort
}
viewed() { grep -v '^#' "$VIEW" 2>/dev/null | LC_ALL=C sort; }
same() { [ -f "$VIEW" ] && diff <(expected) <(viewed) >"$WORK/diff" 2>&1; }
# The view equals kubectl's within 30 s; on failure the difference is printed.
converges() {
    if WAIT_SECS=30 wait_for same; then return 0; fi
    echo "view differs from kubectl get (< kubectl, > view):"; head -20 "$WORK/diff"; return 1
}
stat_of() { # plural field(1=lists 2=relists 3=watches 4=events 5=bookmarks 6=expired 7=errors)
    awk -v p="$1" -v f="$2" '$1 == "#stats" && $2 == p { print $(2 + f) }' "$VIEW"
}

# The baseline: the same program watching only Namespaces (a handful of objects).
start_bg "$WORK/base.log" ip netns exec "$N1" "$PROG" "$K/kubeconfig" "$WORK/base" v1/namespaces/Namespace
BASE_PID=$LAST_PID
start_bg "$WORK/reflect.log" ip netns exec "$N1" "$PROG" "$K/kubeconfig" "$VIEW" \
    v1/configmaps/ConfigMap v1/namespaces/Namespace v1/secrets/Secret \
    amesh-absent.example.com/v1/widgets/Widget discovery.k8s.io/v1/endpointslices/EndpointSlice
PID=$LAST_PID
check "initial sync: the view of $N ConfigMaps, Namespaces and Secrets equals kubectl get" converges
SYNC_MS=$(awk '$1 == "configmaps" { print $3 }' "$VIEW.sync")
sleep 1
rss() { awk '/^VmRSS/ { print $2 }' "/proc/$1/status"; }
R1=$(rss "$PID"); R0=$(rss "$BASE_PID")
say "figures: configmaps synced ($(awk '$1 == "configmaps" { print $2 }' "$VIEW.sync") objects) ${SYNC_MS} ms after start; RSS $R1 kB vs $R0 kB without them: $(( (R1 - R0) * 1024 / N )) bytes per ConfigMap ($(basename "$(dirname "$BIN")"))"
check "the unserved kinds are synced as absent, not fatal" \
    sh -c "grep -q '^#synced widgets absent' '$VIEW' && grep -q '^#synced endpointslices absent' '$VIEW'"
check "the first list was one list, no relist, no error" \
    test "$(stat_of configmaps 1) $(stat_of configmaps 2) $(stat_of configmaps 7)" = "1 0 0"

# ---- changes through kubectl ------------------------------------------------------------------
kc patch configmap -n t44 cm-0001 --type merge -p '{"data":{"v":"changed"}}' >/dev/null
kc delete configmap -n t44 cm-0002 cm-0003 >/dev/null
kc create configmap -n t44 extra --from-literal=a=b >/dev/null
kc create secret generic -n t44 s1 --from-literal=k=v >/dev/null
kc create namespace t44b >/dev/null
check "a patch, two deletes and three creates reach the view" converges
for round in 1 2 3; do
    # random: 100 modified, 30 deleted, 20 created
    first=$(( RANDOM % (N - 200) + 10 ))
    cms "$first" 100 "r$round" >"$WORK/mod.yaml"
    kc apply -f "$WORK/mod.yaml" >/dev/null 2>&1 || true
    names=$(for ((i = first + 100; i < first + 130; i++)); do printf 'cm-%04d ' "$i"; done)
    kc delete configmap -n t44 --ignore-not-found $names >/dev/null
    cms $(( N + round * 100 )) 20 >"$WORK/new.yaml"
    kc create -f "$WORK/new.yaml" >/dev/null
    check "random round $round (100 modified, 30 deleted, 20 created) reaches the view" converges
done
EV1=$(stat_of configmaps 4)
say "configmaps: $EV1 watch events so far"

# ---- compaction behind a stopped server: 410, relist from "", removals synthesised -----------
kube_stop_apiserver "$K"
for i in 0010 0011 0012; do etcdctl_ del "/registry/configmaps/t44/cm-$i" >/dev/null; done
REV=$(etcdctl_ endpoint status -w json | $PY -c 'import json,sys; print(json.load(sys.stdin)[0]["Status"]["header"]["revision"])')
etcdctl_ compact "$REV" >/dev/null
kube_start_apiserver "$K"
check "after deletes in etcd, compaction and a restart, the view equals kubectl again (cm-0010..12 gone)" converges
check "the view no longer has cm-0010" sh -c "! grep -q 'cm-0010 ' '$VIEW'"
check "the watch was too old (expired counted) and the reflector relisted" \
    sh -c "[ \"\$(awk '\$1 == \"#stats\" && \$2 == \"configmaps\" { print \$8, \$4 }' '$VIEW')\" != '0 0' ] &&
           [ \"\$(awk '\$1 == \"#stats\" && \$2 == \"configmaps\" { print \$8 }' '$VIEW')\" -ge 1 ] &&
           [ \"\$(awk '\$1 == \"#stats\" && \$2 == \"configmaps\" { print \$4 }' '$VIEW')\" -ge 1 ]"
say "configmaps stats: lists relists watches events bookmarks expired errors = $(awk '$1 == "#stats" && $2 == "configmaps" { $1 = $2 = ""; print }' "$VIEW")"

# ---- compaction under a running server, then a plain restart ---------------------------------
kc patch configmap -n t44 cm-0004 --type merge -p '{"data":{"v":"before-compact"}}' >/dev/null
REV=$(etcdctl_ endpoint status -w json | $PY -c 'import json,sys; print(json.load(sys.stdin)[0]["Status"]["header"]["revision"])')
check "etcd compacted to its current revision $REV under the running server" etcdctl_ compact "$REV"
kc patch configmap -n t44 cm-0007 --type merge -p '{"data":{"v":"after-compact"}}' >/dev/null
check "a change after compaction under a running server reaches the view" converges
kube_restart_apiserver "$K"
kc delete configmap -n t44 cm-0005 >/dev/null
kc patch configmap -n t44 cm-0006 --type merge -p '{"data":{"v":"after-restart"}}' >/dev/null
check "changes after a plain apiserver restart reach the view" converges

# ---- a client certificate instead of a token, files named relative to the kubeconfig --------
kube_client_cert "$K" amesh-cert-admin system:masters
cat >"$K/pki/cert.kubeconfig" <<EOF
apiVersion: v1
kind: Config
current-context: c
contexts: [{name: c, context: {cluster: k, user: u}}]
clusters: [{name: k, cluster: {server: '$(cat "$K/server")', certificate-authority: ca.crt}}]
users: [{name: u, user: {client-certificate: amesh-cert-admin.crt, client-key: amesh-cert-admin.key}}]
EOF
start_bg "$WORK/cert.log" ip netns exec "$N1" "$PROG" "$K/pki/cert.kubeconfig" "$WORK/certview" \
    v1/namespaces/Namespace
CERT_PID=$LAST_PID
cert_same() {
    [ -f "$WORK/certview" ] &&
        diff <(expected | grep '^namespaces ') <(grep -v '^#' "$WORK/certview" | LC_ALL=C sort) >/dev/null
}
cert_converges() { WAIT_SECS=20 wait_for cert_same; }
check "a kubeconfig with a client certificate (system:masters) and relative file paths sees the Namespaces" \
    cert_converges
kill -TERM "$CERT_PID" 2>/dev/null || true

kill -TERM "$PID"
st=0
for _ in $(seq 50); do kill -0 "$PID" 2>/dev/null || break; sleep 0.1; done
wait "$PID" || st=$?
check "SIGTERM: kube_reflect exits 0 (no leak under ASan)" test "$st" = 0
kill -TERM "$BASE_PID" 2>/dev/null || true
finish
