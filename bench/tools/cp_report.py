#!/usr/bin/python3
"""cp_report.py RESULTS.txt OUT.md [--append] - the control-plane table of bench/cp.sh.

RESULTS.txt holds "key value" lines; the control-plane ones start with "cp." (bench/cp.sh
writes them, alone or merged into bench/run.sh's results). Prints the table and writes it to
OUT.md (a whole file, or a section appended to bench/run.sh's report with --append).
Derived numbers (MB, ratios, per-subscriber) are computed here. Nothing is asserted: the
performance.md goal is reported as MET / NOT MET.
"""
import sys

args = [a for a in sys.argv[1:] if not a.startswith("--")]
APPEND = "--append" in sys.argv[1:]
if len(args) != 2:
    sys.exit("usage: cp_report.py RESULTS.txt OUT.md [--append]")

R = {}
with open(args[0]) as fh:
    for line in fh:
        k, _, v = line.rstrip("\n").partition(" ")
        if k.startswith("cp.") or k == "broken.cp":
            R[k] = v


def num(key):
    try:
        return float(R[key])
    except (KeyError, ValueError):
        return None


def meta(k, default="?"):
    return R.get("cp.meta." + k, default)


sizes = [int(s) for s in meta("sizes", "").split(",") if s]
if not sizes:
    if "broken.cp" in R:  # the step ran and left nothing to report
        print(f"\nWARNING: control plane: {R['broken.cp']}")
        with open(args[1], "a" if APPEND else "w") as fh:
            fh.write(f"\n## Control plane\n\n- WARNING: {R['broken.cp']}\n")
    sys.exit(0)
NODES = meta("nodes")
CHANGES = meta("changes")
DEBOUNCE = num("cp.meta.debounce_ms")


def f(v, fmt):
    return "n/a" if v is None else fmt.format(v)


def div(a, b):
    return None if a is None or b in (None, 0) else a / b


def sub(a, b):
    return None if a is None or b is None else a - b


def cell(P, fn):
    k = f"cp.{P}."
    if k + "error" in R:
        return "FAILED"
    return fn(lambda name: num(k + name))


rows = []


def row(label, fn):
    rows.append((label, [cell(P, fn) for P in sizes]))


MB, KB = 1 / (1024 * 1024), 1 / 1024
row("Cluster: pods / Services / Address resources",
    lambda g: f"{f(g('pods'), '{:,.0f}')} / {f(g('services'), '{:,.0f}')} / {f(g('resources'), '{:,.0f}')}")
row("meshd: config read + snapshot built at start, ms", lambda g: f(g("build_start_ms"), "{:.0f}"))
row("meshd RSS, config loaded, no subscriber, MB", lambda g: f(div(g("sync.rss_idle_kb"), 1024), "{:.1f}"))
row(f"Initial sync, {NODES} subscribers at once: all / p50, ms",
    lambda g: f"{f(g('sync.ms_last'), '{:.0f}')} / {f(g('sync.ms_p50'), '{:.0f}')}")
row("  per subscriber (full state of the world), KB",
    lambda g: f(None if g("sync.bytes_per_sub") is None else g("sync.bytes_per_sub") * KB, "{:,.1f}"))
row("  pushed in total (meshd_xds_push_bytes_total), MB",
    lambda g: f(None if g("sync.push_bytes") is None else g("sync.push_bytes") * MB, "{:,.1f}"))
row("  meshd CPU, ms", lambda g: f(g("sync.cpu_ms"), "{:.0f}"))
def peak(g):
    v = [x for x in (g("sync.hwm_kb"), g("settled.hwm_kb"), g("hwm_kb")) if x is not None]
    return max(v) if v else None


row(f"meshd RSS, {NODES} subscribers synced / peak, MB",
    lambda g: f"{f(div(g('settled.rss_kb'), 1024), '{:.1f}')} / {f(div(peak(g), 1024), '{:.1f}')}")
row("  per connected subscriber, KB",
    lambda g: f(div(sub(g("settled.rss_kb"), g("sync.rss_idle_kb")), g("sync.synced")), "{:,.0f}"))
row(f"Pod label change -> all {NODES} applied, ms (median of {CHANGES}; max)",
    lambda g: f"{f(g('change_ms_last'), '{:.0f}')} ({f(g('change_ms_last_max'), '{:.0f}')})")
row("  first / median subscriber applied, ms",
    lambda g: f"{f(g('change_ms_first'), '{:.0f}')} / {f(g('change_ms_p50'), '{:.0f}')}")
row("  of which: debounce / snapshot rebuild / push to all, ms",
    lambda g: f"{f(DEBOUNCE, '{:.0f}')} / {f(g('build_change_ms'), '{:.0f}')} / "
              f"{f(sub(sub(g('change_ms_last'), DEBOUNCE), g('build_change_ms')), '{:.0f}')}")
row("Bytes per change: per subscriber / total, B",
    lambda g: f"{f(g('change_bytes_max'), '{:,.0f}')} / {f(g('change_push_bytes'), '{:,.0f}')}")
row("  a change costs this share of a full push",
    lambda g: f(div(g("change_bytes_max"), g("sync.bytes_per_sub")),
                "{:.4%}" if (div(g("change_bytes_max"), g("sync.bytes_per_sub")) or 1) < 0.001 else "{:.2%}"))
row("meshd CPU per change, ms", lambda g: f(g("change_cpu_ms"), "{:.0f}"))

# The X2 goal of ../shared/reference/performance.md 8.4, at the largest size.
P = max(sizes)
last = num(f"cp.{P}.change_ms_last")
goal = None
if last is not None and f"cp.{P}.error" not in R:
    beyond = last - (DEBOUNCE or 0)
    goal = (f"One pod change -> all {NODES} subscribers applied <= 50 ms (@{P:,} pods)",
            f"{last:.0f} ms ({beyond:.0f} ms after the {DEBOUNCE:.0f} ms debounce)",
            "MET" if last <= 50 else "NOT MET")

REFS = [
    "istiod debounces config events 100 ms by default (PILOT_DEBOUNCE_AFTER); meshd --debounce-ms 100 likewise",
    "istiod needs ~30 s to push 50k workloads to ztunnel; ztunnel applies them in 329 ms (istio/ztunnel#1274)",
    "istiod (pre-1.24 docs): 1 vCPU and 1.5 GB for 1,000 services and 2,000 sidecars",
]

head = ["Control plane (meshd)"] + [f"{P:,} pods" for P in sizes]
width = [max(len(head[0]), max(len(r[0]) for r in rows))] + [
    max(len(head[j + 1]), max(len(r[1][j]) for r in rows)) for j in range(len(sizes))]


def text_line(cells):
    return "  ".join(c.ljust(width[k]) if k == 0 else c.rjust(width[k]) for k, c in enumerate(cells))


lines = ["", text_line(head), text_line(["-" * w for w in width])]
lines += [text_line([label] + cells) for label, cells in rows]
if goal:
    lines.append(f"Goal (X2): {goal[0]}: {goal[1]}  {goal[2]}")
for P in sizes:
    if f"cp.{P}.error" in R:
        lines.append(f"WARNING: {P} pods: {R[f'cp.{P}.error'].replace('_', ' ')}")
lines.append("Reference, not measured here: " + "; ".join(REFS))
print("\n".join(lines))

md = []
if not APPEND:
    md.append("# amesh benchmark: control plane\n")
    md.append(f"- busy before the run {meta('busy_start')} %, after {meta('busy_end')} %; the step took "
              f"{meta('elapsed')} s")
    md.append("- method and definitions: `bench/README.md`\n")
md.append(f"\n## Control plane: meshd with {NODES} simulated ztunnels\n")
md.append(f"{NODES} xDS subscribers (one TLS connection and one delta ADS stream each, one per node), "
          f"one pod label changed {CHANGES} times; see `bench/README.md` (control plane).\n")
md.append("| " + " | ".join(head) + " |")
md.append("|" + "|".join(["---"] + ["---:"] * len(sizes)) + "|")
for label, cells in rows:
    md.append("| " + " | ".join([label.strip()] + cells) + " |")
if goal:
    md.append("\n| Goal | Measured | Status |\n|---|---:|---|")
    md.append(f"| {goal[0]} | {goal[1]} | {goal[2]} |")
md.append("")
for P in sizes:
    if f"cp.{P}.error" in R:
        md.append(f"- WARNING: {P} pods: {R[f'cp.{P}.error'].replace('_', ' ')}\n")
md.append("Reference (published, not measured here):\n")
md += [f"- {r}" for r in REFS]
with open(args[1], "a" if APPEND else "w") as fh:
    fh.write("\n".join(md) + "\n")
