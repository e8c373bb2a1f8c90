#!/usr/bin/env bash
# bench/cp.sh BUILD_DIR [RAW_OUT] - the control-plane measurement (step "cp" of bench/run.sh).
#
# For each cluster size (BENCH_CP_PODS, default "1000 10000" pods over BENCH_CP_NODES=100
# nodes, one Service per 10 pods), in one network namespace:
#   meshd (release build, --log-level info) reads a generated config directory,
#   xds_subscribers opens one simulated ztunnel per node (own TLS connection, own node token,
#   one delta ADS stream each), all at once, and waits until all hold every Address;
#   then BENCH_CP_CHANGES (5) times it changes one pod's `version` label (rename of a new
#   file into the config dir) and times until every subscriber applied the new version.
# Measured: initial sync time and bytes, change-to-all-subscribers time, bytes per change,
# meshd CPU (schedstat) and RSS/peak RSS (VmRSS/VmHWM). See bench/README.md.
#
# With RAW_OUT the raw "key value" lines go there (bench/run.sh merges them into its
# results); alone it prints the table and writes bench/results/partial.{txt,md} (a control-plane
# only run, like any BENCH_STEPS subset, never replaces results/latest.*).
set -euo pipefail

BENCH=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$BENCH")
BUILD=${1:-build}
RAW_OUT=${2:-}
case $BUILD in /*) ;; *) BUILD=$ROOT/$BUILD ;; esac
for b in meshd xds_subscribers; do
    [ -x "$BUILD/bin/$b" ] || { echo "cp: $BUILD/bin/$b not built (run make bench)" >&2; exit 1; }
done
grep -q 'CMAKE_BUILD_TYPE:STRING=\(RelWithDebInfo\|Release\)' "$BUILD/CMakeCache.txt" 2>/dev/null ||
    echo "cp: WARNING: $BUILD is not a release build" >&2

SIZES=(${BENCH_CP_PODS:-1000 10000})
NODES=${BENCH_CP_NODES:-100}
CHANGES=${BENCH_CP_CHANGES:-5}
DEBOUNCE=${BENCH_CP_DEBOUNCE_MS:-100} # meshd's default
START_TS=$(date +%s)

export MESH_BIN=$BUILD/bin
export ID=cp$$ # not run.sh's: its namespaces may still be up
. "$ROOT/tests/integration/lib.sh" # set -euo pipefail, trap cleanup EXIT, WORK, PIDS, helpers
export ASAN_OPTIONS='' UBSAN_OPTIONS=''
trap 'exit 130' INT TERM HUP
require_root

RES=$WORK/cp-results.txt
: >"$RES"
rec() { echo "$1 $2" >>"$RES"; }

busy_pct() { # share of the machine's CPU busy over one second
    local a b c d
    read -r a b < <(awk '/^cpu /{print $2 + $3 + $4 + $7 + $8 + $9, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9}' /proc/stat)
    sleep 1
    read -r c d < <(awk '/^cpu /{print $2 + $3 + $4 + $7 + $8 + $9, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9}' /proc/stat)
    awk -v x=$((c - a)) -v y=$((d - b)) 'BEGIN { printf "%.0f", y ? 100 * x / y : 0 }'
}
# Alone, wait (bounded) for a quiet machine as bench/run.sh does; under run.sh it already did.
BUSY=$(busy_pct)
if [ -z "$RAW_OUT" ]; then
    QUIET_DEADLINE=$(( $(date +%s) + ${BENCH_WAIT_QUIET:-60} ))
    while [ "$BUSY" -gt 10 ] && [ "$(date +%s)" -lt "$QUIET_DEADLINE" ]; do
        echo "cp: the machine is ${BUSY}% busy with other work; waiting for it to calm down"
        sleep 4
        BUSY=$(busy_pct)
    done
fi
rec cp.meta.busy_start "$BUSY"
[ "$BUSY" -le 10 ] || echo "cp: WARNING: the machine is ${BUSY}% busy before the run; numbers will be noisy"

# One namespace, loopback only: meshd on 198.18.0.1:15012 (on lo), metrics on 127.0.0.1:15014.
ip netns add "$N1"
ip -n "$N1" link set lo up
ip -n "$N1" addr add 198.18.0.1/32 dev lo
LINK_SELF=198.18.0.1

STATE=$WORK/state
mkdir -p "$WORK/tokens"
for k in $(seq 1 "$NODES"); do
    "$BIN/meshd" token --state-dir "$STATE" --node "node-$k" >"$WORK/tokens/node-$k" 2>>"$WORK/token.log"
done

# The cluster: P pods in namespaces ns-0..ns-9 (all enrolled), spread round-robin over the
# nodes, 10 pods per Service (app=s-J, same namespace), pod IPs 198.18.1.1 upwards, Service
# VIPs in 198.19.0.0/16. Pods go one file per node; pod p-0 (the one whose label changes) is
# alone in marker.yaml, written from a template with @VERSION@.
gen_config() { # dir pods nodes template
    /usr/bin/python3 - "$@" <<'PY'
import os, sys
d, P, N, tmpl = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
NS = 10
S = P // 10
os.makedirs(d, exist_ok=True)
with open(os.path.join(d, "namespaces.yaml"), "w") as f:
    for n in range(NS):
        f.write(f"apiVersion: v1\nkind: Namespace\nmetadata:\n  name: ns-{n}\n  labels:\n"
                f"    istio.io/dataplane-mode: ambient\n---\n")
def pod(i, version):
    s = i // 10
    ip = f"198.18.{1 + i // 250}.{1 + i % 250}"
    return (f"apiVersion: v1\nkind: Pod\n"
            f"metadata: {{name: p-{i}, namespace: ns-{s % NS}, uid: 0b0b0b0b-{i:08d}, "
            f"labels: {{app: s-{s}, version: {version}}}}}\n"
            f"spec: {{serviceAccountName: sa-{s}, nodeName: node-{1 + i % N}, "
            f"containers: [{{name: main, image: none, ports: [{{name: http, containerPort: 8080}}]}}]}}\n"
            f"status: {{phase: Running, conditions: [{{type: Ready, status: \"True\"}}], "
            f"podIPs: [{{ip: \"{ip}\"}}]}}\n---\n")
files = {}
for i in range(1, P):
    files.setdefault(1 + i % N, []).append(pod(i, "v1"))
for node, docs in files.items():
    with open(os.path.join(d, f"pods-node-{node:04d}.yaml"), "w") as f:
        f.write("".join(docs))
with open(tmpl, "w") as f:
    f.write(pod(0, "@VERSION@"))
with open(os.path.join(d, "marker.yaml"), "w") as f:
    f.write(pod(0, "bench-0"))
with open(os.path.join(d, "services.yaml"), "w") as f:
    for j in range(S):
        f.write(f"apiVersion: v1\nkind: Service\nmetadata: {{name: s-{j}, namespace: ns-{j % NS}}}\n"
                f"spec: {{selector: {{app: s-{j}}}, clusterIP: \"198.19.{j // 250}.{1 + j % 250}\", "
                f"ports: [{{name: http, port: 80, targetPort: 8080}}]}}\n---\n")
PY
}

# Prints "key=value" pairs of the line starting with $2 in file $1 as "key value".
kv_of() { # file prefix
    grep "^$2 " "$1" | tail -1 | tr ' ' '\n' | grep '=' | sed 's/=/ /'
}

echo "== control plane: meshd with $NODES simulated ztunnels (xDS subscribers), ${SIZES[*]} pods"
rec cp.meta.nodes "$NODES"
rec cp.meta.changes "$CHANGES"
rec cp.meta.debounce_ms "$DEBOUNCE"
rec cp.meta.sizes "$(echo "${SIZES[*]}" | tr ' ' ',')"
for P in "${SIZES[@]}"; do
    S=$((P / 10))
    CFG=$WORK/cfg-$P
    TMPL=$WORK/marker-$P.tmpl
    gen_config "$CFG" "$P" "$NODES" "$TMPL"
    k=cp.$P
    rec "$k.pods" "$P"
    rec "$k.services" "$S"
    rec "$k.config_bytes" "$(cat "$CFG"/*.yaml | wc -c)"
    t0=$(date +%s%N)
    WAIT_SECS=120 start_meshd "$CFG" "$STATE" "$WORK/meshd-$P.log" --log-level info \
        --debounce-ms "$DEBOUNCE" --max-conns-per-ip 0
    t1=$(date +%s%N)
    rec "$k.start_ms" $(((t1 - t0) / 1000000))
    [ "$(cat "/proc/$MESHD_PID/comm")" = meshd ] || { echo "cp: pid $MESHD_PID is not meshd" >&2; exit 1; }
    out=$WORK/subs-$P.txt
    if ! ip netns exec "$N1" "$BIN/xds_subscribers" --xds 198.18.0.1:15012 \
        --root-cert "$STATE/root-cert.pem" --tokens "$WORK/tokens" --nodes "$NODES" \
        --expect $((P + S)) --meshd-pid "$MESHD_PID" --metrics 127.0.0.1:15014 \
        --marker "Kubernetes//Pod/ns-0/p-0" --marker-template "$TMPL" \
        --marker-dest "$CFG/marker.yaml" --changes "$CHANGES" --timeout-s 60 \
        >"$out" 2>"$WORK/subs-$P.err"; then
        echo "cp: $P pods: the subscribers did not finish:" >&2
        tail -5 "$WORK/subs-$P.err" >&2
        rec "$k.error" "$(tail -1 "$WORK/subs-$P.err" | tr ' ' '_')"
    fi
    while read -r key val; do rec "$k.sync.$key" "$val"; done < <(kv_of "$out" SYNC)
    while read -r key val; do rec "$k.settled.$key" "$val"; done < <(kv_of "$out" SETTLED)
    while read -r key val; do rec "$k.$key" "$val"; done < <(kv_of "$out" RESULT)
    # meshd logs one line per rebuilt snapshot: "config: N resources, version V (X ms)";
    # the first is the start, the others the changes.
    mapfile -t builds < <(sed -n 's/.*config: [0-9]* resources, version [0-9a-f]* (\([0-9]*\) ms).*/\1/p' "$WORK/meshd-$P.log")
    if [ ${#builds[@]} -gt 0 ]; then
        rec "$k.build_start_ms" "${builds[0]}"
        if [ ${#builds[@]} -gt 1 ]; then
            rec "$k.build_change_ms" "$(printf '%s\n' "${builds[@]:1}" | sort -n | awk '{v[NR]=$1} END {print (NR % 2) ? v[(NR+1)/2] : (v[NR/2] + v[NR/2+1]) / 2}')"
        fi
    fi
    rec "$k.resources" "$(sed -n 's/.*config: \([0-9]*\) resources.*/\1/p' "$WORK/meshd-$P.log" | head -1)"
    sed -n 's/^\(SYNC\|CHANGE\) //p' "$out" | sed "s/^/  $P pods: /"
    kill -TERM "$MESHD_PID" 2>/dev/null || true
    wait "$MESHD_PID" 2>/dev/null || true
done
rec cp.meta.busy_end "$(busy_pct)"
rec cp.meta.elapsed "$(( $(date +%s) - START_TS ))"

if [ -n "$RAW_OUT" ]; then
    cp "$RES" "$RAW_OUT"
else
    mkdir -p "$BENCH/results"
    cp "$RES" "$BENCH/results/partial.txt"
    /usr/bin/python3 "$BENCH/tools/cp_report.py" "$RES" "$BENCH/results/partial.md"
    echo "(raw numbers: bench/results/partial.txt; report: bench/results/partial.md)"
fi
