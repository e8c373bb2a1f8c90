#!/usr/bin/python3
"""cni_runtime.py - runs a CNI network configuration list the way a container
runtime's libcni does (CNI spec 1.0, "Network configuration lists"):

  ADD    each plugin in order; plugin i gets the list's name and cniVersion
         and, from the second on, prevResult = the previous plugin's result;
         the last result is cached (the runtime keeps it for CHECK and DEL)
  CHECK  each plugin in order, prevResult = the cached result
  DEL    each plugin in reverse order, prevResult = the cached result; the
         cache entry is removed

Environment of each plugin: CNI_COMMAND, CNI_CONTAINERID, CNI_NETNS,
CNI_IFNAME, CNI_ARGS, CNI_PATH; the plugin binary is looked up by "type" in
CNI_PATH. Each plugin's stdin, stdout, exit status and time are kept in
--trace DIR as <cmd>-<i>-<type>.{in,out,rc,ms}. A plugin failing stops the
run: its stdout (the spec's error object) is printed and the exit status is 1.

  cni_runtime.py ADD|CHECK|DEL|VERSION --conflist F --netns P --id ID \
      [--ifname eth0] [--args K=V;...] --cache DIR --trace DIR --cni-path A:B
"""
import argparse
import json
import os
import subprocess
import sys
import time


def find(types, path):
    for d in path.split(":"):
        p = os.path.join(d, types)
        if os.access(p, os.X_OK):
            return p
    sys.exit(f"cni_runtime: plugin {types} not found in {path}")


def run(cmd, i, plugin, a, conf, env):
    exe = find(plugin["type"], a.cni_path)
    data = json.dumps(conf).encode()
    stem = os.path.join(a.trace, f"{cmd}-{i}-{plugin['type']}")
    with open(stem + ".in", "wb") as f:
        f.write(data)
    t0 = time.monotonic()
    p = subprocess.run([exe], input=data, env=env, capture_output=True, timeout=60)
    ms = (time.monotonic() - t0) * 1000
    for ext, v in ((".out", p.stdout), (".err", p.stderr)):
        with open(stem + ext, "wb") as f:
            f.write(v)
    with open(stem + ".rc", "w") as f:
        f.write(f"{p.returncode}\n")
    with open(stem + ".ms", "w") as f:
        f.write(f"{ms:.1f}\n")
    if p.returncode != 0:
        sys.stdout.write(p.stdout.decode(errors="replace"))
        sys.stderr.write(p.stderr.decode(errors="replace"))
        sys.exit(1)
    return p.stdout


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("cmd", choices=["ADD", "CHECK", "DEL", "VERSION"])
    ap.add_argument("--conflist", required=True)
    ap.add_argument("--netns", default="")
    ap.add_argument("--id", required=True)
    ap.add_argument("--ifname", default="eth0")
    ap.add_argument("--args", default="")
    ap.add_argument("--cache", required=True)
    ap.add_argument("--trace", required=True)
    ap.add_argument("--cni-path", required=True)
    a = ap.parse_args()
    with open(a.conflist) as f:
        nl = json.load(f)
    os.makedirs(a.cache, exist_ok=True)
    os.makedirs(a.trace, exist_ok=True)
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "CNI_COMMAND": a.cmd,
           "CNI_CONTAINERID": a.id, "CNI_IFNAME": a.ifname, "CNI_PATH": a.cni_path}
    for k in ("ASAN_OPTIONS", "UBSAN_OPTIONS"):
        if k in os.environ:
            env[k] = os.environ[k]
    if a.netns:
        env["CNI_NETNS"] = a.netns
    if a.args:
        env["CNI_ARGS"] = a.args
    cache = os.path.join(a.cache, f"{nl['name']}-{a.id}.json")
    plugins = nl["plugins"]
    if a.cmd == "VERSION":
        for i, pl in enumerate(plugins):
            out = run("VERSION", i, pl, a, {"cniVersion": nl["cniVersion"]}, env)
            print(out.decode().strip())
        return
    prev = None
    if a.cmd in ("CHECK", "DEL"):
        try:
            with open(cache) as f:
                prev = json.load(f)
        except FileNotFoundError:
            if a.cmd == "CHECK":
                sys.exit("cni_runtime: no cached result to CHECK")
    order = list(enumerate(plugins))
    if a.cmd == "DEL":
        order.reverse()
    for i, pl in order:
        conf = dict(pl)
        conf["name"] = nl["name"]
        conf["cniVersion"] = nl["cniVersion"]
        if prev is not None:
            conf["prevResult"] = prev
        out = run(a.cmd, i, pl, a, conf, env)
        if a.cmd == "ADD":
            prev = json.loads(out)
    if a.cmd == "ADD":
        with open(cache, "w") as f:
            json.dump(prev, f)
        print(json.dumps(prev))
    elif a.cmd == "DEL" and os.path.exists(cache):
        os.unlink(cache)


if __name__ == "__main__":
    main()
