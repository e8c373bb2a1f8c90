#!/usr/bin/env bash
# Protobuf interoperability: amesh's protobuf-c encoding of the xDS, CA and ZDS messages is read
# by an independent decoder (Python's protobuf runtime with protoc-generated modules), and the
# C side reads a DeltaDiscoveryRequest that Python wrote. Field numbers are what makes the bytes
# compatible with Istio; this catches a wrong number or type in proto/*.proto.
set -euo pipefail
SAMPLE=$1
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
protoc -I"$ROOT/proto" -I/usr/include --python_out="$W" "$ROOT"/proto/*.proto
"$SAMPLE" encode "$W"
/usr/bin/python3 "$ROOT/tests/proto/pb_check.py" "$W" check "$W"
/usr/bin/python3 "$ROOT/tests/proto/pb_check.py" "$W" write "$W/req.bin"
"$SAMPLE" decode "$W/req.bin" >"$W/req.txt"
cat "$W/req.txt"
grep -qx 'type_url=type.googleapis.com/istio.workload.Address' "$W/req.txt"
grep -qx 'nonce=nonce-7' "$W/req.txt"
grep -qx 'subscribe=\*' "$W/req.txt"
grep -qx 'initial=Kubernetes//Pod/default/server:3' "$W/req.txt"
grep -qx 'error=3:bad resource' "$W/req.txt"
grep -q '^node.id=ztunnel~198.18.0.1~' "$W/req.txt"
echo "ok: C decodes Python's DeltaDiscoveryRequest"
echo "1 passed, 0 failed"
