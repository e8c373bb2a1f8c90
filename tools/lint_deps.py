#!/usr/bin/python3
"""lint_deps.py - a src/lib module may include only its own headers and those of the modules it
declares in src/lib/CMakeLists.txt (DEPS, followed transitively: they link PUBLIC).

An include the build happens to satisfy (every module shares one include root) but the module
does not declare is an upward or sideways dependency the layering does not show; it fails here
instead of surfacing later as a link error or a cycle. Prints one line per offence; exit 1 if any.
"""
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LIB = os.path.join(ROOT, "src", "lib")


def modules():
    text = open(os.path.join(LIB, "CMakeLists.txt")).read()
    deps = {}
    for m in re.finditer(r"mesh_module\(\s*(\w+)(.*?)\)", text, re.S):
        words = m.group(2).split()
        d = words[words.index("DEPS") + 1:] if "DEPS" in words else []
        deps[m.group(1)] = d
    return deps


def closure(deps, name, seen=None):
    seen = set() if seen is None else seen
    for d in deps.get(name, []):
        if d in deps and d not in seen:
            seen.add(d)
            closure(deps, d, seen)
    return seen


def main():
    deps = modules()
    bad = 0
    inc = re.compile(r'^\s*#\s*include\s+"(\w+)/[\w.]+"', re.M)
    for mod in sorted(deps):
        allowed = closure(deps, mod) | {mod}
        d = os.path.join(LIB, mod)
        for f in sorted(os.listdir(d)) if os.path.isdir(d) else []:
            if not f.endswith((".c", ".h")):
                continue
            path = os.path.join(d, f)
            for m in inc.finditer(open(path).read()):
                other = m.group(1)
                if other in deps and other not in allowed:
                    line = open(path).read()[:m.start()].count("\n") + 1
                    print("lint: src/lib/%s/%s:%d includes %s/ but %s does not declare it (DEPS in "
                          "src/lib/CMakeLists.txt)" % (mod, f, line, other, mod))
                    bad += 1
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
