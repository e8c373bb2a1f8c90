#!/usr/bin/python3
"""h2_stream_ids.py - RFC 9113 5.1.1 against a real HTTP/2 server over TLS, with raw frames.

A "bad" connection opens stream 5, then sends HEADERS on stream 3, an id it
skipped: the server must answer GOAWAY with PROTOCOL_ERROR (1) and close the
connection. With --good, a well-behaved client on another connection (CONNECT
tunnels to an echo server) must keep working before, during and after.

Frames are built by hand (tests/support/unit_h2_frames.py): python3-h2 would
refuse to send the bad frame. Every wait has a deadline. Prints one line per
finding and "outcome: ok" (exit 0) or "outcome: fail: ..." (exit 1).
"""
import argparse
import os
import socket
import ssl
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from unit_h2_frames import (  # noqa: E402
    ACK, DATA, GOAWAY, HEADERS, PING, PREFACE, RST, SETTINGS, connect_block, frame,
    headers, settings)

PROTOCOL_ERROR = 1


class Conn:
    """One TLS connection speaking HTTP/2 frame by frame."""

    def __init__(self, args, name):
        self.name = name
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.load_verify_locations(args.ca)
        if args.cert:
            ctx.load_cert_chain(args.cert, args.key)
        ctx.set_alpn_protocols(["h2"])
        fam = socket.AF_INET6 if ":" in args.addr else socket.AF_INET
        raw = socket.socket(fam, socket.SOCK_STREAM)
        raw.settimeout(args.timeout)
        raw.connect((args.addr, args.port))
        self.sock = ctx.wrap_socket(raw)
        if self.sock.selected_alpn_protocol() != "h2":
            raise SystemExit(f"{name}: server did not select ALPN h2")
        self.buf = b""
        self.eof = False
        self.goaway = None  # (last stream id, error code)
        self.data = {}      # stream id -> bytes received
        self.status = {}    # stream id -> first HEADERS payload
        self.rst = {}       # stream id -> error code
        self.send(PREFACE + settings())

    def send(self, b):
        self.sock.sendall(b)

    def _fill(self, deadline):
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        self.sock.settimeout(left)
        try:
            chunk = self.sock.recv(65536)
        except socket.timeout:
            return False
        except (ssl.SSLError, ConnectionError, OSError):
            chunk = b""
        if not chunk:
            self.eof = True
            return False
        self.buf += chunk
        return True

    def _frame(self, deadline):
        """Reads and handles one frame; False on EOF or deadline."""
        while len(self.buf) < 9 or len(self.buf) < 9 + int.from_bytes(self.buf[:3], "big"):
            if not self._fill(deadline):
                return False
        n = int.from_bytes(self.buf[:3], "big")
        ftype, flags, sid = self.buf[3], self.buf[4], int.from_bytes(self.buf[5:9], "big") & 0x7FFFFFFF
        payload, self.buf = self.buf[9:9 + n], self.buf[9 + n:]
        if ftype == SETTINGS and not flags & ACK:
            self.send(frame(SETTINGS, ACK, 0))
        elif ftype == PING and not flags & ACK:
            self.send(frame(PING, ACK, 0, payload))
        elif ftype == GOAWAY:
            self.goaway = struct.unpack(">II", payload[:8])
        elif ftype == HEADERS:
            self.status.setdefault(sid, payload)
        elif ftype == DATA:
            self.data[sid] = self.data.get(sid, b"") + payload
        elif ftype == RST:
            self.rst[sid] = struct.unpack(">I", payload)[0]
        return True

    def until(self, cond, secs):
        deadline = time.monotonic() + secs
        while not cond():
            if not self._frame(deadline):
                return cond()
        return True

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def tunnel_echo(c, sid, authority, msg, secs, open_stream=True):
    """Opens (or reuses) CONNECT stream |sid| and checks |msg| comes back."""
    if open_stream:
        c.send(headers(sid, connect_block(authority)))
        if not c.until(lambda: sid in c.status or sid in c.rst, secs):
            return f"no response on stream {sid}"
        if c.status.get(sid, b"")[:1] != b"\x88":  # HPACK static index 8: ":status 200"
            return f"stream {sid} was not answered 200 (rst {c.rst.get(sid)})"
    before = len(c.data.get(sid, b""))
    c.send(frame(DATA, 0, sid, msg))
    if not c.until(lambda: len(c.data.get(sid, b"")) >= before + len(msg), secs):
        return f"stream {sid}: echo incomplete ({c.data.get(sid, b'')[before:]!r})"
    if c.data[sid][before:before + len(msg)] != msg:
        return f"stream {sid}: echo differs"
    return None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--addr", required=True)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--ca", required=True, help="root that signed the server's certificate")
    ap.add_argument("--cert")
    ap.add_argument("--key")
    ap.add_argument("--authority", default="198.18.0.10:8080", help="CONNECT target")
    ap.add_argument("--good", action="store_true", help="also run a well-behaved tunnel client")
    ap.add_argument("--timeout", type=float, default=5.0)
    args = ap.parse_args()
    problems = []

    good = None
    if args.good:
        good = Conn(args, "good")
        err = tunnel_echo(good, 1, args.authority, b"before-1", args.timeout)
        if err:
            problems.append("good client before: " + err)

    bad = Conn(args, "bad")
    bad.send(headers(5, connect_block(args.authority)))
    if not bad.until(lambda: 5 in bad.status or 5 in bad.rst, args.timeout):
        problems.append("bad client: stream 5 got no answer")
    bad.send(headers(3, connect_block(args.authority)))
    closed = bad.until(lambda: bad.eof, args.timeout)
    print(f"bad connection: GOAWAY {bad.goaway} (last stream, code), closed={closed}")
    if bad.goaway is None or bad.goaway[1] != PROTOCOL_ERROR:
        problems.append(f"HEADERS on skipped stream 3: GOAWAY {bad.goaway}, want code 1")
    elif bad.goaway[0] != 5:
        problems.append(f"GOAWAY last stream {bad.goaway[0]}, want 5")
    if not closed:
        problems.append(f"connection still open {args.timeout} s after the bad HEADERS")
    bad.close()

    if good is not None:
        for err in (tunnel_echo(good, 1, args.authority, b"after-1", args.timeout, False),
                    tunnel_echo(good, 3, args.authority, b"after-3", args.timeout)):
            if err:
                problems.append("good client after: " + err)
        if good.goaway is not None or good.eof:
            problems.append(f"good client: GOAWAY {good.goaway}, eof={good.eof}")
        print(f"good connection: streams 1 and 3 echoed, GOAWAY {good.goaway}, eof={good.eof}")
        good.close()

    if problems:
        print("outcome: fail: " + "; ".join(problems))
        return 1
    print("outcome: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
