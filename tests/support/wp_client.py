#!/usr/bin/python3
"""wp_client.py - a delta-ADS client acting as an amesh waypoint (or, with
--no-waypoint, as a ztunnel asking for waypoint types), built on cp_client.py's
TLS/HTTP/2/gRPC code and protoc-generated modules, sharing no code with amesh.

It sends what src/lib/xds/xds.h says a waypoint sends: node id
"waypoint~<ip>~<pod>.<ns>~<ns>.svc.cluster.local" and string metadata NAMESPACE,
SERVICE_ACCOUNT, WAYPOINT, NODE_NAME. It subscribes (wildcard) to Address,
Authorization, amesh.waypoint.v1.Route and .Policy, ACKs every response, and
keeps what it holds per type. After every response it rewrites --state (JSON,
atomically): per type the number of responses and the held resources, Route and
Policy decoded (json_format), Address and Authorization by name only.

It runs until --duration passes, --stop-file appears or the stream ends.
"""
import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cp_client as cp  # noqa: E402

TYPE_ROUTE = "type.googleapis.com/amesh.waypoint.v1.Route"
TYPE_POLICY = "type.googleapis.com/amesh.waypoint.v1.Policy"
TYPES = (cp.TYPE_ADDRESS, cp.TYPE_AUTHZ, TYPE_ROUTE, TYPE_POLICY)
SHORT = {cp.TYPE_ADDRESS: "address", cp.TYPE_AUTHZ: "authorization", TYPE_ROUTE: "route",
         TYPE_POLICY: "policy"}


def node_msg(pb, a):
    n = pb["discovery"].Node()
    md = n.metadata.fields
    if a.no_waypoint:
        n.id = cp.DEFAULT_NODE_ID
        md["NAMESPACE"].string_value = "istio-system"
    else:
        n.id = "waypoint~%s~%s-0.%s~%s.svc.cluster.local" % (a.ip, a.waypoint, a.namespace, a.namespace)
        md["NAMESPACE"].string_value = a.namespace
        md["SERVICE_ACCOUNT"].string_value = a.sa
        md["WAYPOINT"].string_value = a.waypoint
    md["NODE_NAME"].string_value = a.node_name
    return n


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--addr", required=True)
    ap.add_argument("--root", required=True)
    ap.add_argument("--server-name", default=cp.SERVER_NAME)
    ap.add_argument("--token", required=True)
    ap.add_argument("--pb-dir", required=True, help="protoc --python_out directory (generated when missing)")
    ap.add_argument("--state", required=True, help="JSON file rewritten after every response")
    ap.add_argument("--duration", type=float, default=10.0)
    ap.add_argument("--stop-file")
    ap.add_argument("--node-name", required=True)
    ap.add_argument("--waypoint", default="waypoint")
    ap.add_argument("--namespace", default="default")
    ap.add_argument("--sa", default="waypoint")
    ap.add_argument("--ip", default="198.18.0.99")
    ap.add_argument("--no-waypoint", action="store_true", help="a ztunnel node (no WAYPOINT metadata)")
    a = ap.parse_args()

    pb = cp.load_pb(a)
    import waypoint_pb2
    from google.protobuf import json_format
    disc = pb["discovery"]
    decoders = {TYPE_ROUTE: waypoint_pb2.Route, TYPE_POLICY: waypoint_pb2.Policy}
    held = {t: {} for t in TYPES}
    responses = {t: 0 for t in TYPES}
    doc = {"status": None, "error": None}

    def write_state():
        doc.update({"updated": time.time(),
                    "responses": {SHORT[t]: responses[t] for t in TYPES},
                    "held": {SHORT[t]: held[t] for t in TYPES}})
        tmp = a.state + ".tmp"
        with open(tmp, "w") as f:
            json.dump(doc, f, indent=1, sort_keys=True)
        os.replace(tmp, a.state)

    dl = cp.Deadline(a.duration + 5)
    end = time.monotonic() + a.duration
    conn = None
    try:
        conn = cp.Conn(cp.tls_connect(a, dl), dl, a)
        call = conn.start_call(cp.XDS_PATH, cp.read_token(a, "xds"))
        for i, t in enumerate(TYPES):
            q = disc.DeltaDiscoveryRequest()
            if i == 0:
                q.node.CopyFrom(node_msg(pb, a))
            q.type_url = t
            conn.send(call, q.SerializeToString())
        write_state()
        seen = 0
        while time.monotonic() < end and not call.ended:
            if a.stop_file and os.path.exists(a.stop_file):
                break
            conn.read_some(min(0.1, max(0.0, end - time.monotonic())))
            while seen < len(call.messages):
                resp = disc.DeltaDiscoveryResponse()
                resp.ParseFromString(call.messages[seen])
                seen += 1
                t = resp.type_url
                if t not in held:
                    raise cp.Fail("response of unasked type %s" % t)
                responses[t] += 1
                for r in resp.resources:
                    if t in decoders:
                        m = decoders[t]()
                        m.ParseFromString(r.resource.value)
                        held[t][r.name] = {"version": r.version,
                                           "value": json_format.MessageToDict(m)}
                    else:
                        held[t][r.name] = {"version": r.version}
                for name in resp.removed_resources:
                    held[t].pop(name, None)
                ack = disc.DeltaDiscoveryRequest()
                ack.type_url = t
                ack.response_nonce = resp.nonce
                conn.send(call, ack.SerializeToString())
                write_state()
        doc["status"] = call.status()[0] if call.ended else None
    except cp.Fail as e:
        doc["error"] = str(e)
    finally:
        if conn is not None:
            conn.close()
    write_state()
    return 0 if doc["error"] is None else 1


if __name__ == "__main__":
    sys.exit(main())
