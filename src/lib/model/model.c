/*
 * model.c - workload and service stores with the lookups the data path needs.
 *
 * Lookups are linear scans for now: local clusters are small. A later change
 * adds hash indexes by IP when xDS brings large models (bench X1).
 */
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "model/model.h"

struct model *
model_new(void)
{
    struct model *m = xcalloc(1, sizeof(*m));
    m->refs = 1;
    return m;
}

void
model_ref(struct model *m)
{
    m->refs++;
}

static void
free_strv(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

void
workload_free(struct workload *w)
{
    if (w == NULL)
        return;
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
    free(w->addrs);
    for (size_t i = 0; i < w->n_services; i++) {
        free(w->services[i].key);
        free(w->services[i].ports);
    }
    free(w->services);
    free_strv(w->authz_policies, w->n_authz_policies);
    free(w->identity);
    free(w);
}

void
service_free(struct service *s)
{
    if (s == NULL)
        return;
    free(s->name);
    free(s->ns);
    free(s->hostname);
    free(s->key);
    free(s->vips);
    free(s->ports);
    free_strv(s->sans, s->n_sans);
    free(s);
}

void
model_unref(struct model *m)
{
    if (m == NULL || --m->refs > 0)
        return;
    for (size_t i = 0; i < m->n_workloads; i++)
        workload_free(m->workloads[i]);
    for (size_t i = 0; i < m->n_services; i++)
        service_free(m->services[i]);
    free(m->workloads);
    free(m->services);
    free(m);
}

void
model_add_workload(struct model *m, struct workload *w)
{
    if (w->service_account == NULL)
        w->service_account = xstrdup("default");
    if (w->trust_domain == NULL)
        w->trust_domain = xstrdup(MODEL_DEFAULT_TRUST_DOMAIN);
    free(w->identity);
    w->identity = xasprintf("spiffe://%s/ns/%s/sa/%s", w->trust_domain, w->ns ? w->ns : "",
                            w->service_account);
    m->workloads = xrealloc(m->workloads, (m->n_workloads + 1) * sizeof(*m->workloads));
    m->workloads[m->n_workloads++] = w;
}

void
model_add_service(struct model *m, struct service *s)
{
    free(s->key);
    s->key = xasprintf("%s/%s", s->ns ? s->ns : "", s->hostname ? s->hostname : "");
    m->services = xrealloc(m->services, (m->n_services + 1) * sizeof(*m->services));
    m->services[m->n_services++] = s;
}

const struct workload *
model_workload_by_ip(const struct model *m, const struct ipaddr *ip)
{
    for (size_t i = 0; i < m->n_workloads; i++) {
        const struct workload *w = m->workloads[i];
        for (size_t j = 0; j < w->n_addrs; j++)
            if (ipaddr_eq(&w->addrs[j], ip))
                return w;
    }
    return NULL;
}

const struct workload *
model_workload_by_uid(const struct model *m, const char *uid)
{
    for (size_t i = 0; i < m->n_workloads; i++)
        if (strcmp(m->workloads[i]->uid, uid) == 0)
            return m->workloads[i];
    return NULL;
}

const struct service *
model_service_by_vip(const struct model *m, const struct ipaddr *ip)
{
    for (size_t i = 0; i < m->n_services; i++) {
        const struct service *s = m->services[i];
        for (size_t j = 0; j < s->n_vips; j++)
            if (ipaddr_eq(&s->vips[j], ip))
                return s;
    }
    return NULL;
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
    size_t n = 0;

    /* Two passes: count candidates, then take the seed-th; no allocation. */
    for (int pass = 0; pass < 2; pass++) {
        size_t k = 0, want = n ? seed % n : 0;
        for (size_t i = 0; i < m->n_workloads; i++) {
            const struct workload *w = m->workloads[i];
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
