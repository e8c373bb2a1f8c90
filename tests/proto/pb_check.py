#!/usr/bin/python3
"""pb_check.py - the independent side of the protobuf interoperability test.

Python's protobuf runtime, with modules protoc generated from the project's .proto
files, decodes what amesh's C code (protobuf-c) encoded, and encodes a request for
the C side to decode; and the same for amesh.waypoint.v1.Policy, whose C decoder
(lib/l7policy) must read back exactly what Python wrote.
Usage: pb_check.py PYOUT_DIR check DIR | write FILE | l7check FILE | l7write DIR | l7compare BIN JSON
"""
import base64
import ipaddress
import json
import sys

sys.path.insert(0, sys.argv[1])
import authorization_pb2  # noqa: E402
import ca_pb2  # noqa: E402
import discovery_pb2  # noqa: E402
import waypoint_pb2  # noqa: E402
from google.protobuf import json_format  # noqa: E402
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


def l7check(path):
    """What protobuf-c wrote for tests/proto/l7pol_sample.c's policy, field by field."""
    p = waypoint_pb2.Policy()
    p.ParseFromString(open(path, "rb").read())
    expect((p.namespace, p.name, p.action) == ("demo", "deny-admin", authorization_pb2.DENY),
           "Policy name (1), namespace (2), action DENY (4)")
    expect(p.targets[0].WhichOneof("kind") == "gateway" and p.targets[0].gateway == "waypoint",
           "Target.gateway (1)")
    expect((p.targets[1].service.namespace, p.targets[1].service.hostname)
           == ("demo", "echo.demo.svc.cluster.local"), "Target.service NamespacedHostname (2)")
    m = p.rules[0].clauses[0].matches[0]
    expect([x.WhichOneof("kind") for x in m.paths] == ["exact", "prefix", "template"]
           and m.paths[2].template == "/api/{*}/secret/{**}", "PathMatch exact/prefix/template (1, 2, 5)")
    expect([x.exact for x in m.not_methods] == ["GET", "HEAD"], "not_methods (5)")
    expect(m.hosts[0].prefix == "echo.demo", "hosts (6) prefix")
    h = m.headers[0]
    expect(h.name == "x-debug" and h.values[0].exact == "1" and h.values[1].HasField("presence"),
           "HeaderCond name, values exact and presence")
    expect(m.l4.principals[0].prefix == "cluster.local/ns/client/sa/" and list(m.l4.destination_ports) == [8080]
           and str(ipaddress.ip_address(m.l4.source_ips[0].address)) == "198.18.9.0"
           and m.l4.source_ips[0].length == 24, "l4 istio.security.Match (1)")


def l7policy():
    p = waypoint_pb2.Policy(name="mixed", namespace="shop", action=authorization_pb2.ALLOW)
    p.targets.add().service.CopyFrom(workload_pb2.NamespacedHostname(
        namespace="shop", hostname="cart.shop.svc.cluster.local"))
    p.targets.add(gateway="shop-waypoint")
    m = p.rules.add().clauses.add().matches.add()
    m.paths.add(template="/v1/{*}/items/{**}")
    m.paths.add(presence=True)
    m.not_paths.add(suffix=".php")
    m.methods.add(exact="POST")
    m.hosts.add(suffix=".shop.svc.cluster.local")
    m.not_hosts.add(exact="evil.example")
    h = m.headers.add(name="x-tenant")
    h.values.add(prefix="acme-")
    h.not_values.add(exact="acme-test")
    m.request_principals.add(exact="issuer/subject")
    m.l4.namespaces.add(exact="web")
    m.l4.not_principals.add(suffix="/sa/intruder")
    m.l4.source_ips.add(address=ipaddress.ip_address("2001:db8::").packed, length=32)
    m.l4.not_destination_ports.extend([22, 65535])
    # A second clause (AND) with two matches (OR), and a second, empty rule.
    c = p.rules[0].clauses.add()
    c.matches.add().methods.add(presence={})
    c.matches.add().not_methods.add(prefix="DEL")
    p.rules.add()
    return p


def l7write(d):
    open(d + "/policy_py.bin", "wb").write(l7policy().SerializeToString())
    bad = l7policy()
    bad.rules[0].clauses[0].matches[0].paths[0].template = "/v1/{**}/x"
    open(d + "/policy_bad.bin", "wb").write(bad.SerializeToString())


def strip(v):
    """Empty lists and objects out: proto3 JSON leaves them out, the dump writes them."""
    if isinstance(v, dict):
        return {k: strip(x) for k, x in v.items() if x not in ([], {}) or k == "presence"}
    if isinstance(v, list):
        return [strip(x) for x in v]
    return v


def l7compare(binpath, jsonpath):
    p = waypoint_pb2.Policy()
    p.ParseFromString(open(binpath, "rb").read())
    want = json_format.MessageToDict(p)
    want.setdefault("action", "ALLOW")
    for r in want["rules"]:
        for c in r.get("clauses", []):
            for m in c["matches"]:
                for ip in m.get("l4", {}).get("sourceIps", []):
                    ip["address"] = str(ipaddress.ip_address(base64.b64decode(ip["address"])))
    got = json.loads(open(jsonpath).read())
    want, got = strip(want), strip(got)
    if want != got:
        print("python:", json.dumps(want, sort_keys=True))
        print("C dump:", json.dumps(got, sort_keys=True))
    expect(want == got, "C decodes Python's Policy to the same fields (proto3 JSON of both sides)")


if __name__ == "__main__":
    cmd = sys.argv[2]
    if cmd == "check":
        check(sys.argv[3])
    elif cmd == "write":
        write(sys.argv[3])
    elif cmd == "l7check":
        l7check(sys.argv[3])
    elif cmd == "l7write":
        l7write(sys.argv[3])
    else:
        l7compare(sys.argv[3], sys.argv[4])
