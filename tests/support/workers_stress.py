#!/usr/bin/env python3
"""workers_stress.py - traffic for 64-ztunnel-workers.sh.

  serve   --bind IP --port P
      Per connection, a header line says what to do:
        "X <id> <n>\\n"  exchange: the server sends n bytes of its own while it reads the
                        client's n; then it answers "<sha256 of what it read> <sha256 of
                        what it sent>\\n". The client compares both with its own sums, so
                        every byte is checked in both directions.
        "H <id>\\n"      hold: echo lines until the client goes away.
  load    --bind IP --connect HOST:PORT --conns C --bytes N
      C parallel exchanges of N bytes each way; prints one JSON line; exit 0 iff every
      exchange completed with both sums equal.
  hold    --bind IP --connect HOST:PORT --conns C --ready-file F --interval S --duration S
      Opens C connections, pings each one every S seconds; writes F once all answered;
      ends when every connection has ended (or after --duration); prints one JSON line
      with how and when each ended.
  sample  --url URL --stop-file F --out FILE
      Polls ztunnel's /debug/workers until F exists; writes per worker the maximum of
      each counter seen, and the last answer.
"""
import argparse
import hashlib
import json
import os
import socket
import sys
import threading
import time
import urllib.request

CHUNK = 64 << 10
MAX_BYTES = 1 << 30  # per connection and direction: a header asking for more is refused
BLOCK = os.urandom(1 << 20)


def parse_hostport(s):
    host, _, port = s.rpartition(":")
    return host.strip("[]"), int(port)


def family_of(host):
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def chunks(tag, n):
    """n bytes in 64 KiB chunks; each starts with its tag and index, so a lost, repeated or
    reordered chunk changes the sum even though the filler repeats."""
    k = 0
    sent = 0
    while sent < n:
        m = min(CHUNK, n - sent)
        off = (k * 4099) % (len(BLOCK) - CHUNK)
        c = (b"%08x%08x" % (tag & 0xFFFFFFFF, k) + BLOCK[off:off + CHUNK])[:m]
        yield c
        sent += m
        k += 1


def send_stream(s, tag, n, out):
    h = hashlib.sha256()
    try:
        for c in chunks(tag, n):
            s.sendall(c)
            h.update(c)
        out["sent"] = h.hexdigest()
    except OSError as e:
        out["err"] = "send: %s" % e


def recv_exact(s, n, h):
    buf = bytearray(256 << 10)
    view = memoryview(buf)
    got = 0
    while got < n:
        k = s.recv_into(view, min(len(buf), n - got))
        if k == 0:
            break
        h.update(view[:k])
        got += k
    return got


def read_line(s, limit=256):
    b = bytearray()
    while len(b) < limit:
        c = s.recv(1)
        if not c:
            break
        b += c
        if c == b"\n":
            break
    return bytes(b)


def serve(args):
    ls = socket.socket(family_of(args.bind), socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((args.bind, args.port))
    ls.listen(1024)

    def handle(c):
        try:
            c.settimeout(args.timeout)
            head = read_line(c).split()
            if len(head) == 3 and head[0] == b"X" and 0 <= int(head[2]) <= MAX_BYTES:
                tag, n = int(head[1]), int(head[2])
                out = {}
                t = threading.Thread(target=send_stream, args=(c, tag ^ 0x5A5A5A5A, n, out))
                t.start()
                h = hashlib.sha256()
                got = recv_exact(c, n, h)
                t.join()
                if got == n and "sent" in out:
                    c.sendall(b"%s %s\n" % (h.hexdigest().encode(), out["sent"].encode()))
            elif len(head) == 2 and head[0] == b"H":
                while True:
                    line = read_line(c)
                    if not line:
                        break
                    c.sendall(line)
        except (OSError, ValueError):
            pass
        finally:
            c.close()

    while True:
        c, _ = ls.accept()
        threading.Thread(target=handle, args=(c,), daemon=True).start()


def exchange(args, i, results):
    r = {"id": i}
    t0 = time.monotonic()
    host, port = parse_hostport(args.connect)
    try:
        s = socket.socket(family_of(host), socket.SOCK_STREAM)
        s.settimeout(args.timeout)
        if args.bind:
            s.bind((args.bind, 0))
        s.connect((host, port))
        s.sendall(b"X %d %d\n" % (i, args.bytes))
        out = {}
        t = threading.Thread(target=send_stream, args=(s, i, args.bytes, out))
        t.start()
        h = hashlib.sha256()
        got = recv_exact(s, args.bytes, h)
        t.join()
        trailer = read_line(s).split()
        s.close()
        r["received"] = got
        if "err" in out:
            r["err"] = out["err"]
        elif got != args.bytes:
            r["err"] = "received %d of %d bytes" % (got, args.bytes)
        elif len(trailer) != 2:
            r["err"] = "no sums from the server"
        elif trailer[0].decode() != out["sent"]:
            r["err"] = "server read other bytes than were sent (upload)"
        elif trailer[1].decode() != h.hexdigest():
            r["err"] = "client read other bytes than the server sent (download)"
        else:
            r["ok"] = True
    except OSError as e:
        r["err"] = str(e)
    r["secs"] = round(time.monotonic() - t0, 2)
    results[i] = r


def load(args):
    results = [None] * args.conns
    t0 = time.monotonic()
    ts = [threading.Thread(target=exchange, args=(args, i, results)) for i in range(args.conns)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    secs = time.monotonic() - t0
    bad = [r for r in results if not r.get("ok")]
    print(json.dumps({"conns": args.conns, "bytes_each_way": args.bytes, "ok": len(results) - len(bad),
                      "failed": bad[:10], "secs": round(secs, 2),
                      "mib_per_s": round(2 * args.conns * args.bytes / secs / (1 << 20), 1)}))
    return 0 if not bad else 1


def hold(args):
    host, port = parse_hostport(args.connect)
    conns = []
    for i in range(args.conns):
        s = socket.socket(family_of(host), socket.SOCK_STREAM)
        s.settimeout(5)
        if args.bind:
            s.bind((args.bind, 0))
        s.connect((host, port))
        s.sendall(b"H %d\n" % i)
        conns.append(s)
    state = [None] * len(conns)  # None while open, then {"t": secs, "how": ...}
    t0 = time.monotonic()

    def ping(i):
        try:
            conns[i].sendall(b"p%d\n" % i)
            line = read_line(conns[i])
            if line == b"p%d\n" % i:
                return None
            return "eof" if not line else "garbled"
        except socket.timeout:
            return "timeout"
        except OSError as e:
            return "error: %s" % e.strerror

    for i in range(len(conns)):
        how = ping(i)
        if how is not None:
            state[i] = {"t": 0, "how": how}
    opened = sum(1 for x in state if x is None)
    with open(args.ready_file, "w") as f:
        f.write("%d\n" % opened)
    while time.monotonic() - t0 < args.duration and any(x is None for x in state):
        time.sleep(args.interval)
        for i in range(len(conns)):
            if state[i] is None:
                how = ping(i)
                if how is not None:
                    state[i] = {"t": round(time.monotonic() - t0, 2), "how": how}
    for s in conns:
        s.close()
    print(json.dumps({"conns": len(conns), "opened": opened,
                      "ended": sum(1 for x in state if x is not None),
                      "still_open": sum(1 for x in state if x is None),
                      "how": sorted({x["how"] for x in state if x is not None})}))
    return 0


def sample(args):
    maxima = {}
    last = None
    n = 0
    while True:
        stop = os.path.exists(args.stop_file)
        try:
            ws = json.load(urllib.request.urlopen(args.url, timeout=2))
            last = ws
            n += 1
            for w in ws:
                m = maxima.setdefault(str(w["worker"]), {})
                for k, v in w.items():
                    if isinstance(v, (int, float)):
                        m[k] = max(m.get(k, v), v)
        except (OSError, ValueError, KeyError, TypeError):
            pass
        if stop:
            break
        time.sleep(args.interval)
    with open(args.out, "w") as f:
        json.dump({"samples": n, "max": maxima, "last": last}, f)
    return 0


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("serve")
    a.add_argument("--bind", required=True)
    a.add_argument("--port", type=int, required=True)
    a.add_argument("--timeout", type=float, default=120)
    a = sub.add_parser("load")
    a.add_argument("--bind")
    a.add_argument("--connect", required=True)
    a.add_argument("--conns", type=int, default=32)
    a.add_argument("--bytes", type=int, default=16 << 20)
    a.add_argument("--timeout", type=float, default=60)
    a = sub.add_parser("hold")
    a.add_argument("--bind")
    a.add_argument("--connect", required=True)
    a.add_argument("--conns", type=int, default=16)
    a.add_argument("--ready-file", required=True)
    a.add_argument("--interval", type=float, default=0.2)
    a.add_argument("--duration", type=float, default=60)
    a = sub.add_parser("sample")
    a.add_argument("--url", default="http://127.0.0.1:15000/debug/workers")
    a.add_argument("--stop-file", required=True)
    a.add_argument("--out", required=True)
    a.add_argument("--interval", type=float, default=0.25)
    args = p.parse_args()
    return {"serve": serve, "load": load, "hold": hold, "sample": sample}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
