#!/usr/bin/python3
"""lifecycle_probe.py - one long-lived echo connection, probed every --interval.

Each probe sends a numbered line and waits (bounded) for the same line back.
Runs until the connection fails or closes, or --duration elapses (then it
half-closes and expects a clean EOF). Writes --ready-file after the first
good probe. Prints one JSON object with wall-clock times (time.time()):
first_ok, last_ok, end, end_reason, ok, failed_probe.
Exit status is always 0 unless arguments are wrong: the test judges.
"""
import argparse
import json
import os
import socket
import sys
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--connect", required=True)
    ap.add_argument("--bind")
    ap.add_argument("--interval", type=float, default=0.1)
    ap.add_argument("--duration", type=float, default=60)
    ap.add_argument("--probe-timeout", type=float, default=2)
    ap.add_argument("--ready-file")
    args = ap.parse_args()
    host, _, port = args.connect.rpartition(":")
    host = host.strip("[]")
    s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(args.probe_timeout)
    res = {"first_ok": None, "last_ok": None, "end": None, "end_reason": None, "ok": 0}
    start = time.time()
    try:
        if args.bind:
            s.bind((args.bind, 0))
        s.connect((host, int(port)))
        i = 0
        while time.time() - start < args.duration:
            line = ("probe %d %s\n" % (i, "x" * 64)).encode()
            s.sendall(line)
            got = b""
            while len(got) < len(line):
                b = s.recv(len(line) - len(got))
                if not b:
                    raise EOFError("EOF")
                got += b
            if got != line:
                raise ValueError("corrupted echo %r" % got[:80])
            now = time.time()
            if res["first_ok"] is None:
                res["first_ok"] = now
                if args.ready_file:
                    open(args.ready_file, "w").close()
            res["last_ok"] = now
            res["ok"] += 1
            i += 1
            time.sleep(args.interval)
        s.shutdown(socket.SHUT_WR)
        rest = s.recv(4096)
        res["end_reason"] = "done" if rest == b"" else "unexpected data %r" % rest[:40]
    except EOFError:
        res["end_reason"] = "eof"
    except socket.timeout:
        res["end_reason"] = "timeout"
    except ConnectionResetError:
        res["end_reason"] = "reset"
    except (OSError, ValueError) as e:
        res["end_reason"] = "error: %s" % e
    res["end"] = time.time()
    s.close()
    print(json.dumps(res), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
