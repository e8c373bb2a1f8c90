#!/usr/bin/env bash
# bench/wp.sh BUILD_DIR [RAW_OUT] - the waypoint measurement (step "wp" of bench/run.sh; issue 10
# section 6). 1 KB GETs from node-1 to nginx on node-2 over three paths, in one run:
#   l4       wrk -> REDIRECT -> ztunnel (node-1) =HBONE=> ztunnel (node-2) -> nginx
#   wp       wrk -> REDIRECT -> ztunnel (node-1) =HBONE=> waypoint (pod wp) =HBONE=> ztunnel
#            (node-2) -> nginx; the service port is HTTP1 with a Route, so the waypoint parses,
#            routes and re-originates every request
#   haproxy  wrk -> haproxy (node-1) =h2+mTLS=> haproxy "waypoint" (pod wp) =h2+mTLS=> haproxy
#            (node-2) -> nginx; all three `mode http`, nbthread 1
# Each process runs in a cgroup of its own (cgroup v1 cpuacct or v2), so CPU is per process in
# ns, kernel work charged to it included. Measured (bench/README.md, "Waypoint"): req/s and
# CPU/request at saturation (wrk -c16), paced GETs at 1,000/s (latency p50/p99 and the
# waypoint's vCPU), the waypoint's idle RSS and RSS per idle kept-alive client connection.
# Saturation and paced runs are repeated BENCH_WP_REPS (3) times, paths interleaved; medians
# and min-max are reported. BENCH_WP_PERF=1 adds a perf profile of the waypoint at saturation.
#
# With RAW_OUT the raw "key value" lines go there (bench/run.sh merges them); alone it prints
# the table and writes bench/results/partial.{txt,md}. BENCH_WP_HOOK=FILE is sourced after the
# measurements with everything still up (investigations).
set -euo pipefail

BENCH=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$BENCH")
BUILD=${1:-build}
RAW_OUT=${2:-}
case $BUILD in /*) ;; *) BUILD=$ROOT/$BUILD ;; esac
for b in ztunnel waypoint; do
    [ -x "$BUILD/bin/$b" ] || { echo "wp: $BUILD/bin/$b not built (run make bench)" >&2; exit 1; }
done
grep -q 'CMAKE_BUILD_TYPE:STRING=\(RelWithDebInfo\|Release\)' "$BUILD/CMakeCache.txt" 2>/dev/null ||
    echo "wp: WARNING: $BUILD is not a release build" >&2

SECS=${BENCH_SECS:-6}
REPS=${BENCH_WP_REPS:-3}
PACED_RATE=${BENCH_WP_RATE:-1000}
PACED_SECS=${BENCH_WP_PACED_SECS:-10}
IDLE_N=${BENCH_WP_IDLE:-1000}
START_TS=$(date +%s)

export MESH_BIN=$BUILD/bin
export ID=wp$$ # not run.sh's: its namespaces are still up
. "$ROOT/tests/integration/lib.sh" # set -euo pipefail, trap cleanup EXIT, WORK, PIDS, helpers
export ASAN_OPTIONS='' UBSAN_OPTIONS=''
trap 'exit 130' INT TERM HUP
require_root
"$ROOT/tools/install-deps.sh" bench # haproxy, nginx-light, wrk, linux-perf

RES=$WORK/wp-results.txt
: >"$RES"
rec() { echo "wp.$1 $2" >>"$RES"; }

# ---------------------------------------------------------------- cgroups, one per process
CG_KIND='' CG_HOME='' CG=''
if [ -f /sys/fs/cgroup/cpuacct/cpuacct.usage ]; then
    CG_KIND=v1 CG_HOME=/sys/fs/cgroup/cpuacct$(sed -n 's/^[0-9]*:cpuacct[^:]*://p' /proc/self/cgroup | head -1)
elif [ -f /sys/fs/cgroup/cgroup.controllers ]; then
    CG_KIND=v2 CG_HOME=/sys/fs/cgroup$(sed -n 's/^0:://p' /proc/self/cgroup | head -1)
fi
ROLES="zt1 zt2 wp hc hw hs nginx load"
if [ -n "$CG_KIND" ]; then
    CG=$CG_HOME/amesh-wp-$$
    if mkdir "$CG" 2>/dev/null; then
        for r in $ROLES; do mkdir "$CG/$r" || { CG=; break; }; done
    else
        CG=
    fi
fi
[ -n "$CG" ] || { echo "wp: no usable cgroup (cpuacct v1 or v2): per-process CPU needs one" >&2; exit 1; }
wp_cleanup() {
    local rc=$? p r n
    set +e
    for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null; done
    for n in 1 2 3 4 5 6 7 8 9 10; do
        for r in $ROLES; do rmdir "$CG/$r" 2>/dev/null; done
        rmdir "$CG" 2>/dev/null && break
        [ "$n" -lt 5 ] || for r in $ROLES; do
            for p in $(cat "$CG/$r/cgroup.procs" 2>/dev/null); do kill -9 "$p" 2>/dev/null; done
        done
        sleep 0.3
    done
    [ ! -d "$CG" ] || echo "wp: could not remove cgroup $CG" >&2
    (exit "$rc")
    cleanup
}
trap wp_cleanup EXIT
# in_cg ROLE cmd...: runs cmd in the role's cgroup (exec: $! of `in_cg ... &` is cmd's pid).
in_cg() { echo "$BASHPID" >"$CG/$1/cgroup.procs"; shift; exec "$@"; }
cg_ns() { # role -> CPU ns used so far
    case $CG_KIND in
    v1) cat "$CG/$1/cpuacct.usage" ;;
    v2) awk '/^usage_usec/{printf "%d\n", $2 * 1000}' "$CG/$1/cpu.stat" ;;
    esac
}
declare -A CPU0
cpu_begin() { local r; for r in $ROLES; do CPU0[$r]=$(cg_ns "$r"); done; M0=$(mticks); T0=$(date +%s.%N); }
cpu_end() { # key: records key.cpu.ROLE (ns), key.wall (s), key.machine_ticks (whole machine busy)
    local r t1
    t1=$(date +%s.%N)
    rec "$1.machine_ticks" $(( $(mticks) - M0 ))
    for r in $ROLES; do rec "$1.cpu.$r" $(( $(cg_ns "$r") - CPU0[$r] )); done
    rec "$1.wall" "$(awk -v a="$t1" -v b="$T0" 'BEGIN { printf "%.3f", a - b }')"
}
rss_kb() { awk '/^VmRSS/{print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
busy_pct() { # share of the machine's CPU busy over one second
    local a b c d
    read -r a b < <(awk '/^cpu /{print $2 + $3 + $4 + $7 + $8 + $9, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9}' /proc/stat)
    sleep 1
    read -r c d < <(awk '/^cpu /{print $2 + $3 + $4 + $7 + $8 + $9, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9}' /proc/stat)
    awk -v x=$((c - a)) -v y=$((d - b)) 'BEGIN { printf "%.0f", y ? 100 * x / y : 0 }'
}
mticks() { awk '/^cpu /{print $2 + $3 + $4 + $7 + $8}' /proc/stat; } # machine busy (ticks)

ulimit -n "$(ulimit -Hn)"
NOFILE=$(ulimit -n)
gcc -O2 -o "$WORK/benchtool" "$BENCH/tools/benchtool.c"
BT=$WORK/benchtool

# ---------------------------------------------------------------- topology
# node-1: client pod 198.18.250.20 (every connection's source), ztunnel, haproxy client side
# node-2: server pod 198.18.250.10 (nginx :8080), ztunnel, haproxy server side on .11:48080
# pod wp 198.18.251.30 (its own netns behind node-2): the waypoint binary (15008) and the
#         haproxy "waypoint" (:38080)
topo_two_nodes 4
WPIP=198.18.251.30 WPNS=amt-wp-$ID VIP_WP=198.19.0.10 VIP_L4=198.19.0.11 P_HTTP=8080
add_pod "$N2" "$WPNS" $WPIP 198.18.251.1
ip -n "$N1" route replace default via 198.18.0.2 src "$CLIENT_IP"
for ns in "$N1" "$N2" "$WPNS"; do
    ip netns exec "$ns" sysctl -qw net.ipv4.ip_local_port_range="1024 65000" \
        net.ipv4.tcp_tw_reuse=1 net.core.somaxconn=8192 net.ipv4.tcp_max_syn_backlog=8192
done

# ---------------------------------------------------------------- certificates
make_ca "$WORK/ca"
CA=$WORK/ca
leaf() { # name spiffe-sa (as bench/run.sh: ECDSA P-256, SPIFFE URI SAN)
    openssl ecparam -name prime256v1 -genkey -noout -out "$CA/$1-key.pem" 2>/dev/null
    openssl req -new -key "$CA/$1-key.pem" -subj "/O=amesh-bench" -out "$CA/$1.csr" 2>/dev/null
    printf 'subjectAltName=critical,URI:spiffe://cluster.local/ns/default/sa/%s\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth,clientAuth\nbasicConstraints=critical,CA:FALSE\n' "$2" >"$CA/$1.ext"
    openssl x509 -req -in "$CA/$1.csr" -CA "$CA/root-cert.pem" -CAkey "$CA/root-key.pem" \
        -CAcreateserial -days 2 -sha256 -extfile "$CA/$1.ext" -out "$CA/$1-cert.pem" 2>/dev/null
    cat "$CA/$1-cert.pem" "$CA/$1-key.pem" >"$CA/$1.pem"
}
leaf client client
leaf waypoint waypoint
leaf server server
# TLS 1.3 only, AES-256-GCM then AES-128-GCM, P-256/P-384 (as bench/run.sh; the groups of
# HAProxy's connecting side come from this file).
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
CIPHERS=TLS_AES_256_GCM_SHA384:TLS_AES_128_GCM_SHA256

# ---------------------------------------------------------------- mesh config
# Services: "web" VIP .10:80 -> server:8080, bound to waypoint wp, port 80 HTTP1 with one
# Route (prefix / to itself); "l4" VIP .11:80 -> server:8080, no waypoint. The server
# workload has no waypoint of its own. One L7 DENY policy (path /denied) proves the waypoint's
# HTTP/1.1 engine is on the path, and is evaluated on every request as a real one would be. The same file for both ztunnels and the waypoint.
cat >"$WORK/mesh.yaml" <<YAML
workloads:
- uid: Kubernetes//Pod/default/client
  name: client
  namespace: default
  serviceAccount: client
  addresses: ["$CLIENT_IP"]
  node: node-1
  tunnelProtocol: HBONE
- uid: Kubernetes//Pod/default/server
  name: server
  namespace: default
  serviceAccount: server
  addresses: ["$SERVER_IP"]
  node: node-2
  tunnelProtocol: HBONE
  services:
    default/web.default.svc.cluster.local: {ports: [{servicePort: 80, targetPort: $P_HTTP}]}
    default/l4.default.svc.cluster.local: {ports: [{servicePort: 80, targetPort: $P_HTTP}]}
- uid: Kubernetes//Pod/default/wp-1
  name: wp-1
  namespace: default
  serviceAccount: waypoint
  addresses: ["$WPIP"]
  node: node-2
  tunnelProtocol: HBONE
  services:
    default/wp.default.svc.cluster.local: {ports: [{servicePort: 15008, targetPort: 15008}]}
services:
- name: web
  namespace: default
  hostname: web.default.svc.cluster.local
  addresses: ["$VIP_WP"]
  ports: [{servicePort: 80, targetPort: $P_HTTP}]
  waypoint: {hostname: {namespace: default, hostname: wp.default.svc.cluster.local}, hboneMtlsPort: 15008}
- name: l4
  namespace: default
  hostname: l4.default.svc.cluster.local
  addresses: ["$VIP_L4"]
  ports: [{servicePort: 80, targetPort: $P_HTTP}]
- name: wp
  namespace: default
  hostname: wp.default.svc.cluster.local
  addresses: ["198.19.0.20"]
  ports: [{servicePort: 15008, targetPort: 15008}]
policies: []
routes:
- service: {namespace: default, hostname: web.default.svc.cluster.local}
  port: 80
  protocol: HTTP1
  rules:
  - name: all
    match: {prefix: /}
    backends: [{service: {namespace: default, hostname: web.default.svc.cluster.local}, port: 80, weight: 1}]
waypointPolicies:
- name: deny-denied
  namespace: default
  targets: [{gateway: wp}]
  action: DENY
  rules: [{clauses: [{matches: [{paths: [{prefix: /denied}]}]}]}]
YAML

# ---------------------------------------------------------------- processes
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
start_bg "$WORK/nginx.log" in_cg nginx ip netns exec "$N2" nginx -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" -e "$WORK/nginx/error.log"

# ztunnels (start_ztunnel of lib.sh, in their cgroups), --log-level error as in bench/run.sh.
zt() { # role netns node log
    start_bg "$4" in_cg "$1" ip netns exec "$2" "$BIN/ztunnel" --local-config "$WORK/mesh.yaml" \
        --node "$3" --ca-dir "$CA" --log-level error
}
ready_url() { # netns url
    [ "$(ip netns exec "$1" curl -s -m 1 -o /dev/null -w '%{http_code}' "$2")" = 200 ]
}
zt zt1 "$N1" node-1 "$WORK/zt1.log"; ZT1=$LAST_PID
zt zt2 "$N2" node-2 "$WORK/zt2.log"; ZT2=$LAST_PID
# The waypoint: --log-level error like the ztunnels (its access log lines are info; they
# would go to a file here): the cost measured is the data path and its metrics.
start_bg "$WORK/wp.log" in_cg wp ip netns exec "$WPNS" "$BIN/waypoint" --local-config "$WORK/mesh.yaml" \
    --ca-dir "$CA" --namespace default --name wp --service-account waypoint --node node-2 --log-level error
WPPID=$LAST_PID
wait_for ready_url "$N1" http://127.0.0.1:15021/healthz/ready &&
    wait_for ready_url "$N2" http://127.0.0.1:15021/healthz/ready &&
    wait_for ready_url "$WPNS" "http://$WPIP:15021/healthz/ready" ||
    { echo "wp: a ztunnel or the waypoint did not become ready"; tail -20 "$WORK"/zt*.log "$WORK/wp.log"; exit 1; }
# Capture only the two VIPs (so haproxy's connections are left alone).
ip netns exec "$N1" iptables -t nat -A OUTPUT -p tcp -d 198.19.0.0/16 -m mark ! --mark 0x539/0xfff \
    -j REDIRECT --to-ports 15001

# The HAProxy chain: same certificates, TLS settings and single thread as bench/run.sh's pair;
# h2 with ALPN on both mTLS hops, HTTP/1.1 to nginx, connections reused (http-reuse always).
haproxy_head() {
    cat <<EOF
global
    nbthread 1
    maxconn $((IDLE_N + 500))
    ssl-default-bind-ciphersuites $CIPHERS
    ssl-default-bind-options ssl-min-ver TLSv1.3
    ssl-default-server-ciphersuites $CIPHERS
    ssl-default-server-options ssl-min-ver TLSv1.3
defaults
    mode http
    timeout connect 5s
    timeout client 1h
    timeout server 1h
    timeout http-keep-alive 1h
    http-reuse always
EOF
}
TLS_V="ca-file $CA/root-cert.pem verify required"
{ haproxy_head; cat <<EOF
frontend f
    bind 127.0.0.1:2$P_HTTP
    default_backend b
backend b
    server w $WPIP:3$P_HTTP ssl crt $CA/client.pem $TLS_V alpn h2
EOF
} >"$WORK/hc.cfg"
# The "waypoint": terminates mTLS+h2, a route decision (path prefix), re-originates mTLS+h2.
{ haproxy_head; cat <<EOF
frontend f
    bind $WPIP:3$P_HTTP ssl crt $CA/waypoint.pem $TLS_V alpn h2 curves P-256:P-384
    use_backend b if { path_beg / }
backend b
    server s $SERVER2_IP:4$P_HTTP ssl crt $CA/waypoint.pem $TLS_V alpn h2
EOF
} >"$WORK/hw.cfg"
{ haproxy_head; cat <<EOF
frontend f
    bind $SERVER2_IP:4$P_HTTP ssl crt $CA/server.pem $TLS_V alpn h2 curves P-256:P-384
    default_backend b
backend b
    server o $SERVER_IP:$P_HTTP
EOF
} >"$WORK/hs.cfg"
hap() { # role netns
    start_bg "$WORK/$1.log" in_cg "$1" ip netns exec "$2" env OPENSSL_CONF="$WORK/openssl.cnf" \
        haproxy -db -f "$WORK/$1.cfg"
}
hap hs "$N2"; HS=$LAST_PID
hap hw "$WPNS"; HW=$LAST_PID
hap hc "$N1"; HC=$LAST_PID
listening() { ip netns exec "$1" ss -Hltn "sport = :$2" | grep -q .; }
wait_for listening "$N2" 4$P_HTTP && wait_for listening "$WPNS" 3$P_HTTP &&
    wait_for listening "$N1" 2$P_HTTP && wait_for listening "$N2" $P_HTTP ||
    { echo "wp: haproxy or nginx did not start"; tail -5 "$WORK"/h?.log "$WORK/nginx/error.log"; exit 1; }
# Both mTLS hops of the chain must really speak h2 (ALPN), as the waypoint's HBONE does.
alpn() { # netns host:port cert-name -> the protocol the server chose
    ip netns exec "$1" openssl s_client -connect "$2" -alpn h2 -cert "$CA/$3-cert.pem" \
        -key "$CA/$3-key.pem" -CAfile "$CA/root-cert.pem" </dev/null 2>/dev/null | sed -n 's/^ALPN protocol: //p'
}
[ "$(alpn "$N1" "$WPIP:3$P_HTTP" client)" = h2 ] && [ "$(alpn "$WPNS" "$SERVER2_IP:4$P_HTTP" waypoint)" = h2 ] ||
    { echo "wp: the HAProxy chain's mTLS hops did not negotiate h2"; exit 1; }

declare -A HOST PORT
HOST[l4]=$VIP_L4 PORT[l4]=80
HOST[wp]=$VIP_WP PORT[wp]=80
HOST[haproxy]=127.0.0.1 PORT[haproxy]=2$P_HTTP
PATHS="l4 wp haproxy"

{
    rec meta.date "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
    rec meta.git "$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)$(git -C "$ROOT" diff --quiet HEAD -- src 2>/dev/null || echo -dirty)"
    rec meta.secs "$SECS"
    rec meta.reps "$REPS"
    rec meta.rate "$PACED_RATE"
    rec meta.paced_secs "$PACED_SECS"
    rec meta.idle_n "$IDLE_N"
    rec meta.ncpu "$(nproc)"
    rec meta.clk_tck "$(getconf CLK_TCK)"
    rec meta.peers "$(haproxy -v | head -1 | cut -d' ' -f1-3), $(nginx -v 2>&1 | cut -d' ' -f3), $(wrk -v 2>&1 | head -1 | cut -d' ' -f1-2)"
}

# ---------------------------------------------------------------- quiet machine
BUSY=$(busy_pct)
if [ -z "$RAW_OUT" ]; then # under run.sh it already waited
    QUIET_DEADLINE=$(( $(date +%s) + ${BENCH_WAIT_QUIET:-60} ))
    while [ "$BUSY" -gt 10 ] && [ "$(date +%s)" -lt "$QUIET_DEADLINE" ]; do
        echo "wp: the machine is ${BUSY}% busy with other work; waiting for it to calm down"
        sleep 4
        BUSY=$(busy_pct)
    done
fi
rec meta.busy_start "$BUSY"
[ "$BUSY" -le 10 ] || echo "wp: WARNING: the machine is ${BUSY}% busy before the run; numbers will be noisy"
progress() { printf '  %-8s %s\n' "$1" "$2"; }

# ---------------------------------------------------------------- check + idle RSS
echo "== waypoint: path check (GET /1k) and idle RSS"
for p in $PATHS; do
    out=$(ip netns exec "$N1" curl -s -m 5 -o /dev/null -w '%{http_code} %{size_download}' \
        "http://${HOST[$p]}:${PORT[$p]}/1k" || true)
    [ "$out" = "200 1024" ] || { echo "wp: path $p broken: '$out'"; tail -20 "$WORK"/*.log; exit 1; }
    progress "$p" "ok"
done
out=$(ip netns exec "$N1" curl -s -m 5 "http://$VIP_WP/denied" || true)
[ "$out" = "RBAC: access denied" ] ||
    { echo "wp: the waypoint's L7 policy did not answer /denied (not on its HTTP/1.1 engine?): '$out'"; exit 1; }
sleep 1
rec rss_idle.wp "$(rss_kb $WPPID)"
cpu_begin; sleep 5; cpu_end idle # what the processes use with no traffic
rec rss_idle.hw "$(rss_kb $HW)"
progress idle "RSS waypoint $(rss_kb $WPPID) kB, haproxy waypoint $(rss_kb $HW) kB"

# ---------------------------------------------------------------- idle kept-alive connections
# IDLE_N connections, each one GET /1k answered, then held open: RSS before / with / after.
wait_result() { # file secs
    local deadline=$(( $(date +%s) + $2 ))
    while [ "$(date +%s)" -le "$deadline" ]; do
        grep -q '^RESULT' "$1" 2>/dev/null && { sed -n 's/^RESULT held=\([0-9]*\) failed=\([0-9]*\) timedout=\([0-9]*\)/\1 \2 \3/p' "$1"; return 0; }
        sleep 0.2
    done
    echo "0 0 0"
}
echo "== waypoint: $IDLE_N idle kept-alive client connections (one GET /1k each), RSS"
for p in wp haproxy; do
    pid=$WPPID; [ $p = wp ] || pid=$HW
    pre=$(rss_kb "$pid")
    start_bg "$WORK/hold-$p.txt" ip netns exec "$N1" "$BT" hhold "${HOST[$p]}" "${PORT[$p]}" "$IDLE_N" 60 /1k
    H=$LAST_PID
    read -r held failed timedout < <(wait_result "$WORK/hold-$p.txt" 70)
    sleep 1
    with=$(rss_kb "$pid")
    kill "$H" 2>/dev/null || true
    wait "$H" 2>/dev/null || true
    sleep 3
    after=$(rss_kb "$pid")
    rec "idle.$p.pre" "$pre"; rec "idle.$p.held" "$held"; rec "idle.$p.rss" "$with"; rec "idle.$p.after" "$after"
    progress "$p" "held $held (failed $failed, timed out $timedout); RSS $pre -> $with kB, $after kB after close"
done

# ---------------------------------------------------------------- saturation and paced runs
sat_run() { # key path
    local out=$WORK/$1.txt line
    cpu_begin
    if ! (in_cg load timeout $((SECS + 30)) ip netns exec "$N1" wrk -t1 -c16 -d"${SECS}s" -s "$BENCH/tools/report.lua" \
        "http://${HOST[$2]}:${PORT[$2]}/1k") >"$out" 2>&1; then
        progress "$2" "FAILED: $(tail -1 "$out")"; return 0
    fi
    cpu_end "$1"
    line=$(grep '^RESULT' "$out" || true)
    for kv in ${line#RESULT }; do rec "$1.${kv%%=*}" "${kv#*=}"; done
    progress "$2" "${line#RESULT }"
}
paced_run() { # key path [taskset -c CPUS]
    local line key=$1 path=$2
    shift 2
    cpu_begin
    if line=$( (in_cg load "$@" timeout $((PACED_SECS * 2 + 20)) ip netns exec "$N1" "$BT" hrtt \
        "${HOST[$path]}" "${PORT[$path]}" "$PACED_RATE" "$PACED_SECS" /1k) 2>&1); then
        cpu_end "$key"
        line=$(echo "$line" | grep '^RESULT' || true)
        for kv in ${line#RESULT }; do rec "$key.${kv%%=*}" "${kv#*=}"; done
        progress "$path" "${line#RESULT } (us)"
    else
        progress "$path" "FAILED: $line"
    fi
}
pin() { # cpus: every long-running process of the step (all threads)
    local p
    for p in $ZT1 $ZT2 $WPPID $HC $HW $HS $(cat "$CG/nginx/cgroup.procs"); do
        taskset -a -p -c "$1" "$p" >/dev/null 2>&1 || true
    done
}
for rep in $(seq 1 "$REPS"); do
    # Each repetition waits (bounded, BENCH_WP_WAIT_REP s) for others' work to calm down too.
    QUIET_DEADLINE=$(( $(date +%s) + ${BENCH_WP_WAIT_REP:-30} ))
    BUSY=$(busy_pct)
    while [ "$BUSY" -gt 10 ] && [ "$(date +%s)" -lt "$QUIET_DEADLINE" ]; do sleep 2; BUSY=$(busy_pct); done
    rec "meta.busy_rep.$rep" "$BUSY"
    echo "== waypoint: saturation, wrk -t1 -c16 ${SECS}s GET /1k (repetition $rep/$REPS)"
    for p in $PATHS; do sat_run "sat.$p.$rep" "$p"; done
    echo "== waypoint: paced GET /1k, $PACED_RATE/s on one connection, ${PACED_SECS}s (repetition $rep/$REPS)"
    for p in $PATHS; do paced_run "paced.$p.$rep" "$p"; done
    # The same with every process on CPU 0: no cross-CPU wake-ups (IPIs, costly in this VM).
    echo "== waypoint: the same, everything pinned to CPU 0 (repetition $rep/$REPS)"
    pin 0
    for p in l4 wp; do paced_run "pinned.$p.$rep" "$p" taskset -c 0; done
    pin "0-$(( $(nproc) - 1 ))"
done
for pid in $ZT1 $ZT2 $WPPID $HC $HW $HS; do
    kill -0 "$pid" 2>/dev/null || { echo "wp: WARNING: process $pid died"; rec broken "a proxy process died"; }
done

# shellcheck disable=SC1090
if [ -n "${BENCH_WP_HOOK:-}" ]; then . "$BENCH_WP_HOOK"; fi # investigations, topology up

# ---------------------------------------------------------------- profile (optional)
if [ "${BENCH_WP_PERF:-0}" = 1 ]; then
    echo "== waypoint: perf profile at saturation (wrk -c16 ${SECS}s, perf record -g -p waypoint)"
    perf record -q -g -F 2000 -o "$WORK/perf.data" -p "$WPPID" -- sleep "$SECS" >/dev/null 2>&1 &
    PERF=$!
    ip netns exec "$N1" wrk -t1 -c16 -d"${SECS}s" "http://$VIP_WP/1k" >/dev/null 2>&1 || true
    wait "$PERF" || true
    mkdir -p "$BENCH/results"
    perf report -i "$WORK/perf.data" --no-children --sort dso,symbol --stdio 2>/dev/null |
        grep -v '^$' | head -300 >"$BENCH/results/wp-perf.txt" || true
    perf report -i "$WORK/perf.data" --no-children --sort dso,symbol --stdio -g none 2>/dev/null |
        grep -E '^ +[0-9]' | head -40 >"$BENCH/results/wp-perf-flat.txt" || true
    echo "  (bench/results/wp-perf-flat.txt: flat top; wp-perf.txt: with call chains)"
    head -25 "$BENCH/results/wp-perf-flat.txt"
fi

rec meta.busy_end "$(busy_pct)"
rec meta.elapsed "$(( $(date +%s) - START_TS ))"
if [ -n "$RAW_OUT" ]; then
    cp "$RES" "$RAW_OUT"
else
    mkdir -p "$BENCH/results"
    cp "$RES" "$BENCH/results/partial.txt"
    /usr/bin/python3 "$BENCH/tools/wp_report.py" "$RES" "$BENCH/results/partial.md"
    echo "(raw numbers: bench/results/partial.txt; report: bench/results/partial.md)"
fi
