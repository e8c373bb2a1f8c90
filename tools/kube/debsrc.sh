#!/usr/bin/env bash
# debsrc.sh APT_ETC OUT_DIR - writes into OUT_DIR (an apt SourceParts directory) deb-src entries
# derived from the apt sources under APT_ETC (normally /etc/apt): one-line sources.list and
# sources.list.d/*.list (`deb [opts] URI SUITE COMPONENTS` becomes `deb-src ...`; deb-src lines
# already there are dropped so none is listed twice) and deb822 sources.list.d/*.sources
# (whatever `Types:` says becomes `Types: deb-src`). Nothing is fetched and no host is named:
# the entries are this machine's own. Exit 1 when there is no source at all.
set -euo pipefail
etc=${1:?usage: debsrc.sh APT_ETC OUT_DIR}
out=${2:?usage: debsrc.sh APT_ETC OUT_DIR}
mkdir -p "$out"
n=0
shopt -s nullglob
for f in "$etc/sources.list" "$etc"/sources.list.d/*.list; do
    [ -s "$f" ] || continue
    sed -nE 's/^[[:space:]]*deb([[:space:]])/deb-src\1/p' "$f" >"$out/src$n.list"
    if [ -s "$out/src$n.list" ]; then n=$((n + 1)); else rm -f "$out/src$n.list"; fi
done
for f in "$etc"/sources.list.d/*.sources; do
    [ -s "$f" ] || continue
    sed -E 's/^Types:.*/Types: deb-src/I' "$f" >"$out/src$n.sources"
    if grep -qi '^Types: deb-src' "$out/src$n.sources"; then n=$((n + 1)); else rm -f "$out/src$n.sources"; fi
done
[ "$n" -gt 0 ] || { echo "debsrc: no apt sources in $etc/sources.list{,.d}" >&2; exit 1; }
