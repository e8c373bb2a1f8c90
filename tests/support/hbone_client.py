#!/usr/bin/python3
"""hbone_client.py - an HBONE client built from python3-h2 and Python's ssl, no amesh code.

It dials <pod IP>:15008 the way Istio's ztunnel does (mutual TLS 1.3, ALPN h2, no
SNI, SPIFFE identity check of the server), speaks HTTP/2 and opens classic CONNECT
streams (":method CONNECT", ":authority IP:port", no :scheme/:path). Every wait
has a deadline (--timeout), so a broken server fails the test instead of hanging.

It prints what happened as "outcome: <kind>" and, with --expect, exits 0 only if
the outcome is the expected one:

  echo                 every stream got 200 and echoed exactly the bytes sent
  status:<code>        every stream got <code> and no tunnel bytes
  tls-alert:<REASON>   the TLS handshake (or the first read after it, TLS 1.3
                       client-cert rejection) failed with this OpenSSL reason,
                       e.g. TLSV13_ALERT_CERTIFICATE_REQUIRED
  closed               the server closed the connection without a TLS alert
  server-identity-mismatch   our own check of the server's URI SAN refused it

--raw BYTES sends BYTES (Python escapes allowed) in plaintext instead of TLS and
reports "closed" if the server closes within --close-within seconds.
"""
import argparse
import hashlib
import os
import re
import select
import socket
import ssl
import sys
import time

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings
from cryptography import x509

EXPECTED_SETTINGS = {
    h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: 200,
    h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 4 * 1024 * 1024,
    h2.settings.SettingCodes.MAX_FRAME_SIZE: 1024 * 1024,
    h2.settings.SettingCodes.MAX_HEADER_LIST_SIZE: 64 * 1024,
}
EXPECTED_CONN_WINDOW = 16 * 1024 * 1024
GCM_SUITES = ("TLS_AES_256_GCM_SHA384", "TLS_AES_128_GCM_SHA256")
# Our own receive windows (what we advertise); large so bulk echo is not throttled by us.
OUR_STREAM_WINDOW = 4 * 1024 * 1024
OUR_CONN_WINDOW = 16 * 1024 * 1024


class Done(Exception):
    """Ends the run with an outcome."""

    def __init__(self, kind, detail=""):
        super().__init__(kind)
        self.kind = kind
        self.detail = detail


def log(msg):
    print(msg, flush=True)


def family_of(host):
    return socket.AF_INET6 if ":" in host else socket.AF_INET


class Deadline:
    def __init__(self, secs):
        self.end = time.monotonic() + secs

    def left(self):
        left = self.end - time.monotonic()
        if left <= 0:
            raise Done("timeout", "deadline passed")
        return left


def tcp_connect(args, dl):
    s = socket.socket(family_of(args.addr), socket.SOCK_STREAM)
    s.settimeout(dl.left())
    if args.bind:
        s.bind((args.bind, 0))
    try:
        s.connect((args.addr, args.port))
    except OSError as e:
        raise Done("connect-failed", str(e))
    return s


def ssl_reason(e):
    reason = getattr(e, "reason", None)
    if reason:
        return reason
    return type(e).__name__ + ":" + str(e)


def classify_ssl_error(e):
    """An SSLError from the handshake or a read: an alert from the peer or a local error."""
    if isinstance(e, (ssl.SSLZeroReturnError, ssl.SSLEOFError)):
        return Done("closed", ssl_reason(e))
    reason = ssl_reason(e)
    if not getattr(e, "reason", None):
        # Python's table lacks newer OpenSSL reason codes (e.g. no_application_protocol);
        # rebuild the name from OpenSSL's text, "tlsv1 alert no application protocol".
        m = re.search(r"\] ((?:sslv3|tlsv1|tlsv13) alert [a-z0-9 ]+?) \(", str(e))
        if m:
            reason = m.group(1).upper().replace(" ", "_")
    if "ALERT" in reason:
        return Done("tls-alert:" + reason, str(e))
    return Done("tls-error:" + reason, str(e))


def raw_probe(args, dl):
    """Plaintext bytes to the TLS port: the server must close promptly."""
    s = tcp_connect(args, dl)
    data = args.raw.encode().decode("unicode_escape").encode("latin-1")
    t0 = time.monotonic()
    s.sendall(data)
    got = b""
    s.settimeout(min(args.close_within, dl.left()))
    try:
        while True:
            b = s.recv(4096)
            if not b:
                break
            got += b
    except ConnectionResetError:
        pass
    except socket.timeout:
        raise Done("open", "server kept the connection open for %.1fs after %r; got %r"
                   % (args.close_within, data[:40], got[:64]))
    took = time.monotonic() - t0
    if got.startswith(b"HTTP/"):
        raise Done("http-response", repr(got[:80]))
    what = "TLS alert record" if got[:1] == b"\x15" else ("%d bytes" % len(got) if got else "nothing")
    raise Done("closed", "closed after %.3fs; server sent %s (%s)" % (took, what, got[:16].hex()))


def make_context(args):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False          # HBONE: no hostname, identity is the URI SAN checked below
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.load_verify_locations(cafile=args.ca)
    if args.tls_max == "1.2":
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    else:
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
        ctx.maximum_version = ssl.TLSVersion.TLSv1_3
    if args.alpn:
        ctx.set_alpn_protocols(args.alpn)
    if args.cert:
        ctx.load_cert_chain(args.cert, args.key)
    ctx.options |= ssl.OP_NO_TICKET
    return ctx


def server_uris(tls):
    der = tls.getpeercert(binary_form=True)
    cert = x509.load_der_x509_certificate(der)
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return san.get_values_for_type(x509.UniformResourceIdentifier)


def tls_connect(args, dl):
    s = tcp_connect(args, dl)
    ctx = make_context(args)
    # server_hostname=None: no SNI, as ztunnel clients do.
    tls = ctx.wrap_socket(s, server_hostname=None, do_handshake_on_connect=False)
    tls.settimeout(dl.left())
    try:
        tls.do_handshake()
    except ssl.SSLError as e:
        raise classify_ssl_error(e)
    except (ConnectionResetError, BrokenPipeError) as e:
        raise Done("closed", "reset during handshake: %s" % e)
    except socket.timeout:
        raise Done("timeout", "TLS handshake")
    info = {
        "version": tls.version(),
        "cipher": tls.cipher()[0],
        "alpn": tls.selected_alpn_protocol(),
        "server_uris": server_uris(tls),
    }
    log("tls: version=%s cipher=%s alpn=%s server_uris=%s"
        % (info["version"], info["cipher"], info["alpn"], info["server_uris"]))
    if args.expect_san is not None:
        if info["server_uris"] != [args.expect_san]:
            tls.close()
            raise Done("server-identity-mismatch",
                       "server URI SANs %s, expected exactly [%s]"
                       % (info["server_uris"], args.expect_san))
    return tls, info


class Stream:
    def __init__(self, sid, authority, payload):
        self.sid = sid
        self.authority = authority
        self.payload = payload
        self.sent = 0
        self.status = None
        self.headers = []
        self.body = bytearray()
        self.ended = False
        self.reset = None
        self.send_done = False


class Client:
    def __init__(self, tls, args, dl):
        self.tls = tls
        self.args = args
        self.dl = dl
        cfg = h2.config.H2Configuration(client_side=True, header_encoding=None,
                                        validate_outbound_headers=False,
                                        normalize_outbound_headers=False)
        self.conn = h2.connection.H2Connection(config=cfg)
        self.streams = {}
        self.remote_settings = {}
        self.settings_seen = False
        self.conn_window_updates = 0
        self.terminated = None

    # -- I/O ---------------------------------------------------------------
    def flush(self):
        data = self.conn.data_to_send()
        if data:
            self.tls.settimeout(self.dl.left())
            try:
                self.tls.sendall(data)
            except ssl.SSLError as e:
                raise classify_ssl_error(e)
            except (BrokenPipeError, ConnectionResetError) as e:
                raise Done("closed", "write failed: %s" % e)

    def read_some(self, wait):
        """Reads what is available (waiting up to |wait| s) and handles the events."""
        if self.tls.pending() == 0:
            r, _, _ = select.select([self.tls], [], [], min(wait, self.dl.left()))
            if not r:
                return False
        self.tls.settimeout(self.dl.left())
        try:
            data = self.tls.recv(1 << 20)
        except ssl.SSLError as e:
            raise classify_ssl_error(e)
        except ConnectionResetError as e:
            raise Done("closed", "reset: %s" % e)
        except socket.timeout:
            return False
        if not data:
            raise Done("closed", "EOF from server")
        self.feed(data)
        return True

    def feed(self, data):
        if os.environ.get("HBONE_DEBUG"):
            self.dump_frames(data)
        try:
            events = self.conn.receive_data(data)
        except h2.exceptions.ProtocolError as e:
            raise Done("h2-protocol-error", str(e))
        for ev in events:
            if os.environ.get("HBONE_DEBUG"):
                log("event: %r" % (ev,))
            self.on_event(ev)
        self.flush()

    def dump_frames(self, data):
        """HBONE_DEBUG=1: prints the header of every frame received (type, flags, stream)."""
        buf = getattr(self, "_dbg", b"") + data
        while len(buf) >= 9:
            n = int.from_bytes(buf[0:3], "big")
            if len(buf) < 9 + n:
                break
            log("frame: type=%d flags=0x%02x stream=%d len=%d"
                % (buf[3], buf[4], int.from_bytes(buf[5:9], "big") & 0x7FFFFFFF, n))
            buf = buf[9 + n:]
        self._dbg = buf

    def on_event(self, ev):
        if isinstance(ev, h2.events.RemoteSettingsChanged):
            for code, ch in ev.changed_settings.items():
                self.remote_settings[code] = ch.new_value
            self.settings_seen = True
        elif isinstance(ev, h2.events.WindowUpdated):
            if ev.stream_id == 0:
                self.conn_window_updates += 1
        elif isinstance(ev, h2.events.ResponseReceived):
            st = self.streams[ev.stream_id]
            st.headers = ev.headers
            st.status = int(dict(ev.headers)[b":status"])
        elif isinstance(ev, h2.events.DataReceived):
            st = self.streams.get(ev.stream_id)
            if st is not None:
                st.body += ev.data
            self.conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
        elif isinstance(ev, h2.events.StreamEnded):
            self.streams[ev.stream_id].ended = True
        elif isinstance(ev, h2.events.StreamReset):
            st = self.streams.get(ev.stream_id)
            if st is not None:
                st.reset = ev.error_code
        elif isinstance(ev, h2.events.ConnectionTerminated):
            self.terminated = ev

    # -- protocol ----------------------------------------------------------
    def start(self):
        """Waits for the server's first bytes before sending anything, so a TLS 1.3
        client-certificate rejection arrives as an alert rather than a reset."""
        self.conn.initiate_connection()
        self.conn.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: OUR_STREAM_WINDOW,
                                   h2.settings.SettingCodes.ENABLE_PUSH: 0})
        self.conn.increment_flow_control_window(OUR_CONN_WINDOW - 65535)
        if not self.read_some(self.dl.left()):
            raise Done("timeout", "server sent nothing after the handshake")
        self.flush()
        # SETTINGS and the connection WINDOW_UPDATE come together; give them a moment.
        end = time.monotonic() + 2
        while not (self.settings_seen and self.conn_window_updates) and time.monotonic() < end:
            self.read_some(0.1)

    def check_settings(self):
        bad = []
        for code, want in EXPECTED_SETTINGS.items():
            got = self.remote_settings.get(code)
            if got != want:
                bad.append("%s=%s (want %s)" % (code.name, got, want))
        win = self.conn.outbound_flow_control_window
        if win != EXPECTED_CONN_WINDOW:
            bad.append("connection window=%s (want %s)" % (win, EXPECTED_CONN_WINDOW))
        log("settings: %s connection_window=%d" % (
            " ".join("%s=%s" % (k.name, v) for k, v in sorted(self.remote_settings.items())), win))
        return bad

    def open(self, authority, payload, method="CONNECT"):
        sid = self.conn.get_next_available_stream_id()
        hdrs = [(b":method", method.encode()), (b":authority", authority.encode())]
        if method != "CONNECT":
            hdrs += [(b":scheme", b"https"), (b":path", b"/")]
        self.conn.send_headers(sid, hdrs, end_stream=False)
        st = Stream(sid, authority, payload)
        self.streams[sid] = st
        return st

    def pump_sends(self, budget=256 * 1024):
        """Sends DATA for streams that got 200, within flow-control windows."""
        progressed = False
        for st in self.streams.values():
            if st.status != 200 or st.send_done or st.reset is not None:
                continue
            while budget > 0:
                left = len(st.payload) - st.sent
                if left == 0:
                    self.conn.end_stream(st.sid)   # half-close: END_STREAM
                    st.send_done = True
                    progressed = True
                    break
                n = min(left, self.conn.local_flow_control_window(st.sid),
                        self.conn.max_outbound_frame_size, budget, 64 * 1024)
                if n <= 0:
                    break
                last = st.sent + n == len(st.payload)
                self.conn.send_data(st.sid, st.payload[st.sent:st.sent + n], end_stream=last)
                st.sent += n
                budget -= n
                progressed = True
                if last:
                    st.send_done = True
                    break
        self.flush()
        return progressed

    def run(self, streams):
        """Drives the given streams until each finished (ended, reset or refused)."""
        self.flush()

        def finished(st):
            if st.reset is not None:
                return True
            if st.status is not None and st.status != 200:
                return st.ended or st.reset is not None
            return st.ended and st.send_done

        while not all(finished(st) for st in streams):
            if self.terminated is not None:
                raise Done("goaway", "GOAWAY error=%s last_stream=%s" % (
                    self.terminated.error_code, self.terminated.last_stream_id))
            sent = self.pump_sends()
            self.read_some(0 if sent else 0.2)


def payload_for(i, repeat):
    return ("stream-%04d:" % i).encode() * repeat


def run_tls(args, dl):
    tls, info = tls_connect(args, dl)
    c = Client(tls, args, dl)
    try:
        c.start()
    except Done as d:
        if d.kind == "closed" or d.kind.startswith("tls-"):
            d.detail = "after the handshake completed (server rejected us): " + d.detail
        raise
    problems = []
    if info["version"] != "TLSv1.3":
        problems.append("TLS version %s" % info["version"])
    if info["cipher"] not in GCM_SUITES:
        problems.append("cipher %s" % info["cipher"])
    if info["alpn"] != "h2":
        problems.append("ALPN %r" % info["alpn"])
    if args.check_settings:
        problems += c.check_settings()

    streams = []
    if args.method != "CONNECT" or args.expect.startswith("status:"):
        for _ in range(args.streams):
            streams.append(c.open(args.authority, b"", method=args.method))
    else:
        for i in range(args.streams):
            streams.append(c.open(args.authority, payload_for(i, args.repeat)))
        if args.message is not None:
            streams[0].payload = args.message.encode()
        if args.bulk:
            block = os.urandom(1 << 16)
            data = b"".join(i.to_bytes(4, "big") + block[4:] for i in range((args.bulk >> 16) + 1))
            streams.append(c.open(args.authority, data[:args.bulk]))
    c.run(streams)

    kinds = []
    for st in streams:
        if st.status is not None and st.status != 200:
            kinds.append("status:%d" % st.status)
            if st.body:
                problems.append("stream %d: %d body bytes on a refused stream" % (st.sid, len(st.body)))
        elif st.status == 200 and st.reset is None:
            kinds.append("echo")
        elif st.reset is not None:
            kinds.append("stream-reset")
            problems.append("stream %d: RST_STREAM %s after status %s" % (
                st.sid, h2_error_name(st.reset), st.status))
        else:
            kinds.append("no-response")
    bad = [st for st in streams if st.status == 200 and bytes(st.body) != st.payload]
    for st in bad[:3]:
        problems.append("stream %d: sent %d bytes sha256 %s, echoed %d bytes sha256 %s" % (
            st.sid, len(st.payload), hashlib.sha256(st.payload).hexdigest()[:16],
            len(st.body), hashlib.sha256(st.body).hexdigest()[:16]))
    if bad:
        kinds.append("echo-mismatch")
    log("streams: %d opened, statuses %s, resets %s" % (
        len(streams), sorted(set(st.status for st in streams if st.status is not None)),
        sorted(set(h2_error_name(st.reset) for st in streams if st.reset is not None))))
    if "echo" in kinds:
        log("echo: %d streams, %d bytes each way, %d mismatched" % (
            kinds.count("echo"), sum(len(st.payload) for st in streams if st.status == 200), len(bad)))
    if args.followup:
        follow_up(c, args)
    close(c, args)
    kind = "|".join(sorted(set(kinds)))
    if kind == "echo-mismatch|echo":
        kind = "echo-mismatch"
    raise Done(kind, "; ".join(problems))


def h2_error_name(code):
    try:
        return h2.errors.ErrorCodes(code).name
    except ValueError:
        return str(code)


def close(c, args):
    """Clean close: GOAWAY, then TLS close_notify, then FIN. --abrupt-close: just FIN."""
    if args.abrupt_close:
        c.tls.close()
        return
    try:
        c.conn.close_connection()
        c.flush()
        c.tls.settimeout(min(2.0, c.dl.left()))
        c.tls.unwrap().close()
    except (OSError, Done):
        c.tls.close()


def follow_up(c, args):
    """After the main streams, the same connection must still carry a good tunnel."""
    st = c.open(args.followup, b"follow-up on the same connection")
    c.run([st])
    if st.status != 200 or bytes(st.body) != st.payload:
        raise Done("followup-failed", "status %s, echoed %r" % (st.status, bytes(st.body)))
    log("follow-up: CONNECT %s on the same connection echoed ok" % args.followup)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--addr", required=True, help="server pod IP (we dial IP:15008)")
    ap.add_argument("--port", type=int, default=15008)
    ap.add_argument("--bind", help="source IP")
    ap.add_argument("--ca", help="root certificate to verify the server with")
    ap.add_argument("--cert", help="client certificate (omit for no client certificate)")
    ap.add_argument("--key")
    ap.add_argument("--tls-max", choices=("1.2", "1.3"), default="1.3")
    ap.add_argument("--alpn", action="append", help="ALPN protocol to offer (default h2)")
    ap.add_argument("--no-alpn", action="store_true", help="offer no ALPN at all")
    ap.add_argument("--expect-san", help="the server must present exactly this URI SAN")
    ap.add_argument("--authority", help="CONNECT :authority (IP:port, IPv6 in brackets)")
    ap.add_argument("--method", default="CONNECT")
    ap.add_argument("--streams", type=int, default=1, help="concurrent streams on one connection")
    ap.add_argument("--repeat", type=int, default=64, help="payload size factor per stream")
    ap.add_argument("--message", help="payload of the first stream")
    ap.add_argument("--bulk", type=int, default=0, help="one extra stream echoing this many bytes")
    ap.add_argument("--check-settings", action="store_true")
    ap.add_argument("--followup", help="after the streams, CONNECT here on the same connection")
    ap.add_argument("--abrupt-close", action="store_true",
                    help="end with a bare TCP close (no GOAWAY, no close_notify)")
    ap.add_argument("--raw", help="send these bytes in plaintext instead of TLS")
    ap.add_argument("--close-within", type=float, default=2.0)
    ap.add_argument("--timeout", type=float, default=15.0)
    ap.add_argument("--expect", default="echo",
                    help="expected outcome (see above); a|b accepts either")
    args = ap.parse_args()
    if args.no_alpn:
        args.alpn = []
    elif not args.alpn:
        args.alpn = ["h2"]
    dl = Deadline(args.timeout)
    try:
        if args.raw is not None:
            raw_probe(args, dl)
        if not args.ca or not args.authority:
            ap.error("--ca and --authority are required for TLS")
        run_tls(args, dl)
        outcome = Done("none")
    except Done as d:
        outcome = d
    except (OSError, ValueError) as e:
        outcome = Done("error", "%s: %s" % (type(e).__name__, e))
    strict = outcome.kind == "echo" or outcome.kind.startswith("status:")
    ok = outcome.kind in args.expect.split("|") and not (strict and outcome.detail)
    log("outcome: %s%s" % (outcome.kind, " (%s)" % outcome.detail if outcome.detail else ""))
    if not ok:
        log("expected: %s" % args.expect)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
