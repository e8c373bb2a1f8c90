#!/usr/bin/python3
"""zds_peer.py - an independent ZDS peer built from Python's socket module and
python3-protobuf, sharing no code with amesh, run against our server and our
client (tests/support/zds_helper.c plays our side).

The protobuf module is generated with protoc from proto/zds.proto at run time.
The wire rules are Istio's (reference 2.3): unix SOCK_SEQPACKET, one protobuf
message per datagram, no length prefix, the pod's netns as SCM_RIGHTS with
AddWorkload only, ZdsHello{V1} first, one WorkloadResponse{ack} per request;
ztunnel reads into 1024 bytes and refuses MSG_TRUNC and MSG_CTRUNC.

  client  we are ztunnel: Hello, the snapshot (add w1 with a netns fd that must
          be this host's network namespace, keep k1, SnapshotSent), then the
          live changes (add w2, NACKed on purpose, del w1); the helper must
          report each answer, the NACK with its text.
  server  we are the node agent: the helper's Hello, add w1 with our netns,
          keep, SnapshotSent, an add it NACKs, del; then a del carrying an fd,
          which must make it hang up and come back with a new Hello.
  all     both (the default).

Exit code 0 when everything held; the first failure is printed.
"""
import argparse
import array
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MSG_MAX = 1024
TIMEOUT = 5.0


class Fail(Exception):
    pass


def load_pb():
    d = tempfile.mkdtemp(prefix="zds_peer_pb.")
    try:
        subprocess.run(["protoc", "-I" + os.path.join(ROOT, "proto"), "-I/usr/include",
                        "--python_out=" + d, os.path.join(ROOT, "proto", "zds.proto")], check=True)
        sys.path.insert(0, d)
        import zds_pb2
    finally:
        shutil.rmtree(d, ignore_errors=True)
    return zds_pb2


pb = load_pb()
NETNS_INO = os.stat("/proc/self/ns/net").st_ino


def recv(sock):
    """One datagram and its descriptors, refused as ztunnel refuses them."""
    data, anc, flags, _ = sock.recvmsg(MSG_MAX, socket.CMSG_SPACE(4 * 4))
    fds = []
    for level, kind, blob in anc:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            a = array.array("i")
            a.frombytes(blob[:len(blob) - len(blob) % a.itemsize])
            fds.extend(a)
    if flags & (socket.MSG_TRUNC | socket.MSG_CTRUNC):
        for fd in fds:
            os.close(fd)
        raise Fail("datagram or ancillary data truncated (flags %#x)" % flags)
    return data, fds


def send(sock, msg, fd=None):
    data = msg.SerializeToString()
    if len(data) > MSG_MAX:
        raise Fail("we built a datagram over %d bytes" % MSG_MAX)
    anc = [] if fd is None else [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [fd]))]
    sock.sendmsg([data], anc)


def check_netns(fd):
    link = os.readlink("/proc/self/fd/%d" % fd)
    if not link.startswith("net:["):
        raise Fail("the fd is %s, not a network namespace" % link)
    if os.fstat(fd).st_ino != NETNS_INO:
        raise Fail("the fd is %s, not the helper's namespace net:[%d]" % (link, NETNS_INO))


def ack(sock, error=""):
    send(sock, pb.WorkloadResponse(ack=pb.Ack(error=error)))


def expect(cond, what):
    if not cond:
        raise Fail(what)


def helper_lines(proc, timeout=10.0):
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        raise Fail("the helper did not finish; stdout:\n%s\nstderr:\n%s" % (out, err))
    if proc.returncode != 0:
        raise Fail("the helper exited %d; stdout:\n%s\nstderr:\n%s" % (proc.returncode, out, err))
    return out.splitlines()


def run_client(helper, tmp):
    """We are ztunnel; the helper is the node agent."""
    path = os.path.join(tmp, "agent.sock")
    proc = subprocess.Popen([helper, "server", path], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline().strip()
        expect(line == "ready", "helper said %r instead of ready" % line)
        expect(os.stat(path).st_mode & 0o777 == 0o600, "socket mode is not 0600")
        s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        s.settimeout(TIMEOUT)
        s.connect(path)
        send(s, pb.ZdsHello(version=pb.V1))
        seen = []
        while len(seen) < 5:
            data, fds = recv(s)
            req = pb.WorkloadRequest()
            req.ParseFromString(data)
            kind = req.WhichOneof("payload")
            if kind == "add":
                expect(len(fds) == 1, "add with %d fds" % len(fds))
                check_netns(fds[0])
                os.close(fds[0])
                wi = req.add.workload_info
                seen.append("add %s %s %s %s" % (req.add.uid, wi.name, wi.namespace,
                                                 wi.service_account))
                ack(s, "no netns here" if req.add.uid == "w2" else "")
                continue
            for fd in fds:
                os.close(fd)
            expect(not fds, "%s carried %d fds" % (kind, len(fds)))
            if kind == "keep":
                seen.append("keep " + req.keep.uid)
            elif kind == "del":
                seen.append("del " + getattr(req, "del").uid)  # "del" is a Python keyword
            elif kind == "snapshot_sent":
                seen.append("snapshot_sent")
            else:
                raise Fail("unexpected request %r" % kind)
            ack(s)
        want = ["add w1 pod-1 default sa-1", "keep k1", "snapshot_sent",
                "add w2 pod-2 default sa-2", "del w1"]
        expect(seen == want, "requests %r, wanted %r" % (seen, want))
        lines = helper_lines(proc)
        want = ["ack add w1 ok", "ack keep k1 ok", "ack snapshot_sent - ok",
                "ack add w2 no netns here", "ack del w1 ok"]
        expect(lines == want, "helper reported %r, wanted %r" % (lines, want))
        s.close()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    print("client: ok (snapshot with a netns fd, keep, live add NACKed, del)")


def add_req(uid, name):
    return pb.WorkloadRequest(add=pb.AddWorkload(
        uid=uid, workload_info=pb.WorkloadInfo(name=name, namespace="default",
                                               service_account="sa-1")))


def del_req(uid):
    r = pb.WorkloadRequest()
    getattr(r, "del").uid = uid
    return r


def expect_ack(sock, error=""):
    data, fds = recv(sock)
    expect(not fds, "the ack carried fds")
    resp = pb.WorkloadResponse()
    resp.ParseFromString(data)
    expect(resp.WhichOneof("payload") == "ack", "answer is not an ack")
    expect(resp.ack.error == error, "ack error %r, wanted %r" % (resp.ack.error, error))


def accept_hello(lsock):
    c, _ = lsock.accept()
    c.settimeout(TIMEOUT)
    data, fds = recv(c)
    expect(not fds, "Hello carried fds")
    h = pb.ZdsHello()
    h.ParseFromString(data)
    expect(h.version == pb.V1, "Hello version %d" % h.version)
    return c


def run_server(helper, tmp):
    """We are the node agent; the helper is ztunnel."""
    path = os.path.join(tmp, "ztunnel.sock")
    lsock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    lsock.bind(path)
    lsock.listen(4)
    lsock.settimeout(TIMEOUT)
    proc = subprocess.Popen([helper, "client", path], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    netns = os.open("/proc/self/ns/net", os.O_RDONLY)
    try:
        c = accept_hello(lsock)
        send(c, add_req("w1", "pod-1"), netns)
        expect_ack(c)
        send(c, pb.WorkloadRequest(keep=pb.KeepWorkload(uid="k1")))
        expect_ack(c)
        send(c, pb.WorkloadRequest(snapshot_sent=pb.SnapshotSent()))
        expect_ack(c)
        send(c, add_req("w9", "bad"), netns)
        expect_ack(c, "bad pod")
        send(c, del_req("w1"))
        expect_ack(c)
        # A descriptor on a del is a protocol error: the client hangs up and reconnects.
        send(c, del_req("w1"), netns)
        data, fds = recv(c)
        expect(data == b"" and not fds, "the client answered a del with an fd")
        c.close()
        t0 = time.monotonic()
        c = accept_hello(lsock)
        expect(time.monotonic() - t0 < 2.0, "reconnect took too long")
        send(c, pb.WorkloadRequest(snapshot_sent=pb.SnapshotSent()))
        expect_ack(c)
        send(c, del_req("last"))
        expect_ack(c)
        lines = helper_lines(proc)
        want = ["connected", "add w1 pod-1 default sa-1 net:[%d]" % NETNS_INO, "keep k1",
                "snapshot", "add w9 bad default sa-1 net:[%d]" % NETNS_INO, "del w1",
                "disconnected protocol error", "connected", "snapshot", "del last"]
        expect(lines == want, "helper reported %r, wanted %r" % (lines, want))
        c.close()
    finally:
        os.close(netns)
        lsock.close()
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    print("server: ok (netns fd received, NACK, fd on a del refused, reconnect)")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--helper", required=True, help="path to the zds_helper binary")
    ap.add_argument("mode", nargs="?", default="all", choices=["all", "client", "server"])
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="zds_peer.")
    try:
        if args.mode in ("all", "client"):
            run_client(args.helper, tmp)
        if args.mode in ("all", "server"):
            run_server(args.helper, tmp)
    except (Fail, OSError) as e:
        print("FAIL: %s" % e)
        return 1
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("PASS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
