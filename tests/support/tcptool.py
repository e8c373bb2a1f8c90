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
    extra = register_extra(sub)
    args = ap.parse_args()
    if args.cmd == "serve":
        return serve(args)
    if args.cmd in extra:
        return extra[args.cmd](args)
    return {"echo": echo, "bulk": bulk, "many": many}[args.cmd](args)


# ---- half-close and back-pressure workloads (integration/integrity-scale) ----

def pattern(n, seed=0):
    """Deterministic bytes that differ block by block, so a lost or repeated block shows."""
    out = bytearray()
    i = 0
    while len(out) < n:
        out += hashlib.sha256(b"%d:%d" % (seed, i)).digest() * 2048  # 64 KiB
        i += 1
    return bytes(out[:n])


def halfserve(args):
    """Half-close server. The client's first line picks the order of the two FINs:
    "C <n>": read to EOF, wait --delay, answer "<count> <sha256>\n" + pattern(n), close;
    "S <n>": send pattern(n) and shut down writing first, then read to EOF and print
             "half S received <count> <sha256>" on stdout."""
    host, port = args.bind, args.port
    srv = socket.socket(family_of(host), socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((host, port))
    srv.listen(1024)

    def read_line(c):
        line = b""
        while not line.endswith(b"\n"):
            b = c.recv(1)
            if not b:
                raise OSError("EOF before the command line")
            line += b
        return line.decode().split()

    def drain(c):
        h = hashlib.sha256()
        n = 0
        while True:
            b = c.recv(1 << 20)
            if not b:
                return n, h.hexdigest()
            h.update(b)
            n += len(b)

    def handle(c):
        c.settimeout(args.timeout)
        try:
            mode, n = read_line(c)
            n = int(n)
            if mode == "C":
                count, digest = drain(c)
                time.sleep(args.delay)
                c.sendall(("%d %s\n" % (count, digest)).encode())
                c.sendall(pattern(n, 1))
                c.shutdown(socket.SHUT_WR)
            else:
                c.sendall(pattern(n, 2))
                c.shutdown(socket.SHUT_WR)
                count, digest = drain(c)
                print("half S received %d %s" % (count, digest), flush=True)
        except OSError as e:
            print("half server error: %s" % e, flush=True)
        finally:
            c.close()

    while True:
        c, _ = srv.accept()
        threading.Thread(target=handle, args=(c,), daemon=True).start()


def recv_all(s):
    got = bytearray()
    while True:
        b = s.recv(1 << 20)
        if not b:
            return bytes(got)
        got += b


def halfclient(args):
    """Client side of halfserve. --mode client-first: send --bytes, shut down writing,
    then expect the digest of what was sent and --reply bytes back.
    --mode server-first: read the server's --reply bytes up to its FIN, then keep
    sending --bytes on the half-closed tunnel; prints "half S sent <count> <sha256>"."""
    s = connect(args)
    data = pattern(args.bytes, 3)
    if args.mode == "client-first":
        s.sendall(("C %d\n" % args.reply).encode())
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        got = recv_all(s)
        s.close()
        line, _, rest = got.partition(b"\n")
        want = "%d %s" % (len(data), hashlib.sha256(data).hexdigest())
        if line.decode(errors="replace") != want or rest != pattern(args.reply, 1):
            print("half C mismatch: server saw %r, expected %r; reply %d/%d bytes, equal=%s"
                  % (line[:100], want, len(rest), args.reply, rest == pattern(args.reply, 1)),
                  file=sys.stderr)
            return 1
        print("half C ok: sent %d after our FIN got %d" % (len(data), len(rest)))
        return 0
    s.sendall(("S %d\n" % args.reply).encode())
    got = recv_all(s)  # up to the server's FIN
    if got != pattern(args.reply, 2):
        print("half S mismatch: got %d/%d bytes before the server's FIN" % (len(got), args.reply),
              file=sys.stderr)
        return 1
    time.sleep(args.delay)
    s.sendall(data)  # the server stopped writing, it still reads
    s.shutdown(socket.SHUT_WR)
    try:
        extra = recv_all(s)
    except OSError as e:
        print("half S: error after our FIN: %s" % e, file=sys.stderr)
        return 1
    s.close()
    if extra:
        print("half S: %d bytes after the server's FIN" % len(extra), file=sys.stderr)
        return 1
    print("half S sent %d %s" % (len(data), hashlib.sha256(data).hexdigest()))
    return 0


def push(args):
    """Writes up to --bytes to a server that may not read, each send bounded by
    --timeout; prints "push accepted <n> stuck <0|1>" and exits 0 either way."""
    s = connect(args)
    s.settimeout(args.timeout)
    block = os.urandom(1 << 16)
    sent = 0
    stuck = 0
    while sent < args.bytes:
        try:
            n = s.send(block[: min(len(block), args.bytes - sent)])
        except socket.timeout:
            stuck = 1
            break
        sent += n
    print("push accepted %d stuck %d" % (sent, stuck), flush=True)
    if args.hold:
        time.sleep(args.hold)
    s.close()
    return 0


def pushserve(args):
    """Server that writes up to --bytes to each client that may never read, each send
    bounded by --timeout; prints "pushserve accepted <n> stuck <0|1>" per connection and
    keeps it open for --hold seconds."""
    host, port = args.bind, args.port
    srv = socket.socket(family_of(host), socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((host, port))
    srv.listen(64)

    def handle(c):
        c.settimeout(args.timeout)
        block = os.urandom(1 << 16)
        sent = 0
        stuck = 0
        try:
            while sent < args.bytes:
                try:
                    sent += c.send(block[: min(len(block), args.bytes - sent)])
                except socket.timeout:
                    stuck = 1
                    break
            print("pushserve accepted %d stuck %d" % (sent, stuck), flush=True)
            time.sleep(args.hold)
        except OSError as e:
            print("pushserve error after %d: %s" % (sent, e), flush=True)
        finally:
            c.close()

    while True:
        c, _ = srv.accept()
        threading.Thread(target=handle, args=(c,), daemon=True).start()


def register_extra(sub):
    p = sub.add_parser("halfserve")
    p.add_argument("--bind", required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--delay", type=float, default=0.5)
    p.add_argument("--timeout", type=float, default=60)
    p = sub.add_parser("halfclient")
    p.add_argument("--connect", required=True)
    p.add_argument("--bind")
    p.add_argument("--timeout", type=float, default=20)
    p.add_argument("--mode", choices=("client-first", "server-first"), required=True)
    p.add_argument("--bytes", type=int, default=4 << 20)
    p.add_argument("--reply", type=int, default=4 << 20)
    p.add_argument("--delay", type=float, default=0.5)
    p = sub.add_parser("push")
    p.add_argument("--connect", required=True)
    p.add_argument("--bind")
    p.add_argument("--timeout", type=float, default=3)
    p.add_argument("--bytes", type=int, default=200 << 20)
    p.add_argument("--hold", type=float, default=0)
    p = sub.add_parser("pushserve")
    p.add_argument("--bind", required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--timeout", type=float, default=3)
    p.add_argument("--bytes", type=int, default=200 << 20)
    p.add_argument("--hold", type=float, default=600)
    return {"halfserve": halfserve, "halfclient": halfclient, "push": push, "pushserve": pushserve}


if __name__ == "__main__":
    sys.exit(main())
