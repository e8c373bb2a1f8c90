#!/usr/bin/python3
"""prom_query.py - sums samples of a Prometheus text exposition (stdin) that match filters.

  prom_query.py NAME [label=value ...] [--series]

Prints the sum of the values of every sample named NAME whose labels have the given values
(exact), or with --series the number of such samples. An independent reader of the format
(no amesh code): label values are unescaped per the exposition format 0.0.4.
"""
import re
import sys

SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)",?')


def parse(text):
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = SAMPLE.match(line)
        if not m:
            raise SystemExit("unparsable line: %r" % line)
        labels = {}
        body = m.group(3) or ""
        pos = 0
        while pos < len(body):
            lm = LABEL.match(body, pos)
            if not lm:
                raise SystemExit("unparsable labels: %r" % line)
            labels[lm.group(1)] = re.sub(r'\\(.)', lambda e: "\n" if e.group(1) == "n" else e.group(1),
                                         lm.group(2))
            pos = lm.end()
        yield m.group(1), labels, float(m.group(4))


def main():
    args = [a for a in sys.argv[1:] if a != "--series"]
    count = "--series" in sys.argv
    name, want = args[0], dict(a.split("=", 1) for a in args[1:])
    total, n = 0.0, 0
    for s, labels, v in parse(sys.stdin.read()):
        if s == name and all(labels.get(k) == v2 for k, v2 in want.items()):
            total += v
            n += 1
    print(n if count else ("%d" % total if total == int(total) else total))


main()
