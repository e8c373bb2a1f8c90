#!/usr/bin/env bash
# install/destdir: `cmake --install` (what `make install` runs) with a prefix and DESTDIR
# puts the programs, the sample apps and manifests under DESTDIR/PREFIX and nowhere else,
# and the installed meshctl runs from there.
set -euo pipefail
BUILD=${1:?usage: install.sh BUILD_DIR}
D=$(mktemp -d "${TMPDIR:-/tmp}/amesh-install.XXXXXX")
trap 'rm -rf "$D"' EXIT
fails=0 passes=0
check() { if "${@:2}"; then passes=$((passes + 1)); echo "ok - $1"; else fails=$((fails + 1)); echo "not ok - $1"; fi; }

DESTDIR=$D/stage cmake --install "$BUILD" --prefix /opt/amesh >"$D/log" 2>&1 || { cat "$D/log"; exit 1; }
P=$D/stage/opt/amesh
for b in ztunnel waypoint meshd mesh-cni amesh-cni meshctl echo-server hold-conn; do
    check "bin/$b installed, executable" test -x "$P/bin/$b"
done
for f in echo.yaml curl.yaml sleep.yaml allow-curl.yaml waypoint.yaml README.md; do
    check "share/amesh/samples/$f installed" test -f "$P/share/amesh/samples/$f"
done
check "nothing outside DESTDIR/PREFIX" test "$(cd "$D/stage" && find . -mindepth 1 -maxdepth 2 | sort | tr '\n' ' ')" = "./opt ./opt/amesh "
check "no test or bench binary installed" test "$(ls "$P/bin" | sort | tr '\n' ' ')" = \
    "amesh-cni echo-server hold-conn mesh-cni meshctl meshd waypoint ztunnel "
check "the installed meshctl --help runs" sh -c "'$P/bin/meshctl' --help | grep -q '^Usage: meshctl'"
check "the installed ztunnel --help runs" sh -c "'$P/bin/ztunnel' --help >/dev/null 2>&1"
echo "$passes passed, $fails failed"
[ "$fails" = 0 ]
