#!/usr/bin/env bash
# bench/tools/ca-kube-hold-run.sh - the body of bench/ca-kube-hold.sh (see there).
. "$(dirname "$0")/../../tests/integration/lib.sh"
require_root
topo_two_nodes 4
FX=$ROOT/tests/unit/kubeauth
SLOW=eyJhbGciOiJSUzI1NiJ9.eyJleHAiOjQ3MDAwMDAwMDB9.c2ln
echo "{\"$SLOW\": {\"answer\": \"$FX/echo-bound.json\", \"delay\": 8}}" >"$WORK/script.json"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 -subj /CN=k \
    -addext subjectAltName=IP:127.0.0.1 -keyout "$WORK/k.pem" -out "$WORK/c.pem" 2>/dev/null
cat >"$WORK/kubeconfig" <<Y
apiVersion: v1
kind: Config
clusters: [{name: f, cluster: {server: "https://127.0.0.1:6443", certificate-authority: $WORK/c.pem}}]
users: [{name: m, user: {token: adm}}]
contexts: [{name: f, context: {cluster: f, user: m}}]
current-context: f
Y
mkdir -p "$WORK/cfg"
start_bg "$WORK/fake.log" ip netns exec "$N1" $PY "$ROOT/tests/support/fake_tokenreview.py" --port 6443 \
    --cert "$WORK/c.pem" --key "$WORK/k.pem" --admin-token adm --script "$WORK/script.json"
sleep 1
start_bg "$WORK/meshd.log" ip netns exec "$N1" "$BIN/meshd" --config-dir "$WORK/cfg" --kubeconfig "$WORK/kubeconfig" \
    --state-dir "$WORK/state" --listen 198.18.0.1:15012 --monitoring 127.0.0.1:15014
MP=$LAST_PID
sleep 2
MPID=$(pgrep -f "state-dir $WORK/state" | tail -1)
rss() { awk '/VmRSS/ {print $2}' /proc/$MPID/status; }
echo "meshd pid $MPID rss before: $(rss) kB"
for n in 1 4; do
  ip netns exec "$N2" $PY "$ROOT/tests/support/ca_hold.py" 198.18.0.1:15012 "$WORK/state/root-cert.pem" "$SLOW" $n 16 4 >"$WORK/hold.$n.out" 2>&1 &
  H=$!
  sleep 2.5
  echo "conns=$n x 16 streams: $(cat $WORK/hold.$n.out | tr '\n' ' ') rss during: $(rss) kB"
  wait $H
  sleep 4
  echo "rss after: $(rss) kB; $(grep -c 'too many calls waiting' $WORK/meshd.log) refusals 'too many calls waiting' so far"
done
echo done
