#!/usr/bin/env bash
# meshctl analyze: the same parser as meshd, file:line for every problem, exit status 1 on errors.
set -euo pipefail
MESHCTL=$1
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
PASSES=0 FAILS=0
ok() { PASSES=$((PASSES + 1)); echo "ok - $*"; }
bad() { FAILS=$((FAILS + 1)); echo "not ok - $*"; }
expect() { # description expected-status command...
    local what=$1 want=$2 got=0
    shift 2
    "$@" >"$W/out" 2>&1 || got=$?
    if [ "$got" = "$want" ]; then ok "$what"; else bad "$what (exit $got, wanted $want)"; cat "$W/out"; fi
}

mkdir -p "$W/good" "$W/bad"
cat >"$W/good/app.yaml" <<'YAML'
apiVersion: v1
kind: Namespace
metadata: {name: shop, labels: {istio.io/dataplane-mode: ambient}}
---
apiVersion: v1
kind: Pod
metadata: {name: web-1, namespace: shop, labels: {app: web}}
spec:
  nodeName: node-1
  containers: [{name: c, image: x, ports: [{name: http, containerPort: 8080}]}]
status: {phase: Running, podIPs: [{ip: 198.18.1.10}]}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec: {selector: {app: web}, clusterIP: 198.19.1.10, ports: [{port: 80, targetPort: http}]}
YAML
expect "a clean directory passes" 0 "$MESHCTL" analyze -f "$W/good"
grep -q 'No validation issues' "$W/out" && ok "and says so" || bad "and says so"

cp "$W/good/app.yaml" "$W/bad/app.yaml"
printf 'apiVersion: v1\nkind: Pod\nmetadata: {name: x\n  namespace: [\n' >"$W/bad/broken.yaml"
cat >"$W/bad/invalid.yaml" <<'YAML'
apiVersion: v1
kind: Pod
metadata: {name: web-2, namespace: shop}
spec: {nodeName: node-1}
status: {podIPs: [{ip: 198.18.1.400}]}
YAML
expect "a directory with errors fails" 1 "$MESHCTL" analyze -f "$W/bad"
grep -q "broken.yaml:4: error: YAML syntax error" "$W/out" && ok "YAML syntax error with file:line" ||
    { bad "YAML syntax error with file:line"; cat "$W/out"; }
grep -q "invalid.yaml:5: error: .*198.18.1.400" "$W/out" && ok "invalid resource with file:line" ||
    { bad "invalid resource with file:line"; cat "$W/out"; }
expect "one file at a time" 1 "$MESHCTL" analyze -f "$W/bad/invalid.yaml"
expect "several -f" 1 "$MESHCTL" analyze -f "$W/good/app.yaml" -f "$W/bad/broken.yaml"

expect "json output" 1 "$MESHCTL" analyze -f "$W/bad" -o json
/usr/bin/python3 -c "
import json,sys
d=json.load(open('$W/out'))
assert any(x['level']=='Error' and x['file'].endswith('invalid.yaml') and x['line']==5 for x in d), d
" && ok "json lists level, file and line" || bad "json lists level, file and line"

# Policies: a selector that matches nothing, L7 fields ztunnel cannot enforce, an unknown field.
mkdir -p "$W/pol"
cp "$W/good/app.yaml" "$W/pol/app.yaml"
cat >"$W/pol/policies.yaml" <<'YAML'
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: nobody, namespace: shop}
spec:
  selector:
    matchLabels: {app: bogus}
  action: ALLOW
  rules: [{from: [{source: {principals: ["cluster.local/ns/shop/sa/x"]}}]}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: http-only, namespace: shop}
spec:
  action: ALLOW
  rules:
  - to: [{operation: {methods: ["GET"]}}]
YAML
expect "policy warnings alone pass" 0 "$MESHCTL" analyze -f "$W/pol"
grep -q 'policies.yaml:5: warning: .*no matching workloads.*app=bogus.*\[IST0127\]' "$W/out" &&
    ok "a selector matching no pod: IST0127 at its line" || { bad "a selector matching no pod: IST0127 at its line"; cat "$W/out"; }
grep -q 'policies.yaml:1[0-9]: warning: .*\[IST0167\]' "$W/out" &&
    ok "L7-only fields in an ALLOW: IST0167" || { bad "L7-only fields in an ALLOW: IST0167"; cat "$W/out"; }
printf 'apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: typo, namespace: shop}\nspec:\n  actoin: DENY\n' >"$W/pol/typo.yaml"
expect "an unknown field is an error" 1 "$MESHCTL" analyze -f "$W/pol"
grep -q 'typo.yaml:5: error' "$W/out" && ok "with file and line" || { bad "with file and line"; cat "$W/out"; }

# Severities are counted apart (an info is not a warning) and only errors fail, as istioctl
# analyze's default --failure-threshold Error does.
mkdir -p "$W/info"
cp "$W/good/app.yaml" "$W/info/app.yaml"
cat >"$W/info/waypoint.yaml" <<'YAML'
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: at-waypoint, namespace: shop}
spec:
  targetRefs: [{kind: Service, group: "", name: web}]
  action: ALLOW
  rules: [{to: [{operation: {methods: ["GET"]}}]}]
YAML
expect "an info alone passes" 0 "$MESHCTL" analyze -f "$W/info"
grep -q 'waypoint.yaml:5: info: ' "$W/out" && ok "the info is shown" || { bad "the info is shown"; cat "$W/out"; }
grep -qx '0 error(s), 0 warning(s), 1 info(s)' "$W/out" && ok "and counted as an info, not a warning" ||
    { bad "and counted as an info, not a warning"; cat "$W/out"; }
cp "$W/pol/policies.yaml" "$W/info/policies.yaml"
expect "infos and warnings pass" 0 "$MESHCTL" analyze -f "$W/info"
grep -qx '0 error(s), 3 warning(s), 1 info(s)' "$W/out" && ok "each counted once" ||
    { bad "each counted once"; cat "$W/out"; }
expect "json for infos" 0 "$MESHCTL" analyze -f "$W/info" -o json
/usr/bin/python3 -c "
import json
d=json.load(open('$W/out'))
lv=sorted(x['level'] for x in d)
assert lv.count('Info')==1 and lv.count('Warning')==3 and 'Error' not in lv, lv
" && ok "json level Info" || { bad "json level Info"; cat "$W/out"; }

# A Service with no clusterIP (a raw manifest: no API server here to allocate one) gets no VIP:
# a warning with amesh's own code AM0001; headless (None) and ExternalName are fine.
mkdir -p "$W/vip"
cat >"$W/vip/svc.yaml" <<'YAML'
apiVersion: v1
kind: Service
metadata: {name: raw, namespace: shop}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: headless, namespace: shop}
spec: {clusterIP: None, selector: {app: web}, ports: [{port: 80}]}
---
apiVersion: v1
kind: Service
metadata: {name: alias, namespace: shop}
spec: {type: ExternalName, externalName: example.invalid}
YAML
expect "a Service without clusterIP is a warning, not an error" 0 "$MESHCTL" analyze -f "$W/vip"
grep -q 'svc.yaml:4: warning: Service without spec.clusterIP: it gets no VIP.*\[AM0001\]' "$W/out" &&
    ok "AM0001 at the Service's spec line" || { bad "AM0001 at the Service's spec line"; cat "$W/out"; }
grep -qx '0 error(s), 1 warning(s), 0 info(s)' "$W/out" && ok "headless and ExternalName do not warn" ||
    { bad "headless and ExternalName do not warn"; cat "$W/out"; }

expect "a missing path is a usage error" 2 "$MESHCTL" analyze -f "$W/nope"
expect "an unknown flag is a usage error" 2 "$MESHCTL" analyze --frobnicate
expect "a bad -o is a usage error" 2 "$MESHCTL" analyze -o xml
echo "$PASSES passed, $FAILS failed"
[ "$FAILS" -eq 0 ]
