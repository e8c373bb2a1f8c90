#!/usr/bin/env bash
# The CNI plugin (amesh-cni) called exactly as a container runtime calls it: libcni's
# conflist rules (tests/support/cni_runtime.py), chained after Debian's reference
# plugins (bridge + host-local, 198.18.60.0/24), with CNI_* variables and the
# Kubernetes CNI_ARGS; mesh-cni (--plugin-socket) and a real ztunnel on the node.
#
# Checks: the pod gets its address from bridge/host-local; amesh-cni passes
# prevResult through (the same JSON as bridge's result); when ADD returns, an ambient
# pod already has the redirection rules (golden) and ztunnel listens in its namespace
# (the app cannot start outside the mesh); a pod of a non-ambient namespace is passed
# through untouched; CHECK answers (and fails for a sandbox the agent does not know);
# VERSION lists 0.3.0 - 1.0.0; DEL takes the pod out of the mesh and ztunnel; bad
# input (not JSON, deep, huge, missing variables, wrong version, no prevResult) gets
# the spec's error object on stdout and exit status 1. Prints ADD latencies.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/cni_lib.sh"
require_root

NORM="$PY $ROOT/tests/support/inpod_save.py"
PA=amt-cp-app-$ID PW=amt-cp-web-$ID
APP_IP=198.18.60.2 WEB_IP=198.18.60.3
cni_conflist "$WORK/net.conflist"
mkdir -p "$CFG"
{ cni_ns_yaml demo ambient; cni_pod_yaml demo app uid-app $APP_IP
  cni_ns_yaml plain none; cni_pod_yaml plain web uid-web $WEB_IP; } >"$CFG/pods.yaml"
cni_node
cni_ztunnel

say "ADD of an ambient pod (demo/app)"
cni_pod "$PA"
if cni_run ADD "$PA" ctr-app demo app uid-app >"$WORK/app.result"; then
    # Nothing waited for: all of this must hold the moment ADD returns.
    check "ztunnel listens in the pod's namespace when ADD returns" zt_listens "$PA"
    check "the redirection rules are in the pod when ADD returns" has_rules "$PA"
    pass "ADD succeeds"
else
    fail "ADD succeeds"; cat "$WORK/app.result"; cat "$WORK/cni.log"
fi
T=$WORK/trace-ctr-app
check "the pod got its address from bridge/host-local" \
    [ "$(result_ip <"$WORK/app.result")" = $APP_IP ]
check "... and has it on eth0" sh -c "ip -n $PA -4 addr show eth0 | grep -q 'inet $APP_IP/24'"
check "amesh-cni was given bridge's result as prevResult" same_json "$T/ADD-0-bridge.out" "$T/ADD-1-amesh-cni.in" prevResult
check "amesh-cni printed prevResult unchanged" same_json "$T/ADD-0-bridge.out" "$T/ADD-1-amesh-cni.out"
check "the runtime's result is bridge's" same_json "$T/ADD-0-bridge.out" "$WORK/app.result"
ip netns exec "$PA" iptables-save | $NORM --ours >"$WORK/rules.txt"
$NORM --ours <"$ROOT/tests/unit/inpod/ipv4.rules" >"$WORK/golden.txt"
check "the pod's rules are the golden in-pod rules" cmp -s "$WORK/golden.txt" "$WORK/rules.txt"
check "ztunnel took the pod over ZDS" grep -q 'pod demo/app (uid-app) enrolled' "$WORK/zt.log"
check "mesh-cni: plugin ADD answered enrolled" grep -q "plugin ADD demo/app (/run/netns/$PA): enrolled" "$WORK/cni.log"
check "its default route is via the bridge (host-local's routes)" \
    sh -c "ip -n $PA route show default | grep -q 'via 198.18.60.1 dev eth0'"
check "the pod's outbound TCP goes to ztunnel (15001)" sh -c \
    "ip netns exec $PA iptables -t nat -L ISTIO_OUTPUT -n | grep -q 'redir ports 15001'"

say "ADD of a pod of a non-ambient namespace (plain/web)"
cni_pod "$PW"
if cni_run ADD "$PW" ctr-web plain web uid-web >"$WORK/web.result"; then pass "ADD succeeds"; else
    fail "ADD succeeds"; cat "$WORK/web.result"; fi
T=$WORK/trace-ctr-web
check "it got the next address" [ "$(result_ip <"$WORK/web.result")" = $WEB_IP ]
check "amesh-cni printed prevResult unchanged" same_json "$T/ADD-0-bridge.out" "$T/ADD-1-amesh-cni.out"
check "no redirection rules in it" no_rules "$PW"
check "no policy route in it" sh -c "! ip -n $PW rule | grep -q 'lookup 100'"
check "ztunnel does not listen in it" no_listener "$PW"
check "ztunnel was not given it" sh -c "! grep -q 'pod plain/web' '$WORK/zt.log'"
check "mesh-cni: plugin ADD answered not-enrolled" grep -q "plugin ADD plain/web (/run/netns/$PW): not-enrolled" "$WORK/cni.log"

say "CHECK, VERSION"
check "CHECK of the ambient pod succeeds" cni_run CHECK "$PA" ctr-app demo app uid-app
check "CHECK of the plain pod succeeds" cni_run CHECK "$PW" ctr-web plain web uid-web
# A sandbox the agent never saw (another container id): CHECK must fail.
direct() { # CMD conf-json [VAR=VALUE...]: runs amesh-cni as a runtime would; stdout
    local cmd=$1 conf=$2; shift 2
    printf '%s' "$conf" | ip netns exec "$N1" env -i CNI_COMMAND="$cmd" "$@" "$BIN/amesh-cni" 2>>"$WORK/direct.err"
}
PREV=$(cat "$WORK/app.result")
CONF="{\"cniVersion\":\"1.0.0\",\"name\":\"amtnet\",\"type\":\"amesh-cni\",\"agentSocket\":\"$PLUGIN_SOCK\",\"prevResult\":$PREV}"
KARGS="K8S_POD_NAMESPACE=demo;K8S_POD_NAME=app;K8S_POD_UID=uid-app"
ENV_OK=(CNI_CONTAINERID=ctr-other CNI_NETNS=/run/netns/$PA CNI_IFNAME=eth0 CNI_PATH=$CNI_PATH_ALL "CNI_ARGS=$KARGS")
# err_is CODE output: the spec's error object with that code (and a message, and a version).
err_is() { $PY -c "
import json,sys
e=json.loads(sys.argv[2])
sys.exit(0 if e.get('code')==int(sys.argv[1]) and e.get('msg') and e.get('cniVersion') else 1)" "$1" "$2"; }
out=$(direct CHECK "$CONF" "${ENV_OK[@]}") && rc=0 || rc=$?
check "CHECK of a sandbox the agent does not know fails (code 100, exit 1)" \
    sh -c "[ $rc = 1 ] && echo '$out' | grep -q 'knows no sandbox'"
check "... with the spec's error object" err_is 100 "$out"
ip netns exec "$N1" $CNI_RT VERSION --conflist "$WORK/net.conflist" --id v --cache "$WORK/cache" \
    --trace "$WORK/trace-version" --cni-path "$CNI_PATH_ALL" >"$WORK/version.txt" || true
check "VERSION: 0.3.0, 0.3.1, 0.4.0 and 1.0.0" $PY -c "
import json; v=json.load(open('$WORK/trace-version/VERSION-1-amesh-cni.out'))
assert v['supportedVersions']==['0.3.0','0.3.1','0.4.0','1.0.0'] and v['cniVersion']=='1.0.0', v"

say "errors: the spec's error object on stdout, exit status 1"
err_case() { # description code cmd conf env...
    local what=$1 code=$2 cmd=$3 conf=$4 out rc
    shift 4
    out=$(direct "$cmd" "$conf" "$@") && rc=0 || rc=$?
    if [ "$rc" = 1 ] && err_is "$code" "$out"; then pass "$what (code $code)"; else
        fail "$what (code $code): exit $rc, stdout: ${out:0:200}"; fi
}
err_case "not JSON" 6 ADD '{"cniVersion": ' "${ENV_OK[@]}"
err_case "nested 100 deep" 6 ADD "$(printf '%0.s[' $(seq 100))" "${ENV_OK[@]}"
err_case "a configuration over 256 KiB" 6 ADD "$(head -c 300000 /dev/zero | tr '\0' ' '){}" "${ENV_OK[@]}"
err_case "CNI_COMMAND missing" 4 "" "$CONF" "${ENV_OK[@]}"
err_case "an unknown CNI_COMMAND" 4 FROB "$CONF" "${ENV_OK[@]}"
err_case "ADD without CNI_NETNS" 4 ADD "$CONF" CNI_CONTAINERID=x CNI_IFNAME=eth0 CNI_PATH=/x "CNI_ARGS=$KARGS"
err_case "ADD without CNI_CONTAINERID" 4 ADD "$CONF" CNI_NETNS=/run/netns/$PA CNI_IFNAME=eth0 CNI_PATH=/x "CNI_ARGS=$KARGS"
err_case "CNI_ARGS not KEY=VALUE" 4 ADD "$CONF" CNI_CONTAINERID=x CNI_NETNS=/run/netns/$PA CNI_IFNAME=eth0 CNI_PATH=/x "CNI_ARGS=junk"
err_case "a pod name that is not a DNS name" 4 ADD "$CONF" CNI_CONTAINERID=x CNI_NETNS=/run/netns/$PA CNI_IFNAME=eth0 CNI_PATH=/x "CNI_ARGS=K8S_POD_NAMESPACE=demo;K8S_POD_NAME=Bad_Name"
err_case "cniVersion 9.9.9" 1 ADD '{"cniVersion":"9.9.9","name":"n","type":"amesh-cni","prevResult":{}}' "${ENV_OK[@]}"
err_case "CHECK with cniVersion 0.3.1" 1 CHECK '{"cniVersion":"0.3.1","name":"n","type":"amesh-cni","prevResult":{}}' "${ENV_OK[@]}"
err_case "ADD without prevResult (not chained)" 7 ADD '{"cniVersion":"1.0.0","name":"n","type":"amesh-cni"}' "${ENV_OK[@]}"
err_case "a prevResult address that is not one" 7 ADD '{"cniVersion":"1.0.0","name":"n","type":"amesh-cni","prevResult":{"ips":[{"address":"300.1.2.3/24"}]}}' "${ENV_OK[@]}"
err_case "timeoutMs out of range" 7 ADD '{"cniVersion":"1.0.0","name":"n","type":"amesh-cni","timeoutMs":0,"prevResult":{}}' "${ENV_OK[@]}"
err_case "duplicate keys" 6 ADD '{"cniVersion":"1.0.0","cniVersion":"1.0.0","name":"n","type":"amesh-cni"}' "${ENV_OK[@]}"
check "mesh-cni still answers after all that" cni_run CHECK "$PA" ctr-app demo app uid-app

say "DEL"
check "DEL of the ambient pod succeeds" cni_run DEL "$PA" ctr-app demo app uid-app
check "its redirection rules are gone when DEL returns" no_rules "$PA"
check "its policy route is gone" sh -c "! ip -n $PA rule | grep -q 'lookup 100'"
check "bridge removed its interface" sh -c "! ip -n $PA link show eth0 2>/dev/null"
check "ztunnel removed the pod" wait_secs 5 grep -q 'pod demo/app removed' "$WORK/zt.log"
check "ztunnel no longer listens in it" wait_secs 5 no_listener "$PA"
check "mesh-cni forgot the sandbox" grep -q "plugin DEL demo/app (/run/netns/$PA): done after [0-9]* ms: forgotten" "$WORK/cni.log"
check "DEL of the plain pod succeeds" cni_run DEL "$PW" ctr-web plain web uid-web
check "DEL again (already gone) succeeds" cni_run DEL "$PA" ctr-app demo app uid-app

say "ADD latency (5 ADD/DEL rounds each)"
median_ms() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
for i in 1 2 3 4 5; do
    cni_run ADD "$PA" lat-a$i demo app uid-app >/dev/null || fail "latency round $i: ADD (enrolled)"
    cni_run DEL "$PA" lat-a$i demo app uid-app >/dev/null || fail "latency round $i: DEL (enrolled)"
    cni_run ADD "$PW" lat-w$i plain web uid-web >/dev/null || fail "latency round $i: ADD (not enrolled)"
    cni_run DEL "$PW" lat-w$i plain web uid-web >/dev/null || fail "latency round $i: DEL (not enrolled)"
done
ENR=$(cat "$WORK"/trace-lat-a*/ADD-1-amesh-cni.ms | median_ms)
NOT=$(cat "$WORK"/trace-lat-w*/ADD-1-amesh-cni.ms | median_ms)
BR=$(cat "$WORK"/trace-lat-a*/ADD-0-bridge.ms | median_ms)
AGENT=$(grep -o 'plugin ADD demo/app (/run/netns/[^)]*): enrolled after [0-9]* ms' "$WORK/cni.log" | tail -5 |
        grep -o '[0-9]* ms$' | cut -d' ' -f1 | median_ms)
say "median ADD: amesh-cni enrolling ${ENR} ms (of which mesh-cni: ${AGENT} ms), not enrolled ${NOT} ms; bridge+host-local ${BR} ms; binaries of $BIN, process start included"
check "every round left the pod out of the mesh after DEL" no_rules "$PA"

check "ztunnel exits 0 on SIGTERM, sanitizers clean" stop_ztunnel "$ZT_PID" "$WORK/zt.log"
check "mesh-cni exits 0 on SIGTERM, sanitizers clean" stop_ztunnel "$CNI_PID" "$WORK/cni.log"
check "meshd exits 0 on SIGTERM, sanitizers clean" stop_meshd "$MESHD_PID" "$WORK/meshd.log"
check "amesh-cni never reported a sanitizer error" sh -c "! grep -q -E 'ERROR: AddressSanitizer|runtime error' $WORK/trace-*/*.err $WORK/direct.err"
finish
