#!/usr/bin/env bash
# bench/run.sh BUILD_DIR - the side-by-side benchmark behind `make bench`.
#
# Builds two "nodes" (network namespaces joined by a veth, MTU 1500) and measures,
# in one run, the same workloads over four paths (see bench/README.md):
#   direct   client in node-1 -> origin in node-2, plain TCP
#   amesh    client -> iptables REDIRECT -> ztunnel (node-1) =HBONE=> ztunnel (node-2) -> origin
#   haproxy  client -> HAProxy (node-1) =mTLS=> HAProxy (node-2) -> origin
#   stunnel  client -> stunnel (node-1) =mTLS=> stunnel (node-2) -> origin
# Results are printed as a table and written to bench/results/latest.md (+ .txt raw).
# Nothing is asserted: goals are reported as met / not met.
#
# Environment: BENCH_SECS (default 6) per measurement, BENCH_HOLD (default 10000) tunnels
# for the memory test, BENCH_ONLY="direct amesh ..." and BENCH_STEPS="mem bulk rps cps rtt
# workers fair affinity wp cp" to run a subset, KEEP_WORK=1 to keep the work dir (logs), BENCH_HOOK=FILE sourced after the
# steps with the topology still up (for investigations). Step "cp" (the control plane, meshd
# with simulated ztunnels) is bench/cp.sh, run in its own namespace; alone it needs none of
# the topology below. Step "wp" (the waypoint path against L4 and an HAProxy h2+mTLS chain)
# is bench/wp.sh, with its own namespaces; alone (BENCH_STEPS=wp) likewise.
set -euo pipefail

BENCH=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$BENCH")
BUILD=${1:-build}
case $BUILD in /*) ;; *) BUILD=$ROOT/$BUILD ;; esac
[ -x "$BUILD/bin/ztunnel" ] || { echo "bench: $BUILD/bin/ztunnel not built (run make bench)" >&2; exit 1; }
grep -q 'CMAKE_BUILD_TYPE:STRING=\(RelWithDebInfo\|Release\)' "$BUILD/CMakeCache.txt" 2>/dev/null ||
    echo "bench: WARNING: $BUILD is not a release build" >&2

SECS=${BENCH_SECS:-6}
HOLD_N=${BENCH_HOLD:-10000}
[ "$HOLD_N" -ge 2000 ] || { echo "bench: BENCH_HOLD must be at least 2000 (the ramp starts at 1,000)" >&2; exit 2; }
IMPLS=(${BENCH_ONLY:-direct amesh haproxy stunnel})
STEPS=" ${BENCH_STEPS:-mem bulk rps cps rtt workers fair affinity wp cp} "
step() { [[ $STEPS == *" $1 "* ]]; }
# shellcheck disable=SC2086
[ "$(echo $STEPS)" != cp ] || exec "$BENCH/cp.sh" "$BUILD" # writes results/partial.*
# shellcheck disable=SC2086
[ "$(echo $STEPS)" != wp ] || exec "$BENCH/wp.sh" "$BUILD" # writes results/partial.*
START_TS=$(date +%s)

export MESH_BIN=$BUILD/bin
export ID=bench$$
. "$ROOT/tests/integration/lib.sh" # set -euo pipefail, trap cleanup EXIT, WORK, PIDS, helpers
export ASAN_OPTIONS='' UBSAN_OPTIONS=''
trap 'exit 130' INT TERM HUP
require_root

# All of the benchmark's processes go into one cgroup (cgroup v1 cpuacct, or v2), so the CPU
# they use can be told apart from other work on a shared machine. Removed on exit.
CG='' CG_HOME='' CG_KIND=''
if [ -d /sys/fs/cgroup/cpuacct ] && [ -f /sys/fs/cgroup/cpuacct/cpuacct.usage ]; then
    CG_KIND=v1 CG_HOME=/sys/fs/cgroup/cpuacct$(sed -n 's/^[0-9]*:cpuacct[^:]*://p' /proc/self/cgroup | head -1)
elif [ -f /sys/fs/cgroup/cgroup.controllers ]; then
    CG_KIND=v2 CG_HOME=/sys/fs/cgroup$(sed -n 's/^0:://p' /proc/self/cgroup | head -1)
fi
if [ -n "$CG_KIND" ]; then
    CG=$CG_HOME/amesh-bench-$$
    if ! { mkdir "$CG" && echo $$ >"$CG/cgroup.procs"; } 2>/dev/null; then
        rmdir "$CG" 2>/dev/null || true
        CG=
    fi
fi
bench_cleanup() {
    local rc=$? p n
    set +e
    for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
    if [ -n "$CG" ]; then
        echo $$ >"$CG_HOME/cgroup.procs" 2>/dev/null || true
        for n in 1 2 3 4 5 6 7 8 9 10; do
            rmdir "$CG" 2>/dev/null && break
            [ "$n" -lt 5 ] || for p in $(cat "$CG/cgroup.procs" 2>/dev/null); do kill -9 "$p" 2>/dev/null || true; done
            sleep 0.3
        done
        [ ! -d "$CG" ] || echo "bench: could not remove cgroup $CG" >&2
    fi
    (exit "$rc")
    cleanup # lib.sh: kills what is left, deletes the namespaces and the work dir, exits rc
}
trap bench_cleanup EXIT

# ---------------------------------------------------------------- packages
"$ROOT/tools/install-deps.sh" bench # the peers (haproxy, stunnel, nginx, wrk, iperf3) too

ulimit -n "$(ulimit -Hn)" # the proxies, the holder and the echo server need ~2 fds per tunnel
NOFILE=$(ulimit -n)

RES=$WORK/results.txt
: >"$RES"
rec() { echo "$1 $2" >>"$RES"; } # key value

gcc -O2 -o "$WORK/benchtool" "$BENCH/tools/benchtool.c"
BT=$WORK/benchtool

# ---------------------------------------------------------------- topology
# node-1 ($N1): veth 198.18.0.1, client pod 198.18.250.20 (source of every connection)
# node-2 ($N2): veth 198.18.0.2, server pod 198.18.250.10 (mesh, HBONE), 198.18.250.11 (same
#               origin processes, used by direct / HAProxy / stunnel: not captured)
topo_two_nodes 4
ip -n "$N1" route replace default via 198.18.0.2 src "$CLIENT_IP"
for ns in "$N1" "$N2"; do
    ip netns exec "$ns" sysctl -qw net.ipv4.ip_local_port_range="1024 65000" \
        net.ipv4.tcp_tw_reuse=1 net.core.somaxconn=8192 net.ipv4.tcp_max_syn_backlog=8192
done
PLAIN_IP=$SERVER2_IP

# ---------------------------------------------------------------- certificates
make_ca "$WORK/ca"
CA=$WORK/ca
leaf() { # name spiffe-sa
    openssl ecparam -name prime256v1 -genkey -noout -out "$CA/$1-key.pem" 2>/dev/null
    openssl req -new -key "$CA/$1-key.pem" -subj "/O=amesh-bench" -out "$CA/$1.csr" 2>/dev/null
    printf 'subjectAltName=critical,URI:spiffe://cluster.local/ns/default/sa/%s\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth,clientAuth\nbasicConstraints=critical,CA:FALSE\n' "$2" >"$CA/$1.ext"
    openssl x509 -req -in "$CA/$1.csr" -CA "$CA/root-cert.pem" -CAkey "$CA/root-key.pem" \
        -CAcreateserial -days 2 -sha256 -extfile "$CA/$1.ext" -out "$CA/$1-cert.pem" 2>/dev/null
    cat "$CA/$1-cert.pem" "$CA/$1-key.pem" >"$CA/$1.pem"
}
leaf client client
leaf server server

# Same TLS settings everywhere: TLS 1.3 only, AES-256-GCM then AES-128-GCM, P-256/P-384 key
# exchange (ztunnel's FIPS default). HAProxy 2.6 has no `curves` for server lines, so the
# groups of its connecting side come from this OpenSSL config (otherwise it would offer X25519
# and pay a HelloRetryRequest on every handshake).
cat >"$WORK/openssl.cnf" <<EOF
openssl_conf = bench_conf
[bench_conf]
ssl_conf = bench_ssl
[bench_ssl]
system_default = bench_tls
[bench_tls]
MinProtocol = TLSv1.3
Groups = P-256:P-384
Ciphersuites = TLS_AES_256_GCM_SHA384:TLS_AES_128_GCM_SHA256
EOF

# ---------------------------------------------------------------- mesh config
write_config "$WORK/mesh.yaml" # lib.sh: the client and server pods, as in the integration tests
# A second client pod on node-1 (own address, own identity): the flooding neighbour of the
# fairness step (bench/workers.sh). Idle in every other step.
FLOOD_IP=198.18.250.21
ip -n "$N1" addr add $FLOOD_IP/32 dev lo
awk -v ip=$FLOOD_IP '{ print } /^workloads:$/ {
    print "- uid: Kubernetes//Pod/default/flood\n  name: flood\n  namespace: default"
    print "  serviceAccount: flood\n  addresses: [\"" ip "\"]\n  node: node-1\n  tunnelProtocol: HBONE" }' \
    "$WORK/mesh.yaml" >"$WORK/mesh.yaml.new" && mv "$WORK/mesh.yaml.new" "$WORK/mesh.yaml"

# ---------------------------------------------------------------- origins (node-2)
P_IPERF=5201 P_HTTP=8080 P_ECHO=9000 P_ECHO_FLOOD=9001 P_IPERF_FLOOD=5202
mkdir -p "$WORK/www" "$WORK/nginx/tmp"
head -c 1024 /dev/zero | tr '\0' 'a' >"$WORK/www/1k"
cat >"$WORK/nginx/nginx.conf" <<EOF
worker_processes 1;
daemon off;
master_process off;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log error;
worker_rlimit_nofile $NOFILE;
events { worker_connections 16384; }
http {
    access_log off;
    default_type application/octet-stream;
    tcp_nodelay on;
    keepalive_requests 1000000000;
    keepalive_timeout 600s;
    client_body_temp_path $WORK/nginx/tmp;
    proxy_temp_path $WORK/nginx/tmp;
    fastcgi_temp_path $WORK/nginx/tmp;
    uwsgi_temp_path $WORK/nginx/tmp;
    scgi_temp_path $WORK/nginx/tmp;
    server { listen $P_HTTP backlog=8192; root $WORK/www; }
}
EOF
start_bg "$WORK/nginx.log" ip netns exec "$N2" nginx -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" -e "$WORK/nginx/error.log"
start_bg "$WORK/iperf3-server.log" ip netns exec "$N2" iperf3 -s -p $P_IPERF
start_bg "$WORK/echo.log" ip netns exec "$N2" "$BT" echo $P_ECHO
ECHO_PID=$LAST_PID
# The fairness step's flooding pod has origins of its own, so what it measures is the shared
# ztunnels, not a shared origin process.
start_bg "$WORK/echo-flood.log" ip netns exec "$N2" "$BT" echo $P_ECHO_FLOOD
start_bg "$WORK/iperf3-flood.log" ip netns exec "$N2" iperf3 -s -p $P_IPERF_FLOOD

# ---------------------------------------------------------------- proxies
# Port plan (node-1 listens on 127.0.0.1, node-2 on $PLAIN_IP):
#   haproxy client 2xxxx -> server 3xxxx;  stunnel client 4xxxx -> server 5xxxx
#   xxxx = 5201 iperf3, 8080 http, 9000 echo
HOLD_CAP=$(( (NOFILE - 200) / 2 )) # a two-socket-per-tunnel proxy fits this many tunnels
[ "$HOLD_CAP" -gt "$HOLD_N" ] && HOLD_CAP=$HOLD_N
CIPHERS=TLS_AES_256_GCM_SHA384:TLS_AES_128_GCM_SHA256

haproxy_cfg() { # side(client|server)
    cat <<EOF
global
    nbthread 1
    maxconn $((HOLD_CAP + 50))
    ssl-default-bind-ciphersuites $CIPHERS
    ssl-default-bind-options ssl-min-ver TLSv1.3
    ssl-default-server-ciphersuites $CIPHERS
    ssl-default-server-options ssl-min-ver TLSv1.3
defaults
    mode tcp
    timeout connect 5s
    timeout client 1h
    timeout server 1h
EOF
    for p in $P_IPERF $P_HTTP $P_ECHO; do
        if [ "$1" = client ]; then
            printf 'listen l%s\n    bind 127.0.0.1:2%s\n    server s %s:3%s ssl crt %s ca-file %s verify required\n' \
                "$p" "$p" "$PLAIN_IP" "$p" "$CA/client.pem" "$CA/root-cert.pem"
        else
            printf 'listen l%s\n    bind %s:3%s ssl crt %s ca-file %s verify required curves P-256:P-384\n    server o 127.0.0.1:%s\n' \
                "$p" "$PLAIN_IP" "$p" "$CA/server.pem" "$CA/root-cert.pem" "$p"
        fi
    done
}
stunnel_cfg() { # side(client|server)
    cat <<EOF
foreground = yes
pid =
debug = 3
socket = l:TCP_NODELAY=1
socket = r:TCP_NODELAY=1
EOF
    for p in $P_IPERF $P_HTTP $P_ECHO; do
        printf '[s%s]\nsslVersionMin = TLSv1.3\nciphersuites = %s\ncurves = P-256:P-384\nCAfile = %s\nverifyChain = yes\n' \
            "$p" "$CIPHERS" "$CA/root-cert.pem"
        if [ "$1" = client ]; then
            printf 'client = yes\naccept = 127.0.0.1:4%s\nconnect = %s:5%s\ncert = %s\nkey = %s\n' \
                "$p" "$PLAIN_IP" "$p" "$CA/client-cert.pem" "$CA/client-key.pem"
        else
            printf 'accept = %s:5%s\nconnect = 127.0.0.1:%s\ncert = %s\nkey = %s\n' \
                "$PLAIN_IP" "$p" "$p" "$CA/server-cert.pem" "$CA/server-key.pem"
        fi
    done
}
haproxy_cfg client >"$WORK/haproxy-client.cfg"
haproxy_cfg server >"$WORK/haproxy-server.cfg"
stunnel_cfg client >"$WORK/stunnel-client.conf"
stunnel_cfg server >"$WORK/stunnel-server.conf"

listening() { ip netns exec "$1" ss -Hltn "sport = :$2" | grep -q .; }
declare -A PC PS HOST_IPERF HOST_HTTP HOST_ECHO PORT_IPERF PORT_HTTP PORT_ECHO BROKEN
for i in "${IMPLS[@]}"; do BROKEN[$i]=""; done

for i in "${IMPLS[@]}"; do
    case $i in
    direct)
        h=$PLAIN_IP; pi=$P_IPERF; ph=$P_HTTP; pe=$P_ECHO ;;
    amesh)
        start_ztunnel "$N1" node-1 "$WORK/mesh.yaml" "$CA" "$WORK/zt1.log" --log-level error
        PC[$i]=$LAST_PID
        start_ztunnel "$N2" node-2 "$WORK/mesh.yaml" "$CA" "$WORK/zt2.log" --log-level error
        PS[$i]=$LAST_PID
        # Capture only what is sent to the mesh pod, so every path sees the same netfilter
        # (nat table present, conntrack on) and only amesh traffic is REDIRECTed.
        ip netns exec "$N1" iptables -t nat -A OUTPUT -p tcp -d "$SERVER_IP" -m mark ! --mark 0x539/0xfff \
            -j REDIRECT --to-ports 15001
        h=$SERVER_IP; pi=$P_IPERF; ph=$P_HTTP; pe=$P_ECHO ;;
    haproxy)
        start_bg "$WORK/haproxy-server.log" ip netns exec "$N2" env OPENSSL_CONF="$WORK/openssl.cnf" \
            haproxy -db -f "$WORK/haproxy-server.cfg"
        PS[$i]=$LAST_PID
        start_bg "$WORK/haproxy-client.log" ip netns exec "$N1" env OPENSSL_CONF="$WORK/openssl.cnf" \
            haproxy -db -f "$WORK/haproxy-client.cfg"
        PC[$i]=$LAST_PID
        wait_for listening "$N2" 3$P_ECHO && wait_for listening "$N1" 2$P_ECHO || BROKEN[$i]="did not start"
        h=127.0.0.1; pi=2$P_IPERF; ph=2$P_HTTP; pe=2$P_ECHO ;;
    stunnel)
        start_bg "$WORK/stunnel-server.log" ip netns exec "$N2" env OPENSSL_CONF="$WORK/openssl.cnf" \
            stunnel4 "$WORK/stunnel-server.conf"
        PS[$i]=$LAST_PID
        start_bg "$WORK/stunnel-client.log" ip netns exec "$N1" env OPENSSL_CONF="$WORK/openssl.cnf" \
            stunnel4 "$WORK/stunnel-client.conf"
        PC[$i]=$LAST_PID
        wait_for listening "$N2" 5$P_ECHO && wait_for listening "$N1" 4$P_ECHO || BROKEN[$i]="did not start"
        h=127.0.0.1; pi=4$P_IPERF; ph=4$P_HTTP; pe=4$P_ECHO ;;
    *) echo "bench: unknown implementation $i" >&2; exit 1 ;;
    esac
    HOST_IPERF[$i]=$h PORT_IPERF[$i]=$pi HOST_HTTP[$i]=$h PORT_HTTP[$i]=$ph HOST_ECHO[$i]=$h PORT_ECHO[$i]=$pe
done
wait_for listening "$N2" $P_HTTP && wait_for listening "$N2" $P_IPERF && wait_for listening "$N2" $P_ECHO &&
    wait_for listening "$N2" $P_ECHO_FLOOD && wait_for listening "$N2" $P_IPERF_FLOOD ||
    { echo "bench: origins did not start"; cat "$WORK"/nginx/error.log "$WORK"/*.log; exit 1; }

# ---------------------------------------------------------------- accounting helpers
ticks() { # pid... -> utime+stime (clock ticks) summed; threads included
    local t=0 p v
    for p in "$@"; do
        v=$(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0)
        t=$((t + v))
    done
    echo $t
}
mticks() { awk '/^cpu /{print $2 + $3 + $4 + $7 + $8}' /proc/stat; } # machine busy: user..softirq
uticks() { awk '/^cpu /{print $2 + $3 + $4}' /proc/stat; }             # machine user+nice+system
rss_kb() { awk '/^VmRSS/{print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
now() { date +%s.%N; }
busy_pct() { # share of the machine's CPU busy over one second (someone else's build shows here)
    local a b c d
    read -r a b < <(awk '/^cpu /{print $2 + $3 + $4 + $7 + $8 + $9, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9}' /proc/stat)
    sleep 1
    read -r c d < <(awk '/^cpu /{print $2 + $3 + $4 + $7 + $8 + $9, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9}' /proc/stat)
    awk -v x=$((c - a)) -v y=$((d - b)) 'BEGIN { printf "%.0f", y ? 100 * x / y : 0 }'
}

bench_ns() { # CPU nanoseconds of all the benchmark's processes
    case ${CG:+$CG_KIND} in
    v1) cat "$CG/cpuacct.usage" ;;
    v2) awk '/^usage_usec/{printf "%d\n", $2 * 1000}' "$CG/cpu.stat" ;;
    *) echo 0 ;;
    esac
}
M_T0=0 M_C0=0 M_S0=0 M_M0=0 M_U0=0 M_B0=0
m_begin() { # impl
    M_C0=$(ticks ${PC[$1]:-}) M_S0=$(ticks ${PS[$1]:-}) M_M0=$(mticks) M_U0=$(uticks) M_B0=$(bench_ns) M_T0=$(now)
}
m_end() { # key-prefix impl
    local t1 c1 s1 m1 u1 b1
    t1=$(now) c1=$(ticks ${PC[$2]:-}) s1=$(ticks ${PS[$2]:-}) m1=$(mticks) u1=$(uticks) b1=$(bench_ns)
    rec "$1.wall" "$(awk -v a="$t1" -v b="$M_T0" 'BEGIN { printf "%.3f", a - b }')"
    rec "$1.cpu_c" $((c1 - M_C0))
    rec "$1.cpu_s" $((s1 - M_S0))
    rec "$1.cpu_m" $((m1 - M_M0))
    rec "$1.cpu_u" $((u1 - M_U0))
    [ -z "$CG" ] || rec "$1.cpu_b" $((b1 - M_B0)) # ns
}

alive() { # impl: all its processes still running
    local p
    for p in ${PC[$1]:-} ${PS[$1]:-}; do kill -0 "$p" 2>/dev/null || return 1; done
}
usable() { # impl
    [ -z "${BROKEN[$1]}" ] || return 1
    alive "$1" || { BROKEN[$1]="a proxy process died"; return 1; }
}
progress() { printf '  %-8s %s\n' "$1" "$2"; }

# Both ztunnels again, from $BIN (default: this build) with extra flags, and the path checked.
# Used by bench/workers.sh (worker counts, affinity) and bench/tools/ab_hook.sh (binaries).
amesh_restart() { # [ztunnel flags...]
    local p
    for p in ${PC[amesh]} ${PS[amesh]}; do kill "$p" 2>/dev/null || true; done
    for p in ${PC[amesh]} ${PS[amesh]}; do
        for _ in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.05; done
    done
    start_ztunnel "$N1" node-1 "$WORK/mesh.yaml" "$CA" "$WORK/zt1.log" --log-level error "$@"
    PC[amesh]=$LAST_PID
    start_ztunnel "$N2" node-2 "$WORK/mesh.yaml" "$CA" "$WORK/zt2.log" --log-level error "$@"
    PS[amesh]=$LAST_PID
    timeout 10 ip netns exec "$N1" "$BT" rtt "${HOST_ECHO[amesh]}" "${PORT_ECHO[amesh]}" 50 1 1024 \
        >/dev/null 2>&1 || { echo "bench: the path check through ztunnel $* failed"; return 1; }
}

# ---------------------------------------------------------------- environment
{
    rec meta.date "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
    rec meta.git "$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)$(git -C "$ROOT" diff --quiet HEAD -- src 2>/dev/null || echo -dirty)"
    rec meta.kernel "$(uname -r)"
    rec meta.cpu "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//') x$(nproc); flags:$(grep -m1 -o -w -E 'aes|vaes|avx512f|sha_ni' /proc/cpuinfo | sort -u | tr '\n' ' ')"
    rec meta.openssl "$(openssl version | cut -d' ' -f1-2)"
    rec meta.peers "$(haproxy -v | head -1 | cut -d' ' -f1-3), $(stunnel4 -version 2>&1 | grep -m1 '^stunnel' | cut -d' ' -f1-2), $(nginx -v 2>&1 | cut -d' ' -f3), $(iperf3 --version | head -1 | cut -d' ' -f1-2), $(wrk -v 2>&1 | head -1 | cut -d' ' -f1-2)"
    rec meta.secs "$SECS"
    rec meta.nofile "$NOFILE"
    rec meta.ncpu "$(nproc)"
    rec meta.cgroup "${CG:+yes}"
    rec meta.load_start "$(cut -d' ' -f1-3 /proc/loadavg)"
}
echo "amesh bench: ${IMPLS[*]}; ${SECS}s per measurement; work dir $WORK"
sleep 1
# Wait (bounded) for other work on the machine to calm down, then record how busy it was.
QUIET_DEADLINE=$(( $(date +%s) + ${BENCH_WAIT_QUIET:-60} ))
BUSY=$(busy_pct)
while [ "$BUSY" -gt 10 ] && [ "$(date +%s)" -lt "$QUIET_DEADLINE" ]; do
    echo "bench: the machine is ${BUSY}% busy with other work; waiting for it to calm down"
    sleep 4
    BUSY=$(busy_pct)
done
rec meta.busy_start "$BUSY"
[ "$BUSY" -le 10 ] || echo "bench: WARNING: the machine is already ${BUSY}% busy before the run; numbers will be noisy"

# ---------------------------------------------------------------- sanity + idle RSS
echo "== path check (1 KB echo) and idle RSS"
for i in "${IMPLS[@]}"; do
    [ -z "${BROKEN[$i]}" ] || { progress "$i" "BROKEN: ${BROKEN[$i]}"; continue; }
    if ! timeout 10 ip netns exec "$N1" "$BT" rtt "${HOST_ECHO[$i]}" "${PORT_ECHO[$i]}" 200 1 1024 >"$WORK/check-$i.txt" 2>&1; then
        BROKEN[$i]="echo through the path failed: $(tail -1 "$WORK/check-$i.txt")"
        progress "$i" "BROKEN: ${BROKEN[$i]}"
        continue
    fi
    if [ -n "${PC[$i]:-}" ]; then
        rec "rss_idle.$i.c" "$(rss_kb "${PC[$i]}")"
        rec "rss_idle.$i.s" "$(rss_kb "${PS[$i]}")"
        progress "$i" "ok; RSS client side $(rss_kb "${PC[$i]}") kB, server side $(rss_kb "${PS[$i]}") kB"
    else
        progress "$i" "ok"
    fi
done

# ---------------------------------------------------------------- memory per open tunnel
# Runs first, on fresh processes, so (RSS_N - RSS_idle) / N is not flattered by memory that
# earlier tests left in the allocator. Ramp: 1,000 tunnels, then up to HOLD_N, then close all.
wait_held() { # file secs -> prints "held failed timedout" of a holder (all 0 if it never reported)
    local deadline=$(( $(date +%s) + $2 ))
    while [ "$(date +%s)" -le "$deadline" ]; do
        if grep -q '^RESULT' "$1" 2>/dev/null; then
            sed -n 's/^RESULT held=\([0-9]*\) failed=\([0-9]*\) timedout=\([0-9]*\)/\1 \2 \3/p' "$1"
            return 0
        fi
        sleep 0.2
    done
    echo "0 0 0"
}
step mem && echo "== memory: idle tunnels held open (1 byte echoed on each), RSS per side"
for i in "${IMPLS[@]}"; do
    step mem || break
    [ "$i" = direct ] && continue
    usable "$i" || continue
    n_hi=$HOLD_N
    [ "$i" = amesh ] || n_hi=$HOLD_CAP
    rec "mem.$i.n_hi" "$n_hi"
    pre_c=$(rss_kb "${PC[$i]}") pre_s=$(rss_kb "${PS[$i]}")
    rec "mem.$i.pre_c" "$pre_c"; rec "mem.$i.pre_s" "$pre_s"
    start_bg "$WORK/hold1-$i.txt" ip netns exec "$N1" "$BT" hold "${HOST_ECHO[$i]}" "${PORT_ECHO[$i]}" 1000 60
    H1=$LAST_PID
    read -r held1 f1 t1 < <(wait_held "$WORK/hold1-$i.txt" 70)
    sleep 1
    c1=$(rss_kb "${PC[$i]}") s1=$(rss_kb "${PS[$i]}")
    rec "mem.$i.held1" "$held1"; rec "mem.$i.rss1_c" "$c1"; rec "mem.$i.rss1_s" "$s1"
    progress "$i" "1000: held $held1 (failed $f1, timed out $t1); RSS $c1 / $s1 kB"
    start_bg "$WORK/hold2-$i.txt" ip netns exec "$N1" "$BT" hold "${HOST_ECHO[$i]}" "${PORT_ECHO[$i]}" $((n_hi - 1000)) 120
    H2=$LAST_PID
    read -r held2 f2 t2 < <(wait_held "$WORK/hold2-$i.txt" 130)
    sleep 1
    c2=$(rss_kb "${PC[$i]}") s2=$(rss_kb "${PS[$i]}")
    rec "mem.$i.held2" "$((held1 + held2))"; rec "mem.$i.rss2_c" "$c2"; rec "mem.$i.rss2_s" "$s2"
    progress "$i" "$n_hi: held $((held1 + held2)) (failed $f2, timed out $t2); RSS $c2 / $s2 kB"
    kill "$H1" "$H2" 2>/dev/null || true
    wait "$H1" "$H2" 2>/dev/null || true
    sleep 3
    c3=$(rss_kb "${PC[$i]}") s3=$(rss_kb "${PS[$i]}")
    rec "mem.$i.after_c" "$c3"; rec "mem.$i.after_s" "$s3"
    progress "$i" "closed: RSS $c3 / $s3 kB"
done

# ---------------------------------------------------------------- throughput
iperf_run() { # key impl extra-args...
    local key=$1 i=$2 out=$WORK/$1-$2.json; shift 2
    m_begin "$i"
    if ! timeout $((SECS + 30)) ip netns exec "$N1" iperf3 -c "${HOST_IPERF[$i]}" -p "${PORT_IPERF[$i]}" \
        -t "$SECS" -J "$@" >"$out" 2>"$WORK/$key-$i.err"; then
        progress "$i" "FAILED (see $(basename "$out"))"
        return 0
    fi
    m_end "$key.$i" "$i"
    read -r bytes secs smin smax < <(/usr/bin/python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
s = d["end"]["sum_received"]
bps = [st["receiver"]["bits_per_second"] for st in d["end"]["streams"]]
print(s["bytes"], s["seconds"], min(bps), max(bps))' "$out")
    rec "$key.$i.bytes" "$bytes"; rec "$key.$i.secs" "$secs"
    rec "$key.$i.stream_min" "$smin"; rec "$key.$i.stream_max" "$smax"
    progress "$i" "$(awk -v b="$bytes" -v s="$secs" 'BEGIN { printf "%.2f", b * 8 / s / 1e9 }') Gbit/s"
}
if step bulk; then
    echo "== bulk, 1 tunnel (iperf3 ${SECS}s)"
    for i in "${IMPLS[@]}"; do usable "$i" && iperf_run bulk1 "$i"; done
    echo "== bulk, 16 parallel tunnels (iperf3 -P 16 ${SECS}s)"
    for i in "${IMPLS[@]}"; do usable "$i" && iperf_run bulk16 "$i" -P 16; done
fi

# ---------------------------------------------------------------- requests
wrk_run() { # key impl extra-args...
    local key=$1 i=$2 out=$WORK/$1-$2.txt; shift 2
    m_begin "$i"
    if ! timeout $((SECS + 30)) ip netns exec "$N1" wrk -t1 -c16 -d"${SECS}s" -s "$BENCH/tools/report.lua" "$@" \
        "http://${HOST_HTTP[$i]}:${PORT_HTTP[$i]}/1k" >"$out" 2>&1; then
        progress "$i" "FAILED: $(tail -1 "$out")"
        return 0
    fi
    m_end "$key.$i" "$i"
    local line
    line=$(grep '^RESULT' "$out" || true)
    [ -n "$line" ] || { progress "$i" "FAILED: no result"; return 0; }
    for kv in ${line#RESULT }; do rec "$key.$i.${kv%%=*}" "${kv#*=}"; done
    progress "$i" "${line#RESULT }"
}
if step rps; then
    echo "== 1 KB request/response, 16 persistent connections (wrk -t1 -c16 ${SECS}s)"
    for i in "${IMPLS[@]}"; do usable "$i" && wrk_run rps "$i"; done
fi
if step cps; then
    echo "== new tunnels: one 1 KB request per connection (wrk -c16 'Connection: close' ${SECS}s)"
    for i in "${IMPLS[@]}"; do usable "$i" && wrk_run cps "$i" -H "Connection: close"; done
fi

rtt_run() { # key impl rate [taskset -c CPUS]
    local key=$1 i=$2 rate=$3 line
    shift 3
    m_begin "$i"
    if line=$(timeout $((SECS * 2 + 20)) "$@" ip netns exec "$N1" "$BT" rtt "${HOST_ECHO[$i]}" "${PORT_ECHO[$i]}" "$rate" "$SECS" 1024 2>&1); then
        m_end "$key.$i" "$i"
        line=$(echo "$line" | grep '^RESULT' || true)
        for kv in ${line#RESULT }; do rec "$key.$i.${kv%%=*}" "${kv#*=}"; done
        progress "$i" "${line#RESULT } (us)"
    else
        progress "$i" "FAILED: $line"
    fi
}
pin() { # cpus impl: the path's proxies (all threads) and the echo origin
    local p
    for p in ${PC[$2]:-} ${PS[$2]:-} $ECHO_PID; do taskset -a -p -c "$1" "$p" >/dev/null 2>&1 || true; done
}
if step rtt; then
    echo "== paced round trips: 1 KB each way, 2000/s on one connection (${SECS}s)"
    for i in "${IMPLS[@]}"; do usable "$i" && rtt_run rtt "$i" 2000; done
    echo "== the same with the client, both proxies and the origin pinned to CPU 0 (no cross-CPU wake-ups)"
    for i in "${IMPLS[@]}"; do
        usable "$i" || continue
        pin 0 "$i"
        rtt_run rtt1 "$i" 2000 taskset -c 0
        pin "0-$(( $(nproc) - 1 ))" "$i"
    done
    echo "== back-to-back round trips: 1 KB each way, one connection, no pause (${SECS}s)"
    for i in "${IMPLS[@]}"; do usable "$i" && rtt_run pp "$i" 0; done
fi

# ---------------------------------------------------------------- workers, fairness, affinity
# bench/workers.sh (sourced: it restarts this run's ztunnels with --workers / --worker-affinity
# and uses the helpers above); tools/workers_report.py adds its tables and goals to the report.
if step workers || step fair || step affinity; then
    # shellcheck source=bench/workers.sh
    . "$BENCH/workers.sh"
fi

# ---------------------------------------------------------------- waypoint
# bench/wp.sh: 1 KB GETs over L4, the waypoint and an HAProxy h2+mTLS chain, in namespaces of
# its own (this run's processes stay up, idle); its "wp.*" lines join the results and
# wp_report.py adds its table to the report.
if step wp; then
    if ! "$BENCH/wp.sh" "$BUILD" "$WORK/wp.txt" || [ ! -s "$WORK/wp.txt" ]; then
        echo "bench: the waypoint step failed"
        rec broken.wp "bench/wp.sh failed"
    fi
    [ ! -s "$WORK/wp.txt" ] || cat "$WORK/wp.txt" >>"$RES"
fi

# ---------------------------------------------------------------- control plane
# bench/cp.sh: meshd with 100 simulated ztunnels at 1,000 and 10,000 pods, in a namespace of
# its own; its "cp.*" lines join the results and cp_report.py adds its table to the report.
if step cp; then
    if ! "$BENCH/cp.sh" "$BUILD" "$WORK/cp.txt" || [ ! -s "$WORK/cp.txt" ]; then
        echo "bench: the control-plane step failed"
        rec broken.cp "bench/cp.sh failed"
    fi
    [ ! -s "$WORK/cp.txt" ] || cat "$WORK/cp.txt" >>"$RES"
fi

# shellcheck disable=SC1090
if [ -n "${BENCH_HOOK:-}" ]; then . "$BENCH_HOOK"; fi

# ---------------------------------------------------------------- report
for i in "${IMPLS[@]}"; do
    usable "$i" || true
    [ -z "${BROKEN[$i]}" ] || rec "broken.$i" "${BROKEN[$i]}"
done
rec meta.load_end "$(cut -d' ' -f1-3 /proc/loadavg)"
rec meta.busy_end "$(busy_pct)"
rec meta.elapsed "$(( $(date +%s) - START_TS ))"
mkdir -p "$BENCH/results"
OUTNAME=latest
[ -z "${BENCH_ONLY:-}${BENCH_STEPS:-}" ] || OUTNAME=partial # a subset never replaces the full run
cp "$RES" "$BENCH/results/$OUTNAME.txt"
/usr/bin/python3 "$BENCH/tools/report.py" "$RES" "$BENCH/results/$OUTNAME.md"
/usr/bin/python3 "$BENCH/tools/wp_report.py" "$RES" "$BENCH/results/$OUTNAME.md" --append
/usr/bin/python3 "$BENCH/tools/cp_report.py" "$RES" "$BENCH/results/$OUTNAME.md" --append
/usr/bin/python3 "$BENCH/tools/workers_report.py" "$RES" "$BENCH/results/$OUTNAME.md" --append
echo "(raw numbers: bench/results/$OUTNAME.txt; report: bench/results/$OUTNAME.md)"
