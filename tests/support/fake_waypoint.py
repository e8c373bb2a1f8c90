#!/usr/bin/python3
"""fake_waypoint.py - an HBONE server that shares no code with amesh, standing where a waypoint
replica stands, to show what ztunnel sends a waypoint.

python3-h2 over Python's ssl (its header validation off: h2 4.1 wants :path even on a classic
CONNECT): TLS 1.3 only, a client certificate required (chaining to --ca), ALPN h2. Each CONNECT is answered 200 and then echoes what it receives, after a first line
"waypoint <name> authority=<:authority>". One line per CONNECT goes to --log (flushed):

  connect authority=<a> peer=<client URI SAN> forwarded=<...> baggage=<...>

  fake_waypoint.py --bind IP --port 15008 --ca ROOT --cert PEM --key PEM --log FILE --name N
"""
import argparse
import select
import socket
import ssl
import threading

import h2.config
import h2.connection
import h2.events
import h2.exceptions

lock = threading.Lock()


def record(f, line):
    with lock:
        f.write(line + "\n")
        f.flush()


def peer_uri(tls):
    for kind, value in tls.getpeercert().get("subjectAltName", ()):
        if kind == "URI":
            return value
    return "-"


def serve_conn(raw, ctx, args, logf):
    raw.settimeout(10)
    try:
        tls = ctx.wrap_socket(raw, server_side=True)
    except (ssl.SSLError, OSError) as e:
        record(logf, "tls-failed %s" % e)
        raw.close()
        return
    tls.settimeout(None)
    peer = peer_uri(tls)
    conn = h2.connection.H2Connection(
        config=h2.config.H2Configuration(client_side=False, header_encoding="utf-8",
                                         validate_inbound_headers=False))
    conn.initiate_connection()
    tls.sendall(conn.data_to_send())
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
                    record(logf, "connect authority=%s peer=%s forwarded=%s baggage=%s" % (
                        auth, peer, h.get("forwarded", "-"), h.get("baggage", "-")))
                    conn.send_headers(ev.stream_id, [(":status", "200")])
                    conn.send_data(ev.stream_id, ("waypoint %s authority=%s\n" % (
                        args.name, auth)).encode())
                elif isinstance(ev, h2.events.DataReceived):
                    conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                    if ev.data:
                        conn.send_data(ev.stream_id, ev.data)
                elif isinstance(ev, h2.events.StreamEnded):
                    conn.end_stream(ev.stream_id)
                elif isinstance(ev, h2.events.ConnectionTerminated):
                    return
            out = conn.data_to_send()
            if out:
                tls.sendall(out)
    except (ssl.SSLError, OSError, h2.exceptions.H2Error) as e:
        record(logf, "conn-error %r" % e)
    finally:
        tls.close()


def main():
    ap = argparse.ArgumentParser()
    for a in ("--bind", "--ca", "--cert", "--key", "--log", "--name"):
        ap.add_argument(a, required=True)
    ap.add_argument("--port", type=int, default=15008)
    args = ap.parse_args()
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.load_verify_locations(args.ca)
    ctx.load_cert_chain(args.cert, args.key)
    ctx.set_alpn_protocols(["h2"])
    logf = open(args.log, "a")
    fam = socket.AF_INET6 if ":" in args.bind else socket.AF_INET
    srv = socket.socket(fam, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    srv.bind((args.bind, args.port))
    srv.listen(128)
    while True:
        c, _ = srv.accept()
        threading.Thread(target=serve_conn, args=(c, ctx, args, logf), daemon=True).start()


if __name__ == "__main__":
    main()
