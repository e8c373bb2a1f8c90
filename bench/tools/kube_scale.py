#!/usr/bin/python3
"""bench/tools/kube_scale.py - the change driver and report of bench/kube-scale.sh.

  kube_scale.py files DIR COUNT            the pods of tests/support/kube_pods.py as YAML files
                                           for meshd --config-dir (100 pods a file, a Namespace)
  kube_scale.py changes SOURCE TARGET ZTLOG COUNT ROUNDS OUT
                                           ROUNDS rounds of: create a probe pod, change its IP,
                                           change a label, delete it; SOURCE "kube" (TARGET: the
                                           kube.sh directory: API requests) or "dir" (TARGET: the
                                           config directory: file writes, renamed into place)
  kube_scale.py report RESULTS.jsonl       the table (markdown)

A change's latency is from just before the request (kube; for a create, before the POST that
precedes the status PATCH giving the pod its IP) or the rename (dir) to the timestamp ztunnel
logs (--log-level debug, "xDS: model now N workloads") when its model took the new resources.
One change at a time, 0.3 s apart, so each ztunnel model update is the change's; creates and
deletes are checked by the workload count, and the first round's IP and label changes by
ztunnel's config_dump.
"""
import datetime
import json
import os
import re
import statistics
import sys
import time
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../tests/support"))
import kube_pods  # noqa: E402

PER_FILE = 100
MODEL_RE = re.compile(r"^(\S+)\s.*xDS: model now (\d+) workloads")


def yaml_str(v):
    return json.dumps(v)  # a JSON string is a YAML scalar


def pod_yaml(o):
    m, st = o["metadata"], o["status"]
    labels = "".join("\n    %s: %s" % (k, yaml_str(v)) for k, v in sorted(m["labels"].items()))
    return ("apiVersion: v1\nkind: Pod\nmetadata:\n  name: %s\n  namespace: %s\n  labels:%s\n"
            "spec:\n  nodeName: node-1\n  containers:\n  - name: c\n    image: none\n"
            "status:\n  phase: Running\n  podIP: %s\n  podIPs:\n  - ip: %s\n"
            "  conditions:\n  - type: Ready\n    status: \"True\"\n"
            % (m["name"], m["namespace"], labels, st["podIP"], st["podIP"]))


def write_atomic(path, text):
    tmp = os.path.join(os.path.dirname(path), "." + os.path.basename(path) + ".tmp")
    with open(tmp, "w") as f:
        f.write(text)
    os.rename(tmp, path)


def cmd_files(d, n):
    os.makedirs(d, exist_ok=True)
    ns = kube_pods.namespace_object()
    write_atomic(os.path.join(d, "00-namespace.yaml"),
                 "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: %s\n  labels:\n"
                 "    istio.io/dataplane-mode: ambient\n" % ns["metadata"]["name"])
    for f in range(0, n, PER_FILE):
        docs = [pod_yaml(kube_pods.pod_object(i)) for i in range(f, min(n, f + PER_FILE))]
        write_atomic(os.path.join(d, "pods-%05d.yaml" % f), "---\n".join(docs))


class ZtLog:
    """Follows ztunnel's log for "model now" lines."""

    def __init__(self, path):
        self.f = open(path)
        self.f.seek(0, 2)
        self.buf = ""

    def next_model(self, timeout=20.0):
        deadline = time.time() + timeout
        while time.time() < deadline:
            chunk = self.f.read()
            if chunk:
                self.buf += chunk
            while "\n" in self.buf:
                line, self.buf = self.buf.split("\n", 1)
                m = MODEL_RE.match(line)
                if m:
                    ts = datetime.datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S.%fZ")
                    ts = ts.replace(tzinfo=datetime.timezone.utc).timestamp()
                    return ts, int(m.group(2))
            time.sleep(0.002)
        sys.exit("no ztunnel model update within %.0f s" % timeout)


def config_dump_workload(name):
    d = json.load(urllib.request.urlopen("http://127.0.0.1:15000/config_dump", timeout=30))
    for w in d["workloads"]:
        if w.get("name") == name and w.get("namespace") == kube_pods.NAMESPACE:
            return w
    return None


class KubeSource:
    def __init__(self, k):
        self.api = kube_pods.Api(k)

    def create(self, i, ip, labels):
        self.api.create_pod(i, ip, labels)

    def set_ip(self, i, ip, labels):
        self.api.set_ip(i, ip)

    def set_labels(self, i, ip, labels):
        self.api.set_labels(i, labels)

    def delete(self, i):
        self.api.delete_pod(i)


class DirSource:
    def __init__(self, d):
        self.d = d

    def path(self, i):
        return os.path.join(self.d, "probe-%05d.yaml" % i)

    def create(self, i, ip, labels):
        write_atomic(self.path(i), pod_yaml(kube_pods.pod_object(i, ip, labels)))

    set_ip = create
    set_labels = create

    def delete(self, i):
        os.unlink(self.path(i))


def cmd_changes(source, target, ztlog, n, rounds, out):
    src = KubeSource(target) if source == "kube" else DirSource(target)
    log = ZtLog(ztlog)
    lat = {"create": [], "ip": [], "label": [], "delete": []}

    def timed(op, want_count, fn, *args):
        time.sleep(0.3)
        t0 = time.time()
        fn(*args)
        ts, count = log.next_model()
        if want_count is not None and count != want_count:
            sys.exit("%s: ztunnel has %d workloads, expected %d" % (op, count, want_count))
        lat[op].append((ts - t0) * 1000.0)

    for r in range(rounds):
        i = n + r  # a probe pod of its own per round
        labels = {"app": "probe", "version": "v1"}
        timed("create", n + 1, src.create, i, kube_pods.pod_ip(i), labels)
        timed("ip", n + 1, src.set_ip, i, kube_pods.pod_ip(i, 1), labels)
        if r == 0:
            w = config_dump_workload(kube_pods.pod_name(i))
            if w is None or w.get("addresses") != [kube_pods.pod_ip(i, 1)]:
                sys.exit("the IP change is not in ztunnel's model: %s" % w)
        labels = {"app": "probe", "version": "v2"}
        timed("label", n + 1, src.set_labels, i, kube_pods.pod_ip(i, 1), labels)
        if r == 0:
            w = config_dump_workload(kube_pods.pod_name(i))
            if w is None or w.get("canonicalRevision") != "v2":
                sys.exit("the label change is not in ztunnel's model: %s" % w)
        timed("delete", n, src.delete, i)
    with open(out, "a") as f:
        f.write(json.dumps({"source": source, "pods": n, "latency_ms": lat}) + "\n")


def pct(v, p):
    v = sorted(v)
    k = (len(v) - 1) * p
    lo = int(k)
    hi = min(lo + 1, len(v) - 1)
    return v[lo] + (v[hi] - v[lo]) * (k - lo)


def cmd_report(path):
    rows = [json.loads(line) for line in open(path) if line.strip()]
    by = {}
    for r in rows:
        by.setdefault((r["source"], r["pods"]), {}).update(r)
    sizes = sorted({p for _, p in by})
    ops = [("create", "create"), ("ip", "IP change"), ("label", "label change"),
           ("delete", "delete")]
    print("| pods | measure | kube (API) | directory | kube / directory |")
    print("|---:|---|---:|---:|---:|")
    for n in sizes:
        k, d = by.get(("kube", n), {}), by.get(("dir", n), {})

        def row(name, kv, dv, unit, fmt="%.0f"):
            ratio = "%.2f" % (kv / dv) if kv is not None and dv else "-"
            ks = (fmt % kv) + unit if kv is not None else "-"
            ds = (fmt % dv) + unit if dv is not None else "-"
            print("| %d | %s | %s | %s | %s |" % (n, name, ks, ds, ratio))

        for op, label in ops:
            kl, dl = k.get("latency_ms", {}).get(op), d.get("latency_ms", {}).get(op)
            for p, pn in ((0.5, "median"), (0.9, "p90")):
                row("%s, %s" % (label, pn), pct(kl, p) if kl else None,
                    pct(dl, p) if dl else None, " ms")
        row("meshd ready (first list / first read)", k.get("ready_ms"), d.get("ready_ms"), " ms")
        row("ztunnel synced", k.get("synced_ms"), d.get("synced_ms"), " ms")
        row("meshd rebuild per change, median (its log)", k.get("rebuild_ms"),
            d.get("rebuild_ms"), " ms")
        row("meshd RSS after sync", k.get("rss_kb", 0) / 1024 if k else None,
            d.get("rss_kb", 0) / 1024 if d else None, " MB", "%.1f")
        row("meshd RSS after the changes", k.get("rss_after_kb", 0) / 1024 if k else None,
            d.get("rss_after_kb", 0) / 1024 if d else None, " MB", "%.1f")
    n_changes = [len(r["latency_ms"]["create"]) for r in rows if "latency_ms" in r]
    if n_changes:
        print("\n%d rounds of 4 changes per source and size." % min(n_changes))


def main():
    cmd = sys.argv[1]
    if cmd == "files":
        cmd_files(sys.argv[2], int(sys.argv[3]))
    elif cmd == "changes":
        cmd_changes(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]), int(sys.argv[6]),
                    sys.argv[7])
    elif cmd == "report":
        cmd_report(sys.argv[2])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
