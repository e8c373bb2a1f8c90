#!/usr/bin/python3
"""Writes seeds for fuzz_wp_http2 into fuzz/corpus/fuzz_wp_http2: real HTTP/2 exchanges
(python3-h2 frames) for the client side and for the endpoint side, in the harness's input form:
flags byte, client bytes, b"\\xff\\xfe", endpoint bytes."""
import os
import sys

import h2.config
import h2.connection

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "fuzz_wp_http2")


def client(reqs, rst=(), window=None):
    c = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    c.initiate_connection()
    if window:
        c.increment_flow_control_window(window)
    for sid, method, path, hdrs, body, end in reqs:
        h = [(":method", method), (":scheme", "http"), (":path", path),
             (":authority", "echo")] + hdrs
        c.send_headers(sid, h, end_stream=body is None and end)
        if body is not None:
            c.send_data(sid, body, end_stream=end)
    for sid in rst:
        c.reset_stream(sid)
    return c.data_to_send()


def endpoint(resps, goaway=False):
    """Frames an endpoint server sends: its preface, then per stream a response."""
    s = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
    s.initiate_connection()
    # The engine's request must be known to h2 before it answers: feed a fake one per stream.
    fake = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    fake.initiate_connection()
    for sid, *_ in resps:
        fake.send_headers(sid, [(":method", "GET"), (":scheme", "https"), (":path", "/"),
                                (":authority", "e")], end_stream=True)
    s.receive_data(fake.data_to_send())
    for sid, status, hdrs, body, trailers, rst in resps:
        if rst:
            s.reset_stream(sid)
            continue
        end = body is None and trailers is None
        s.send_headers(sid, [(":status", str(status))] + hdrs, end_stream=end)
        if body is not None:
            s.send_data(sid, body, end_stream=trailers is None)
        if trailers is not None:
            s.send_headers(sid, trailers, end_stream=True)
    if goaway:
        s.close_connection()
    return s.data_to_send()


GRPC = [("content-type", "application/grpc"), ("te", "trailers")]
SEEDS = {
    "get_200": (0, client([(1, "GET", "/hello?x=1", [("user-agent", "fz")], None, True)]),
                endpoint([(1, 200, [("x-a", "1")], b"hello", None, False)])),
    "post_echo": (8, client([(1, "POST", "/p", [], b"ping" * 100, True)]),
                  endpoint([(1, 200, [], b"pong" * 100, None, False)])),
    "grpc_trailers": (0, client([(1, "POST", "/pkg.Svc/M", GRPC, b"\0\0\0\0\1x", True)]),
                      endpoint([(1, 200, [("content-type", "application/grpc")], b"\0\0\0\0\1y",
                                 [("grpc-status", "0"), ("grpc-message", "ok")], False)])),
    "grpc_trailers_only": (8, client([(1, "POST", "/pkg.Svc/M", GRPC, None, True)]),
                           endpoint([(1, 200, [("content-type", "application/grpc"),
                                               ("grpc-status", "5")], None, None, False)])),
    "grpc_unavailable_retried": (8, client([(1, "POST", "/pkg.Svc/M", GRPC, None, True)]),
                                 endpoint([(1, 200, [("content-type", "application/grpc"),
                                                     ("grpc-status", "14")], None, None, False)])),
    "client_rst": (8, client([(1, "GET", "/wait", [], None, True)], rst=[1]),
                   endpoint([(1, 200, [], b"late", None, False)])),
    "client_rst_mid_body": (8, client([(1, "POST", "/up", [], b"x" * 1000, False)], rst=[1]),
                            endpoint([])),
    "many_streams": (0, client([(i, "GET", "/s%d" % i, [], None, True) for i in range(1, 40, 2)]),
                     endpoint([(i, 200, [], b"r", None, False) for i in range(1, 20, 2)])),
    "endpoint_rst": (0, client([(1, "GET", "/", [], None, True)]),
                     endpoint([(1, 0, [], None, None, True)])),
    "endpoint_503_retry": (8, client([(1, "POST", "/r", [], b"body", True)]),
                           endpoint([(1, 503, [], b"busy", None, False)])),
    "endpoint_goaway": (8, client([(1, "GET", "/", [], None, True)]), endpoint([], goaway=True)),
    "refused_first": (1 | 8, client([(1, "GET", "/", [], None, True)]),
                      endpoint([(1, 200, [], b"ok", None, False)])),
    "half_close": (2 | 8, client([(1, "GET", "/", [], None, True)]),
                   endpoint([(1, 204, [], None, None, False)])),
    "endpoint_closes": (4 | 8, client([(1, "GET", "/", [], None, True)]),
                        endpoint([(1, 200, [], b"partial", None, False)])),
    "preface_only": (0, client([]), b""),
    "head": (0, client([(1, "HEAD", "/f", [], None, True)]),
             endpoint([(1, 200, [("content-length", "99")], None, None, False)])),
    "open_request_timeout": (8, client([(1, "POST", "/slow", [], b"a", False)]), endpoint([])),
}


def main():
    os.makedirs(OUT, exist_ok=True)
    for name, (flags, cl, ep) in SEEDS.items():
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(bytes([flags]) + cl + b"\xff\xfe" + ep)
    with open(os.path.join(OUT, "garbage"), "wb") as f:
        f.write(b"\x00PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x04\x01\x00\x00\x00\x00\x01junk")
    return 0


if __name__ == "__main__":
    sys.exit(main())
