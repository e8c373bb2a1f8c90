#!/usr/bin/python3
"""pb_check.py - the independent side of the protobuf interoperability test.

Python's protobuf runtime, with modules protoc generated from the project's .proto
files, decodes what amesh's C code (protobuf-c) encoded, and encodes a request for
the C side to decode. Usage: pb_check.py PYOUT_DIR check DIR | write FILE
"""
import ipaddress
import sys

sys.path.insert(0, sys.argv[1])
import authorization_pb2  # noqa: E402
import ca_pb2  # noqa: E402
import discovery_pb2  # noqa: E402
import workload_pb2  # noqa: E402
import zds_pb2  # noqa: E402


def expect(cond, what):
    if not cond:
        print("FAIL:", what)
        sys.exit(1)
    print("ok:", what)


def check(d):
    r = discovery_pb2.DeltaDiscoveryResponse()
    r.ParseFromString(open(d + "/xds_response.bin", "rb").read())
    expect(r.type_url == "type.googleapis.com/istio.workload.Address", "type_url")
    expect(r.nonce == "nonce-1", "nonce")
    expect(list(r.removed_resources) == ["Kubernetes//Pod/default/gone"], "removed_resources")
    expect(len(r.resources) == 3, "three resources")

    wa = workload_pb2.Address()
    expect(r.resources[0].resource.Unpack(wa), "resource 0 unpacks as istio.workload.Address")
    w = wa.workload
    expect(r.resources[0].name == w.uid == "Kubernetes//Pod/default/server", "workload uid = resource name")
    expect((w.name, w.namespace, w.service_account, w.node) == ("server", "default", "server", "node-2"),
           "workload name, namespace, service account, node")
    expect([str(ipaddress.ip_address(a)) for a in w.addresses] == ["198.18.250.10", "2001:db8::10"],
           "workload addresses as 4 and 16 bytes")
    expect(w.tunnel_protocol == workload_pb2.HBONE, "tunnel_protocol HBONE (field 5)")
    expect(w.workload_type == workload_pb2.POD and w.workload_name == "echo", "workload type and name")
    expect((w.canonical_name, w.canonical_revision) == ("echo", "v1"), "canonical name and revision")
    pl = w.services["default/echo.default.svc.cluster.local"]
    expect([(p.service_port, p.target_port) for p in pl.ports] == [(80, 8080)], "services port map (field 22)")
    expect(list(w.authorization_policies) == ["default/allow-client"], "authorization_policies (field 16)")

    sa = workload_pb2.Address()
    expect(r.resources[1].resource.Unpack(sa), "resource 1 unpacks as istio.workload.Address")
    s = sa.service
    expect(s.hostname == "echo.default.svc.cluster.local" and s.namespace == "default", "service hostname")
    expect(str(ipaddress.ip_address(s.addresses[0].address)) == "198.19.0.10", "service VIP")
    expect(not s.addresses[0].HasField("length"), "VIP without a CIDR length")

    az = authorization_pb2.Authorization()
    expect(r.resources[2].resource.Unpack(az), "resource 2 unpacks as istio.security.Authorization")
    expect(az.scope == authorization_pb2.WORKLOAD_SELECTOR and az.action == authorization_pb2.ALLOW,
           "authorization scope and action")
    m = az.rules[0].clauses[0].matches[0]
    expect(m.principals[0].exact == "cluster.local/ns/default/sa/client" and list(m.destination_ports) == [8080],
           "authorization match principal and port")

    ca = ca_pb2.IstioCertificateResponse()
    ca.ParseFromString(open(d + "/ca_response.bin", "rb").read())
    expect(len(ca.cert_chain) == 2 and "leaf" in ca.cert_chain[0] and "root" in ca.cert_chain[1],
           "CA response cert_chain leaf first, root last")

    z = zds_pb2.WorkloadRequest()
    z.ParseFromString(open(d + "/zds_add.bin", "rb").read())
    expect(z.WhichOneof("payload") == "add" and z.add.uid == "Kubernetes//Pod/default/server",
           "ZDS WorkloadRequest add uid")
    expect((z.add.workload_info.name, z.add.workload_info.namespace, z.add.workload_info.service_account)
           == ("server", "default", "server"), "ZDS workload_info")


def write(path):
    q = discovery_pb2.DeltaDiscoveryRequest()
    q.node.id = "ztunnel~198.18.0.1~ztunnel-abc.istio-system~istio-system.svc.cluster.local"
    q.type_url = "type.googleapis.com/istio.workload.Address"
    q.response_nonce = "nonce-7"
    q.resource_names_subscribe.append("*")
    q.initial_resource_versions["Kubernetes//Pod/default/server"] = "3"
    q.error_detail.code = 3
    q.error_detail.message = "bad resource"
    open(path, "wb").write(q.SerializeToString())


if __name__ == "__main__":
    if sys.argv[2] == "check":
        check(sys.argv[3])
    else:
        write(sys.argv[3])
