#!/usr/bin/python3
"""hs_flood.py - half-open TLS handshakes against a server (test 22).

Opens --count TCP connections to --addr:--port, spread round-robin over the
--sources addresses (bound before connect), sends the first --bytes bytes of a
real TLS 1.3 ClientHello on each (made by Python's ssl over a memory BIO; 0
sends nothing, "all" the whole record) and then sends nothing more. It keeps
them open for --hold seconds, watching which ones the server closes, and
writes one status line per second to --status (and stdout at the end):

    t=<secs> opened=<n> refused=<n> open=<n> closed_by_server=<n>

"refused" counts connect() failures. --stop-file ends the hold early when the
file appears. The descriptor limit is raised to what --count needs.
"""
import argparse
import errno
import os
import resource
import select
import socket
import ssl
import sys
import time


def client_hello(groups):
    """The bytes of one real TLS 1.3 ClientHello (first flight of Python's ssl)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.set_alpn_protocols(["h2"])
    if groups:
        ctx.set_ecdh_curve(groups)
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(inc, out, server_side=False)
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return out.read()


def raise_nofile(need):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = max(soft, min(hard, need)) if hard != resource.RLIM_INFINITY else max(soft, need)
    if want > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--addr", required=True)
    ap.add_argument("--port", type=int, default=15008)
    ap.add_argument("--sources", required=True, help="comma-separated source addresses")
    ap.add_argument("--count", type=int, default=3000)
    ap.add_argument("--bytes", default="10", help="ClientHello bytes to send, or 'all'")
    ap.add_argument("--hold", type=float, default=10.0)
    ap.add_argument("--status")
    ap.add_argument("--stop-file")
    ap.add_argument("--rate", type=float, default=0, help="connections per second (0: as fast as possible)")
    args = ap.parse_args()

    hello = client_hello("prime256v1")
    prefix = hello if args.bytes == "all" else hello[: int(args.bytes)]
    sources = [s for s in args.sources.split(",") if s]
    fam = socket.AF_INET6 if ":" in args.addr else socket.AF_INET
    raise_nofile(args.count + 64)

    ep = select.epoll()
    socks = {}
    opened = refused = closed = 0
    start = time.monotonic()
    for i in range(args.count):
        if args.rate > 0:
            due = start + i / args.rate
            if due > time.monotonic():
                time.sleep(due - time.monotonic())
        s = socket.socket(fam, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        try:
            s.bind((sources[i % len(sources)], 0))
            s.settimeout(5)
            s.connect((args.addr, args.port))
            if prefix:
                s.sendall(prefix)
            s.setblocking(False)
        except OSError as e:
            refused += 1
            s.close()
            if e.errno in (errno.EMFILE, errno.ENFILE):
                break
            continue
        opened += 1
        socks[s.fileno()] = s
        ep.register(s.fileno(), select.EPOLLIN | select.EPOLLRDHUP)

    def drain(timeout):
        nonlocal closed
        for fd, _ in ep.poll(timeout):
            s = socks.get(fd)
            if s is None:
                continue
            try:
                data = s.recv(65536)
            except BlockingIOError:
                continue
            except OSError:
                data = b""
            if data:
                continue  # a server flight or an alert; the close follows
            ep.unregister(fd)
            del socks[fd]
            s.close()
            closed += 1

    def status():
        line = "t=%.1f opened=%d refused=%d open=%d closed_by_server=%d" % (
            time.monotonic() - start, opened, refused, len(socks), closed)
        if args.status:
            with open(args.status + ".tmp", "w") as f:
                f.write(line + "\n")
            os.replace(args.status + ".tmp", args.status)
        return line

    end = time.monotonic() + args.hold
    next_status = 0.0
    while time.monotonic() < end:
        if args.stop_file and os.path.exists(args.stop_file):
            break
        drain(0.2)
        if time.monotonic() >= next_status:
            status()
            next_status = time.monotonic() + 1.0
    print(status(), flush=True)
    for s in socks.values():
        s.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
