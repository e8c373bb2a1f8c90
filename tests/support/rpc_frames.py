#!/usr/bin/env python3
"""rpc_frames.py - writes the seed corpus of fuzz_rpc (gRPC over HTTP/2 at lib/rpc).

Each seed is one byte choosing the side (0: the harness is a gRPC client and
the seed is what the server sends; 1: the harness is an echo server and the
seed is what the client sends, preface included), then HTTP/2 frames encoded
by hand with unit_h2_frames.py's helpers: valid calls first, then broken
framing, statuses, content-types, caps, resets.
Usage: rpc_frames.py <repo>/fuzz/corpus
"""
import os
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from unit_h2_frames import (ACK, CONT, DATA, END_HEADERS, END_STREAM, GOAWAY, HEADERS,  # noqa: E402
                            PREFACE, RST, SETTINGS, frame, lit, settings)

CLIENT, SERVER = b"\x00", b"\x01"


def msg(body, flag=0):
    return bytes([flag]) + struct.pack(">I", len(body)) + body


def hdrs(sid, fields, flags=END_HEADERS):
    return frame(HEADERS, flags, sid, b"".join(lit(k, v) for k, v in fields))


OK_RESP = [(":status", "200"), ("content-type", "application/grpc")]


def client_seeds():
    """What a server sends to our client's call on stream 1."""
    hello = settings((4, 4 << 20), (5, 1 << 20)) + frame(SETTINGS, ACK, 0)
    trailers_ok = hdrs(1, [("grpc-status", "0")], END_HEADERS | END_STREAM)
    s = {}
    s["unary_ok"] = hello + hdrs(1, OK_RESP) + frame(DATA, 0, 1, msg(b"reply")) + trailers_ok
    s["stream_many"] = hello + hdrs(1, OK_RESP) + frame(
        DATA, 0, 1, msg(b"a") + msg(b"") + msg(b"ccc")) + trailers_ok
    big = msg(b"m" * 40000)
    s["split_message"] = hello + hdrs(1, OK_RESP) + b"".join(
        frame(DATA, 0, 1, big[i:i + 7000]) for i in range(0, len(big), 7000)) + trailers_ok
    s["trailers_only"] = hello + hdrs(1, OK_RESP + [("grpc-status", "16"), (
        "grpc-message", "no%20token %zz %C3%BC")], END_HEADERS | END_STREAM)
    s["error_after_data"] = hello + hdrs(1, OK_RESP) + frame(DATA, 0, 1, msg(b"x")) + hdrs(
        1, [("grpc-status", "7"), ("grpc-message", "denied")], END_HEADERS | END_STREAM)
    s["http_404"] = hello + hdrs(1, [(":status", "404")], END_HEADERS | END_STREAM)
    s["http_503_body"] = hello + hdrs(1, [(":status", "503")]) + frame(DATA, END_STREAM, 1, b"oops")
    s["bad_content_type"] = hello + hdrs(1, [(":status", "200"), ("content-type", "text/html")]) + frame(
        DATA, END_STREAM, 1, b"<html>")
    s["no_grpc_status"] = hello + hdrs(1, OK_RESP) + frame(DATA, END_STREAM, 1, msg(b"x"))
    s["bad_grpc_status"] = hello + hdrs(1, OK_RESP) + hdrs(1, [("grpc-status", "017")], END_HEADERS | END_STREAM)
    s["oversize_prefix"] = hello + hdrs(1, OK_RESP) + frame(DATA, 0, 1, b"\x00\x7f\xff\xff\xff" + b"x" * 100)
    s["compressed_flag"] = hello + hdrs(1, OK_RESP) + frame(DATA, 0, 1, msg(b"zz", 1)) + trailers_ok
    s["truncated_message"] = hello + hdrs(1, OK_RESP) + frame(DATA, 0, 1, msg(b"abcdef")[:7]) + trailers_ok
    s["abort_message"] = hello + hdrs(1, OK_RESP) + frame(DATA, 0, 1, msg(b"!stop")) + trailers_ok
    s["reset_mid_call"] = hello + hdrs(1, OK_RESP) + frame(DATA, 0, 1, msg(b"x")) + frame(
        RST, 0, 1, struct.pack(">I", 8))
    s["goaway_mid_call"] = hello + hdrs(1, OK_RESP) + frame(GOAWAY, 0, 0, struct.pack(">II", 0, 2))
    s["trailers_continuation"] = hello + hdrs(1, OK_RESP) + frame(
        HEADERS, END_STREAM, 1, lit("grpc-status", "0")) + frame(CONT, END_HEADERS, 1, lit("grpc-message", "ok"))
    s["too_many_trailers"] = hello + hdrs(1, OK_RESP) + hdrs(
        1, [("x-t%d" % i, "1") for i in range(120)] + [("grpc-status", "0")], END_HEADERS | END_STREAM)
    s["interim_then_ok"] = hello + hdrs(1, [(":status", "100")]) + hdrs(1, OK_RESP) + trailers_ok
    s["data_before_headers"] = hello + frame(DATA, 0, 1, msg(b"early")) + trailers_ok
    return s


def call_block(path="/fuzz.Svc/Call", ctype="application/grpc", method="POST"):
    return [(":method", method), (":scheme", "https"), (":path", path), (":authority", "meshd:15012"),
            ("content-type", ctype), ("te", "trailers"), ("authorization", "Bearer x")]


def server_seeds():
    """What a client sends to our echo server (the preface is part of the seed)."""
    hello = PREFACE + settings((4, 4 << 20), (5, 1 << 20)) + frame(SETTINGS, ACK, 0)
    s = {}
    s["call_unary"] = hello + hdrs(1, call_block()) + frame(DATA, END_STREAM, 1, msg(b"hello"))
    s["call_stream"] = hello + hdrs(1, call_block()) + frame(DATA, 0, 1, msg(b"a") + msg(b"bb")) + frame(
        DATA, 0, 1, msg(b"c" * 3000)[:1000]) + frame(DATA, END_STREAM, 1, msg(b"c" * 3000)[1000:])
    s["call_many"] = hello + b"".join(hdrs(sid, call_block()) + frame(DATA, END_STREAM, sid, msg(b"%d" % sid))
                                      for sid in range(1, 40, 2))
    s["call_no_body"] = hello + hdrs(1, call_block(), END_HEADERS | END_STREAM)
    s["call_refused"] = hello + hdrs(1, call_block("/fuzz.Svc/Refuse")) + frame(DATA, 0, 1, msg(b"x"))
    s["not_grpc"] = hello + hdrs(1, call_block(ctype="application/json"), END_HEADERS | END_STREAM)
    s["grpc_proto_ct"] = hello + hdrs(1, call_block(ctype="application/grpc+proto")) + frame(
        DATA, END_STREAM, 1, msg(b"p"))
    s["get_grpc"] = hello + hdrs(1, call_block(method="GET"), END_HEADERS | END_STREAM)
    s["oversize"] = hello + hdrs(1, call_block()) + frame(DATA, 0, 1, b"\x00\x00\x10\x00\x00" + b"y" * 70000)
    s["compressed"] = hello + hdrs(1, call_block()) + frame(DATA, END_STREAM, 1, msg(b"zz", 1))
    s["truncated"] = hello + hdrs(1, call_block()) + frame(DATA, END_STREAM, 1, msg(b"abcdef")[:8])
    s["abort"] = hello + hdrs(1, call_block()) + frame(DATA, 0, 1, msg(b"!x") + msg(b"after"))
    s["cancel"] = hello + hdrs(1, call_block()) + frame(DATA, 0, 1, msg(b"x")) + frame(
        RST, 0, 1, struct.pack(">I", 8))
    s["request_trailers"] = hello + hdrs(1, call_block()) + frame(DATA, 0, 1, msg(b"x")) + hdrs(
        1, [("x-trailer", "1")], END_HEADERS | END_STREAM)
    s["goaway"] = hello + hdrs(1, call_block()) + frame(GOAWAY, 0, 0, struct.pack(">II", 1, 0)) + frame(
        DATA, END_STREAM, 1, msg(b"bye"))
    s["window_zero"] = PREFACE + settings((4, 0)) + hdrs(1, call_block()) + frame(
        DATA, END_STREAM, 1, msg(b"r" * 100))
    return s


def main():
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    out = os.path.join(sys.argv[1], "fuzz_rpc")
    os.makedirs(out, exist_ok=True)
    for side, seeds in ((CLIENT, client_seeds()), (SERVER, server_seeds())):
        for name, data in seeds.items():
            prefix = "client_" if side == CLIENT else "server_"
            with open(os.path.join(out, prefix + name), "wb") as f:
                f.write(side + data)
    return 0


if __name__ == "__main__":
    sys.exit(main())
