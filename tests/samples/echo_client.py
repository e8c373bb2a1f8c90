#!/usr/bin/python3
"""echo_client.py - raw clients for the echo-server test (tests/samples/echo.sh).

Things curl cannot do: send malformed or pipelined HTTP, check the TCP port's
banner, echo and half-close, open many connections at once, and hold
connections open until the server closes them. Every operation has a deadline,
so a broken server fails the test instead of hanging it. Exit 0 = as expected.
"""
import argparse
import os
import re
import select
import socket
import sys
import time

DEADLINE_S = 10


def connect(host, port):
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.create_connection((host, port), timeout=DEADLINE_S)
    assert s.family == fam
    return s


def read_to_eof(s):
    """Everything until the server closes; a timeout is a failure."""
    out = b""
    while True:
        b = s.recv(65536)
        if not b:
            return out
        out += b


def read_line(s):
    line = b""
    while not line.endswith(b"\n"):
        b = s.recv(1)
        if not b:
            raise RuntimeError("EOF before the end of the line: %r" % line)
        line += b
    return line


def raw(args):
    """Sends the escaped bytes of --send, then prints all the server sends until it closes."""
    s = connect(args.host, args.port)
    s.sendall(args.send.encode("latin-1").decode("unicode_escape").encode("latin-1"))
    if args.shut:
        s.shutdown(socket.SHUT_WR)
    sys.stdout.write(read_to_eof(s).decode("latin-1"))
    return 0


def tcp(args):
    """Banner names the pod and our own address; the echo is exact; half-close is honoured."""
    s = connect(args.host, args.port)
    banner = read_line(s).decode()
    local = s.getsockname()
    me = ("[%s]:%d" if s.family == socket.AF_INET6 else "%s:%d") % (local[0], local[1])
    want = r"^pod=%s version=%s peer=%s\n$" % (re.escape(args.pod), re.escape(args.version),
                                                re.escape(me))
    if not re.match(want, banner):
        print("banner %r does not match %r" % (banner, want))
        return 1
    print("banner ok: %s" % banner.strip())
    data = os.urandom(args.bytes)
    got = bytearray()
    sent = 0
    s.setblocking(False)
    deadline = time.monotonic() + DEADLINE_S
    shut = False
    while True:
        if time.monotonic() > deadline:
            print("timeout after %d of %d bytes back" % (len(got), len(data)))
            return 1
        w = [s] if not shut else []
        r, w, _ = select.select([s], w, [], 0.5)
        if w:
            if sent < len(data):
                sent += s.send(data[sent:sent + 65536])
            if sent == len(data):
                s.shutdown(socket.SHUT_WR)
                shut = True
        if r:
            b = s.recv(65536)
            if not b:
                break
            got += b
    if not shut or bytes(got) != data:
        print("echo differs: sent %d, got %d back (shut=%s)" % (len(data), len(got), shut))
        return 1
    print("echo ok: %d bytes, then EOF after our FIN" % len(got))
    return 0


def many(args):
    """Opens --conns connections at once, then uses every one (TCP echo or HTTP keep-alive)."""
    socks = [connect(args.host, args.port) for _ in range(args.conns)]
    for i, s in enumerate(socks):
        if args.http:
            s.sendall(b"GET /many/%d HTTP/1.1\r\nHost: t\r\n\r\n" % i)
        else:
            read_line(s)
            s.sendall(b"conn %d\n" % i)
    for i, s in enumerate(socks):
        if args.http:
            head = b""
            while b"\r\n\r\n" not in head:
                b = s.recv(4096)
                if not b:
                    raise RuntimeError("conn %d: EOF" % i)
                head += b
            if not head.startswith(b"HTTP/1.1 200") or (b"path=/many/%d " % i) not in head:
                print("conn %d: unexpected answer %r" % (i, head))
                return 1
        elif read_line(s) != b"conn %d\n" % i:
            print("conn %d: echo differs" % i)
            return 1
    for s in socks:
        s.close()
    print("%d connections ok" % args.conns)
    return 0


def hold(args):
    """Holds an HTTP keep-alive and a TCP connection until the server closes both."""
    h = connect(args.host, args.http_port)
    h.sendall(b"GET /hold HTTP/1.1\r\nHost: t\r\n\r\n")
    head = b""
    while b"body_bytes=0\n" not in head:
        b = h.recv(4096)
        if not b:
            raise RuntimeError("EOF before the answer")
        head += b
    t = connect(args.host, args.tcp_port)
    read_line(t)
    with open(args.ready_file, "w"):
        pass
    for s in (h, t):
        s.settimeout(30)
        if s.recv(1) != b"":
            print("unexpected bytes")
            return 1
    print("both connections closed by the server")
    return 0


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("raw")
    r.add_argument("host")
    r.add_argument("port", type=int)
    r.add_argument("--send", required=True, help="bytes, with Python escapes (\\r\\n, \\x00)")
    r.add_argument("--shut", action="store_true", help="half-close after sending")
    t = sub.add_parser("tcp")
    t.add_argument("host")
    t.add_argument("port", type=int)
    t.add_argument("--pod", required=True)
    t.add_argument("--version", required=True)
    t.add_argument("--bytes", type=int, default=1 << 20)
    m = sub.add_parser("many")
    m.add_argument("host")
    m.add_argument("port", type=int)
    m.add_argument("--conns", type=int, default=200)
    m.add_argument("--http", action="store_true")
    h = sub.add_parser("hold")
    h.add_argument("host")
    h.add_argument("http_port", type=int)
    h.add_argument("tcp_port", type=int)
    h.add_argument("--ready-file", required=True)
    args = p.parse_args()
    return {"raw": raw, "tcp": tcp, "many": many, "hold": hold}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
