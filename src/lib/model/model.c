/*
 * model.c - workload and service stores with the lookups the data path needs.
 *
 * Lookups go through hash indexes (model_index.c) that grow as objects are
 * added, so a model of 10,000 workloads answers by IP, uid or VIP in O(1).
 * Objects are reference counted and shared between successive models.
 */
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "model/model.h"
#include "model/model_internal.h"

struct model *
model_new(void)
{
    struct model *m = xcalloc(1, sizeof(*m));
    atomic_init(&m->refs, 1);
    m->index = model_index_new();
    return m;
}

void
model_ref(struct model *m)
{
    atomic_fetch_add_explicit(&m->refs, 1, memory_order_relaxed);
}

static void
free_strv(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

void
gateway_addr_free(struct gateway_addr *g)
{
    if (g == NULL)
        return;
    free(g->ns);
    free(g->hostname);
    free(g->network);
    free(g);
}

/*
 * True when the caller held the last reference. |refs| counts holders beyond
 * the first, so a zero-filled object has exactly one.
 */
static bool
release(atomic_int *refs)
{
    return atomic_fetch_sub_explicit(refs, 1, memory_order_acq_rel) == 0;
}

static void
workload_destroy(struct workload *w)
{
    free(w->uid);
    free(w->name);
    free(w->ns);
    free(w->service_account);
    free(w->trust_domain);
    free(w->node);
    free(w->network);
    free(w->hostname);
    free(w->canonical_name);
    free(w->canonical_revision);
    free(w->workload_name);
    free(w->cluster_id);
    for (size_t i = 0; i < 3; i++)
        free(w->locality[i]);
    free(w->addrs);
    gateway_addr_free(w->waypoint);
    gateway_addr_free(w->network_gateway);
    for (size_t i = 0; i < w->n_services; i++) {
        free(w->services[i].key);
        free(w->services[i].ports);
    }
    free(w->services);
    free_strv(w->authz_policies, w->n_authz_policies);
    free(w->identity);
    free(w);
}

struct workload *
workload_ref(struct workload *w)
{
    atomic_fetch_add_explicit(&w->refs, 1, memory_order_relaxed);
    return w;
}

void
workload_unref(struct workload *w)
{
    if (w != NULL && release(&w->refs))
        workload_destroy(w);
}

void
workload_free(struct workload *w)
{
    workload_unref(w);
}

static void
service_destroy(struct service *s)
{
    free(s->name);
    free(s->ns);
    free(s->hostname);
    free(s->key);
    free(s->vips);
    free(s->ports);
    free_strv(s->sans, s->n_sans);
    gateway_addr_free(s->waypoint);
    free(s);
}

struct service *
service_ref(struct service *s)
{
    atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
    return s;
}

void
service_unref(struct service *s)
{
    if (s != NULL && release(&s->refs))
        service_destroy(s);
}

void
service_free(struct service *s)
{
    service_unref(s);
}

void
model_unref(struct model *m)
{
    if (m == NULL || atomic_fetch_sub_explicit(&m->refs, 1, memory_order_acq_rel) > 1)
        return;
    for (size_t i = 0; i < m->n_workloads; i++)
        workload_unref(m->workloads[i]);
    for (size_t i = 0; i < m->n_services; i++)
        service_unref(m->services[i]);
    model_index_free(m->index);
    free(m->workloads);
    free(m->services);
    free(m);
}

void
workload_derive(struct workload *w)
{
    /* Shared objects are never written: derived fields are set exactly once. */
    if (w->identity != NULL)
        return;
    if (w->service_account == NULL)
        w->service_account = xstrdup(MODEL_DEFAULT_SERVICE_ACCOUNT);
    if (w->trust_domain == NULL)
        w->trust_domain = xstrdup(MODEL_DEFAULT_TRUST_DOMAIN);
    w->identity = xasprintf("spiffe://%s/ns/%s/sa/%s", w->trust_domain, w->ns ? w->ns : "",
                            w->service_account);
}

void
service_derive(struct service *s)
{
    if (s->key == NULL)
        s->key = xasprintf("%s/%s", s->ns ? s->ns : "", s->hostname ? s->hostname : "");
}

/* Capacity after |cap| is full: doubling keeps adding N objects O(N). */
static size_t
next_cap(size_t cap)
{
    return cap ? cap * 2 : 8;
}

void
model_add_workload(struct model *m, struct workload *w)
{
    workload_derive(w);
    if (m->n_workloads == m->cap_workloads) {
        m->cap_workloads = next_cap(m->cap_workloads);
        m->workloads = xrealloc(m->workloads, m->cap_workloads * sizeof(*m->workloads));
    }
    m->workloads[m->n_workloads++] = w;
    model_index_add_workload(m->index, w);
}

void
model_add_service(struct model *m, struct service *s)
{
    service_derive(s);
    if (m->n_services == m->cap_services) {
        m->cap_services = next_cap(m->cap_services);
        m->services = xrealloc(m->services, m->cap_services * sizeof(*m->services));
    }
    m->services[m->n_services++] = s;
    model_index_add_service(m->index, s);
}

struct model *
model_build(struct workload *const *ws, size_t n_ws, struct service *const *ss, size_t n_ss)
{
    struct model *m = model_new();
    for (size_t i = 0; i < n_ws; i++)
        model_add_workload(m, workload_ref(ws[i]));
    for (size_t i = 0; i < n_ss; i++)
        model_add_service(m, service_ref(ss[i]));
    return m;
}

const struct workload *
model_workload_by_ip(const struct model *m, const struct ipaddr *ip)
{
    return model_index_workload_by_ip(m->index, ip);
}

const struct workload *
model_workload_by_uid(const struct model *m, const char *uid)
{
    return model_index_workload_by_uid(m->index, uid);
}

const struct service *
model_service_by_vip(const struct model *m, const struct ipaddr *ip)
{
    return model_index_service_by_vip(m->index, ip);
}

const struct service *
model_service_by_key(const struct model *m, const char *key)
{
    return model_index_service_by_key(m->index, key);
}

struct workload *const *
model_endpoints(const struct model *m, const char *key, size_t *n)
{
    return model_index_endpoints(m->index, key, n);
}

uint16_t
model_endpoint_port(const struct workload *w, const struct service *svc, uint16_t service_port)
{
    for (size_t i = 0; i < w->n_services; i++) {
        const struct workload_svc *ws = &w->services[i];
        if (strcmp(ws->key, svc->key) != 0)
            continue;
        for (size_t j = 0; j < ws->n_ports; j++)
            if (ws->ports[j].service_port == service_port && ws->ports[j].target_port != 0)
                return ws->ports[j].target_port;
        for (size_t j = 0; j < svc->n_ports; j++)
            if (svc->ports[j].service_port == service_port)
                return svc->ports[j].target_port;
        return 0;
    }
    return 0;
}

const struct ipaddr *
workload_addr(const struct workload *w, int family)
{
    for (size_t i = 0; i < w->n_addrs; i++)
        if (w->addrs[i].family == family)
            return &w->addrs[i];
    return w->n_addrs > 0 ? &w->addrs[0] : NULL;
}

const struct workload *
model_pick_endpoint(const struct model *m, const struct service *svc, uint16_t service_port,
                    int family, uint32_t seed, uint16_t *target_port)
{
    size_t n_eps, n = 0;
    struct workload *const *eps = model_endpoints(m, svc->key, &n_eps);

    /* Two passes: count candidates, then take the seed-th; no allocation. */
    for (int pass = 0; pass < 2; pass++) {
        size_t k = 0, want = n ? seed % n : 0;
        for (size_t i = 0; i < n_eps; i++) {
            const struct workload *w = eps[i];
            if (w->status != WORKLOAD_HEALTHY || w->n_addrs == 0)
                continue;
            uint16_t port = model_endpoint_port(w, svc, service_port);
            if (port == 0)
                continue;
            const struct ipaddr *a = workload_addr(w, family);
            if (a == NULL || a->family != family)
                continue;
            if (pass == 1 && k == want) {
                *target_port = port;
                return w;
            }
            k++;
        }
        n = k;
        if (n == 0)
            return NULL;
    }
    return NULL;
}
