#!/usr/bin/python3
"""hbone_app.py - an echo workload that records every connection it accepts.

Writes one line per event to --log (flushed at once), so a test can prove that
a refused HBONE request put 0 bytes (and 0 connections) on the app:

  accept <peer>
  close <peer> in=<bytes received> out=<bytes sent>

  hbone_app.py --bind IP --port PORT --log FILE
"""
import argparse
import socket
import sys
import threading

lock = threading.Lock()


def record(f, line):
    with lock:
        f.write(line + "\n")
        f.flush()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bind", required=True)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--log", required=True)
    args = ap.parse_args()
    fam = socket.AF_INET6 if ":" in args.bind else socket.AF_INET
    srv = socket.socket(fam, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((args.bind, args.port))
    srv.listen(1024)
    f = open(args.log, "a")

    def handle(c, peer):
        n_in = n_out = 0
        try:
            c.settimeout(60)
            while True:
                b = c.recv(65536)
                if not b:
                    c.shutdown(socket.SHUT_WR)
                    break
                n_in += len(b)
                c.sendall(b)
                n_out += len(b)
        except OSError:
            pass
        finally:
            c.close()
            record(f, "close %s in=%d out=%d" % (peer[0], n_in, n_out))

    while True:
        c, peer = srv.accept()
        record(f, "accept %s" % peer[0])
        threading.Thread(target=handle, args=(c, peer), daemon=True).start()


if __name__ == "__main__":
    sys.exit(main())
