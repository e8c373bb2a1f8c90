#!/usr/bin/env bash
# A proxy with exactly one identity, built only from lib/identity and lib/ads
# (tests/support/ident_probe.c, shaped like the waypoint): it gets its
# certificate from meshd's CA with its node token and its config over delta
# ADS, as ztunnel does, under the same rules.
#
#   netns node-1: meshd (198.18.0.1:15012), the probe
#
# Checks: the certificate for the probe's service account (which runs on
# node-1) is signed; meshd sees the probe's "router~" node id; the Address
# push is ACKed; an identity of another node is refused (the node
# restriction) and retried with back-off; a resource the probe's handler
# refuses is NACKed to meshd with the handler's message.
. "$(dirname "$0")/lib.sh"
require_root
topo_two_nodes 4
CFG=$WORK/config
STATE=$WORK/state
PROBE=$BIN/../tests/ident_probe
write_k8s_config "$CFG"
start_meshd "$CFG" "$STATE" "$WORK/meshd.log" --log-level debug
(umask 077; "$BIN/meshd" token --state-dir "$STATE" --node node-1 >"$WORK/token-node-1")

probe() { # log extra-args...
    local log=$1; shift
    ip netns exec "$N1" "$PROBE" --xds-address "$MESHD_ADDR" --root-cert "$STATE/root-cert.pem" \
        --token "$WORK/token-node-1" --node node-1 --namespace default --name wp-1 "$@" >"$log" 2>&1
}

ID=spiffe://cluster.local/ns/default/sa/client
check "probe with service account client (on node-1) gets certificate and config" \
    probe "$WORK/probe-ok.log" --service-account client
cat "$WORK/probe-ok.log"
check "its certificate is for its one identity" grep -q "^certificate $ID valid until" "$WORK/probe-ok.log"
check "meshd's CA signed it for node-1" grep -q "CA: signed $ID for node node-1" "$WORK/meshd.log"
check "the Address push arrived and was ACKed (4 resources)" grep -qx "synced 4 addresses" "$WORK/probe-ok.log"
check "meshd saw the probe's router node id" \
    grep -q "xDS stream from router~~wp-1.default~default.svc.cluster.local (node node-1)" "$WORK/meshd.log"

refused() { ! probe "$WORK/probe-refused.log" --service-account server --seconds 3; }
check "service account server (runs on node-2 only): no certificate within 3 s" refused
cat "$WORK/probe-refused.log"
check "the refusal is meshd's status 16, retried with back-off" sh -c "
    grep -q 'timeout: certificate missing: CA answered status 16' '$WORK/probe-refused.log' &&
    [ \$(grep -c 'certificate for spiffe://cluster.local/ns/default/sa/server: CA answered status 16.*retrying in' '$WORK/probe-refused.log') -ge 2 ]"
check "meshd logged the node restriction" grep -q "CA: refused node node-1" "$WORK/meshd.log"

check "probe refusing one Address resource gets its certificate and handles the push" \
    probe "$WORK/probe-nack.log" --service-account client --refuse Kubernetes//Pod/default/server
cat "$WORK/probe-nack.log"
check "the probe NACKed and logged why" grep -q "rejected part of a push: .*refused by the probe" \
    "$WORK/probe-nack.log"
check "meshd got the NACK with the handler's message" \
    grep -q "rejected 1 resources of push .*Kubernetes//Pod/default/server.*refused by the probe" \
    "$WORK/meshd.log"
check "the rest of the push applied (3 of 4), and a NACKed push does not count as synced" sh -c "
    grep -qx 'push applied: 3 addresses' '$WORK/probe-nack.log' && ! grep -q '^synced' '$WORK/probe-nack.log'"
check "no sanitizer report from the probe" \
    sh -c "! grep -q -E 'AddressSanitizer|LeakSanitizer|runtime error' $WORK/probe-*.log"
check "meshd exits 0 on SIGTERM, sanitizers clean" stop_meshd "$MESHD_PID" "$WORK/meshd.log"
finish
