# demo-lib.sh - what tools/demo.sh (embedded cluster) and tools/demo-kube.sh (real API server)
# tell alike: the narration helpers, the packet captures, and the steps whose commands are the
# same on both clusters (the callers apply objects their own way: meshctl or kubectl).
# Sourced; expects PY, W (a private work directory) and MESH_CLUSTER_DIR.

CAPS=()
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
say() { printf '# %s\n' "$*"; }
show() { printf '\033[2m$ %s\033[0m\n' "$*"; "$@"; }
shown() { printf '\033[2m$ %s\033[0m\n' "$*"; } # the command line only: the caller runs it

# The EXIT trap: captures stopped, the cluster uninstalled, the work directory removed.
demo_cleanup() {
    local rc=$?
    for p in "${CAPS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
    if [ -d "$MESH_CLUSTER_DIR" ]; then
        step "Uninstall: everything the cluster made goes away"
        meshctl uninstall || rc=1
    fi
    rm -rf "$W"
    exit $rc
}

capture() { # netns pcap: tcpdump on the pod's eth0 (all it sends and receives)
    ip netns exec "$1" tcpdump -Z root --immediate-mode -i eth0 -n -U -w "$2" tcp >/dev/null 2>&1 &
    CAPS+=($!)
    sleep 1
}
stop_capture() { sleep 0.5; kill -INT "${CAPS[-1]}"; wait "${CAPS[-1]}" 2>/dev/null || true; unset 'CAPS[-1]'; }

# Step 3's body: curl -> echo before enrollment, and the HTTP text on the wire.
demo_plaintext() { # curl pod's netns
    capture "$1" "$W/plain.pcap"
    show meshctl exec -n demo deploy/curl -- curl -s http://echo/hello
    stop_capture
    say "What the wire next to the curl pod carries: the HTTP text"
    tcpdump -n -A -r "$W/plain.pcap" 2>/dev/null | grep -a -m3 -E 'GET /hello|pod=echo' || true
}

# Step 5's body: the same curl over HBONE; fails the demo if HTTP text is still on the wire.
demo_hbone() { # curl pod's netns
    capture "$1" "$W/mesh.pcap"
    show meshctl exec -n demo deploy/curl -- curl -s http://echo/hello
    show meshctl exec -n demo deploy/curl -- curl -s http://echo.demo.svc.cluster.local/hello
    stop_capture
    say "The wire now carries only TLS to 15008:"
    tcpdump -n -r "$W/mesh.pcap" 2>/dev/null | head -4
    if tcpdump -n -A -r "$W/mesh.pcap" 2>/dev/null | grep -q 'GET /hello'; then
        say "UNEXPECTED: HTTP visible"; exit 1
    fi
    say "...and no HTTP text anywhere in the capture. The server still sees the client's own IP."
    say "ztunnel's access log names both SPIFFE identities:"
    meshctl logs ztunnel --node node-1 | grep 'connection complete' | grep 'sa/curl' | tail -1 || true
    show meshctl ztunnel-config certificates --node node-1
}

# Step 6 once allow-curl.yaml is applied: curl admitted, sleep refused and counted.
demo_l4_policy() {
    sleep 1.5
    show meshctl exec -n demo deploy/curl -- curl -s http://echo/hello
    local rc=0
    shown "meshctl exec -n demo deploy/sleep -- curl -s http://echo/hello"
    meshctl exec -n demo deploy/sleep -- curl -s http://echo/hello || rc=$?
    # The destination ztunnel refuses the HBONE CONNECT and the sleep pod's ztunnel resets the
    # connection. curl says 56 when the reset comes after its connect() completed, and 7 when it
    # comes first (its non-blocking connect then reads ECONNRESET from SO_ERROR; seen on a slow
    # machine). Either way nothing reached echo; anything else (0: served) is a failure.
    say "curl from the sleep pod: exit code $rc (56 or 7: the connection was reset, the destination ztunnel refused it)"
    [ "$rc" = 56 ] || [ "$rc" = 7 ] || { say "UNEXPECTED exit code"; exit 1; }
    say "The refusals counted by the echo pods' ztunnels (istio_tcp_connections_failed_total, DENY):"
    for n in node-1 node-2; do
        ip netns exec "$(cat "$MESH_CLUSTER_DIR/nodes/$n/netns")" curl -s http://127.0.0.1:15020/metrics |
            grep '^istio_tcp_connections_failed_total{' | grep 'response_flags="DENY"' |
            sed -E 's/\{.*(destination_workload="[^"]*").*\}/{\1,response_flags="DENY",...}/' || true
    done
}

# Step 7 once samples/waypoint.yaml is applied: waits for its policy, then 100 requests split
# 90/10, an L7 DENY and a refused identity, all answered or counted by the waypoint. The caller
# defines wp_metrics (the waypoint's /metrics); WP_REQ0 is the count before the requests.
wp_requests() { wp_metrics | awk '/^istio_requests_total\{/ {n += $NF} END {print n + 0}'; }
demo_l7_traffic() {
    l7_ready() { meshctl exec -n demo deploy/curl -- curl -s -o /dev/null -w '%{http_code}' \
                     http://echo/admin | grep -qx 403; }
    for _ in $(seq 100); do l7_ready && break; sleep 0.2; done
    WP_REQ0=$(wp_requests)
    say "100 requests to echo: the HTTPRoute sends 90% to v1 and 10% to v2"
    for _ in $(seq 100); do meshctl exec -n demo deploy/curl -- curl -s http://echo/hello; done |
        grep -o 'version=v[12]' | sort | uniq -c
    show meshctl exec -n demo deploy/curl -- curl -s -w ' (%{http_code})\n' http://echo/admin/users
    say "an L7 DENY on /admin*: the waypoint answers 403 itself; echo never sees it"
    shown "meshctl exec -n demo deploy/sleep -- curl -s http://echo/hello"
    meshctl exec -n demo deploy/sleep -- curl -s -w ' (%{http_code})\n' http://echo/hello || true
    say "the sleep pod's identity is not allowed at L7: 403 from the waypoint"
}
# After demo_l7_traffic (and anything the caller shows): the waypoint counted all 102 requests.
demo_l7_count() {
    local req1
    req1=$(wp_requests)
    say "requests sent since the 90/10 run began: 102 (100 + /admin/users + sleep's); istio_requests_total grew by $((req1 - WP_REQ0))"
    [ "$((req1 - WP_REQ0))" = 102 ] || { say "UNEXPECTED: the waypoint counted $((req1 - WP_REQ0))"; exit 1; }
}
