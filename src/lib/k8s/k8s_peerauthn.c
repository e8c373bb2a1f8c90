/*
 * k8s_peerauthn.c - PeerAuthentication (security.istio.io) decoded and
 * validated as Istio's webhook does (ValidatePeerAuthentication): errors make
 * the object invalid (its previous version stays); warnings that depend on
 * this object alone are kept with it. What istiod derives from the
 * PeerAuthentications together is made by the converter
 * (lib/k8sconv/k8s_authz_pa.c).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "k8s/k8s_internal.h"

#define CODE_SCHEMA_ERROR   "IST0106"
#define CODE_SCHEMA_WARNING "IST0133"
#define CODE_INEFFECTIVE    "IST0167"

void
k8s_pa_cleanup(struct k8s_pa *pa)
{
    k8s_kv_free(pa->labels, pa->n_labels);
    free(pa->ports);
    k8s_diags_clear(&pa->diags);
}

/* ---- Decoding ---- */

struct pac {
    struct k8s_dctx *c;
    int errors;
};

static void perr(struct pac *x, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
perr(struct pac *x, int line, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    k8s_diag_vadd(x->c->d, x->c->file, line ? line : x->c->line, K8S_ERROR, CODE_SCHEMA_ERROR, fmt,
                  ap);
    va_end(ap);
    x->errors++;
}

static void
known_fields(struct pac *x, const json_t *obj, const char *path, const char *const *known)
{
    const char *k;
    json_t *v;

    json_object_foreach((json_t *)(uintptr_t)obj, k, v)
    {
        bool ok = false;
        for (size_t i = 0; known[i] != NULL && !ok; i++)
            ok = strcmp(known[i], k) == 0;
        if (!ok)
            perr(x, k8s_key_line(x->c, obj, k), "%s: unknown field \"%s\"", path, k);
    }
}

static const json_t *
mapping(struct pac *x, const json_t *parent, const char *key, const char *path)
{
    const json_t *v = k8s_json_member(parent, key);

    if (v != NULL && !json_is_object(v)) {
        perr(x, k8s_key_line(x->c, parent, key), "%s%s%s: expected a mapping", path,
             path[0] ? "." : "", key);
        return NULL;
    }
    return v;
}

/* MutualTLS{mode}: |m| may be NULL (UNSET). */
static enum k8s_mtls
mtls_mode(struct pac *x, const json_t *m, const char *path)
{
    static const char *const names[] = {"UNSET", "DISABLE", "PERMISSIVE", "STRICT"};
    static const char *const fields[] = {"mode", NULL};

    if (m == NULL)
        return K8S_MTLS_UNSET;
    known_fields(x, m, path, fields);
    const json_t *v = k8s_json_member(m, "mode");
    if (v == NULL)
        return K8S_MTLS_UNSET;
    for (size_t i = 0; json_is_string(v) && i < ARRAY_LEN(names); i++)
        if (strcmp(json_string_value(v), names[i]) == 0)
            return (enum k8s_mtls)i;
    perr(x, k8s_key_line(x->c, m, "mode"),
         "%s.mode: %s%s%s is not UNSET, DISABLE, PERMISSIVE or STRICT", path,
         json_is_string(v) ? "\"" : "", json_is_string(v) ? json_string_value(v) : "a non-string",
         json_is_string(v) ? "\"" : "");
    return K8S_MTLS_UNSET;
}

static int
cmp_kv(const void *a, const void *b)
{
    return strcmp(((const struct k8s_kv *)a)->k, ((const struct k8s_kv *)b)->k);
}

static int
cmp_port(const void *a, const void *b)
{
    uint32_t x = ((const struct k8s_port_mtls *)a)->port,
             y = ((const struct k8s_port_mtls *)b)->port;
    return x < y ? -1 : x > y;
}

static void
selector(struct pac *x, const json_t *sel, struct k8s_pa *pa)
{
    static const char *const fields[] = {"matchLabels", NULL};
    const char *k;
    json_t *v;

    pa->selector = true;
    known_fields(x, sel, "spec.selector", fields);
    const json_t *ml = mapping(x, sel, "matchLabels", "spec.selector");
    if (ml == NULL || json_object_size(ml) == 0) {
        k8s_diag_add(&pa->diags, x->c->file, k8s_val_line(x->c, sel), K8S_WARNING,
                     CODE_SCHEMA_WARNING,
                     "workload selector specified without labels: the policy is namespace-wide");
        return;
    }
    if (json_object_size(ml) > K8S_MAX_LABELS) {
        perr(x, k8s_key_line(x->c, sel, "matchLabels"),
             "spec.selector.matchLabels: more than %d entries", K8S_MAX_LABELS);
        return;
    }
    pa->labels = xcalloc(json_object_size(ml) + 1, sizeof(*pa->labels));
    json_object_foreach((json_t *)(uintptr_t)ml, k, v)
    {
        int line = k8s_key_line(x->c, ml, k);
        if (!json_is_string(v) && !json_is_null(v)) {
            perr(x, line, "spec.selector.matchLabels.%s: expected a string", k);
            continue;
        }
        const char *s = json_is_string(v) ? json_string_value(v) : "";
        if (k[0] == '\0')
            perr(x, line, "spec.selector: empty key is not supported in selector: \"=%s\"", s);
        else if (strchr(k, '*') != NULL || strchr(s, '*') != NULL)
            perr(x, line, "spec.selector: wildcard is not supported in selector: \"%s=%s\"", k, s);
        pa->labels[pa->n_labels].k = xstrdup(k);
        pa->labels[pa->n_labels].v = xstrdup(s);
        pa->n_labels++;
    }
    qsort(pa->labels, pa->n_labels, sizeof(*pa->labels), cmp_kv);
}

/* Days from 1970-01-01 to y-m-d (proleptic Gregorian). */
static int64_t
days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

/* RFC 3339 ("2024-05-01T10:00:00Z", fractions and offsets too) -> seconds; false if not one. */
static bool
parse_time(const char *s, int64_t *out)
{
    unsigned y, mo, d, h, mi, sec;
    int n = 0;

    if (sscanf(s, "%4u-%2u-%2u%n", &y, &mo, &d, &n) != 3 || n != 10 ||
        (s[10] != 'T' && s[10] != 't'))
        return false;
    if (sscanf(s + 11, "%2u:%2u:%2u%n", &h, &mi, &sec, &n) != 3 || n != 8)
        return false;
    const char *p = s + 19;
    if (*p == '.') {
        p++;
        if (*p < '0' || *p > '9')
            return false;
        while (*p >= '0' && *p <= '9')
            p++;
    }
    int64_t off = 0;
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        unsigned oh, om;
        if (sscanf(p + 1, "%2u:%2u%n", &oh, &om, &n) != 2 || n != 5 || oh > 23 || om > 59)
            return false;
        off = (int64_t)(oh * 3600 + om * 60) * (*p == '-' ? -1 : 1);
        p += 6;
    } else {
        return false;
    }
    if (*p != '\0' || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60)
        return false;
    *out = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec - off;
    return true;
}

int
k8s_decode_peerauthn(struct k8s_dctx *c, const json_t *json, const struct k8s_meta *m,
                     struct k8s_pa *pa)
{
    static const char *const spec_fields[] = {"selector", "mtls", "portLevelMtls", NULL};
    struct pac x = {.c = c};
    const json_t *meta = k8s_json_member(json, "metadata");
    const json_t *ts = meta ? k8s_json_member(meta, "creationTimestamp") : NULL;

    pa->created = INT64_MIN;
    if (ts != NULL && (!json_is_string(ts) || !parse_time(json_string_value(ts), &pa->created)))
        perr(&x, k8s_key_line(c, meta, "creationTimestamp"),
             "metadata.creationTimestamp: not an RFC 3339 time (such as 2024-05-01T10:00:00Z)");
    const json_t *spec = k8s_json_member(json, "spec");
    if (spec != NULL && !json_is_object(spec)) {
        perr(&x, k8s_key_line(c, json, "spec"), "spec: expected a mapping");
        return -MESH_ECONFIG;
    }
    if (spec == NULL)
        return x.errors > 0 ? -MESH_ECONFIG : 0;
    known_fields(&x, spec, "spec", spec_fields);
    const json_t *sel = mapping(&x, spec, "selector", "spec");
    if (sel != NULL)
        selector(&x, sel, pa);
    pa->mode = mtls_mode(&x, mapping(&x, spec, "mtls", "spec"), "spec.mtls");
    const json_t *plm = mapping(&x, spec, "portLevelMtls", "spec");
    if (plm != NULL) {
        const char *k;
        json_t *v;
        if (json_object_size(plm) == 0)
            perr(&x, k8s_key_line(c, spec, "portLevelMtls"),
                 "spec.portLevelMtls: port level mTLS, if defined, must have at least one element");
        if (pa->n_labels == 0)
            perr(&x, k8s_key_line(c, spec, "portLevelMtls"),
                 "spec.portLevelMtls: mesh/namespace peer authentication cannot have port level "
                 "mTLS");
        pa->ports = xcalloc(json_object_size(plm) + 1, sizeof(*pa->ports));
        json_object_foreach((json_t *)(uintptr_t)plm, k, v)
        {
            int line = k8s_key_line(c, plm, k);
            char *end;
            unsigned long port = strtoul(k, &end, 10);
            char path[48];
            snprintf(path, sizeof(path), "spec.portLevelMtls.%.16s", k);
            if (k[0] < '0' || k[0] > '9' || *end != '\0' || port == 0 || port > 65535) {
                perr(&x, line, "spec.portLevelMtls: \"%s\": port must be in range 1..65535", k);
                continue;
            }
            if (!json_is_null(v) && !json_is_object(v)) {
                perr(&x, line, "%s: expected a mapping", path);
                continue;
            }
            struct k8s_port_mtls *pm = &pa->ports[pa->n_ports++];
            pm->port = (uint32_t)port;
            pm->mode = mtls_mode(&x, json_is_object(v) ? v : NULL, path);
            pm->line = line;
        }
        qsort(pa->ports, pa->n_ports, sizeof(*pa->ports), cmp_port);
        for (size_t i = 1; i < pa->n_ports; i++)
            if (pa->ports[i].port == pa->ports[i - 1].port)
                perr(&x, pa->ports[i].line, "spec.portLevelMtls: port %u is given twice",
                     pa->ports[i].port);
    }
    if (x.errors > 0)
        return -MESH_ECONFIG;
    bool disable = pa->mode == K8S_MTLS_DISABLE;
    for (size_t i = 0; i < pa->n_ports; i++)
        disable |= pa->ports[i].mode == K8S_MTLS_DISABLE;
    if (disable)
        k8s_diag_add(&pa->diags, c->file, c->line, K8S_WARNING, CODE_INEFFECTIVE,
                     "mTLS mode DISABLE is not supported in ambient mode: ztunnel treats it as "
                     "PERMISSIVE (plaintext is accepted; HBONE stays mTLS)");
    if (pa->selector && strcmp(m->ns, K8S_ROOT_NAMESPACE) == 0 && pa->n_labels > 0)
        k8s_diag_add(&pa->diags, c->file, k8s_key_line(c, spec, "selector"), K8S_WARNING,
                     CODE_INEFFECTIVE,
                     "The policy has no impact at ztunnel: a PeerAuthentication with a workload "
                     "selector in the root namespace %s is ignored in ambient mode",
                     K8S_ROOT_NAMESPACE);
    return 0;
}
