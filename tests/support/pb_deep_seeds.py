#!/usr/bin/python3
"""pb_deep_seeds.py - fuzz seeds for nesting depth (issue 9, attack 2), written into
fuzz/corpus/<harness>/ (or the directory given as the only argument).

Each harness that reaches a protobuf decoder gets the 5000-deep Struct that
crashed meshd, and inputs exactly at and one past the depth limit (32 messages,
lib/pbcheck), plus deep bytes under an unknown field (skipped, not descended).
The harnesses' input formats are described at the top of each fuzz/fuzz_*.c.

  /usr/bin/python3 tests/support/pb_deep_seeds.py
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pb_deep import deep_struct, ld, struct_with, value_levels, varint  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LIMIT = 32  # PB_MAX_DEPTH


def vfield(num, v):
    return varint(num << 3) + varint(v)


def write(out, harness, name, data):
    d = os.path.join(out, harness)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def xds_request(node_metadata):
    """DeltaDiscoveryRequest{node: {id, metadata}, type_url: Address}: levels 1, 2, then the Struct."""
    node = ld(1, b"ztunnel~198.18.0.9~x.istio-system~istio-system.svc.cluster.local") + ld(3, node_metadata)
    return ld(1, node) + ld(2, b"type.googleapis.com/istio.workload.Address")


def records(*msgs):
    return b"".join(len(m).to_bytes(2, "big") + m for m in msgs)


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "fuzz", "corpus")
    deep = deep_struct(5000)  # ~34 KB: overflowed meshd's stack before lib/pbcheck

    # fuzz_casvc: 1 + a CreateCertificate request (the valid seed's, plus a second
    # metadata field: protobuf merges it). Request 1, Struct 2, entry 3, Value 4...
    with open(os.path.join(ROOT, "fuzz", "corpus", "fuzz_casvc", "sign_valid"), "rb") as f:
        valid = f.read()[1:]
    write(out, "fuzz_casvc", "sign_deep_metadata_5000", b"\x01" + valid + ld(4, deep))
    write(out, "fuzz_casvc", "sign_metadata_depth_32",
          b"\x01" + valid + ld(4, struct_with(value_levels(LIMIT - 3))))
    write(out, "fuzz_casvc", "sign_metadata_depth_33",
          b"\x01" + valid + ld(4, struct_with(value_levels(LIMIT - 2))))
    write(out, "fuzz_casvc", "resp_deep_unknown_field",
          b"\x02" + ld(1, b"-----BEGIN CERTIFICATE-----") + ld(9, value_levels(3000)))

    # fuzz_xds, server side (byte 0 bit 0 set): records of DeltaDiscoveryRequests.
    # Request 1, Node 2, Struct 3, entry 4, Value 5...
    write(out, "fuzz_xds", "server_deep_node_metadata_5000", b"\x01" + records(xds_request(deep)))
    write(out, "fuzz_xds", "server_node_metadata_depth_32",
          b"\x01" + records(xds_request(struct_with(value_levels(LIMIT - 4)))))
    write(out, "fuzz_xds", "server_node_metadata_depth_33_then_valid",
          b"\x01" + records(xds_request(struct_with(value_levels(LIMIT - 3))), xds_request(b"")))
    # Client side: a response whose Any value is a deep Struct (bytes to lib/xds,
    # decoded only by the resource's own decoder) and one with deep bytes unknown.
    any_deep = ld(1, b"type.googleapis.com/google.protobuf.Struct") + ld(2, deep_struct(3000))
    resource = ld(1, b"v1") + ld(2, any_deep) + ld(3, b"ns/deep")
    resp = ld(2, resource) + ld(4, b"type.googleapis.com/istio.workload.Address") + ld(5, b"n1")
    write(out, "fuzz_xds", "client_deep_any_value", b"\x00" + records(resp))
    write(out, "fuzz_xds", "client_deep_unknown_field",
          b"\x00" + records(resp[:-4] + ld(15, value_levels(3000)) + ld(5, b"n2")))

    # fuzz_address: an Address (workload, field 1) with deep bytes under unknown
    # fields, and one whose workload is a varint (wire type for the wrong type).
    wl = ld(1, b"Kubernetes//Pod/default/a") + ld(2, b"a") + ld(3, b"default")
    write(out, "fuzz_address", "deep_unknown_field", ld(1, wl + ld(99, value_levels(3000))))
    write(out, "fuzz_address", "workload_as_varint", vfield(1, 5))

    # fuzz_policy: Authorization{name, namespace, rules: [{clauses: [{matches:
    # [{destination_ports packed, unknown 99: deep}]}]}]}, 5 levels at most.
    match = ld(9, varint(80) + varint(443)) + ld(99, value_levels(2000))
    pol = ld(1, b"deep") + ld(2, b"default") + ld(5, ld(1, ld(2, match)))
    write(out, "fuzz_policy", "deep_unknown_in_match", pol)

    # fuzz_zds: byte 0 = no fd; WorkloadRequest{add: {uid, workload_info: {name,
    # unknown 9: deep}}} within the 1024-byte datagram.
    info = ld(1, b"p") + ld(9, value_levels(300))
    write(out, "fuzz_zds", "add_deep_unknown_field", b"\x00" + ld(1, ld(1, b"uid-1") + ld(2, info)))

    # fuzz_pbcheck: byte 0 the type (0 Value, 1 Struct, 2 CA request, 4 xDS request,
    # 7 Authorization), byte 1 the limit (0: 32), then the message.
    pc = "fuzz_pbcheck"
    write(out, pc, "value_depth_32", b"\x00\x00" + value_levels(LIMIT))
    write(out, pc, "value_depth_33", b"\x00\x00" + value_levels(LIMIT + 1))
    write(out, pc, "value_depth_5_limit_5", b"\x00\x05" + value_levels(5))
    write(out, pc, "value_depth_6_limit_5", b"\x00\x05" + value_levels(6))
    write(out, pc, "value_depth_40_limit_40", b"\x00\x28" + value_levels(40))
    write(out, pc, "struct_deep_2000", b"\x01\x00" + deep_struct(2000))
    write(out, pc, "ca_request_deep_5000", b"\x02\x00" + ld(4, deep))
    write(out, pc, "xds_request_depth_32", b"\x04\x00" + xds_request(struct_with(value_levels(LIMIT - 4))))
    write(out, pc, "xds_request_depth_33", b"\x04\x00" + xds_request(struct_with(value_levels(LIMIT - 3))))
    write(out, pc, "authorization_packed_ports", b"\x07\x00" + pol)
    write(out, pc, "value_unknown_every_wire_type",
          b"\x00\x00" + vfield(20, 150) + varint(21 << 3 | 1) + bytes(8) + ld(22, b"\x0a\x7f")
          + varint(23 << 3 | 5) + bytes(4) + ld(3, b"x"))
    write(out, pc, "value_group", b"\x00\x00\x0b\x0c")
    write(out, pc, "value_truncated_length", b"\x00\x00\x32\x04\x0a\x05\x00\x00")
    write(out, pc, "value_double_as_varint", b"\x00\x00\x10\x01")
    write(out, pc, "value_varint_11_bytes", b"\x00\x00\x08" + b"\xff" * 10 + b"\x01")
    # Passes the walk, refused by protobuf-c: Struct{fields: {value: {}, value: {}}}.
    write(out, pc, "struct_entry_value_twice_empty", b"\x01\x00\x0a\x04\x12\x00\x12\x00")


if __name__ == "__main__":
    main()
