/*
 * test_k8s_diff.c - differential test of incremental building. A store that
 * follows a directory through random edits, synced and built after each step
 * with one converter as meshd does (so object gens, memos, selections,
 * namespace indexes and the name order are reused and patched), must give at
 * every checkpoint the same resources, byte for byte and version for
 * version, and the same diagnostics as a fresh store loaded from the same
 * files; the services map of every workload and the named-port warnings are
 * also checked against a naive walk over every Service (the conversion as it
 * was before it had indexes), and every workload's authorization_policies
 * against a naive walk over every AuthorizationPolicy and PeerAuthentication
 * (random policies with selectors on the pods' labels, in the root namespace
 * too, come and go); waypoint Gateways, a GatewayClass and use-waypoint
 * labels on Namespaces, Services and pods come and go as well, and so do Nodes
 * (whose topology labels are their pods' locality) and EndpointSlices (whose
 * non-pod endpoints are workloads of the Service they name). A second test
 * checks that a one-pod change at a larger size really takes the fast path:
 * only that pod's resource is built again; a third that a change of a
 * Gateway, the GatewayClass or a use-waypoint label packs again exactly the
 * resources it reaches.
 *
 * MESH_K8S_DIFF_SEED=<n> runs one seed (printed on failure); the default
 * runs a few fixed ones.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "base/base.h"
#include "k8s/k8s.h"
#include "k8s/k8s_objects.h"
#include "k8sconv/k8sconv.h"
#include "workload.pb-c.h"

/* ---- Randomness (xorshift64*, reproducible from the seed) ---- */

static uint64_t rng_state;

static uint32_t
rnd(uint32_t n)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return (uint32_t)((rng_state * 0x2545F4914F6CDD1DULL) >> 32) % n;
}

static bool
chance(uint32_t percent)
{
    return rnd(100) < percent;
}

/* ---- Text buffer ---- */

struct sbuf {
    char *p;
    size_t len, cap;
};

static void __attribute__((format(printf, 2, 3))) sb_printf(struct sbuf *b, const char *fmt, ...)
{
    va_list ap;

    for (;;) {
        va_start(ap, fmt);
        int n = vsnprintf(b->p ? b->p + b->len : NULL, b->p ? b->cap - b->len : 0, fmt, ap);
        va_end(ap);
        assert_true(n >= 0);
        if (b->p != NULL && b->len + (size_t)n < b->cap) {
            b->len += (size_t)n;
            return;
        }
        b->cap = (b->cap + (size_t)n + 1) * 2;
        b->p = xrealloc(b->p, b->cap);
        if (b->len == 0)
            b->p[0] = '\0';
    }
}

/* ---- The model: objects described by a seed (the content) and a minor tweak ---- */

enum mkind { M_NS, M_SVC, M_POD, M_AP, M_PA, M_GW, M_GWC, M_NODE, M_SLICE };

#define N_FILES  16
#define MAX_OBJS 4096

/* Names chosen so that (ns, name) order and resource-name order disagree. */
static const char *const ns_names[] = {"n", "n-a", "n-a-b", "m", "z0", "istio-system"};
#define N_NS        5 /* for Namespaces, Services and pods; policies use the root namespace too */
#define N_NS_POLICY 6

struct mobj {
    enum mkind kind;
    int ns; /* index in ns_names (a Namespace's own name) */
    char name[32];
    int file;      /* -1: deleted */
    int dup_file;  /* -1, or a second definition in that file */
    uint32_t seed; /* everything but the tweak */
    uint32_t minor;
    uint32_t dup_seed;
    char svc[32]; /* EndpointSlice: the Service it names (kubernetes.io/service-name) */
    bool invalid; /* written invalid until the next checkpoint: the old version is kept */
};

struct model {
    struct mobj o[MAX_OBJS];
    size_t n;
    int header[N_FILES]; /* comment lines at the top: moves every object, changes no JSON */
    bool present[N_FILES];
    bool broken[N_FILES]; /* a YAML syntax error until the next checkpoint */
    char *written[N_FILES];
    char dir[64];
    int next_id;
};

static const char *
ns_of(const struct mobj *o)
{
    return ns_names[o->ns];
}

/* istio.io/use-waypoint labels, ending in ", ": |how| 0 none, 1 a name, 2 with a namespace. */
static void
wp_labels(struct sbuf *b, uint32_t how)
{
    if (how == 0)
        return;
    uint32_t w = rnd(4);
    if (w == 3)
        sb_printf(b, "istio.io/use-waypoint: none, ");
    else
        sb_printf(b, "istio.io/use-waypoint: w%u, ", w);
    if (how == 2)
        sb_printf(b, "istio.io/use-waypoint-namespace: \"%s\", ", ns_names[rnd(N_NS)]);
}

static void
render_ns(struct sbuf *b, const struct mobj *o, uint32_t seed)
{
    uint64_t save = rng_state;

    rng_state = seed * 0x9E3779B97F4A7C15ULL + 1;
    sb_printf(b, "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: \"%s\"\n", ns_names[o->ns]);
    sb_printf(b, "  labels: {");
    switch (o->minor % 3) {
    case 0:
        sb_printf(b, "istio.io/dataplane-mode: ambient, ");
        break;
    case 1:
        sb_printf(b, "team: x%u, ", rnd(2));
        break;
    default:
        break;
    }
    /* Waypoint bindings come and go with the tweak. */
    wp_labels(b, (o->minor / 3) % 3);
    sb_printf(b, "k: v}\n");
    if (chance(30))
        sb_printf(b, "  annotations: {networking.istio.io/traffic-distribution: %s}\n",
                  chance(50) ? "PreferClose" : "PreferSameNode");
    rng_state = save;
}

static void
render_svc(struct sbuf *b, const struct mobj *o, uint32_t seed)
{
    static const char *const targets[] = {"8080", "http", "grpc", "metrics", "admin", "9090"};
    static const char *const pnames[] = {"http", "grpc-web", "tcp-db", "", "https", "redis"};
    uint64_t save = rng_state;

    rng_state = seed * 0x9E3779B97F4A7C15ULL + 2;
    sb_printf(b, "apiVersion: v1\nkind: Service\nmetadata:\n  name: \"%s\"\n  namespace: \"%s\"\n",
              o->name, ns_of(o));
    if (o->minor % 4 == 3) {
        sb_printf(b, "  labels: {");
        wp_labels(b, 1 + rnd(2));
        sb_printf(b, "k: v}\n");
    }
    if (chance(10))
        sb_printf(b, "  annotations: {networking.istio.io/traffic-distribution: PreferClose}\n");
    sb_printf(b, "spec:\n");
    if (chance(8))
        sb_printf(b, "  type: ExternalName\n  externalName: x.example.com\n");
    if (!chance(8)) {
        sb_printf(b, "  selector: {");
        const char *sep = "";
        if (chance(85)) {
            sb_printf(b, "%sapp: a%u", sep, rnd(4));
            sep = ", ";
        }
        if (chance(35)) {
            sb_printf(b, "%stier: t%u", sep, rnd(3));
            sep = ", ";
        }
        if (chance(15)) {
            sb_printf(b, "%steam: x%u", sep, rnd(2));
            sep = ", ";
        }
        if (o->minor % 2)
            sb_printf(b, "%sversion: v%u", sep, o->minor % 3);
        sb_printf(b, "}\n");
    }
    if (chance(10))
        sb_printf(b, "  clusterIP: None\n");
    else
        sb_printf(b, "  clusterIP: 10.96.%u.%u\n", rnd(200), 1 + rnd(250));
    if (chance(10))
        sb_printf(b, "  publishNotReadyAddresses: true\n");
    if (chance(10))
        sb_printf(b, "  internalTrafficPolicy: Local\n");
    if (chance(5))
        sb_printf(b, "  trafficDistribution: PreferClose\n");
    uint32_t np = rnd(4);
    if (np > 0) {
        sb_printf(b, "  ports:\n");
        for (uint32_t i = 0; i < np; i++) {
            const char *t = targets[(rnd(ARRAY_LEN(targets)) + o->minor / 2) % ARRAY_LEN(targets)];
            bool named = t[0] < '0' || t[0] > '9';
            const char *pn = pnames[rnd(ARRAY_LEN(pnames))];
            sb_printf(b, "  - {name: \"%s%u\", port: %u, targetPort: %s%s%s%s}\n", pn[0] ? pn : "p",
                      i, 80 + i, named ? "\"" : "", t, named ? "\"" : "",
                      chance(5) ? ", protocol: UDP" : "");
        }
    }
    rng_state = save;
}

static void
render_pod(struct sbuf *b, const struct mobj *o, uint32_t seed, int id, bool invalid)
{
    uint64_t save = rng_state;

    rng_state = seed * 0x9E3779B97F4A7C15ULL + 3;
    sb_printf(b, "apiVersion: v1\nkind: Pod\nmetadata:\n  name: \"%s\"\n  namespace: \"%s\"\n",
              o->name, ns_of(o));
    sb_printf(b, "  labels: {version: v%u", o->minor % 4);
    if (chance(90))
        sb_printf(b, ", app: a%u", rnd(4));
    if (chance(50))
        sb_printf(b, ", tier: t%u", rnd(3));
    if (chance(30))
        sb_printf(b, ", team: x%u", rnd(2));
    if (chance(5))
        sb_printf(b, ", istio.io/dataplane-mode: %s", chance(50) ? "none" : "ambient");
    if (chance(5))
        sb_printf(b, ", networking.istio.io/tunnel: http");
    if (chance(20))
        sb_printf(b, ", pod-template-hash: h%u", rnd(3));
    if (o->minor % 5 == 4) {
        sb_printf(b, ", ");
        wp_labels(b, 1 + rnd(2));
        sb_printf(b, "z: v");
    }
    if (chance(3))
        sb_printf(b, ", gateway.networking.k8s.io/gateway-name: w0");
    sb_printf(b, "}\n");
    if (chance(8))
        sb_printf(b, "  annotations: {ambient.istio.io/redirection: enabled}\n");
    if (chance(20))
        sb_printf(b,
                  "  generateName: %s-\n  ownerReferences: [{kind: ReplicaSet, name: rs-h%u, "
                  "controller: true}]\n",
                  o->name, rnd(3));
    sb_printf(b, "spec:\n  nodeName: node-%u\n", rnd(4));
    if (chance(70))
        sb_printf(b, "  serviceAccountName: sa-%u\n", rnd(3));
    if (chance(5))
        sb_printf(b, "  hostNetwork: true\n");
    sb_printf(b, "  containers:\n  - name: main\n    ports:\n");
    if (invalid)
        sb_printf(b, "    - {containerPort: 70000}\n");
    sb_printf(b, "    - {containerPort: 7000}\n");
    if (chance(60))
        sb_printf(b, "    - {name: http, containerPort: 8080}\n");
    if (chance(40))
        sb_printf(b, "    - {name: grpc, containerPort: 9090%s}\n",
                  chance(20) ? ", protocol: UDP" : "");
    if (chance(30))
        sb_printf(b, "    - {name: metrics, containerPort: 9100}\n");
    uint32_t phase = rnd(100);
    sb_printf(b, "status:\n  phase: %s\n",
              phase < 85   ? "Running"
              : phase < 95 ? "Succeeded"
                           : "Pending");
    sb_printf(b, "  conditions: [{type: Ready, status: \"%s\"}]\n", chance(85) ? "True" : "False");
    if (!chance(8)) {
        sb_printf(b, "  podIPs: [{ip: \"10.%d.%d.%d\"}", o->ns, id / 250, 1 + id % 250);
        if (chance(10))
            sb_printf(b, ", {ip: \"fd00::%x\"}", (unsigned)id + 1);
        sb_printf(b, "]\n");
    }
    rng_state = save;
}

static void
render_ap(struct sbuf *b, const struct mobj *o, uint32_t seed, bool invalid)
{
    uint64_t save = rng_state;

    rng_state = seed * 0x9E3779B97F4A7C15ULL + 4;
    sb_printf(b,
              "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata:\n  name: "
              "\"%s\"\n  namespace: \"%s\"\n",
              o->name, ns_of(o));
    if (chance(10))
        sb_printf(b, "  annotations: {istio.io/dry-run: \"%s\"}\n", chance(50) ? "true" : "false");
    sb_printf(b, "spec:\n");
    uint32_t sel = rnd(100);
    if (chance(5)) {
        sb_printf(b, "  targetRefs: [{kind: Service, name: s-1}]\n");
    } else if (sel < 30) {
        /* no selector: NAMESPACE or GLOBAL */
    } else if (sel < 37) {
        sb_printf(b, "  selector: {matchLabels: {}}\n");
    } else if (sel < 40) {
        sb_printf(b, "  selector: {}\n");
    } else {
        /* The minor tweak moves the selector between pods. */
        sb_printf(b, "  selector: {matchLabels: {app: a%u", (rnd(4) + o->minor) % 4);
        if (chance(30))
            sb_printf(b, ", tier: t%u", rnd(3));
        sb_printf(b, "}}\n");
    }
    uint32_t act = rnd(100);
    bool deny = act >= 55 && act < 95;
    sb_printf(b, "  action: %s\n", act < 55 ? "ALLOW" : deny ? "DENY" : "AUDIT");
    uint32_t n = rnd(3);
    if (deny && n == 0)
        n = 1;
    if (n > 0 || invalid || chance(50))
        sb_printf(b, "  rules:\n");
    for (uint32_t i = 0; i < n; i++) {
        bool any = false;
        if (chance(15)) {
            sb_printf(b, "  - {}\n");
            continue;
        }
        sb_printf(b, "  - ");
        if (chance(60)) {
            uint32_t k = rnd(4);
            sb_printf(b, "from: [{source: {");
            if (k == 0)
                sb_printf(b, "principals: [\"cluster.local/ns/n/sa/sa-%u\"]", rnd(3));
            else if (k == 1)
                sb_printf(b, "namespaces: [\"n%s\"]", chance(50) ? "*" : "");
            else if (k == 2)
                sb_printf(b, "ipBlocks: [\"10.%u.0.0/16\"]", rnd(5));
            else
                sb_printf(b, "serviceAccounts: [sa-%u]", rnd(3));
            if (chance(10))
                sb_printf(b, ", requestPrincipals: [\"*\"]");
            sb_printf(b, "}}]\n");
            any = true;
        }
        if (chance(40)) {
            sb_printf(b, "%sto: [{operation: {ports: [\"%u\"]%s}}]\n", any ? "    " : "",
                      80 + rnd(3), chance(15) ? ", methods: [GET]" : "");
            any = true;
        }
        if (!any || chance(20)) {
            if (chance(20))
                sb_printf(b, "%swhen: [{key: \"request.headers[x]\", values: [\"1\"]}]\n",
                          any ? "    " : "");
            else
                sb_printf(b, "%swhen: [{key: destination.port, notValues: [\"%u\"]}]\n",
                          any ? "    " : "", 80 + rnd(3));
        }
    }
    if (invalid)
        sb_printf(b, "  - from: [{source: {ipBlocks: [10.0.0.0/99]}}]\n");
    rng_state = save;
}

static void
render_pa(struct sbuf *b, const struct mobj *o, uint32_t seed, bool invalid)
{
    static const char *const modes[] = {"UNSET", "STRICT", "PERMISSIVE", "DISABLE"};
    uint64_t save = rng_state;

    rng_state = seed * 0x9E3779B97F4A7C15ULL + 5;
    sb_printf(b,
              "apiVersion: security.istio.io/v1beta1\nkind: PeerAuthentication\nmetadata:\n  "
              "name: \"%s\"\n  namespace: \"%s\"\n",
              o->name, ns_of(o));
    if (chance(60)) /* few distinct times: ties are broken by (namespace, name) */
        sb_printf(b, "  creationTimestamp: \"2025-01-0%uT00:00:00Z\"\n", 1 + rnd(3));
    sb_printf(b, "spec:\n");
    bool sel = chance(55);
    if (sel)
        sb_printf(b, "  selector: {matchLabels: {app: a%u}}\n", (rnd(4) + o->minor) % 4);
    if (chance(85))
        sb_printf(b, "  mtls: {mode: %s}\n", modes[(rnd(4) + o->minor / 2) % 4]);
    if ((sel && chance(50)) || invalid) {
        sb_printf(b, "  portLevelMtls:\n");
        if (invalid)
            sb_printf(b, "    \"0\": {mode: STRICT}\n");
        for (uint32_t p = 0; p < 3; p++)
            if (p == 0 || chance(40))
                sb_printf(b, "    \"%u\": {mode: %s}\n", 8080 + p, modes[rnd(4)]);
    }
    if (!sel && !invalid && chance(10))
        sb_printf(b, "  selector: {}\n");
    rng_state = save;
}

static void
render_gw(struct sbuf *b, const struct mobj *o, uint32_t seed)
{
    static const char *const fors[] = {NULL, "service", "workload", "all", "none"};
    uint64_t save = rng_state;

    rng_state = seed * 0x9E3779B97F4A7C15ULL + 6;
    sb_printf(b, "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata:\n"
                 "  name: %s\n  namespace: \"%s\"\n",
              o->name, ns_of(o));
    if (fors[o->minor % 5] != NULL)
        sb_printf(b, "  labels: {istio.io/waypoint-for: %s}\n", fors[o->minor % 5]);
    sb_printf(b, "spec:\n  gatewayClassName: %s\n  listeners:\n",
              chance(10) ? "istio" : "istio-waypoint");
    sb_printf(b, "  - {name: mesh, port: %d, protocol: HBONE", chance(10) ? 15009 : 15008);
    switch ((o->minor / 5 + rnd(2)) % 4) {
    case 1:
        sb_printf(b, ", allowedRoutes: {namespaces: {from: All}}");
        break;
    case 2:
        sb_printf(b, ", allowedRoutes: {namespaces: {from: Selector, selector: {matchLabels: "
                     "{team: x%u}}}}", rnd(2));
        break;
    default:
        break;
    }
    sb_printf(b, "}\n");
    rng_state = save;
}

static void
render_gwc(struct sbuf *b, const struct mobj *o)
{
    static const char *const fors[] = {"all", "workload", NULL};

    sb_printf(b, "apiVersion: gateway.networking.k8s.io/v1\nkind: GatewayClass\nmetadata:\n"
                 "  name: istio-waypoint\n");
    if (fors[o->minor % 3] != NULL)
        sb_printf(b, "  labels: {istio.io/waypoint-for: %s}\n", fors[o->minor % 3]);
    sb_printf(b, "spec: {controllerName: istio.io/mesh-controller}\n");
}

/* Nodes node-0..node-3 (the pods' nodeName): topology labels that change with |minor|. */
static void
render_node(struct sbuf *b, const struct mobj *o, uint32_t seed)
{
    uint64_t save = rng_state;

    rng_state = seed * 0x9E3779B97F4A7C15ULL + 5;
    sb_printf(b, "apiVersion: v1\nkind: Node\nmetadata:\n  name: %s\n  labels: {os: linux",
              o->name);
    if (o->minor % 4 != 3)
        sb_printf(b, ", topology.kubernetes.io/zone: z%u", o->minor % 3);
    if (chance(60))
        sb_printf(b, ", topology.kubernetes.io/region: r%u", rnd(2));
    if (o->minor % 5 == 1)
        sb_printf(b, ", topology.istio.io/subzone: s%u", rnd(2));
    sb_printf(b, "}\nstatus: {phase: Running}\n");
    rng_state = save;
}

static void
render_slice(struct sbuf *b, const struct mobj *o, uint32_t seed, bool invalid)
{
    uint64_t save = rng_state;

    rng_state = seed * 0x9E3779B97F4A7C15ULL + 7;
    sb_printf(b,
              "apiVersion: discovery.k8s.io/%s\nkind: EndpointSlice\nmetadata:\n"
              "  name: \"%s\"\n  namespace: \"%s\"\n",
              chance(50) ? "v1" : "v1beta1", o->name, ns_of(o));
    if (!chance(10))
        sb_printf(b, "  labels: {kubernetes.io/service-name: \"%s\"}\n", o->svc);
    sb_printf(b, "addressType: IPv4\nports:\n- {name: http, port: %u}\n", 8000 + o->minor % 3);
    if (chance(50))
        sb_printf(b, "- {port: 7000, protocol: %s}\n", chance(50) ? "TCP" : "UDP");
    sb_printf(b, "endpoints:\n");
    if (invalid)
        sb_printf(b, "- addresses: [\"fd00::1\"]\n");
    uint32_t n = rnd(4);
    for (uint32_t i = 0; i < n; i++) {
        sb_printf(b, "- addresses: [\"192.168.%u.%u\"]\n", rnd(3), 1 + rnd(3));
        if (chance(30))
            sb_printf(b, "  conditions: {ready: %s}\n", chance(50) ? "true" : "false");
        if (chance(20))
            sb_printf(b, "  targetRef: {kind: Pod, name: p-%u}\n", rnd(9));
    }
    rng_state = save;
}

static void
render_obj(struct sbuf *b, const struct mobj *o, uint32_t seed, bool allow_invalid)
{
    switch (o->kind) {
    case M_NS:
        render_ns(b, o, seed);
        break;
    case M_SVC:
        render_svc(b, o, seed);
        break;
    case M_POD:
        render_pod(b, o, seed, (int)(seed % 60000), allow_invalid && o->invalid);
        break;
    case M_AP:
        render_ap(b, o, seed, allow_invalid && o->invalid);
        break;
    case M_PA:
        render_pa(b, o, seed, allow_invalid && o->invalid);
        break;
    case M_GW:
        render_gw(b, o, seed);
        break;
    case M_GWC:
        render_gwc(b, o);
        break;
    case M_NODE:
        render_node(b, o, seed);
        break;
    case M_SLICE:
        render_slice(b, o, seed, allow_invalid && o->invalid);
        break;
    }
    sb_printf(b, "---\n");
}

/* The text of file |f|: its objects in model order, and the duplicates it holds. */
static char *
render_file(const struct model *m, int f, bool allow_errors)
{
    struct sbuf b = {0};

    sb_printf(&b, "%s", ""); /* never NULL, even for an empty file */
    for (int i = 0; i < m->header[f]; i++)
        sb_printf(&b, "# header line %d\n", i);
    for (size_t i = 0; i < m->n; i++) {
        const struct mobj *o = &m->o[i];
        if (o->file == f)
            render_obj(&b, o, o->seed, allow_errors);
        if (o->file >= 0 && o->dup_file == f)
            render_obj(&b, o, o->dup_seed, false);
    }
    if (allow_errors && m->broken[f])
        sb_printf(&b, "apiVersion: v1\nkind: [\n");
    return b.p;
}

static void
file_path(const struct model *m, int f, char *out, size_t len)
{
    snprintf(out, len, "%s/f%d.yaml", m->dir, f);
}

/* Writes what changed; returns nothing, the store finds out by syncing. */
static void
write_files(struct model *m, bool allow_errors)
{
    char path[128];

    for (int f = 0; f < N_FILES; f++) {
        file_path(m, f, path, sizeof(path));
        if (!m->present[f]) {
            if (m->written[f] != NULL) {
                assert_int_equal(unlink(path), 0);
                free(m->written[f]);
                m->written[f] = NULL;
            }
            continue;
        }
        char *text = render_file(m, f, allow_errors);
        if (m->written[f] != NULL && strcmp(m->written[f], text) == 0) {
            free(text);
            continue;
        }
        FILE *fp = fopen(path, "w");
        assert_non_null(fp);
        assert_int_equal(fwrite(text, 1, strlen(text), fp), strlen(text));
        assert_int_equal(fclose(fp), 0);
        free(m->written[f]);
        m->written[f] = text;
    }
}

static struct mobj *
add_obj(struct model *m, enum mkind kind, int ns)
{
    assert_true(m->n < MAX_OBJS);
    struct mobj *o = &m->o[m->n++];
    int id = m->next_id++;

    memset(o, 0, sizeof(*o));
    o->kind = kind;
    o->ns = ns;
    o->file = (int)rnd(N_FILES);
    o->dup_file = -1;
    o->seed = 1 + rnd(1u << 30);
    o->minor = rnd(6);
    if (kind == M_POD)
        snprintf(o->name, sizeof(o->name), chance(80) ? "p-%d" : "p-%d-x", id);
    else if (kind == M_SVC)
        snprintf(o->name, sizeof(o->name), chance(70) ? "s-%d" : "s-%d-%d", id % 97, id);
    else if (kind == M_AP)
        snprintf(o->name, sizeof(o->name), chance(80) ? "ap-%d" : "ap-%d-x", id % 23);
    else if (kind == M_PA)
        snprintf(o->name, sizeof(o->name), "pa-%d", id % 7);
    else if (kind == M_GW)
        snprintf(o->name, sizeof(o->name), "w%d", id % 3);
    else if (kind == M_GWC)
        snprintf(o->name, sizeof(o->name), "istio-waypoint");
    else if (kind == M_NODE)
        snprintf(o->name, sizeof(o->name), "node-%d", id % 4);
    else if (kind == M_SLICE)
        snprintf(o->name, sizeof(o->name), "es-%d", id % 11);
    else
        snprintf(o->name, sizeof(o->name), "%s", ns_names[ns]);
    /* Two Services may end up with one name: then one file defines both (a duplicate). */
    return o;
}

/* A live object of |kind| (any kind when |kind| < 0), or NULL. */
static struct mobj *
pick(struct model *m, int kind)
{
    for (int tries = 0; tries < 50; tries++) {
        struct mobj *o = &m->o[rnd((uint32_t)m->n)];
        if (o->file >= 0 && (kind < 0 || (int)o->kind == kind))
            return o;
    }
    return NULL;
}

/* An EndpointSlice naming a live Service (in its namespace), or some other name. */
static void
add_slice(struct model *m)
{
    struct mobj *svc = pick(m, M_SVC);
    struct mobj *o = add_obj(m, M_SLICE, svc != NULL ? svc->ns : (int)rnd(N_NS));

    snprintf(o->svc, sizeof(o->svc), "%s", svc != NULL && chance(85) ? svc->name : "s-none");
}

static void
model_init(struct model *m, size_t pods, size_t services)
{
    memset(m, 0, sizeof(*m));
    snprintf(m->dir, sizeof(m->dir), "/tmp/test_k8s_diff.XXXXXX");
    assert_non_null(mkdtemp(m->dir));
    for (int f = 0; f < N_FILES; f++)
        m->present[f] = true;
    /* "z0" has no Namespace object. */
    for (int ns = 0; ns < N_NS - 1; ns++)
        add_obj(m, M_NS, ns)->file = 0;
    for (size_t i = 0; i < services; i++)
        add_obj(m, M_SVC, (int)rnd(N_NS));
    for (size_t i = 0; i < pods; i++)
        add_obj(m, M_POD, (int)rnd(N_NS));
    for (size_t i = 0; i < 12; i++)
        add_obj(m, M_AP, (int)rnd(N_NS_POLICY));
    for (size_t i = 0; i < 4; i++)
        add_obj(m, M_PA, (int)rnd(N_NS_POLICY));
    for (size_t i = 0; i < 6; i++)
        add_obj(m, M_GW, (int)rnd(N_NS));
    add_obj(m, M_GWC, 0);
    for (size_t i = 0; i < 4; i++)
        add_obj(m, M_NODE, 0);
    for (size_t i = 0; i < 8; i++)
        add_slice(m);
}

static void
model_free(struct model *m)
{
    char path[128];

    for (int f = 0; f < N_FILES; f++) {
        if (m->written[f] != NULL) {
            file_path(m, f, path, sizeof(path));
            unlink(path);
        }
        free(m->written[f]);
    }
    rmdir(m->dir);
}

/* One random edit: a label, a selector, content, objects and files coming and going,
 * duplicates, reformatting, errors. */
static void
edit(struct model *m)
{
    uint32_t r = rnd(124);
    struct mobj *o;

    if (r < 30 && (o = pick(m, M_POD)) != NULL) {
        o->minor++;
    } else if (r < 38 && (o = pick(m, M_POD)) != NULL) {
        o->seed = 1 + rnd(1u << 30);
    } else if (r < 43 && (o = pick(m, M_SVC)) != NULL) {
        o->minor++;
    } else if (r < 47 && (o = pick(m, M_SVC)) != NULL) {
        o->seed = 1 + rnd(1u << 30);
    } else if (r < 50 && (o = pick(m, M_NS)) != NULL) {
        if (chance(80))
            o->minor++;
        else
            o->seed = 1 + rnd(1u << 30);
    } else if (r < 56) {
        add_obj(m, M_POD, (int)rnd(N_NS));
    } else if (r < 60 && (o = pick(m, M_POD)) != NULL) {
        o->file = -1;
    } else if (r < 62) {
        add_obj(m, M_SVC, (int)rnd(N_NS));
    } else if (r < 64 && (o = pick(m, M_SVC)) != NULL) {
        o->file = -1;
    } else if (r < 65) {
        /* A Namespace object comes or goes. */
        int ns = (int)rnd(N_NS);
        struct mobj *found = NULL;
        for (size_t i = 0; i < m->n; i++)
            if (m->o[i].kind == M_NS && m->o[i].ns == ns && m->o[i].file >= 0)
                found = &m->o[i];
        if (found != NULL)
            found->file = -1;
        else
            add_obj(m, M_NS, ns);
    } else if (r < 71 && (o = pick(m, -1)) != NULL) {
        o->file = (int)rnd(N_FILES);
    } else if (r < 77 && (o = pick(m, -1)) != NULL) {
        if (o->dup_file >= 0 && chance(50)) {
            o->dup_file = -1;
        } else {
            o->dup_file = (int)rnd(N_FILES);
            o->dup_seed = chance(50) ? o->seed : 1 + rnd(1u << 30);
        }
    } else if (r < 82) {
        m->header[rnd(N_FILES)] = (int)rnd(4);
    } else if (r < 84) {
        int f = (int)rnd(N_FILES);
        m->present[f] = !m->present[f];
    } else if (r < 88) {
        m->broken[rnd(N_FILES)] = true;
    } else if (r < 92 && (o = pick(m, M_POD)) != NULL) {
        o->invalid = true;
        o->minor++; /* what the file says changes, the store keeps the version before */
    } else if (r < 97 && (o = pick(m, M_AP)) != NULL) {
        if (chance(60))
            o->minor++; /* another selector */
        else
            o->seed = 1 + rnd(1u << 30);
    } else if (r < 99) {
        add_obj(m, M_AP, (int)rnd(N_NS_POLICY));
    } else if (r < 100 && (o = pick(m, M_AP)) != NULL) {
        o->file = -1;
    } else if (r < 103 && (o = pick(m, M_PA)) != NULL) {
        if (chance(60))
            o->minor++;
        else
            o->seed = 1 + rnd(1u << 30);
    } else if (r < 104) {
        add_obj(m, M_PA, (int)rnd(N_NS_POLICY));
    } else if (r < 105 && (o = pick(m, M_PA)) != NULL) {
        o->file = -1;
    } else if (r < 107 && (o = pick(m, chance(50) ? M_AP : M_PA)) != NULL) {
        o->invalid = true;
        o->minor++;
    } else if (r < 109 && (o = pick(m, M_GW)) != NULL) {
        /* Another traffic type, allowedRoutes, class or listener. */
        if (chance(60))
            o->minor++;
        else
            o->seed = 1 + rnd(1u << 30);
    } else if (r < 110) {
        add_obj(m, M_GW, (int)rnd(N_NS));
    } else if (r < 111 && (o = pick(m, M_GW)) != NULL) {
        o->file = -1;
    } else if (r < 112) {
        /* The GatewayClass comes, goes or changes its traffic type. */
        struct mobj *c = NULL;
        for (size_t i = 0; i < m->n; i++)
            if (m->o[i].kind == M_GWC && m->o[i].file >= 0)
                c = &m->o[i];
        if (c == NULL)
            add_obj(m, M_GWC, 0);
        else if (chance(50))
            c->minor++;
        else
            c->file = -1;
    } else if (r < 115 && (o = pick(m, M_NODE)) != NULL) {
        o->minor++; /* other topology labels: its pods' locality */
    } else if (r < 116) {
        if ((o = pick(m, M_NODE)) != NULL && chance(50))
            o->file = -1;
        else
            add_obj(m, M_NODE, 0);
    } else if (r < 118 && (o = pick(m, M_SLICE)) != NULL) {
        if (chance(50))
            o->minor++;
        else
            o->seed = 1 + rnd(1u << 30);
    } else if (r < 119) {
        add_slice(m);
    } else if (r < 120 && (o = pick(m, M_SLICE)) != NULL) {
        o->file = -1;
    } else if (r < 121 && (o = pick(m, M_SLICE)) != NULL) {
        o->invalid = true;
        o->minor++;
    }
    /* else: nothing changes (a sync and build that must find nothing to do) */
}

/* ---- Building and comparing ---- */

static const struct k8s_build_opts opt_sets[] = {
    {0},
    {.cluster_id = "n-a", .domain_suffix = "example.org", .network = "net1"},
    {.trust_domain = "td.example"},
};

/* |cv| NULL: from scratch. */
static void
build(struct k8s_conv *cv, const struct k8s_store *st, const struct k8s_build_opts *o,
      struct mesh_resources *r, struct k8s_diags *d)
{
    if (cv != NULL)
        assert_int_equal(k8s_conv_build(cv, st, o, r, d), 0);
    else
        assert_int_equal(k8s_build_resources(st, o, r, d), 0);
}

static void
assert_same_diags(const struct k8s_diags *a, const struct k8s_diags *b, const char *what)
{
    if (a->n != b->n)
        fail_msg("%s: %zu diagnostics against %zu", what, a->n, b->n);
    for (size_t i = 0; i < a->n; i++) {
        char *x = k8s_diag_str(&a->v[i]), *y = k8s_diag_str(&b->v[i]);
        if (strcmp(x, y) != 0)
            fail_msg("%s: diagnostic %zu:\n  %s\n  %s", what, i, x, y);
        free(x);
        free(y);
    }
}

static void
assert_same_resources(const struct mesh_resources *a, const struct mesh_resources *b)
{
    for (size_t i = 0; a->n != b->n && i < a->n && i < b->n; i++)
        if (strcmp(a->v[i].name, b->v[i].name) != 0)
            fail_msg("%zu resources against %zu from scratch; first difference: %s against %s",
                     a->n, b->n, a->v[i].name, b->v[i].name);
    if (a->n != b->n)
        fail_msg("%zu resources against %zu from scratch", a->n, b->n);
    for (size_t i = 0; i < a->n; i++) {
        const struct mesh_resource *x = &a->v[i], *y = &b->v[i];
        if (strcmp(x->name, y->name) != 0)
            fail_msg("resource %zu: %s against %s from scratch", i, x->name, y->name);
        assert_string_equal(x->type_url, y->type_url);
        if (x->len != y->len || memcmp(x->data, y->data, x->len) != 0)
            fail_msg("resource %s: bytes differ from scratch", x->name);
        assert_string_equal(x->version, y->version);
        if (i > 0) {
            /* (type URL, name) order: Authorization first, then Address. */
            int c = strcmp(a->v[i - 1].type_url, x->type_url);
            assert_true(c < 0 || (c == 0 && strcmp(a->v[i - 1].name, x->name) < 0));
        }
    }
}

static bool
naive_selects(const struct k8s_obj *svc, const struct k8s_obj *pod)
{
    const struct k8s_service *s = &svc->u.svc;

    if (s->external_name || s->n_selector == 0 || strcmp(svc->meta.ns, pod->meta.ns) != 0)
        return false;
    for (size_t i = 0; i < s->n_selector; i++) {
        const char *v = k8s_obj_label(pod, s->selector[i].k);
        if (v == NULL || strcmp(v, s->selector[i].v) != 0)
            return false;
    }
    return true;
}

static bool
has_tcp_port(const struct k8s_obj *pod, const char *name)
{
    for (size_t i = 0; i < pod->u.pod.n_ports; i++)
        if (pod->u.pod.ports[i].tcp && strcmp(pod->u.pod.ports[i].name, name) == 0)
            return true;
    return false;
}

static bool
naive_subset(const struct k8s_kv *sel, size_t n, const struct k8s_obj *pod)
{
    for (size_t i = 0; i < n; i++) {
        const char *v = k8s_obj_label(pod, sel[i].k);
        if (v == NULL || strcmp(v, sel[i].v) != 0)
            return false;
    }
    return true;
}

static int
naive_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static const struct k8s_obj *
naive_older(const struct k8s_obj *cur, const struct k8s_obj *o)
{
    return cur == NULL || o->u.pa.created < cur->u.pa.created ? o : cur;
}

static bool
naive_mode(const struct k8s_obj *o, enum k8s_mtls m)
{
    return o != NULL && o->u.pa.mode == m;
}

static bool
naive_port_mode(const struct k8s_obj *o, enum k8s_mtls a, enum k8s_mtls b)
{
    for (size_t i = 0; i < o->u.pa.n_ports; i++)
        if (o->u.pa.ports[i].mode == a || o->u.pa.ports[i].mode == b)
            return true;
    return false;
}

/*
 * A workload's authorization_policies by walking every policy of the store:
 * selector AuthorizationPolicies of its namespace and the root one, sorted,
 * then istiod's PeerAuthentication keys. Returns how many there are in *out.
 */
static size_t
naive_policies(const struct k8s_store *st, const struct k8s_obj *pod, char **out, size_t cap)
{
    const char *root = K8S_ROOT_NAMESPACE, *ns = pod->meta.ns;
    size_t n = 0;

    for (size_t i = 0; i < k8s_store_count(st, K8S_AUTHORIZATION_POLICY); i++) {
        const struct k8s_obj *o = k8s_store_at(st, K8S_AUTHORIZATION_POLICY, i);
        const struct k8s_ap *ap = &o->u.ap;
        if ((strcmp(o->meta.ns, ns) != 0 && strcmp(o->meta.ns, root) != 0) || !ap->sent ||
            !ap->match_labels || !naive_subset(ap->labels, ap->n_labels, pod))
            continue;
        assert_true(n < cap);
        out[n++] = xasprintf("%s/%s", o->meta.ns, o->meta.name);
    }
    qsort(out, n, sizeof(*out), naive_cmp);
    const struct k8s_obj *mesh = NULL, *nsp = NULL, *wl = NULL;
    for (size_t i = 0; i < k8s_store_count(st, K8S_PEER_AUTHENTICATION); i++) {
        const struct k8s_obj *o = k8s_store_at(st, K8S_PEER_AUTHENTICATION, i);
        const struct k8s_pa *pa = &o->u.pa;
        bool in_root = strcmp(o->meta.ns, root) == 0;
        if (!(in_root && !pa->selector) &&
            !(strcmp(o->meta.ns, ns) == 0 &&
              (!pa->selector || naive_subset(pa->labels, pa->n_labels, pod))))
            continue;
        if (pa->n_labels == 0) {
            if (in_root)
                mesh = naive_older(mesh, o);
            else
                nsp = naive_older(nsp, o);
        } else if (!in_root) {
            wl = naive_older(wl, o);
        }
    }
    bool strict = naive_mode(mesh, K8S_MTLS_STRICT);
    if (nsp != NULL && nsp->u.pa.mode != K8S_MTLS_UNSET)
        strict = naive_mode(nsp, K8S_MTLS_STRICT);
    bool port_key = false;
    if (wl != NULL) {
        enum k8s_mtls mode = wl->u.pa.mode;
        bool relaxed = mode == K8S_MTLS_PERMISSIVE || mode == K8S_MTLS_DISABLE;
        if (mode == K8S_MTLS_STRICT)
            strict = true;
        if (relaxed)
            strict = false;
        if (wl->u.pa.n_ports > 0) {
            if (mode == K8S_MTLS_STRICT || (mode == K8S_MTLS_UNSET && strict)) {
                bool exception =
                    mode == K8S_MTLS_STRICT
                        ? naive_port_mode(wl, K8S_MTLS_PERMISSIVE, K8S_MTLS_DISABLE)
                        : naive_port_mode(wl, K8S_MTLS_PERMISSIVE, K8S_MTLS_PERMISSIVE);
                if (exception) {
                    port_key = true;
                    strict = false;
                }
            } else if (naive_port_mode(wl, K8S_MTLS_STRICT, K8S_MTLS_STRICT)) {
                port_key = true;
            }
        }
    }
    char *keys[2];
    size_t k = 0;
    if (strict)
        keys[k++] = xasprintf("%s/istio_converted_static_strict", root);
    if (port_key)
        keys[k++] = xasprintf("%s/converted_peer_authentication_%s", wl->meta.ns, wl->meta.name);
    if (k == 2)
        qsort(keys, 2, sizeof(*keys), naive_cmp);
    for (size_t i = 0; i < k; i++) {
        assert_true(n < cap);
        out[n++] = keys[i];
    }
    return n;
}

/* What the comparisons covered, summed over checkpoints. */
static struct {
    size_t resources, warnings, dups, policies, pol_refs, waypoints;
} st_stats;

/*
 * Every workload's services map against every Service of the store, and the
 * named-port warnings as the conversion gave them before it had indexes;
 * its authorization_policies against every policy (naive_policies). Returns
 * how many (pod, Service) pairs matched; adds the policy references to *pols.
 */
static size_t
check_naive(const struct k8s_store *st, const struct k8s_build_opts *o,
            const struct mesh_resources *r, const struct k8s_diags *all_diags, size_t *pols)
{
    const char *suffix = o->domain_suffix ? o->domain_suffix : "cluster.local";
    const char *cluster = o->cluster_id ? o->cluster_id : "Kubernetes";
    size_t n_warn = 0, pairs = 0;
    /* The named-port warnings, in order; the policies' warnings are compared elsewhere. */
    struct k8s_diags port_diags = {0}, *build_diags = &port_diags;
    for (size_t i = 0; i < all_diags->n; i++)
        if (strstr(all_diags->v[i].msg, "has no TCP container port named") != NULL)
            k8s_diag_add(&port_diags, all_diags->v[i].file, all_diags->v[i].line,
                         all_diags->v[i].severity, all_diags->v[i].code, "%s", all_diags->v[i].msg);

    for (size_t i = 0; i < k8s_store_count(st, K8S_POD); i++) {
        const struct k8s_obj *pod = k8s_store_at(st, K8S_POD, i);
        if (pod->u.pod.terminal || pod->u.pod.n_ips == 0)
            continue;
        char *uid = xasprintf("%s//Pod/%s/%s", cluster, pod->meta.ns, pod->meta.name);
        const struct mesh_resource *res = mesh_resources_find(r, K8S_TYPE_ADDRESS, uid);
        assert_non_null(res);
        Istio__Workload__Address *a = istio__workload__address__unpack(NULL, res->len, res->data);
        assert_non_null(a);
        const Istio__Workload__Workload *w = a->workload;
        size_t want = 0;
        for (size_t j = 0; j < k8s_store_count(st, K8S_SERVICE); j++) {
            const struct k8s_obj *svc = k8s_store_at(st, K8S_SERVICE, j);
            if (!naive_selects(svc, pod))
                continue;
            char *key =
                xasprintf("%s/%s.%s.svc.%s", svc->meta.ns, svc->meta.name, svc->meta.ns, suffix);
            bool found = false;
            for (size_t k = 0; k < w->n_services; k++)
                found |= strcmp(w->services[k]->key, key) == 0;
            if (!found)
                fail_msg("%s: no services entry %s", uid, key);
            free(key);
            want++;
            for (size_t k = 0; k < svc->u.svc.n_ports; k++) {
                const char *t = svc->u.svc.ports[k].target_name;
                if (t == NULL || has_tcp_port(pod, t))
                    continue;
                /* The same warning, in the same order. */
                assert_true(n_warn < build_diags->n);
                char *msg = xasprintf("Pod %s/%s has no TCP container port named \"%s\" "
                                      "(targetPort of Service %s port %u); that port is not "
                                      "mapped to this pod",
                                      pod->meta.ns, pod->meta.name, t, svc->meta.name,
                                      svc->u.svc.ports[k].port);
                assert_string_equal(build_diags->v[n_warn].msg, msg);
                assert_string_equal(build_diags->v[n_warn].file, pod->file);
                assert_int_equal(build_diags->v[n_warn].line, pod->line);
                n_warn++;
                free(msg);
            }
        }
        if (w->n_services != want)
            fail_msg("%s: %zu services entries, %zu selecting Services", uid, w->n_services, want);
        pairs += want;
        char *expect[128];
        size_t n_expect = naive_policies(st, pod, expect, ARRAY_LEN(expect));
        bool same = n_expect == w->n_authorization_policies;
        for (size_t k = 0; same && k < n_expect; k++)
            same = strcmp(expect[k], w->authorization_policies[k]) == 0;
        if (!same)
            fail_msg("%s: %zu authorization_policies (%s...), %zu by a naive walk (%s...)", uid,
                     w->n_authorization_policies,
                     w->n_authorization_policies ? w->authorization_policies[0] : "", n_expect,
                     n_expect ? expect[0] : "");
        *pols += n_expect;
        st_stats.waypoints += w->waypoint != NULL;
        for (size_t k = 0; k < n_expect; k++)
            free(expect[k]);
        istio__workload__address__free_unpacked(a, NULL);
        free(uid);
    }
    assert_int_equal(n_warn, build_diags->n);
    k8s_diags_clear(&port_diags);
    /* Every AuthorizationPolicy that is sent has its resource; the static STRICT policy
     * exists exactly when a PeerAuthentication does. */
    for (size_t i = 0; i < k8s_store_count(st, K8S_AUTHORIZATION_POLICY); i++) {
        const struct k8s_obj *ap = k8s_store_at(st, K8S_AUTHORIZATION_POLICY, i);
        char *name = xasprintf("%s/%s", ap->meta.ns, ap->meta.name);
        assert_int_equal(mesh_resources_find(r, K8S_TYPE_AUTHORIZATION, name) != NULL,
                         ap->u.ap.sent);
        free(name);
    }
    assert_int_equal(mesh_resources_find(r, K8S_TYPE_AUTHORIZATION,
                                         "istio-system/istio_converted_static_strict") != NULL,
                     k8s_store_count(st, K8S_PEER_AUTHENTICATION) > 0);
    return pairs;
}

/* A fresh store with every file of the model, loaded in a random order. */
static struct k8s_store *
from_scratch(const struct model *m)
{
    struct k8s_store *st = k8s_store_new();
    int order[N_FILES];
    char path[128];

    for (int f = 0; f < N_FILES; f++)
        order[f] = f;
    for (int f = N_FILES - 1; f > 0; f--) {
        int j = (int)rnd((uint32_t)f + 1), t = order[f];
        order[f] = order[j];
        order[j] = t;
    }
    for (int i = 0; i < N_FILES; i++) {
        int f = order[i];
        if (m->written[f] == NULL)
            continue;
        file_path(m, f, path, sizeof(path));
        k8s_store_load_buf(st, path, m->written[f], strlen(m->written[f]), NULL);
    }
    return st;
}


static void
checkpoint(struct model *m, struct k8s_conv *cv, struct k8s_store *st,
           const struct k8s_build_opts *o, size_t *pairs)
{
    struct k8s_diags d1 = {0}, d2 = {0}, s1 = {0}, s2 = {0};
    struct mesh_resources r1, r2;

    /* Errors fixed: now the files alone say what the store holds. */
    for (int f = 0; f < N_FILES; f++)
        m->broken[f] = false;
    for (size_t i = 0; i < m->n; i++)
        m->o[i].invalid = false;
    write_files(m, false);
    k8s_store_sync_dir(st, m->dir, NULL);
    build(cv, st, o, &r1, &d1);
    k8s_conv_diags(cv, st, &s1);

    struct k8s_store *ref = from_scratch(m);
    build(NULL, ref, o, &r2, &d2);
    k8s_build_diags(ref, &s2);
    /* The generator writes valid objects only; duplicates and bindings to a waypoint that is
     * not there (IST0101) are the errors on purpose. */
    for (size_t i = 0; i < s2.n; i++)
        if (s2.v[i].severity == K8S_ERROR && strstr(s2.v[i].msg, "already defined") == NULL &&
            (s2.v[i].code == NULL || strcmp(s2.v[i].code, "IST0101") != 0))
            fail_msg("generator: %s", k8s_diag_str(&s2.v[i]));
    st_stats.resources += r2.n;
    st_stats.warnings += d2.n;
    st_stats.dups += s2.n - d2.n;
    for (size_t i = 0; i < r2.n; i++)
        st_stats.policies += strcmp(r2.v[i].type_url, K8S_TYPE_AUTHORIZATION) == 0;
    assert_same_resources(&r1, &r2);
    assert_same_diags(&d1, &d2, "build warnings");
    assert_same_diags(&s1, &s2, "store diagnostics");
    *pairs += check_naive(ref, o, &r2, &d2, &st_stats.pol_refs);

    mesh_resources_free(&r1);
    mesh_resources_free(&r2);
    k8s_diags_clear(&d1);
    k8s_diags_clear(&d2);
    k8s_diags_clear(&s1);
    k8s_diags_clear(&s2);
    k8s_store_free(ref);
}

static void
run_seed(uint64_t seed)
{
    struct model *m = xcalloc(1, sizeof(*m));
    struct k8s_store *st = k8s_store_new();
    struct k8s_conv *cv = k8s_conv_new();
    const struct k8s_build_opts *o = &opt_sets[0];
    size_t pairs = 0, checkpoints = 0;

    rng_state = seed * 0x9E3779B97F4A7C15ULL + 7;
    model_init(m, 300, 45);
    for (int step = 0; step < 200; step++) {
        int edits = 1 + (int)rnd(3);
        for (int e = 0; e < edits; e++)
            edit(m);
        if (chance(3))
            o = &opt_sets[rnd(ARRAY_LEN(opt_sets))];
        write_files(m, true);
        /* meshd's order: sync, diagnostics, build; sometimes only some of it. */
        k8s_store_sync_dir(st, m->dir, NULL);
        if (chance(60)) {
            struct k8s_diags s = {0};
            k8s_conv_diags(cv, st, &s);
            k8s_diags_clear(&s);
        }
        if (chance(80)) {
            struct mesh_resources r;
            build(cv, st, o, &r, NULL);
            mesh_resources_free(&r);
        }
        if (step % 10 == 9) {
            checkpoint(m, cv, st, o, &pairs);
            checkpoints++;
        }
    }
    /* The comparison saw Services selecting pods, not only empty maps. */
    print_message("seed %llu: %zu checkpoints, %zu resources (%zu Authorization), %zu selections, "
                  "%zu policy references, %zu workloads with a waypoint, %zu build warnings, "
                  "%zu other diagnostics compared\n",
                  (unsigned long long)seed, checkpoints, st_stats.resources, st_stats.policies,
                  pairs, st_stats.pol_refs, st_stats.waypoints, st_stats.warnings, st_stats.dups);
    assert_true(pairs > checkpoints * 50);
    assert_true(st_stats.policies > checkpoints * 5 && st_stats.pol_refs > checkpoints * 20);
    assert_true(st_stats.waypoints > checkpoints);
    assert_true(st_stats.warnings > 0 && st_stats.dups > 0);
    memset(&st_stats, 0, sizeof(st_stats));
    k8s_conv_free(cv);
    k8s_store_free(st);
    model_free(m);
    free(m);
}

static void
test_random_edits(void **state)
{
    const char *env = getenv("MESH_K8S_DIFF_SEED");
    (void)state;

    if (env != NULL) {
        run_seed(strtoull(env, NULL, 10));
        return;
    }
    for (uint64_t seed = 1; seed <= 3; seed++)
        run_seed(seed);
}

/* ---- The fast path is taken ---- */

static char *
bench_pods(int pods, int version_of_p0)
{
    struct sbuf b = {0};

    sb_printf(&b, "apiVersion: v1\nkind: Namespace\nmetadata: {name: ns-0, labels: "
                  "{istio.io/dataplane-mode: ambient}}\n---\n");
    for (int i = 0; i < pods; i++)
        sb_printf(&b,
                  "apiVersion: v1\nkind: Pod\nmetadata: {name: p-%d, namespace: ns-0, labels: "
                  "{app: s-%d, version: v%d}}\nspec: {containers: [{name: main, ports: [{name: "
                  "http, containerPort: 8080}]}]}\nstatus: {phase: Running, podIPs: [{ip: "
                  "\"10.0.%d.%d\"}]}\n---\n",
                  i, i / 10, i == 0 ? version_of_p0 : 1, i / 250, 1 + i % 250);
    for (int j = 0; j < pods / 10; j++)
        sb_printf(&b,
                  "apiVersion: v1\nkind: Service\nmetadata: {name: s-%d, namespace: ns-0}\nspec: "
                  "{selector: {app: s-%d}, clusterIP: \"10.96.%d.%d\", ports: [{port: 80, "
                  "targetPort: http}]}\n---\n",
                  j, j, j / 250, 1 + j % 250);
    return b.p;
}

/* One pod's label changes in a file of 2,000 pods: only its resource is built again. */
static void
test_one_pod_fast_path(void **state)
{
    enum { PODS = 2000 };
    struct k8s_store *st = k8s_store_new();
    struct k8s_conv *cv = k8s_conv_new();
    struct mesh_resources r1, r2;
    (void)state;

    char *text = bench_pods(PODS, 1);
    assert_int_equal(k8s_store_load_buf(st, "all.yaml", text, strlen(text), NULL), 0);
    free(text);
    build(cv, st, NULL, &r1, NULL);
    assert_int_equal(r1.n, PODS + PODS / 10);
    assert_int_equal(k8s_conv_packed(cv), PODS + PODS / 10);

    /* The whole file is parsed again; equal objects keep their gens and what was built. */
    text = bench_pods(PODS, 2);
    assert_int_equal(k8s_store_load_buf(st, "all.yaml", text, strlen(text), NULL), 0);
    free(text);
    build(cv, st, NULL, &r2, NULL);
    size_t changed = 0;
    /* One resource packed again (the one whose version changed, p-0's: below). */
    assert_int_equal(k8s_conv_packed(cv), 1);
    for (size_t i = 0; i < r1.n; i++) {
        assert_string_equal(r1.v[i].name, r2.v[i].name);
        changed += strcmp(r1.v[i].version, r2.v[i].version) != 0;
    }
    assert_int_equal(changed, 1);
    assert_non_null(mesh_resources_find(&r2, K8S_TYPE_ADDRESS, "Kubernetes//Pod/ns-0/p-0"));
    static const char p0[] = "Kubernetes//Pod/ns-0/p-0";
    assert_string_not_equal(mesh_resources_find(&r1, K8S_TYPE_ADDRESS, p0)->version,
                            mesh_resources_find(&r2, K8S_TYPE_ADDRESS, p0)->version);
    mesh_resources_free(&r1);
    mesh_resources_free(&r2);
    k8s_conv_free(cv);
    k8s_store_free(st);
}

/* Builds |st| and a fresh store loaded with |files| and checks they agree. */
static void
assert_as_fresh(struct k8s_conv *cv, const struct k8s_store *st, const char *const *files, size_t n)
{
    struct k8s_store *ref = k8s_store_new();
    struct mesh_resources r1, r2;
    struct k8s_diags d1 = {0}, d2 = {0};

    for (size_t i = 0; i < n; i++)
        k8s_store_load_buf(ref, files[2 * i], files[2 * i + 1], strlen(files[2 * i + 1]), NULL);
    build(cv, st, NULL, &r1, &d1);
    build(NULL, ref, NULL, &r2, &d2);
    assert_same_resources(&r1, &r2);
    assert_same_diags(&d1, &d2, "build warnings");
    mesh_resources_free(&r1);
    mesh_resources_free(&r2);
    k8s_diags_clear(&d1);
    k8s_diags_clear(&d2);
    k8s_store_free(ref);
}

/*
 * Edges the random edits rarely reach: the first Service of a store that had
 * none, the last one going, a namespace whose Services all go and come back.
 */
static void
test_services_come_and_go(void **state)
{
    static const char pods[] =
        "apiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: a, labels: {app: x}}\n"
        "status: {podIP: 10.0.0.1}\n---\n"
        "apiVersion: v1\nkind: Pod\nmetadata: {name: q, namespace: b, labels: {app: x}}\n"
        "status: {podIP: 10.0.0.2}\n";
    static const char svc_a[] = "apiVersion: v1\nkind: Service\nmetadata: {name: s, namespace: a}\n"
                                "spec: {selector: {app: x}, ports: [{port: 80}]}\n";
    static const char svc_b[] = "apiVersion: v1\nkind: Service\nmetadata: {name: s, namespace: b}\n"
                                "spec: {selector: {app: x}, ports: [{port: 80}]}\n";
    const char *const only_pods[] = {"pods.yaml", pods};
    const char *const with_a[] = {"pods.yaml", pods, "svc.yaml", svc_a};
    const char *const with_b[] = {"pods.yaml", pods, "svc.yaml", svc_b};
    struct k8s_store *st = k8s_store_new();
    struct k8s_conv *cv = k8s_conv_new();
    (void)state;

    k8s_store_load_buf(st, "pods.yaml", pods, strlen(pods), NULL);
    assert_as_fresh(cv, st, only_pods, 1);
    k8s_store_load_buf(st, "svc.yaml", svc_a, strlen(svc_a), NULL);
    assert_as_fresh(cv, st, with_a, 2);
    k8s_store_load_buf(st, "svc.yaml", svc_b, strlen(svc_b), NULL);
    assert_as_fresh(cv, st, with_b, 2);
    k8s_store_remove_file(st, "svc.yaml");
    assert_as_fresh(cv, st, only_pods, 1);
    k8s_store_load_buf(st, "svc.yaml", svc_a, strlen(svc_a), NULL);
    assert_as_fresh(cv, st, with_a, 2);
    k8s_conv_free(cv);
    k8s_store_free(st);
}

/* ---- Waypoints: a change repacks exactly what it reaches ---- */

#define WP_NS(labels)                                                                              \
    "apiVersion: v1\nkind: Namespace\nmetadata: {name: app, labels: " labels "}\n---\n"          \
    "apiVersion: v1\nkind: Namespace\nmetadata: {name: other}\n"
#define WP_GW(labels)                                                                              \
    "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\nmetadata: {name: w, namespace: "    \
    "app, labels: " labels "}\nspec: {gatewayClassName: istio-waypoint, listeners: [{name: mesh, " \
    "port: 15008, protocol: HBONE}]}\n"
#define WP_CLASS(t)                                                                                \
    "apiVersion: gateway.networking.k8s.io/v1\nkind: GatewayClass\nmetadata: {name: "              \
    "istio-waypoint, labels: {istio.io/waypoint-for: " t "}}\n"

/* Six pods and two Services in app, two pods in other; pod p-0's extra labels. */
static char *
wp_pods(const char *p0_labels)
{
    struct sbuf b = {0};

    for (int i = 0; i < 8; i++)
        sb_printf(&b,
                  "apiVersion: v1\nkind: Pod\nmetadata: {name: p-%d, namespace: %s, labels: "
                  "{app: x%s}}\nstatus: {podIP: 10.2.0.%d}\n---\n",
                  i, i < 6 ? "app" : "other", i == 0 ? p0_labels : "", i + 1);
    sb_printf(&b, "apiVersion: v1\nkind: Service\nmetadata: {name: s, namespace: app}\nspec: "
                  "{selector: {app: x}, clusterIP: 10.96.1.1, ports: [{port: 80}]}\n---\n"
                  "apiVersion: v1\nkind: Service\nmetadata: {name: t, namespace: app}\nspec: "
                  "{selector: {app: q}, clusterIP: 10.96.1.2, ports: [{port: 80}]}\n");
    return b.p;
}

struct wp_files {
    const char *v[8]; /* name, text pairs; NULL text: absent */
};

/* Loads |name| (NULL |text|: removes it) into |st|, then checks the build against a fresh one
 * and that it packed |packed| resources. */
static void
wp_step(struct k8s_conv *cv, struct k8s_store *st, struct wp_files *f, const char *name,
        const char *text, size_t packed)
{
    const char *now[8];
    size_t n = 0;

    for (size_t i = 0; i < 8; i += 2)
        if (f->v[i] != NULL && strcmp(f->v[i], name) == 0)
            f->v[i + 1] = text;
    struct k8s_diags d = {0};
    if (text != NULL && k8s_store_load_buf(st, name, text, strlen(text), &d) != 0)
        fail_msg("%s: %s", name, d.n ? k8s_diag_str(&d.v[0]) : "?");
    k8s_diags_clear(&d);
    if (text == NULL)
        k8s_store_remove_file(st, name);
    for (size_t i = 0; i < 8; i += 2)
        if (f->v[i] != NULL && f->v[i + 1] != NULL) {
            now[2 * n] = f->v[i];
            now[2 * n + 1] = f->v[i + 1];
            n++;
        }
    assert_as_fresh(cv, st, now, n);
    if (k8s_conv_packed(cv) != packed)
        fail_msg("%s: %zu resources packed again, %zu expected", name, k8s_conv_packed(cv),
                 packed);
}

static void
test_waypoint_reach(void **state)
{
    struct k8s_store *st = k8s_store_new();
    struct k8s_conv *cv = k8s_conv_new();
    struct wp_files f = {{"ns.yaml", NULL, "pods.yaml", NULL, "gw.yaml", NULL, "class.yaml", NULL}};
    char *pods = wp_pods(""), *pods_none = wp_pods(", istio.io/use-waypoint: none");
    (void)state;

    wp_step(cv, st, &f, "ns.yaml", WP_NS("{}"), 0);
    wp_step(cv, st, &f, "pods.yaml", pods, 10);
    /* A waypoint nobody uses reaches nothing. */
    wp_step(cv, st, &f, "gw.yaml", WP_GW("{}"), 0);
    /* The Namespace's label: everything in app (its Namespace changed), nothing in other. */
    wp_step(cv, st, &f, "ns.yaml", WP_NS("{istio.io/use-waypoint: w}"), 8);
    /* The waypoint takes workloads too: app's pods. */
    wp_step(cv, st, &f, "gw.yaml", WP_GW("{istio.io/waypoint-for: all}"), 6);
    /* A GatewayClass whose label the Gateway's overrides: nothing. */
    wp_step(cv, st, &f, "class.yaml", WP_CLASS("service"), 0);
    /* The Gateway's label goes: the class's traffic type (service) holds, the pods leave. */
    wp_step(cv, st, &f, "gw.yaml", WP_GW("{}"), 6);
    /* The class says all: the pods again. */
    wp_step(cv, st, &f, "class.yaml", WP_CLASS("all"), 6);
    /* One pod opts out: that pod only. */
    wp_step(cv, st, &f, "pods.yaml", pods_none, 1);
    /* The Gateway goes: the two Services and the five pods still bound. */
    wp_step(cv, st, &f, "gw.yaml", NULL, 7);
    free(pods);
    free(pods_none);
    k8s_conv_free(cv);
    k8s_store_free(st);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_random_edits),
        cmocka_unit_test(test_one_pod_fast_path),
        cmocka_unit_test(test_services_come_and_go),
        cmocka_unit_test(test_waypoint_reach),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
