#!/usr/bin/env bash
# meshctl install --kubernetes when things go wrong, and its kubectl forwarder on its own:
#
#   __forward       bytes both ways between two network namespaces (1 MiB checked by
#                   sha256; both half-close orders), its connection cap (64 open: the 65th
#                   is closed at once, a freed slot is usable again), bad arguments refused
#   install         bad flags refused before anything is made; a kube-apiserver that does
#                   not start (a cache whose apiserver exits at once) ends in a clear error
#                   with its log's tail, and the half-made cluster is undone: no namespace,
#                   process, /etc/netns entry or directory left; no binaries in the cache:
#                   tools/kube/build.sh runs with a progress line and its time is printed (a
#                   stand-in build script), and a failed build ends in its log's tail
# The cluster lives in $WORK, never in /run/amesh.
. "$(dirname "$0")/lib.sh"
. "$ROOT/tests/support/kube.sh"
require_root
kube_require || exit 1

M=$BIN/meshctl
export MESH_CLUSTER_DIR=$WORK/cluster

# ---- the forwarder ---------------------------------------------------------------------
ip netns add "$N1"
ip -n "$N1" link set lo up
ip -n "$N1" addr add 198.18.0.9/32 dev lo
start_bg "$WORK/serve.log" ip netns exec "$N1" $TCPTOOL serve --bind 198.18.0.9 --port 7000 --sha256
start_bg "$WORK/half.log" ip netns exec "$N1" $TCPTOOL halfserve --bind 198.18.0.9 --port 7001
start_bg "$WORK/echo.log" ip netns exec "$N1" $TCPTOOL serve --bind 198.18.0.9 --port 7002
fwd() { # port-file target-port
    start_bg "$WORK/fwd-$2.log" "$M" __forward --port-file "$1" - 127.0.0.1:0 "$N1" "198.18.0.9:$2"
    wait_for test -s "$1"
}
fwd "$WORK/p0" 7000 && fwd "$WORK/p1" 7001 && fwd "$WORK/p2" 7002 ||
    { cat "$WORK"/fwd-*.log; exit 1; }
P0=$(cat "$WORK/p0") P1=$(cat "$WORK/p1") P2=$(cat "$WORK/p2")
check "the forwarder picked free ports and wrote them" sh -c "[ $P0 -gt 0 ] && [ $P1 -gt 0 ] && [ $P0 != $P1 ]"
check "1 MiB through the forwarder into the other namespace, sha256 intact" \
    $TCPTOOL bulk --connect "127.0.0.1:$P0" --bytes $((1 << 20))
check "half-close, client first" $TCPTOOL halfclient --connect "127.0.0.1:$P1" --mode client-first
check "half-close, server first" $TCPTOOL halfclient --connect "127.0.0.1:$P1" --mode server-first

# 64 connections held open (each proven end to end by an echo), then the 65th.
cat >"$WORK/cap.py" <<'EOF'
import socket, sys, time
port = int(sys.argv[1])
def conn():  # what came back; b"" when closed (FIN, or RST as ping was unread)
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    try:
        s.sendall(b"ping\n")
        return s, s.recv(16)
    except (ConnectionResetError, BrokenPipeError):
        return s, b""
held = []
for i in range(64):
    s, got = conn()
    assert got == b"ping\n", "connection %d: %r" % (i, got)
    held.append(s)
s, got = conn()
assert got == b"", "the 65th connection was served: %r" % got
print("65th closed at once")
held.pop().close()
for _ in range(50):  # the slot frees once the forwarder saw the close
    time.sleep(0.1)
    s, got = conn()
    if got == b"ping\n":
        print("a freed slot serves again")
        break
else:
    sys.exit("no connection served after one was closed")
EOF
check "at most 64 connections; a 65th is closed, a freed slot is reused" $PY "$WORK/cap.py" "$P2"
check "the refusals are logged, rate-limited" sh -c "
[ \$(grep -c 'refusing one more' '$WORK/fwd-7002.log') -ge 1 ] &&
[ \$(grep -c 'refusing one more' '$WORK/fwd-7002.log') -le 4 ]"
check "__forward refuses a bad address" sh -c "
'$M' __forward - 127.0.0.1 '$N1' 198.18.0.9:7000 2>'$WORK/bad1.err'; [ \$? = 2 ] &&
grep -q 'not an IP:PORT' '$WORK/bad1.err'"
check "__forward refuses an unknown namespace" sh -c "
! '$M' __forward - 127.0.0.1:0 no-such-ns-$ID 198.18.0.9:7000 2>'$WORK/bad2.err' &&
grep -q 'no-such-ns-$ID' '$WORK/bad2.err'"
kill_pids
PIDS=()

# ---- install: bad flags -----------------------------------------------------------------
check "install --kubernetes --nodes 0 is a usage error, nothing made" sh -c "
'$M' install --kubernetes --nodes 0 2>'$WORK/u.err'; [ \$? = 2 ] && [ ! -e '$MESH_CLUSTER_DIR' ]"
check "install --kubernetes --bogus is a usage error" sh -c "
'$M' install --kubernetes --bogus 2>'$WORK/u2.err'; [ \$? = 2 ] && grep -q bogus '$WORK/u2.err'"

# ---- install: an API server that does not start --------------------------------------------
# A cache like the real one whose kube-apiserver exits at once with a message.
FAKE=$WORK/fake-cache
mkdir -p "$FAKE/bin"
cp "$KUBE_CACHE/stamp" "$FAKE/stamp"
printf '#!/bin/sh\necho "E1207 fake-apiserver: refusing to start (test 58)" >&2\nexit 1\n' \
    >"$FAKE/bin/kube-apiserver"
chmod +x "$FAKE/bin/kube-apiserver"
ln -s "$KUBE_BIN/kube-controller-manager" "$KUBE_BIN/kube-scheduler" "$FAKE/bin/"
ip netns list | awk '{print $1}' | sort >"$WORK/netns.before"
rc=0
AMESH_KUBE_CACHE=$FAKE "$M" install --kubernetes --nodes 1 >"$WORK/inst.out" 2>"$WORK/inst.err" || rc=$?
cat "$WORK/inst.out" "$WORK/inst.err"
check "install fails (exit 1)" [ "$rc" = 1 ]
check "etcd came up first" grep -q '✔ etcd ready' "$WORK/inst.out"
check "the error names kube-apiserver and shows its log's tail" sh -c "
grep -q '✘ kube-apiserver did not become ready: it exited' '$WORK/inst.err' &&
grep -q 'fake-apiserver: refusing to start' '$WORK/inst.err' &&
grep -q 'undoing the installation' '$WORK/inst.err'"
check "the half-made cluster is gone: directory" [ ! -e "$MESH_CLUSTER_DIR" ]
check "... network namespaces" sh -c "ip netns list | awk '{print \$1}' | sort | cmp -s - '$WORK/netns.before'"
check "... processes (etcd)" sh -c "! pgrep -f '[e]tcd --name amesh --data-dir $MESH_CLUSTER_DIR' >/dev/null"
check "uninstall afterwards finds nothing to do" sh -c "
! '$M' uninstall 2>'$WORK/un.err' && grep -q 'no cluster' '$WORK/un.err'"
# ---- install: no binaries in the cache yet -----------------------------------------------------
# A source tree whose tools/kube/build.sh stands in for the real (minutes-long) build: it says
# what it does as the real one does, then fills the cache from the real one's binaries.
FSRC=$WORK/src
mkdir -p "$FSRC/tools/kube"
ln -s "$ROOT/manifests" "$FSRC/manifests"
cat >"$FSRC/tools/kube/build.sh" <<EOF
#!/bin/sh
echo "kube-build: fetching the source (test 58)"
sleep 1.5
echo "kube-build: building (test 58)"
[ -n "\${FAIL_BUILD:-}" ] && { echo "kube-build: error: go build failed (test 58)" >&2; exit 1; }
sleep 1.5
mkdir -p "\$AMESH_KUBE_CACHE/bin"
ln -s $KUBE_BIN/kube-apiserver $KUBE_BIN/kube-controller-manager $KUBE_BIN/kube-scheduler "\$AMESH_KUBE_CACHE/bin/"
echo "Kubernetes v1.20.2 built (test 58)" >"\$AMESH_KUBE_CACHE/stamp"
EOF
chmod +x "$FSRC/tools/kube/build.sh"
rc=0
FAIL_BUILD=1 AMESH_KUBE_CACHE=$WORK/cold AMESH_SOURCE_DIR=$FSRC "$M" install --kubernetes --nodes 1 \
    >"$WORK/b1.out" 2>"$WORK/b1.err" || rc=$?
cat "$WORK/b1.out" "$WORK/b1.err"
check "a failed build: install fails with the build log's tail, nothing left" sh -c "
[ $rc = 1 ] && grep -q '✘ Kubernetes binaries: building Kubernetes failed' '$WORK/b1.err' &&
grep -q 'go build failed (test 58)' '$WORK/b1.err' && [ ! -e '$MESH_CLUSTER_DIR' ]"
rc=0
AMESH_KUBE_CACHE=$WORK/cold AMESH_SOURCE_DIR=$FSRC "$M" install --kubernetes --nodes 1 \
    >"$WORK/b2.out" 2>&1 || rc=$?
cat "$WORK/b2.out"
check "no cache: install builds it, with progress lines, and says how long it took" sh -c "
[ $rc = 0 ] && grep -q 'building Kubernetes v1.20.2 from Debian' '$WORK/b2.out' &&
grep -q 'building\.\.\. .*kube-build\|building\.\.\. .* s  ' '$WORK/b2.out' &&
grep -Eq '✔ Kubernetes v1.20.2 built in [0-9.]+ s' '$WORK/b2.out' && [ -f '$WORK/cold/stamp' ]"
check "... and the cluster it installed answers kubectl" sh -c "
$KUBECTL --kubeconfig '$MESH_CLUSTER_DIR/kubeconfig' --request-timeout=10s get --raw /readyz >/dev/null"
check "... and uninstalls" sh -c "'$M' uninstall >/dev/null && [ ! -e '$MESH_CLUSTER_DIR' ]"
finish
