#!/usr/bin/env bash
# The in-pod redirection rules (src/lib/inpod) in a real pod namespace, IPv4 and IPv6:
#
#   node netns                                   pod netns
#   vn 198.18.10.1 2001:db8:10::1  <-- veth -->  eth0 198.18.10.2 2001:db8:10::2 (default via node)
#   lo 198.18.77.7 2001:db8:77::7 :80 "NODE"     app :8080 "APP", HBONE stub :15008 "HBONE"
#                                                stand-in ztunnel :15001 :15006 (SO_MARK 0x539)
#
# inpod_tool (tests/support/inpod_tool.c) calls inpod_apply/inpod_remove on /run/netns/<pod>.
# Checks: iptables-save matches the golden rules; outbound is REDIRECTed to 15001 and inbound
# to 15006 with the original destination kept; 15008, loopback, the pod's own address and
# marked sockets are not captured; ztunnel dialling the app with the client's address gets
# the reply (connmark 0x111, table 100) and the app sees that address; DNS capture and the
# probe exemption; applying twice or with changed options leaves one copy; removal restores
# exactly the previous tables, rules and routes, including the pod's own.
# Connections open at apply time stay direct (their conntrack entry gets mark 0x1000);
# a raw ACK (CAP_NET_RAW), sent before or after apply, does not let a connect() from
# its port past capture; IPv6 rules are installed always, and catch a connection to
# the pod's link-local address; a pod with IPv6 disabled is enrolled all the same.
. "$(dirname "$0")/lib.sh"
require_root

NODE=amt-inpod-node-$ID
POD=amt-inpod-pod-$ID
POD0=amt-inpod-nov6-$ID
TOOL=${INPOD_TOOL:-$BIN/../tests/inpod_tool}
PROBE="$PY $ROOT/tests/support/inpod_probe.py"
NETRAW="$PY $ROOT/tests/support/netraw_probe.py"
NORM="$PY $ROOT/tests/support/inpod_save.py"
GOLDEN=$ROOT/tests/unit/inpod
POD4=198.18.10.2 POD6=2001:db8:10::2 NODE4=198.18.10.1 NODE6=2001:db8:10::1
EXT4=198.18.77.7 EXT6=2001:db8:77::7     # "outside the pod", served by the node
FAR4=198.18.99.1                         # beyond the node: nothing answers (no reset)
CLIENT4=198.18.20.9 CLIENT6=2001:db8:20::9 # a remote client whose address ztunnel spoofs
SNAT4=198.18.7.127 SNAT6=2001:db8:7::127   # probe SNAT addresses (override of Istio's)

inpod_cleanup() {
    local rc=$?
    kill_pids # lib.sh: the probes run under innode/inpod, children of start_bg's subshells
    ip netns del "$POD" 2>/dev/null || true
    ip netns del "$NODE" 2>/dev/null || true
    ip netns del "$POD0" 2>/dev/null || true
    (exit $rc)
    cleanup # lib.sh: processes, $WORK, exit status
}
trap inpod_cleanup EXIT

[ -x "$TOOL" ] || { echo "FAIL: $TOOL not built"; exit 1; }

inpod() { ip netns exec "$POD" "$@"; }
innode() { ip netns exec "$NODE" "$@"; }
tool() { "$TOOL" "$1" "$POD" "${@:2}"; }

ip netns add "$NODE"
ip netns add "$POD"
for ns in "$NODE" "$POD"; do
    for k in all default lo; do ip netns exec "$ns" sysctl -qw net.ipv6.conf.$k.disable_ipv6=0; done
    ip netns exec "$ns" sysctl -qw net.ipv6.conf.default.accept_dad=0
    ip -n "$ns" link set lo up
done
ip link add vn netns "$NODE" type veth peer name eth0 netns "$POD"
ip -n "$NODE" addr add $NODE4/24 dev vn
ip -n "$NODE" addr add $NODE6/64 dev vn nodad
ip -n "$NODE" addr add $EXT4/32 dev lo
ip -n "$NODE" addr add $EXT6/128 dev lo nodad
ip -n "$POD" addr add $POD4/24 dev eth0
ip -n "$POD" addr add $POD6/64 dev eth0 nodad
ip -n "$NODE" link set vn up
ip -n "$POD" link set eth0 up
# Link-local addresses and their routes arrive a moment after the link: wait, so the
# snapshots below compare a settled pod.
wait_for sh -c "ip -n $POD -6 route show table local | grep -q '^local fe80::'"
wait_for sh -c "ip -n $NODE -6 route show table local | grep -q '^local fe80::'"
# The pod reaches everything through the node (the return path needs a default route).
ip -n "$POD" route add default via $NODE4
ip -n "$POD" -6 route add default via $NODE6

# The pod's own state, which apply and remove must leave alone.
inpod iptables -t nat -A PREROUTING -p udp --dport 9999 -j ACCEPT
inpod iptables -t mangle -A OUTPUT -p udp --dport 9999 -j ACCEPT
inpod iptables -t filter -A INPUT -p udp --dport 9999 -j ACCEPT
# A rule of the pod's that needs conntrack: entries exist before apply (marked, or deleted).
inpod iptables -t filter -A INPUT -p udp --dport 9998 -m conntrack --ctstate NEW -j ACCEPT
inpod ip6tables -t nat -A OUTPUT -p udp --dport 9999 -j ACCEPT
inpod ip6tables -t mangle -A PREROUTING -p udp --dport 9999 -j ACCEPT
inpod ip rule add fwmark 0x7 lookup 200 pref 1000
inpod ip route add 198.18.99.0/24 via $NODE4 table 200
inpod ip -6 rule add fwmark 0x7 lookup 200 pref 1000
inpod ip -6 route add 2001:db8:99::/64 via $NODE6 table 200

start_bg "$WORK/node80.log" innode $PROBE serve --port 80 --banner NODE
start_bg "$WORK/node7070.log" innode $TCPTOOL serve --bind $EXT4 --port 7070
start_bg "$WORK/node53.log" innode $PROBE udp --port 53 --banner NODEDNS
start_bg "$WORK/app.log" inpod $PROBE serve --port 8080 --banner APP
start_bg "$WORK/hbone.log" inpod $PROBE serve --port 15008 --banner HBONE
start_bg "$WORK/zt.log" inpod $PROBE ztunnel --ports 15001,15006 --mark 0x539
start_bg "$WORK/dns.log" inpod $PROBE udp --port 15053 --banner ZTDNS
listening() { ip netns exec "$1" ss -Hltn "sport = :$2" | grep -q .; }
for p in 8080 15008 15001 15006; do wait_for listening "$POD" $p; done
wait_for listening "$NODE" 80
wait_for listening "$NODE" 7070

# State snapshots: normalized tables of both families, rules and routes of all tables.
snapshot() { # file
    {
        echo "== iptables"; inpod iptables-save | $NORM
        echo "== ip6tables"; inpod ip6tables-save | $NORM
        echo "== rules"; inpod ip rule show; inpod ip -6 rule show
        echo "== routes"; inpod ip -4 route show table all; inpod ip -6 route show table all
    } >"$1"
}
same_file() { # a b
    if cmp -s "$1" "$2"; then return 0; fi
    diff -u "$1" "$2" | sed 's/^/#   /'
    return 1
}
ours_match() { # save-command golden
    inpod "$1" | $NORM --ours >"$WORK/ours.txt"
    $NORM --ours <"$GOLDEN/$2" >"$WORK/want.txt"
    same_file "$WORK/want.txt" "$WORK/ours.txt"
}
# answer "expected line" netns inpod_probe-args...: the first line the server sent
answer() {
    local want=$1 ns=$2 got
    shift 2
    got=$(ip netns exec "$ns" $PROBE "$@" 2>&1) || true
    [ "$got" = "$want" ] && return 0
    echo "#   $*: got \"$got\", want \"$want\""
    return 1
}
rule_count() { # -4|-6
    inpod ip "$1" rule show | grep -c '^32764:	from all fwmark 0x111/0xfff lookup 100' || true
}

say "before: the pod is not captured"
snapshot "$WORK/before.txt"
check "v4 outbound reaches the node directly" answer "NODE $POD4" "$POD" connect --to $EXT4:80
check "v6 outbound reaches the node directly" answer "NODE $POD6" "$POD" connect --to "[$EXT6]:80"
check "inbound reaches the app directly" answer "APP $NODE4" "$NODE" connect --to $POD4:8080
POD_LL=$(ip -n "$POD" -6 -o addr show dev eth0 scope link | awk '{print $4}' | cut -d/ -f1)
NODE_LL=$(ip -n "$NODE" -6 -o addr show dev vn scope link | awk '{print $4}' | cut -d/ -f1)
ll() { ip netns exec "$NODE" $NETRAW connect --to "[$POD_LL%vn]:8080"; }
check "inbound to the pod's link-local address reaches the app directly" [ "$(ll)" = "APP $NODE_LL" ]
# A connection open across apply, probed every 100 ms (the pod's own rules keep conntrack
# running, so it has an entry already: apply marks it).
start_bg "$WORK/probe.json" inpod $PY "$ROOT/tests/support/lifecycle_probe.py" \
    --connect "$EXT4:7070" --interval 0.1 --duration 3 --ready-file "$WORK/probe.ready"
LONG=$LAST_PID
wait_for test -f "$WORK/probe.ready"
# A raw ACK before the rules (nothing answers it, so its conntrack entry stays, un-NATed).
inpod $NETRAW ack --to $FAR4:80 --sport 32001

say "apply (IPv4 + IPv6, no DNS capture)"
check "inpod_apply succeeds" tool apply
check "iptables-save shows the rules of ipv4.rules" ours_match iptables-save ipv4.rules
check "ip6tables-save shows the rules of ipv6.rules" ours_match ip6tables-save ipv6.rules
check "one v4 rule fwmark 0x111/0xfff pref 32764 lookup 100" [ "$(rule_count -4)" = 1 ]
check "one v6 rule fwmark 0x111/0xfff pref 32764 lookup 100" [ "$(rule_count -6)" = 1 ]
check "v4 table 100: local default dev lo" \
    [ "$(inpod ip -4 route show table 100 | sed 's/ *$//')" = "local default dev lo scope host" ]
check "v6 table 100: local default dev lo" \
    [ "$(inpod ip -6 route show table 100)" = "local default dev lo metric 1024 pref medium" ]
check "the pod's own rules and routes are still there" sh -c \
    "ip netns exec $POD ip rule | grep -q '^1000:.*fwmark 0x7 lookup 200' &&
     ip netns exec $POD ip route show table 200 | grep -q 198.18.99.0/24 &&
     ip netns exec $POD iptables-save -t filter | grep -q -- '--dport 9999 -j ACCEPT'"

say "connections open at apply, raw packets (CAP_NET_RAW)"
wait "$LONG" || true
check "the connection open across apply kept working, direct" $PY -c "
import json; r=json.load(open('$WORK/probe.json')); assert r['end_reason']=='done' and r['ok']>20, r"
check "a connect() from the port of a raw ACK sent before apply is captured" \
    [ "$(inpod $NETRAW connect --to $FAR4:80 --sport 32001)" = "ZT 15001 $POD4 $FAR4:80" ]
check "a connect() right after a raw ACK from its port is captured" \
    [ "$(inpod $NETRAW ackconnect --to $FAR4:80 --sport 32002 --ttl 1 2>/dev/null)" = "ZT 15001 $POD4 $FAR4:80" ]
tool conntrack >"$WORK/ct.txt" || true
check "conntrack: the open connection's entry got mark 0x1000" \
    grep -q -E "^0x1000 $POD4:[0-9]+ $EXT4:7070\$" "$WORK/ct.txt"
check "conntrack: connections started under the rules carry 0x2000" \
    grep -q -E "^0x2000 $POD4:32001 $FAR4:80\$" "$WORK/ct.txt"
check "conntrack: no other entry has 0x1000" [ "$(grep -c '^0x1000' "$WORK/ct.txt")" = 1 ]
check "inbound to the pod's link-local address is REDIRECTed to 15006" \
    sh -c "ip netns exec $NODE $NETRAW connect --to '[$POD_LL%vn]:8080' | grep -q '^ZT 15006 .* \[$POD_LL\]:8080\$'"

say "data path"
check "v4 outbound is REDIRECTed to 15001 (SO_ORIGINAL_DST kept)" \
    answer "ZT 15001 $POD4 $EXT4:80" "$POD" connect --to $EXT4:80
check "v6 outbound is REDIRECTed to 15001 (SO_ORIGINAL_DST kept)" \
    answer "ZT 15001 $POD6 [$EXT6]:80" "$POD" connect --to "[$EXT6]:80"
check "v4 inbound to 8080 is REDIRECTed to 15006" \
    answer "ZT 15006 $NODE4 $POD4:8080" "$NODE" connect --to $POD4:8080
check "v6 inbound to 8080 is REDIRECTed to 15006" \
    answer "ZT 15006 $NODE6 [$POD6]:8080" "$NODE" connect --to "[$POD6]:8080"
check "v4 inbound to 15008 is not redirected" answer "HBONE $NODE4" "$NODE" connect --to $POD4:15008
check "v6 inbound to 15008 is not redirected" \
    answer "HBONE $NODE6" "$NODE" connect --to "[$POD6]:15008"
check "v4 socket with mark 0x539 is not redirected" \
    answer "NODE $POD4" "$POD" connect --to $EXT4:80 --mark 0x539
check "v6 socket with mark 0x539 is not redirected" \
    answer "NODE $POD6" "$POD" connect --to "[$EXT6]:80" --mark 0x539
check "v4 loopback is not redirected" answer "APP 127.0.0.1" "$POD" connect --to 127.0.0.1:8080
check "v6 loopback is not redirected" answer "APP ::1" "$POD" connect --to "[::1]:8080"
check "v4 app to its own address stays local" answer "APP $POD4" "$POD" connect --to $POD4:8080
check "v6 app to its own address stays local" answer "APP $POD6" "$POD" connect --to "[$POD6]:8080"
check "v4 spoofed dial (IP_TRANSPARENT, mark 0x539): reply returns, app sees the client" \
    answer "APP $CLIENT4" "$POD" connect --to $POD4:8080 --bind $CLIENT4 --mark 0x539 --transparent
check "v6 spoofed dial (IP_TRANSPARENT, mark 0x539): reply returns, app sees the client" \
    answer "APP $CLIENT6" "$POD" connect --to "[$POD6]:8080" --bind $CLIENT6 --mark 0x539 \
    --transparent
check "UDP DNS is not captured without --dns" answer "NODEDNS $POD4" "$POD" udpsend --to $EXT4:53

say "idempotence"
snapshot "$WORK/applied.txt"
check "apply again succeeds" tool apply
snapshot "$WORK/applied2.txt"
check "applying twice leaves exactly the same state" same_file "$WORK/applied.txt" "$WORK/applied2.txt"
check "v4 outbound still captured once" answer "ZT 15001 $POD4 $EXT4:80" "$POD" connect --to $EXT4:80

say "DNS capture on, then off again"
check "apply --dns succeeds" tool apply --dns
check "iptables-save shows ipv4-dns.rules" ours_match iptables-save ipv4-dns.rules
check "ip6tables-save shows ipv6-dns.rules" ours_match ip6tables-save ipv6-dns.rules
check "v4 UDP DNS is REDIRECTed to 15053" answer "ZTDNS $POD4" "$POD" udpsend --to $EXT4:53
check "v6 UDP DNS is REDIRECTed to 15053" answer "ZTDNS $POD6" "$POD" udpsend --to "[$EXT6]:53"
check "DNS from ztunnel (mark 0x539) goes upstream" \
    answer "NODEDNS $POD4" "$POD" udpsend --to $EXT4:53 --mark 0x539
check "apply without --dns succeeds" tool apply
snapshot "$WORK/applied3.txt"
check "DNS off again: the same state as before --dns (raw chains gone)" \
    same_file "$WORK/applied.txt" "$WORK/applied3.txt"

say "probe exemption (SNAT address $SNAT4, as HOST_PROBE_SNAT_IP overrides)"
ip -n "$NODE" addr add $SNAT4/32 dev lo
ip -n "$NODE" addr add $SNAT6/128 dev lo nodad
check "v4 with the default probe address, $SNAT4 is captured" \
    answer "ZT 15006 $SNAT4 $POD4:8080" "$NODE" connect --to $POD4:8080 --bind $SNAT4
check "apply --probe-v4 --probe-v6 succeeds" tool apply --probe-v4 $SNAT4 --probe-v6 $SNAT6
check "v4 probe source is not captured" \
    answer "APP $SNAT4" "$NODE" connect --to $POD4:8080 --bind $SNAT4
check "v6 probe source is not captured" \
    answer "APP $SNAT6" "$NODE" connect --to "[$POD6]:8080" --bind $SNAT6
check "other sources still are" answer "ZT 15006 $NODE4 $POD4:8080" "$NODE" connect --to $POD4:8080
check "one copy of the rules after changing options" sh -c \
    "[ \$(ip netns exec $POD iptables-save -t nat | grep -c -- '-j REDIRECT --to-ports 15006') = 1 ]"

say "errors"
if "$TOOL" apply "$POD" --probe-v4 1.2.3 2>"$WORK/err.txt"; then
    fail "apply with a bad probe address fails"
else
    check "apply with a bad probe address fails with a message" grep -q 'bad probe address "1.2.3"' \
        "$WORK/err.txt"
fi
mkdir -p "$WORK/fail" "$WORK/hang"
printf '#!/bin/sh\nexec /usr/sbin/iptables-save\n' >"$WORK/fail/iptables-save"
printf '#!/bin/sh\nexec /usr/sbin/ip6tables-save\n' >"$WORK/fail/ip6tables-save"
printf '#!/bin/sh\necho "line 3: no good" >&2\nexit 2\n' >"$WORK/fail/iptables-restore"
printf '#!/bin/sh\nsleep 30\n' >"$WORK/hang/iptables-save"
chmod +x "$WORK/fail/"* "$WORK/hang/"*
if "$TOOL" apply "$POD" --bin-dir "$WORK/fail" 2>"$WORK/err.txt"; then
    fail "a failing iptables-restore fails apply"
else
    check "a failing iptables-restore is named with its stderr" grep -q \
        'IPv4 rules: installing: iptables-restore --noflush: exit status 2: line 3: no good' \
        "$WORK/err.txt"
fi
T0=$(date +%s)
if "$TOOL" remove "$POD" --timeout 500 --bin-dir "$WORK/hang" 2>"$WORK/err.txt"; then
    fail "a hanging iptables-save fails remove"
else
    check "a hanging command is killed after the timeout" grep -q \
        "IPv4 rules: reading the pod's tables: iptables-save: no result after 500 ms, killed" \
        "$WORK/err.txt"
    check "... and remove returned promptly" [ $(($(date +%s) - T0)) -le 5 ]
fi
check "no command left behind" sh -c "! pgrep -f '^/bin/sh $WORK/hang/' >/dev/null"
check "apply succeeds again" tool apply # the failed remove took the routing

say "remove"
check "inpod_remove succeeds" tool remove
snapshot "$WORK/after.txt"
check "tables, rules and routes are exactly as before apply" same_file "$WORK/before.txt" "$WORK/after.txt"
check "v4 outbound reaches the node directly again" answer "NODE $POD4" "$POD" connect --to $EXT4:80
check "inbound reaches the app directly again" answer "APP $NODE4" "$NODE" connect --to $POD4:8080
check "no conntrack entry keeps our mark bits" [ -z "$(tool conntrack)" ]
check "remove again succeeds (nothing to do)" tool remove
snapshot "$WORK/after2.txt"
check "... and changes nothing" same_file "$WORK/before.txt" "$WORK/after2.txt"

say "a pod with IPv6 disabled (sysctl): both families all the same, nothing fails"
ip netns add "$POD0"
for k in all default lo; do ip netns exec "$POD0" sysctl -qw net.ipv6.conf.$k.disable_ipv6=1; done
ip -n "$POD0" link set lo up
ip0() { ip netns exec "$POD0" "$@"; }
snap0() { { ip0 iptables-save | $NORM; ip0 ip6tables-save | $NORM; ip0 ip rule; ip0 ip -6 rule
            ip0 ip route show table all; ip0 ip -6 route show table all; } >"$1" 2>&1; }
snap0 "$WORK/nov6-before.txt"
check "apply succeeds in a pod with IPv6 disabled" "$TOOL" apply "$POD0"
check "its ip6tables rules are in place" sh -c "ip netns exec $POD0 ip6tables-save -t nat | grep -q 'REDIRECT --to-ports 15006'"
check "remove succeeds there" "$TOOL" remove "$POD0"
snap0 "$WORK/nov6-after.txt"
check "and leaves it exactly as before" same_file "$WORK/nov6-before.txt" "$WORK/nov6-after.txt"

finish
