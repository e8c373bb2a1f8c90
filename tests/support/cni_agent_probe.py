#!/usr/bin/python3
"""cni_agent_probe.py - both ends of the plugin <-> node agent socket, misbehaving
(Python's socket module, no amesh code).

  serve PATH --mode silent|garbage|slow [--delay-ms N]
      a stand-in agent: reads each request, then never answers (silent), answers
      bytes that are not JSON (garbage), or answers "enrolled" after N ms (slow).
  flood PATH --conns N
      opens N connections to a real agent and sends nothing; prints JSON: how many
      the agent closed at once (over its cap), how many it closed later (no request
      in time), and after how many seconds the last one went.
  send PATH (--bytes N | --raw TEXT)
      one datagram; prints the answer, or "closed" when the agent hung up.
Every wait is bounded.
"""
import argparse
import json
import os
import select
import socket
import sys
import threading
import time


def serve(a):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    s.bind(a.path)
    s.listen(16)
    held = []

    def one(c):
        c.settimeout(10)
        try:
            c.recv(65536)
            if a.mode == "garbage":
                c.send(b"\x00not json")
            elif a.mode == "slow":
                time.sleep(a.delay_ms / 1000)
                c.send(json.dumps({"v": 1, "verdict": "enrolled", "message": ""}).encode())
        except OSError:
            pass
        held.append(c)  # silent: kept open, never answered

    while True:
        c, _ = s.accept()
        threading.Thread(target=one, args=(c,), daemon=True).start()


def flood(a):
    socks = []
    for _ in range(a.conns):
        c = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        c.connect(a.path)
        socks.append(c)
    t0 = time.monotonic()
    open_ = {c.fileno(): c for c in socks}
    closed_at = {}
    while open_ and time.monotonic() - t0 < 10:
        r, _, _ = select.select(list(open_.values()), [], [], 0.1)
        for c in r:
            if c.recv(64) == b"":
                closed_at[c.fileno()] = time.monotonic() - t0
                del open_[c.fileno()]
    fast = sum(1 for t in closed_at.values() if t < 0.5)
    print(json.dumps({"conns": a.conns, "closed_at_once": fast,
                      "closed_later": len(closed_at) - fast, "still_open": len(open_),
                      "last_s": round(max(closed_at.values(), default=0), 2)}))
    for c in socks:
        c.close()


def send(a):
    c = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    c.settimeout(5)
    c.connect(a.path)
    data = a.raw.encode() if a.raw is not None else b"{" + b" " * (a.bytes - 2) + b"}"
    try:
        c.send(data)
        r = c.recv(65536)
    except OSError as e:
        print(f"error {e.errno}")
        return
    print(r.decode(errors="replace") if r else "closed")


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("serve")
    p.add_argument("path")
    p.add_argument("--mode", choices=["silent", "garbage", "slow"], required=True)
    p.add_argument("--delay-ms", type=int, default=0)
    p = sub.add_parser("flood")
    p.add_argument("path")
    p.add_argument("--conns", type=int, required=True)
    p = sub.add_parser("send")
    p.add_argument("path")
    p.add_argument("--bytes", type=int)
    p.add_argument("--raw")
    a = ap.parse_args()
    {"serve": serve, "flood": flood, "send": send}[a.cmd](a)


if __name__ == "__main__":
    main()
