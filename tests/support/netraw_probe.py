#!/usr/bin/python3
"""netraw_probe.py - what a pod process with CAP_NET_RAW can try against capture.

  ackconnect --to HOST:PORT [--sport P] [--ttl N] [--wait S] [--message M] [--timeout S]
      Sends one hand-built TCP ACK (raw socket, no handshake before it) from
      source port P to HOST:PORT, so that conntrack meets the flow mid-stream,
      then connect()s from the same port (SO_REUSEADDR), sends M (default "x")
      and a newline, and prints the first line the server sends, or
      "REFUSED <why>" / "EOF" / "TIMEOUT". With --ttl the ACK dies after N hops,
      as one that a stateful firewall on the way drops: no reset comes back
      (a reset would end the conntrack entry the ACK made).
  ack --to HOST:PORT --sport P [--ttl N]
      Only the raw ACK.
  reflectconnect --to HOST:PORT [--sport P] [--message M] [--timeout S]
      IPv4: sends one hand-built SYN "from" HOST:PORT to this host's own
      address, port P (over lo, with a bad checksum so that no reset answers
      it), which leaves a conntrack entry whose reply direction is
      P -> HOST:PORT; then connect()s from P to HOST:PORT as ackconnect does.
  connect --to HOST:PORT [--sport P] [--message M] [--timeout S]
      A plain connect(), printing the same.

HOST may be a scoped link-local address ("fe80::1%eth0"). Exit status is 0
whatever happened (the test judges the line); 2 on bad arguments.
"""
import argparse
import os
import socket
import struct
import sys
import time


def parse_hostport(s):
    host, _, port = s.rpartition(":")
    return host.strip("[]"), int(port)


def family_of(host):
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def csum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def sockaddr(fam, host, port):
    if fam == socket.AF_INET:
        return (host, port)
    return socket.getaddrinfo(host, port, socket.AF_INET6, socket.SOCK_STREAM)[0][4]


def source_of(fam, addr):
    """The source address the kernel would pick for |addr| (a UDP connect sends nothing)."""
    u = socket.socket(fam, socket.SOCK_DGRAM)
    u.connect(addr)
    src = u.getsockname()[0]
    u.close()
    return src.split("%")[0]


def send_ack(fam, addr, sport, ttl):
    host, dport = addr[0].split("%")[0], addr[1]
    src = source_of(fam, addr)
    seq, ack = struct.unpack("!II", os.urandom(8))
    # 20-byte header, flags ACK only, window 64240, checksum filled below.
    tcp = struct.pack("!HHIIBBHHH", sport, dport, seq, ack, 5 << 4, 0x10, 64240, 0, 0)
    if fam == socket.AF_INET:
        pseudo = socket.inet_pton(fam, src) + socket.inet_pton(fam, host) + struct.pack(
            "!BBH", 0, socket.IPPROTO_TCP, len(tcp))
    else:
        pseudo = socket.inet_pton(fam, src) + socket.inet_pton(fam, host) + struct.pack(
            "!IxxxB", len(tcp), socket.IPPROTO_TCP)
    tcp = tcp[:16] + struct.pack("!H", csum(pseudo + tcp)) + tcp[18:]
    r = socket.socket(fam, socket.SOCK_RAW, socket.IPPROTO_TCP)
    if ttl:
        if fam == socket.AF_INET:
            r.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, ttl)
        else:
            r.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, ttl)
    try:
        r.sendto(tcp, addr if fam == socket.AF_INET else (addr[0], 0) + tuple(addr[2:]))
    except OSError as e:
        # A local firewall rule dropped it (EPERM); the connect() is tried all the same.
        print("raw ACK not sent: %s" % e.strerror, file=sys.stderr)
    r.close()


def send_reflected_syn(addr, sport):
    host, dport = addr
    me = source_of(socket.AF_INET, addr)
    seq = struct.unpack("!I", os.urandom(4))[0]
    tcp = struct.pack("!HHIIBBHHH", dport, sport, seq, 0, 5 << 4, 0x02, 64240, 0, 0)
    pseudo = socket.inet_aton(host) + socket.inet_aton(me) + struct.pack(
        "!BBH", 0, socket.IPPROTO_TCP, len(tcp))
    bad = csum(pseudo + tcp) ^ 0x5555  # the local stack drops it silently
    tcp = tcp[:16] + struct.pack("!H", bad) + tcp[18:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), 1, 0, 64, socket.IPPROTO_TCP, 0,
                     socket.inet_aton(host), socket.inet_aton(me))
    r = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    try:
        r.sendto(ip + tcp, (me, 0))
    except OSError as e:
        print("raw SYN not sent: %s" % e.strerror, file=sys.stderr)
    r.close()


def connect_and_read(fam, addr, sport, message, timeout):
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        if sport:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("" if fam == socket.AF_INET else "::", sport))
        s.connect(addr)
        s.sendall(message.encode() + b"\n")
        line = s.makefile("rb").readline()
        return line.decode(errors="replace").strip() if line else "EOF"
    except socket.timeout:
        return "TIMEOUT"
    except OSError as e:
        return "REFUSED %s" % (e.strerror or e)
    finally:
        s.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["ack", "ackconnect", "reflectconnect", "connect"])
    ap.add_argument("--to", required=True)
    ap.add_argument("--sport", type=int, default=0)
    ap.add_argument("--wait", type=float, default=0.3, help="seconds between the ACK and connect()")
    ap.add_argument("--ttl", type=int, default=0, help="hop limit of the raw ACK")
    ap.add_argument("--message", default="x")
    ap.add_argument("--timeout", type=float, default=3)
    args = ap.parse_args()
    host, port = parse_hostport(args.to)
    fam = family_of(host)
    addr = sockaddr(fam, host, port)
    sport = args.sport
    if args.mode != "connect":
        if not sport:
            sport = 20000 + int.from_bytes(os.urandom(2), "big") % 20000
        if args.mode == "reflectconnect":
            if fam != socket.AF_INET:
                print("reflectconnect is IPv4 only", file=sys.stderr)
                return 2
            send_reflected_syn(addr, sport)
        else:
            send_ack(fam, addr, sport, args.ttl)
        if args.mode == "ack":
            return 0
        time.sleep(args.wait)
    print(connect_and_read(fam, addr, sport, args.message, args.timeout), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
