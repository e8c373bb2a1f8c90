#!/usr/bin/python3
"""scale_accesslog.py - reads ztunnel access-log lines (plain or JSON) as dicts.

  scale_accesslog.py LOG [key=value ...]   prints matching records as JSON lines
As a module: records(path) -> list of dicts with the fields of each
"connection complete" line (bytes_sent/bytes_recv as int).
"""
import json
import re
import sys

FIELD = re.compile(r'([A-Za-z_][\w.]*)=("(?:[^"\\]|\\.)*"|\S*)')


def parse_line(line):
    line = line.rstrip("\n")
    if line.startswith("{"):
        try:
            rec = json.loads(line)
        except ValueError:
            return None
        if rec.get("message") != "connection complete":
            return None
    else:
        parts = line.split("\t", 4)
        if len(parts) < 5 or parts[3] != "connection complete":
            return None
        rec = {"time": parts[0], "level": parts[1], "scope": parts[2], "message": parts[3]}
        for k, v in FIELD.findall(parts[4]):
            rec[k] = json.loads(v) if v.startswith('"') else v
    for k in ("bytes_sent", "bytes_recv"):
        if k in rec:
            rec[k] = int(rec[k])
    return rec


def records(path):
    out = []
    with open(path, errors="replace") as f:
        for line in f:
            r = parse_line(line)
            if r is not None:
                out.append(r)
    return out


def main():
    want = dict(a.split("=", 1) for a in sys.argv[2:])
    for r in records(sys.argv[1]):
        if all(str(r.get(k)) == v for k, v in want.items()):
            print(json.dumps(r))
    return 0


if __name__ == "__main__":
    sys.exit(main())
