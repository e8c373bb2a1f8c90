#!/usr/bin/python3
"""Pods at scale through the real API server (tests/support/kube.sh's kube_up), for test 47 and
bench/kube-scale.sh: namespace "scale" (ambient) and pods p00000.. bound to node-1, each then made
Running and Ready with an IP through pods/status as a kubelet would, over one keep-alive HTTPS
connection (kubectl would take a process per pod).

    kube_pods.py KUBEDIR COUNT [FIRST]   creates pods FIRST..COUNT-1 (the namespace if needed)

pod_object(i) and pod_ip(i) are the same pods as Kubernetes objects, for whoever writes them as
files (bench/tools/kube_scale.py, for meshd --config-dir)."""
import http.client
import json
import ssl
import sys
import time

NAMESPACE = "scale"


def pod_ip(i, gen=0):
    """Pod |i|'s address; |gen| > 0 gives it another one (an IP change), in 198.18.0.0/15."""
    return "198.%d.%d.%d" % (18 + gen % 2, 10 + i // 250 + 50 * (gen // 2 % 2), 1 + i % 250)


def pod_name(i):
    return "p%05d" % i


def namespace_object():
    return {"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": NAMESPACE, "labels": {"istio.io/dataplane-mode": "ambient"}}}


def pod_spec(i, labels=None):
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": pod_name(i), "namespace": NAMESPACE,
                         "labels": labels or {"app": "scale", "idx": str(i)}},
            "spec": {"nodeName": "node-1", "containers": [{"name": "c", "image": "none"}]}}


def pod_status(ip):
    return {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}],
            "conditions": [{"type": "Ready", "status": "True"}]}


def pod_object(i, ip=None, labels=None):
    """The whole pod, as the API server would hold it once running."""
    o = pod_spec(i, labels)
    o["status"] = pod_status(ip or pod_ip(i))
    return o


class Api:
    """One keep-alive connection to the API server of kube.sh's directory |k| (admin token)."""

    def __init__(self, k, host="127.0.0.1", port=6443):
        ctx = ssl.create_default_context(cafile=k + "/pki/ca.crt")
        self.tok = open(k + "/admin.token").read().strip()
        self.c = http.client.HTTPSConnection(host, port, context=ctx, timeout=30)

    def req(self, method, path, body=None, ctype="application/json", ok=(200, 201)):
        hdrs = {"Authorization": "Bearer " + self.tok, "Content-Type": ctype}
        self.c.request(method, path, json.dumps(body) if body is not None else None, hdrs)
        r = self.c.getresponse()
        data = r.read()
        if r.status not in ok:
            sys.exit("%s %s: %d %s" % (method, path, r.status, data[:300]))
        return r.status

    def create_pod(self, i, ip=None, labels=None):
        self.req("POST", "/api/v1/namespaces/%s/pods" % NAMESPACE, pod_spec(i, labels))
        self.set_ip(i, ip or pod_ip(i))

    def set_ip(self, i, ip):
        self.req("PATCH", "/api/v1/namespaces/%s/pods/%s/status" % (NAMESPACE, pod_name(i)),
                 {"status": pod_status(ip)}, "application/merge-patch+json")

    def set_labels(self, i, labels):
        self.req("PATCH", "/api/v1/namespaces/%s/pods/%s" % (NAMESPACE, pod_name(i)),
                 {"metadata": {"labels": labels}}, "application/merge-patch+json")

    def delete_pod(self, i):
        self.req("DELETE", "/api/v1/namespaces/%s/pods/%s" % (NAMESPACE, pod_name(i)),
                 {"kind": "DeleteOptions", "apiVersion": "v1", "gracePeriodSeconds": 0})


def main():
    k, n = sys.argv[1], int(sys.argv[2])
    first = int(sys.argv[3]) if len(sys.argv) > 3 else 0
    api = Api(k)
    t0 = time.time()
    api.req("POST", "/api/v1/namespaces", namespace_object(), ok=(200, 201, 409))
    for i in range(first, n):
        api.create_pod(i)
    print("%d pods created and Running in %.1f s" % (n - first, time.time() - t0))


if __name__ == "__main__":
    main()
