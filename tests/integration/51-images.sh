#!/usr/bin/env bash
# tools/images.sh (make images): the container images of meshd, ztunnel, mesh-cni and the
# waypoint, built offline with buildah FROM scratch, are complete and run.
#
#   - every archive is written: NAME.tar (docker-archive, amesh/NAME:TAG) and NAME-oci.tar;
#   - skopeo reads both: linux/amd64, one layer, the entrypoint /usr/local/bin/NAME, the user
#     (65532 for meshd and the waypoint, 0 for ztunnel and mesh-cni, which need capabilities);
#   - `buildah run` of each image's own binary with --help succeeds inside the image, so the
#     dynamic loader finds every library in it (there is nothing else in it: no shell);
#   - mesh-cni's iptables (nft) loads the very rule set mesh-cni writes into a pod
#     (inpod_tool rules 4 and 6), in a fresh network namespace, from the image's own root
#     mounted read-only (so every extension those rules use is in the image, and nothing needs
#     writing, as with the DaemonSet's readOnlyRootFilesystem), and iptables-save lists it back;
#   - each image lists the Debian packages its files come from, with their copyright files.
# The images are built from $MESH_BIN (the test build) into the test's own directory, with a
# private buildah store: nothing of this run stays in /var/lib/containers.
. "$(dirname "$0")/lib.sh"
require_root
for c in buildah skopeo; do
    command -v "$c" >/dev/null || { echo "FAIL: $c not found: run 'tools/install-deps.sh images'"; exit 1; }
done
TOOL=${INPOD_TOOL:-$BIN/../tests/inpod_tool}
OUT=$WORK/images
TAG=t51
STORE=$WORK/store
B=(buildah --root "$STORE/root" --runroot "$STORE/run" --storage-driver vfs)
images_cleanup() {
    umount "$WORK/ro" 2>/dev/null || true
    "${B[@]}" rm --all >/dev/null 2>&1 || true # unmounts the containers' roots too
    rm -rf "$STORE"
}
trap 'rc=$?; set +e; images_cleanup; (exit $rc); cleanup' EXIT

t0=$(date +%s.%N)
# mesh-cni's image carries the static amesh-cni: the release build's (make test builds it), as
# the sanitized build's cannot be static.
PLUGIN=${AMESH_CNI_PLUGIN:-$ROOT/build/bin/amesh-cni}
check "tools/images.sh builds the four images from $BIN" \
    env AMESH_IMAGE_TAG=$TAG AMESH_IMAGE_CNI_PLUGIN="$PLUGIN" "$ROOT/tools/images.sh" "$BIN/.." "$OUT"
say "built in $(echo "$(date +%s.%N) - $t0" | bc | cut -c1-5) s"

# inspect FIELD ARCHIVE: one field of the image's config, as JSON.
inspect() {
    skopeo inspect --config "$2" | $PY -c '
import json, sys
c = json.load(sys.stdin)
f = sys.argv[1]
print(json.dumps(c[f] if f in c else c["config"].get(f)))' "$1"
}
is() { # want command...: the command prints exactly want
    local want=$1 got
    shift
    got=$("$@" 2>&1) || true
    [ "$got" = "$want" ] || { echo "  got: $got"; echo "  want: $want"; return 1; }
}
platform() { echo "$(inspect os "$1") $(inspect architecture "$1")"; }
layers() { skopeo inspect "$1" | $PY -c 'import json, sys; print(len(json.load(sys.stdin)["Layers"]))'; }

for n in meshd ztunnel mesh-cni waypoint; do
    d=$OUT/$n.tar o=$OUT/$n-oci.tar
    check "$n: both archives written ($(( $(stat -c %s "$d" 2>/dev/null || echo 0) / 1024 )) KB docker, $(( $(stat -c %s "$o" 2>/dev/null || echo 0) / 1024 )) KB oci)" \
        test -s "$d" -a -s "$o"
    check "$n: the docker archive is tagged amesh/$n:$TAG" \
        sh -c "tar -xOf '$d' manifest.json | grep -q '\"docker.io/amesh/$n:$TAG\"'"
    for a in "docker-archive:$d" "oci-archive:$o"; do
        check "$n (${a%%:*}): linux/amd64" is '"linux" "amd64"' platform "$a"
        check "$n (${a%%:*}): entrypoint /usr/local/bin/$n" is "[\"/usr/local/bin/$n\"]" inspect Entrypoint "$a"
        check "$n (${a%%:*}): one layer" is 1 layers "$a"
    done
    case $n in ztunnel | mesh-cni) user='"0:0"' ;; *) user='"65532:65532"' ;; esac
    check "$n: runs as $user" is "$user" inspect User "docker-archive:$d"

    ctr=$("${B[@]}" from --quiet "docker-archive:$d")
    check "$n: buildah run /usr/local/bin/$n --help in the image prints its usage" \
        sh -c "'${B[0]}' ${B[*]:1} run --isolation chroot '$ctr' -- /usr/local/bin/$n --help | grep -q '^usage: $n '"
    check "$n: nothing but the binary and its libraries: no shell" \
        sh -c "! '${B[0]}' ${B[*]:1} run --isolation chroot '$ctr' -- /bin/sh -c true 2>/dev/null"
    mnt=$("${B[@]}" mount "$ctr")
    check "$n: lists its Debian packages (libc6 among them) with copyright files" \
        sh -c "grep -q '^libc6 ' '$mnt/usr/share/doc/amesh-image/packages' && test -f '$mnt/usr/share/doc/libc6/copyright'"
    if [ "$n" = mesh-cni ]; then
        check "mesh-cni: iptables comes with it" grep -q '^iptables ' "$mnt/usr/share/doc/amesh-image/packages"
        # Read-only, as the DaemonSet runs it (readOnlyRootFilesystem): iptables-nft must not
        # need to write anything (iptables-legacy would want /run/xtables.lock).
        mkdir -p "$WORK/ro"
        mount --bind "$mnt" "$WORK/ro" && mount -o remount,bind,ro "$WORK/ro"
        mnt=$WORK/ro
        ip netns add "$N1"
        for fam in 4 6; do
            save=iptables-save restore=iptables-restore
            [ $fam = 6 ] && save=ip6tables-save restore=ip6tables-restore
            "$TOOL" rules $fam >"$WORK/rules$fam"
            check "mesh-cni: the image's $restore loads mesh-cni's IPv$fam pod rules ($(grep -c '^-A' "$WORK/rules$fam") rules)" \
                sh -c "ip netns exec '$N1' chroot '$mnt' /usr/sbin/$restore <'$WORK/rules$fam'"
            check "mesh-cni: the image's $save lists them back (ISTIO_OUTPUT, ISTIO_PRERT)" \
                sh -c "ip netns exec '$N1' chroot '$mnt' /usr/sbin/$save >'$WORK/saved$fam' &&
                       grep -q '^:ISTIO_OUTPUT' '$WORK/saved$fam' && grep -q '^:ISTIO_PRERT' '$WORK/saved$fam'"
        done
        ip netns del "$N1"
        umount "$WORK/ro"
    fi
done
say "test run $(echo "$(date +%s.%N) - $t0" | bc | cut -c1-5) s"
finish
