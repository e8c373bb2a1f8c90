#!/usr/bin/env bash
# bench/kube-scale.sh [BIN_DIR] - meshd's Kubernetes source against its directory source, in one
# run, on the real kube-apiserver v1.20.2 (tools/kube/build.sh's cache): at 1,000 and 10,000 pods
# (created through the API; the same pods as YAML files for --config-dir), the time from a pod
# change (create, IP change, label change, delete) to ztunnel's model, median and p90, and
# meshd's memory, with kube/directory ratios. See bench/README.md ("Kubernetes source").
# Environment: KUBE_SCALE_SIZES ("1000 10000"), KUBE_SCALE_ROUNDS (20), KUBE_SCALE_OUT
# (bench/results/kube-scale.jsonl; the table goes next to it as .md). Root; a few minutes.
# Default BIN_DIR: build/bin (the release build, `make build`).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
export MESH_BIN=${1:-$ROOT/build/bin}
exec bash "$ROOT/tests/integration/run.sh" "$ROOT/bench/tools/kube-scale-run.sh"
