#!/usr/bin/python3
"""steady_load.py - new TCP connections at a steady rate; counts the ones that fail.

Each connection sends one line, expects it echoed, and closes. --rate connections
per second for --duration seconds, spread over --workers threads so one slow
connection does not stall the schedule. Prints one JSON object: attempted, ok,
failed, and the first few failures with their time offset and reason.
"""
import argparse
import json
import socket
import threading
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--connect", required=True)
    ap.add_argument("--rate", type=float, default=100)
    ap.add_argument("--duration", type=float, default=10)
    ap.add_argument("--workers", type=int, default=16)
    ap.add_argument("--timeout", type=float, default=5)
    ap.add_argument("--ready-file")
    args = ap.parse_args()
    host, _, port = args.connect.rpartition(":")
    host = host.strip("[]")
    lock = threading.Lock()
    res = {"attempted": 0, "ok": 0, "failed": 0, "failures": []}
    start = time.monotonic()
    period = 1.0 / args.rate
    slot = [0]

    def one(i):
        t0 = time.monotonic() - start
        try:
            s = socket.create_connection((host, int(port)), timeout=args.timeout)
            line = b"conn %d\n" % i
            s.sendall(line)
            got = b""
            while len(got) < len(line):
                b = s.recv(len(line) - len(got))
                if not b:
                    raise EOFError("EOF")
                got += b
            s.close()
            if got != line:
                raise ValueError("bad echo")
            ok = True
            why = ""
        except Exception as e:  # noqa: BLE001 - every failure counts
            ok = False
            why = "%s: %s" % (type(e).__name__, e)
        with lock:
            res["attempted"] += 1
            if ok:
                res["ok"] += 1
            else:
                res["failed"] += 1
                if len(res["failures"]) < 10:
                    res["failures"].append({"t": round(t0, 3), "why": why})

    def worker():
        while True:
            with lock:
                i = slot[0]
                slot[0] += 1
            due = i * period
            if due >= args.duration:
                return
            delay = start + due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            one(i)

    threads = [threading.Thread(target=worker) for _ in range(args.workers)]
    for t in threads:
        t.start()
    if args.ready_file:
        open(args.ready_file, "w").close()
    for t in threads:
        t.join()
    print(json.dumps(res), flush=True)


if __name__ == "__main__":
    main()
