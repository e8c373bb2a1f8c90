#!/bin/bash
# ztunnel_config.sh MESHCTL - meshctl ztunnel-config against saved dumps and a
# fake admin port: output compared with golden files, errors with their
# message and exit code.
#
#   tests/unit/meshctl/*.json         dumps: amesh_local (a real local-mode
#                                     ztunnel), amesh_proposed (the fields
#                                     asked of admin.c), ztunnel_istio (Istio's),
#                                     waypoint_local (a waypoint's, waypoint-config)
#   tests/unit/meshctl/golden/*.txt   expected output; UPDATE=1 rewrites them
set -u

M=${1:?usage: ztunnel_config.sh MESHCTL}
HERE=$(cd "$(dirname "$0")" && pwd)
FIX=$HERE/../unit/meshctl
GOLD=$FIX/golden
PY=${PYTHON:-python3}
# Certificate validity is judged at this instant: 2026-11-26T12:00:00Z.
export MESHCTL_NOW=1795694400
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
FAILS=0
PASSES=0
TMP=$(mktemp -d /tmp/meshctl-test.XXXXXX)
SERVER=
trap 'stop_server; rm -rf "$TMP"' EXIT

ok() { PASSES=$((PASSES + 1)); printf 'ok - %s\n' "$*"; }
not_ok() { FAILS=$((FAILS + 1)); printf 'not ok - %s\n' "$*"; }

# golden NAME ARGS...: stdout must equal golden/NAME.txt, exit 0, stderr empty.
golden() {
    local name=$1; shift
    "$M" "$@" >"$TMP/out" 2>"$TMP/err"
    local rc=$?
    if [ "${UPDATE:-0}" = 1 ] && [ $rc = 0 ]; then cp "$TMP/out" "$GOLD/$name.txt"; fi
    if [ $rc = 0 ] && [ ! -s "$TMP/err" ] && diff -u "$GOLD/$name.txt" "$TMP/out" >"$TMP/diff"; then
        ok "$name"
    else
        not_ok "$name (exit $rc)"; cat "$TMP/err" "$TMP/diff" | sed 's/^/#   /'
    fi
}

# fails NAME RC PATTERN ARGS...: exit code RC, PATTERN (grep -E) in stderr, nothing on stdout.
fails() {
    local name=$1 want=$2 pat=$3; shift 3
    "$M" "$@" >"$TMP/out" 2>"$TMP/err"
    local rc=$?
    if [ $rc = "$want" ] && grep -qE -- "$pat" "$TMP/err" && [ ! -s "$TMP/out" ]; then
        ok "$name"
    else
        not_ok "$name: exit $rc (want $want), stderr:"; sed 's/^/#   /' "$TMP/err"
    fi
}

stop_server() {
    if [ -n "$SERVER" ]; then kill "$SERVER" 2>/dev/null; wait "$SERVER" 2>/dev/null; fi
    SERVER=
}

# serve MODE [FILE]: starts fake_admin.py, sets PORT.
serve() {
    stop_server
    coproc FAKE { exec "$PY" "$HERE/fake_admin.py" "$@"; }
    SERVER=$FAKE_PID
    read -r PORT <&"${FAKE[0]}"
}

mkdir -p "$GOLD"
L=$FIX/amesh_local.json P=$FIX/amesh_proposed.json I=$FIX/ztunnel_istio.json

# Tables, per dialect.
golden local_all ztunnel-config all --file "$L"
for t in workloads services policies certificates connections; do
    golden "proposed_$t" ztunnel-config "$t" --file "$P"
    golden "istio_$t" ztunnel-config "$t" --file "$I"
done
golden proposed_workloads_ns ztunnel-config workload -n default --file "$P"
golden proposed_certificates_ns ztunnel-config certificates --namespace apps --file "$P"
golden proposed_connections_ns ztunnel-config connections -n apps --file "$P"
golden proposed_all_short ztunnel-config all -o short --file "$P"

# JSON and YAML renderings.
golden local_workloads_json ztunnel-config workloads -o json --file "$L"
golden proposed_services_yaml ztunnel-config services -o yaml --file "$P"
golden proposed_policies_json_ns ztunnel-config policies -o json -n apps --file "$P"
golden proposed_certificates_yaml ztunnel-config certificates -o yaml --file "$P"
golden istio_all_yaml ztunnel-config all --output yaml --file "$I"
golden local_all_json ztunnel-config all -o json --file "$L"

# YAML must read back as the JSON it came from (PyYAML: YAML 1.1, the strict reading).
yaml_roundtrip() { # name file
    local py
    for py in /usr/bin/python3 "$PY"; do "$py" -c 'import yaml' 2>/dev/null && break; py=; done
    if [ -z "$py" ]; then ok "$1 # SKIP no python3 yaml module"; return; fi
    "$M" ztunnel-config all -o yaml --file "$2" >"$TMP/out.yaml" 2>"$TMP/err"
    if "$py" -c 'import sys, json, yaml
sys.exit(yaml.safe_load(open(sys.argv[1])) != json.load(open(sys.argv[2])))' "$TMP/out.yaml" "$2"; then
        ok "$1"
    else
        not_ok "$1"; sed 's/^/#   /' "$TMP/err"
    fi
}
yaml_roundtrip yaml_roundtrip_tricky "$FIX/yaml_tricky.json"
yaml_roundtrip yaml_roundtrip_proposed "$P"
yaml_roundtrip yaml_roundtrip_istio "$I"

# Help.
golden help help
golden help_dash --help
golden help_zc help ztunnel-config
golden help_zc_flag ztunnel-config --help

# Usage errors: exit 2.
fails no_command 2 'Usage: meshctl COMMAND'
fails unknown_command 2 'unknown command "frobnicate"' frobnicate
fails unknown_type 2 'unknown type "pods"' ztunnel-config pods --file "$L"
fails no_type 2 'which type\?' ztunnel-config --file "$L"
fails extra_arg 2 'unexpected argument "services"' ztunnel-config workloads services --file "$L"
fails bad_output 2 'unknown output format "xml"' ztunnel-config workloads -o xml --file "$L"
fails unknown_flag 2 'unknown flag "--bogus"' ztunnel-config workloads --bogus
fails unknown_short_flag 2 'unknown flag "-x"' ztunnel-config workloads -x
fails missing_value 2 'flag --file needs a value' ztunnel-config workloads --file
fails file_and_admin 2 '--file reads a saved dump' ztunnel-config workloads --file "$L" --admin 127.0.0.1:1
fails bad_timeout 2 '--timeout: "0"' ztunnel-config workloads --timeout 0
fails help_unknown 2 'no help for "nope"' help nope

# Operation errors: exit 1.
fails missing_file 1 "$TMP/nope.json: No such file or directory" ztunnel-config all --file "$TMP/nope.json"
fails dir_as_file 1 'not a regular file' ztunnel-config all --file "$TMP"
printf '{"workloads": [' >"$TMP/trunc.json"
fails truncated_json 1 'trunc.json: bad JSON at line 1' ztunnel-config workloads --file "$TMP/trunc.json"
printf '[1, 2]' >"$TMP/array.json"
fails not_object 1 'not a JSON object' ztunnel-config workloads --file "$TMP/array.json"
: >"$TMP/empty.json"
fails empty_file 1 'bad JSON' ztunnel-config workloads --file "$TMP/empty.json"
fails refused 1 'cannot connect to ztunnel admin at 127.0.0.1:1: Connection refused' \
    ztunnel-config workloads --admin 127.0.0.1:1
fails bad_admin 1 'bad admin address "127.0.0.1:99999"' ztunnel-config workloads --admin 127.0.0.1:99999
MESH_CLUSTER_DIR=$TMP fails unknown_node 1 \
    'unknown node "no-such-node": no .*/nodes/no-such-node/netns and no /run/netns/no-such-node' \
    ztunnel-config workloads --node no-such-node
fails bad_node 1 'bad node name "\.\./x"' ztunnel-config workloads --node ../x
mkdir -p "$TMP/nodes/n1" && echo "a/b" >"$TMP/nodes/n1/netns"
MESH_CLUSTER_DIR=$TMP fails bad_netns_file 1 'is neither a path nor a netns name' \
    ztunnel-config workloads --node n1

# No --node, --admin or --file: in a local cluster, node-1's ztunnel (said on stderr), as
# istioctl picks a ztunnel itself; outside one, 127.0.0.1:15000 and an error that says what to do.
# The "node" is a private network namespace (unshare -n) with a fake admin on 127.0.0.1:15000.
if [ "$(id -u)" = 0 ] && command -v unshare >/dev/null; then
    C=$TMP/cluster
    mkdir -p "$C/nodes/node-1" "$C/nodes/node-2"
    printf '{"prefix": "amtest", "nodes": 2, "created": 0}\n' >"$C/cluster.json"
    stop_server
    coproc FAKE { exec unshare -n sh -c 'ip link set lo up && FAKE_ADMIN_PORT=15000 exec "$0" "$@"' \
        "$PY" "$HERE/fake_admin.py" clen "$P"; }
    SERVER=$FAKE_PID
    read -r PORT <&"${FAKE[0]}"
    echo "/proc/$SERVER/ns/net" >"$C/nodes/node-1/netns"
    echo "/proc/$$/ns/net" >"$C/nodes/node-2/netns"
    MESH_CLUSTER_DIR=$C "$M" ztunnel-config services >"$TMP/out" 2>"$TMP/err"
    rc=$?
    if [ $rc = 0 ] && diff -u "$GOLD/http_clen.txt" "$TMP/out" >"$TMP/diff"; then
        ok "cluster_default_node"
    else
        not_ok "cluster_default_node (exit $rc)"; cat "$TMP/err" "$TMP/diff" | sed 's/^/#   /'
    fi
    grep -q "asking the ztunnel of node-1 (--node picks another)" "$TMP/err" &&
        ok "cluster_default_node_noted" || { not_ok "cluster_default_node_noted"; sed 's/^/#   /' "$TMP/err"; }
    stop_server
    # --node picks another: node-2 is this host's namespace, where nothing listens on 15000
    # unless a real cluster runs here, so only the message is checked.
    MESH_CLUSTER_DIR=$C "$M" ztunnel-config services --node node-2 >"$TMP/out" 2>"$TMP/err"
    if ! grep -q "asking the ztunnel" "$TMP/err" && { [ -s "$TMP/out" ] ||
        grep -q "in node node-2's network namespace" "$TMP/err"; }; then
        ok "cluster_explicit_node"
    else
        not_ok "cluster_explicit_node"; sed 's/^/#   /' "$TMP/err"
    fi
else
    not_ok "cluster_default_node: needs root and unshare (CI runs as root)"
fi
if ! ss -Hltn 'sport = :15000' 2>/dev/null | grep -q .; then
    MESH_CLUSTER_DIR=$TMP/no-cluster fails no_cluster 1 \
        'cannot connect to ztunnel admin at 127.0.0.1:15000: .*no local cluster in .*/no-cluster; name a ztunnel with --node, --admin or --file' \
        ztunnel-config workloads
else
    ok "no_cluster # SKIP something listens on 127.0.0.1:15000 here"
fi

# The admin port over HTTP: framings that must work, and broken servers.
for mode in clen chunked close keepalive continue; do
    serve "$mode" "$P"
    start=$(date +%s)
    golden "http_$mode" ztunnel-config services --admin "127.0.0.1:$PORT"
    if [ $(( $(date +%s) - start )) -gt 5 ]; then not_ok "http_$mode took too long"; fi
done
serve clen "$P"
golden http_localhost_name ztunnel-config policies --admin "localhost:$PORT"
serve status503
fails http_503 1 'admin answered HTTP 503: not ready: no config' ztunnel-config all --admin "127.0.0.1:$PORT"
serve garbage
fails http_garbage 1 'not an HTTP/1.x response' ztunnel-config all --admin "127.0.0.1:$PORT"
serve hugelen
fails http_too_big 1 'larger than the 268435456 byte cap' ztunnel-config all --admin "127.0.0.1:$PORT"
serve short
fails http_short 1 'connection closed after 2 of 100 body bytes' ztunnel-config all --admin "127.0.0.1:$PORT"
# Framing two parsers could read two ways is refused, not guessed at (lib/http1).
serve clte
fails http_cl_te 1 'bad response head \(Content-Length with Transfer-Encoding\)' ztunnel-config all --admin "127.0.0.1:$PORT"
serve twocl
fails http_two_cl 1 'bad response head \(Content-Length values differ\)' ztunnel-config all --admin "127.0.0.1:$PORT"
serve obsfold
fails http_obs_fold 1 'bad response head \(obs-fold' ztunnel-config all --admin "127.0.0.1:$PORT"
serve hang
start=$(date +%s)
fails http_timeout 1 'reading from 127.0.0.1:[0-9]+: timed out' ztunnel-config all --timeout 1 --admin "127.0.0.1:$PORT"
if [ $(( $(date +%s) - start )) -gt 4 ]; then not_ok "http_timeout took too long"; fi

# waypoint-config: a waypoint's dump (test 37's local-mode waypoint, plus a second route table
# and policy of the kinds meshd sends), its own tables, and ztunnel-config's for the rest.
W=$FIX/waypoint_local.json
golden wp_routes waypoint-config routes --file "$W"
golden wp_policies waypoint-config policy --file "$W"
golden wp_all_ns waypoint-config -n shop --file "$W"
golden wp_endpoints waypoint-config endpoints --file "$W"
golden wp_routes_json waypoint-config routes -o json --file "$W"
golden wp_policies_json_ns waypoint-config policies -o json -n shop --file "$W"
golden help_wc waypoint-config --help
fails wp_extra_arg 2 'unexpected argument "more"' waypoint-config routes wp more --file "$W"
fails wp_pod_and_file 2 '--pod picks a local-cluster replica' waypoint-config --pod p --file "$W"
fails wp_bad_output 2 'unknown output format "xml"' waypoint-config -o xml --file "$W"
MESH_CLUSTER_DIR=$TMP/no-cluster fails wp_no_cluster 1 'no local cluster in .*/no-cluster' waypoint-config routes
serve clen "$W"
golden wp_admin_policies waypoint-config policies --admin "127.0.0.1:$PORT"

stop_server
echo "# $PASSES passed, $FAILS failed"
[ $FAILS = 0 ]
