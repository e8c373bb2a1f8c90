#!/usr/bin/python3
"""envoy_access_log.py - reads a log (stdin), picks the access-log lines and checks each.

  envoy_access_log.py text|json [field=value ...]

text: Istio's default Envoy text format (pilot/pkg/model/telemetry_logging.go
EnvoyTextLogFormat, 24 operators); json: one object per line with Istio's keys
(EnvoyJSONLogFormatIstio). Other lines (the waypoint's own log) are skipped. A line that
looks like an access line but does not parse fails. Prints the number of access lines whose
fields equal the given values (names as in the JSON keys; values compared as text).
"""
import json
import re
import sys

KEYS = ["start_time", "method", "path", "protocol", "response_code", "response_flags",
        "response_code_details", "connection_termination_details",
        "upstream_transport_failure_reason", "bytes_received", "bytes_sent", "duration",
        "upstream_service_time", "x_forwarded_for", "user_agent", "request_id", "authority",
        "upstream_host", "upstream_cluster", "upstream_local_address",
        "downstream_local_address", "downstream_remote_address", "requested_server_name",
        "route_name"]
Q = r'"([^"]*)"'
TOK = r'(\S+)'
TEXT = re.compile(r'^\[(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z)\] "(\S+) (\S+) (\S+)" '
                  r'(\d+) ' + TOK + ' ' + TOK + ' ' + TOK + ' ' + Q + r' (\d+) (\d+) (\d+) ' +
                  TOK + ' ' + Q + ' ' + Q + ' ' + Q + ' ' + Q + ' ' + Q + ' ' + TOK + ' ' +
                  TOK + ' ' + TOK + ' ' + TOK + ' ' + TOK + ' ' + TOK + '$')
NUMERIC = {"response_code", "bytes_received", "bytes_sent", "duration"}


def text_entries(lines):
    for line in lines:
        if not line.startswith("["):
            continue
        m = TEXT.match(line)
        if not m:
            raise SystemExit("access line does not parse: %r" % line)
        yield dict(zip(KEYS, m.groups()))


def json_entries(lines):
    for line in lines:
        if not line.startswith('{"authority"'):
            continue
        d = json.loads(line)
        if sorted(d) != sorted(KEYS):
            raise SystemExit("keys differ from Istio's: %r" % sorted(set(d) ^ set(KEYS)))
        for k in NUMERIC:
            if not isinstance(d[k], int):
                raise SystemExit("%s is not a number: %r" % (k, line))
        # Envoy's JSON: absent values are null, never "-" (response_flags is a string "-").
        yield {k: ("-" if v is None else str(v)) for k, v in d.items()}


def main():
    mode, want = sys.argv[1], dict(a.split("=", 1) for a in sys.argv[2:])
    lines = sys.stdin.read().splitlines()
    entries = text_entries(lines) if mode == "text" else json_entries(lines)
    print(sum(1 for e in entries if all(e[k] == v for k, v in want.items())))


main()
