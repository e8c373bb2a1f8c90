#!/usr/bin/python3
"""http_kill_load.py - HTTP/1.1 requests under load, with a SIGKILL in the middle.

--workers threads each send requests (one TCP connection per request, Connection: close)
to --connect for --duration seconds: "GET --path", expecting a 200 with its whole body.
After --kill-after seconds the process --kill-pid gets SIGKILL (or --signal TERM); the number of requests in
flight at that instant is taken under the same lock that counts them, so it is exact.
Prints one JSON object: sent, ok, failed, inflight_at_kill, failed_after_kill (failed
requests that started after the kill), per-body counts ("by"), the first failures.
"""
import argparse
import json
import os
import signal
import socket
import threading
import time


def one(host, port, src, path, timeout):
    s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    s.settimeout(timeout)
    try:
        if src:
            s.bind((src, 0))
        s.connect((host, port))
        s.sendall(("GET %s HTTP/1.1\r\nHost: echo\r\nConnection: close\r\n\r\n" % path).encode())
        got = b""
        while True:
            b = s.recv(65536)
            if not b:
                break
            got += b
    except OSError as e:
        return None, "%s" % e.__class__.__name__
    finally:
        s.close()
    head, _, body = got.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    if not lines or not lines[0].startswith("HTTP/1.1 "):
        return None, "no response (%d bytes)" % len(got)
    status = int(lines[0].split()[1])
    clen = [int(l.split(":", 1)[1]) for l in lines[1:] if l.lower().startswith("content-length:")]
    if status != 200:
        return None, "status %d %s" % (status, body[:80].decode("latin-1", "replace"))
    if clen and len(body) != clen[0]:
        return None, "short body %d of %d" % (len(body), clen[0])
    return body.decode("latin-1", "replace").strip(), None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--connect", required=True)
    ap.add_argument("--bind")
    ap.add_argument("--path", default="/")
    ap.add_argument("--workers", type=int, default=6)
    ap.add_argument("--duration", type=float, default=4)
    ap.add_argument("--kill-after", type=float, default=1.5)
    ap.add_argument("--kill-pid", type=int)
    ap.add_argument("--signal", default="KILL", help="KILL (default) or TERM")
    ap.add_argument("--timeout", type=float, default=8)
    args = ap.parse_args()
    host, _, port = args.connect.rpartition(":")
    host, port = host.strip("[]"), int(port)
    lock = threading.Lock()
    st = {"sent": 0, "ok": 0, "failed": 0, "inflight": 0, "inflight_at_kill": None,
          "failed_after_kill": 0, "by": {}, "failures": []}
    killed = [False]
    start = time.monotonic()

    def worker():
        while time.monotonic() - start < args.duration:
            with lock:
                st["sent"] += 1
                st["inflight"] += 1
                after = killed[0]
            body, err = one(host, port, args.bind, args.path, args.timeout)
            with lock:
                st["inflight"] -= 1
                if err is None:
                    st["ok"] += 1
                    st["by"][body] = st["by"].get(body, 0) + 1
                else:
                    st["failed"] += 1
                    st["failed_after_kill"] += after
                    if len(st["failures"]) < 10:
                        st["failures"].append("%.3fs %s" % (time.monotonic() - start, err))

    ts = [threading.Thread(target=worker) for _ in range(args.workers)]
    for t in ts:
        t.start()
    if args.kill_pid:
        time.sleep(args.kill_after)
        with lock:
            os.kill(args.kill_pid, getattr(signal, "SIG" + args.signal))
            killed[0] = True
            st["inflight_at_kill"] = st["inflight"]
    for t in ts:
        t.join()
    del st["inflight"]
    print(json.dumps(st, sort_keys=True))


if __name__ == "__main__":
    main()
