#!/usr/bin/python3
"""mkcerts.py - mint test certificates for HBONE clients, independently of amesh.

Uses python3-cryptography only (no amesh code, no openssl CLI), so a bug in
ztunnel's CA code cannot hide in the test's certificates too.

  mkcerts.py root --out DIR [--cn NAME]
      a self-signed EC P-256 root: DIR/root-cert.pem, DIR/root-key.pem
  mkcerts.py leaf --ca DIR --cert FILE --key FILE --uri URI [--uri URI ...]
                  [--expired | --not-yet-valid] [--ca-true] [--no-san]
      an EC P-256 leaf signed by DIR/root-key.pem with the given URI SANs only,
      shaped like an Istio workload certificate (empty subject, critical SAN,
      digitalSignature, serverAuth+clientAuth). --expired puts not_valid_after in
      the past, --not-yet-valid puts not_valid_before in the future.
"""
import argparse
import datetime
import os
import sys

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


def now():
    return datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)


def write_key(path, key):
    with open(path, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM,
                                  serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    os.chmod(path, 0o600)


def write_cert(path, cert):
    with open(path, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))


def make_root(args):
    os.makedirs(args.out, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "amesh-test"),
                      x509.NameAttribute(NameOID.COMMON_NAME, args.cn)])
    t = now()
    cert = (x509.CertificateBuilder()
            .subject_name(name).issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(t - datetime.timedelta(hours=1))
            .not_valid_after(t + datetime.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False,
                                         key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, key_cert_sign=True, crl_sign=True,
                                         encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                           critical=False)
            .sign(key, hashes.SHA256()))
    write_key(os.path.join(args.out, "root-key.pem"), key)
    write_cert(os.path.join(args.out, "root-cert.pem"), cert)
    return 0


def make_leaf(args):
    with open(os.path.join(args.ca, "root-cert.pem"), "rb") as f:
        root = x509.load_pem_x509_certificate(f.read())
    with open(os.path.join(args.ca, "root-key.pem"), "rb") as f:
        root_key = serialization.load_pem_private_key(f.read(), password=None)
    key = ec.generate_private_key(ec.SECP256R1())
    t = now()
    if args.expired:
        nb, na = t - datetime.timedelta(days=2), t - datetime.timedelta(days=1)
    elif args.not_yet_valid:
        nb, na = t + datetime.timedelta(days=1), t + datetime.timedelta(days=2)
    else:
        nb, na = t - datetime.timedelta(minutes=5), t + datetime.timedelta(hours=24)
    b = (x509.CertificateBuilder()
         .subject_name(x509.Name([]))
         .issuer_name(root.subject)
         .public_key(key.public_key())
         .serial_number(x509.random_serial_number())
         .not_valid_before(nb)
         .not_valid_after(na)
         .add_extension(x509.BasicConstraints(ca=args.ca_true, path_length=None), critical=True)
         .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False,
                                      key_encipherment=False, data_encipherment=False,
                                      key_agreement=False, key_cert_sign=args.ca_true,
                                      crl_sign=False, encipher_only=False, decipher_only=False),
                        critical=True)
         .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH,
                                               ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
         .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(root_key.public_key()),
                        critical=False))
    if not args.no_san:
        if not args.uri:
            print("mkcerts: leaf needs --uri (or --no-san)", file=sys.stderr)
            return 2
        b = b.add_extension(
            x509.SubjectAlternativeName([x509.UniformResourceIdentifier(u) for u in args.uri]),
            critical=True)
    cert = b.sign(root_key, hashes.SHA256())
    write_key(args.key, key)
    write_cert(args.cert, cert)
    return 0


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("root")
    p.add_argument("--out", required=True)
    p.add_argument("--cn", default="other-root")
    p = sub.add_parser("leaf")
    p.add_argument("--ca", required=True, help="dir with root-cert.pem and root-key.pem")
    p.add_argument("--cert", required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--uri", action="append", default=[])
    g = p.add_mutually_exclusive_group()
    g.add_argument("--expired", action="store_true")
    g.add_argument("--not-yet-valid", action="store_true")
    p.add_argument("--ca-true", action="store_true")
    p.add_argument("--no-san", action="store_true")
    args = ap.parse_args()
    return make_root(args) if args.cmd == "root" else make_leaf(args)


if __name__ == "__main__":
    sys.exit(main())
