#!/usr/bin/env bash
# amesh-cni when the node agent is not there, slow, or has not seen the pod yet, and
# mesh-cni's plugin socket under a misbehaving caller. Set-up as test 52 (cni_lib.sh).
#
#   agent down        ADD fails with code 11 (try again later), a pod of an excluded
#                     namespace and a non-Kubernetes container pass; DEL succeeds
#   agent silent      ADD fails with code 11 after timeoutMs, not later
#   agent garbage     ADD fails with code 5 (I/O failure)
#   agent slow        ADD waits for it within timeoutMs and succeeds
#   pod not in store  ADD answers "pending" after --plugin-wait-ms; the pod is enrolled
#                     when it appears; the plugin giving up first costs the agent nothing
#   no ztunnel        ADD of an ambient pod fails with code 11; once ztunnel is there,
#                     the next ADD enrolls and the pending pod is handed over too
#   agent restart     the sandboxes it was told of survive it (files), so ztunnel keeps
#                     the pods; one whose namespace went meanwhile is forgotten
#   flood             connections over the cap are closed at once, silent ones after
#                     2 s, oversized and bad requests are refused; the agent still serves;
#                     out of descriptors, it pauses accepting instead of spinning
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/cni_lib.sh"
require_root

PROBE="$PY $ROOT/tests/support/cni_agent_probe.py"
P1=amt-cf-a-$ID P2=amt-cf-b-$ID P3=amt-cf-c-$ID
# code_is CODE FILE: the runtime printed the spec's error object with CODE.
code_is() { $PY -c "
import json,sys
e=json.load(open(sys.argv[2]))
sys.exit(0 if e.get('code')==int(sys.argv[1]) and e.get('msg') else 1)" "$1" "$2"; }
ms_of() { cut -d. -f1 "$WORK/trace-$1/ADD-1-amesh-cni.ms"; }

mkdir -p "$CFG"
{ cni_ns_yaml demo ambient; cni_pod_yaml demo app uid-app 198.18.60.2
  cni_ns_yaml late ambient; } >"$CFG/pods.yaml"
topo_pods() { cni_pod "$P1"; cni_pod "$P2"; cni_pod "$P3"; }
topo_pods

say "agent down (no socket)"
# The node namespace exists for the bridge even before the agent does.
ip netns add "$N1"; ip -n "$N1" link set lo up
cni_conflist "$WORK/down.conflist" "$WORK/nobody.sock" 800
if cni_run ADD "$P1" d1 demo app uid-app "$WORK/down.conflist" >"$WORK/d1.out"; then
    fail "ADD of a pod fails while the agent is down"
else
    check "ADD fails with code 11 (try again later)" code_is 11 "$WORK/d1.out"
    check "... saying so" grep -q 'try again later' "$WORK/d1.out"
fi
check "DEL succeeds while the agent is down" cni_run DEL "$P1" d1 demo app uid-app "$WORK/down.conflist"
check "ADD of a pod of an excluded namespace (kube-system) passes" \
    cni_run ADD "$P2" d2 kube-system coredns uid-dns "$WORK/down.conflist"
check "... its prevResult passed through" same_json "$WORK/trace-d2/ADD-0-bridge.out" "$WORK/trace-d2/ADD-1-amesh-cni.out"
cni_run DEL "$P2" d2 kube-system coredns uid-dns "$WORK/down.conflist" >/dev/null || true
noargs() { printf '{"cniVersion":"1.0.0","name":"n","type":"amesh-cni","agentSocket":"%s","prevResult":{"cniVersion":"1.0.0"}}' "$WORK/nobody.sock" |
    env -i CNI_COMMAND=ADD CNI_CONTAINERID=x CNI_NETNS=/run/netns/$P3 CNI_IFNAME=eth0 CNI_PATH=/x "$BIN/amesh-cni"; }
out=$(noargs 2>/dev/null) || true
check "a container without Kubernetes arguments passes through" [ "$out" = '{"cniVersion":"1.0.0"}' ]
ip netns del "$N1"

say "stand-in agents: silent, garbage, slow (timeoutMs 800)"
cni_node --plugin-wait-ms 600 # the real one, for later; its own socket
for m in silent garbage slow; do
    start_bg "$WORK/fake-$m.log" ip netns exec "$N1" $PROBE serve "$WORK/$m.sock" --mode $m --delay-ms 300
    wait_for test -S "$WORK/$m.sock"
    cni_conflist "$WORK/$m.conflist" "$WORK/$m.sock" 800
done
cni_conflist "$WORK/net.conflist" # the real agent's, timeoutMs 10000
cni_run ADD "$P1" s1 demo app uid-app "$WORK/silent.conflist" >"$WORK/s1.out" && fail "silent agent: ADD fails" || {
    check "silent agent: ADD fails with code 11" code_is 11 "$WORK/s1.out"
    check "... after its timeoutMs (800 ms), not much later: $(ms_of s1) ms" sh -c "[ $(ms_of s1) -ge 780 ] && [ $(ms_of s1) -lt 2500 ]"
}
cni_run DEL "$P1" s1 demo app uid-app "$WORK/down.conflist" >/dev/null || true
cni_run ADD "$P1" g1 demo app uid-app "$WORK/garbage.conflist" >"$WORK/g1.out" && fail "garbage agent: ADD fails" ||
    check "garbage agent: ADD fails with code 5 (I/O)" code_is 5 "$WORK/g1.out"
cni_run DEL "$P1" g1 demo app uid-app "$WORK/down.conflist" >/dev/null || true
check "slow agent (300 ms): ADD waits and succeeds" cni_run ADD "$P1" w1 demo app uid-app "$WORK/slow.conflist"
check "... in 300 ms or more: $(ms_of w1) ms" [ "$(ms_of w1)" -ge 290 ]
cni_run DEL "$P1" w1 demo app uid-app "$WORK/down.conflist" >/dev/null || true

say "the real agent, no ztunnel yet (--plugin-wait-ms 600)"
if cni_run ADD "$P1" n1 demo app uid-app >"$WORK/n1.out"; then
    fail "ADD of an ambient pod fails while no ztunnel is connected"
else
    check "ADD of an ambient pod fails with code 11 while no ztunnel is connected" code_is 11 "$WORK/n1.out"
    check "... saying why" grep -q 'no ztunnel connected within 600 ms' "$WORK/n1.out"
fi
check "the runtime's DEL after the failed ADD takes the rules out" cni_run DEL "$P1" n1 demo app uid-app
check "... none left" no_rules "$P1"

say "a pod the agent's store does not have yet (late/app)"
if cni_run ADD "$P2" l1 late app uid-late >"$WORK/l1.out"; then
    pass "ADD succeeds"
else
    fail "ADD succeeds"; cat "$WORK/l1.out"
fi
check "answered pending after the agent's wait (600 ms): $(ms_of l1) ms" sh -c \
    "[ $(ms_of l1) -ge 590 ] && grep -q 'plugin ADD late/app (/run/netns/$P2): pending' '$WORK/cni.log'"
check "no rules yet" no_rules "$P2"
LATE_IP=$(result_ip <"$WORK/l1.out")
cni_pod_yaml late app uid-late "$LATE_IP" >"$CFG/late.yaml"
check "when the pod appears in the store, it is enrolled (rules in its netns)" wait_secs 5 has_rules "$P2"
# The plugin gives up before the agent decides (its timeout 300 ms < the agent's 600 ms).
cni_conflist "$WORK/short.conflist" "$PLUGIN_SOCK" 300
cni_run ADD "$P3" q1 late other uid-other "$WORK/short.conflist" >"$WORK/q1.out" &&
    fail "a plugin timing out first: ADD fails" || check "a plugin timing out first: code 11" code_is 11 "$WORK/q1.out"
check "mesh-cni sees the plugin leave and carries on" wait_secs 3 grep -q 'plugin ADD late/other: the plugin left before the answer' "$WORK/cni.log"
cni_run DEL "$P3" q1 late other uid-other >/dev/null || true

say "ztunnel connects"
cni_ztunnel
check "ztunnel takes the pod that appeared late" wait_secs 5 zt_listens "$P2"
check "ADD of the ambient pod now succeeds" cni_run ADD "$P1" n2 demo app uid-app
check "... and ztunnel listens in it when ADD returns" zt_listens "$P1"

say "mesh-cni restarts (ztunnel keeps both pods)"
# A sandbox whose namespace goes while the agent is down is forgotten at restart.
check "ADD of another pending pod (late/gone)" cni_run ADD "$P3" r1 late gone uid-gone
check "mesh-cni exits 0 on SIGTERM" stop_ztunnel "$CNI_PID" "$WORK/cni.log"
ip netns del "$P3"
cni_agent "$WORK/cni2.log"
check "ztunnel reconnects to the new mesh-cni, which sends it 2 pods" \
    wait_secs 10 grep -q 'ztunnel connected (1 now); sending 2 pods' "$WORK/cni2.log"
check "the new mesh-cni loaded the 2 live sandboxes" grep -q '2 pod sandboxes from' "$WORK/cni2.log"
check "... and forgot the one whose namespace went" grep -q 'late/gone: sandbox r1 went while we were away' "$WORK/cni2.log"
sleep 1 # the snapshot and its acks (what must not happen cannot be waited for)
check "ztunnel dropped neither pod" sh -c "! grep -q 'not in the node agent.s snapshot: dropping it' '$WORK/zt.log'"
check "ztunnel still listens in both" sh -c "$(declare -f zt_listens); zt_listens $P1 && zt_listens $P2"
check "CHECK of the enrolled pod after the restart" cni_run CHECK "$P1" n2 demo app uid-app

say "a misbehaving caller on the plugin socket"
ip netns exec "$N1" $PROBE flood "$PLUGIN_SOCK" --conns 100 >"$WORK/flood.json"
say "flood: $(cat "$WORK/flood.json")"
check "100 silent connections: 36 over the cap (64) closed at once, the rest after 2 s" $PY -c "
import json; f=json.load(open('$WORK/flood.json'))
assert f['closed_at_once']==36 and f['closed_later']==64 and f['still_open']==0 and 1.5<=f['last_s']<=4, f"
check "an oversized request (9000 bytes) is refused (closed)" \
    [ "$(ip netns exec "$N1" $PROBE send "$PLUGIN_SOCK" --bytes 9000)" = closed ]
check "a request that is not one is answered failed" sh -c \
    "ip netns exec $N1 $PROBE send $PLUGIN_SOCK --raw '{\"v\":1,\"cmd\":\"ADD\"}' | grep -q '\"verdict\":\"failed\"'"
check "a request of another version is answered failed" sh -c \
    "ip netns exec $N1 $PROBE send $PLUGIN_SOCK --raw '{\"v\":2}' | grep -q '\"verdict\":\"failed\"'"
check "the agent still serves: CHECK of the enrolled pod" cni_run CHECK "$P1" n2 demo app uid-app
cni_run DEL "$P1" n2 demo app uid-app >/dev/null && cni_run DEL "$P2" l1 late app uid-late >/dev/null &&
    pass "DEL of both pods succeeds" || fail "DEL of both pods succeeds"
check "no rules left in either" sh -c "! ip netns exec $P1 iptables-save | grep -q ISTIO_ && ! ip netns exec $P2 iptables-save | grep -q ISTIO_"

say "out of descriptors (a mesh-cni limited to 30): accept pauses, it does not spin"
mkdir -p "$WORK/emf"
start_bg "$WORK/emf.log" ip netns exec "$N1" prlimit --nofile=30:30 "$BIN/mesh-cni" \
    --zds-socket "$WORK/emf/zds.sock" --config-dir "$WORK/emf" --node node-1 \
    --plugin-socket "$WORK/emf/p.sock"
EMF=$LAST_PID
wait_for test -S "$WORK/emf/p.sock"
EMF_PID=$(pgrep -f "mesh-cni --zds-socket $WORK/emf/zds.sock" | head -1)
start_bg "$WORK/emf-flood.json" ip netns exec "$N1" $PROBE flood "$WORK/emf/p.sock" --conns 60
sleep 0.3
cpu() { awk '{print $14 + $15}' "/proc/$EMF_PID/stat"; }
C0=$(cpu); sleep 1.5; C1=$(cpu)
say "CPU of the descriptor-starved mesh-cni over 1.5 s: $((C1 - C0)) ticks (100 = one core for 1 s)"
check "it does not spin on accept (under 15 ticks)" [ $((C1 - C0)) -lt 15 ]
check "it said why, rate-limited" grep -q 'accept: Too many open files' "$WORK/emf.log"
wait "${PIDS[-1]}" || true
check "the starved mesh-cni closed every connection in the end" $PY -c "
import json; f=json.load(open('$WORK/emf-flood.json')); assert f['still_open']==0, f"
check "the starved mesh-cni exits 0 on SIGTERM, sanitizers clean" stop_ztunnel "$EMF" "$WORK/emf.log"

check "ztunnel exits 0 on SIGTERM, sanitizers clean" stop_ztunnel "$ZT_PID" "$WORK/zt.log"
check "mesh-cni exits 0 on SIGTERM, sanitizers clean" stop_ztunnel "$CNI_PID" "$WORK/cni2.log"
check "meshd exits 0 on SIGTERM, sanitizers clean" stop_meshd "$MESHD_PID" "$WORK/meshd.log"
check "amesh-cni never reported a sanitizer error" sh -c "! grep -q -E 'ERROR: AddressSanitizer|runtime error' $WORK/trace-*/*.err"
finish
