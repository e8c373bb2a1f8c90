#!/usr/bin/env python3
"""unit_h2_frames.py - writes the seed corpora of fuzz_h2_server and fuzz_h2_client.

HTTP/2 frames and HPACK are encoded by hand (literal fields, no Huffman, a few
static-table references) so the seeds need nothing beyond python3. Valid
exchanges first, then the malformed variants a hostile peer would try.
Usage: unit_h2_frames.py <repo>/fuzz/corpus
"""
import os
import struct
import sys

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, PRIORITY, RST, SETTINGS, PUSH, PING, GOAWAY, WINDOW, CONT = range(10)
END_STREAM, ACK, END_HEADERS, PADDED, PRIO = 0x1, 0x1, 0x4, 0x8, 0x20


def frame(ftype, flags, sid, payload=b""):
    n = len(payload)
    return struct.pack(">BHBBI", n >> 16, n & 0xFFFF, ftype, flags, sid & 0x7FFFFFFF) + payload


def hint(value, prefix_bits, first=0):
    """HPACK integer with an N-bit prefix; |first| holds the pattern bits."""
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes([first | value])
    out = [first | limit]
    value -= limit
    while value >= 128:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def hstr(s):
    b = s.encode() if isinstance(s, str) else s
    return hint(len(b), 7) + b


def lit(name, value):
    """Literal header field without indexing, new name."""
    return b"\x00" + hstr(name) + hstr(value)


def lit_idx(index, value):
    """Literal without indexing, indexed name (static table: 1 :authority, 2 :method)."""
    return hint(index, 4) + hstr(value)


def lit_incr(name, value):
    """Literal with incremental indexing (enters the dynamic table)."""
    return b"\x40" + hstr(name) + hstr(value)


def settings(*pairs):
    return frame(SETTINGS, 0, 0, b"".join(struct.pack(">HI", k, v) for k, v in pairs))


def connect_block(authority="198.18.0.10:8080", extra=()):
    block = lit_idx(2, "CONNECT") + lit_idx(1, authority)
    block += lit("baggage", "k8s.namespace.name=default,k8s.pod.name=client")
    block += lit("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
    block += lit("forwarded", "for=198.18.0.1")
    for name, value in extra:
        block += lit(name, value)
    return block


def headers(sid, block, flags=END_HEADERS):
    return frame(HEADERS, flags, sid, block)


def server_seeds():
    hello = PREFACE + settings((4, 4 << 20), (5, 1 << 20))
    s = {}
    s["connect_ok"] = hello + frame(SETTINGS, ACK, 0) + headers(1, connect_block()) + frame(
        DATA, 0, 1, b"hello") + frame(DATA, END_STREAM, 1, b" world")
    s["connect_no_preface"] = settings() + headers(1, connect_block())
    many = b"".join(headers(sid, connect_block("198.18.0.%d:80" % (sid % 250))) for sid in range(1, 60, 2))
    s["connect_many"] = hello + many + frame(WINDOW, 0, 0, struct.pack(">I", 1 << 20)) + frame(
        PING, 0, 0, b"12345678") + frame(RST, 0, 3, struct.pack(">I", 8))
    s["connect_then_reset"] = hello + headers(1, connect_block()) + frame(RST, 0, 1, struct.pack(">I", 0))
    s["connect_end_stream"] = hello + headers(1, connect_block(), END_HEADERS | END_STREAM)
    s["connect_trailers"] = hello + headers(1, connect_block()) + frame(DATA, 0, 1, b"x" * 100) + headers(
        1, lit("x-trailer", "1"), END_HEADERS | END_STREAM)
    s["connect_padded_prio"] = hello + frame(
        HEADERS, END_HEADERS | PADDED | PRIO, 1, b"\x04" + struct.pack(">IB", 0, 15) + connect_block() + b"\0" * 4)
    s["connect_continuation"] = hello + headers(1, connect_block()[:10], 0) + frame(
        CONT, END_HEADERS, 1, connect_block()[10:])
    s["get_request"] = hello + headers(1, b"\x82\x86\x84" + lit_idx(1, "example.com"), END_HEADERS | END_STREAM)
    s["connect_with_path"] = hello + headers(1, connect_block(extra=((":path", "/"),)))
    s["connect_uppercase_header"] = hello + headers(1, connect_block(extra=(("X-Upper", "1"),)))
    s["connect_no_authority"] = hello + headers(1, lit_idx(2, "CONNECT"))
    s["goaway_from_client"] = hello + headers(1, connect_block()) + frame(
        GOAWAY, 0, 0, struct.pack(">II", 1, 0)) + frame(DATA, END_STREAM, 1, b"bye")
    s["window_zero"] = PREFACE + settings((4, 0)) + headers(1, connect_block()) + frame(
        DATA, 0, 1, b"need a reply")
    # Malformed: a flood of CONTINUATION frames that never ends the block.
    flood = b"".join(frame(CONT, 0, 1, lit("x-f%d" % i, "v" * 20)) for i in range(400))
    s["continuation_flood"] = hello + headers(1, connect_block(), 0) + flood
    s["continuation_flood_small"] = hello + headers(1, lit_idx(2, "CONNECT"), 0) + b"".join(
        frame(CONT, 0, 1, b"") for i in range(2000))
    s["continuation_wrong_stream"] = hello + headers(1, connect_block(), 0) + frame(CONT, END_HEADERS, 3, b"")
    s["bad_hpack_index"] = hello + headers(1, b"\xff\xff\xff\xff\x0f")
    s["bad_hpack_huffman"] = hello + headers(1, b"\x00\x85\xff\xff\xff\xff\xff\x01a")
    s["bad_hpack_table_size"] = hello + headers(1, b"\x3f\xe1\xff\x03" + connect_block())
    s["hpack_truncated"] = hello + headers(1, b"\x00\x7f\xff\x01abc")
    big = "v" * 16000
    s["oversized_header_list"] = hello + headers(1, connect_block(), 0) + b"".join(
        frame(CONT, 0, 1, lit("x-big%d" % i, big)) for i in range(5)) + frame(CONT, END_HEADERS, 1, b"")
    s["too_many_headers"] = hello + headers(1, connect_block(extra=[("x-h%d" % i, "1") for i in range(110)]))
    bomb = lit_incr("x-bomb", "b" * 3000) + b"\xbe" * 200
    s["hpack_bomb"] = PREFACE + settings((1, 4096)) + headers(1, lit_idx(2, "CONNECT") + lit_idx(1, "a:1") + bomb)
    s["long_authority"] = hello + headers(1, lit_idx(2, "CONNECT") + lit_idx(1, "a" * 9000))
    s["data_over_window"] = hello + headers(1, connect_block()) + frame(DATA, 0, 1, b"d" * 70000)
    s["data_on_idle_stream"] = hello + frame(DATA, 0, 5, b"nobody home")
    s["even_stream_id"] = hello + headers(2, connect_block())
    s["stream_id_regression"] = hello + headers(5, connect_block()) + headers(3, connect_block())
    # More skipped ranges than the server remembers, then ids in an old and in a recent one.
    gaps = b"".join(headers(sid, connect_block()) for sid in range(1, 80, 4))
    s["stream_id_gaps"] = hello + gaps + headers(3, connect_block()) + headers(75, connect_block())
    s["window_overflow"] = hello + headers(1, connect_block()) + frame(
        WINDOW, 0, 1, struct.pack(">I", 0x7FFFFFFF)) + frame(WINDOW, 0, 1, struct.pack(">I", 0x7FFFFFFF))
    s["settings_bad"] = PREFACE + settings((5, 1), (4, 0x80000000))
    s["push_promise_from_client"] = hello + headers(1, connect_block()) + frame(
        PUSH, END_HEADERS, 1, struct.pack(">I", 2) + connect_block())
    s["priority_self"] = hello + frame(PRIORITY, 0, 1, struct.pack(">IB", 1, 1))
    s["unknown_frame"] = hello + frame(0x42, 0xFF, 1, b"???") + headers(1, connect_block())
    s["ping_flood"] = hello + b"".join(frame(PING, 0, 0, struct.pack(">Q", i)) for i in range(3000))
    s["settings_flood"] = hello + b"".join(settings((3, 100 + i)) for i in range(1500))
    s["rst_flood"] = hello + b"".join(
        headers(sid, connect_block()) + frame(RST, 0, sid, struct.pack(">I", 8)) for sid in range(1, 1200, 2))
    s["bad_magic"] = b"PRI * HTTP/1.1\r\n\r\n" + settings()
    return s


def client_seeds():
    hello = settings((3, 200), (4, 4 << 20), (5, 1 << 20)) + frame(SETTINGS, ACK, 0)
    ok = b"\x88"  # :status 200 from the static table
    s = {}
    s["ok_data_end"] = hello + headers(1, ok) + frame(DATA, 0, 1, b"HTTP/1.1 200 OK\r\n\r\n") + frame(
        DATA, END_STREAM, 1, b"bye")
    s["ok_literal_status"] = hello + headers(1, lit(":status", "200") + lit("server", "istio"))
    s["status_403_end"] = hello + headers(1, lit_idx(8, "403"), END_HEADERS | END_STREAM)
    s["status_503_data"] = hello + headers(1, b"\x8e") + frame(DATA, END_STREAM, 1, b"unavailable")
    s["status_100_then_200"] = hello + headers(1, lit(":status", "100")) + headers(1, ok)
    s["status_bad_digits"] = hello + headers(1, lit(":status", "2x0"))
    s["status_long"] = hello + headers(1, lit(":status", "2000"))
    s["no_status"] = hello + headers(1, lit("server", "x"))
    s["reset"] = hello + frame(RST, 0, 1, struct.pack(">I", 7))
    s["reset_after_ok"] = hello + headers(1, ok) + frame(DATA, 0, 1, b"abc") + frame(RST, 0, 1, struct.pack(">I", 2))
    s["goaway_refuse"] = hello + frame(GOAWAY, 0, 0, struct.pack(">II", 0, 0) + b"draining")
    s["goaway_after_ok"] = hello + headers(1, ok) + frame(GOAWAY, 0, 0, struct.pack(">II", 1, 0))
    s["max_streams_zero"] = settings((3, 0)) + headers(1, ok)
    s["push_promise"] = hello + frame(PUSH, END_HEADERS, 1, struct.pack(">I", 2) + b"\x82\x86\x84" + lit_idx(1, "x"))
    s["push_before_ack"] = settings() + frame(PUSH, END_HEADERS, 1, struct.pack(">I", 2) + lit(":method", "GET"))
    s["headers_unopened_stream"] = hello + headers(3, ok) + headers(2, ok)
    s["data_before_headers"] = hello + frame(DATA, 0, 1, b"early")
    s["bad_hpack"] = hello + headers(1, b"\xff\xff\xff\xff\x0f")
    s["continuation_flood"] = hello + headers(1, ok, 0) + b"".join(
        frame(CONT, 0, 1, lit("x-f%d" % i, "v" * 20)) for i in range(400))
    s["oversized_response_headers"] = hello + headers(1, ok + b"".join(
        lit("x-big%d" % i, "v" * 4000) for i in range(6)))
    s["too_many_response_headers"] = hello + headers(1, ok + b"".join(lit("x-h%d" % i, "1") for i in range(120)))
    s["window_overflow"] = hello + frame(WINDOW, 0, 0, struct.pack(">I", 0x7FFFFFFF)) * 2
    s["data_over_window"] = hello + headers(1, ok) + frame(DATA, 0, 1, b"d" * 70000)
    s["ping_and_settings"] = hello + frame(PING, 0, 0, b"pingpong") + settings((4, 0)) + headers(1, ok)
    s["trailers"] = hello + headers(1, ok) + frame(DATA, 0, 1, b"x") + headers(
        1, lit("baggage", "t") + lit("x-t", "1"), END_HEADERS | END_STREAM)
    s["bad_first_frame"] = headers(1, ok)
    s["ok_big_data"] = hello + headers(1, ok) + b"".join(frame(DATA, 0, 1, b"z" * 16384) for _ in range(5))
    return s


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "..", "fuzz", "corpus")
    for name, seeds in (("fuzz_h2_server", server_seeds()), ("fuzz_h2_client", client_seeds())):
        d = os.path.join(root, name)
        os.makedirs(d, exist_ok=True)
        for k, v in seeds.items():
            with open(os.path.join(d, k), "wb") as f:
                f.write(v)
        print("%s: %d seeds" % (name, len(seeds)))


if __name__ == "__main__":
    main()
