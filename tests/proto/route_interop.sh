#!/usr/bin/env bash
# Route round trip (issue 10 section 3): an amesh.waypoint.v1.Route written by Python's
# protobuf runtime (protoc-generated waypoint_pb2) is decoded by lib/route, whose JSON dump
# must say what Python wrote; one Python made invalid is refused with a NACK text; and a
# Route packed by protobuf-c is read back by Python field for field.
set -euo pipefail
SAMPLE=$1
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
protoc -I"$ROOT/proto" -I/usr/include --python_out="$W" "$ROOT"/proto/*.proto
CHECK="/usr/bin/python3 $ROOT/tests/proto/route_check.py $W"
$CHECK write "$W"
"$SAMPLE" decode "$W/route.bin" >"$W/route.json"
$CHECK dump "$W"
if "$SAMPLE" decode "$W/bad.bin" >"$W/bad.txt"; then
    echo "FAIL: an invalid Route was accepted"; exit 1
fi
grep -q 'rules\[1\] (default.redirect.0): match.exact: "old" must be an absolute path' "$W/bad.txt"
echo "ok: invalid Route refused: $(cat "$W/bad.txt")"
"$SAMPLE" encode "$W/c_route.bin" "name=r0 prefix=/api h=env:prod hr=ua:curl/.* q=v:2 m=POST \
be=v1:80:7 be=v2:81:3 set=x-a:1 rrm=server rw.prefix= rw.host=h.example timeout=2250 retry=3:503
nomatch redir.scheme=https redir.status=308 redir.full=/x"
$CHECK c "$W"
echo "1 passed, 0 failed"
