#!/usr/bin/env bash
# Builds the real Kubernetes control plane the `kube` test tier runs: kube-apiserver,
# kube-controller-manager and kube-scheduler v1.20.2, from Debian 12's `kubernetes` source
# package (Debian ships only kubectl, but that package still carries the whole vendored 1.20.2
# tree). Built once into a cache outside the source tree; later runs return at once.
#
#   tools/kube/build.sh            build (or find) the binaries; prints the bin directory last
#   AMESH_KUBE_CACHE=DIR           cache directory (default /var/cache/amesh/kube-v1.20.2)
#   AMESH_KUBE_KEEP=1              keep the 2.6 GB source tree and the Go cache after a build
#
# Result: $AMESH_KUBE_CACHE/bin/{kube-apiserver,kube-controller-manager,kube-scheduler} and
# $AMESH_KUBE_CACHE/stamp, written last (its presence means the binaries are complete).
# Concurrent callers (several tests, several helpers) serialise on /tmp/amesh-kube-build.lock:
# the first builds, the others wait and then find the stamp.
#
# The source comes through apt, as deb-src entries derived from this machine's own apt sources
# (one-line sources.list and deb822 *.sources alike) in a private apt configuration: nothing
# in /etc/apt changes and no archive host is written anywhere in this repository.
set -euo pipefail

VERSION=v1.20.2
CACHE=${AMESH_KUBE_CACHE:-/var/cache/amesh/kube-$VERSION}
BINS=(kube-apiserver kube-controller-manager kube-scheduler)
LOCK=/tmp/amesh-kube-build.lock
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

say() { printf 'kube-build: %s\n' "$*"; }
die() { printf 'kube-build: error: %s\n' "$*" >&2; exit 1; }

cached() {
    [ -f "$CACHE/stamp" ] || return 1
    local b
    for b in "${BINS[@]}"; do [ -x "$CACHE/bin/$b" ] || return 1; done
}

if cached; then
    say "cached: $CACHE/bin ($(head -n1 "$CACHE/stamp"))"
    exit 0
fi

mkdir -p "$(dirname "$CACHE")" 2>/dev/null || true
exec 9>"$LOCK"
if ! flock -n 9; then
    say "another build holds $LOCK; waiting for it"
    flock 9
fi
if cached; then  # built by whoever held the lock
    say "cached: $CACHE/bin ($(head -n1 "$CACHE/stamp"))"
    exit 0
fi

# ---- prerequisites ---------------------------------------------------------------------------
if [ -x "$here/../install-deps.sh" ]; then
    "$here/../install-deps.sh" kube ||
        die "missing build packages: run 'tools/install-deps.sh kube' as root"
fi
for c in go rsync make apt-get tar; do
    command -v "$c" >/dev/null || die "'$c' not found (tools/install-deps.sh kube installs it)"
done
REFLECT2=/usr/share/gocode/src/github.com/modern-go/reflect2
[ -f "$REFLECT2/reflect2.go" ] ||
    die "$REFLECT2 missing: install golang-github-modern-go-reflect2-dev (tools/install-deps.sh kube)"

mkdir -p "$CACHE" || die "cannot create $CACHE (set AMESH_KUBE_CACHE to a writable directory)"
WORK=$CACHE/work
LOG=$CACHE/build.log
rm -rf "$WORK" "$CACHE/bin" "$CACHE/bin.tmp"
mkdir -p "$WORK/apt/parts" "$WORK/apt/lists/partial" "$WORK/apt/cache/archives/partial" "$WORK/src"
: >"$LOG"
start=$(date +%s)

# ---- deb-src entries derived from this machine's apt sources --------------------------------
"$here/debsrc.sh" /etc/apt "$WORK/apt/parts" ||
    die "no apt sources found in /etc/apt/sources.list{,.d} to derive deb-src from"

APTX=(-o Dir::Etc::SourceList=/dev/null -o "Dir::Etc::SourceParts=$WORK/apt/parts"
      -o "Dir::State::Lists=$WORK/apt/lists" -o "Dir::Cache=$WORK/apt/cache"
      -o Debug::NoLocking=1)
say "fetching Debian's kubernetes source package (apt-get source, private deb-src config)"
if ! apt-get "${APTX[@]}" update >>"$LOG" 2>&1; then
    # One unreachable or source-less repository makes `update` fail; the source may still be
    # found in the others, so only warn here and let `apt-get source` decide.
    say "warning: apt-get update of the derived deb-src entries reported errors (see $LOG)"
fi
if ! (cd "$WORK/src" && apt-get "${APTX[@]}" source --download-only kubernetes) >>"$LOG" 2>&1; then
    tail -n 15 "$LOG" >&2
    die "apt-get source kubernetes failed: the Debian 12 (bookworm) source archive must be reachable
  through this machine's apt sources (deb-src derived from $(ls /etc/apt/sources.list /etc/apt/sources.list.d/*.{list,sources} 2>/dev/null | tr '\n' ' '));
  full log: $LOG"
fi
orig=$(ls "$WORK"/src/kubernetes_*.orig.tar.* 2>/dev/null | head -n1)
[ -n "$orig" ] || die "apt-get source gave no kubernetes_*.orig.tar.* (see $LOG)"
case "$orig" in
    *1.20.2*) ;;
    *) die "unexpected kubernetes source $(basename "$orig"): this recipe is for 1.20.2 (Debian 12)" ;;
esac
say "unpacking $(basename "$orig")"
tar -C "$WORK/src" -xf "$orig"
TREE=$WORK/src/kubernetes-1.20.2
[ -d "$TREE/vendor" ] || die "$TREE has no vendor/ tree (see $LOG)"

# Go >= 1.18 crashes the vendored reflect2 1.0.1 (a fault in UnsafeMapType.UnsafeIterate on the
# first ConfigMap LIST); Debian's 1.0.2 is API-compatible and works.
rm -f "$TREE"/vendor/github.com/modern-go/reflect2/*.go "$TREE"/vendor/github.com/modern-go/reflect2/*.s
cp "$REFLECT2"/*.go "$TREE/vendor/github.com/modern-go/reflect2/"
cp "$REFLECT2"/*.s "$TREE/vendor/github.com/modern-go/reflect2/" 2>/dev/null || true

# GOPATH mode as debian/rules builds it (`go build -mod=vendor` wants go.mod updates, and the
# generated openapi files come only from the tree's own make).
mkdir -p "$TREE/.go/src/k8s.io"
ln -s ../../.. "$TREE/.go/src/k8s.io/kubernetes"
export GOPATH=$TREE/.go GOCACHE=$WORK/gocache CGO_ENABLED=0 GOFLAGS= GO111MODULE=off
export KUBE_GIT_VERSION=$VERSION KUBE_GIT_TREE_STATE=clean

build() {
    local what=$1 t0=$(date +%s)
    if ! (cd "$TREE" && make WHAT="$what") >>"$LOG" 2>&1; then
        tail -n 25 "$LOG" >&2
        die "make WHAT=\"$what\" failed; full log: $LOG (tree kept in $TREE)"
    fi
    say "  done in $(( $(date +%s) - t0 )) s"
}
say "building kube-apiserver from Debian's kubernetes source (first time only, ~4 min)..."
build cmd/kube-apiserver
say "building kube-controller-manager and kube-scheduler (~1 min)..."
build "cmd/kube-controller-manager cmd/kube-scheduler"

mkdir -p "$CACHE/bin.tmp"
for b in "${BINS[@]}"; do
    install -m 0755 "$TREE/_output/bin/$b" "$CACHE/bin.tmp/$b"
    v=$("$CACHE/bin.tmp/$b" --version 2>&1) || die "$b --version failed: $v"
    [ "$v" = "Kubernetes $VERSION" ] || die "$b reports '$v', expected 'Kubernetes $VERSION'"
done
mv "$CACHE/bin.tmp" "$CACHE/bin"
elapsed=$(( $(date +%s) - start ))
if [ "${AMESH_KUBE_KEEP:-0}" != 1 ]; then
    rm -rf "$WORK"
fi
# Written last: its presence is what `cached` trusts.
printf 'Kubernetes %s built %s in %s s from %s\n' "$VERSION" "$(date -u +%FT%TZ)" "$elapsed" \
    "$(basename "$orig")" >"$CACHE/stamp.tmp"
mv "$CACHE/stamp.tmp" "$CACHE/stamp"
say "built ${BINS[*]} $VERSION in $elapsed s ($(du -sh "$CACHE/bin" | cut -f1) in $CACHE/bin)"
