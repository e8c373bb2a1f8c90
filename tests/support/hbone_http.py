#!/usr/bin/python3
"""hbone_http.py - HTTP/1.1 inside HBONE, from python3-h2 and Python's ssl, no amesh code.

It stands on either side of a waypoint, where Istio's ztunnel stands, to show that the
waypoint speaks HBONE to peers that share nothing with it:

  serve   a destination ztunnel and its pod in one: mutual TLS 1.3 (a client certificate
          chaining to --ca is required), ALPN h2; every CONNECT is logged to --log as
            connect authority=<:authority> peer=<client URI SAN>
          answered 200, and then served as HTTP/1.1 (keep-alive, Content-Length or chunked
          request bodies): each request gets 200 with a JSON body
            {"method", "path", "headers": [[name, value]...], "body_len", "authority", "peer"}
          except /bad-response, answered with two Content-Length headers (a smuggling form)
  client  a client ztunnel: mutual TLS 1.3 to --addr:15008 with --cert, the server's URI SAN
          must be exactly --expect-san, one CONNECT to --authority, then the --request lines
          ("METHOD PATH [HEADER:VALUE ...]") sent one after another on that tunnel
          (keep-alive); prints one JSON line per response: {"status", "reason",
          "headers": {lower-case name: value}, "body"}. A request line "WAIT FILE" holds
          the tunnel until FILE exists; "RAW BYTES" sends BYTES (Python escapes) as they are;
          --expect-close waits for the waypoint to end the tunnel after the last response.

Every wait has a deadline (--timeout), so a broken peer fails the test instead of hanging.
"""
import argparse
import json
import os
import select
import socket
import ssl
import sys
import threading
import time

import h2.config
import h2.connection
import h2.events
import h2.exceptions
from cryptography import x509

lock = threading.Lock()


def record(f, line):
    with lock:
        f.write(line + "\n")
        f.flush()


def uri_sans(tls):
    der = tls.getpeercert(binary_form=True)
    if der is None:
        return []
    cert = x509.load_der_x509_certificate(der)
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return san.get_values_for_type(x509.UniformResourceIdentifier)


class Http1Reader:
    """Incremental HTTP/1.1 message reader: heads, then Content-Length or chunked bodies."""

    def __init__(self, response):
        self.buf = b""
        self.response = response

    def feed(self, data):
        self.buf += data

    def _head(self):
        i = self.buf.find(b"\r\n\r\n")
        if i < 0:
            return None
        lines = self.buf[:i].decode("latin-1").split("\r\n")
        return i + 4, lines[0], [tuple(x.split(":", 1)) for x in lines[1:]]

    def next(self, head_request=False):
        """One complete message (start line, headers, body), or None if more bytes are needed."""
        h = self._head()
        if h is None:
            return None
        off, start, fields = h
        hdrs = [(k.strip().lower(), v.strip()) for k, v in fields]
        d = dict(hdrs)
        status = int(start.split(" ")[1]) if self.response else 0
        if self.response and (head_request or status in (204, 304) or status < 200):
            self.buf = self.buf[off:]
            return start, hdrs, b""
        if d.get("transfer-encoding", "").lower() == "chunked":
            body, p = b"", off
            while True:
                j = self.buf.find(b"\r\n", p)
                if j < 0:
                    return None
                n = int(self.buf[p:j].split(b";")[0], 16)
                if n == 0:
                    k = self.buf.find(b"\r\n\r\n", j)
                    if k < 0:
                        if self.buf[j:j + 4] == b"\r\n\r\n":
                            k = j
                        else:
                            return None
                    self.buf = self.buf[k + 4:]
                    return start, hdrs, body
                if len(self.buf) < j + 2 + n + 2:
                    return None
                body += self.buf[j + 2:j + 2 + n]
                p = j + 2 + n + 2
        n = int(d.get("content-length", "0"))
        if len(self.buf) < off + n:
            return None
        body = self.buf[off:off + n]
        self.buf = self.buf[off + n:]
        return start, hdrs, body


# ---- serve ----------------------------------------------------------------------------
def serve_conn(raw, ctx, logf):
    raw.settimeout(10)
    try:
        tls = ctx.wrap_socket(raw, server_side=True)
    except (ssl.SSLError, OSError) as e:
        record(logf, "tls-failed %s" % e)
        raw.close()
        return
    tls.settimeout(None)
    sans = uri_sans(tls)
    peer = sans[0] if sans else "-"
    # Header validation off: h2 4.1 insists on :path even for a classic CONNECT.
    conn = h2.connection.H2Connection(
        config=h2.config.H2Configuration(client_side=False, header_encoding="utf-8",
                                         validate_inbound_headers=False))
    conn.initiate_connection()
    tls.sendall(conn.data_to_send())
    streams = {}  # id -> (authority, Http1Reader)
    try:
        while True:
            r, _, _ = select.select([tls], [], [], 60)
            if not r:
                break
            data = tls.recv(65536)
            if not data:
                break
            for ev in conn.receive_data(data):
                if isinstance(ev, h2.events.RequestReceived):
                    h = dict(ev.headers)
                    auth = h.get(":authority", "-")
                    record(logf, "connect authority=%s peer=%s method=%s" % (
                        auth, peer, h.get(":method", "-")))
                    streams[ev.stream_id] = (auth, Http1Reader(False))
                    conn.send_headers(ev.stream_id, [(":status", "200")])
                elif isinstance(ev, h2.events.DataReceived):
                    conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                    st = streams.get(ev.stream_id)
                    if st is None:
                        continue
                    st[1].feed(ev.data)
                    while True:
                        m = st[1].next()
                        if m is None:
                            break
                        start, hdrs, body = m
                        method, path = start.split(" ")[0:2]
                        record(logf, "request %s %s authority=%s" % (method, path, st[0]))
                        if path == "/bad-response":  # two Content-Lengths: a smuggling form
                            conn.send_data(ev.stream_id, b"HTTP/1.1 200 OK\r\ncontent-length: 5"
                                           b"\r\ncontent-length: 6\r\n\r\nhello!")
                            continue
                        out = json.dumps({"method": method, "path": path, "headers": hdrs,
                                          "body_len": len(body), "authority": st[0],
                                          "peer": peer}).encode()
                        conn.send_data(ev.stream_id, b"HTTP/1.1 200 OK\r\ncontent-type: "
                                       b"application/json\r\ncontent-length: %d\r\n\r\n"
                                       % len(out) + out)
                elif isinstance(ev, h2.events.StreamEnded):
                    if ev.stream_id in streams:
                        conn.end_stream(ev.stream_id)
                        del streams[ev.stream_id]
                elif isinstance(ev, h2.events.StreamReset):
                    streams.pop(ev.stream_id, None)
                elif isinstance(ev, h2.events.ConnectionTerminated):
                    return
            out = conn.data_to_send()
            if out:
                tls.sendall(out)
    except (ssl.SSLError, OSError, h2.exceptions.H2Error) as e:
        record(logf, "conn-error %r" % e)
    finally:
        tls.close()


def serve(a):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.load_verify_locations(a.ca)
    ctx.load_cert_chain(a.cert, a.key)
    ctx.set_alpn_protocols(["h2"])
    logf = open(a.log, "a")
    fam = socket.AF_INET6 if ":" in a.bind else socket.AF_INET
    srv = socket.socket(fam, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((a.bind, a.port))
    srv.listen(128)
    record(logf, "listening")
    while True:
        c, _ = srv.accept()
        threading.Thread(target=serve_conn, args=(c, ctx, logf), daemon=True).start()


# ---- client ---------------------------------------------------------------------------
def fail(msg):
    print("error: %s" % msg)
    sys.exit(1)


def client(a):
    deadline = time.monotonic() + a.timeout

    def left():
        t = deadline - time.monotonic()
        if t <= 0:
            fail("timeout")
        return t

    fam = socket.AF_INET6 if ":" in a.addr else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.settimeout(left())
    s.connect((a.addr, a.port))
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False  # HBONE: the identity is the URI SAN, checked below
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.load_verify_locations(a.ca)
    ctx.load_cert_chain(a.cert, a.key)
    ctx.set_alpn_protocols(["h2"])
    tls = ctx.wrap_socket(s, server_hostname=None)
    if tls.selected_alpn_protocol() != "h2":
        fail("ALPN %r" % tls.selected_alpn_protocol())
    if uri_sans(tls) != [a.expect_san]:
        fail("server URI SANs %s, expected [%s]" % (uri_sans(tls), a.expect_san))
    conn = h2.connection.H2Connection(config=h2.config.H2Configuration(
        client_side=True, header_encoding="utf-8", validate_outbound_headers=False,
        normalize_outbound_headers=False))
    conn.initiate_connection()
    sid = conn.get_next_available_stream_id()
    conn.send_headers(sid, [(":method", "CONNECT"), (":authority", a.authority)])
    tls.sendall(conn.data_to_send())
    state = {"status": None, "ended": False}
    reader = Http1Reader(True)

    def pump():
        r, _, _ = select.select([tls], [], [], min(0.5, left())) if tls.pending() == 0 else \
            ([tls], None, None)
        if not r:
            return
        data = tls.recv(1 << 16)
        if not data:
            fail("EOF from the waypoint")
        for ev in conn.receive_data(data):
            if isinstance(ev, h2.events.ResponseReceived):
                state["status"] = int(dict(ev.headers)[":status"])
            elif isinstance(ev, h2.events.DataReceived):
                conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                reader.feed(ev.data)
            elif isinstance(ev, (h2.events.StreamEnded, h2.events.StreamReset)):
                state["ended"] = True
        out = conn.data_to_send()
        if out:
            tls.sendall(out)

    while state["status"] is None:
        pump()
    if state["status"] != 200:
        print(json.dumps({"connect_status": state["status"]}))
        return
    for line in a.request:
        parts = line.split(" ")
        if parts[0] == "WAIT":  # holds the tunnel (and its HTTP connection) until a file exists
            while not os.path.exists(parts[1]):
                left()
                time.sleep(0.05)
            continue
        if parts[0] == "RAW":  # bytes as given (Python escapes), e.g. a smuggling form
            method = "RAW"
            raw = line[4:].encode().decode("unicode_escape").encode("latin-1")
            for i in range(0, len(raw), 16384):
                conn.send_data(sid, raw[i:i + 16384])
                tls.sendall(conn.data_to_send())
        else:
            method, path, extra = parts[0], parts[1], parts[2:]
            head = "%s %s HTTP/1.1\r\nhost: %s\r\nuser-agent: hbone_http\r\n" % (
                method, path, a.host or a.authority)
            for e in extra:
                k, v = e.split(":", 1)
                head += "%s: %s\r\n" % (k, v)
            conn.send_data(sid, (head + "\r\n").encode())
        tls.sendall(conn.data_to_send())
        while True:
            m = reader.next(head_request=method == "HEAD")
            if m is not None:
                break
            if state["ended"]:
                fail("tunnel ended before a response to %s" % line)
            pump()
        start, hdrs, body = m
        print(json.dumps({"status": int(start.split(" ")[1]),
                          "reason": start.split(" ", 2)[2] if start.count(" ") >= 2 else "",
                          "headers": dict(hdrs), "body": body.decode("utf-8", "replace")}))
        sys.stdout.flush()
    if a.expect_close:  # the waypoint must end the tunnel after the last response
        while not state["ended"]:
            pump()
        print(json.dumps({"tunnel": "ended"}))
        tls.close()
        return
    conn.end_stream(sid)
    tls.sendall(conn.data_to_send())
    tls.close()


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    sv = sub.add_parser("serve")
    for x in ("--bind", "--ca", "--cert", "--key", "--log"):
        sv.add_argument(x, required=True)
    sv.add_argument("--port", type=int, default=15008)
    cl = sub.add_parser("client")
    for x in ("--addr", "--ca", "--cert", "--key", "--expect-san", "--authority"):
        cl.add_argument(x, required=True)
    cl.add_argument("--port", type=int, default=15008)
    cl.add_argument("--host", default=None)
    cl.add_argument("--timeout", type=float, default=10)
    cl.add_argument("--request", action="append", default=[])
    cl.add_argument("--expect-close", action="store_true")
    a = ap.parse_args()
    serve(a) if a.cmd == "serve" else client(a)


if __name__ == "__main__":
    main()
