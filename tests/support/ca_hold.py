#!/usr/bin/python3
"""ca_hold.py - memory pressure on calls meshd holds for a TokenReview: CONNS
connections, STREAMS CreateCertificate calls on each with TOKEN (one whose
review is slow), and as many request bytes on each call as HTTP/2 flow control
lets through, never reading an answer; then sleeps HOLD seconds. Built on
cp_client.py. Prints "sent BYTES".

  ca_hold.py ADDR ROOT TOKEN CONNS STREAMS HOLD
"""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cp_client  # noqa: E402


class Args:
    server_name = cp_client.SERVER_NAME
    bind = None


def main():
    a = Args()
    a.addr, a.root, tok = sys.argv[1], sys.argv[2], sys.argv[3]
    conns, streams, hold = int(sys.argv[4]), int(sys.argv[5]), float(sys.argv[6])
    dl = cp_client.Deadline(30 + hold)
    open_conns, sent = [], 0
    chunk = b"\0" * 16384
    for _ in range(conns):
        c = cp_client.Conn(cp_client.tls_connect(a, dl), dl, a)
        for _ in range(3):  # the server's SETTINGS and window updates
            c.read_some(0.2)
        for call in [c.start_call(cp_client.CA_PATH, tok) for _ in range(streams)]:
            while True:
                try:
                    n = min(c.h2.local_flow_control_window(call.sid), c.h2.max_outbound_frame_size,
                            len(chunk))
                except Exception:  # refused at once: the stream is gone
                    break
                if n <= 0:
                    break
                c.h2.send_data(call.sid, chunk[:n])
                sent += n
            c.flush()
        open_conns.append(c)
    print("sent %d" % sent, flush=True)
    time.sleep(hold)
    return 0


if __name__ == "__main__":
    sys.exit(main())
