#!/usr/bin/python3
"""cp_client.py - a control-plane client built from Python's ssl, python3-h2,
python3-protobuf and python3-cryptography, sharing no code with amesh.

It talks to meshd (or istiod) on 15012 the way Istio's ztunnel does: TLS 1.3 with
ALPN h2, the server certificate verified against a root file and the name
istiod.istio-system.svc, gRPC framed by hand (1 byte flag, 4 bytes length, message),
metadata "authorization: Bearer <token>". The protobuf modules are generated with
protoc from the project's proto/*.proto at run time (or taken from --pb-dir).

  ca   one CreateCertificate call with a CSR made here; prints "status: N" and,
       on success, what the certificate chain holds and whether it checks out.
  xds  one DeltaAggregatedResources stream: the initial Address and Authorization
       requests, the first Address response decoded and ACKed; prints a JSON summary.

Every wait is bounded by --timeout. With --expect-status (and for xds the
--expect-* flags) the exit code is 0 only when the result is the expected one.
"""
import argparse
import datetime
import ipaddress
import json
import os
import select
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.parse

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID  # noqa: F401  (kept for readers: empty subject)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CA_PATH = "/istio.v1.auth.IstioCertificateService/CreateCertificate"
XDS_PATH = "/envoy.service.discovery.v3.AggregatedDiscoveryService/DeltaAggregatedResources"
TYPE_ADDRESS = "type.googleapis.com/istio.workload.Address"
TYPE_AUTHZ = "type.googleapis.com/istio.security.Authorization"
SERVER_NAME = "istiod.istio-system.svc"
DEFAULT_NODE_ID = "ztunnel~198.18.0.9~ztunnel-x.istio-system~istio-system.svc.cluster.local"


class Fail(Exception):
    """Ends the run: something went wrong before a gRPC status was known."""


def log(msg):
    print(msg, flush=True)


class Deadline:
    def __init__(self, secs):
        self.end = time.monotonic() + secs

    def left(self):
        left = self.end - time.monotonic()
        if left <= 0:
            raise Fail("timeout: deadline passed")
        return left


# ---- protobuf modules ------------------------------------------------------

def load_pb(args):
    """Imports the protoc-generated modules (generating them into a temp dir if needed)."""
    d = args.pb_dir
    tmp = None
    if d is None or not os.path.exists(os.path.join(d, "discovery_pb2.py")):
        if d is None:
            tmp = d = tempfile.mkdtemp(prefix="cp_client_pb.")
        else:
            os.makedirs(d, exist_ok=True)
        protos = sorted(os.path.join(ROOT, "proto", f) for f in os.listdir(os.path.join(ROOT, "proto"))
                        if f.endswith(".proto"))
        subprocess.run(["protoc", "-I" + os.path.join(ROOT, "proto"), "-I/usr/include",
                        "--python_out=" + d] + protos, check=True)
    sys.path.insert(0, d)
    import ca_pb2
    import discovery_pb2
    import workload_pb2
    try:
        import authorization_pb2
    except ImportError:
        authorization_pb2 = None
    try:
        import token_pb2
    except ImportError:
        token_pb2 = None
    from google.protobuf import struct_pb2
    if tmp is not None:
        shutil.rmtree(tmp, ignore_errors=True)   # modules are loaded; the files are not needed
    return {"ca": ca_pb2, "discovery": discovery_pb2, "workload": workload_pb2,
            "authorization": authorization_pb2, "struct": struct_pb2,
            "token": token_pb2}


# ---- TLS + HTTP/2 + gRPC ---------------------------------------------------

def split_addr(s):
    if s.startswith("["):
        host, _, port = s[1:].partition("]:")
    else:
        host, _, port = s.rpartition(":")
    if not host or not port:
        raise SystemExit("--addr: expected IP:PORT or [IPv6]:PORT, got %r" % s)
    return host, int(port)


def tls_connect(args, dl):
    host, port = split_addr(args.addr)
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.settimeout(dl.left())
    try:
        if getattr(args, "bind", None):  # a source address of the test's choosing
            s.bind((args.bind, 0))
        s.connect((host, port))
    except OSError as e:
        raise Fail("connect to %s failed: %s" % (args.addr, e))
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.check_hostname = True
    ctx.load_verify_locations(cafile=args.root)
    ctx.set_alpn_protocols(["h2"])
    tls = ctx.wrap_socket(s, server_hostname=args.server_name, do_handshake_on_connect=False)
    tls.settimeout(dl.left())
    try:
        tls.do_handshake()
    except ssl.SSLCertVerificationError as e:
        raise Fail("server certificate refused: %s" % e.verify_message)
    except (ssl.SSLError, OSError) as e:
        raise Fail("TLS handshake failed: %s" % e)
    if tls.selected_alpn_protocol() != "h2":
        raise Fail("server chose ALPN %r, not h2" % tls.selected_alpn_protocol())
    log("tls: version=%s cipher=%s alpn=%s verified-name=%s" % (
        tls.version(), tls.cipher()[0], tls.selected_alpn_protocol(), args.server_name))
    return tls


def grpc_frame(msg):
    return b"\x00" + len(msg).to_bytes(4, "big") + msg


class Call:
    """One gRPC call on its own HTTP/2 stream."""

    def __init__(self, sid):
        self.sid = sid
        self.headers = None
        self.trailers = None
        self.buf = bytearray()
        self.messages = []
        self.ended = False
        self.reset = None

    def take_messages(self):
        while len(self.buf) >= 5:
            flag = self.buf[0]
            n = int.from_bytes(self.buf[1:5], "big")
            if flag != 0:
                raise Fail("gRPC message with compressed flag %d" % flag)
            if len(self.buf) < 5 + n:
                break
            self.messages.append(bytes(self.buf[5:5 + n]))
            del self.buf[:5 + n]

    def status(self):
        """(grpc-status, grpc-message) from the trailers or a trailers-only response."""
        for hs in (self.trailers, self.headers):
            if hs and "grpc-status" in hs:
                return int(hs["grpc-status"]), urllib.parse.unquote(hs.get("grpc-message", ""))
        return None, None


class Conn:
    def __init__(self, tls, dl, args):
        self.tls = tls
        self.dl = dl
        self.args = args
        cfg = h2.config.H2Configuration(client_side=True, header_encoding="utf-8")
        self.h2 = h2.connection.H2Connection(config=cfg)
        self.h2.initiate_connection()
        self.h2.update_settings({h2.settings.SettingCodes.ENABLE_PUSH: 0})
        self.calls = {}
        self.goaway = None
        self.flush()

    def flush(self):
        data = self.h2.data_to_send()
        if data:
            self.tls.settimeout(self.dl.left())
            try:
                self.tls.sendall(data)
            except (OSError, ssl.SSLError) as e:
                raise Fail("write failed: %s" % e)

    def start_call(self, path, token):
        sid = self.h2.get_next_available_stream_id()
        host, port = split_addr(self.args.addr)
        hdrs = [(":method", "POST"), (":scheme", "https"), (":path", path),
                (":authority", "%s:%d" % (self.args.server_name, port)),
                ("content-type", "application/grpc"), ("te", "trailers"),
                ("user-agent", "cp_client.py")]
        if token is not None:
            hdrs.append(("authorization", "Bearer " + token))
        self.h2.send_headers(sid, hdrs, end_stream=False)
        c = Call(sid)
        self.calls[sid] = c
        self.flush()
        return c

    def send(self, call, msg, end=False):
        data = grpc_frame(msg)
        while data:
            n = min(len(data), self.h2.local_flow_control_window(call.sid), self.h2.max_outbound_frame_size)
            if n <= 0:
                self.read_some(0.2)
                continue
            self.h2.send_data(call.sid, data[:n], end_stream=end and n == len(data))
            data = data[n:]
        self.flush()

    def half_close(self, call):
        self.h2.end_stream(call.sid)
        self.flush()

    def read_some(self, wait):
        if self.tls.pending() == 0:
            r, _, _ = select.select([self.tls], [], [], max(0.0, min(wait, self.dl.left())))
            if not r:
                return False
        self.tls.settimeout(self.dl.left())
        try:
            data = self.tls.recv(1 << 20)
        except ssl.SSLZeroReturnError:
            data = b""
        except (OSError, ssl.SSLError) as e:
            raise Fail("read failed: %s" % e)
        if not data:
            raise Fail("server closed the connection")
        try:
            events = self.h2.receive_data(data)
        except h2.exceptions.ProtocolError as e:
            raise Fail("HTTP/2 protocol error from server: %s" % e)
        for ev in events:
            self.on_event(ev)
        self.flush()
        return True

    def on_event(self, ev):
        c = self.calls.get(getattr(ev, "stream_id", None) or 0)
        if isinstance(ev, h2.events.ResponseReceived):
            c.headers = dict(ev.headers)
        elif isinstance(ev, h2.events.TrailersReceived):
            c.trailers = dict(ev.headers)
        elif isinstance(ev, h2.events.DataReceived):
            if c is not None:
                c.buf += ev.data
                c.take_messages()
            self.h2.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
        elif isinstance(ev, h2.events.StreamEnded):
            if c is not None:
                c.ended = True
        elif isinstance(ev, h2.events.StreamReset):
            if c is not None:
                c.reset = ev.error_code
                c.ended = True
        elif isinstance(ev, h2.events.ConnectionTerminated):
            self.goaway = ev

    def wait(self, pred, what):
        while not pred():
            if self.goaway is not None:
                raise Fail("GOAWAY error=%s while waiting for %s" % (self.goaway.error_code, what))
            try:
                self.read_some(self.dl.left())
            except Fail as e:
                raise Fail("%s (waiting for %s)" % (e, what))

    def close(self):
        try:
            self.h2.close_connection()
            self.flush()
            self.tls.settimeout(min(1.0, max(0.05, self.end_left())))
            self.tls.unwrap()
        except (OSError, ssl.SSLError, Fail, ValueError):
            pass
        try:
            self.tls.close()
        except OSError:
            pass

    def end_left(self):
        return self.dl.end - time.monotonic()


def unary_call(args, dl, path, token, body, what):
    """One request |body| to |path|, waited for until the call ends (|what| names the answer).
    Returns the ended Call, or None after logging the error and "status: none"."""
    conn = None
    try:
        conn = Conn(tls_connect(args, dl), dl, args)
        call = conn.start_call(path, token)
        conn.send(call, body, end=True)
        conn.wait(lambda: call.ended, what)
    except Fail as e:
        log("error: %s" % e)
        log("status: none")
        return None
    finally:
        if conn is not None:
            conn.close()
    return call


def read_token(args, aud=None):
    """The bearer token: from a token file the line for |aud| ("xds", "ca"), as ztunnel
    picks it, else the file's first line (so a test can send the wrong audience on purpose)."""
    if getattr(args, "no_token", False):
        return None
    if getattr(args, "token_string", None) is not None:
        return args.token_string
    if args.token:
        with open(args.token) as f:
            lines = [l.strip() for l in f.read().splitlines() if l.strip()]
        for l in lines:
            if aud and l.startswith("v2:%s:" % aud):
                return l
        return lines[0] if lines else ""
    return None


# ---- ca --------------------------------------------------------------------

def make_csr(kind, identity):
    """A CSR as ztunnel makes it (reference 4.3) or a deliberately wrong one."""
    if kind == "rsa":
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    elif kind == "p384":
        key = ec.generate_private_key(ec.SECP384R1())
    else:
        key = ec.generate_private_key(ec.SECP256R1())
    names = [x509.UniformResourceIdentifier(identity)]
    if kind == "two-sans":
        names.append(x509.UniformResourceIdentifier(identity.rsplit("/", 1)[0] + "/second"))
    elif kind == "uri-dns":
        names.append(x509.DNSName("second.example"))
    b = x509.CertificateSigningRequestBuilder().subject_name(x509.Name([]))
    b = b.add_extension(x509.SubjectAlternativeName(names), critical=True)
    csr = b.sign(key, hashes.SHA256())
    return key, csr.public_bytes(serialization.Encoding.PEM).decode()


def split_pems(text):
    out = []
    marker = "-----END CERTIFICATE-----"
    while marker in text:
        head, _, text = text.partition(marker)
        start = head.find("-----BEGIN CERTIFICATE-----")
        if start >= 0:
            out.append(head[start:] + marker + "\n")
    return out


def verify_issued_by(cert, issuer):
    """True if |issuer|'s key signed |cert| (and the names chain)."""
    if cert.issuer != issuer.subject:
        return False
    pub = issuer.public_key()
    try:
        if isinstance(pub, ec.EllipticCurvePublicKey):
            pub.verify(cert.signature, cert.tbs_certificate_bytes, ec.ECDSA(cert.signature_hash_algorithm))
        elif isinstance(pub, rsa.RSAPublicKey):
            pub.verify(cert.signature, cert.tbs_certificate_bytes, padding.PKCS1v15(),
                       cert.signature_hash_algorithm)
        else:
            return False
    except Exception:  # InvalidSignature and friends
        return False
    return True


def uris_of(cert):
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return [], []
    return san.get_values_for_type(x509.UniformResourceIdentifier), list(san)


def pub_der(key):
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def cmd_ca(args, pb):
    dl = Deadline(args.timeout)
    key, csr_pem = make_csr(args.csr, args.identity)
    req = pb["ca"].IstioCertificateRequest()
    req.csr = csr_pem
    if args.ttl:
        req.validity_duration = args.ttl
    if not args.no_impersonate:
        req.metadata.fields["ImpersonatedIdentity"].string_value = args.impersonate or args.identity
    log("request: csr=%s identity=%s ttl=%s impersonate=%s token=%s" % (
        args.csr, args.identity, args.ttl or "(default)",
        "none" if args.no_impersonate else (args.impersonate or args.identity),
        "none" if read_token(args, "ca") is None else "yes"))

    call = unary_call(args, dl, CA_PATH, read_token(args, "ca"), req.SerializeToString(),
                      "the CreateCertificate answer")
    if call is None:
        return 1

    status, message = call.status()
    http = call.headers.get(":status") if call.headers else None
    log("http-status: %s" % http)
    log("status: %s" % ("none" if status is None else status))
    log("grpc-message: %s" % (message or ""))
    log("trailers-only: %s" % ("yes" if call.trailers is None and call.headers and "grpc-status" in call.headers
                               else "no"))
    log("messages: %d" % len(call.messages))
    if call.reset is not None:
        log("stream-reset: %s" % call.reset)
    problems = []
    if http != "200":
        problems.append("HTTP status %s" % http)
    if args.save_response and call.messages:
        with open(args.save_response, "wb") as f:
            f.write(call.messages[0])

    leaf_uri = None
    certs = 0
    if call.messages:
        resp = pb["ca"].IstioCertificateResponse()
        try:
            resp.ParseFromString(call.messages[0])
        except Exception as e:
            problems.append("response does not decode: %s" % e)
            resp = None
        if resp is not None:
            chain = list(resp.cert_chain)
            log("chain-elements: %d" % len(chain))
            certs = len(chain)
            parsed = []
            for i, pem in enumerate(chain):
                blocks = split_pems(pem)
                if i < len(chain) - 1 and len(blocks) != 1:
                    problems.append("chain element %d holds %d certificates" % (i, len(blocks)))
                parsed.append([x509.load_pem_x509_certificate(b.encode()) for b in blocks])
            if chain:
                leaf = parsed[0][0]
                uris, sans = uris_of(leaf)
                leaf_uri = uris[0] if len(uris) == 1 else None
                nb = leaf.not_valid_before.replace(tzinfo=datetime.timezone.utc)
                na = leaf.not_valid_after.replace(tzinfo=datetime.timezone.utc)
                now = datetime.datetime.now(datetime.timezone.utc)
                roots = parsed[-1]
                with open(args.root, "rb") as f:
                    want_root = x509.load_pem_x509_certificate(f.read())
                log("leaf-uri: %s" % (leaf_uri or "(%d URI SANs)" % len(uris)))
                log("leaf-sans: %d" % len(sans))
                log("leaf-subject: %s" % leaf.subject.rfc4514_string())
                log("leaf-validity-seconds: %d" % int((na - nb).total_seconds()))
                log("leaf-remaining-seconds: %d" % int((na - now).total_seconds()))
                log("leaf-not-before-age-seconds: %d" % int((now - nb).total_seconds()))
                log("leaf-key-matches-csr: %s" % ("yes" if pub_der(leaf.public_key()) == pub_der(key.public_key())
                                                  else "no"))
                try:
                    bc = leaf.extensions.get_extension_for_class(x509.BasicConstraints).value
                    log("leaf-is-ca: %s" % ("yes" if bc.ca else "no"))
                except x509.ExtensionNotFound:
                    log("leaf-is-ca: no (no basicConstraints)")
                ok = any(verify_issued_by(leaf, r) for r in roots) if len(chain) >= 2 else False
                log("leaf-verifies-against-root: %s" % ("yes" if ok else "no"))
                same = any(r.public_bytes(serialization.Encoding.DER) ==
                           want_root.public_bytes(serialization.Encoding.DER) for r in roots)
                log("root-equals-root-file: %s" % ("yes" if same else "no"))
                if args.expect_status == 0:
                    if leaf_uri != args.identity:
                        problems.append("leaf URI %s, asked for %s" % (leaf_uri, args.identity))
                    if len(sans) != 1:
                        problems.append("leaf has %d SANs" % len(sans))
                    if not ok:
                        problems.append("leaf does not verify against the last chain element")
                    if not same:
                        problems.append("the chain's root is not the --root file's certificate")
                    if pub_der(leaf.public_key()) != pub_der(key.public_key()):
                        problems.append("leaf key is not the CSR's key")
                    if not nb <= now <= na:
                        problems.append("leaf not valid now")
    log("certificates: %d" % certs)

    if args.expect_status is None:
        return 0 if status == 0 and not problems else 1
    if status != args.expect_status:
        problems.append("status %s, expected %d" % (status, args.expect_status))
    if args.expect_status == 0 and certs < 2:
        problems.append("expected a chain of leaf and root")
    if args.expect_status != 0 and certs:
        problems.append("a refusal that came with %d certificates" % certs)
    for p in problems:
        log("problem: %s" % p)
    log("result: %s" % ("ok" if not problems else "FAILED"))
    return 0 if not problems else 1


# ---- xds -------------------------------------------------------------------

def ip_text(b):
    try:
        return str(ipaddress.ip_address(bytes(b)))
    except ValueError:
        return "bytes:" + bytes(b).hex()


def enum_name(pb_enum, v):
    try:
        return pb_enum.Name(v)
    except ValueError:
        return str(v)


def node_msg(pb, args):
    n = pb["discovery"].Node()
    n.id = args.node_id
    md = n.metadata.fields
    md["NAME"].string_value = "ztunnel-x"
    md["NAMESPACE"].string_value = "istio-system"
    md["INSTANCE_IPS"].string_value = "198.18.0.9"
    if args.node_name:
        md["NODE_NAME"].string_value = args.node_name
    md["CLUSTER_ID"].string_value = "Kubernetes"
    for kv in getattr(args, "meta", None) or []:  # e.g. a waypoint's claim: WAYPOINT, NAMESPACE, SERVICE_ACCOUNT
        k, _, v = kv.partition("=")
        md[k].string_value = v
    return n


def summarize_address(pb, resp):
    wl = pb["workload"]
    out = {"type_url": resp.type_url, "nonce": resp.nonce,
           "system_version_info": resp.system_version_info,
           "count": len(resp.resources), "removed": list(resp.removed_resources),
           "workloads": [], "services": [], "resources": [], "problems": []}
    for r in resp.resources:
        out["resources"].append({"name": r.name, "version": r.version, "any": r.resource.type_url})
        a = wl.Address()
        if r.resource.type_url != TYPE_ADDRESS or not r.resource.Unpack(a):
            out["problems"].append("resource %s: Any type %s" % (r.name, r.resource.type_url))
            continue
        kind = a.WhichOneof("type")
        if kind == "workload":
            w = a.workload
            out["workloads"].append({
                "resource_name": r.name, "uid": w.uid, "name": w.name, "namespace": w.namespace,
                "addresses": [ip_text(x) for x in w.addresses],
                "tunnelProtocol": enum_name(wl.TunnelProtocol, w.tunnel_protocol),
                "serviceAccount": w.service_account, "node": w.node,
                "trustDomain": w.trust_domain, "network": w.network, "clusterId": w.cluster_id,
                "workloadType": enum_name(wl.WorkloadType, w.workload_type),
                "workloadName": w.workload_name,
                "canonicalName": w.canonical_name, "canonicalRevision": w.canonical_revision,
                "status": enum_name(wl.WorkloadStatus, w.status),
                "services": {k: [{"servicePort": p.service_port, "targetPort": p.target_port}
                                 for p in v.ports] for k, v in sorted(w.services.items())},
                "authorizationPolicies": list(w.authorization_policies),
            })
            if r.name != w.uid:
                out["problems"].append("workload resource name %s != uid %s" % (r.name, w.uid))
        elif kind == "service":
            s = a.service
            out["services"].append({
                "resource_name": r.name, "name": s.name, "namespace": s.namespace, "hostname": s.hostname,
                "addresses": [{"network": x.network, "address": ip_text(x.address)} for x in s.addresses],
                "ports": [{"servicePort": p.service_port, "targetPort": p.target_port,
                           "appProtocol": enum_name(wl.AppProtocol, p.app_protocol)} for p in s.ports],
                "subjectAltNames": list(s.subject_alt_names),
            })
            if r.name != "%s/%s" % (s.namespace, s.hostname):
                out["problems"].append("service resource name %s != namespace/hostname" % r.name)
        else:
            out["problems"].append("resource %s: Address with neither workload nor service" % r.name)
    return out


def cmd_xds(args, pb):
    dl = Deadline(args.timeout)
    disc = pb["discovery"]
    conn = None
    summary = None
    authz = None
    close_status = None
    nacked = []
    after = 0
    try:
        conn = Conn(tls_connect(args, dl), dl, args)
        call = conn.start_call(XDS_PATH, read_token(args, "xds"))
        for t in (TYPE_ADDRESS, TYPE_AUTHZ):
            q = disc.DeltaDiscoveryRequest()
            q.node.CopyFrom(node_msg(pb, args))
            q.type_url = t
            if t == TYPE_ADDRESS:
                for kv in args.initial or []:
                    name, _, ver = kv.rpartition("=")
                    q.initial_resource_versions[name] = ver
            conn.send(call, q.SerializeToString())
        seen = 0
        while summary is None:
            conn.wait(lambda: len(call.messages) > seen or call.ended, "an Address response")
            while seen < len(call.messages):
                raw = call.messages[seen]
                seen += 1
                resp = disc.DeltaDiscoveryResponse()
                resp.ParseFromString(raw)
                ack = disc.DeltaDiscoveryRequest()
                ack.type_url = resp.type_url
                ack.response_nonce = resp.nonce
                if args.nack_address and resp.type_url == TYPE_ADDRESS and resp.resources:
                    # Reject the first resource, as ztunnel words it: "<name>: <reason>".
                    ack.error_detail.code = 3
                    ack.error_detail.message = "%s: rejected by the test" % resp.resources[0].name
                    nacked.append(resp.resources[0].name)
                conn.send(call, ack.SerializeToString())
                if resp.type_url == TYPE_ADDRESS and summary is None:
                    summary = summarize_address(pb, resp)
                    if args.save_response:
                        with open(args.save_response, "wb") as f:
                            f.write(raw)
                elif resp.type_url == TYPE_AUTHZ and authz is None:
                    authz = {"nonce": resp.nonce, "count": len(resp.resources),
                             "names": [r.name for r in resp.resources]}
            if call.ended and summary is None:
                break
        if not call.ended:
            # Give meshd a moment to object to the ACK, then half-close and collect its trailers.
            end = time.monotonic() + min(args.linger, max(0.0, conn.end_left()))
            while time.monotonic() < end and not call.ended:
                conn.read_some(max(0.0, end - time.monotonic()))
            # Address responses that came after ours were handled (a NACK must not cause a resend).
            for raw in call.messages[seen:]:
                resp = disc.DeltaDiscoveryResponse()
                resp.ParseFromString(raw)
                after += resp.type_url == TYPE_ADDRESS
            if not call.ended:
                conn.half_close(call)
                conn.wait(lambda: call.ended, "the server's end of stream")
        close_status = call.status()
    except Fail as e:
        log("error: %s" % e)
        if conn is not None and conn.calls:
            c = list(conn.calls.values())[0]
            if c.status()[0] is not None:
                close_status = c.status()
        if close_status is None:
            log(json.dumps({"status": None, "error": str(e)}))
            return 1
    finally:
        if conn is not None:
            conn.close()

    st, msg = close_status if close_status else (None, None)
    doc = {"status": st, "grpc_message": msg or ""}
    if summary is not None:
        doc.update(summary)
    if authz is not None:
        doc["authorization"] = authz
    doc["nacked"] = nacked
    doc["address_responses_after"] = after
    log(json.dumps(doc, indent=2, sort_keys=True))
    if args.summary:
        with open(args.summary, "w") as f:
            json.dump(doc, f, indent=2, sort_keys=True)

    problems = []
    if args.expect_status is not None and args.expect_status != 0:
        if st != args.expect_status:
            problems.append("status %s, expected %d" % (st, args.expect_status))
        if summary is not None:
            problems.append("refused stream carried an Address response")
    else:
        if summary is None:
            problems.append("no Address response (status %s %s)" % (st, msg or ""))
        elif st not in (0, None):
            problems.append("stream ended with status %s %s" % (st, msg or ""))
        if summary is not None:
            problems += summary["problems"]
            if summary["type_url"] != TYPE_ADDRESS:
                problems.append("type_url %s" % summary["type_url"])
            if not summary["nonce"]:
                problems.append("response without a nonce")
            for name in args.expect_workload or []:
                if not any(name in (w["name"], w["uid"]) for w in summary["workloads"]):
                    problems.append("workload %s missing" % name)
            for host in args.expect_service or []:
                if not any(host == s["hostname"] for s in summary["services"]):
                    problems.append("service %s missing" % host)
    for p in problems:
        log("problem: %s" % p)
    log("result: %s" % ("ok" if not problems else "FAILED"))
    return 0 if not problems else 1


# ---- renew -----------------------------------------------------------------

RENEW_PATH = "/amesh.token.v1.NodeToken/Renew"


def cmd_renew(args, pb):
    """One token renewal: the bearer token (--audience picks the file's line) for a fresh one."""
    dl = Deadline(args.timeout)
    call = unary_call(args, dl, RENEW_PATH, read_token(args, args.audience),
                      pb["token"].RenewRequest().SerializeToString(), "the Renew answer")
    if call is None:
        return 1
    status, message = call.status()
    log("status: %s" % ("none" if status is None else status))
    log("grpc-message: %s" % (message or ""))
    problems = []
    if call.messages:
        r = pb["token"].RenewResponse()
        r.ParseFromString(call.messages[0])
        log("token: %s" % r.token)
        if args.save_token:
            with open(args.save_token, "w") as f:
                f.write(r.token + "\n")
    if args.expect_status is not None and status != args.expect_status:
        problems.append("status %s, expected %d" % (status, args.expect_status))
    if args.expect_status == 0 and not call.messages:
        problems.append("no token in the answer")
    for p in problems:
        log("problem: %s" % p)
    log("result: %s" % ("ok" if not problems else "FAILED"))
    return 0 if not problems else 1


# ---- main ------------------------------------------------------------------

def common(p):
    p.add_argument("--addr", required=True, help="meshd/istiod IP:PORT (15012)")
    p.add_argument("--root", required=True, help="root certificate the server's chains to")
    p.add_argument("--server-name", default=SERVER_NAME, help="name verified in the server's certificate")
    tok = p.add_mutually_exclusive_group()
    tok.add_argument("--token", help="file holding the node credential")
    tok.add_argument("--no-token", action="store_true", help="send no authorization header")
    tok.add_argument("--token-string", help="this literal string as the bearer token")
    p.add_argument("--timeout", type=float, default=10.0)
    p.add_argument("--pb-dir", help="protoc --python_out directory (generated here when missing)")
    p.add_argument("--save-response", help="write the raw response message (protobuf) here")
    p.add_argument("--expect-status", type=int, help="exit 0 only if the gRPC status is this")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    ca = sub.add_parser("ca", help="one CreateCertificate call")
    common(ca)
    ca.add_argument("--identity", required=True, help="SPIFFE URI put in the CSR")
    ca.add_argument("--csr", choices=("ok", "two-sans", "uri-dns", "rsa", "p384"), default="ok")
    imp = ca.add_mutually_exclusive_group()
    imp.add_argument("--impersonate", help="ImpersonatedIdentity metadata (default: --identity)")
    imp.add_argument("--no-impersonate", action="store_true")
    ca.add_argument("--ttl", type=int, default=0, help="validity_duration in seconds (default: none sent)")
    x = sub.add_parser("xds", help="one DeltaAggregatedResources stream")
    common(x)
    x.add_argument("--node-id", default=DEFAULT_NODE_ID)
    x.add_argument("--node-name", help="NODE_NAME in node metadata")
    x.add_argument("--meta", action="append", metavar="KEY=VALUE", help="more node metadata")
    x.add_argument("--initial", action="append", metavar="NAME=VERSION",
                   help="initial_resource_versions entry of the Address request")
    x.add_argument("--expect-workload", action="append", metavar="NAME", help="workload name or uid")
    x.add_argument("--expect-service", action="append", metavar="HOSTNAME")
    x.add_argument("--summary", help="also write the JSON summary to this file")
    x.add_argument("--nack-address", action="store_true",
                   help="NACK the first Address response, naming its first resource")
    x.add_argument("--linger", type=float, default=0.3,
                   help="seconds to keep the stream open after the ACK")
    r = sub.add_parser("renew", help="one node-token renewal (amesh.token.v1.NodeToken/Renew)")
    common(r)
    r.add_argument("--audience", choices=("xds", "ca"), default="xds",
                   help="which line of the token file to present")
    r.add_argument("--save-token", help="write the fresh token here")
    args = ap.parse_args()
    pb = load_pb(args)
    if args.cmd == "ca":
        return cmd_ca(args, pb)
    if args.cmd == "renew":
        return cmd_renew(args, pb)
    return cmd_xds(args, pb)


if __name__ == "__main__":
    sys.exit(main())
