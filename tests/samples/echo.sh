#!/usr/bin/env bash
# echo.sh - echo-server (samples/echo) in a network namespace of its own.
#
#   netns ams-echo-PID (lo only)
#     echo-server --http-port HP --tcp-port TP  ([::], dual stack)
#     echo-server --http-port HP2 --bind 127.0.0.1 --tcp-port 0   (defaults)
#     curl and tests/samples/echo_client.py as clients
#
# HTTP answers (pod, version, real peer address), keep-alive, pipelining, bodies
# (Content-Length, chunked, 100-continue), refusals (400, 414, 431, 501), the TCP
# banner, echo and half-close, many connections, the access log, and SIGTERM
# exiting 0 with connections open and no sanitizer report.
. "$(dirname "$0")/lib.sh"

HP=$(random_port)
TP=$((HP + 1))
URL=http://127.0.0.1:$HP
curl_ns() { in_ns curl -sS --max-time 10 "$@"; }
raw() { in_ns $CLIENT raw 127.0.0.1 "$HP" --send "$1" ${2:-}; }

say "echo-server on [::]:$HP (http) and [::]:$TP (tcp)"
POD_NAME=echo-test-pod start_bg echo "$BIN/echo-server" --http-port "$HP" --tcp-port "$TP" \
    --version v7
ECHO_PID=$LAST_PID
check "serves /healthz" wait_for in_ns curl -fsS "$URL/healthz"

say "HTTP answers"
expect "/healthz answers ok" '^ok$' "$(curl_ns "$URL/healthz")"
out=$(curl_ns -i "$URL/hello?x=1")
expect "200 text/plain" $'^HTTP/1.1 200 OK\r$' "$out"
expect "content type" $'^Content-Type: text/plain\r$' "$out"
expect "pod from POD_NAME, version from the flag, peer, method, path" \
    '^pod=echo-test-pod version=v7 peer=127\.0\.0\.1:[0-9]+ method=GET path=/hello\?x=1 host=127\.0\.0\.1:'"$HP"' body_bytes=0$' \
    "$out"
LP=$((HP + 100))
out=$(curl_ns --interface 127.0.0.9 --local-port "$LP" "$URL/who")
expect "peer is the client's own address and port" "peer=127\.0\.0\.9:$LP " "$out"
out=$(curl_ns -g "http://[::1]:$HP/v6")
expect "IPv6 client on the dual-stack listener" 'peer=\[::1\]:[0-9]+ method=GET path=/v6 ' "$out"
out=$(curl_ns -X DELETE "$URL/any")
expect "other methods answered too" 'method=DELETE path=/any ' "$out"
out=$(curl_ns -I "$URL/head")
expect "HEAD: 200 with the length of the GET body" $'^Content-Length: [0-9]+\r$' "$out"

say "keep-alive and pipelining"
out=$(curl_ns -v "$URL/one" "$URL/two" 2>&1)
expect "curl reuses the connection" 'Re-using existing connection' "$out"
p1=$(printf '%s\n' "$out" | sed -n 's/.*peer=\([^ ]*\) method=GET path=\/one .*/\1/p')
p2=$(printf '%s\n' "$out" | sed -n 's/.*peer=\([^ ]*\) method=GET path=\/two .*/\1/p')
check "both requests came on one connection ($p1)" test -n "$p1" -a "$p1" = "$p2"
out=$(raw 'GET /p1 HTTP/1.1\r\nHost: a\r\n\r\nGET /p2 HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n')
expect "two pipelined requests, two answers in order, then close" \
    'path=/p1 host=a body_bytes=0.*path=/p2 host=b body_bytes=0' "$(printf '%s' "$out" | tr -d '\r\n')"
out=$(raw 'GET /old HTTP/1.0\r\n\r\n')
expect "HTTP/1.0 without Host is answered, then closed" 'path=/old host=- ' "$out"

say "request bodies"
head -c 100000 /dev/urandom >"$WORK/body"
out=$(curl_ns --data-binary @"$WORK/body" "$URL/post")
expect "POST: Content-Length body counted" 'method=POST path=/post .* body_bytes=100000$' "$out"
out=$(curl_ns -H 'Transfer-Encoding: chunked' --data-binary @"$WORK/body" "$URL/chunked")
expect "POST: chunked body counted" 'path=/chunked .* body_bytes=100000$' "$out"
out=$(curl_ns -v -H 'Expect: 100-continue' --expect100-timeout 5 --data-binary @"$WORK/body" \
    -w 'time=%{time_total}\n' "$URL/expect" 2>&1)
expect "Expect: 100-continue: the server says 100 Continue" '^< HTTP/1.1 100 Continue' "$out"
expect "... then counts the body" 'path=/expect .* body_bytes=100000$' "$out"
expect "... without curl waiting for its timeout" '^time=[0-4]\.' "$out"
out=$(raw 'POST /c HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n0\r\nX-Trailer: 1\r\n\r\nGET /after HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n')
expect "chunk extensions and trailers, then the next request" \
    'path=/c host=t body_bytes=5.*path=/after ' "$(printf '%s' "$out" | tr -d '\r\n')"

say "refusals: answered, then closed"
expect "garbage: 400" '^HTTP/1.1 400 Bad Request' "$(raw 'garbage\r\n\r\n')"
expect "binary bytes: 400 at once, without waiting for a line end" '^HTTP/1.1 400 ' \
    "$(raw '\x16\x03\x01\x02\x00')"
expect "HTTP/1.1 without Host: 400" '^HTTP/1.1 400 ' "$(raw 'GET / HTTP/1.1\r\n\r\n')"
expect "bare LF: 400" '^HTTP/1.1 400 ' "$(raw 'GET / HTTP/1.1\nHost: x\n\n')"
expect "space before the colon: 400" '^HTTP/1.1 400 ' "$(raw 'GET / HTTP/1.1\r\nHost : x\r\n\r\n')"
expect "Content-Length with Transfer-Encoding: 400" '^HTTP/1.1 400 ' \
    "$(raw 'POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n')"
expect "two different Content-Lengths: 400" '^HTTP/1.1 400 ' \
    "$(raw 'POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd')"
expect "bad chunk size: 400" '^HTTP/1.1 400 ' \
    "$(raw 'POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n')"
expect "Transfer-Encoding gzip: 501" '^HTTP/1.1 501 ' \
    "$(raw 'POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n')"
expect "HTTP/2.0 request line: 505" '^HTTP/1.1 505 HTTP Version Not Supported' \
    "$(raw 'GET / HTTP/2.0\r\nHost: x\r\n\r\n')"
expect "chunk size with trailing space: 400" '^HTTP/1.1 400 ' \
    "$(raw 'POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3 \r\nabc\r\n0\r\n\r\n')"
big=$(head -c 20000 /dev/zero | tr '\0' a)
expect "20 KB header: 431" '^431$' \
    "$(curl_ns -o /dev/null -w '%{http_code}' -H "X-Big: $big" "$URL/big")"
hdrs=$(for i in $(seq 1 101); do printf 'X-H%d: 1\\r\\n' "$i"; done)
expect "101 headers: 431" '^HTTP/1.1 431 ' "$(raw "GET / HTTP/1.1\\r\\nHost: x\\r\\n$hdrs\\r\\n")"
long=$(head -c 3000 /dev/zero | tr '\0' b)
expect "3000-byte path: 414" '^414$' \
    "$(curl_ns -o /dev/null -w '%{http_code}' "$URL/$long")"
expect "refusals close the connection" $'^Connection: close\r$' "$(raw 'garbage\r\n\r\n')"
check "still serving after the refusals" in_ns curl -fsS -o /dev/null --max-time 5 "$URL/healthz"

say "raw TCP: banner, echo, half-close"
out=$(in_ns $CLIENT tcp 127.0.0.1 "$TP" --pod echo-test-pod --version v7 --bytes $((1 << 20)))
expect "banner names pod, version and our address" '^banner ok: pod=echo-test-pod version=v7 ' "$out"
expect "1 MiB echoed exactly, EOF after our FIN" '^echo ok: 1048576 bytes' "$out"
out=$(in_ns $CLIENT tcp ::1 "$TP" --pod echo-test-pod --version v7 --bytes 1000)
expect "TCP over IPv6" '^echo ok: 1000 bytes' "$out"

say "many connections at once"
expect "300 TCP connections" '^300 connections ok$' "$(in_ns $CLIENT many 127.0.0.1 "$TP" --conns 300)"
expect "300 HTTP connections" '^300 connections ok$' \
    "$(in_ns $CLIENT many 127.0.0.1 "$HP" --conns 300 --http)"

say "access log: one line per request on stdout"
log=$(cat "$WORK/echo.out")
expect "a request line" 'Z http peer=127\.0\.0\.1:[0-9]+ method=GET path=/hello\?x=1 .*status=200 ' "$log"
expect "a refusal line" 'Z http peer=.* status=431' "$log"
expect "a TCP connection line" 'Z tcp peer=127\.0\.0\.1:[0-9]+ echoed_bytes=1048576 .*end=eof' "$log"

say "defaults: name from the hostname, version from \$VERSION; --bind; --tcp-port 0"
HP2=$((HP + 2))
VERSION=v3 start_bg echo2 env -u POD_NAME "$BIN/echo-server" --http-port "$HP2" --bind 127.0.0.1 \
    --tcp-port 0
ECHO2_PID=$LAST_PID
check "second server up" wait_for in_ns curl -fsS "http://127.0.0.1:$HP2/healthz"
expect "pod= is the hostname, version= from \$VERSION" \
    "^pod=$(hostname) version=v3 peer=127\.0\.0\.1:" "$(curl_ns "http://127.0.0.1:$HP2/")"
check "--bind 127.0.0.1: no IPv6 listener" bash -c "! ip netns exec $NS curl -s --max-time 2 -g http://[::1]:$HP2/"
check "--tcp-port 0: no TCP listener" bash -c "! ip netns exec $NS curl -s --max-time 2 telnet://127.0.0.1:9000 </dev/null"
stop_ok "second server: SIGTERM, exit 0" "$ECHO2_PID" "$WORK/echo2.err"

say "SIGTERM with connections open"
in_ns $CLIENT hold 127.0.0.1 "$HP" "$TP" --ready-file "$WORK/held" >"$WORK/hold.out" 2>&1 &
HOLD_PID=$!
check "client holds an HTTP and a TCP connection" wait_for test -e "$WORK/held"
stop_ok "SIGTERM: exit 0, no sanitizer report" "$ECHO_PID" "$WORK/echo.err"
rc=0; wait "$HOLD_PID" || rc=$?
check "the server closed both connections" test "$rc" -eq 0
expect "stop logged" 'signal 15: stopping' "$(cat "$WORK/echo.out")"

finish
