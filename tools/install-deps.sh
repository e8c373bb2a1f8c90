#!/usr/bin/env bash
# Installs the Debian packages amesh builds, tests and demos with.
# Idempotent: does nothing when everything is already present.
#   tools/install-deps.sh               what `make demo` / `make test` need
#   tools/install-deps.sh fresh-check   also what `make fresh-check` needs on the host
#   tools/install-deps.sh bench         also what `make bench` runs beside amesh
set -euo pipefail

pkgs=(
  cmake ninja-build gcc clang pkg-config
  libssl-dev libnghttp2-dev libyaml-dev libjansson-dev libcmocka-dev
  # libpcre2-dev: the waypoint's route regexes (lib/route), matched with its DFA matcher
  libpcre2-dev
  # libprotobuf-dev: the well-known .proto files (google/protobuf/*.proto) protoc-c compiles
  libprotobuf-c-dev protobuf-c-compiler protobuf-compiler libprotobuf-dev python3-protobuf
  iproute2 iptables tcpdump openssl bc procps util-linux
  curl
  python3 python3-h2 python3-cryptography
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
  *) echo "usage: $0 [fresh-check|bench]" >&2; exit 2 ;;
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
