#!/usr/bin/python3
"""wp_report.py RESULTS.txt OUT.md [--append] - the waypoint table of bench/wp.sh.

RESULTS.txt holds "key value" lines; the waypoint ones start with "wp." (bench/wp.sh writes
them, alone or merged into bench/run.sh's results). Per repetition it derives req/s, CPU per
request of each process, the waypoint's vCPU at the paced rate and the latency added over the
L4 path; the table shows the median of the repetitions and their min-max. Every ratio is taken
within one repetition (same run, paths interleaved), then its median. Nothing is asserted: the
issue 10 section 6 goals are printed as MET / NOT MET.
"""
import statistics
import sys

args = [a for a in sys.argv[1:] if not a.startswith("--")]
APPEND = "--append" in sys.argv[1:]
if len(args) != 2:
    sys.exit("usage: wp_report.py RESULTS.txt OUT.md [--append]")

R = {}
with open(args[0]) as fh:
    for line in fh:
        k, _, v = line.rstrip("\n").partition(" ")
        if k.startswith("wp.") or k == "broken.wp":
            R[k[3:] if k.startswith("wp.") else k] = v


def num(key):
    try:
        return float(R[key])
    except (KeyError, ValueError):
        return None


def meta(k, default="?"):
    return R.get("meta." + k, default)


REPS = int(num("meta.reps") or 0)
PATHS = ["l4", "wp", "haproxy"]
PROCS = {"l4": ["zt1", "zt2"], "wp": ["zt1", "wp", "zt2"], "haproxy": ["hc", "hw", "hs"]}
NAMES = {"zt1": "client ztunnel", "zt2": "server ztunnel", "wp": "waypoint",
         "hc": "haproxy client", "hw": "haproxy waypoint", "hs": "haproxy server",
         "nginx": "nginx", "load": "load generator"}
NCPU = num("meta.ncpu") or 2
TCK = num("meta.clk_tck") or 100
out = []


def emit(s=""):
    out.append(s)


if "broken.wp" in R or not REPS:
    emit(f"\nWARNING: waypoint step: {R.get('broken.wp', 'no results')}")


def per_rep(fn):
    """fn(rep) -> value or None, over the repetitions; the Nones dropped."""
    vals = [fn(r) for r in range(1, REPS + 1)]
    return [v for v in vals if v is not None]


def med(vals):
    return statistics.median(vals) if vals else None


def fmt(vals, spec="{:.1f}", unit=""):
    if not vals:
        return "-"
    m = spec.format(med(vals)) + unit
    if len(vals) > 1:
        m += f" ({spec.format(min(vals))}-{spec.format(max(vals))})"
    return m


def sat_rps(p, r):
    n, d = num(f"sat.{p}.{r}.requests"), num(f"sat.{p}.{r}.duration_us")
    return n / (d / 1e6) if n and d else None


def sat_us(p, r, role):
    n, c = num(f"sat.{p}.{r}.requests"), num(f"sat.{p}.{r}.cpu.{role}")
    return c / n / 1000 if n and c is not None else None


def sat_path_us(p, r):
    v = [sat_us(p, r, x) for x in PROCS[p]]
    return sum(v) if None not in v else None


def paced(p, r, k):
    return num(f"paced.{p}.{r}.{k}")


def vcpu(p, r, role, kind="paced"):
    c, w = num(f"{kind}.{p}.{r}.cpu.{role}"), num(f"{kind}.{p}.{r}.wall")
    return c / 1e9 / w if c is not None and w else None


def vsum(p, r, kind="paced"):
    v = [vcpu(p, r, x, kind) for x in PROCS[p]]
    return sum(v) if None not in v else None


def others(key):
    """Share of the machine's CPU not used by the bench's processes during a run."""
    m, w = num(f"{key}.machine_ticks"), num(f"{key}.wall")
    if m is None or not w:
        return None
    ours = sum(num(f"{key}.cpu.{x}") or 0 for x in NAMES) / 1e9
    return max(0.0, (m / TCK - ours) / (w * NCPU))


if REPS:
    emit(f"\n## Waypoint: 1 KB GET, client ztunnel -> waypoint -> server ztunnel -> nginx "
         f"({meta('date')}, git {meta('git')})\n")
    emit(f"{REPS} repetitions, paths interleaved; median (min-max). Saturation: wrk -t1 -c16 "
         f"{meta('secs')} s. Paced: {meta('rate')} GET/s on one kept-alive connection, "
         f"{meta('paced_secs')} s. CPU from one cgroup per process. Peers: {meta('peers')}.\n")
    emit("| | L4 (ztunnel pair) | waypoint path | HAProxy chain (h2+mTLS) |")
    emit("|---|---|---|---|")
    emit("| req/s at saturation | " + " | ".join(
        fmt(per_rep(lambda r, p=p: sat_rps(p, r)), "{:.0f}") for p in PATHS) + " |")
    emit("| latency p50 / p99 at saturation, us | " + " | ".join(
        fmt(per_rep(lambda r, p=p: num(f"sat.{p}.{r}.p50")), "{:.0f}") + " / " +
        fmt(per_rep(lambda r, p=p: num(f"sat.{p}.{r}.p99")), "{:.0f}") for p in PATHS) + " |")
    emit("| proxies' CPU us/request (sum) | " + " | ".join(
        fmt(per_rep(lambda r, p=p: sat_path_us(p, r))) for p in PATHS) + " |")
    emit("| ... client side / L7 hop / server side | " + " | ".join(
        " / ".join(fmt(per_rep(lambda r, p=p, x=x: sat_us(p, r, x))) for x in PROCS[p])
        for p in PATHS) + " |")
    emit("| nginx + load generator us/request | " + " | ".join(
        fmt(per_rep(lambda r, p=p: sat_us(p, r, "nginx"))) + " + " +
        fmt(per_rep(lambda r, p=p: sat_us(p, r, "load"))) for p in PATHS) + " |")
    emit("| others' CPU during saturation runs (max) | " + " | ".join(
        (lambda v: f"{100 * max(v):.0f} %" if v else "-")(per_rep(lambda r, p=p: others(f"sat.{p}.{r}")))
        for p in PATHS) + " |")
    emit(f"| paced {meta('rate')}/s: latency p50 / p99, us | " + " | ".join(
        fmt(per_rep(lambda r, p=p: paced(p, r, "p50")), "{:.0f}") + " / " +
        fmt(per_rep(lambda r, p=p: paced(p, r, "p99")), "{:.0f}") for p in PATHS) + " |")
    emit("| others' CPU during paced runs (max) | " + " | ".join(
        (lambda v: f"{100 * max(v):.0f} %" if v else "-")(per_rep(lambda r, p=p: others(f"paced.{p}.{r}")))
        for p in PATHS) + " |")
    emit(f"| paced {meta('rate')}/s: vCPU of the L7 hop | - | " +
         fmt(per_rep(lambda r: vcpu("wp", r, "wp")), "{:.4f}") + " | " +
         fmt(per_rep(lambda r: vcpu("haproxy", r, "hw")), "{:.4f}") + " |")
    emit(f"| paced {meta('rate')}/s: vCPU of all the path's proxies | " + " | ".join(
        fmt(per_rep(lambda r, p=p: vsum(p, r)), "{:.4f}")
        for p in PATHS) + " |")
    emit(f"| paced {meta('rate')}/s: vCPU of nginx / of the load generator (yardsticks) | " + " | ".join(
        fmt(per_rep(lambda r, p=p: vcpu(p, r, "nginx")), "{:.4f}") + " / " +
        fmt(per_rep(lambda r, p=p: vcpu(p, r, "load")), "{:.4f}") for p in PATHS) + " |")
    emit(f"| same, all on CPU 0: latency p50 / p99, us | " + " | ".join(
        fmt(per_rep(lambda r, p=p: num(f"pinned.{p}.{r}.p50")), "{:.0f}") + " / " +
        fmt(per_rep(lambda r, p=p: num(f"pinned.{p}.{r}.p99")), "{:.0f}") for p in ("l4", "wp")) + " | - |")
    emit(f"| same, all on CPU 0: vCPU of the L7 hop / all the path's proxies | - / " +
         fmt(per_rep(lambda r: vsum("l4", r, "pinned")), "{:.4f}") + " | " +
         fmt(per_rep(lambda r: vcpu("wp", r, "wp", "pinned")), "{:.4f}") + " / " +
         fmt(per_rep(lambda r: vsum("wp", r, "pinned")), "{:.4f}") + " | - |")
    emit("| idle (no traffic, 5 s): vCPU of the path's proxies | " + " | ".join(
        (lambda c, w: f"{c / 1e9 / w:.4f}" if c is not None and w else "-")(
            sum(num(f"idle.cpu.{x}") or 0 for x in PROCS[p]), num("idle.wall")) for p in PATHS) + " |")
    emit(f"| L7 hop RSS idle, kB | - | {R.get('rss_idle.wp', '-')} | {R.get('rss_idle.hw', '-')} |")
    per_conn = {}
    for p in ("wp", "haproxy"):
        pre, rss, held = num(f"idle.{p}.pre"), num(f"idle.{p}.rss"), num(f"idle.{p}.held")
        per_conn[p] = (rss - pre) / held if held else None
    emit(f"| L7 hop RSS with {meta('idle_n')} idle kept-alive clients, kB (KB/connection) | - | " +
         " | ".join(f"{R.get(f'idle.{p}.rss', '-')} ({per_conn[p]:.1f})" if per_conn[p] is not None else "-"
                    for p in ("wp", "haproxy")) + " |")
    emit(f"| ... RSS 3 s after they closed, kB | - | {R.get('idle.wp.after', '-')} | {R.get('idle.haproxy.after', '-')} |")

    # Goals of issue 10 section 6, each ratio within one repetition.
    wp_us = per_rep(lambda r: sat_us("wp", r, "wp"))
    wp_vcpu = per_rep(lambda r: vcpu("wp", r, "wp"))
    add50 = per_rep(lambda r: (paced("wp", r, "p50") - paced("l4", r, "p50"))
                    if paced("wp", r, "p50") is not None and paced("l4", r, "p50") is not None else None)
    add99 = per_rep(lambda r: (paced("wp", r, "p99") - paced("l4", r, "p99"))
                    if paced("wp", r, "p99") is not None and paced("l4", r, "p99") is not None else None)
    ratio = per_rep(lambda r: sat_rps("wp", r) / sat_rps("haproxy", r)
                    if sat_rps("wp", r) and sat_rps("haproxy", r) else None)
    idle_mb = num("rss_idle.wp")
    idle_mb = idle_mb / 1024 if idle_mb is not None else None

    def goal(name, vals, limit, le, spec, unit=""):
        v = med(vals)
        if v is None:
            return f"| {name} | - | NOT MEASURED |"
        ok = v <= limit if le else v >= limit
        shown = fmt(vals, spec, unit) if isinstance(vals, list) else spec.format(v) + unit
        return f"| {name} | {shown} | {'MET' if ok else 'NOT MET'} |"

    emit("\n| Goal (issue 10 section 6) | Measured: median (min-max) | |")
    emit("|---|---|---|")
    emit(goal("waypoint CPU <= 12 us per request at saturation", wp_us, 12, True, "{:.1f}", " us"))
    emit(goal(f"waypoint at {meta('rate')} rps <= 0.035 vCPU (Istio: 0.25)", wp_vcpu, 0.035, True, "{:.4f}"))
    emit(goal("added latency over L4, p50 <= +100 us", add50, 100, True, "{:+.0f}", " us"))
    emit(goal("added latency over L4, p99 <= +400 us", add99, 400, True, "{:+.0f}", " us"))
    emit(goal("waypoint path req/s >= 1.2x the HAProxy chain", ratio, 1.2, False, "{:.2f}", "x"))
    emit(goal("waypoint idle RSS <= 12 MB", [idle_mb] if idle_mb is not None else [], 12, True, "{:.1f}", " MB"))
    emit(goal("<= 16 KB per idle kept-alive client connection",
              [per_conn["wp"]] if per_conn["wp"] is not None else [], 16, True, "{:.1f}", " KB"))
    emit(f"\nMachine busy before / after: {meta('busy_start')} % / {meta('busy_end')} %; before each "
         f"repetition: {', '.join(meta(f'busy_rep.{r}') + ' %' for r in range(1, REPS + 1))}; "
         f"elapsed {meta('elapsed')} s. See bench/README.md \"Waypoint\" for what each row means.")

text = "\n".join(out) + "\n"
print(text)
with open(args[1], "a" if APPEND else "w") as fh:
    fh.write(text)
