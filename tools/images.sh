#!/usr/bin/env bash
# Builds the container images of amesh offline, from the release build and this machine's
# Debian packages: no registry, no daemon, no base image pulled.
#
#   tools/images.sh [BUILD [OUT]]     (make images: BUILD=build, OUT=BUILD/images)
#   AMESH_IMAGES="meshd ztunnel"      a subset (default: meshd ztunnel mesh-cni waypoint)
#   AMESH_IMAGE_TAG=dev               the tag (default dev; the manifests' base uses it)
#
# Each image is distroless-style: FROM scratch, one layer holding the stripped binary, the
# shared libraries `ldd` lists for it (from Debian's packages as installed here), /etc/passwd
# and /etc/group, and the copyright files of the Debian packages those files come from
# (/usr/share/doc/amesh-image/packages lists package and version). mesh-cni also carries
# iptables (nft backend: xtables-nft-multi, its extensions and their libraries), which it runs
# inside each pod's network namespace, and the static amesh-cni plugin it copies to the host.
# No shell, no package manager.
#
# Output, per image NAME: OUT/NAME.tar (docker-archive, amesh/NAME:TAG) and OUT/NAME-oci.tar
# (oci-archive, tag TAG). buildah runs with the vfs storage driver and chroot isolation in a
# private store under OUT/.store, removed at the end, so nothing lands in /var/lib/containers.
set -euo pipefail

BUILD=${1:-build}
OUT=${2:-$BUILD/images}
TAG=${AMESH_IMAGE_TAG:-dev}
IMAGES=${AMESH_IMAGES:-meshd ztunnel mesh-cni waypoint}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

say() { printf 'images: %s\n' "$*"; }
die() { printf 'images: error: %s\n' "$*" >&2; exit 1; }

for c in buildah ldd strip dpkg-query file; do
    command -v "$c" >/dev/null || die "'$c' not found (run: tools/install-deps.sh images)"
done
[ "$(uname -m)" = x86_64 ] || die "only linux/amd64 images are built (this is $(uname -m))"
for n in $IMAGES; do
    case "$n" in meshd | ztunnel | mesh-cni | waypoint) ;; *) die "unknown image '$n'" ;; esac
    [ -x "$BUILD/bin/$n" ] || die "$BUILD/bin/$n missing: run 'make build' first"
done

mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
STORE=$OUT/.store
WORK=$(mktemp -d /tmp/amesh-images.XXXXXX)
BUILDAH=(buildah --root "$STORE/root" --runroot "$STORE/run" --storage-driver vfs)
cleanup() {
    rm -rf "$WORK"
    # vfs layers are plain directories: removing the private store removes every image in it.
    rm -rf "$STORE"
}
trap cleanup EXIT

# Layer and config timestamps: the last commit's time, so two builds of one commit match.
EPOCH=$(git -C "$here/.." log -1 --format=%ct 2>/dev/null || echo 0)

# Copies |src| (a file, a symlink is followed) into root |r| at its real path, and makes the
# name |src| resolve there too (the soname symlink, /lib64/ld-linux... and the like). /lib,
# /bin and /sbin are symlinks into /usr (merged /usr, as Debian 12), so a /lib path and its
# /usr/lib twin are one file.
put() {
    local r=$1 src=$2 real dir base
    real=$(readlink -f "$src")
    [ -f "$real" ] || die "$src: not a file"
    if [ ! -e "$r$real" ]; then
        install -D -m "$(stat -c %a "$real")" "$real" "$r$real"
        printf '%s\n' "$real" >>"$r.files"
    fi
    dir=$(readlink -f "$(dirname "$src")")
    base=$(basename "$src")
    if [ "$dir/$base" != "$real" ] && [ ! -e "$r$dir/$base" ]; then
        mkdir -p "$r$dir"
        if [ "$(dirname "$real")" = "$dir" ]; then
            ln -s "$(basename "$real")" "$r$dir/$base"
        else
            ln -s "$real" "$r$dir/$base"
        fi
    fi
}

# Every library the dynamic loader maps for the ELF files given (ldd lists them
# transitively), and the loader itself. One ldd for all: it heads each file's list "FILE:".
put_libs() {
    local r=$1 line lib
    shift
    while read -r line; do
        case "$line" in
            *"=> not found"*) die "a library is missing: $line (ldd $*)" ;;
            *:) ;;
            *"=> /"*) lib=${line#*=> }; lib=${lib%% (*}; put "$r" "$lib" ;;
            /*) lib=${line%% (*}; put "$r" "$lib" ;;
        esac
    done < <(ldd "$@" | sort -u)
}

skeleton() {
    local r=$1
    mkdir -p "$r"/usr/bin "$r"/usr/sbin "$r"/usr/lib "$r"/usr/lib64 "$r"/usr/local/bin \
        "$r"/etc "$r"/tmp "$r"/run "$r"/var/run
    chmod 1777 "$r"/tmp
    ln -s usr/bin "$r"/bin
    ln -s usr/sbin "$r"/sbin
    ln -s usr/lib "$r"/lib
    ln -s usr/lib64 "$r"/lib64
    # 65532: the unprivileged user meshd and the waypoint run as (distroless's "nonroot").
    printf 'root:x:0:0:root:/root:/nonexistent\nnonroot:x:65532:65532:nonroot:/home/nonroot:/nonexistent\n' >"$r"/etc/passwd
    printf 'root:x:0:\nnonroot:x:65532:\n' >"$r"/etc/group
    : >"$r.files"
}

# The Debian package of each copied file, its version and its copyright file. dpkg knows a
# file by the path its package ships (/lib/... or /usr/lib/... under merged /usr): both are
# asked, in one call, and the paths it does not know are ignored.
record_packages() {
    local r=$1 p v
    mkdir -p "$r/usr/share/doc/amesh-image"
    for p in $(sed 's|^/usr/|/|' "$r.files" | cat - "$r.files" | xargs dpkg-query -S 2>/dev/null |
        cut -d: -f1 | tr ',' '\n' | tr -d ' ' | sort -u); do
        v=$(dpkg-query -W -f='${Version}' "$p")
        printf '%s %s\n' "$p" "$v" >>"$r/usr/share/doc/amesh-image/packages"
        if [ -f "/usr/share/doc/$p/copyright" ]; then
            install -D -m 0644 "/usr/share/doc/$p/copyright" "$r/usr/share/doc/$p/copyright"
        fi
    done
    [ -s "$r/usr/share/doc/amesh-image/packages" ] || die "no Debian package found for the files of $r"
}

# iptables for mesh-cni: the nft multi-call binary under the names mesh-cni runs (found on
# $PATH or /usr/sbin), every extension it may dlopen, and their libraries. The host must
# use the nft backend too (every current distribution does; iptables-legacy is not shipped).
put_iptables() {
    local r=$1 multi xt n
    multi=$(command -v xtables-nft-multi || true)
    [ -n "$multi" ] || die "xtables-nft-multi not found (the iptables package)"
    put "$r" "$multi"
    put_libs "$r" "$multi"
    xt=$(dirname "$(readlink -f "$(ldd "$multi" | awk '/libxtables/ {print $3}')")")/xtables
    [ -d "$xt" ] || die "$xt: no iptables extensions directory"
    # The whole directory in one copy (a put per file costs seconds for ~100 files).
    mkdir -p "$r$xt"
    cp -a "$xt"/. "$r$xt"/
    find "$xt" -type f >>"$r.files"
    put_libs "$r" "$xt"/*.so
    for n in iptables iptables-save iptables-restore ip6tables ip6tables-save ip6tables-restore; do
        ln -s xtables-nft-multi "$r/usr/sbin/$n"
    done
    # Protocol names for -p (libxtables knows the common ones, /etc/protocols the rest).
    [ -f /etc/protocols ] && put "$r" /etc/protocols
    return 0
}

build_one() {
    local n=$1 r user entry ctr t0
    r=$WORK/$n
    t0=$(date +%s.%N)
    skeleton "$r"
    strip -o "$r/usr/local/bin/$n" "$BUILD/bin/$n"
    chmod 0755 "$r/usr/local/bin/$n"
    put_libs "$r" "$BUILD/bin/$n"
    user=65532:65532
    case "$n" in
        # ztunnel enters pod network namespaces (setns) and binds transparent sockets there;
        # mesh-cni runs iptables in them: both need capabilities, which Kubernetes grants only
        # to uid 0 (no ambient capabilities). The manifests still drop everything else.
        ztunnel) user=0:0 ;;
        # mesh-cni also carries the CNI plugin it installs on the host (--cni-bin-dir): static,
        # so it runs whatever the host's libraries are.
        mesh-cni)
            user=0:0
            put_iptables "$r"
            # AMESH_IMAGE_CNI_PLUGIN: another build's plugin (a sanitized build's cannot be static).
            local plugin=${AMESH_IMAGE_CNI_PLUGIN:-$BUILD/bin/amesh-cni}
            [ -x "$plugin" ] || die "$plugin missing: run 'make build' first"
            file -L "$plugin" | grep -q 'statically linked' ||
                die "$plugin is not statically linked (a sanitized build? set AMESH_IMAGE_CNI_PLUGIN)"
            strip -o "$r/usr/local/bin/amesh-cni" "$plugin"
            chmod 0755 "$r/usr/local/bin/amesh-cni"
            ;;
    esac
    record_packages "$r"
    entry="[\"/usr/local/bin/$n\"]"

    ctr=$("${BUILDAH[@]}" from --quiet scratch)
    "${BUILDAH[@]}" copy --quiet "$ctr" "$r" / >/dev/null
    "${BUILDAH[@]}" config --os linux --arch amd64 --entrypoint "$entry" --cmd '' \
        --user "$user" --workingdir / --env PATH=/usr/local/bin:/usr/sbin:/usr/bin \
        --label org.opencontainers.image.title="amesh $n" \
        --label org.opencontainers.image.source=amesh "$ctr"
    "${BUILDAH[@]}" commit --quiet --rm --timestamp "$EPOCH" "$ctr" "localhost/amesh/$n:$TAG" >/dev/null
    rm -f "$OUT/$n.tar" "$OUT/$n-oci.tar"
    "${BUILDAH[@]}" push --quiet "localhost/amesh/$n:$TAG" "docker-archive:$OUT/$n.tar:amesh/$n:$TAG"
    "${BUILDAH[@]}" push --quiet "localhost/amesh/$n:$TAG" "oci-archive:$OUT/$n-oci.tar:$TAG"
    say "$(printf '%-9s %6s KB docker-archive, %6s KB oci-archive, %s packages, %.1f s' "$n" \
        "$(( $(stat -c %s "$OUT/$n.tar") / 1024 ))" "$(( $(stat -c %s "$OUT/$n-oci.tar") / 1024 ))" \
        "$(wc -l <"$r/usr/share/doc/amesh-image/packages")" \
        "$(echo "$(date +%s.%N) - $t0" | bc)")"
}

for img in $IMAGES; do build_one "$img"; done
say "archives in $OUT (amesh/NAME:$TAG): load with 'kind load image-archive', 'ctr -n k8s.io images import' or 'skopeo copy'"
