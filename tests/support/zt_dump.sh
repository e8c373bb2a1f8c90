# zt_dump_has <netns> <description> <seconds> <python expression>: polls the config_dump of the
# ztunnel in <netns> (admin 127.0.0.1:15000) until the expression holds, as a check (lib.sh).
# The expression sees W (workloads by name), U (workloads by uid), S (services by hostname),
# P (policies by "ns/name") and d (the whole dump); it prints how long it took.
zt_dump_has() {
    local ns=$1 what=$2 secs=$3 expr=$4
    check "$what (within $secs s)" ip netns exec "$ns" env ZT_WHAT="$what" $PY -c "
import json,os,time,urllib.request
t0=time.time()
deadline=t0+$secs
while True:
    d=json.load(urllib.request.urlopen('http://127.0.0.1:15000/config_dump',timeout=2))
    W={w['name']:w for w in d['workloads']}
    U={w['uid']:w for w in d['workloads']}
    S={s['hostname']:s for s in d['services']}
    P={p['namespace']+'/'+p['name']:p for p in d.get('policies',[])}
    if ($expr):
        print('# seen after %d ms' % ((time.time()-t0)*1000))
        break
    if time.time()>deadline:
        print(json.dumps({'workloads':sorted(U),'services':sorted(S),'policies':sorted(P)}))
        raise SystemExit('not seen: ' + os.environ['ZT_WHAT'])
    time.sleep(0.02)
"
}
