#!/usr/bin/python3
"""The SHAPE of recorded kube-apiserver answers (tools/kube/record-fixtures.sh).

    fixture_shape.py DIR            one line per fixture of DIR/index.tsv: status, content type,
                                    HTTP version and what the body is (kinds, event types,
                                    reasons, codes, list sizes), free of uids, times and RVs
    fixture_shape.py --expect DIR   exit 1 unless each fixture shows what it is recorded for

Two recordings of the same server compare equal by shape; a server (or recorder) that answers
differently does not.
"""
import json
import sys


def load_index(d):
    rows = []
    with open(f"{d}/index.tsv") as f:
        for line in f:
            name, status, ctype, ver, method, path = line.rstrip("\n").split("\t")
            rows.append({"name": name, "status": int(status), "ctype": ctype.split(";")[0],
                         "ver": ver, "method": method, "path": path})
    return rows


def obj_shape(o):
    """A JSON object's shape as a small dict."""
    if not isinstance(o, dict):
        return {"json": type(o).__name__}
    s = {"kind": o.get("kind")}
    md = o.get("metadata") or {}
    if s["kind"] == "Status":
        s.update(status=o.get("status"), reason=o.get("reason"), code=o.get("code"),
                 causes=[c.get("reason") for c in (o.get("details") or {}).get("causes", [])],
                 retry="retryAfterSeconds" in (o.get("details") or {}),
                 has_continue=bool(md.get("continue")))
    elif str(s["kind"]).endswith("List"):
        s.update(items=len(o.get("items") or []), has_continue=bool(md.get("continue")),
                 remaining=md.get("remainingItemCount"), has_rv=bool(md.get("resourceVersion")))
    elif s["kind"] == "TokenReview":
        st = o.get("status") or {}
        s.update(authenticated=st.get("authenticated", False), has_error=bool(st.get("error")),
                 user=(st.get("user") or {}).get("username"),
                 groups=sorted((st.get("user") or {}).get("groups") or []),
                 extra=sorted(((st.get("user") or {}).get("extra") or {}).keys()),
                 audiences=st.get("audiences"))
    elif s["kind"] == "TokenRequest":
        st = o.get("status") or {}
        s.update(has_token=bool(st.get("token")), audiences=(o.get("spec") or {}).get("audiences"),
                 bound=((o.get("spec") or {}).get("boundObjectRef") or {}).get("kind"))
    else:
        s.update(name=md.get("name"), has_rv=bool(md.get("resourceVersion")))
    return s


def body_shape(d, row):
    raw = open(f"{d}/{row['name']}", "rb").read()
    if row["name"].endswith(".jsonl"):
        events = []
        for line in raw.split(b"\n"):
            if not line.strip():
                continue
            ev = json.loads(line)
            o = ev.get("object") or {}
            e = {"type": ev.get("type"), "kind": o.get("kind")}
            if ev.get("type") == "ERROR":
                e.update(reason=o.get("reason"), code=o.get("code"))
            # The server sends a BOOKMARK about 2 s before timeoutSeconds and may repeat it:
            # a run of them is one step of the shape.
            if e["type"] == "BOOKMARK" and events and events[-1]["type"] == "BOOKMARK":
                continue
            events.append(e)
        return {"events": events, "ends_with_newline": raw.endswith(b"\n") or not raw}
    try:
        return obj_shape(json.loads(raw))
    except ValueError:
        return {"text": raw.decode(errors="replace").splitlines()[0] if raw else ""}


def shapes(d):
    out = []
    for row in load_index(d):
        out.append((row, body_shape(d, row)))
    return out


def types(b):
    return [e["type"] for e in b.get("events", [])]


# name -> (status, predicate over the body shape, what it shows)
EXPECT = {
    "list-page1.json": (200, lambda b: b["kind"] == "ConfigMapList" and b["items"] == 2 and
                        b["has_continue"] and b["remaining"] == 3, "first page, continue, 3 left"),
    "list-page2.json": (200, lambda b: b["items"] == 2 and b["has_continue"], "second page"),
    "list-page3.json": (200, lambda b: b["items"] == 1 and not b["has_continue"], "last page"),
    "watch-events.jsonl": (200, lambda b: types(b) == ["ADDED", "MODIFIED", "DELETED", "BOOKMARK"]
                           and b["ends_with_newline"], "ADDED MODIFIED DELETED BOOKMARK"),
    "list-continue-expired.json": (410, lambda b: b["kind"] == "Status" and b["reason"] == "Expired"
                                   and b["code"] == 410, "stale continue: HTTP 410 Expired"),
    "list-rv-expired.json": (410, lambda b: b["reason"] == "Expired", "exact old RV: HTTP 410"),
    "watch-expired.jsonl": (200, lambda b: b["events"] == [{"type": "ERROR", "kind": "Status",
                                                           "reason": "Expired", "code": 410}],
                            "in-stream ERROR 410 Expired"),
    "list-rv-too-large.json": (504, lambda b: b["reason"] == "Timeout" and
                               "ResourceVersionTooLarge" in b["causes"], "504 TooLarge"),
    "unserved-version.json": (404, lambda b: True, "unserved version"),
    "unserved-group.json": (404, lambda b: True, "unserved group"),
    "tokenrequest.json": (201, lambda b: b["kind"] == "TokenRequest" and b["has_token"] and
                          b["audiences"] == ["istio-ca"] and b["bound"] == "Pod", "bound token"),
    "tokenreview.json": (201, lambda b: b["authenticated"] is True and
                         b["user"] == "system:serviceaccount:fx:echo" and
                         b["audiences"] == ["istio-ca"] and
                         "authentication.kubernetes.io/pod-name" in b["extra"], "valid token"),
    "tokenreview-wrong-audience.json": (201, lambda b: not b["authenticated"] and b["has_error"],
                                        "token of another audience refused"),
    "tokenreview-bad.json": (201, lambda b: not b["authenticated"] and b["has_error"],
                             "bad signature refused"),
    "endpointslices.json": (200, lambda b: b["kind"] == "EndpointSliceList" and b["items"] == 1,
                            "a hand-written EndpointSlice (v1beta1)"),
    "node.json": (200, lambda b: b["kind"] == "Node" and b["name"] == "node-fx",
                  "a Node with topology labels"),
}


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--expect":
        bad = 0
        got = {row["name"]: (row, b) for row, b in shapes(sys.argv[2])}
        for name, (status, ok, what) in EXPECT.items():
            if name not in got:
                print(f"missing fixture {name} ({what})")
                bad += 1
                continue
            row, b = got[name]
            if row["status"] != status or not ok(b):
                print(f"{name}: expected {status} {what}; got {row['status']} {json.dumps(b)}")
                bad += 1
        return 1 if bad else 0
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    for row, b in shapes(sys.argv[1]):
        print(f"{row['name']}\t{row['status']}\t{row['ctype']}\tHTTP/{row['ver']}\t"
              f"{json.dumps(b, sort_keys=True)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
