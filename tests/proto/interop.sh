#!/usr/bin/env bash
# Protobuf interoperability: amesh's protobuf-c encoding of the xDS, CA and ZDS messages is read
# by an independent decoder (Python's protobuf runtime with protoc-generated modules), and the
# C side reads a DeltaDiscoveryRequest that Python wrote. Field numbers are what makes the bytes
# compatible with Istio; this catches a wrong number or type in proto/*.proto.
set -euo pipefail
SAMPLE=$1
L7SAMPLE=$2
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

# amesh.waypoint.v1.Policy: protobuf-c -> Python, Python -> lib/l7policy (dump compared field by
# field), and a Python policy the decoder must refuse with the field named.
"$L7SAMPLE" encode "$W/policy_c.bin"
/usr/bin/python3 "$ROOT/tests/proto/pb_check.py" "$W" l7check "$W/policy_c.bin"
/usr/bin/python3 "$ROOT/tests/proto/pb_check.py" "$W" l7write "$W"
"$L7SAMPLE" dump "$W/policy_py.bin" >"$W/policy_py.json"
cat "$W/policy_py.json"
/usr/bin/python3 "$ROOT/tests/proto/pb_check.py" "$W" l7compare "$W/policy_py.bin" "$W/policy_py.json"
if "$L7SAMPLE" dump "$W/policy_bad.bin" >"$W/policy_bad.txt"; then
    echo "FAIL: a template with {**} before the end decoded"; exit 1
fi
cat "$W/policy_bad.txt"
grep -qx 'error: policy shop/mixed: rules\[0\].clauses\[0\].matches\[0\].paths\[0\].template: "/v1/{\*\*}/x": {\*\*} must be the last segment' "$W/policy_bad.txt"
echo "ok: lib/l7policy refuses Python's bad template, naming the field"
echo "2 passed, 0 failed"
