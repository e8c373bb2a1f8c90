#!/usr/bin/env bash
# Installs the Debian packages amesh builds, tests and demos with.
# Idempotent: does nothing when everything is already present.
#   tools/install-deps.sh               what `make demo` / `make test` need
#   tools/install-deps.sh fresh-check   also what `make fresh-check` needs on the host
#   tools/install-deps.sh bench         also what `make bench` runs beside amesh
#   tools/install-deps.sh images        also what `make images` builds container images with
#   tools/install-deps.sh kube          also what the real Kubernetes API server tier needs
set -euo pipefail

pkgs=(
  cmake ninja-build gcc clang pkg-config
  libssl-dev libnghttp2-dev libyaml-dev libjansson-dev libcmocka-dev
  # libc6-dev (static libc.a), libjansson-dev and libyaml-dev (their .a): the static amesh-cni;
  # file: tools/images.sh and test 62 check that it is static
  libc6-dev file
  # libpcre2-dev: the waypoint's route regexes (lib/route), matched with its DFA matcher
  libpcre2-dev
  # libprotobuf-dev: the well-known .proto files (google/protobuf/*.proto) protoc-c compiles
  libprotobuf-c-dev protobuf-c-compiler protobuf-compiler libprotobuf-dev python3-protobuf
  iproute2 iptables tcpdump openssl bc procps util-linux
  curl
  python3 python3-h2 python3-cryptography
  # python3-yaml: the Helm charts rendered and compared with the kustomize base (test 50)
  python3-yaml
  # python3-grpcio: gRPC unary and server-streaming calls through the waypoint's HTTP/2 engine
  # (test 35); nghttp2-client: h2load, the h2c load through it (test 35)
  python3-grpcio nghttp2-client
  haproxy stunnel4 iperf3 wrk
  prometheus # promtool check metrics on ztunnel's scrape (test 14); its service is not needed
  # containernetworking-plugins: the reference CNI plugins (/usr/lib/cni/bridge, host-local) that
  # amesh-cni is chained after in test 52, called as a container runtime calls them
  containernetworking-plugins
)
case "${1:-}" in
  "") ;;
  # mmdebstrap builds the minimal Debian 12 root of tools/fresh-check.sh (not needed
  # inside that root, nor by a user's `make demo`).
  fresh-check) pkgs+=(mmdebstrap) ;;
  # nginx-light: the origin server of the benchmark's HTTP paths (bench/run.sh);
  # linux-perf: the waypoint step's profile (bench/wp.sh, BENCH_WP_PERF=1).
  bench) pkgs+=(nginx-light linux-perf) ;;
  # buildah: the images, FROM scratch, vfs storage and chroot isolation (no daemon, no
  # registry); skopeo: inspects the archives (test 51) and copies them to a user's registry.
  images) pkgs+=(buildah skopeo) ;;
  # The `kube` test tier runs a real kube-apiserver 1.20.2 that tools/kube/build.sh compiles
  # from Debian's `kubernetes` source package (Debian ships only kubectl): golang-go and rsync
  # build it (its Makefile needs rsync); golang-github-modern-go-reflect2-dev is reflect2 1.0.2,
  # swapped for the vendored 1.0.1 that crashes under Go >= 1.18; etcd-server/-client are its
  # store and the `etcdctl compact` of the fixture recorder.
  kube) pkgs+=(golang-go rsync golang-github-modern-go-reflect2-dev etcd-server etcd-client) ;;
  *) echo "usage: $0 [fresh-check|bench|images|kube]" >&2; exit 2 ;;
esac

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: missing packages: ${missing[*]} (run as root to install)" >&2
  exit 1
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
