#!/usr/bin/python3
"""inpod_save.py - normalizes iptables-save output on stdin for comparisons.

  (default)  the whole state: comments dropped, counters zeroed, tables sorted by
             name, tables that hold nothing (built-in chains, policy ACCEPT, no
             rules) dropped: iptables-nft creates those on first use and keeps them.
  --ours     only our chains (ISTIO_PRERT, ISTIO_OUTPUT), their rules and the jumps
             into them, in the form of tests/unit/inpod/*.rules (whose comment
             lines go like any others).
"""
import re
import sys

OURS = ("ISTIO_PRERT", "ISTIO_OUTPUT")
JUMPS = ("-A PREROUTING -j ISTIO_PRERT", "-A OUTPUT -j ISTIO_OUTPUT")


def parse(text):
    tables = {}
    cur = None
    for line in text.splitlines():
        line = line.rstrip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("*"):
            cur = tables.setdefault(line[1:], {"chains": [], "rules": []})
        elif line == "COMMIT":
            cur = None
        elif line.startswith(":") and cur is not None:
            name, policy = line[1:].split()[:2]
            cur["chains"].append((name, policy))
        elif cur is not None:
            cur["rules"].append(re.sub(r"^\[\d+:\d+\] ", "", line))
    return tables


def rule_chain(rule):
    return rule.split()[1]


def render(tables, ours):
    out = []
    for name in sorted(tables):
        t = tables[name]
        if ours:
            chains = [(c, "-") for c, _ in t["chains"] if c in OURS]
            rules = [r for r in t["rules"] if rule_chain(r) in OURS or r in JUMPS]
            if not chains and not rules:
                continue
            decl = [":%s - [0:0]" % c for c, _ in chains]
        else:
            chains, rules = t["chains"], t["rules"]
            if not rules and all(p == "ACCEPT" for _, p in chains):
                continue
            decl = [":%s %s [0:0]" % (c, p) for c, p in chains]
        out += ["*" + name] + decl + rules + ["COMMIT"]
    return "".join(line + "\n" for line in out)


def main():
    ours = "--ours" in sys.argv[1:]
    sys.stdout.write(render(parse(sys.stdin.read()), ours))


if __name__ == "__main__":
    main()
