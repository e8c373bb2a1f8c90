/*
 * policy_json.c - the proto3 JSON form of an Authorization (ztunnel's local
 * config, config dumps): JSON -> protobuf-c structs -> policy_compile(), so
 * both forms share one validator; and the compiled policy back to JSON.
 *
 * Accepted beyond strict proto3 JSON: addresses as text (bytes would be
 * base64), either as {address, length} with the length required (proto3's
 * default of 0 would silently match every address) or as "ip/len" or "ip".
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "base/base.h"
#include "policy/policy_internal.h"

struct jctx {
    char *err;
    size_t errlen;
    char what[160];
    char path[160];
    size_t entries;
    struct pol_arena *a;
};

static int jfail(struct jctx *c, int rc, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* "<what>: <path>.<field>: <message>"; |field| NULL for the object at |path| itself. */
static int
jfail(struct jctx *c, int rc, const char *field, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    rc = pol_vfail(c->err, c->errlen, c->what, c->path, rc, field, fmt, ap);
    va_end(ap);
    return rc;
}

static const char *
type_name(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return "an object";
    case JSON_ARRAY:
        return "a list";
    case JSON_STRING:
        return "a string";
    case JSON_INTEGER:
        return "an integer";
    case JSON_REAL:
        return "a fraction";
    case JSON_TRUE:
    case JSON_FALSE:
        return "a boolean";
    case JSON_NULL:
        return "null";
    }
    return "?";
}

static int
want(struct jctx *c, const json_t *v, json_type t, const char *field, const char *what)
{
    if (json_typeof(v) == t)
        return 0;
    return jfail(c, -MESH_ECONFIG, field, "expected %s, got %s", what, type_name(v));
}

/* A list of at most |max| entries; counts them against the whole policy. */
static int
list(struct jctx *c, const json_t *v, size_t max, const char *field, size_t *n)
{
    int rc;
    if ((rc = want(c, v, JSON_ARRAY, field, "a list")) < 0)
        return rc;
    *n = json_array_size(v);
    if (*n > max)
        return jfail(c, -MESH_ELIMIT, field, "%zu entries, more than %zu", *n, max);
    c->entries += *n;
    if (c->entries > POLICY_MAX_ENTRIES)
        return jfail(c, -MESH_ELIMIT, field, "more than %d entries in the whole policy",
                     POLICY_MAX_ENTRIES);
    return 0;
}

static int
str(struct jctx *c, const json_t *v, const char *field, char **out)
{
    int rc;
    if ((rc = want(c, v, JSON_STRING, field, "a string")) < 0)
        return rc;
    if (memchr(json_string_value(v), 0, json_string_length(v)) != NULL)
        return jfail(c, -MESH_ECONFIG, field, "string with a NUL byte");
    *out = pol_arena_strdup(c->a, json_string_value(v));
    return 0;
}

/* An unsigned number as a JSON integer or decimal string (both proto3 JSON). */
static int
uint_val(struct jctx *c, const json_t *v, uint64_t max, const char *field, uint64_t *out)
{
    if (json_is_integer(v)) {
        json_int_t i = json_integer_value(v);
        if (i < 0 || (uint64_t)i > max)
            return jfail(c, -MESH_ECONFIG, field, "%lld is not in 0-%llu", (long long)i,
                         (unsigned long long)max);
        *out = (uint64_t)i;
        return 0;
    }
    if (json_is_string(v)) {
        const char *s = json_string_value(v);
        char *end;
        errno = 0;
        unsigned long long u = strtoull(s, &end, 10);
        if (s[0] < '0' || s[0] > '9' || *end != '\0' || errno != 0 || u > max)
            return jfail(c, -MESH_ECONFIG, field, "\"%s\" is not a number in 0-%llu", s,
                         (unsigned long long)max);
        *out = u;
        return 0;
    }
    return jfail(c, -MESH_ECONFIG, field, "expected an unsigned integer, got %s", type_name(v));
}

static int
enum_val(struct jctx *c, const json_t *v, const char *const *names, int n, const char *field,
         int *out)
{
    uint64_t u;
    if (json_is_string(v)) {
        for (int i = 0; i < n; i++)
            if (strcmp(json_string_value(v), names[i]) == 0) {
                *out = i;
                return 0;
            }
        return jfail(c, -MESH_ECONFIG, field, "unknown value \"%s\"", json_string_value(v));
    }
    if (uint_val(c, v, (uint64_t)n - 1, field, &u) < 0)
        return -MESH_ECONFIG;
    *out = (int)u;
    return 0;
}

static int
string_match(struct jctx *c, const json_t *v, const char *field, Istio__Security__StringMatch **out)
{
    Istio__Security__StringMatch *m = pol_arena_alloc(c->a, sizeof(*m));
    const char *key;
    json_t *val;
    int rc;

    istio__security__string_match__init(m);
    if ((rc = want(c, v, JSON_OBJECT, field, "an object")) < 0)
        return rc;
    if (json_object_size(v) != 1)
        return jfail(c, -MESH_ECONFIG, field, "exactly one of exact, prefix, suffix or presence");
    json_object_foreach((json_t *)v, key, val)
    {
        char **s = NULL;
        if (strcmp(key, "exact") == 0) {
            m->match_type_case = ISTIO__SECURITY__STRING_MATCH__MATCH_TYPE_EXACT;
            s = &m->exact;
        } else if (strcmp(key, "prefix") == 0) {
            m->match_type_case = ISTIO__SECURITY__STRING_MATCH__MATCH_TYPE_PREFIX;
            s = &m->prefix;
        } else if (strcmp(key, "suffix") == 0) {
            m->match_type_case = ISTIO__SECURITY__STRING_MATCH__MATCH_TYPE_SUFFIX;
            s = &m->suffix;
        } else if (strcmp(key, "presence") == 0) {
            if (!json_is_object(val) || json_object_size(val) != 0)
                return jfail(c, -MESH_ECONFIG, field, "presence: expected {}");
            m->match_type_case = ISTIO__SECURITY__STRING_MATCH__MATCH_TYPE_PRESENCE;
            m->presence = pol_arena_alloc(c->a, sizeof(*m->presence));
            google__protobuf__empty__init(m->presence);
        } else {
            return jfail(c, -MESH_ECONFIG, field, "unknown field \"%s\"", key);
        }
        if (s != NULL && (rc = str(c, val, field, s)) < 0)
            return rc;
    }
    *out = m;
    return 0;
}

/* "ip", "ip/len" or {address: "ip", length: len} -> raw bytes (mapped IPv6 kept as 16 bytes). */
static int
address(struct jctx *c, const json_t *v, const char *field, Istio__Security__Address **out)
{
    Istio__Security__Address *a = pol_arena_alloc(c->a, sizeof(*a));
    char text[INET6_ADDRSTRLEN + 8];
    const json_t *jlen = NULL;
    uint64_t len = UINT64_MAX;
    int rc;

    istio__security__address__init(a);
    if (json_is_object(v)) {
        const char *key;
        json_t *val;
        json_object_foreach((json_t *)v, key, val)
        {
            if (strcmp(key, "length") != 0 && strcmp(key, "address") != 0)
                return jfail(c, -MESH_ECONFIG, field, "unknown field \"%s\"", key);
        }
        const json_t *ja = json_object_get(v, "address");
        jlen = json_object_get(v, "length");
        if (ja == NULL || jlen == NULL)
            return jfail(c, -MESH_ECONFIG, field, "address and length are required");
        if ((rc = want(c, ja, JSON_STRING, field, "a string")) < 0)
            return rc;
        if ((rc = uint_val(c, jlen, 128, field, &len)) < 0)
            return rc;
        v = ja;
    } else if ((rc = want(c, v, JSON_STRING, field, "an address")) < 0) {
        return rc;
    }
    const char *s = json_string_value(v);
    const char *slash = strchr(s, '/');
    size_t n = slash ? (size_t)(slash - s) : strlen(s);
    if (n >= sizeof(text))
        return jfail(c, -MESH_ECONFIG, field, "\"%.64s\" is not an IP address", s);
    memcpy(text, s, n);
    text[n] = '\0';
    if (slash != NULL) {
        char *end;
        errno = 0;
        unsigned long l = strtoul(slash + 1, &end, 10);
        if (jlen != NULL || slash[1] < '0' || slash[1] > '9' || *end != '\0' || l > 128)
            return jfail(c, -MESH_ECONFIG, field, "\"%.64s\" is not an IP address or CIDR", s);
        len = l;
    }
    uint8_t *b = pol_arena_alloc(c->a, 16);
    if (inet_pton(AF_INET, text, b) == 1)
        a->address.len = 4;
    else if (inet_pton(AF_INET6, text, b) == 1)
        a->address.len = 16;
    else
        return jfail(c, -MESH_ECONFIG, field, "\"%.64s\" is not an IP address", s);
    a->address.data = b;
    /* The range check (length <= 32 for IPv4) is policy_compile()'s. */
    a->length = len == UINT64_MAX ? (uint32_t)a->address.len * 8 : (uint32_t)len;
    *out = a;
    return 0;
}

static int
service_account(struct jctx *c, const json_t *v, const char *field,
                Istio__Security__ServiceAccountMatch **out)
{
    Istio__Security__ServiceAccountMatch *m = pol_arena_alloc(c->a, sizeof(*m));
    const char *key;
    json_t *val;
    int rc;

    istio__security__service_account_match__init(m);
    if ((rc = want(c, v, JSON_OBJECT, field, "an object")) < 0)
        return rc;
    json_object_foreach((json_t *)v, key, val)
    {
        char **s;
        if (strcmp(key, "namespace") == 0)
            s = &m->namespace_;
        else if (strcmp(key, "serviceAccount") == 0)
            s = &m->serviceaccount;
        else
            return jfail(c, -MESH_ECONFIG, field, "unknown field \"%s\"", key);
        if ((rc = str(c, val, field, s)) < 0)
            return rc;
    }
    *out = m;
    return 0;
}

/* A Match key -> family and sign, in either spelling. */
static int
match_key(const char *key, enum pol_field *f, int *neg)
{
    for (int i = 0; i < PF_COUNT; i++)
        for (int n = 0; n < 2; n++)
            if (strcmp(key, pol_field_name((enum pol_field)i, n, true)) == 0 ||
                strcmp(key, pol_field_name((enum pol_field)i, n, false)) == 0) {
                *f = (enum pol_field)i;
                *neg = n;
                return 0;
            }
    return -1;
}

static int
match_list(struct jctx *c, Istio__Security__Match *m, enum pol_field f, int neg, const json_t *v,
           const char *key)
{
    size_t n;
    char field[80];
    int rc;

    if ((rc = list(c, v, POLICY_MAX_LIST, key, &n)) < 0)
        return rc;
    void **vec = pol_arena_alloc(c->a, n * sizeof(void *));
    uint32_t *ports = pol_arena_alloc(c->a, n * sizeof(uint32_t));
    for (size_t i = 0; i < n; i++) {
        const json_t *e = json_array_get(v, i);
        uint64_t port;
        snprintf(field, sizeof(field), "%s[%zu]", key, i);
        switch (f) {
        case PF_NAMESPACES:
        case PF_PRINCIPALS:
            rc = string_match(c, e, field, (Istio__Security__StringMatch **)&vec[i]);
            break;
        case PF_SOURCE_IPS:
        case PF_DESTINATION_IPS:
            rc = address(c, e, field, (Istio__Security__Address **)&vec[i]);
            break;
        case PF_DESTINATION_PORTS:
            rc = uint_val(c, e, 65535, field, &port);
            ports[i] = (uint32_t)port;
            break;
        case PF_SERVICE_ACCOUNTS:
            rc = service_account(c, e, field, (Istio__Security__ServiceAccountMatch **)&vec[i]);
            break;
        case PF_COUNT:
            break;
        }
        if (rc < 0)
            return rc;
    }
#define SET(pos, negf, type)                                                                       \
    do {                                                                                           \
        if (neg) {                                                                                 \
            m->n_##negf = n;                                                                       \
            m->negf = (type)vec;                                                                   \
        } else {                                                                                   \
            m->n_##pos = n;                                                                        \
            m->pos = (type)vec;                                                                    \
        }                                                                                          \
    } while (0)
    switch (f) {
    case PF_NAMESPACES:
        SET(namespaces, not_namespaces, Istio__Security__StringMatch **);
        break;
    case PF_PRINCIPALS:
        SET(principals, not_principals, Istio__Security__StringMatch **);
        break;
    case PF_SOURCE_IPS:
        SET(source_ips, not_source_ips, Istio__Security__Address **);
        break;
    case PF_DESTINATION_IPS:
        SET(destination_ips, not_destination_ips, Istio__Security__Address **);
        break;
    case PF_DESTINATION_PORTS:
        vec = (void **)ports;
        SET(destination_ports, not_destination_ports, uint32_t *);
        break;
    case PF_SERVICE_ACCOUNTS:
        SET(service_accounts, not_service_accounts, Istio__Security__ServiceAccountMatch **);
        break;
    case PF_COUNT:
        break;
    }
#undef SET
    return 0;
}

static int
match(struct jctx *c, const json_t *v, Istio__Security__Match **out)
{
    Istio__Security__Match *m = pol_arena_alloc(c->a, sizeof(*m));
    const char *key;
    json_t *val;
    int rc;

    istio__security__match__init(m);
    if ((rc = want(c, v, JSON_OBJECT, NULL, "an object")) < 0)
        return rc;
    json_object_foreach((json_t *)v, key, val)
    {
        enum pol_field f;
        int neg;
        if (strcmp(key, "extensions") == 0) {
            if ((rc = want(c, val, JSON_ARRAY, key, "a list")) < 0)
                return rc;
            continue; /* ignored, as ztunnel does */
        }
        if (match_key(key, &f, &neg) < 0)
            return jfail(c, -MESH_ECONFIG, NULL, "unknown field \"%s\"", key);
        if ((rc = match_list(c, m, f, neg, val, key)) < 0)
            return rc;
    }
    *out = m;
    return 0;
}

/*
 * A list of objects each holding one list under |inner| (rules -> clauses ->
 * matches); |level| 0 is rules. Fills the protobuf-c arrays as it goes.
 */
static int
nested(struct jctx *c, const json_t *v, int level, void ***out, size_t *n_out)
{
    static const char *const names[] = {"rules", "clauses", "matches"};
    static const size_t caps[] = {POLICY_MAX_RULES, POLICY_MAX_CLAUSES, POLICY_MAX_MATCHES};
    size_t n, saved = strlen(c->path);
    int rc;

    if ((rc = list(c, v, caps[level], names[level], &n)) < 0)
        return rc;
    void **vec = pol_arena_alloc(c->a, n * sizeof(void *));
    for (size_t i = 0; i < n; i++) {
        const json_t *e = json_array_get(v, i);
        snprintf(c->path + saved, sizeof(c->path) - saved, "%s%s[%zu]", saved ? "." : "",
                 names[level], i);
        if (level == 2) {
            rc = match(c, e, (Istio__Security__Match **)&vec[i]);
        } else {
            const char *key;
            json_t *val;
            const json_t *inner = NULL;
            if ((rc = want(c, e, JSON_OBJECT, NULL, "an object")) < 0)
                return rc;
            json_object_foreach((json_t *)e, key, val)
            {
                if (strcmp(key, names[level + 1]) != 0)
                    return jfail(c, -MESH_ECONFIG, NULL, "unknown field \"%s\"", key);
                inner = val;
            }
            void **sub = NULL;
            size_t n_sub = 0;
            if (inner != NULL && (rc = nested(c, inner, level + 1, &sub, &n_sub)) < 0)
                return rc;
            if (level == 0) {
                Istio__Security__Rule *r = pol_arena_alloc(c->a, sizeof(*r));
                istio__security__rule__init(r);
                r->n_clauses = n_sub;
                r->clauses = (Istio__Security__Clause **)sub;
                vec[i] = r;
            } else {
                Istio__Security__Clause *cl = pol_arena_alloc(c->a, sizeof(*cl));
                istio__security__clause__init(cl);
                cl->n_matches = n_sub;
                cl->matches = (Istio__Security__Match **)sub;
                vec[i] = cl;
            }
        }
        if (rc < 0)
            return rc;
    }
    c->path[saved] = '\0';
    *out = vec;
    *n_out = n;
    return 0;
}

static const char *const scope_names[] = {"GLOBAL", "NAMESPACE", "WORKLOAD_SELECTOR"};
static const char *const action_names[] = {"ALLOW", "DENY"};

static int
top_field(struct jctx *c, Istio__Security__Authorization *pb, const char *key, const json_t *val)
{
    int e = 0;
    int rc;

    if (strcmp(key, "name") == 0)
        return str(c, val, key, &pb->name);
    if (strcmp(key, "namespace") == 0)
        return str(c, val, key, &pb->namespace_);
    if (strcmp(key, "scope") == 0) {
        rc = enum_val(c, val, scope_names, 3, key, &e);
        pb->scope = (Istio__Security__Scope)e;
        return rc;
    }
    if (strcmp(key, "action") == 0) {
        rc = enum_val(c, val, action_names, 2, key, &e);
        pb->action = (Istio__Security__Action)e;
        return rc;
    }
    if (strcmp(key, "dryRun") == 0 || strcmp(key, "dry_run") == 0) {
        if (!json_is_boolean(val))
            return jfail(c, -MESH_ECONFIG, key, "expected a boolean, got %s", type_name(val));
        pb->dry_run = json_is_true(val);
        return 0;
    }
    if (strcmp(key, "rules") == 0)
        return nested(c, val, 0, (void ***)&pb->rules, &pb->n_rules);
    if (strcmp(key, "extensions") == 0)
        return want(c, val, JSON_ARRAY, key, "a list"); /* ignored, as ztunnel does */
    return jfail(c, -MESH_ECONFIG, NULL, "unknown field \"%s\"", key);
}

int
policy_json_to_pb(const json_t *j, struct pol_arena *a, Istio__Security__Authorization **out,
                  char *err, size_t errlen)
{
    struct jctx c = {.err = err, .errlen = errlen, .a = a};
    const char *key;
    json_t *val;
    int rc;

    *out = NULL;
    const json_t *name = json_object_get(j, "name"), *ns = json_object_get(j, "namespace");
    snprintf(c.what, sizeof(c.what), "policy %.64s/%.64s",
             json_is_string(ns) ? json_string_value(ns) : "",
             json_is_string(name) ? json_string_value(name) : "");
    if (!json_is_object(j))
        return jfail(&c, -MESH_ECONFIG, NULL, "expected an object, got %s",
                     j ? type_name(j) : "nothing");
    Istio__Security__Authorization *pb = pol_arena_alloc(a, sizeof(*pb));
    istio__security__authorization__init(pb);
    json_object_foreach((json_t *)j, key, val)
    {
        if ((rc = top_field(&c, pb, key, val)) < 0)
            return rc;
    }
    *out = pb;
    return 0;
}

int
policy_from_json(const json_t *j, struct policy **out, char *err, size_t errlen)
{
    struct pol_arena a = {0};
    Istio__Security__Authorization *pb;
    int rc;

    *out = NULL;
    if ((rc = policy_json_to_pb(j, &a, &pb, err, errlen)) == 0)
        rc = policy_compile(pb, true, out, err, errlen);
    pol_arena_free(&a);
    return rc;
}
