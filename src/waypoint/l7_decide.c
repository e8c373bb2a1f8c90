/*
 * l7_decide.c - a request's decision, the same for the HTTP/1.1 and the HTTP/2 engine: the
 * path normalised (400 when it cannot be), L7 policy on it (403), the route (redirect, direct
 * answer, no backend: 503), the rewrite and header modifiers applied to the fields to send,
 * the retry budget and timeout, x-request-id.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/base.h"
#include "l7_decide.h"

void
wp_l7_hdr_push(struct route_hdr_list *l, const char *n, size_t nl, const char *v, size_t vl)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 16;
        l->v = xrealloc(l->v, l->cap * sizeof(*l->v));
    }
    l->v[l->n++] = (struct route_hdr){.name = n, .name_len = nl, .value = v, .value_len = vl};
}

bool
wp_l7_hdr_has(const struct route_hdr_list *l, const char *name)
{
    for (size_t i = 0; i < l->n; i++)
        if (l->v[i].name_len == strlen(name) &&
            strncasecmp(l->v[i].name, name, l->v[i].name_len) == 0)
            return true;
    return false;
}

static void
local(struct wp_l7_verdict *v, int status, unsigned flags, const char *details, const char *body)
{
    v->status = status;
    v->flags |= flags;
    v->details = details;
    v->body = body;
}

/*
 * Writes |src| (NULL: "") at |dst| + |at|, cut to fit |cap| with the NUL, as snprintf would;
 * returns the new length. Per request, where snprintf's format parsing costs more.
 */
static size_t
copy_cut(char *dst, size_t cap, size_t at, const char *src)
{
    size_t n = src != NULL ? strlen(src) : 0;

    if (n > cap - 1 - at)
        n = cap - 1 - at;
    memcpy(dst + at, src != NULL ? src : "", n);
    dst[at + n] = '\0';
    return at + n;
}

void
wp_l7_decide(const struct wp_l7_req *in, struct route_action *act, bool *have_act,
             char policy[L7POL_KEY_MAX], struct wp_l7_verdict *v)
{
    const struct wp_l7_conn *cfg = in->cfg;
    struct route_hdr_list *l = in->hdrs;
    size_t norm_len = 0, path_len = 0, tlen = in->target_len;
    const char *why = NULL;

    memset(v, 0, sizeof(*v));
    *have_act = false;
    policy[0] = '\0';
    v->norm = xmalloc(L7PATH_OUT_SIZE(tlen));
    if (tlen > L7PATH_MAX || l7path_normalize(cfg->path_mode, in->target, tlen, v->norm,
                                              L7PATH_OUT_SIZE(tlen), &norm_len, &path_len,
                                              &why) < 0) {
        local(v, 400, 0, "path_normalization_failed", "Bad Request");
        return;
    }

    /* L7 policy on the normalised path. */
    struct l7pol_request pr = {
        .waypoint_ns = cfg->waypoint_ns,
        .waypoint_name = cfg->waypoint_name,
        .service_ns = cfg->service != NULL ? cfg->service->ns : NULL,
        .service_host = cfg->service != NULL ? cfg->service->hostname : NULL,
        .client = cfg->client,
        .src_ip = cfg->client_ip,
        .dst_ip = cfg->dst_ip,
        .dst_port = cfg->dst_port,
        .method = in->method,
        .method_len = strlen(in->method),
        .host = in->authority,
        .host_len = strlen(in->authority),
        .path = v->norm,
        .path_len = path_len,
        .header = in->header,
        .header_arg = in->header_arg,
    };
    struct l7pol_decision dec = {0};
    enum l7pol_verdict res = l7pol_check(in->pols, &pr, &dec);
    copy_cut(policy, L7POL_KEY_MAX, 0, dec.policy);
    if (res == L7POL_DENIED) {
        local(v, 403, WP_FLAG_RBAC, "rbac_access_denied_matched_policy", WP_L7_DENIED_BODY);
        return;
    }

    v->target = v->norm;
    v->target_len = norm_len;
    if (cfg->service != NULL) {
        const struct service *svc = cfg->service;
        const struct route_table *tab = NULL;
        if (in->routes != NULL)
            tab = route_set_find(in->routes, svc->ns, svc->hostname, cfg->dst_port);
        if (tab == NULL) {
            if (*in->deftab == NULL)
                *in->deftab = route_table_default(svc->ns, svc->hostname, cfg->dst_port);
            tab = *in->deftab;
        }
        struct route_req rr = {
            .method = in->method,
            .method_len = strlen(in->method),
            .path = v->norm,
            .path_len = norm_len,
            .authority = in->authority,
            .authority_len = strlen(in->authority),
            .headers = l->v + 1, /* Host is matched as the authority */
            .n_headers = l->n - 1,
        };
        route_decide(tab, &rr, wp_h1_rand(), act);
        *have_act = true;
        if (act->kind == ROUTE_REDIRECT) {
            local(v, (int)act->status, 0, "redirect", NULL);
            v->location = act->location;
            return;
        }
        if (act->kind == ROUTE_DIRECT) {
            bool nr = act->rule == NULL;
            local(v, (int)act->status, nr ? WP_FLAG_NR : 0,
                  nr ? "route_not_found" : "direct_response", NULL);
            return;
        }
        char key[2 * ROUTE_MAX_HOST + 2];
        size_t kn = copy_cut(key, sizeof(key), 0, act->backend_ns);
        kn = copy_cut(key, sizeof(key), kn, "/");
        copy_cut(key, sizeof(key), kn, act->backend_host);
        v->backend = in->m != NULL ? model_service_by_key(in->m, key) : NULL;
        v->backend_port = (uint16_t)act->backend_port;
        if (v->backend == NULL) {
            local(v, 503, WP_FLAG_UH, "cluster_not_found", "no healthy upstream");
            return;
        }
        if (act->path != NULL) {
            v->target = act->path;
            v->target_len = strlen(act->path);
        }
        if (act->authority != NULL) {
            l->v[0].value = act->authority;
            l->v[0].value_len = strlen(act->authority);
        }
        route_hdrs_apply(act->request_headers, l);
        v->max_tries = 1 + act->retry.attempts;
        v->timeout_ms = act->timeout_ms;
        v->try_timeout_ms = act->backend_timeout_ms;
    } else {
        v->max_tries = 1; /* a pod-addressed request has one endpoint */
    }
    if (!wp_l7_hdr_has(l, "x-request-id"))
        wp_l7_hdr_push(l, "x-request-id", 12, in->request_id, strlen(in->request_id));
}

void
wp_l7_verdict_clear(struct wp_l7_verdict *v)
{
    free(v->norm);
    memset(v, 0, sizeof(*v));
}

bool
wp_l7_retriable_status(const struct route_retry *r, int status)
{
    if (!(r->on & ROUTE_RETRY_STATUS_CODES))
        return false;
    if (r->n_codes == 0) /* Istio's default retriable code */
        return status == 503;
    for (size_t i = 0; i < r->n_codes; i++)
        if (r->codes[i] == status)
            return true;
    return false;
}

/* Envoy's jittered exponential backoff: uniform in [0, base * 2^(n-1)) before the n-th retry,
 * the bound capped at max (Istio's defaults: 25 ms base, 250 ms max). */
uint64_t
wp_l7_backoff_ms(const struct route_retry *r, unsigned attempts)
{
    unsigned n = attempts > 0 ? attempts - 1 : 0;
    uint64_t cap = (uint64_t)r->backoff_base_ms << (n < 16 ? n : 16);

    if (cap > r->backoff_max_ms)
        cap = r->backoff_max_ms;
    return cap > 0 ? wp_h1_rand() % cap : 0;
}
