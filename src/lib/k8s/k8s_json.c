/*
 * k8s_json.c - typed access to the JSON form of an object, with errors that
 * name the file, the line and the field; and the Kubernetes rules for names,
 * label keys and values, port names and IP addresses.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "k8s/k8s_internal.h"

int
k8s_fail(struct k8s_dctx *c, int line, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    k8s_diag_vadd(c->d, c->file, line ? line : c->line, K8S_ERROR, NULL, fmt, ap);
    va_end(ap);
    return -MESH_ECONFIG;
}

void
k8s_warn(struct k8s_dctx *c, int line, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    k8s_diag_vadd(c->d, c->file, line ? line : c->line, K8S_WARNING, NULL, fmt, ap);
    va_end(ap);
}

int
k8s_val_line(const struct k8s_dctx *c, const json_t *v)
{
    int line = k8s_lines_get(c->lines, v, NULL);
    return line ? line : c->line;
}

int
k8s_key_line(const struct k8s_dctx *c, const json_t *parent, const char *key)
{
    int line = k8s_lines_get(c->lines, parent, key);
    return line ? line : k8s_val_line(c, parent);
}

const char *
k8s_json_type_name(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return "a mapping";
    case JSON_ARRAY:
        return "a list";
    case JSON_STRING:
        return "a string";
    case JSON_INTEGER:
        return "an integer";
    case JSON_REAL:
        return "a number";
    case JSON_TRUE:
    case JSON_FALSE:
        return "a boolean";
    default:
        return "null";
    }
}

const json_t *
k8s_json_member(const json_t *parent, const char *key)
{
    const json_t *v = json_object_get(parent, key);
    return v == NULL || json_is_null(v) ? NULL : v;
}

/* "<path>.<key>", or "<key>" at the top of the object. */
static const char *
field(char *buf, size_t len, const char *path, const char *key)
{
    if (path == NULL || path[0] == '\0')
        snprintf(buf, len, "%s", key);
    else
        snprintf(buf, len, "%s.%s", path, key);
    return buf;
}

/* |what| names the value in full ("spec.nodeName"). */
static int
wrong_type(struct k8s_dctx *c, int line, const char *what, const char *want, const json_t *v)
{
    /* YAML 1.1 reads yes, no, on, off, 1.10 as booleans and numbers: say how to keep text. */
    const char *hint = strcmp(want, "a string") == 0 && (json_is_boolean(v) || json_is_number(v))
                           ? " (quote the value to keep it text)"
                           : "";
    return k8s_fail(c, line, "%s: expected %s, got %s%s", what, want, k8s_json_type_name(v), hint);
}

int
k8s_get_str(struct k8s_dctx *c, const json_t *parent, const char *key, const char *path,
            const char **out)
{
    const json_t *v = k8s_json_member(parent, key);
    char buf[256];

    *out = NULL;
    if (v == NULL)
        return 0;
    if (!json_is_string(v))
        return wrong_type(c, k8s_key_line(c, parent, key), field(buf, sizeof(buf), path, key),
                          "a string", v);
    *out = json_string_value(v);
    return 0;
}

int
k8s_get_bool(struct k8s_dctx *c, const json_t *parent, const char *key, const char *path, bool *out)
{
    const json_t *v = k8s_json_member(parent, key);
    char buf[256];

    *out = false;
    if (v == NULL)
        return 0;
    if (!json_is_boolean(v))
        return wrong_type(c, k8s_key_line(c, parent, key), field(buf, sizeof(buf), path, key),
                          "true or false", v);
    *out = json_is_true(v);
    return 0;
}

int
k8s_get_obj(struct k8s_dctx *c, const json_t *parent, const char *key, const char *path,
            const json_t **out)
{
    const json_t *v = k8s_json_member(parent, key);
    char buf[256];

    *out = NULL;
    if (v == NULL)
        return 0;
    if (!json_is_object(v))
        return wrong_type(c, k8s_key_line(c, parent, key), field(buf, sizeof(buf), path, key),
                          "a mapping", v);
    *out = v;
    return 0;
}

int
k8s_get_arr(struct k8s_dctx *c, const json_t *parent, const char *key, const char *path, size_t max,
            const json_t **out)
{
    const json_t *v = k8s_json_member(parent, key);
    char buf[256];

    *out = NULL;
    if (v == NULL)
        return 0;
    field(buf, sizeof(buf), path, key);
    if (!json_is_array(v))
        return wrong_type(c, k8s_key_line(c, parent, key), buf, "a list", v);
    if (json_array_size(v) > max)
        return k8s_fail(c, k8s_key_line(c, parent, key), "%s: more than %zu entries", buf, max);
    *out = v;
    return 0;
}

int
k8s_port_value(struct k8s_dctx *c, const json_t *v, int line, const char *what, uint16_t *out)
{
    double f = json_number_value(v);

    if (!json_is_number(v) || f != floor(f) || f < 1 || f > 65535) {
        if (json_is_string(v))
            return k8s_fail(c, line, "%s: \"%s\" is not a port number (1-65535)", what,
                            json_string_value(v));
        return k8s_fail(c, line, "%s: expected a port number (1-65535), got %s", what,
                        json_is_number(v) ? "one out of range" : k8s_json_type_name(v));
    }
    *out = (uint16_t)f;
    return 0;
}

int
k8s_get_port(struct k8s_dctx *c, const json_t *parent, const char *key, const char *path,
             uint16_t *out)
{
    const json_t *v = k8s_json_member(parent, key);
    char buf[256];

    *out = 0;
    if (v == NULL)
        return 0;
    return k8s_port_value(c, v, k8s_key_line(c, parent, key), field(buf, sizeof(buf), path, key),
                          out);
}

/* ---- Names ---- */

static bool
is_alnum_lower(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9');
}

static bool
dns_label_n(const char *s, size_t n, bool dns1035)
{
    if (n == 0 || n > 63 || !is_alnum_lower(s[0]) || !is_alnum_lower(s[n - 1]))
        return false;
    if (dns1035 && !(s[0] >= 'a' && s[0] <= 'z'))
        return false;
    for (size_t i = 0; i < n; i++)
        if (!is_alnum_lower(s[i]) && s[i] != '-')
            return false;
    return true;
}

bool
k8s_dns_label(const char *s, bool dns1035)
{
    return dns_label_n(s, strlen(s), dns1035);
}

static bool
dns_subdomain_n(const char *s, size_t n)
{
    if (n == 0 || n > 253)
        return false;
    for (size_t i = 0; i < n;) {
        const char *dot = memchr(s + i, '.', n - i);
        size_t len = dot ? (size_t)(dot - (s + i)) : n - i;
        if (!dns_label_n(s + i, len, false))
            return false;
        i += len + 1;
        if (dot != NULL && i == n)
            return false; /* trailing dot */
    }
    return true;
}

bool
k8s_dns_subdomain(const char *s)
{
    return dns_subdomain_n(s, strlen(s));
}

bool
k8s_port_name(const char *s)
{
    size_t n = strlen(s);
    bool letter = false;

    if (n == 0 || n > 15 || s[0] == '-' || s[n - 1] == '-' || strstr(s, "--") != NULL)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (!is_alnum_lower(s[i]) && s[i] != '-')
            return false;
        letter |= s[i] >= 'a' && s[i] <= 'z';
    }
    return letter;
}

/* The name part of a label key, and a label value: <= 63, [A-Za-z0-9_.-], alphanumeric ends. */
static bool
label_token(const char *s, size_t n)
{
    if (n == 0 || n > 63)
        return false;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        bool an = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9');
        if (!an && ((i == 0 || i == n - 1) || (ch != '-' && ch != '_' && ch != '.')))
            return false;
    }
    return true;
}

/* A qualified name: [DNS subdomain "/"] name. */
static bool
label_key(const char *s)
{
    const char *slash = strchr(s, '/');

    if (slash == NULL)
        return label_token(s, strlen(s));
    return dns_subdomain_n(s, (size_t)(slash - s)) && label_token(slash + 1, strlen(slash + 1));
}

static bool
label_value(const char *s)
{
    return s[0] == '\0' || label_token(s, strlen(s));
}

/* ---- Maps ---- */

static int
cmp_kv(const void *a, const void *b)
{
    return strcmp(((const struct k8s_kv *)a)->k, ((const struct k8s_kv *)b)->k);
}

void
k8s_kv_free(struct k8s_kv *kv, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(kv[i].k);
        free(kv[i].v);
    }
    free(kv);
}

const char *
k8s_kv_get(const struct k8s_kv *kv, size_t n, const char *key)
{
    struct k8s_kv want = {.k = (char *)(uintptr_t)key};
    const struct k8s_kv *hit = n ? bsearch(&want, kv, n, sizeof(*kv), cmp_kv) : NULL;

    return hit ? hit->v : NULL;
}

int
k8s_get_strmap(struct k8s_dctx *c, const json_t *parent, const char *key, const char *path,
               enum k8s_map_rule rule, struct k8s_kv **out, size_t *n_out)
{
    const json_t *m;
    const char *k;
    json_t *v;
    char what[256];
    int rc;

    *out = NULL;
    *n_out = 0;
    if ((rc = k8s_get_obj(c, parent, key, path, &m)) < 0 || m == NULL)
        return rc;
    field(what, sizeof(what), path, key);
    if (json_object_size(m) > K8S_MAX_LABELS)
        return k8s_fail(c, k8s_key_line(c, parent, key), "%s: more than %d entries", what,
                        K8S_MAX_LABELS);
    struct k8s_kv *kv = xcalloc(json_object_size(m) + 1, sizeof(*kv));
    size_t n = 0;
    json_object_foreach((json_t *)(uintptr_t)m, k, v)
    {
        const char *s = "";
        int line = k8s_key_line(c, m, k);
        if (!json_is_null(v) && !json_is_string(v)) {
            rc = wrong_type(c, line, what, "a string", v);
            break;
        }
        if (json_is_string(v))
            s = json_string_value(v);
        if (!label_key(k)) {
            rc = k8s_fail(c, line,
                          "%s: \"%s\" is not a valid key ([prefix/]name, name <= 63 "
                          "characters of [A-Za-z0-9_.-])",
                          what, k);
            break;
        }
        if (rule == K8S_MAP_LABELS && !label_value(s)) {
            rc = k8s_fail(c, line,
                          "%s: %s: \"%s\" is not a valid label value (<= 63 characters "
                          "of [A-Za-z0-9_.-], alphanumeric at both ends)",
                          what, k, s);
            break;
        }
        kv[n].k = xstrdup(k);
        kv[n].v = xstrdup(s);
        n++;
    }
    if (rc < 0) {
        k8s_kv_free(kv, n);
        return rc;
    }
    qsort(kv, n, sizeof(*kv), cmp_kv);
    *out = kv;
    *n_out = n;
    return 0;
}

int
k8s_parse_ip(const char *s, struct k8s_ip *ip)
{
    memset(ip, 0, sizeof(*ip));
    if (inet_pton(AF_INET, s, ip->b) == 1) {
        ip->len = 4;
        return 0;
    }
    if (inet_pton(AF_INET6, s, ip->b) == 1) {
        ip->len = 16;
        return 0;
    }
    return -EINVAL;
}
