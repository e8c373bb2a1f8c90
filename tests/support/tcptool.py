#!/usr/bin/python3
"""tcptool.py - test workloads: an echo server and clients that check what came back.

Used by the integration tests inside network namespaces. Every operation has a
deadline so a broken data path fails the test instead of hanging it.
"""
import argparse
import hashlib
import os
import socket
import sys
import threading
import time


def parse_hostport(s):
    host, _, port = s.rpartition(":")
    return host.strip("[]"), int(port)


def family_of(host):
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def serve(args):
    """Echo server; with --sha256, replies with the hex digest of all bytes at EOF."""
    host, port = args.bind, args.port
    srv = socket.socket(family_of(host), socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((host, port))
    srv.listen(4096)
    if args.ready_file:
        open(args.ready_file, "w").close()

    def handle(c, peer):
        try:
            if args.banner:
                c.sendall(("%s %s\n" % (args.banner, peer[0])).encode())
            if args.sha256:
                h = hashlib.sha256()
                n = 0
                while True:
                    b = c.recv(1 << 20)
                    if not b:
                        break
                    h.update(b)
                    n += len(b)
                c.sendall(("%d %s\n" % (n, h.hexdigest())).encode())
                c.shutdown(socket.SHUT_WR)
            elif args.stall:
                time.sleep(args.stall)
            else:
                while True:
                    b = c.recv(65536)
                    if not b:
                        c.shutdown(socket.SHUT_WR)
                        break
                    c.sendall(b)
        except OSError:
            pass
        finally:
            c.close()

    while True:
        c, peer = srv.accept()
        threading.Thread(target=handle, args=(c, peer), daemon=True).start()


def connect(args):
    host, port = parse_hostport(args.connect)
    s = socket.socket(family_of(host), socket.SOCK_STREAM)
    s.settimeout(args.timeout)
    if args.bind:
        s.bind((args.bind, 0))
    s.connect((host, port))
    return s


def echo(args):
    """Sends a message, half-closes, and expects exactly the same bytes back."""
    s = connect(args)
    msg = args.message.encode()
    s.sendall(msg)
    s.shutdown(socket.SHUT_WR)
    got = b""
    while True:
        b = s.recv(65536)
        if not b:
            break
        got += b
    s.close()
    if got != msg:
        print("echo mismatch: sent %r got %r" % (msg, got), file=sys.stderr)
        return 1
    print("echo ok: %d bytes" % len(got))
    return 0


def bulk(args):
    """Streams N pseudo-random bytes to a --sha256 server and compares digests."""
    s = connect(args)
    h = hashlib.sha256()
    block = os.urandom(1 << 20)
    left = args.bytes
    i = 0
    while left > 0:
        chunk = block[: min(left, len(block))]
        # vary the data so a stuck or repeated block changes the digest
        chunk = i.to_bytes(8, "big") + chunk[8:] if len(chunk) >= 8 else chunk
        s.sendall(chunk)
        h.update(chunk)
        left -= len(chunk)
        i += 1
    s.shutdown(socket.SHUT_WR)
    reply = b""
    while True:
        b = s.recv(4096)
        if not b:
            break
        reply += b
    n, digest = reply.decode().split()
    if int(n) != args.bytes or digest != h.hexdigest():
        print("bulk mismatch: sent %d %s, server saw %s %s" % (args.bytes, h.hexdigest(), n, digest),
              file=sys.stderr)
        return 1
    print("bulk ok: %d bytes sha256 %s" % (args.bytes, digest))
    return 0


def many(args):
    """Opens N concurrent connections, each echoing a distinct payload; all must match."""
    socks = []
    for i in range(args.count):
        socks.append(connect(args))
    payloads = [("conn-%06d:" % i).encode() * args.repeat for i in range(args.count)]
    for s, p in zip(socks, payloads):
        s.sendall(p)
        s.shutdown(socket.SHUT_WR)
    total = 0
    bad = 0
    for s, p in zip(socks, payloads):
        got = b""
        while True:
            b = s.recv(65536)
            if not b:
                break
            got += b
        s.close()
        total += len(got)
        if got != p:
            bad += 1
    expected = sum(len(p) for p in payloads)
    print("many: %d connections, %d/%d bytes echoed, %d mismatched" % (args.count, total, expected, bad))
    return 0 if bad == 0 and total == expected else 1


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("serve")
    p.add_argument("--bind", required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--sha256", action="store_true")
    p.add_argument("--banner")
    p.add_argument("--stall", type=float, default=0)
    p.add_argument("--ready-file")
    for name in ("echo", "bulk", "many"):
        p = sub.add_parser(name)
        p.add_argument("--connect", required=True)
        p.add_argument("--bind")
        p.add_argument("--timeout", type=float, default=20)
        p.add_argument("--message", default="hello through the mesh")
        p.add_argument("--bytes", type=int, default=1 << 20)
        p.add_argument("--count", type=int, default=10)
        p.add_argument("--repeat", type=int, default=100)
    args = ap.parse_args()
    if args.cmd == "serve":
        return serve(args)
    return {"echo": echo, "bulk": bulk, "many": many}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
