#!/usr/bin/env bash
# bench/cni-scan.sh [BIN_DIR] [N...] - mesh-cni's search for a pod that predates it (the /proc
# scan, src/mesh-cni/scan.c): N extra network namespaces, each with a process and an address,
# and one ambient pod (in --config-dir, no netns annotation, no plugin) whose IP is in the last
# one made. Prints mesh-cni's own line for the scan (processes, namespaces, ms) per N.
# Runs through tests/integration/run.sh (root). Default BIN_DIR: build/bin; N: 10 100 500.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
export MESH_BIN=${1:-$ROOT/build/bin}
shift || true
export SCAN_NS=${*:-10 100 500}
exec bash "$ROOT/tests/integration/run.sh" "$ROOT/bench/tools/cni-scan-run.sh"
