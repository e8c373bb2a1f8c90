#!/usr/bin/env python3
"""fake_admin.py MODE [FILE] - a one-connection stand-in for ztunnel's admin port.

Prints the port it listens on (127.0.0.1, ephemeral unless $FAKE_ADMIN_PORT),
serves one request, then exits. MODE picks how the response is framed or broken:
  clen      Content-Length body (FILE)        chunked   chunked body (FILE)
  close     body ends at close (FILE)         keepalive Content-Length, connection left open
  status503 HTTP 503 with a reason            garbage   not HTTP at all
  hugelen   Content-Length past meshctl's cap hang      accept and never answer
  short     Content-Length larger than the body sent
  continue  100 Continue, then a Content-Length answer (FILE)
  clte      Content-Length and Transfer-Encoding: chunked (a smuggling form)
  twocl     two different Content-Lengths
  obsfold   a folded header line
"""
import os
import socket
import sys
import time

mode = sys.argv[1]
body = open(sys.argv[2], "rb").read() if len(sys.argv) > 2 else b""
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", int(os.environ.get("FAKE_ADMIN_PORT", "0"))))
srv.listen(1)
print(srv.getsockname()[1], flush=True)
srv.settimeout(30)
conn, _ = srv.accept()
conn.settimeout(30)
req = b""
while b"\r\n\r\n" not in req:
    chunk = conn.recv(4096)
    if not chunk:
        break
    req += chunk
if not req.startswith(b"GET /config_dump HTTP/1.1\r\n"):
    conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 12\r\n\r\nbad request\n")
    sys.exit(1)

head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
if mode == "clen":
    conn.sendall(head + b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body) + body)
elif mode == "chunked":
    out = head + b"Transfer-Encoding: chunked\r\n\r\n"
    for i in range(0, len(body), 1000):
        part = body[i:i + 1000]
        out += b"%x;ext=1\r\n" % len(part) + part + b"\r\n"
    conn.sendall(out + b"0\r\n\r\n")
elif mode == "close":
    conn.sendall(head + b"\r\n" + body)
elif mode == "keepalive":
    conn.sendall(head + b"Content-Length: %d\r\n\r\n" % len(body) + body)
    time.sleep(20)  # meshctl must not wait for this close
elif mode == "status503":
    conn.sendall(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 21\r\n\r\nnot ready: no config\n")
elif mode == "garbage":
    conn.sendall(b"hello there\r\n\r\n")
elif mode == "hugelen":
    conn.sendall(head + b"Content-Length: 999999999999\r\n\r\n{")
elif mode == "short":
    conn.sendall(head + b"Content-Length: 100\r\nConnection: close\r\n\r\n{}")
elif mode == "continue":
    conn.sendall(b"HTTP/1.1 100 Continue\r\n\r\n" + head +
                 b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body) + body)
elif mode == "clte":
    conn.sendall(head + b"Content-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n1\r\n{\r\n1\r\n}\r\n0\r\n\r\n")
elif mode == "twocl":
    conn.sendall(head + b"Content-Length: 2\r\nContent-Length: 3\r\n\r\n{} ")
elif mode == "obsfold":
    conn.sendall(head + b"X-A: 1\r\n 2\r\nContent-Length: 2\r\n\r\n{}")
elif mode == "hang":
    time.sleep(20)
conn.close()
