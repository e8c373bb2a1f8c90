#!/usr/bin/python3
"""rpc_peer.py - the independent gRPC peer of test_rpc.c: python3-h2 only, no amesh code.

Usage: rpc_peer.py client|server FD

FD is one end of a socketpair whose other end is an amesh h2_session (cleartext
HTTP/2 with prior knowledge). gRPC framing (flag byte, 4-byte big-endian
length), headers and trailers are written here by hand from the spec, so this
checks lib/rpc against a reading of the protocol other than its own.

client: calls the test server's Echo methods (unary, an error status with a
        percent-encoded message, a trailers-only refusal, streaming with three
        messages in one DATA frame and one split over three).
server: answers /py.Echo/Unary (messages in one frame, then trailers),
        /py.Echo/Deny (trailers-only) and /py.Echo/Split, checking the
        request headers amesh sends.

Exits 0 when everything matched, 1 with a message otherwise, 77 without
python3-h2. Every socket wait has a deadline, so nothing hangs.
"""
import socket
import struct
import sys

try:
    import h2.config
    import h2.connection
    import h2.events
except ImportError:
    sys.exit(77)

DEADLINE_S = 15
BIG = bytes((i * 7) & 0xFF for i in range(50000))


def frame(msg):
    return b"\x00" + struct.pack(">I", len(msg)) + msg


def unframe(data):
    msgs = []
    while data:
        if len(data) < 5 or data[0] != 0:
            raise ValueError("bad gRPC prefix: %r" % data[:5])
        n = struct.unpack(">I", data[1:5])[0]
        if len(data) < 5 + n:
            raise ValueError("truncated gRPC message")
        msgs.append(data[5:5 + n])
        data = data[5 + n:]
    return msgs


def check(cond, what):
    if not cond:
        print("rpc_peer: FAIL: " + what, file=sys.stderr)
        sys.exit(1)


class Stream:
    def __init__(self):
        self.headers = None
        self.trailers = None
        self.data = b""
        self.ended = False
        self.reset = False
        self.end_on_headers = False


class Peer:
    def __init__(self, fd, client_side):
        self.sock = socket.socket(fileno=fd)
        self.sock.setblocking(True)
        self.sock.settimeout(DEADLINE_S)
        cfg = h2.config.H2Configuration(client_side=client_side, header_encoding="utf-8")
        self.conn = h2.connection.H2Connection(config=cfg)
        self.conn.initiate_connection()
        self.streams = {}
        self.closed = False
        self.flush()

    def flush(self):
        out = self.conn.data_to_send()
        if out:
            self.sock.sendall(out)

    def pump(self):
        """Reads once and records events; returns the new requests (server)."""
        data = self.sock.recv(65536)
        if not data:
            self.closed = True
            return []
        new = []
        for ev in self.conn.receive_data(data):
            st = self.streams.setdefault(getattr(ev, "stream_id", 0), Stream())
            if isinstance(ev, (h2.events.ResponseReceived, h2.events.RequestReceived)):
                st.headers = dict(ev.headers)
                if isinstance(ev, h2.events.RequestReceived):
                    new.append(ev.stream_id)
                st.end_on_headers = ev.stream_ended is not None
            elif isinstance(ev, h2.events.TrailersReceived):
                st.trailers = dict(ev.headers)
            elif isinstance(ev, h2.events.DataReceived):
                st.data += ev.data
                self.conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            elif isinstance(ev, h2.events.StreamEnded):
                st.ended = True
            elif isinstance(ev, h2.events.StreamReset):
                st.reset = True
            elif isinstance(ev, h2.events.ConnectionTerminated):
                self.closed = True
        self.flush()
        return new

    def wait_end(self, sid):
        st = self.streams.setdefault(sid, Stream())
        while not st.ended and not st.reset and not self.closed:
            self.pump()
        check(st.ended, "stream %d did not end cleanly" % sid)
        return st


def call(p, path, body_frames):
    sid = p.conn.get_next_available_stream_id()
    p.conn.send_headers(sid, [
        (":method", "POST"), (":scheme", "http"), (":path", path),
        (":authority", "meshd.test"), ("content-type", "application/grpc"),
        ("te", "trailers"), ("authorization", "Bearer py"),
    ], end_stream=not body_frames)
    for i, b in enumerate(body_frames):
        p.conn.send_data(sid, b, end_stream=(i == len(body_frames) - 1))
    p.flush()
    return p.wait_end(sid)


def run_client(fd):
    p = Peer(fd, True)

    st = call(p, "/test.Echo/Unary", [frame(b"py-hello")])
    check(st.headers.get(":status") == "200", "unary status %r" % st.headers)
    check(st.headers.get("content-type") == "application/grpc", "unary content-type")
    check(unframe(st.data) == [b"py-hello"], "unary echo %r" % st.data)
    check(st.trailers is not None and st.trailers.get("grpc-status") == "0",
          "unary trailers %r" % st.trailers)

    st = call(p, "/test.Echo/Fail", [])
    check(st.end_on_headers and st.trailers is None, "fail: expected trailers-only")
    check(st.headers.get("grpc-status") == "3", "fail status %r" % st.headers)
    check(st.headers.get("grpc-message") == "bad input: 100%25 %C3%BC%0A",
          "fail message on the wire %r" % st.headers.get("grpc-message"))

    st = call(p, "/test.Echo/Refuse", [frame(b"x")])
    check(st.end_on_headers and st.headers.get("grpc-status") == "16", "refuse %r" % st.headers)
    check(st.headers.get("grpc-message") == "no token", "refuse message")

    third = len(BIG) // 3
    big = frame(BIG)
    st = call(p, "/test.Echo/Bidi", [frame(b"a") + frame(b"bb") + frame(b"ccc"),
                                     big[:third], big[third:2 * third], big[2 * third:]])
    check(unframe(st.data) == [b"a", b"bb", b"ccc", BIG], "bidi echo")
    check(st.trailers is not None and st.trailers.get("grpc-status") == "0", "bidi trailers")

    p.conn.close_connection()
    p.flush()
    p.sock.close()
    return 0


def serve(p, sid, st):
    h = st.headers
    check(h.get(":method") == "POST" and h.get(":scheme") == "https", "request line %r" % h)
    check(h.get("content-type") == "application/grpc", "request content-type")
    check(h.get("te") == "trailers", "request te")
    check(h.get("authorization") == "Bearer test-token", "request metadata")
    check(h.get(":authority") == "meshd.istio-system.svc:15012", "request authority")
    msgs = unframe(st.data)
    path = h.get(":path")
    ok = [(":status", "200"), ("content-type", "application/grpc")]
    if path == "/py.Echo/Unary":
        p.conn.send_headers(sid, ok)
        p.conn.send_data(sid, b"".join(frame(m) for m in msgs))
        p.conn.send_headers(sid, [("grpc-status", "0"), ("grpc-message", "echoed %d" % len(msgs))],
                            end_stream=True)
    elif path == "/py.Echo/Deny":
        p.conn.send_headers(sid, ok + [("grpc-status", "7"),
                                       ("grpc-message", "denied %C3%BC 100%25")], end_stream=True)
    elif path == "/py.Echo/Split":
        big = frame(BIG)
        third = len(big) // 3
        p.conn.send_headers(sid, ok)
        p.conn.send_data(sid, frame(b"a") + frame(b"bb") + frame(b"ccc"))
        for part in (big[:third], big[third:2 * third], big[2 * third:]):
            p.conn.send_data(sid, part)
        p.conn.send_headers(sid, [("grpc-status", "0")], end_stream=True)
    else:
        check(False, "unexpected path %r" % path)
    p.flush()


def run_server(fd):
    p = Peer(fd, False)
    served = 0
    waiting = []
    while not p.closed:
        waiting += p.pump()
        for sid in [s for s in waiting if p.streams[s].ended]:
            waiting.remove(sid)
            serve(p, sid, p.streams[sid])
            served += 1
    check(served == 3, "served %d calls, expected 3" % served)
    return 0


def main():
    if len(sys.argv) != 3 or sys.argv[1] not in ("client", "server"):
        print(__doc__, file=sys.stderr)
        return 2
    fd = int(sys.argv[2])
    try:
        return run_client(fd) if sys.argv[1] == "client" else run_server(fd)
    except (socket.timeout, ValueError, EOFError, ConnectionError) as e:
        print("rpc_peer: FAIL: %r" % e, file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
