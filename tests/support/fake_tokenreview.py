#!/usr/bin/python3
"""fake_tokenreview.py - a scripted stand-in for kube-apiserver's TokenReview
endpoint, for what the real server cannot do on demand (answer late, fail with
500, never answer): TLS with ALPN h2 (Python ssl + python3-h2), one thread,
every wait bounded.

  POST /apis/authentication.k8s.io/v1/tokenreviews
      The request must carry "authorization: Bearer <--admin-token>" (else 401)
      and spec.audiences ["istio-ca"] (else 400). The answer comes from the
      --script JSON file (read again for each review, so a test can add tokens),
      by token: {"TOKEN": {"answer": FILE, "status": 201, "delay": SECONDS}}
      (FILE relative to the script; "status" other than 201 answers a Status
      body; a negative delay never answers). A token the script does not name gets an
      unauthenticated TokenReview, as the real server gives for garbage.
  anything else
      404 with a Status body (meshd's reflectors see the kind as not served).

Each review is one line on stdout, "review n=N token-sha256=HEX[:12] status=S
delay=D", so a test can count reviews without the token ever being printed.
"""
import argparse
import hashlib
import json
import os
import select
import socket
import ssl
import sys
import time

import h2.config
import h2.connection
import h2.events

REVIEW_PATH = "/apis/authentication.k8s.io/v1/tokenreviews"


def log(msg):
    print(msg, flush=True)


def status_body(code, reason, message):
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": reason, "code": code}


class Server:
    def __init__(self, args):
        self.args = args
        self.base = os.path.dirname(os.path.abspath(args.script))
        self.reviews = 0
        self.pending = []  # (due, conn, stream_id, status, body)
        self.conns = {}    # socket -> [tls, h2 conn, {sid: [headers, body bytes]}]

    def answer_for(self, token):
        with open(self.args.script) as f:
            ent = json.load(f).get(token)
        if ent is None:
            return 201, {"kind": "TokenReview", "apiVersion": "authentication.k8s.io/v1",
                         "metadata": {"creationTimestamp": None},
                         "spec": {"token": token, "audiences": ["istio-ca"]},
                         "status": {"user": {}, "error": "[invalid bearer token, square/go-jose: "
                                                         "compact JWS format must have three parts]"}}, 0
        status = ent.get("status", 201)
        delay = ent.get("delay", 0)
        if status != 201:
            return status, status_body(status, "InternalError", "scripted failure"), delay
        with open(os.path.join(self.base, ent["answer"])) as f:
            body = json.load(f)
        body.setdefault("spec", {})["token"] = token  # the real server echoes it
        return 201, body, delay

    def request(self, tls, conn, sid, headers, body):
        path = headers.get(":path", "")
        method = headers.get(":method", "")
        if method != "POST" or path != REVIEW_PATH:
            return self.respond(conn, sid, 404, status_body(404, "NotFound", "the server could not "
                                                            "find the requested resource"))
        if headers.get("authorization") != "Bearer " + self.args.admin_token:
            return self.respond(conn, sid, 401, status_body(401, "Unauthorized", "Unauthorized"))
        try:
            req = json.loads(body)
            token = req["spec"]["token"]
            ok = (req.get("kind") == "TokenReview" and req["spec"].get("audiences") == ["istio-ca"]
                  and headers.get("content-type", "").startswith("application/json"))
        except (ValueError, KeyError, TypeError):
            ok, token = False, ""
        if not ok:
            return self.respond(conn, sid, 400, status_body(400, "BadRequest", "bad TokenReview"))
        self.reviews += 1
        status, answer, delay = self.answer_for(token)
        log("review n=%d token-sha256=%s status=%d delay=%g" % (
            self.reviews, hashlib.sha256(token.encode()).hexdigest()[:12], status, delay))
        if delay < 0:
            return  # never answers
        self.pending.append((time.monotonic() + delay, conn, sid, status, answer))

    def respond(self, conn, sid, status, body):
        data = json.dumps(body).encode()
        try:
            conn.send_headers(sid, [(":status", str(status)), ("content-type", "application/json"),
                                    ("content-length", str(len(data)))])
            conn.send_data(sid, data, end_stream=True)
        except Exception as e:  # the stream may be gone (client cancelled): not our problem
            log("respond failed on stream %d: %s" % (sid, e))

    def flush(self, tls, conn):
        data = conn.data_to_send()
        if data:
            try:
                tls.sendall(data)
            except (OSError, ssl.SSLError):
                pass

    def serve(self):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(self.args.cert, self.args.key)
        ctx.set_alpn_protocols(["h2"])
        ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        ls.bind((self.args.bind, self.args.port))
        ls.listen(64)
        log("listening on %s:%d" % (self.args.bind, self.args.port))
        while True:
            now = time.monotonic()
            due = [p for p in self.pending if p[0] <= now]
            self.pending = [p for p in self.pending if p[0] > now]
            for _, conn, sid, status, body in due:
                self.respond(conn, sid, status, body)
            for s, (tls, conn, _) in list(self.conns.items()):
                self.flush(tls, conn)
            wait = min([p[0] for p in self.pending], default=now + 1.0) - now
            r, _, _ = select.select([ls] + list(self.conns), [], [], max(0.0, min(wait, 1.0)))
            for s in r:
                if s is ls:
                    self.accept(ls, ctx)
                else:
                    self.read(s)

    def accept(self, ls, ctx):
        s, _ = ls.accept()
        s.settimeout(5)
        try:
            tls = ctx.wrap_socket(s, server_side=True)
        except (OSError, ssl.SSLError) as e:
            log("handshake failed: %s" % e)
            s.close()
            return
        tls.setblocking(False)
        conn = h2.connection.H2Connection(config=h2.config.H2Configuration(
            client_side=False, header_encoding="utf-8"))
        conn.initiate_connection()
        self.conns[tls] = [tls, conn, {}]
        self.flush(tls, conn)

    def read(self, tls):
        _, conn, streams = self.conns[tls]
        try:
            data = tls.recv(1 << 16)
        except ssl.SSLWantReadError:
            return
        except (OSError, ssl.SSLError):
            data = b""
        if not data:
            del self.conns[tls]
            self.pending = [p for p in self.pending if p[1] is not conn]
            tls.close()
            return
        for ev in conn.receive_data(data):
            if isinstance(ev, h2.events.RequestReceived):
                streams[ev.stream_id] = [dict(ev.headers), bytearray()]
                if ev.stream_ended is not None:
                    self.done(tls, conn, streams, ev.stream_id)
            elif isinstance(ev, h2.events.DataReceived):
                if ev.stream_id in streams:
                    streams[ev.stream_id][1] += ev.data
                conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            elif isinstance(ev, h2.events.StreamEnded):
                self.done(tls, conn, streams, ev.stream_id)
            elif isinstance(ev, h2.events.StreamReset):
                streams.pop(ev.stream_id, None)
                self.pending = [p for p in self.pending if not (p[1] is conn and p[2] == ev.stream_id)]
        self.flush(tls, conn)

    def done(self, tls, conn, streams, sid):
        st = streams.pop(sid, None)
        if st is not None:
            self.request(tls, conn, sid, st[0], bytes(st[1]))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bind", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--cert", required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--admin-token", required=True, help="the bearer token meshd must present")
    p.add_argument("--script", required=True, help="JSON: token -> answer file, status, delay")
    Server(p.parse_args()).serve()


if __name__ == "__main__":
    sys.exit(main())
