#!/usr/bin/python3
"""report.py RESULTS.txt OUT.md - turns bench/run.sh's raw numbers into the summary table.

RESULTS.txt holds one "key value" line per raw measurement (bytes, seconds, CPU clock ticks,
kB of RSS, ...); every derived number (ratios, per-GB, per-request, per-tunnel) is computed
here so the raw file stays the single source of truth. Prints the table and writes OUT.md.
Nothing is asserted: goals are reported as met / not met.
"""
import os
import sys

IMPLS = ["direct", "amesh", "haproxy", "stunnel"]
TICK = float(os.sysconf("SC_CLK_TCK"))


def load(path):
    r = {}
    with open(path) as f:
        for line in f:
            line = line.rstrip("\n")
            if not line:
                continue
            k, _, v = line.partition(" ")
            r[k] = v
    return r


R = load(sys.argv[1])
OUT = sys.argv[2]


def num(key):
    v = R.get(key)
    if v is None:
        return None
    try:
        return float(v)
    except ValueError:
        return None


def div(a, b):
    return None if a is None or b in (None, 0) else a / b


# ------------------------------------------------------------------ derived metrics
M = {i: {} for i in IMPLS}
for i in IMPLS:
    m = M[i]
    for key in ("bulk1", "bulk16"):
        b, s = num(f"{key}.{i}.bytes"), num(f"{key}.{i}.secs")
        gb = div(b, 1e9)
        m[key] = div(b * 8 if b is not None else None, s * 1e9 if s else None)
        cc, cs, cm = (num(f"{key}.{i}.cpu_{x}") for x in "csm")
        if i != "direct":
            m[key + "_cpu_c"] = div(div(cc, TICK), gb)
            m[key + "_cpu_s"] = div(div(cs, TICK), gb)
            m[key + "_cpu"] = div(div(cc + cs, TICK), gb) if cc is not None and cs is not None else None
        m[key + "_fair"] = div(num(f"{key}.{i}.stream_max"), num(f"{key}.{i}.stream_min"))
    for key in ("rps", "cps"):
        req, dur = num(f"{key}.{i}.requests"), num(f"{key}.{i}.duration_us")
        m[key] = div(req, div(dur, 1e6))
        for p in ("p50", "p90", "p99"):
            m[f"{key}_{p}"] = num(f"{key}.{i}.{p}")
        errs = [num(f"{key}.{i}.err_{e}") for e in ("connect", "read", "write", "status", "timeout")]
        m[key + "_err"] = sum(e for e in errs if e is not None) if req is not None else None
        cc, cs, cm = (num(f"{key}.{i}.cpu_{x}") for x in "csm")
        if i != "direct" and cc is not None and cs is not None:
            m[key + "_cpu"] = div((cc + cs) / TICK * 1e6, req)
            m[key + "_cpu_c"] = div(cc / TICK * 1e6, req)
            m[key + "_cpu_s"] = div(cs / TICK * 1e6, req)
    for p in ("p50", "p90", "p99", "p999", "max"):
        m["rtt_" + p] = num(f"rtt.{i}.{p}")
        m["pp_" + p] = num(f"pp.{i}.{p}")
        m["rtt1_" + p] = num(f"rtt1.{i}.{p}")
    for side in "cs":
        m["idle_" + side] = num(f"rss_idle.{i}.{side}")
        pre = num(f"mem.{i}.pre_{side}")
        m["rss1_" + side] = num(f"mem.{i}.rss1_{side}")
        m["rss2_" + side] = num(f"mem.{i}.rss2_{side}")
        m["after_" + side] = num(f"mem.{i}.after_{side}")
        h1, h2 = num(f"mem.{i}.held1"), num(f"mem.{i}.held2")
        m["per1_" + side] = div((m["rss1_" + side] - pre) * 1024 if m["rss1_" + side] is not None and pre is not None else None, h1)
        m["per2_" + side] = div((m["rss2_" + side] - pre) * 1024 if m["rss2_" + side] is not None and pre is not None else None, h2)
    m["held1"], m["held2"], m["n_hi"] = num(f"mem.{i}.held1"), num(f"mem.{i}.held2"), num(f"mem.{i}.n_hi")

NCPU = num("meta.ncpu") or os.cpu_count() or 1


def others(key):
    """CPU seconds used outside the benchmark's cgroup during |key|, a lower bound: the machine's
    user+system time minus the cgroup's usage (all interrupt/softirq time is counted as ours,
    and the cgroup's usage includes the softirq work its tasks did)."""
    b, u = num(key + ".cpu_b"), num(key + ".cpu_u")
    if b is None or u is None:
        return None
    return max(0.0, u / TICK - b / 1e9)


def whole(key):
    """CPU seconds of the benchmark during |key|: the machine's busy time (user, system, irq,
    softirq) minus others' (see above); the machine's busy time if there is no cgroup."""
    m = num(key + ".cpu_m")
    if m is None:
        return None
    o = others(key) or 0.0
    return m / TICK - o


def foreign(key):
    """Share of the box used by processes outside the benchmark during |key| (0..1)."""
    o, w = others(key), num(key + ".wall")
    return None if o is None or not w else o / (w * NCPU)


for i in IMPLS:
    m = M[i]
    b = num(f"bulk1.{i}.bytes")
    m["bulk1_wcpu"] = div(whole(f"bulk1.{i}"), div(b, 1e9))
    req = num(f"rps.{i}.requests")
    w = whole(f"rps.{i}")
    m["rps_wcpu"] = div(None if w is None else w * 1e6, req)
    for k in ("bulk1", "rps", "cps"):
        cm, w = num(f"{k}.{i}.cpu_m"), num(f"{k}.{i}.wall")
        m[k + "_busy"] = None if cm is None or not w else 100 * cm / TICK / (w * NCPU)
    shares = [foreign(f"{k}.{i}") for k in ("bulk1", "bulk16", "rps", "cps", "rtt", "pp")]
    shares = [x for x in shares if x is not None]
    m["foreign"] = max(shares) * 100 if shares else None

D = M["direct"]
present = [i for i in IMPLS if any(k.split(".")[1:2] == [i] for k in R) and f"broken.{i}" not in R]
shown = [i for i in IMPLS if any(k.split(".")[1:2] == [i] for k in R)]


# ------------------------------------------------------------------ formatting
def f(v, fmt="{:.2f}"):
    return "n/a" if v is None else fmt.format(v)


def ratio_cell(i, key, fmt):
    v = M[i].get(key)
    if v is None:
        return "n/a"
    if i == "direct":
        return fmt.format(v)
    r = div(v, D.get(key))
    return fmt.format(v) + ("" if r is None else f" ({r:.2f}x)")


def added_cell(i, key):
    v = M[i].get(key)
    if v is None:
        return "n/a"
    if i == "direct" or D.get(key) is None:
        return f"{v:.0f}"
    return f"{v:.0f} ({v - D[key]:+.0f})"


def pair(i, a, b, fmt="{:.1f}", scale=1.0):
    x, y = M[i].get(a), M[i].get(b)
    if x is None and y is None:
        return "—" if i == "direct" else "n/a"
    return f"{f(None if x is None else x * scale, fmt)} / {f(None if y is None else y * scale, fmt)}"


def plain(i, key, fmt):
    v = M[i].get(key)
    if v is None:
        return "—" if i == "direct" else "n/a"
    return fmt.format(v)


def hold_label(n):
    return f"{int(n):,}" if n else "N"


n_hi_amesh = M["amesh"].get("n_hi") or 10000
rows = []


def row(label, fn):
    rows.append((label, [fn(i) for i in shown]))


row("Bulk, 1 tunnel, Gbit/s (x direct)", lambda i: ratio_cell(i, "bulk1", "{:.2f}"))
row("Bulk, 16 parallel tunnels, Gbit/s", lambda i: ratio_cell(i, "bulk16", "{:.2f}"))
row("  16 tunnels: fastest/slowest stream", lambda i: plain(i, "bulk16_fair", "{:.2f}"))
row("1 KB req/s, 16 persistent conns", lambda i: ratio_cell(i, "rps", "{:,.0f}"))
row("  p50 latency under load, us (+direct)", lambda i: added_cell(i, "rps_p50"))
row("  p99 latency under load, us (+direct)", lambda i: added_cell(i, "rps_p99"))
row("1 KB round trip at 2000/s, p50 us", lambda i: added_cell(i, "rtt_p50"))
row("1 KB round trip at 2000/s, p99 us", lambda i: added_cell(i, "rtt_p99"))
row("  same, all on one CPU, p50 us", lambda i: added_cell(i, "rtt1_p50"))
row("  same, all on one CPU, p99 us", lambda i: added_cell(i, "rtt1_p99"))
row("1 KB round trip back-to-back, p50 us", lambda i: added_cell(i, "pp_p50"))
row("1 KB round trip back-to-back, p99 us", lambda i: added_cell(i, "pp_p99"))
row("New tunnels/s (1 request each)", lambda i: ratio_cell(i, "cps", "{:,.0f}"))
row("  errors during the new-tunnel run", lambda i: plain(i, "cps_err", "{:.0f}"))
row("Proxy CPU s/GB, 1 tunnel, both sides", lambda i: plain(i, "bulk1_cpu", "{:.2f}"))
row("  client / server side", lambda i: pair(i, "bulk1_cpu_c", "bulk1_cpu_s", "{:.2f}"))
row("Proxy CPU s/GB, 16 tunnels, both sides", lambda i: plain(i, "bulk16_cpu", "{:.2f}"))
row("Proxy CPU us/request, both sides", lambda i: plain(i, "rps_cpu", "{:.1f}"))
row("  client / server side", lambda i: pair(i, "rps_cpu_c", "rps_cpu_s", "{:.1f}"))
row("Proxy CPU us/new tunnel, both sides", lambda i: plain(i, "cps_cpu", "{:.1f}"))
WHAT = "bench" if R.get("meta.cgroup") == "yes" else "whole machine"
row(f"Total CPU s/GB, 1 tunnel ({WHAT})", lambda i: ratio_cell(i, "bulk1_wcpu", "{:.2f}"))
row(f"Total CPU us/request ({WHAT})", lambda i: ratio_cell(i, "rps_wcpu", "{:.1f}"))
row("Box CPU busy: 1-tunnel bulk / req/s / new tunnels, %",
    lambda i: "n/a" if M[i].get("bulk1_busy") is None and M[i].get("rps_busy") is None else
    " / ".join(f(M[i].get(k + "_busy"), "{:.0f}") for k in ("bulk1", "rps", "cps")))
row("RSS idle, MB client / server", lambda i: pair(i, "idle_c", "idle_s", "{:.1f}", 1 / 1024))
row("RSS with 1,000 tunnels, MB c / s", lambda i: pair(i, "rss1_c", "rss1_s", "{:.1f}", 1 / 1024))
row(f"RSS with {hold_label(n_hi_amesh)} tunnels, MB c / s",
    lambda i: pair(i, "rss2_c", "rss2_s", "{:.1f}", 1 / 1024) + (
        f" @{hold_label(M[i]['held2'])}" if M[i].get("held2") and M[i]["held2"] != n_hi_amesh else ""))
row("KB per tunnel @1,000, c / s", lambda i: pair(i, "per1_c", "per1_s", "{:.1f}", 1 / 1024))
row(f"KB per tunnel @{hold_label(n_hi_amesh)}, c / s", lambda i: pair(i, "per2_c", "per2_s", "{:.1f}", 1 / 1024))
row("RSS after closing them, MB c / s", lambda i: pair(i, "after_c", "after_s", "{:.1f}", 1 / 1024))
if R.get("meta.cgroup") == "yes":
    row("Others' CPU in these runs, max % of box (>=)", lambda i: plain(i, "foreign", "{:.0f}"))


# ------------------------------------------------------------------ goals
A, H = M["amesh"], M["haproxy"]
goals = []


def goal(name, value_text, ok):
    goals.append((name, value_text, "n/a" if ok is None else ("MET" if ok else "NOT MET")))


r1 = div(A.get("bulk1"), D.get("bulk1"))
goal("Single-stream throughput >= 0.45x direct", f(r1, "{:.2f}x"), None if r1 is None else r1 >= 0.45)
rh = div(A.get("bulk1"), H.get("bulk1"))
goal("Single-stream throughput above the HAProxy pair", f(rh, "{:.2f}x HAProxy"), None if rh is None else rh > 1.0)
rr = div(A.get("rps"), H.get("rps"))
goal("1 KB requests/s >= 1.3x the HAProxy pair", f(rr, "{:.2f}x HAProxy"), None if rr is None else rr >= 1.3)
for p, lim in (("p50", 25), ("p99", 100)):
    a, d = A.get("rtt_" + p), D.get("rtt_" + p)
    add = None if a is None or d is None else a - d
    goal(f"Added {p} latency <= +{lim} us (1 KB at 2000/s)", f(add, "{:+.0f} us"), None if add is None else add <= lim)
pc, ps = A.get("per2_c"), A.get("per2_s")
worst = None if pc is None or ps is None else max(pc, ps)
goal(f"<= 4 KB per idle tunnel per side (@{hold_label(A.get('held2'))})",
     "n/a" if worst is None else f"{pc / 1024:.1f} / {ps / 1024:.1f} KB", None if worst is None else worst <= 4096)

# Informative: the same latency back-to-back and under saturation.
info = []
for what, key in (("at 2000/s with everything on one CPU", "rtt1_"),
                  ("back-to-back on one connection", "pp_"), ("under saturation (wrk -c16)", "rps_")):
    vals = []
    for p in ("p50", "p99"):
        a, d = A.get(key + p), D.get(key + p)
        if a is not None and d is not None:
            vals.append(f"{p} {a - d:+.0f} us")
    if vals:
        info.append(f"amesh added latency {what}: " + ", ".join(vals))


# ------------------------------------------------------------------ render
def meta(k):
    return R.get("meta." + k, "?")


head = ["Metric"] + shown
width = [max(len(head[0]), max(len(r[0]) for r in rows))] + [
    max(len(head[j + 1]), max(len(r[1][j]) for r in rows)) for j in range(len(shown))]


def text_line(cells):
    return "  ".join(c.ljust(width[k]) if k == 0 else c.rjust(width[k]) for k, c in enumerate(cells))


broken = [(i, R[f"broken.{i}"]) for i in IMPLS if f"broken.{i}" in R]
lines = []
lines.append(f"amesh bench  {meta('date')}  git {meta('git')}  kernel {meta('kernel')}")
lines.append(f"CPU {meta('cpu')}")
lines.append(f"{meta('openssl')}; {meta('peers')}")
lines.append(f"{meta('secs')} s per measurement, one run each (expect +-10-30 % run-to-run noise on 2 vCPU); "
             f"machine busy before the run {meta('busy_start')} %, after {meta('busy_end')} %; run took {meta('elapsed')} s")
lines.append("")
lines.append(text_line(head))
lines.append(text_line(["-" * w for w in width]))
for label, cells in rows:
    lines.append(text_line([label] + cells))
lines.append("")
lines.append("Goals (amesh):")
gw = max(len(g[0]) for g in goals)
for name, val, st in goals:
    lines.append(f"  {name.ljust(gw)}  {val:>22}  {st}")
for s in info:
    lines.append(f"  (info) {s}")
for i, why in broken:
    lines.append(f"  WARNING: {i} broken: {why}")
disturbed = [i for i in shown if (M[i].get("foreign") or 0) > 10]
if disturbed:
    lines.append(f"  WARNING: other processes used >10 % of the machine during runs of {', '.join(disturbed)}: "
                 "those numbers are disturbed; rerun on a quiet machine.")
if meta("nofile") != "?" and A.get("n_hi") and H.get("n_hi") and H["n_hi"] < A["n_hi"]:
    lines.append(f"  Note: HAProxy/stunnel hold 2 sockets per tunnel; with RLIMIT_NOFILE {meta('nofile')} (hard) "
                 f"they are measured at {hold_label(H['n_hi'])} tunnels instead of {hold_label(A['n_hi'])}.")
text = "\n".join(lines)
print(text)

md = []
md.append("# amesh benchmark: latest run\n")
md.append(f"- date: {meta('date')}, git {meta('git')}, kernel {meta('kernel')}")
md.append(f"- CPU: {meta('cpu')}")
md.append(f"- {meta('openssl')}; {meta('peers')}")
md.append(f"- {meta('secs')} s per measurement, single run each (expect ±10–30 % noise on 2 vCPU); "
          f"machine busy before the run {meta('busy_start')} %, after {meta('busy_end')} %; the run took {meta('elapsed')} s")
md.append("- method and definitions: `bench/README.md`; raw numbers: `bench/results/latest.txt`\n")
md.append("| " + " | ".join(head) + " |")
md.append("|" + "|".join(["---"] + ["---:"] * len(shown)) + "|")
for label, cells in rows:
    md.append("| " + " | ".join([label.strip()] + cells) + " |")
md.append("\n## Goals (amesh)\n")
md.append("| Goal | Measured | Status |\n|---|---:|---|")
for name, val, st in goals:
    md.append(f"| {name} | {val} | {st} |")
md.append("")
for s in info:
    md.append(f"- (info) {s}")
for i, why in broken:
    md.append(f"- WARNING: {i} broken: {why}")
if disturbed:
    md.append(f"- WARNING: other processes used >10 % of the machine during runs of {', '.join(disturbed)}: "
              "those numbers are disturbed; rerun on a quiet machine.")
if A.get("n_hi") and H.get("n_hi") and H["n_hi"] < A["n_hi"]:
    md.append(f"- HAProxy/stunnel hold 2 sockets per tunnel; with RLIMIT_NOFILE {meta('nofile')} (hard) they are "
              f"measured at {hold_label(H['n_hi'])} tunnels instead of {hold_label(A['n_hi'])}.")
with open(OUT, "w") as fh:
    fh.write("\n".join(md) + "\n")
