#!/usr/bin/env bash
# A token replaced in the file while its renewal is out stays replaced.
#
#   netns node-1: meshd 198.18.0.1:15012
#   netns node-2: ztunnel node-2
#
# ztunnel starts with an xds token (20 s, renewal due at +10 s) and a ca token
# issued 4 s later (due at +14 s). meshd is stopped at +8 s, so the xds
# renewal sent at +10 s waits. At +11 s the operator writes fresh 10 s tokens
# into the file (as after `meshd token --revoke`); ztunnel reads them at +14 s
# (the ca renewal looks at the file first). meshd resumes and answers the old
# xds token's renewal with a 20 s token: ztunnel must drop that answer and keep
# (and renew) the operator's token, not adopt and write back a renewal of the
# token it replaced.
. "$(dirname "$0")/lib.sh"
require_root
topo_two_nodes 4
CFG=$WORK/config
STATE=$WORK/state
TOK=$WORK/token-node-2
write_k8s_config "$CFG"
start_meshd "$CFG" "$STATE" "$WORK/meshd.log"

mint() { # audience ttl
    "$BIN/meshd" token --state-dir "$STATE" --node node-2 --audience "$1" --ttl "$2"
}
field() { # token-line n -> the n-th ':' field (5 issued, 6 expires)
    echo "$1" | cut -d: -f"$2"
}
sleep_until() { # unix-seconds
    while [ "$(date +%s)" -lt "$1" ]; do sleep 0.1; done
}
line_of() { # file audience
    grep "^v2:$2:" "$1"
}

TX=$(mint xds 20s)
ISS=$(field "$TX" 5)
sleep_until $((ISS + 4))
TC=$(mint ca 20s)
(umask 077; printf '%s\n%s\n' "$TX" "$TC" >"$TOK")
start_bg "$WORK/zt.log" ip netns exec "$N2" "$BIN/ztunnel" --xds-address "$MESHD_ADDR" \
    --root-cert "$STATE/root-cert.pem" --token "$TOK" --node node-2
ZT=$LAST_PID
ready() {
    ip netns exec "$N2" $PY -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:15021/healthz/ready',timeout=1)"
}
check "ztunnel is ready with the first tokens" wait_secs 3 ready

sleep_until $((ISS + 8))
kill -STOP "$MESHD_PID"
sleep_until $((ISS + 11))
NX=$(mint xds 10s)
NC=$(mint ca 10s)
(umask 077; printf '%s\n%s\n' "$NX" "$NC" >"$TOK.new")
mv "$TOK.new" "$TOK"
NEW_EXP=$(field "$NX" 6)
took_file() { grep -q "xds token for node node-2 from $TOK, valid until $NEW_EXP" "$WORK/zt.log"; }
check "ztunnel took the operator's xds token while its renewal was out" wait_secs 6 took_file
kill -CONT "$MESHD_PID"

# Renewals of the operator's token (10 s) are due from +16 s; one of the replaced
# token would carry 20 s. Look at what ztunnel holds and wrote once things settled.
sleep_until $((ISS + 18))
XL=$(line_of "$TOK" xds)
say "xds line now: issued $(field "$XL" 5), expires $(field "$XL" 6)"
check "the file's xds token is the operator's or its renewal (10 s), not a renewal of the replaced one" \
    test "$(( $(field "$XL" 6) - $(field "$XL" 5) ))" = 10
no_stale_renewal() { # a renewal answered at +14 s for the replaced token expires at +34 s
    awk -v lim=$((ISS + 30)) '/xds token for node node-2 from meshd \(renewed\), valid until/ {
        for (i = 1; i < NF; i++) if ($i == "until" && $(i + 1) + 0 > lim) f = 1 }
        END { exit f }' "$WORK/zt.log"
}
check "ztunnel adopted no renewal of the replaced token" no_stale_renewal
check "ztunnel says it dropped that answer" grep -q "dropped meshd's answer to the renewal of a xds token" "$WORK/zt.log"
check "ztunnel is ready" ready

check "ztunnel exits cleanly" stop_ztunnel "$ZT" "$WORK/zt.log"
check "meshd exits cleanly" stop_meshd "$MESHD_PID" "$WORK/meshd.log"
finish
