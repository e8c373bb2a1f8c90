#!/usr/bin/env bash
# mesh-cni as the node's CNI installer (istio-cni's install-cni) and its search for pods that
# predate it, on the real kube-apiserver v1.20.2 (tests/support/kube.sh).
#
#   netns N1 (node-1): etcd, kube-apiserver, meshd (empty --config-dir: ztunnel only needs xDS),
#   mesh-cni --kubeconfig with --cni-bin-dir/--cni-conf-dir on directories standing for the
#   host's /opt/cni/bin and /etc/cni/net.d, and a ztunnel of node-1 fed by it (ZDS).
#   The primary configuration: 10-amtnet.conflist, Debian's bridge + host-local
#   (198.19.62.0/24); 20-later.conf comes after it and is never touched.
#   amb/old: a pod whose sandbox (a network namespace with 198.19.62.50 and a process in it)
#   exists BEFORE mesh-cni starts; plain/other likewise, in a namespace that is not ambient.
#
# Checks: amesh-cni is installed (copied, 0755, the same bytes; statically linked when the
# binary given is) and chained last in the primary conflist with its settings, the rest of the
# file as it was; the file is not rewritten when nothing changed; a rewrite of the primary by
# "its installer" gets the entry back; amb/old is found by the /proc scan and enrolled (rules,
# ztunnel took it over ZDS) with the same process (pid, namespace) and no plugin call, and
# plain/other is left alone; a new pod created through the written conflist, with the plugin
# as installed, is in the mesh when ADD returns; SIGTERM takes the entry out and removes the
# binary. A second agent on an empty conf dir is not ready until a primary appears, and with
# --cni-keep leaves its entry. Prints insert and re-insert times and the scan's figures.
. "$(dirname "$0")/lib.sh"
. "$ROOT/tests/support/kube.sh"
. "$(dirname "$0")/cni_lib.sh"
require_root
kube_require || exit 1

kc() { kube_kubectl "$K" "$@"; }
K=$WORK/kube
ZDS=$WORK/zds.sock
HB=$WORK/host/opt/cni/bin
HC=$WORK/host/etc/cni/net.d
# The plugin to install: the release build's static one when there is one (make test builds
# it); the sanitized build's amesh-cni cannot be static.
PLUGIN=${AMESH_CNI_PLUGIN:-$ROOT/build/bin/amesh-cni}
[ -x "$PLUGIN" ] || PLUGIN=$BIN/amesh-cni
mkdir -p "$HB" "$HC" "$STATE" "$CFG"
ip netns add "$N1"
kube_up "$N1" "$K"
kube_add_node "$N1" "$K" node-1 198.18.0.1

now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
poll_ms() { # secs command...: every 10 ms until it succeeds
    local end=$(( $(now_ms) + $1 * 1000 )); shift
    until "$@" >/dev/null 2>&1; do [ "$(now_ms)" -lt "$end" ] || return 1; sleep 0.01; done
}
# The primary plugin's installer: writes its file to a temporary and renames it, as they do.
primary_json() {
    cat <<JSON
{"cniVersion": "1.0.0", "name": "amtnet", "plugins": [
  {"type": "bridge", "bridge": "amcni62", "isGateway": true, "ipMasq": false,
   "ipam": {"type": "host-local", "ranges": [[{"subnet": "198.19.62.0/24", "rangeStart": "198.19.62.100"}]],
            "dataDir": "$WORK/ipam", "routes": [{"dst": "0.0.0.0/0"}]}}
]}
JSON
}
write_primary() { # dir
    primary_json >"$1/.10-amtnet.tmp" && mv "$1/.10-amtnet.tmp" "$1/10-amtnet.conflist"
}
# The JSON of the last plugin in file $1, and the file without our entry equal to the primary.
chained() { # conflist [socket]
    $PY - "$1" "${2:-$PLUGIN_SOCK}" <<'EOF'
import json, sys
c = json.load(open(sys.argv[1]))
last = c["plugins"][-1]
ok = last == {"type": "amesh-cni", "agentSocket": sys.argv[2], "logLevel": "info",
              "excludeNamespaces": ["kube-system"]}
sys.exit(0 if ok and sum(p["type"] == "amesh-cni" for p in c["plugins"]) == 1 else 1)
EOF
}
rest_as_primary() { # conflist: everything but our entry is what the primary's installer wrote
    primary_json >"$WORK/primary.json"
    $PY - "$1" "$WORK/primary.json" <<'EOF'
import json, sys
a = json.load(open(sys.argv[1])); b = json.load(open(sys.argv[2]))
a["plugins"] = [p for p in a["plugins"] if p["type"] != "amesh-cni"]
sys.exit(0 if a == b else 1)
EOF
}
not_chained() { ! grep -q amesh-cni "$1"; }

# ---- pods that exist before mesh-cni: a sandbox with an address and a process ----------------
P_OLD=amt-62o-$ID P_OTHER=amt-62x-$ID P_NEW=amt-62n-$ID
sandbox() { # netns ip host-veth: the namespace, its address (as the primary plugin gave it) on
    # a veth to the node, a process
    cni_pod "$1"
    ip -n "$1" link set lo up
    ip -n "$N1" link add "$3" type veth peer name eth0 netns "$1"
    ip -n "$1" addr add "$2/24" dev eth0
    ip -n "$1" link set eth0 up
    start_bg "$WORK/$1.app.log" ip netns exec "$1" sleep 600
}
sandbox "$P_OLD" 198.19.62.50 v62old
OLD_PID=$LAST_PID
sandbox "$P_OTHER" 198.19.62.51 v62other
ns_inode() { stat -L -c %i "$1"; }
OLD_INO=$(ns_inode "/run/netns/$P_OLD")
printf 'apiVersion: v1\nkind: Namespace\nmetadata:\n  name: amb\n  labels: {istio.io/dataplane-mode: ambient}\n---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: plain\n' |
    kc apply -f - >/dev/null
kube_pod "$K" amb old default node-1 198.19.62.50
kube_pod "$K" plain other default node-1 198.19.62.51
OLD_UID=$(kc -n amb get pod old -o jsonpath='{.metadata.uid}')

# ---- the node's CNI configuration, then meshd and mesh-cni -----------------------------------
write_primary "$HC"
printf '{"cniVersion": "0.4.0", "name": "later", "type": "ptp"}\n' >"$HC/20-later.conf"
LATER_SUM=$(sha256sum <"$HC/20-later.conf")
start_bg "$WORK/meshd.log" ip netns exec "$N1" "$BIN/meshd" --config-dir "$CFG" \
    --state-dir "$STATE" --listen 127.0.0.1:15012 --monitoring 127.0.0.1:15014
MESHD_ADDR=127.0.0.1:15012
ready_code() { # port
    ip netns exec "$N1" curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$1/readyz"
}
t0=$(now_ms)
start_bg "$WORK/cni.log" ip netns exec "$N1" "$BIN/mesh-cni" --zds-socket "$ZDS" --node node-1 \
    --kubeconfig "$K/kubeconfig" --plugin-socket "$PLUGIN_SOCK" --cni-bin-dir "$HB" \
    --cni-conf-dir "$HC" --cni-plugin-binary "$PLUGIN" --ready-port 18062
CNI_PID=$LAST_PID
check "amesh-cni chained into the primary conflist after start (10 s)" \
    poll_ms 10 chained "$HC/10-amtnet.conflist"
T_INS=$(( $(now_ms) - t0 ))
check "... last in the chain, once, with its settings (socket, log level, excluded namespaces)" \
    chained "$HC/10-amtnet.conflist"
check "... the primary's own plugins as its installer wrote them" rest_as_primary "$HC/10-amtnet.conflist"
check "... 20-later.conf (not the primary) untouched" test "$(sha256sum <"$HC/20-later.conf")" = "$LATER_SUM"
check "amesh-cni installed in the bin dir, mode 0755" test "$(stat -c %a "$HB/amesh-cni" 2>/dev/null)" = 755
check "... the same bytes as $PLUGIN" cmp -s "$PLUGIN" "$HB/amesh-cni"
if file -L "$PLUGIN" | grep -q 'statically linked'; then
    check "... statically linked (file)" sh -c "file '$HB/amesh-cni' | grep -q 'statically linked'"
    check "... ldd finds no shared library in it" sh -c "! ldd '$HB/amesh-cni' 2>&1 | grep -q '=>'"
else
    say "$PLUGIN is not static (a sanitized build only): the static checks need build/bin (make build)"
fi
check "mesh-cni ready (/readyz 200) once listed and chained (30 s)" \
    wait_secs 30 sh -c "[ \"\$(ip netns exec '$N1' curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:18062/readyz)\" = 200 ]"
WAIT_SECS=30 wait_for test -S "$ZDS" || { cat "$WORK/cni.log"; exit 1; }
start_ztunnel_xds "$N1" node-1 "$STATE" "$WORK/zt.log" --zds-socket "$ZDS"
ZT=$LAST_PID

# ---- nothing changed: the file is not rewritten ----------------------------------------------
sig() { stat -c '%i %Y.%y' "$HC/10-amtnet.conflist"; }
S1=$(sig)
touch "$HC/unrelated.txt" && sleep 1.5
check "an event in the conf dir with the entry in place: the file is not rewritten (same inode, mtime)" \
    test "$(sig)" = "$S1"

# ---- the primary's installer rewrites its file: the entry comes back --------------------------
t0=$(now_ms)
write_primary "$HC"
check "primary rewritten without amesh-cni: the entry is back (5 s)" \
    poll_ms 5 chained "$HC/10-amtnet.conflist"
T_REINS=$(( $(now_ms) - t0 ))
check "... and the rest of the file is the installer's" rest_as_primary "$HC/10-amtnet.conflist"

# ---- the pods that predate mesh-cni: found by the scan, enrolled without a restart -----------
check "amb/old (sandbox made before mesh-cni): ztunnel listens in it (15 s)" wait_secs 15 zt_listens "$P_OLD"
check "... the redirection rules are in it" has_rules "$P_OLD"
check "... ztunnel took it over ZDS with its uid" grep -q "pod amb/old ($OLD_UID) enrolled" "$WORK/zt.log"
check "... mesh-cni found its namespace by its IP" \
    grep -q "amb/old: its network namespace is /var/run/netns/$P_OLD (found by its IPs" "$WORK/cni.log"
check "... its process was not restarted (same pid, same namespace)" \
    test "$(ns_inode "/proc/$OLD_PID/ns/net")" = "$OLD_INO"
check "... and no plugin call was involved" sh -c "! grep -q 'plugin ADD amb/old' '$WORK/cni.log'"
check "plain/other (namespace not ambient): no rules, ztunnel does not listen" \
    sh -c "! ip netns exec '$P_OTHER' iptables-save | grep -q ISTIO_ && ! ip netns exec '$P_OTHER' ss -Hltn 'sport = :15001' | grep -q ."
SCAN_LINE=$(grep -o 'netns scan: .*' "$WORK/cni.log" | head -1)
say "$SCAN_LINE"

# ---- a new pod through the written conflist, with the plugin as installed ---------------------
cni_pod "$P_NEW"
kc apply -f - >/dev/null <<YAML
apiVersion: v1
kind: Pod
metadata: {name: new, namespace: amb}
spec: {nodeName: node-1, serviceAccountName: default, containers: [{name: c, image: x}]}
YAML
NEW_UID=$(kc -n amb get pod new -o jsonpath='{.metadata.uid}')
printf '{"cniVersion": "1.0.0", "name": "cni-loopback", "plugins": [{"type": "loopback"}]}\n' \
    >"$WORK/loopback.conflist"
args="IgnoreUnknown=1;K8S_POD_NAMESPACE=amb;K8S_POD_NAME=new;K8S_POD_INFRA_CONTAINER_ID=ctr-new;K8S_POD_UID=$NEW_UID"
ip netns exec "$N1" $CNI_RT ADD --conflist "$WORK/loopback.conflist" --netns "/run/netns/$P_NEW" \
    --id ctr-new --args "$args" --cache "$WORK/cache" --trace "$WORK/trace-lo" \
    --cni-path "$CNI_BIN" >/dev/null
# CNI_PATH: the reference plugins and the bin dir mesh-cni installed into, not the build's.
if ip netns exec "$N1" $CNI_RT ADD --conflist "$HC/10-amtnet.conflist" --netns "/run/netns/$P_NEW" \
    --id ctr-new --args "$args" --cache "$WORK/cache" --trace "$WORK/trace-new" \
    --cni-path "$CNI_BIN:$HB" >"$WORK/new.result"; then
    pass "amb/new: ADD through the written conflist (bridge, host-local, the installed amesh-cni)"
    check "... ztunnel listens in it when ADD returns" zt_listens "$P_NEW"
    check "... the rules are in it" has_rules "$P_NEW"
else
    fail "amb/new: ADD through the written conflist (bridge, host-local, the installed amesh-cni)"
    cat "$WORK/new.result"
fi
check "... the installed amesh-cni ran (its trace)" test -s "$WORK/trace-new/ADD-1-amesh-cni.out"
check "... mesh-cni answered it: enrolled" grep -q "plugin ADD amb/new (/run/netns/$P_NEW): enrolled" "$WORK/cni.log"

# ---- SIGTERM: the entry out, the binary removed -------------------------------------------------
kill -TERM "$CNI_PID"
WAIT_SECS=10 wait_for sh -c "! kill -0 $CNI_PID 2>/dev/null"
check "after SIGTERM: amesh-cni is no longer in the primary conflist" not_chained "$HC/10-amtnet.conflist"
check "... which is the primary's own chain again" rest_as_primary "$HC/10-amtnet.conflist"
check "... the binary is removed from the bin dir" test ! -e "$HB/amesh-cni"
check "... the enrolled pods keep their rules" has_rules "$P_OLD"

# ---- no primary configuration yet; --cni-keep ----------------------------------------------------
HC2=$WORK/host2/net.d
mkdir -p "$HC2" "$WORK/cfg2"
start_bg "$WORK/cni2.log" ip netns exec "$N1" "$BIN/mesh-cni" --zds-socket "$WORK/zds2.sock" \
    --node node-1 --config-dir "$WORK/cfg2" --plugin-socket "$WORK/p2.sock" --host-proc none \
    --cni-conf-dir "$HC2" --cni-keep --ready-port 18063
CNI2=$LAST_PID
WAIT_SECS=10 wait_for test -S "$WORK/zds2.sock"
check "an empty conf dir: mesh-cni says it waits for the primary configuration (5 s)" \
    wait_secs 5 grep -q "no CNI configuration in $HC2 yet: waiting" "$WORK/cni2.log"
check "... and is not ready (/readyz 503)" test "$(ready_code 18063)" = 503
write_primary "$HC2"
check "the primary appears: amesh-cni chained into it (5 s)" poll_ms 5 chained "$HC2/10-amtnet.conflist" "$WORK/p2.sock"
check "... ready (/readyz 200)" wait_secs 5 sh -c "[ \"\$(ip netns exec '$N1' curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:18063/readyz)\" = 200 ]"
kill -TERM "$CNI2"
WAIT_SECS=10 wait_for sh -c "! kill -0 $CNI2 2>/dev/null"
check "--cni-keep: the entry stays after SIGTERM" chained "$HC2/10-amtnet.conflist" "$WORK/p2.sock"

say "insert after start ${T_INS} ms (mesh-cni's own count: $(grep -o 'chained into [^ ]*, [0-9]* ms after start' "$WORK/cni.log" | grep -o '[0-9]* ms' | head -1)); re-insert after the primary's rewrite ${T_REINS} ms (polled every 10 ms)"
finish
