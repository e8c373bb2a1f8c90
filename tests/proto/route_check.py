#!/usr/bin/python3
"""route_check.py - the independent side of the Route round trip (issue 10 section 3).

Python's protobuf runtime, with modules protoc generated from proto/waypoint.proto,
writes an amesh.waypoint.v1.Route with every field set; lib/route decodes it and
dumps its compiled table as JSON, which this script compares with what it wrote.
Then it decodes a Route that the C side packed (protobuf-c) and checks every field.
Usage: route_check.py PYOUT_DIR write DIR | dump DIR | c DIR
"""
import json
import sys

sys.path.insert(0, sys.argv[1])
import waypoint_pb2  # noqa: E402

SVC = ("default", "reviews.default.svc.cluster.local")


def expect(cond, what):
    if not cond:
        print("FAIL:", what)
        sys.exit(1)
    print("ok:", what)


def build():
    r = waypoint_pb2.Route()
    r.service.namespace, r.service.hostname = SVC
    r.port = 9080
    r.protocol = waypoint_pb2.HTTP2
    r.sources.extend(["HTTPRoute/default/reviews", "HTTPRoute/default/canary"])
    a = r.rules.add()
    a.name = "default.canary.0"
    a.match.prefix = "/api/"
    h = a.match.headers.add()
    h.name, h.exact = "X-Canary", "yes"
    h = a.match.headers.add()
    h.name, h.regex = "user-agent", ".*Firefox.*"
    q = a.match.query.add()
    q.name, q.regex = "id", "[0-9]+"
    a.match.method = "GET"
    for host, w in (("reviews-v1", 90), ("reviews-v2", 10)):
        b = a.backends.add()
        b.service.namespace, b.service.hostname = "default", host + ".default.svc.cluster.local"
        b.port, b.weight = 9080, w
    s = a.request_headers.set.add()
    s.name, s.value = "X-Route", "canary"
    s = a.request_headers.add.add()
    s.name, s.value = "x-trace", "1"
    a.request_headers.remove.append("x-debug")
    a.response_headers.remove.append("server")
    a.rewrite.hostname = "reviews.internal"
    a.rewrite.prefix = "/v2/"
    a.timeout.seconds, a.timeout.nanos = 3, 500000000
    a.backend_timeout.seconds = 1
    a.retry.attempts = 4
    a.retry.codes.extend([502, 503])
    a.retry.backoff.nanos = 50000000
    b = r.rules.add()
    b.name = "default.redirect.0"
    b.match.exact = "/old"
    b.redirect.scheme, b.redirect.hostname, b.redirect.port = "https", "reviews.example.com", 8443
    b.redirect.full = "/new"
    b.redirect.status = 301
    c = r.rules.add()
    c.name = "default.maint.0"
    c.match.regex = "/maint/.*"
    c.direct_status = 503
    return r


def write(d):
    open(d + "/route.bin", "wb").write(build().SerializeToString())
    bad = build()
    bad.rules[1].match.exact = "old"  # not an absolute path: the C side must refuse it
    open(d + "/bad.bin", "wb").write(bad.SerializeToString())
    print("ok: wrote route.bin and bad.bin")


def dump(d):
    j = json.load(open(d + "/route.json"))
    r = build()
    expect(j["name"] == "default/reviews.default.svc.cluster.local:9080", "table key")
    expect((j["service"]["namespace"], j["service"]["hostname"]) == SVC, "service")
    expect(j["port"] == r.port and j["protocol"] == "HTTP2", "port, protocol")
    expect(j["sources"] == list(r.sources) and j["default"] is False, "sources")
    expect([x["name"] for x in j["rules"]] == [x.name for x in r.rules], "rule names, in order")
    a = j["rules"][0]
    expect(a["match"]["prefix"] == "/api/" and a["match"]["method"] == "GET", "prefix, method")
    expect(a["match"]["headers"] == [{"name": "x-canary", "exact": "yes"},
                                     {"name": "user-agent", "regex": ".*Firefox.*"}],
           "header matches (names lower-cased)")
    expect(a["match"]["query"] == [{"name": "id", "regex": "[0-9]+"}], "query match")
    expect([(b["service"]["hostname"], b["port"], b["weight"]) for b in a["backends"]] ==
           [("reviews-v1.default.svc.cluster.local", 9080, 90),
            ("reviews-v2.default.svc.cluster.local", 9080, 10)], "weighted backends")
    expect(a["requestHeaders"] == {"set": [{"name": "x-route", "value": "canary"}],
                                   "add": [{"name": "x-trace", "value": "1"}],
                                   "remove": ["x-debug"]}, "request header modifier")
    expect(a["responseHeaders"]["remove"] == ["server"], "response header modifier")
    expect(a["rewrite"] == {"hostname": "reviews.internal", "prefix": "/v2"}, "rewrite (prefix without its '/')")
    expect(a["timeout"] == "3.500s" and a["backendTimeout"] == "1.000s", "timeouts")
    expect(a["retry"]["attempts"] == 4 and a["retry"]["codes"] == [502, 503] and
           a["retry"]["backoff"] == "0.050s", "retry")
    b = j["rules"][1]
    expect(b["match"] == {"exact": "/old"}, "exact match")
    expect(b["redirect"] == {"scheme": "https", "hostname": "reviews.example.com", "port": 8443,
                             "full": "/new", "status": 301}, "redirect")
    expect(b["backends"] == [], "redirect without backends")
    c = j["rules"][2]
    expect(c["match"] == {"regex": "/maint/.*"} and c["directStatus"] == 503, "regex, direct status")
    expect(c["retry"]["attempts"] == 2 and c["retry"]["retryOn"] ==
           "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes",
           "Istio's default retry where none is given")


def c_side(d):
    r = waypoint_pb2.Route()
    r.ParseFromString(open(d + "/c_route.bin", "rb").read())
    expect((r.service.namespace, r.service.hostname) == ("default", "echo.default.svc.cluster.local")
           and r.port == 8080, "C: service, port")
    expect(len(r.rules) == 2, "C: two rules")
    a, b = r.rules
    expect(a.name == "r0" and a.match.WhichOneof("path") == "prefix" and a.match.prefix == "/api",
           "C: rule 0 prefix")
    expect([(k.name, k.WhichOneof("value"), k.exact or k.regex) for k in a.match.headers] ==
           [("env", "exact", "prod"), ("ua", "regex", "curl/.*")], "C: header matches")
    expect([(q.name, q.exact) for q in a.match.query] == [("v", "2")] and a.match.method == "POST",
           "C: query, method")
    expect([(x.service.hostname, x.port, x.weight) for x in a.backends] == [("v1", 80, 7), ("v2", 81, 3)],
           "C: backends")
    expect([(x.name, x.value) for x in a.request_headers.set] == [("x-a", "1")] and
           list(a.response_headers.remove) == ["server"], "C: header modifiers")
    expect(a.rewrite.WhichOneof("path") == "prefix" and a.rewrite.prefix == "" and
           a.rewrite.hostname == "h.example", "C: rewrite with an empty prefix (oneof set)")
    expect(a.timeout.seconds == 2 and a.timeout.nanos == 250000000, "C: timeout")
    expect(a.retry.attempts == 3 and list(a.retry.codes) == [503], "C: retry")
    expect(b.HasField("redirect"), "C: rule 1 redirect")
    expect(b.redirect.scheme == "https" and b.redirect.status == 308 and b.redirect.full == "/x",
           "C: redirect fields")
    expect(not b.HasField("match"), "C: rule without a match")


if __name__ == "__main__":
    {"write": write, "dump": dump, "c": c_side}[sys.argv[2]](sys.argv[3])
