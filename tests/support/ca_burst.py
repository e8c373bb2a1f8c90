#!/usr/bin/python3
"""ca_burst.py - many CreateCertificate calls at once on one connection, each
with its own bearer token, using cp_client.py's TLS, HTTP/2 and gRPC code.

  ca_burst.py --addr IP:PORT --root ROOT --pb-dir DIR --identity URI \\
      --token T1 --token T2 ... [--timeout S] [--bind SRC-IP]

All calls are started (headers and the request) before any answer is read;
then each call's end is printed, in the order they ended:
  "call i=I status=S after=SECONDS"
and last "done calls=N", or "error: ..." and exit 1.
"""
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cp_client  # noqa: E402


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--addr", required=True)
    p.add_argument("--root", required=True)
    p.add_argument("--server-name", default=cp_client.SERVER_NAME)
    p.add_argument("--pb-dir")
    p.add_argument("--bind", help="source address of the connection")
    p.add_argument("--identity", required=True)
    p.add_argument("--token", action="append", required=True)
    p.add_argument("--timeout", type=float, default=20.0)
    args = p.parse_args()
    pb = cp_client.load_pb(args)
    dl = cp_client.Deadline(args.timeout)
    _, csr_pem = cp_client.make_csr("ok", args.identity)
    req = pb["ca"].IstioCertificateRequest()
    req.csr = csr_pem
    req.metadata.fields["ImpersonatedIdentity"].string_value = args.identity
    body = req.SerializeToString()
    try:
        conn = cp_client.Conn(cp_client.tls_connect(args, dl), dl, args)
        t0 = time.monotonic()
        calls = []
        for tok in args.token:
            c = conn.start_call(cp_client.CA_PATH, tok)
            conn.send(c, body, end=True)
            calls.append(c)
        seen = set()
        while len(seen) < len(calls):
            conn.read_some(dl.left())
            for i, c in enumerate(calls):
                if c.ended and i not in seen:
                    seen.add(i)
                    st, _ = c.status()
                    print("call i=%d status=%s after=%.3f" % (i, st, time.monotonic() - t0), flush=True)
        conn.close()
    except cp_client.Fail as e:
        print("error: %s" % e, flush=True)
        return 1
    print("done calls=%d" % len(calls), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
