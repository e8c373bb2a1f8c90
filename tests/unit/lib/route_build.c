/* route_build.c - see route_build.h. */
#include <stdlib.h>
#include <string.h>

#include "route_build.h"
#include "waypoint.pb-c.h"

struct pool {
    void **p;
    size_t n, cap;
};

static void *
palloc(struct pool *pl, size_t n)
{
    void *p = calloc(1, n);
    if (pl->n == pl->cap) {
        pl->cap = pl->cap ? pl->cap * 2 : 256;
        pl->p = realloc(pl->p, pl->cap * sizeof(*pl->p));
    }
    pl->p[pl->n++] = p;
    return p;
}

static char *
pstr(struct pool *pl, const char *s, size_t n)
{
    char *d = palloc(pl, n + 1);
    memcpy(d, s, n);
    return d;
}

/* Appends |item| to a protobuf-c repeated field (n, v). */
#define PUSH(pl, n, v, item)                                                                       \
    do {                                                                                           \
        void **nv = palloc((pl), ((n) + 1) * sizeof(void *));                                      \
        if ((n) > 0)                                                                               \
            memcpy(nv, (v), (n) * sizeof(void *));                                                 \
        nv[(n)] = (item);                                                                          \
        (v) = (void *)nv;                                                                          \
        (n)++;                                                                                     \
    } while (0)

static Amesh__Waypoint__V1__Match *
match_of(struct pool *pl, Amesh__Waypoint__V1__Rule *r)
{
    if (r->match == NULL) {
        r->match = palloc(pl, sizeof(*r->match));
        amesh__waypoint__v1__match__init(r->match);
    }
    return r->match;
}

static Amesh__Waypoint__V1__HeaderModifier *
mod_of(struct pool *pl, Amesh__Waypoint__V1__HeaderModifier **m)
{
    if (*m == NULL) {
        *m = palloc(pl, sizeof(**m));
        amesh__waypoint__v1__header_modifier__init(*m);
    }
    return *m;
}

static Amesh__Waypoint__V1__Redirect *
redir_of(struct pool *pl, Amesh__Waypoint__V1__Rule *r)
{
    if (r->redirect == NULL) {
        r->redirect = palloc(pl, sizeof(*r->redirect));
        amesh__waypoint__v1__redirect__init(r->redirect);
    }
    return r->redirect;
}

static Amesh__Waypoint__V1__Rewrite *
rw_of(struct pool *pl, Amesh__Waypoint__V1__Rule *r)
{
    if (r->rewrite == NULL) {
        r->rewrite = palloc(pl, sizeof(*r->rewrite));
        amesh__waypoint__v1__rewrite__init(r->rewrite);
    }
    return r->rewrite;
}

static Google__Protobuf__Duration *
dur(struct pool *pl, long ms)
{
    Google__Protobuf__Duration *d = palloc(pl, sizeof(*d));
    google__protobuf__duration__init(d);
    d->seconds = ms / 1000;
    d->nanos = (int32_t)(ms % 1000) * 1000000;
    return d;
}

/* "name:value" -> a KeyMatch or Header. */
static void
split(struct pool *pl, const char *v, char **name, char **value)
{
    const char *c = strchr(v, ':');
    size_t n = c ? (size_t)(c - v) : strlen(v);
    *name = pstr(pl, v, n);
    *value = c ? pstr(pl, c + 1, strlen(c + 1)) : pstr(pl, "", 0);
}

static void
header(struct pool *pl, Amesh__Waypoint__V1__HeaderModifier *m, int op, const char *v)
{
    Amesh__Waypoint__V1__Header *h = palloc(pl, sizeof(*h));
    amesh__waypoint__v1__header__init(h);
    split(pl, v, &h->name, &h->value);
    if (op == 0)
        PUSH(pl, m->n_set, m->set, h);
    else if (op == 1)
        PUSH(pl, m->n_add, m->add, h);
    else
        PUSH(pl, m->n_remove, m->remove, h->name);
}

static void
token(struct pool *pl, Amesh__Waypoint__V1__Rule *r, const char *k, const char *v)
{
    if (strcmp(k, "exact") == 0 || strcmp(k, "prefix") == 0 || strcmp(k, "regex") == 0) {
        Amesh__Waypoint__V1__Match *m = match_of(pl, r);
        char *s = pstr(pl, v, strlen(v));
        m->path_case = k[0] == 'e'   ? AMESH__WAYPOINT__V1__MATCH__PATH_EXACT
                       : k[0] == 'p' ? AMESH__WAYPOINT__V1__MATCH__PATH_PREFIX
                                     : AMESH__WAYPOINT__V1__MATCH__PATH_REGEX;
        m->exact = s; /* union */
    } else if (strcmp(k, "h") == 0 || strcmp(k, "hr") == 0 || strcmp(k, "q") == 0 ||
               strcmp(k, "qr") == 0) {
        Amesh__Waypoint__V1__Match *m = match_of(pl, r);
        Amesh__Waypoint__V1__KeyMatch *km = palloc(pl, sizeof(*km));
        amesh__waypoint__v1__key_match__init(km);
        split(pl, v, &km->name, &km->exact);
        km->value_case = k[1] == 'r' ? AMESH__WAYPOINT__V1__KEY_MATCH__VALUE_REGEX
                                     : AMESH__WAYPOINT__V1__KEY_MATCH__VALUE_EXACT;
        if (k[0] == 'h')
            PUSH(pl, m->n_headers, m->headers, km);
        else
            PUSH(pl, m->n_query, m->query, km);
    } else if (strcmp(k, "m") == 0) {
        match_of(pl, r)->method = pstr(pl, v, strlen(v));
    } else if (strcmp(k, "nomatch") == 0) {
        r->match = NULL;
    } else if (strcmp(k, "be") == 0) {
        Amesh__Waypoint__V1__Backend *b = palloc(pl, sizeof(*b));
        Istio__Workload__NamespacedHostname *s = palloc(pl, sizeof(*s));
        amesh__waypoint__v1__backend__init(b);
        istio__workload__namespaced_hostname__init(s);
        const char *c1 = strchr(v, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
        s->namespace_ = "default";
        s->hostname = pstr(pl, v, c1 ? (size_t)(c1 - v) : strlen(v));
        b->service = s;
        b->port = c1 ? (uint32_t)strtoul(c1 + 1, NULL, 10) : 80;
        b->weight = c2 ? (uint32_t)strtoul(c2 + 1, NULL, 10) : 1;
        PUSH(pl, r->n_backends, r->backends, b);
    } else if (strncmp(k, "redir.", 6) == 0) {
        Amesh__Waypoint__V1__Redirect *d = redir_of(pl, r);
        char *s = pstr(pl, v, strlen(v));
        if (strcmp(k + 6, "scheme") == 0)
            d->scheme = s;
        else if (strcmp(k + 6, "host") == 0)
            d->hostname = s;
        else if (strcmp(k + 6, "port") == 0)
            d->port = (uint32_t)strtoul(v, NULL, 10);
        else if (strcmp(k + 6, "status") == 0)
            d->status = (uint32_t)strtoul(v, NULL, 10);
        else if (strcmp(k + 6, "full") == 0) {
            d->path_case = AMESH__WAYPOINT__V1__REDIRECT__PATH_FULL;
            d->full = s;
        } else if (strcmp(k + 6, "prefix") == 0) {
            d->path_case = AMESH__WAYPOINT__V1__REDIRECT__PATH_PREFIX;
            d->prefix = s;
        }
    } else if (strncmp(k, "rw.", 3) == 0) {
        Amesh__Waypoint__V1__Rewrite *w = rw_of(pl, r);
        char *s = pstr(pl, v, strlen(v));
        if (strcmp(k + 3, "host") == 0)
            w->hostname = s;
        else if (strcmp(k + 3, "full") == 0) {
            w->path_case = AMESH__WAYPOINT__V1__REWRITE__PATH_FULL;
            w->full = s;
        } else if (strcmp(k + 3, "prefix") == 0) {
            w->path_case = AMESH__WAYPOINT__V1__REWRITE__PATH_PREFIX;
            w->prefix = s;
        }
    } else if (strcmp(k, "set") == 0 || strcmp(k, "add") == 0 || strcmp(k, "rm") == 0) {
        header(pl, mod_of(pl, &r->request_headers), k[0] == 's' ? 0 : k[0] == 'a' ? 1 : 2, v);
    } else if (strcmp(k, "rset") == 0 || strcmp(k, "radd") == 0 || strcmp(k, "rrm") == 0) {
        header(pl, mod_of(pl, &r->response_headers), k[1] == 's' ? 0 : k[1] == 'a' ? 1 : 2, v);
    } else if (strcmp(k, "direct") == 0) {
        r->direct_status = (uint32_t)strtoul(v, NULL, 10);
    } else if (strcmp(k, "name") == 0) {
        r->name = pstr(pl, v, strlen(v));
    } else if (strcmp(k, "timeout") == 0) {
        r->timeout = dur(pl, strtol(v, NULL, 10));
    } else if (strcmp(k, "btimeout") == 0) {
        r->backend_timeout = dur(pl, strtol(v, NULL, 10));
    } else if (strcmp(k, "retry") == 0) {
        Amesh__Waypoint__V1__Retry *t = palloc(pl, sizeof(*t));
        amesh__waypoint__v1__retry__init(t);
        char *end;
        t->attempts = (uint32_t)strtoul(v, &end, 10);
        if (*end == ':') {
            const char *p = end + 1;
            while (*p && *p != ':') {
                uint32_t *codes = palloc(pl, (t->n_codes + 1) * sizeof(*codes));
                if (t->n_codes)
                    memcpy(codes, t->codes, t->n_codes * sizeof(*codes));
                codes[t->n_codes++] = (uint32_t)strtoul(p, &end, 10);
                t->codes = codes;
                if (end == p)
                    break; /* not a number: stop (fuzz_route_match found the endless loop) */
                p = *end == ',' ? end + 1 : end;
            }
            if (*p == ':')
                t->backoff = dur(pl, strtol(p + 1, NULL, 10));
        }
        r->retry = t;
    }
}

uint8_t *
rb_build(const char *spec, uint32_t port, size_t *len)
{
    struct pool *pl = calloc(1, sizeof(*pl));
    Amesh__Waypoint__V1__Route route = AMESH__WAYPOINT__V1__ROUTE__INIT;
    Istio__Workload__NamespacedHostname svc = ISTIO__WORKLOAD__NAMESPACED_HOSTNAME__INIT;
    char *copy = strdup(spec), *save = NULL;

    svc.namespace_ = "default";
    svc.hostname = RB_HOST;
    route.service = &svc;
    route.port = port;
    for (char *rule = strtok_r(copy, "\n", &save); rule; rule = strtok_r(NULL, "\n", &save)) {
        Amesh__Waypoint__V1__Rule *r = palloc(pl, sizeof(*r));
        amesh__waypoint__v1__rule__init(r);
        char *save2 = NULL;
        for (char *t = strtok_r(rule, " ", &save2); t; t = strtok_r(NULL, " ", &save2)) {
            char *eq = strchr(t, '=');
            if (eq)
                *eq = '\0';
            if (strcmp(t, "proto") == 0 && eq) /* the Route's, not the rule's */
                route.protocol = (Amesh__Waypoint__V1__Protocol)strtol(eq + 1, NULL, 10);
            else
                token(pl, r, t, eq ? eq + 1 : "");
        }
        PUSH(pl, route.n_rules, route.rules, r);
    }
    *len = amesh__waypoint__v1__route__get_packed_size(&route);
    uint8_t *buf = malloc(*len + 1);
    amesh__waypoint__v1__route__pack(&route, buf);
    free(copy);
    for (size_t i = 0; i < pl->n; i++)
        free(pl->p[i]);
    free(pl->p);
    free(pl);
    return buf;
}
