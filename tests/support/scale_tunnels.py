#!/usr/bin/python3
"""scale_tunnels.py - holds N concurrent echo connections open, then finishes them.

Used by tests/integration/04-integrity-scale.sh against `tcptool.py serve`:
  1. opens --count connections (from --bind) to --connect;
  2. sends part one of a distinct payload on each and reads its echo back, so
     every tunnel is proven open end to end at the same time;
  3. writes --ready-file and waits (bounded) for --go-file, while the test
     counts the HBONE connections that carry the tunnels;
  4. sends part two, half-closes, reads to EOF and checks every byte.
Prints one JSON object; exits 0 only if every payload came back intact.
"""
import argparse
import json
import os
import selectors
import socket
import sys
import time


def parse_hostport(s):
    host, _, port = s.rpartition(":")
    return host.strip("[]"), int(port)


def read_exact_all(socks, want, deadline, until_eof):
    """Reads concurrently until each socket has want[i] bytes (or EOF if until_eof)."""
    got = [bytearray() for _ in socks]
    errors = 0
    sel = selectors.DefaultSelector()
    pending = 0
    for i, s in enumerate(socks):
        s.setblocking(False)
        if until_eof or len(got[i]) < want[i]:
            sel.register(s, selectors.EVENT_READ, i)
            pending += 1
    while pending and time.monotonic() < deadline:
        for key, _ in sel.select(timeout=max(0.0, min(1.0, deadline - time.monotonic()))):
            i = key.data
            try:
                b = key.fileobj.recv(65536)
            except BlockingIOError:
                continue
            except OSError:
                errors += 1
                b = b""
            if b:
                got[i] += b
            if not b or (not until_eof and len(got[i]) >= want[i]):
                sel.unregister(key.fileobj)
                pending -= 1
    sel.close()
    for s in socks:
        s.setblocking(True)
    return got, errors, pending


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--connect", required=True)
    ap.add_argument("--bind")
    ap.add_argument("--count", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--tag", default="t")
    ap.add_argument("--ready-file")
    ap.add_argument("--go-file")
    ap.add_argument("--timeout", type=float, default=60)
    args = ap.parse_args()
    host, port = parse_hostport(args.connect)
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    deadline = time.monotonic() + args.timeout
    t0 = time.monotonic()
    socks = []
    for i in range(args.count):
        s = socket.socket(fam, socket.SOCK_STREAM)
        s.settimeout(10)
        if args.bind:
            s.bind((args.bind, 0))
        s.connect((host, port))
        socks.append(s)
    part1 = [("%s-%06d-a:" % (args.tag, i)).encode() * args.repeat for i in range(args.count)]
    part2 = [("%s-%06d-b:" % (args.tag, i)).encode() * args.repeat for i in range(args.count)]
    for s, p in zip(socks, part1):
        s.sendall(p)
    got1, err1, left1 = read_exact_all(socks, [len(p) for p in part1], deadline, False)
    open_ok = sum(1 for g, p in zip(got1, part1) if bytes(g) == p)
    t_open = time.monotonic() - t0
    if args.ready_file:
        with open(args.ready_file + ".tmp", "w") as f:
            json.dump({"open_ok": open_ok, "count": args.count}, f)
        os.rename(args.ready_file + ".tmp", args.ready_file)
    if args.go_file:
        while not os.path.exists(args.go_file) and time.monotonic() < deadline:
            time.sleep(0.05)
    for s, p in zip(socks, part2):
        try:
            s.sendall(p)
            s.shutdown(socket.SHUT_WR)
        except OSError:
            pass
    got2, err2, left2 = read_exact_all(socks, [0] * len(socks), deadline, True)
    for s in socks:
        s.close()
    bad = 0
    recv = 0
    for i in range(args.count):
        whole = bytes(got1[i]) + bytes(got2[i])
        recv += len(whole)
        if whole != part1[i] + part2[i]:
            bad += 1
    sent = sum(len(a) + len(b) for a, b in zip(part1, part2))
    res = {"count": args.count, "open_ok": open_ok, "open_secs": round(t_open, 2),
           "bytes_sent": sent, "bytes_recv": recv, "mismatched": bad,
           "errors": err1 + err2, "unfinished": left1 + left2,
           "secs": round(time.monotonic() - t0, 2)}
    print(json.dumps(res), flush=True)
    return 0 if bad == 0 and recv == sent and open_ok == args.count else 1


if __name__ == "__main__":
    sys.exit(main())
