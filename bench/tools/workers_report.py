#!/usr/bin/python3
"""workers_report.py RESULTS.txt OUT.md [--append] - tables of bench/workers.sh.

Reads the "wk.*", "fair.*" and "aff.*" lines bench/workers.sh writes (steps workers, fair,
affinity of bench/run.sh). Every ratio is taken within one round (configurations interleaved,
same run), then the median of the rounds is shown with their min-max. Nothing is asserted: the
issue 12 goals are printed as MET / NOT MET.
"""
import json
import os
import statistics
import sys

args = [a for a in sys.argv[1:] if not a.startswith("--")]
APPEND = "--append" in sys.argv[1:]
if len(args) != 2:
    sys.exit("usage: workers_report.py RESULTS.txt OUT.md [--append]")
TICK = float(os.sysconf("SC_CLK_TCK"))

R = {}
with open(args[0]) as fh:
    for line in fh:
        k, _, v = line.rstrip("\n").partition(" ")
        R[k] = v


def num(key):
    try:
        return float(R[key])
    except (KeyError, ValueError):
        return None


def rounds(prefix):
    """Round numbers present under |prefix| (e.g. "wk.bulk8.w1" -> [1, 2])."""
    out = set()
    for k in R:
        if k.startswith(prefix + ".r"):
            r = k[len(prefix) + 2:].split(".", 1)[0]
            if r.isdigit():
                out.add(int(r))
    return sorted(out)


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def spread(xs, fmt, unit=""):
    """Median of |xs| and, with more than one, their min-max: "12 (10-15) unit"."""
    xs = [x for x in xs if x is not None]
    if not xs:
        return "n/a"
    m = fmt.format(statistics.median(xs))
    if len(xs) > 1:
        m += f" ({fmt.format(min(xs))}-{fmt.format(max(xs))})"
    return m + (" " + unit if unit else "")


def others(key):
    """Share of the box (%) used outside the benchmark's cgroup during |key| (see report.py)."""
    b, u, w = num(key + ".cpu_b"), num(key + ".cpu_u"), num(key + ".wall")
    if None in (b, u) or not w:
        return None
    return max(0.0, u / TICK - b / 1e9) / (w * (num("meta.ncpu") or 1)) * 100


def div(a, b):
    return None if a is None or b in (None, 0) else a / b


CFG_NAME = {"base": "baseline binary (BENCH_BASE_BIN)", "dflt": "default (no flag)", "w1": "--workers 1", "w2": "--workers 2",
            "w1a": "--workers 1 --worker-affinity", "w2a": "--workers 2 --worker-affinity",
            "direct": "direct (no proxy)"}
lines, md, goals = [], [], []


def goal(name, value, ok):
    goals.append((name, value, "n/a" if ok is None else ("MET" if ok else "NOT MET")))


def table(title, head, rows, note=None):
    if not rows:
        return
    width = [max(len(str(r[j])) for r in [head] + rows) for j in range(len(head))]
    lines.append("")
    lines.append(title)
    lines.append("  ".join(str(c).ljust(width[j]) if j == 0 else str(c).rjust(width[j]) for j, c in enumerate(head)))
    lines.append("  ".join("-" * w for w in width))
    for r in rows:
        lines.append("  ".join(str(c).ljust(width[j]) if j == 0 else str(c).rjust(width[j]) for j, c in enumerate(r)))
    md.append(f"\n## {title}\n")
    md.append("| " + " | ".join(head) + " |")
    md.append("|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|")
    for r in rows:
        md.append("| " + " | ".join(str(c) for c in r) + " |")
    if note:
        lines.append(note)
        md.append("\n" + note)


# ------------------------------------------------------------------ workers
def bulk8(c, r):
    k = f"wk.bulk8.{c}.r{r}.amesh"
    b, s = num(k + ".bytes"), num(k + ".secs")
    cc, cs = num(k + ".cpu_c"), num(k + ".cpu_s")
    gbps = div(b * 8 if b else None, s * 1e9 if s else None)
    cpu = div((cc + cs) / TICK, b / 1e9) if None not in (cc, cs, b) and b else None
    busy = div(num(k + ".cpu_m"), TICK * (num(k + ".wall") or 0) * (num("meta.ncpu") or 1))
    whole = div(div(num(k + ".cpu_b"), 1e9), div(b, 1e9))  # the bench cgroup: load, origin, proxies
    return gbps, cpu, None if busy is None else busy * 100, whole


def rps16(c, r):
    k = f"wk.rps.{c}.r{r}.amesh"
    req, dur = num(k + ".requests"), num(k + ".duration_us")
    cc, cs = num(k + ".cpu_c"), num(k + ".cpu_s")
    rps = div(req, div(dur, 1e6))
    cpu = div((cc + cs) / TICK * 1e6, req) if None not in (cc, cs) else None
    return rps, cpu, num(k + ".p99")


wr = rounds("wk.bulk8.w1")
if num("wk.supported") == 0 and any(k.startswith("wk.") for k in R):
    lines.append("")
    lines.append("Workers: this ztunnel has no --workers; the workers table is empty.")
    md.append("\n## Workers\n\nThis ztunnel has no `--workers`: nothing to compare.")
if wr:
    rows = []
    per = {c: {"b": [], "bc": [], "bw": [], "busy": [], "q": [], "qc": [], "q99": []} for c in ("w1", "w2")}
    for c in ("w1", "w2"):
        for r in wr:
            g, cpu, busy, whole = bulk8(c, r)
            q, qc, q99 = rps16(c, r)
            for n, v in (("b", g), ("bc", cpu), ("bw", whole), ("busy", busy), ("q", q), ("qc", qc), ("q99", q99)):
                per[c][n].append(v)
    rb = [div(bulk8("w2", r)[0], bulk8("w1", r)[0]) for r in wr]
    rq = [div(rps16("w2", r)[0], rps16("w1", r)[0]) for r in wr]
    for c in ("w1", "w2"):
        p = per[c]
        oth = [others(f"wk.{k}.{c}.r{r}.amesh") for k in ("bulk8", "rps") for r in wr]
        rows.append([CFG_NAME[c], spread(p["b"], "{:.2f}"), spread(p["bc"], "{:.2f}"), spread(p["bw"], "{:.2f}"),
                     spread(p["busy"], "{:.0f}"),
                     spread(p["q"], "{:,.0f}"), spread(p["qc"], "{:.1f}"), spread(p["q99"], "{:.0f}"),
                     spread(oth, "{:.0f}")])
    rows.append(["ratio 2 / 1 workers (per round)", spread(rb, "{:.2f}x"), "", "", "", spread(rq, "{:.2f}x"), "", "", ""])
    table(f"Workers: 8 streams and 1 KB req/s, median of {len(wr)} interleaved rounds (min-max)",
          ["ztunnel", "8 streams Gbit/s", "proxies core-s/GB", "bench core-s/GB", "box busy %", "1 KB req/s (16 conns)",
           "proxies us/req", "wrk p99 us", "others' CPU %"], rows,
          "Proxies' CPU = utime+stime of both ztunnel processes (all threads) during the run; bench = the "
          "benchmark's cgroup (iperf3 at both ends, both ztunnels, the kernel work charged to them).")
    # Per thread: the CPU each ztunnel thread used during the 8-stream run (s), and what
    # /debug/workers showed halfway (connections per worker, hand-offs so far).
    trows = []
    for c in ("w1", "w2"):
        for r in wr:
            cells = [f"{CFG_NAME[c]}, round {r}"]
            for side in "cs":
                t = R.get(f"wk.bulk8.{c}.r{r}.threads_{side}")
                ts = [int(x) / TICK for x in t.split()] if t else []
                ts = [x for x in ts if x >= 0.05] or ts[:1]
                cells.append(" / ".join(f"{x:.1f}" for x in sorted(ts, reverse=True)) if ts else "n/a")
                dbg = R.get(f"wk.bulk8.{c}.r{r}.debug_{side}")
                try:
                    ws = json.loads(dbg) if dbg else []
                    cells.append(" / ".join(f"{w.get('connections', '?')}" for w in ws) +
                                 f" (handed off {sum(w.get('handed_off', 0) for w in ws)})")
                except (ValueError, AttributeError):
                    cells.append("n/a")
            trows.append(cells)
    table("Workers: where the 8-stream run's CPU went (per ztunnel thread, s) and connections per worker",
          ["run", "client threads CPU s", "client conns per worker", "server threads CPU s", "server conns per worker"],
          trows, "Threads that used >= 0.05 s, busiest first; connections from /debug/workers halfway through.")
    m = med(rb)
    goal("8 streams with --workers 2 >= 1.6x --workers 1", "n/a" if m is None else f"{m:.2f}x", None if m is None else m >= 1.6)

# ------------------------------------------------------------------ fairness
FLOODS = [("none", "alone"), ("bulk", "+{bp} bulk streams"), ("conns", "+{nc} busy conns"),
          ("storm", "+storm, {ns} at a time")]
fair_cfgs = [c for c in ("direct", "base", "dflt", "w1", "w2", "w1a", "w2a") if rounds(f"fair.{c}.none")]
if fair_cfgs:
    rate, bp, nc, ns = (R.get(f"fair.{k}", "?") for k in ("rate", "bulk_p", "conns", "storm"))
    rows = []
    worst = {}
    for c in fair_cfgs:
        rs = rounds(f"fair.{c}.none")
        for f, label in FLOODS:
            def v(x):
                return [num(f"fair.{c}.{f}.r{r}.{x}") for r in rs]
            ratio = [div(num(f"fair.{c}.{f}.r{r}.p99"), num(f"fair.{c}.none.r{r}.p99")) for r in rs]
            sratio = [div(num(f"fair.{c}.{f}.r{r}.sent_p99"), num(f"fair.{c}.none.r{r}.sent_p99")) for r in rs]
            if f != "none":
                worst[(c, f)] = med(ratio)
            flood = {"none": "", "bulk": spread(v("flood_gbps"), "{:.2f}", "Gbit/s"),
                     "conns": spread(v("flood_per_s"), "{:,.0f}", "rt/s"),
                     "storm": spread(v("flood_per_s"), "{:,.0f}", "conn/s")}[f]
            rows.append([CFG_NAME.get(c, c) if f == "none" else "",
                         label.format(bp=bp, nc=nc, ns=ns), spread(v("per_s"), "{:.0f}"),
                         spread(v("p50"), "{:,.0f}"), spread(v("p99"), "{:,.0f}"),
                         "" if f == "none" else spread(ratio, "{:.1f}x"), spread(v("sent_p99"), "{:,.0f}"),
                         "" if f == "none" else spread(sratio, "{:.1f}x"), flood,
                         spread([others(f"fair.{c}.{f}.r{r}") for r in rs], "{:.0f}")])
    table(f"Fairness: a victim pod's 1 KB round trips at {rate}/s with a neighbour pod flooding, "
          f"median of {len(rounds('fair.' + fair_cfgs[0] + '.none'))} rounds (min-max)",
          ["path / ztunnel", "neighbour", "victim msgs/s", "p50 us", "p99 us", "p99 / alone",
           "p99 from send, us", "/ alone", "flood achieved", "others' CPU %"], rows,
          f"Victim: one connection, a message due every 1/{rate} s, latency from when it was due (a stall "
          "counts for every message it delays); \"from send\" leaves out the wait for earlier messages. "
          "The flood pod shares node-1, both ztunnels and the 2 CPUs, not the origin processes.")
    for c in fair_cfgs:
        if c == "direct":
            continue
        vals = [(f, worst[(c, f)]) for f, _ in FLOODS if worst.get((c, f)) is not None]
        if not vals:
            continue
        f, w = max(vals, key=lambda x: x[1])
        goal(f"Fairness, {CFG_NAME.get(c, c)}: victim p99 with a flood <= 2x alone",
             f"{w:.1f}x (worst: {f})", w <= 2.0)

# ------------------------------------------------------------------ affinity
aff_cfgs = [c for c in ("base", "dflt", "w1", "w1a", "w2", "w2a") if rounds(f"aff.{c}")]
if aff_cfgs:
    rows = []
    dr = rounds("aff.direct")
    rows.append([CFG_NAME["direct"], spread([num(f"aff.direct.r{r}.direct.p50") for r in dr], "{:.0f}"),
                 spread([num(f"aff.direct.r{r}.direct.p99") for r in dr], "{:.0f}"), "", ""])
    for c in aff_cfgs:
        rs = rounds(f"aff.{c}")
        p50 = [num(f"aff.{c}.r{r}.amesh.p50") for r in rs]
        p99 = [num(f"aff.{c}.r{r}.amesh.p99") for r in rs]
        a50 = [None if num(f"aff.direct.r{r}.direct.p50") is None or p is None else p - num(f"aff.direct.r{r}.direct.p50")
               for r, p in zip(rs, p50)]
        a99 = [None if num(f"aff.direct.r{r}.direct.p99") is None or p is None else p - num(f"aff.direct.r{r}.direct.p99")
               for r, p in zip(rs, p99)]
        rows.append([CFG_NAME[c], spread(p50, "{:.0f}"), spread(p99, "{:.0f}"), spread(a50, "{:+.0f}"), spread(a99, "{:+.0f}")])
    table("Affinity: 1 KB round trips paced at 2000/s, us (median of rounds, min-max)",
          ["path / ztunnel", "p50", "p99", "added p50", "added p99"], rows,
          "Added = amesh minus the direct path of the same round.")

if not lines:
    sys.exit(0)
if goals:
    lines.append("")
    lines.append("Goals (workers, fairness):")
    gw = max(len(g[0]) for g in goals)
    for name, val, st in goals:
        lines.append(f"  {name.ljust(gw)}  {val:>22}  {st}")
    md.append("\n## Goals (workers, fairness)\n")
    md.append("| Goal | Measured | Status |\n|---|---:|---|")
    for name, val, st in goals:
        md.append(f"| {name} | {val} | {st} |")
print("\n".join(lines))
with open(args[1], "a" if APPEND else "w") as fh:
    fh.write("\n".join(md) + "\n")
