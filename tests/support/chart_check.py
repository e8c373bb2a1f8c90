#!/usr/bin/python3
"""chart_check.py - checks amesh's Helm charts against the kustomize base, without helm.

Helm is not packaged for Debian 12, so CI cannot run `helm template`. The charts are kept to a
small subset of Go's text/template that this script renders itself: literal text, actions
with trim markers ({{- and -}}), comments, `if`/`else`/`end`, `with`/`else`/`end`, and
pipelines of fields (.Values.x, .Release.Namespace, .Chart.Name, . and $) through toYaml,
nindent, indent, quote and default. Anything else (range, include, define, other functions,
parentheses) is reported as outside the subset, and so is a field missing from values.yaml
(helm would print nothing there; a typo is the likelier cause).

  chart_check.py CHARTS_DIR RENDERED.yaml [OVERRIDES.yaml]

RENDERED.yaml is `kubectl kustomize` output. Every object it holds, except the Namespace
(helm install --create-namespace makes it), must be rendered by exactly one chart template
and be equal to it (deep, after YAML parsing), and the charts must render nothing else.
OVERRIDES.yaml (optional) maps chart name -> values merged over the chart's values.yaml
before rendering (e.g. what makes the charts equal to an overlay). Exit 0 when all agree;
otherwise each difference is printed with its path and the exit status is 1.
"""
import copy
import os
import re
import sys

import yaml

NAMESPACE = "istio-system"


class TemplateError(Exception):
    pass


# ---- the template subset -------------------------------------------------------------------

ACTION = re.compile(r"\{\{(-\s)?(.*?)(\s-)?\}\}", re.S)


def lex(src, where):
    """Text and action tokens, with trim markers applied to the neighbouring text."""
    toks = []
    pos = 0
    trim_next = False
    for m in ACTION.finditer(src):
        text = src[pos:m.start()]
        if trim_next:
            text = text.lstrip(" \t\r\n")
        if m.group(1):
            text = text.rstrip(" \t\r\n")
        toks.append(("text", text))
        body = m.group(2).strip()
        line = src.count("\n", 0, m.start()) + 1
        if not (body.startswith("/*") and body.endswith("*/")):
            toks.append(("action", body, "%s:%d" % (where, line)))
        trim_next = bool(m.group(3))
        pos = m.end()
    text = src[pos:]
    if trim_next:
        text = text.lstrip(" \t\r\n")
    toks.append(("text", text))
    for t in toks:
        if t[0] == "text" and ("{{" in t[1] or "}}" in t[1]):
            raise TemplateError("%s: unbalanced {{ or }}" % where)
    return toks


def parse(toks, i=0, stop=()):
    """A list of nodes up to a keyword in |stop|; returns (nodes, index, keyword)."""
    nodes = []
    while i < len(toks):
        t = toks[i]
        if t[0] == "text":
            nodes.append(("text", t[1]))
            i += 1
            continue
        body, loc = t[1], t[2]
        word = body.split(None, 1)[0] if body else ""
        if word in ("end", "else"):
            if word not in stop:
                raise TemplateError("%s: unexpected {{%s}}" % (loc, word))
            return nodes, i + 1, word
        if word in ("if", "with"):
            rest = body[len(word):].strip()
            if not rest:
                raise TemplateError("%s: {{%s}} without a pipeline" % (loc, word))
            then, i, kw = parse(toks, i + 1, ("else", "end"))
            other = []
            if kw == "else":
                other, i, kw = parse(toks, i, ("end",))
            nodes.append((word, rest, then, other, loc))
            continue
        if word in ("range", "define", "template", "block", "include", "tpl") or \
                body.startswith("$") and ":=" in body:
            raise TemplateError("%s: {{%s}} is outside the subset this check renders" % (loc, word))
        nodes.append(("action", body, loc))
        i += 1
    if stop:
        raise TemplateError("template ends inside a block (missing {{end}})")
    return nodes, i, None


def split_outside_quotes(s, sep):
    parts, cur, q = [], "", False
    for c in s:
        if c == '"':
            q = not q
        if not q and (c == sep or (sep == " " and c in " \t\n")):
            parts.append(cur)
            cur = ""
        else:
            cur += c
    if q:
        raise TemplateError("unterminated string in %r" % s)
    parts.append(cur)
    return [p.strip() for p in parts if p.strip() != ""] if sep == " " else [p.strip() for p in parts]


def lookup(obj, path, loc, full):
    for key in path:
        if not isinstance(obj, dict) or key not in obj:
            raise TemplateError("%s: %s: no such value" % (loc, full))
        obj = obj[key]
    return obj


def arg(tok, dot, root, loc):
    if tok.startswith('"') and tok.endswith('"') and len(tok) >= 2:
        return tok[1:-1]
    if re.fullmatch(r"-?\d+", tok):
        return int(tok)
    if tok in ("true", "false"):
        return tok == "true"
    if tok == ".":
        return dot
    if tok == "$":
        return root
    if tok.startswith("$."):
        return lookup(root, tok[2:].split("."), loc, tok)
    if tok.startswith("."):
        return lookup(dot, tok[1:].split("."), loc, tok)
    raise TemplateError("%s: %r is outside the subset this check renders" % (loc, tok))


def to_yaml(v):
    # helm's toYaml: the document without its final newline.
    return yaml.safe_dump(v, default_flow_style=False, sort_keys=True).rstrip("\n")


def indent(n, s):
    return "\n".join(" " * n + line for line in str(s).split("\n"))


def truthy(v):
    return not (v is None or v is False or v == 0 or v == "" or v == {} or v == [])


FUNCS = {
    "toYaml": (1, to_yaml),
    "nindent": (2, lambda n, s: "\n" + indent(n, s)),
    "indent": (2, indent),
    "quote": (1, lambda s: '"%s"' % str(s).replace("\\", "\\\\").replace('"', '\\"')),
    "default": (2, lambda d, v: v if truthy(v) else d),
}


def pipeline(body, dot, root, loc):
    if "(" in body or ")" in body:
        raise TemplateError("%s: parentheses are outside the subset this check renders" % loc)
    val, first = None, True
    for cmd in split_outside_quotes(body, "|"):
        words = split_outside_quotes(cmd, " ")
        if not words:
            raise TemplateError("%s: empty command in %r" % (loc, body))
        if words[0] in FUNCS:
            nargs, fn = FUNCS[words[0]]
            args = [arg(w, dot, root, loc) for w in words[1:]]
            if not first:
                args.append(val)
            if len(args) != nargs:
                raise TemplateError("%s: %s takes %d arguments" % (loc, words[0], nargs))
            val = fn(*args)
        else:
            if len(words) != 1 or not first:
                raise TemplateError("%s: %r: unknown function %r" % (loc, body, words[0]))
            val = arg(words[0], dot, root, loc)
        first = False
    return val


def show(v, loc):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (dict, list)):
        raise TemplateError("%s: a map or list printed as text (use toYaml)" % loc)
    return "" if v is None else str(v)


def execute(nodes, dot, root):
    out = []
    for n in nodes:
        if n[0] == "text":
            out.append(n[1])
        elif n[0] == "action":
            out.append(show(pipeline(n[1], dot, root, n[2]), n[2]))
        else:
            kind, body, then, other, loc = n
            v = pipeline(body, dot, root, loc)
            if truthy(v):
                out.append(execute(then, v if kind == "with" else dot, root))
            else:
                out.append(execute(other, dot, root))
    return "".join(out)


def render(src, ctx, where):
    nodes, _, _ = parse(lex(src, where))
    return execute(nodes, ctx, ctx)


# ---- charts ------------------------------------------------------------------------------

def merge(base, over):
    out = copy.deepcopy(base)
    for k, v in (over or {}).items():
        out[k] = merge(out.get(k), v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def load_chart(d, overrides, problems):
    name = os.path.basename(d)
    with open(os.path.join(d, "Chart.yaml")) as f:
        chart = yaml.safe_load(f)
    for k in ("apiVersion", "name", "version"):
        if k not in (chart or {}):
            problems.append("%s/Chart.yaml: no %s" % (name, k))
    if chart.get("apiVersion") != "v2":
        problems.append("%s/Chart.yaml: apiVersion %r, want v2" % (name, chart.get("apiVersion")))
    if chart.get("name") != name:
        problems.append("%s/Chart.yaml: name %r, want the directory's %r" % (name, chart.get("name"), name))
    with open(os.path.join(d, "values.yaml")) as f:
        values = yaml.safe_load(f)
    if not isinstance(values, dict):
        problems.append("%s/values.yaml: not a mapping" % name)
        return []
    ctx = {
        "Values": merge(values, overrides.get(name)),
        "Release": {"Name": name, "Namespace": NAMESPACE, "Service": "Helm",
                    "IsInstall": True, "IsUpgrade": False},
        "Chart": {"Name": chart.get("name"), "Version": chart.get("version"),
                  "AppVersion": chart.get("appVersion")},
    }
    objs = []
    tdir = os.path.join(d, "templates")
    for fn in sorted(os.listdir(tdir)):
        where = "%s/templates/%s" % (name, fn)
        if fn == "NOTES.txt" or fn.startswith("_"):
            problems.append("%s: not rendered by this check" % where)
            continue
        with open(os.path.join(tdir, fn)) as f:
            src = f.read()
        if "\t" in src:
            problems.append("%s: a tab (YAML indents with spaces)" % where)
        try:
            text = render(src, ctx, where)
            docs = [x for x in yaml.safe_load_all(text) if x is not None]
        except (TemplateError, yaml.YAMLError) as e:
            problems.append("%s: %s" % (where, e))
            continue
        for o in docs:
            md = o.get("metadata") or {}
            if not (o.get("apiVersion") and o.get("kind") and md.get("name")):
                problems.append("%s: an object without apiVersion, kind or metadata.name" % where)
                continue
            objs.append((where, o))
    return objs


def key(o):
    md = o.get("metadata") or {}
    return (o["apiVersion"], o["kind"], md.get("namespace", ""), md["name"])


# Lists whose order means nothing to Kubernetes (a kustomize patch prepends to them, a
# template appends): compared as maps by these keys.
UNORDERED = {"volumes": "name", "volumeMounts": "mountPath"}


def diff(a, b, path, out):
    field = path.rsplit(".", 1)[-1]
    if field in UNORDERED and isinstance(a, list) and isinstance(b, list):
        k = UNORDERED[field]
        try:
            am, bm = {x[k]: x for x in a}, {x[k]: x for x in b}
        except (TypeError, KeyError):
            am = bm = None
        if am is not None and len(am) == len(a) and len(bm) == len(b):
            diff(am, bm, path, out)
            return
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b), key=str):
            if k not in a:
                out.append("%s.%s: only in the chart (%r)" % (path, k, b[k]))
            elif k not in b:
                out.append("%s.%s: only in kustomize (%r)" % (path, k, a[k]))
            else:
                diff(a[k], b[k], "%s.%s" % (path, k), out)
    elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b)):
            diff(x, y, "%s[%d]" % (path, i), out)
    elif a != b:
        out.append("%s: kustomize %r, chart %r" % (path, a, b))


def main():
    if len(sys.argv) not in (3, 4):
        sys.exit(__doc__)
    charts_dir, rendered = sys.argv[1], sys.argv[2]
    overrides = {}
    if len(sys.argv) == 4:
        with open(sys.argv[3]) as f:
            overrides = yaml.safe_load(f) or {}
    problems = []
    chart_objs = {}
    dirs = sorted(os.path.join(charts_dir, d) for d in os.listdir(charts_dir)
                  if os.path.isdir(os.path.join(charts_dir, d)))
    for name in overrides:
        if not os.path.isdir(os.path.join(charts_dir, name)):
            problems.append("overrides name a chart that does not exist: %s" % name)
    for d in dirs:
        for where, o in load_chart(d, overrides, problems):
            k = key(o)
            if k in chart_objs:
                problems.append("%s: %s also rendered by %s" % (where, "/".join(k[1:]), chart_objs[k][0]))
            chart_objs[k] = (where, o)
    with open(rendered) as f:
        base = [x for x in yaml.safe_load_all(f) if x is not None]
    seen = set()
    for o in base:
        k = key(o)
        if o["kind"] == "Namespace":
            continue  # helm install --create-namespace
        if k not in chart_objs:
            problems.append("%s %s/%s: no chart template renders it" % (k[1], k[2], k[3]))
            continue
        seen.add(k)
        out = []
        diff(o, chart_objs[k][1], "%s %s" % (k[1], k[3]), out)
        problems += ["%s: %s" % (chart_objs[k][0], x) for x in out]
    for k, (where, _) in chart_objs.items():
        if k not in seen:
            problems.append("%s: renders %s %s/%s, which kustomize does not" % (where, k[1], k[2], k[3]))
    for p in problems:
        print("chart_check: " + p)
    print("chart_check: %d charts, %d objects compared with %d kustomize objects: %s" % (
        len(dirs), len(chart_objs), len(base), "differences" if problems else "equal"))
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
