# tests/support/cp_calls.sh - calls to a meshd under test, shared by the CA tests (48, 49).
# Source after lib.sh with N1 (meshd's netns, monitoring on 127.0.0.1:15014), N2 (the
# caller's), CP (cp_client.py), MESHD_LISTEN, STATE, PB, WORK and MLOG (meshd's log) set.

monitoring_get() { # path
    ip netns exec "$N1" $PY -c "
import sys, urllib.request
sys.stdout.write(urllib.request.urlopen('http://127.0.0.1:15014' + sys.argv[1], timeout=2).read().decode())" "$1"
}
metric() { monitoring_get /metrics | awk -v n="$1" '$1 == n {print $2}'; } # name -> value

NOUT=0
cpc() { # subcommand args... (from N2; output in $OUT)
    NOUT=$((NOUT + 1))
    OUT=$WORK/cp.$NOUT.out
    local sub=$1; shift
    ip netns exec "$N2" $CP "$sub" --addr "$MESHD_LISTEN" --root "$STATE/root-cert.pem" \
        --pb-dir "$PB" --timeout 15 "$@" >"$OUT" 2>&1
}
show() { sed 's/^/    /' "${1:-$OUT}"; }
check_show() { # file "description" command...
    local file=$1 what=$2; shift 2
    if "$@"; then pass "$what"; else fail "$what"; show "$file"; fi
}
# ca "what" token identity status [log-regex]: one CA call, its status, and why in meshd's log.
ca() {
    local what=$1 tok=$2 id=$3 want=$4 re=${5:-} before
    before=$(wc -l <"$MLOG")
    cpc ca --token-string "$tok" --identity "$id" --expect-status "$want" && ok=1 || ok=0
    if [ $ok = 1 ] && [ "$want" = 0 ]; then grep -qx "leaf-uri: $id" "$OUT" || ok=0; fi
    if [ $ok = 1 ] && [ -n "$re" ]; then
        sleep 0.1
        tail -n +$((before + 1)) "$MLOG" | grep -E -q "$re" || { ok=0; echo "no /$re/ in meshd's log" >>"$OUT"; }
    fi
    check_show "$OUT" "$what" [ $ok = 1 ]
}
