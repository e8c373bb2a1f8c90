/*
 * k8s_workload.c - one istio.workload.Workload per pod, as istiod builds it
 * (pilot/pkg/serviceregistry/ambient/workloads.go podWorkloadBuilder):
 *
 *   uid "<cluster>//Pod/<ns>/<name>", addresses from the pod IPs, identity
 *   from the service account, status UNHEALTHY unless Ready and not being
 *   deleted, HOST_NETWORK for host-network pods, telemetry names from the
 *   owner and the canonical labels, per selecting Service the port map
 *   with named targetPorts resolved against the pod's container ports, and
 *   the policies that select it (k8s_authz_sel.c), and the locality from
 *   its Node's labels topology.kubernetes.io/region and /zone and
 *   topology.istio.io/subzone (getPodLocality: none when the Node is
 *   unknown or has none of them).
 *
 * tunnel_protocol: istiod sets HBONE when istio-cni annotated the pod
 * (ambient.istio.io/redirection: enabled). There is no CNI writing
 * annotations back into files here, so the CNI's enrollment rule
 * (cni/pkg/util/podutil.go PodRedirectionEnabled) is applied directly as well.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "k8sconv/k8sconv_internal.h"

static const char *
label(const struct k8s_obj *o, const char *key)
{
    return k8s_kv_get(o->meta.labels, o->meta.n_labels, key);
}

static const char *
annotation(const struct k8s_obj *o, const char *key)
{
    return k8s_kv_get(o->meta.annotations, o->meta.n_annotations, key);
}

static bool
eq(const char *a, const char *b)
{
    return a != NULL && strcmp(a, b) == 0;
}

char *
k8s_service_hostname(struct k8s_arena *a, const struct k8s_build_ctx *b, const struct k8s_obj *svc)
{
    return k8s_arena_printf(a, "%s.%s.svc.%s", svc->meta.name, svc->meta.ns, b->domain_suffix);
}

/* The "networking.istio.io/tunnel" label is a comma-separated list of tunnels the pod speaks. */
static bool
speaks_http_tunnel(const struct k8s_obj *pod)
{
    const char *t = label(pod, "networking.istio.io/tunnel");

    while (t != NULL && *t != '\0') {
        size_t n = strcspn(t, ",");
        if (n == 4 && strncmp(t, "http", 4) == 0)
            return true;
        t += n + (t[n] == ',');
    }
    return false;
}

static void
tunnel(const struct k8s_build_ctx *b, const struct k8s_obj *pod, Istio__Workload__Workload *w)
{
    if (eq(annotation(pod, "ambient.istio.io/redirection"), "enabled") ||
        k8s_pod_enrolled(b->st, pod))
        w->tunnel_protocol = ISTIO__WORKLOAD__TUNNEL_PROTOCOL__HBONE;
    if (speaks_http_tunnel(pod)) {
        w->tunnel_protocol = ISTIO__WORKLOAD__TUNNEL_PROTOCOL__HBONE;
        w->native_tunnel = true;
    }
}

static bool
ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* A CronJob's Job is "<cronjob>-<8 to 10 digits>" (pkg/kube cronJobNameRegexp). */
static const char *
cronjob_name(struct k8s_arena *a, const char *job)
{
    const char *dash = strrchr(job, '-');
    size_t digits = dash ? strlen(dash + 1) : 0;

    if (dash == NULL || dash == job || digits < 8 || digits > 10)
        return NULL;
    for (const char *p = dash + 1; *p != '\0'; p++)
        if (!isdigit((unsigned char)*p))
            return NULL;
    return k8s_arena_printf(a, "%.*s", (int)(dash - job), job);
}

/* The name of the pod's controller with its generated suffix removed. */
static const char *
trim_hash(struct k8s_arena *a, const char *owner, const char *hash)
{
    if (!ends_with(owner, hash))
        return NULL;
    char *dash_hash = k8s_arena_printf(a, "-%s", hash);
    if (!ends_with(owner, dash_hash))
        return owner; /* as strings.TrimSuffix: no "-<hash>", nothing trimmed */
    return k8s_arena_printf(a, "%.*s", (int)(strlen(owner) - strlen(dash_hash)), owner);
}

/*
 * pkg/kube GetWorkloadMetaFromPod: a generated pod is named after its
 * controller, with the ReplicaSet, Argo Rollout, DeploymentConfig and CronJob
 * suffixes removed; the label service.istio.io/workload-name overrides all.
 */
static const char *
workload_name(struct k8s_arena *a, const struct k8s_obj *pod)
{
    const char *name = pod->meta.name;
    const char *wn = label(pod, "service.istio.io/workload-name");

    if (wn != NULL)
        return wn;
    if (pod->meta.generate_name[0] == '\0')
        return name;
    for (size_t i = 0; i < pod->meta.n_owners; i++) {
        const struct k8s_owner *o = &pod->meta.owners[i];
        const char *hash, *dc, *t = NULL;
        if (!o->controller)
            continue;
        name = o->name;
        if (strcmp(o->kind, "ReplicaSet") == 0 &&
            (hash = label(pod, "pod-template-hash")) != NULL && hash[0] != '\0' &&
            (t = trim_hash(a, o->name, hash)) != NULL)
            name = t;
        else if (strcmp(o->kind, "ReplicaSet") == 0 &&
                 (hash = label(pod, "rollouts-pod-template-hash")) != NULL && hash[0] != '\0' &&
                 (t = trim_hash(a, o->name, hash)) != NULL)
            name = t;
        else if (strcmp(o->kind, "ReplicationController") == 0 &&
                 (dc = label(pod, "deploymentconfig")) != NULL && dc[0] != '\0')
            name = dc;
        else if (strcmp(o->kind, "Job") == 0 && (t = cronjob_name(a, o->name)) != NULL)
            name = t;
        break;
    }
    return name[0] != '\0' ? name : pod->meta.name;
}

/* pkg/kube/labels CanonicalService: first label present wins, else the workload name / "latest". */
static void
canonical(const struct k8s_obj *pod, const char *wname, Istio__Workload__Workload *w)
{
    static const char *const names[] = {"service.istio.io/canonical-name", "app.kubernetes.io/name",
                                        "app"};
    static const char *const revs[] = {"service.istio.io/canonical-revision",
                                       "app.kubernetes.io/version", "version"};
    const char *v;

    w->canonical_name = (char *)(uintptr_t)wname;
    w->canonical_revision = "latest";
    for (size_t i = 0; i < ARRAY_LEN(names); i++)
        if ((v = label(pod, names[i])) != NULL) {
            w->canonical_name = (char *)(uintptr_t)v;
            break;
        }
    for (size_t i = 0; i < ARRAY_LEN(revs); i++)
        if ((v = label(pod, revs[i])) != NULL) {
            w->canonical_revision = (char *)(uintptr_t)v;
            break;
        }
}

static bool
selects(const struct k8s_obj *svc, const struct k8s_obj *pod)
{
    const struct k8s_service *s = &svc->u.svc;

    /* An empty selector selects nothing (krt.FilterSelectsNonEmpty). */
    if (s->n_selector == 0)
        return false;
    for (size_t i = 0; i < s->n_selector; i++)
        if (!eq(label(pod, s->selector[i].k), s->selector[i].v))
            return false;
    return true;
}

/* helpers.go FindPortName: a TCP container port with that name. */
static const struct k8s_cport *
find_port(const struct k8s_pod *p, const char *name)
{
    for (size_t i = 0; i < p->n_ports; i++)
        if (p->ports[i].tcp && strcmp(p->ports[i].name, name) == 0)
            return &p->ports[i];
    return NULL;
}

static Istio__Workload__PortList *
port_list(struct k8s_arena *a, const struct k8s_obj *svc, const struct k8s_obj *pod)
{
    const struct k8s_service *s = &svc->u.svc;
    Istio__Workload__PortList *pl = k8s_arena_alloc(a, sizeof(*pl));

    istio__workload__port_list__init(pl);
    pl->ports = k8s_arena_alloc(a, (s->n_ports + 1) * sizeof(*pl->ports));
    for (size_t i = 0; i < s->n_ports; i++) {
        const struct k8s_sport *sp = &s->ports[i];
        uint32_t target = sp->target_port;
        if (sp->target_name != NULL) {
            const struct k8s_cport *cp = find_port(&pod->u.pod, sp->target_name);
            if (cp == NULL)
                continue; /* istiod leaves the port out for this pod (k8s_check_ports warns) */
            target = cp->port;
        }
        Istio__Workload__Port *p = k8s_arena_alloc(a, sizeof(*p));
        istio__workload__port__init(p);
        p->service_port = sp->port;
        p->target_port = target;
        pl->ports[pl->n_ports++] = p;
    }
    return pl;
}

/* ---- Which Services select which pods ---- */

/* A selector entry or label as one hash: the index's key. */
static uint64_t
kv_hash(const char *k, const char *v)
{
    uint64_t h = k8s_hash(K8S_HASH_INIT, k, strlen(k) + 1);
    return k8s_hash(h, v, strlen(v) + 1);
}

/* Can |svc| select anything? */
static bool
indexable(const struct k8s_obj *svc)
{
    return !svc->u.svc.external_name && svc->u.svc.n_selector > 0;
}

static void
nsview_clear_index(struct k8s_nsview *nv)
{
    free(nv->slot_hash);
    free(nv->slot_head);
    free(nv->next);
    nv->slot_hash = NULL;
    nv->slot_head = NULL;
    nv->next = NULL;
    nv->cap = 0;
}

static void
nsview_free(struct k8s_nsview *nv)
{
    nsview_clear_index(nv);
    free(nv->gens);
    free(nv->ns);
}

/* Slot of |h| in a table of |cap| (power of two): where it is or where it would go. */
static size_t
slot_of(const uint64_t *hashes, const uint32_t *used, size_t cap, uint64_t h)
{
    size_t j = (size_t)(h ^ (h >> 29)) & (cap - 1);

    while (used[j] != 0 && hashes[j] != h)
        j = (j + 1) & (cap - 1);
    return j;
}

/*
 * Files every Service of |nv| that can select under one of its selector
 * entries: the one the fewest of the namespace's Services use, so that a
 * pod's labels lead to few candidates.
 */
static void
nsview_index(const struct k8s_store *st, struct k8s_nsview *nv)
{
    size_t entries = 0, cap = 16;

    nsview_clear_index(nv);
    for (size_t i = 0; i < nv->n; i++) {
        const struct k8s_obj *svc = k8s_nsview_service(st, nv, (uint32_t)i);
        if (indexable(svc))
            entries += svc->u.svc.n_selector;
    }
    while (cap < entries * 2 + 2)
        cap *= 2;
    /* Pass 1: how many Services use each entry. */
    uint64_t *hashes = xcalloc(cap, sizeof(*hashes));
    uint32_t *count = xcalloc(cap, sizeof(*count));
    uint64_t *chosen = xcalloc(nv->n + 1, sizeof(*chosen));
    for (size_t i = 0; i < nv->n; i++) {
        const struct k8s_obj *svc = k8s_nsview_service(st, nv, (uint32_t)i);
        if (!indexable(svc))
            continue;
        for (size_t k = 0; k < svc->u.svc.n_selector; k++) {
            uint64_t h = kv_hash(svc->u.svc.selector[k].k, svc->u.svc.selector[k].v);
            size_t j = slot_of(hashes, count, cap, h);
            hashes[j] = h;
            count[j]++;
        }
    }
    /* Pass 2: each Service's least shared entry. */
    for (size_t i = 0; i < nv->n; i++) {
        const struct k8s_obj *svc = k8s_nsview_service(st, nv, (uint32_t)i);
        uint32_t best = UINT32_MAX;
        if (!indexable(svc))
            continue;
        for (size_t k = 0; k < svc->u.svc.n_selector; k++) {
            uint64_t h = kv_hash(svc->u.svc.selector[k].k, svc->u.svc.selector[k].v);
            uint32_t c = count[slot_of(hashes, count, cap, h)];
            if (c < best) {
                best = c;
                chosen[i] = h;
            }
        }
    }
    /* Pass 3: the index proper, with only the chosen entries. */
    nv->cap = cap;
    nv->slot_hash = hashes;
    nv->slot_head = count;
    memset(hashes, 0, cap * sizeof(*hashes));
    memset(count, 0, cap * sizeof(*count));
    nv->next = xcalloc(nv->n + 1, sizeof(*nv->next));
    for (size_t i = nv->n; i-- > 0;) {
        if (!indexable(k8s_nsview_service(st, nv, (uint32_t)i)))
            continue;
        size_t j = slot_of(nv->slot_hash, nv->slot_head, cap, chosen[i]);
        nv->slot_hash[j] = chosen[i];
        nv->next[i] = nv->slot_head[j];
        nv->slot_head[j] = (uint32_t)i + 1;
    }
    free(chosen);
}

const struct k8s_obj *
k8s_nsview_service(const struct k8s_store *st, const struct k8s_nsview *nv, uint32_t off)
{
    return k8s_store_at(st, K8S_SERVICE, nv->begin + off);
}

const struct k8s_nsview *
k8s_view_ns(const struct k8s_view *v, const char *ns)
{
    size_t lo = 0, hi = v->n_ns;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(v->ns[mid].ns, ns);
        if (c == 0)
            return &v->ns[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

void
k8s_view_free(struct k8s_view *v)
{
    if (v == NULL)
        return;
    for (size_t i = 0; i < v->n_ns; i++)
        nsview_free(&v->ns[i]);
    free(v->ns);
    free(v->warn);
    for (size_t i = 0; i < ARRAY_LEN(v->opts); i++)
        free(v->opts[i]);
    for (size_t i = 0; i < v->order.n; i++)
        free(v->order.names[i]);
    free(v->order.names);
    k8s_authz_view_free(v);
    memset(v, 0, sizeof(*v));
}

/* Re-derives the namespace views from the Services in effect, keeping those that did not change. */
static void
update_namespaces(const struct k8s_store *st, struct k8s_view *v)
{
    size_t n_svc = k8s_store_count(st, K8S_SERVICE), n_new = 0, old = 0;
    struct k8s_nsview *nvs = NULL;

    for (size_t i = 0; i < n_svc;) {
        size_t n = k8s_ns_run(st, K8S_SERVICE, i);
        const char *ns = k8s_store_at(st, K8S_SERVICE, i)->meta.ns;
        struct k8s_nsview nv = {0};
        int c = 1;
        /* Both lists are sorted by namespace: views of namespaces without Services now go. */
        while (old < v->n_ns && (c = strcmp(v->ns[old].ns, ns)) < 0)
            nsview_free(&v->ns[old++]);
        if (old < v->n_ns && c == 0)
            nv = v->ns[old++];
        else
            nv.ns = xstrdup(ns);
        bool same = nv.n == n;
        for (size_t k = 0; same && k < n; k++)
            same = nv.gens[k] == k8s_store_at(st, K8S_SERVICE, i + k)->gen;
        nv.begin = i;
        if (!same) {
            nv.n = n;
            nv.gens = xrealloc(nv.gens, n * sizeof(*nv.gens));
            for (size_t k = 0; k < n; k++)
                nv.gens[k] = k8s_store_at(st, K8S_SERVICE, i + k)->gen;
            nv.epoch = ++v->last_epoch;
            nsview_index(st, &nv);
        }
        if (n_new % 16 == 0)
            nvs = xrealloc(nvs, (n_new + 16) * sizeof(*nvs));
        nvs[n_new++] = nv;
        i += n;
    }
    while (old < v->n_ns)
        nsview_free(&v->ns[old++]);
    free(v->ns);
    v->ns = nvs;
    v->n_ns = n_new;
}

static int
cmp_u32(const void *x, const void *y)
{
    uint32_t a = *(const uint32_t *)x, b = *(const uint32_t *)y;
    return a < b ? -1 : a > b;
}

static bool
lacks_port(const struct k8s_obj *svc, const struct k8s_obj *pod)
{
    for (size_t k = 0; k < svc->u.svc.n_ports; k++) {
        const struct k8s_sport *sp = &svc->u.svc.ports[k];
        if (sp->target_name != NULL && find_port(&pod->u.pod, sp->target_name) == NULL)
            return true;
    }
    return false;
}

/* Finds the Services of |nv| (NULL: none) that select |pod| and records them in its memo. */
static void
select_services(const struct k8s_store *st, const struct k8s_nsview *nv, const struct k8s_obj *pod,
                struct k8s_memo *m)
{
    uint32_t *sel = NULL;
    size_t n = 0, cap = 0;

    for (size_t i = 0; nv != NULL && i < pod->meta.n_labels; i++) {
        uint64_t h = kv_hash(pod->meta.labels[i].k, pod->meta.labels[i].v);
        size_t j = slot_of(nv->slot_hash, nv->slot_head, nv->cap, h);
        for (uint32_t e = nv->slot_head[j]; e != 0; e = nv->next[e - 1]) {
            if (!selects(k8s_nsview_service(st, nv, e - 1), pod))
                continue;
            if (n == cap) {
                cap = cap ? cap * 2 : 4;
                sel = xrealloc(sel, cap * sizeof(*sel));
            }
            sel[n++] = e - 1;
        }
    }
    /* In the namespace's order, as istiod's and check_ports' walks go; no repeats. */
    if (n > 1)
        qsort(sel, n, sizeof(*sel), cmp_u32);
    size_t u = 0;
    for (size_t i = 0; i < n; i++)
        if (u == 0 || sel[u - 1] != sel[i])
            sel[u++] = sel[i];
    n = u;
    bool same = n == m->n_sel;
    for (size_t i = 0; same && i < n; i++)
        same = m->sel_gens[i] == k8s_nsview_service(st, nv, sel[i])->gen;
    if (!same) {
        /* Other Services (or other versions of them): the resource must be built again. */
        m->built = false;
        m->sel_gens = xrealloc(m->sel_gens, (n + 1) * sizeof(*m->sel_gens));
        for (size_t i = 0; i < n; i++)
            m->sel_gens[i] = k8s_nsview_service(st, nv, sel[i])->gen;
    }
    free(m->sel);
    m->sel = sel;
    m->n_sel = n;
    m->port_warn = false;
    for (size_t i = 0; i < n && !m->port_warn; i++)
        m->port_warn = lacks_port(k8s_nsview_service(st, nv, sel[i]), pod);
    m->sel_epoch = nv != NULL ? nv->epoch : K8S_EPOCH_NO_SERVICES;
}

/* Pods that are workloads: not finished, with an address (CheckPodTerminal, getPodIPs). */
static bool
is_workload(const struct k8s_obj *pod)
{
    return !pod->u.pod.terminal && pod->u.pod.n_ips > 0;
}

void
k8s_view_update(struct k8s_conv *cv)
{
    const struct k8s_store *st = cv->st;
    struct k8s_view *v = &cv->view;
    size_t n_pod = k8s_store_count(st, K8S_POD), nsi = 0;

    if (v->eff_version == k8s_store_eff_version(st))
        return;
    k8s_memo_sweep(cv);
    update_namespaces(st, v);
    k8s_authz_view_update(cv);
    uint64_t root_epoch = k8s_authz_epoch(v, K8S_ROOT_NAMESPACE);
    v->n_warn = 0;
    for (size_t i = 0; i < n_pod;) {
        size_t n = k8s_ns_run(st, K8S_POD, i);
        const char *ns = k8s_store_at(st, K8S_POD, i)->meta.ns;
        int c = 1;
        while (nsi < v->n_ns && (c = strcmp(v->ns[nsi].ns, ns)) < 0)
            nsi++;
        const struct k8s_nsview *nv = nsi < v->n_ns && c == 0 ? &v->ns[nsi] : NULL;
        uint64_t epoch = nv != NULL ? nv->epoch : K8S_EPOCH_NO_SERVICES;
        uint64_t pol_epoch = k8s_authz_epoch(v, ns);
        for (size_t k = i; k < i + n; k++) {
            const struct k8s_obj *pod = k8s_store_at(st, K8S_POD, k);
            if (!is_workload(pod))
                continue;
            struct k8s_memo *m = k8s_memo_get(cv, pod);
            if (m->sel_epoch != epoch)
                select_services(st, nv, pod, m);
            if (m->pol_epoch != pol_epoch || m->pol_root_epoch != root_epoch)
                k8s_authz_select(st, pod, m, pol_epoch, root_epoch);
            if (m->port_warn) {
                if (v->n_warn % 16 == 0)
                    v->warn = xrealloc(v->warn, (v->n_warn + 16) * sizeof(*v->warn));
                v->warn[v->n_warn++] = k;
            }
        }
        i += n;
    }
    v->eff_version = k8s_store_eff_version(st);
}

void
k8s_check_ports(struct k8s_conv *cv, struct k8s_diags *out)
{
    const struct k8s_store *st = cv->st;

    k8s_view_update(cv);
    for (size_t i = 0; i < cv->view.n_warn; i++) {
        const struct k8s_obj *pod = k8s_store_at(st, K8S_POD, cv->view.warn[i]);
        const struct k8s_nsview *nv = k8s_view_ns(&cv->view, pod->meta.ns);
        const struct k8s_memo *m = k8s_memo_find(cv, pod);
        for (size_t j = 0; j < m->n_sel; j++) {
            const struct k8s_obj *svc = k8s_nsview_service(st, nv, m->sel[j]);
            for (size_t k = 0; k < svc->u.svc.n_ports; k++) {
                const struct k8s_sport *sp = &svc->u.svc.ports[k];
                if (sp->target_name == NULL || find_port(&pod->u.pod, sp->target_name) != NULL)
                    continue;
                k8s_diag_add(out, pod->file, pod->line, K8S_WARNING, NULL,
                             "Pod %s/%s has no TCP container port named \"%s\" (targetPort of "
                             "Service %s port %u); that port is not mapped to this pod",
                             pod->meta.ns, pod->meta.name, sp->target_name, svc->meta.name,
                             sp->port);
            }
        }
    }
}

static int
cmp_entry(const void *x, const void *y)
{
    const Istio__Workload__Workload__ServicesEntry *const *a = x, *const *b = y;
    return strcmp((*a)->key, (*b)->key);
}

/* The services map: every selecting Service with its ports for this pod. */
static void
services(const struct k8s_build_ctx *b, struct k8s_arena *a, const struct k8s_obj *pod,
         Istio__Workload__Workload *w)
{
    const struct k8s_memo *m = k8s_memo_find(b->cv, pod);
    const struct k8s_nsview *nv = k8s_view_ns(&b->cv->view, pod->meta.ns);

    CHECK(m != NULL && m->sel_epoch == (nv != NULL ? nv->epoch : K8S_EPOCH_NO_SERVICES));
    w->services = k8s_arena_alloc(a, (m->n_sel + 1) * sizeof(*w->services));
    for (size_t i = 0; i < m->n_sel; i++) {
        const struct k8s_obj *svc = k8s_nsview_service(b->st, nv, m->sel[i]);
        Istio__Workload__Workload__ServicesEntry *e = k8s_arena_alloc(a, sizeof(*e));
        istio__workload__workload__services_entry__init(e);
        e->key = k8s_arena_printf(a, "%s/%s", svc->meta.ns, k8s_service_hostname(a, b, svc));
        e->value = port_list(a, svc, pod);
        w->services[w->n_services++] = e;
    }
    /* A map on the wire: sorted so equal input gives equal bytes. */
    qsort(w->services, w->n_services, sizeof(*w->services), cmp_entry);
}

uint64_t
k8s_pod_locality(const struct k8s_store *st, const struct k8s_obj *pod, const char *out[3])
{
    static const char *const keys[3] = {"topology.kubernetes.io/region",
                                        "topology.kubernetes.io/zone", "topology.istio.io/subzone"};
    const struct k8s_obj *node = NULL;
    uint64_t h = K8S_HASH_INIT;
    bool any = false;

    if (pod->u.pod.node[0] != '\0')
        node = k8s_store_find(st, K8S_NODE, "", pod->u.pod.node);
    for (size_t i = 0; i < 3; i++) {
        out[i] = node != NULL ? label(node, keys[i]) : NULL;
        if (out[i] != NULL && out[i][0] == '\0')
            out[i] = NULL;
        any |= out[i] != NULL;
        /* Each value with its terminator, absent as a lone 0xff: no two localities collide. */
        h = out[i] != NULL ? k8s_hash(h, out[i], strlen(out[i]) + 1) : k8s_hash(h, "\xff", 1);
    }
    return any ? h | 1 : 0;
}

void
k8s_build_workload(const struct k8s_build_ctx *b, struct k8s_arena *a, const struct k8s_obj *pod,
                   Istio__Workload__Workload *w)
{
    const struct k8s_pod *p = &pod->u.pod;

    istio__workload__workload__init(w);
    w->uid = k8s_arena_printf(a, "%s//Pod/%s/%s", b->cluster_id, pod->meta.ns, pod->meta.name);
    w->name = pod->meta.name;
    w->namespace_ = pod->meta.ns;
    w->addresses = k8s_arena_alloc(a, p->n_ips * sizeof(*w->addresses) + 1);
    for (size_t i = 0; i < p->n_ips; i++) {
        w->addresses[i].len = p->ips[i].len;
        w->addresses[i].data = (uint8_t *)(uintptr_t)p->ips[i].b;
    }
    w->n_addresses = p->n_ips;
    w->network = (char *)(uintptr_t)b->network;
    tunnel(b, pod, w);
    if (b->trust_domain != NULL)
        w->trust_domain = (char *)(uintptr_t)b->trust_domain;
    w->service_account = p->service_account;
    w->node = p->node;
    w->workload_type = ISTIO__WORKLOAD__WORKLOAD_TYPE__POD;
    w->workload_name = (char *)(uintptr_t)workload_name(a, pod);
    canonical(pod, w->workload_name, w);
    services(b, a, pod, w);
    if (b->wp != NULL)
        w->waypoint = k8s_waypoint_address(a, b, b->wp);
    /* The selector policies and PeerAuthentication keys (k8s_authz_sel.c, kept in the memo). */
    const struct k8s_memo *m = k8s_memo_find(b->cv, pod);
    CHECK(m != NULL && m->pol_epoch != 0);
    w->authorization_policies = m->pols;
    w->n_authorization_policies = m->n_pols;
    /* Kubernetes has Ready, Serving and Terminating; istiod folds them into one bit. */
    w->status = p->ready && !pod->meta.deleting ? ISTIO__WORKLOAD__WORKLOAD_STATUS__HEALTHY
                                                : ISTIO__WORKLOAD__WORKLOAD_STATUS__UNHEALTHY;
    w->cluster_id = (char *)(uintptr_t)b->cluster_id;
    if (p->host_network)
        w->network_mode = ISTIO__WORKLOAD__NETWORK_MODE__HOST_NETWORK;
    const char *loc[3];
    if (k8s_pod_locality(b->st, pod, loc) != 0) {
        Istio__Workload__Locality *l = k8s_arena_alloc(a, sizeof(*l));
        istio__workload__locality__init(l);
        l->region = (char *)(uintptr_t)(loc[0] ? loc[0] : "");
        l->zone = (char *)(uintptr_t)(loc[1] ? loc[1] : "");
        l->subzone = (char *)(uintptr_t)(loc[2] ? loc[2] : "");
        w->locality = l;
    }
}
