#!/usr/bin/env bash
# bench/ca-kube-hold.sh [BIN_DIR] - meshd's memory while CA calls wait for a TokenReview
# (src/meshd/kreview.c holds them unread; HTTP/2 buffers their bytes). Runs through
# tests/integration/run.sh (root, network namespaces): tests/support/fake_tokenreview.py
# answers reviews only after 8 s (meshd gives up at 5 s), tests/support/ca_hold.py opens
# 1 connection x 16 calls, then 4 connections x 16 calls, from one address, each call sent
# all that flow control allows. Prints meshd's VmRSS before, during and after.
# Default BIN_DIR: build/bin (the release build: ASan's quarantine hides what is freed).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
export MESH_BIN=${1:-$ROOT/build/bin}
exec bash "$ROOT/tests/integration/run.sh" "$ROOT/bench/tools/ca-kube-hold-run.sh"
