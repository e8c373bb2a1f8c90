#!/usr/bin/python3
"""inpod_probe.py - workloads for tests/integration/10-inpod-rules.sh.

  serve --port P --banner B      app: on IPv4 and IPv6, answers "B <peer ip>" and closes
  ztunnel --ports 15001,15006    stand-in ztunnel: listeners with SO_MARK 0x539 that answer
                                 "ZT <port> <peer ip> <original destination>" (SO_ORIGINAL_DST)
  udp --port P --banner B        UDP: answers each datagram with "B <peer ip>"
  connect --to HOST:PORT         prints the first line the server sends; --bind ADDR,
                                 --mark M (SO_MARK), --transparent (IP_TRANSPARENT: ADDR need
                                 not be local, as ztunnel dials apps with the client's address)
  udpsend --to HOST:PORT         sends one datagram and prints the answer

Every operation has a deadline; connect/udpsend exit 1 with "ERR ..." on failure.
"""
import argparse
import socket
import struct
import sys
import threading

SO_MARK = 36
SO_ORIGINAL_DST = 80  # SOL_IP; IP6T_SO_ORIGINAL_DST is the same number at SOL_IPV6
IP_TRANSPARENT = 19
IPV6_TRANSPARENT = 75


def parse_hostport(s):
    host, _, port = s.rpartition(":")
    return host.strip("[]"), int(port)


def family_of(host):
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def plain(ip):
    return ip[7:] if ip.startswith("::ffff:") else ip


def listeners(port, mark=None, kind=socket.SOCK_STREAM):
    socks = []
    for fam, host in ((socket.AF_INET, "0.0.0.0"), (socket.AF_INET6, "::")):
        s = socket.socket(fam, kind)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if fam == socket.AF_INET6:
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        if mark is not None:
            s.setsockopt(socket.SOL_SOCKET, SO_MARK, mark)
        s.bind((host, port))
        if kind == socket.SOCK_STREAM:
            s.listen(128)
        socks.append(s)
    return socks


def original_dst(c):
    if c.family == socket.AF_INET6:
        raw = c.getsockopt(socket.IPPROTO_IPV6, SO_ORIGINAL_DST, 28)
        port = struct.unpack("!H", raw[2:4])[0]
        return "[%s]:%d" % (socket.inet_ntop(socket.AF_INET6, raw[8:24]), port)
    raw = c.getsockopt(socket.SOL_IP, SO_ORIGINAL_DST, 16)
    port = struct.unpack("!H", raw[2:4])[0]
    return "%s:%d" % (socket.inet_ntop(socket.AF_INET, raw[4:8]), port)


def accept_loop(srv, answer):
    while True:
        c, peer = srv.accept()
        try:
            c.settimeout(5)
            c.sendall((answer(c, peer) + "\n").encode())
        except OSError as e:
            sys.stderr.write("answer failed: %s\n" % e)
        finally:
            c.close()


def run_forever(threads):
    for t in threads:
        t.daemon = True
        t.start()
    for t in threads:
        t.join()


def serve(args):
    run_forever([threading.Thread(target=accept_loop,
                                  args=(s, lambda c, peer: "%s %s" % (args.banner, plain(peer[0]))))
                 for s in listeners(args.port)])


def ztunnel(args):
    threads = []
    for port in [int(p) for p in args.ports.split(",")]:
        for s in listeners(port, mark=int(args.mark, 0)):
            def answer(c, peer, port=port):
                return "ZT %d %s %s" % (port, plain(peer[0]), original_dst(c))
            threads.append(threading.Thread(target=accept_loop, args=(s, answer)))
    run_forever(threads)


def udp(args):
    def loop(s):
        while True:
            data, peer = s.recvfrom(2048)
            s.sendto(("%s %s\n" % (args.banner, plain(peer[0]))).encode(), peer)
    run_forever([threading.Thread(target=loop, args=(s,))
                 for s in listeners(args.port, kind=socket.SOCK_DGRAM)])


def client_socket(args, kind):
    host, port = parse_hostport(args.to)
    fam = family_of(host)
    s = socket.socket(fam, kind)
    s.settimeout(args.timeout)
    if args.mark is not None:
        s.setsockopt(socket.SOL_SOCKET, SO_MARK, int(args.mark, 0))
    if args.transparent:
        if fam == socket.AF_INET6:
            s.setsockopt(socket.IPPROTO_IPV6, IPV6_TRANSPARENT, 1)
        else:
            s.setsockopt(socket.SOL_IP, IP_TRANSPARENT, 1)
    if args.bind:
        s.bind((args.bind, 0))
    return s, (host, port)


def connect(args):
    try:
        s, dst = client_socket(args, socket.SOCK_STREAM)
        s.connect(dst)
        buf = b""
        while b"\n" not in buf:
            b = s.recv(4096)
            if not b:
                break
            buf += b
        s.close()
        line = buf.decode().strip()
        print(line if line else "ERR closed without an answer")
        return 0 if line else 1
    except OSError as e:
        print("ERR %s" % e)
        return 1


def udpsend(args):
    try:
        s, dst = client_socket(args, socket.SOCK_DGRAM)
        s.sendto(b"query", dst)
        data, _ = s.recvfrom(2048)
        print(data.decode().strip())
        return 0
    except OSError as e:
        print("ERR %s" % e)
        return 1


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("serve")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--banner", required=True)
    p = sub.add_parser("ztunnel")
    p.add_argument("--ports", default="15001,15006")
    p.add_argument("--mark", default="0x539")
    p = sub.add_parser("udp")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--banner", required=True)
    for name in ("connect", "udpsend"):
        p = sub.add_parser(name)
        p.add_argument("--to", required=True)
        p.add_argument("--bind")
        p.add_argument("--mark")
        p.add_argument("--transparent", action="store_true")
        p.add_argument("--timeout", type=float, default=3)
    args = ap.parse_args()
    return {"serve": serve, "ztunnel": ztunnel, "udp": udp, "connect": connect,
            "udpsend": udpsend}[args.cmd](args) or 0


if __name__ == "__main__":
    sys.exit(main())
