#!/usr/bin/python3
"""zds_probe.py - an independent ZDS peer (Python's socket module, SCM_RIGHTS and
python3-protobuf; no amesh code) for the real mesh-cni and ztunnel binaries.

  as-ztunnel PATH --expect NS/NAME --netns FILE
      connects to mesh-cni's socket as ztunnel would: ZdsHello{V1}, then acks every
      request up to SnapshotSent; passes if an AddWorkload for NS/NAME arrived with
      exactly one descriptor, the network namespace FILE (the same inode).
  as-agent PATH --netns FILE --uid UID --name NAME --namespace NS --sa SA
      listens on PATH as mesh-cni would; the ztunnel that connects must say Hello,
      ack the AddWorkload (with FILE's descriptor) and the SnapshotSent with an
      empty error.
Every wait is bounded (--timeout). Prints what happened; exit 0 on success.
"""
import argparse
import array
import os
import shutil
import socket
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def load_pb():
    d = tempfile.mkdtemp(prefix="zds_probe_pb.")
    try:
        subprocess.run(["protoc", "-I" + os.path.join(ROOT, "proto"), "-I/usr/include",
                        "--python_out=" + d, os.path.join(ROOT, "proto", "zds.proto")], check=True)
        sys.path.insert(0, d)
        import zds_pb2
    finally:
        shutil.rmtree(d, ignore_errors=True)
    return zds_pb2


pb = load_pb()


def recv(sock):
    data, anc, flags, _ = sock.recvmsg(1024, socket.CMSG_SPACE(4 * 4))
    if flags & (socket.MSG_TRUNC | socket.MSG_CTRUNC):
        raise SystemExit("truncated datagram")
    fds = array.array("i")
    for level, typ, payload in anc:
        if level == socket.SOL_SOCKET and typ == socket.SCM_RIGHTS:
            fds.frombytes(payload[: len(payload) - len(payload) % 4])
    return data, list(fds)


def as_ztunnel(a):
    want_ino = os.stat(a.netns).st_ino
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    s.settimeout(a.timeout)
    s.connect(a.path)
    s.send(pb.ZdsHello(version=pb.V1).SerializeToString())
    found = False
    while True:
        data, fds = recv(s)
        req = pb.WorkloadRequest()
        req.ParseFromString(data)
        kind = req.WhichOneof("payload")
        if kind == "add":
            w = req.add.workload_info
            key = "%s/%s" % (w.namespace, w.name)
            ino = os.fstat(fds[0]).st_ino if len(fds) == 1 else None
            link = os.readlink("/proc/self/fd/%d" % fds[0]) if len(fds) == 1 else ""
            print("add %s uid=%s sa=%s fds=%d %s" % (key, req.add.uid, w.service_account, len(fds), link))
            # The descriptor may name the bind-mounted file (/run/netns/X): the inode decides.
            if key == a.expect and ino == want_ino:
                found = True
        elif fds:
            raise SystemExit("descriptor on a %s" % kind)
        else:
            print(kind)
        for fd in fds:
            os.close(fd)
        s.send(pb.WorkloadResponse(ack=pb.Ack(error="")).SerializeToString())
        if kind == "snapshot_sent":
            break
    s.close()
    print("result:", "ok" if found else "FAILED (no add for %s with its netns)" % a.expect)
    return 0 if found else 1


def as_agent(a):
    if os.path.exists(a.path):
        os.unlink(a.path)
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    srv.bind(a.path)
    srv.listen(1)
    srv.settimeout(a.timeout)
    c, _ = srv.accept()
    c.settimeout(a.timeout)
    data, fds = recv(c)
    hello = pb.ZdsHello()
    hello.ParseFromString(data)
    print("hello version", hello.version)
    if hello.version != pb.V1 or fds:
        raise SystemExit("bad hello")
    fd = os.open(a.netns, os.O_RDONLY)
    add = pb.WorkloadRequest(add=pb.AddWorkload(uid=a.uid, workload_info=pb.WorkloadInfo(
        name=a.name, namespace=a.namespace, service_account=a.sa)))
    c.sendmsg([add.SerializeToString()], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [fd]))])
    os.close(fd)
    ok = True
    for what, msg in (("add", None), ("snapshot", pb.WorkloadRequest(snapshot_sent=pb.SnapshotSent()))):
        if msg is not None:
            c.send(msg.SerializeToString())
        data, fds = recv(c)
        r = pb.WorkloadResponse()
        r.ParseFromString(data)
        print("%s acked, error=%r" % (what, r.ack.error))
        ok = ok and r.WhichOneof("payload") == "ack" and r.ack.error == "" and not fds
    c.close()
    srv.close()
    print("result:", "ok" if ok else "FAILED")
    return 0 if ok else 1


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    z = sub.add_parser("as-ztunnel")
    z.add_argument("path")
    z.add_argument("--expect", required=True)
    z.add_argument("--netns", required=True)
    g = sub.add_parser("as-agent")
    g.add_argument("path")
    g.add_argument("--netns", required=True)
    g.add_argument("--uid", required=True)
    g.add_argument("--name", required=True)
    g.add_argument("--namespace", required=True)
    g.add_argument("--sa", required=True)
    for p in (z, g):
        p.add_argument("--timeout", type=float, default=10)
    a = ap.parse_args()
    return as_ztunnel(a) if a.cmd == "as-ztunnel" else as_agent(a)


if __name__ == "__main__":
    sys.exit(main())
