#!/usr/bin/env bash
# lint.sh - project rules the compiler does not check (style guide 2.11).
# Fails on: banned functions, // comments, header guards not matching the path,
# includes of another module's *_internal.h, protobuf-c unpacks that bypass pb_check(),
# includes of a module a src/lib module does not declare (tools/lint_deps.py).
# Warns on files over 800 lines.
set -uo pipefail
cd "$(dirname "$0")/.."
rc=0
files=$(find src tests fuzz -name '*.[ch]' | sort)

banned='\b(sprintf|vsprintf|strcpy|strcat|gets|atoi|strtok|system)\s*\('
if grep -n -E "$banned" $files; then
    echo "lint: banned function (use snprintf, strtol, memcpy with lengths...)"; rc=1
fi
if grep -n -E '^\s*//' $files; then
    echo "lint: use /* */ comments"; rc=1
fi
# Peer bytes are unpacked after pb_check() (issue 9): protobuf-c recurses without a depth limit.
unpack='(protobuf_c_message_unpack|__unpack)\s*\('
if grep -n -E "$unpack" $(echo "$files" | grep '^src/' | grep -v '^src/lib/pbcheck/') | grep -v '^\S*:[0-9]*:\s*\*'; then
    echo "lint: unpack protobufs with pb_unpack_checked() (pbcheck/pbcheck.h)"; rc=1
fi
for h in $(echo "$files" | grep '^src/lib/.*\.h$'); do
    mod=$(basename "$h" .h | tr 'a-z' 'A-Z')
    grep -q "#ifndef MESH_LIB_${mod}_H" "$h" || { echo "lint: $h: guard should be MESH_LIB_${mod}_H"; rc=1; }
done
for f in $files; do
    for inc in $(grep -o '#include "[a-z0-9_]*/[a-z0-9_]*_internal.h"' "$f" | sed 's/.*"\(.*\)"/\1/'); do
        # A module's own files, and its unit tests (which may reach its internals), only.
        case "$f" in src/lib/"${inc%%/*}"/* | tests/unit/lib/test_"${inc%%/*}"*) ;;
        *) echo "lint: $f includes $inc from another module"; rc=1 ;; esac
    done
    n=$(wc -l <"$f")
    [ "$n" -gt 800 ] && echo "lint: warning: $f has $n lines (aim for < 600)"
done
/usr/bin/python3 tools/lint_deps.py || rc=1
[ $rc -eq 0 ] && echo "lint: ok"
exit $rc
