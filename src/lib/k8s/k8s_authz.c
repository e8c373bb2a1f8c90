/*
 * k8s_authz.c - AuthorizationPolicy (security.istio.io v1, v1beta1) for
 * ztunnel. Validated as Istio's webhook does (pkg/config/validation
 * ValidateAuthorizationPolicy, pkg/config/security ValidateAttribute,
 * ValidateIPs, ValidatePorts), then converted as istiod does for ambient
 * (pilot/pkg/serviceregistry/ambient/authorization.go convertAuthorizationPolicy,
 * handleRule) into a packed istio.security.Authorization named "<ns>/<name>":
 *
 *   scope     selector -> WORKLOAD_SELECTOR (listed by the workloads it
 *             selects, lib/k8sconv/k8s_authz_sel.c); none -> NAMESPACE; none in the root
 *             namespace -> GLOBAL
 *   rules     one Rule per rule, whose Clauses are: one with a Match per
 *             `to` operation (ports), one with a Match per `from` source,
 *             one per `when` condition (values -> the field, notValues -> its
 *             negation); "*" is presence, "*x" a suffix, "x*" a prefix;
 *             serviceAccounts without "/" are in the policy's namespace;
 *             addresses without a prefix length are /32 or /128
 *   L7        hosts, methods, paths, remoteIpBlocks, requestPrincipals,
 *             trustDomains (and their negations), other `when` keys: an ALLOW
 *             drops the whole rule, a DENY leaves them out (an empty Match never
 *             matches at ztunnel) - with istiod's status message as a warning
 *   not sent  targetRef(s) (the waypoint enforces those), AUDIT and CUSTOM
 *   dry run   the istio.io/dry-run annotation sets dry_run (istiod does so
 *             when AMBIENT_ENABLE_DRY_RUN_AUTHORIZATION_POLICY is on)
 *
 * The result depends on the object alone, so it is made when the object is
 * decoded, here in the reader: whether ztunnel can take the converted policy
 * (POLICY_MAX_ENTRIES, POLICY_MAX_BYTES) decides if the object is valid, and
 * so which version the store keeps. The converter (lib/k8sconv) only selects
 * and serves the packed bytes. Validation errors make the object invalid (the store keeps the
 * previous version); warnings are kept with the object and reported while it
 * is in effect (k8s_authz_diags).
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "authorization.pb-c.h"
#include "base/base.h"
#include "k8s/k8s_authz_internal.h"
#include "k8s/k8s_internal.h"
#include "policy/policy.h"

static void aerr(struct apc *x, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
aerr(struct apc *x, int line, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    k8s_diag_vadd(x->c->d, x->c->file, line ? line : x->c->line, K8S_ERROR, CODE_SCHEMA_ERROR, fmt,
                  ap);
    va_end(ap);
    x->errors++;
}

void
ap_note(struct apc *x, int sev, int line, const char *code, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    k8s_diag_vadd(&x->ap->diags, x->c->file, line ? line : x->c->line, sev, code, fmt, ap);
    va_end(ap);
}

void
k8s_ap_cleanup(struct k8s_ap *ap)
{
    k8s_kv_free(ap->labels, ap->n_labels);
    free(ap->data);
    free(ap->wp_rules);
    k8s_diags_clear(&ap->diags);
}

/* ---- JSON access ---- */

/* Member |key|, NULL when absent or null. */
static int
key_line(const struct apc *x, const json_t *parent, const char *key)
{
    return k8s_key_line(x->c, parent, key);
}

static int
val_line(const struct apc *x, const json_t *v)
{
    return k8s_val_line(x->c, v);
}

/* Fields the schema knows; others are refused, as kubectl's strict field validation does. */
static void
known_fields(struct apc *x, const json_t *obj, const char *path, const char *const *known)
{
    const char *k;
    json_t *v;

    json_object_foreach((json_t *)(uintptr_t)obj, k, v)
    {
        bool ok = false;
        for (size_t i = 0; known[i] != NULL && !ok; i++)
            ok = strcmp(known[i], k) == 0;
        if (!ok)
            aerr(x, key_line(x, obj, k), "%s: unknown field \"%s\"", path, k);
    }
}

/* Member |key| of |parent| as a mapping (NULL when absent); false after an error. */
static bool
mapping(struct apc *x, const json_t *parent, const char *key, const char *path, const json_t **out)
{
    const json_t *v = k8s_json_member(parent, key);

    *out = NULL;
    if (v == NULL)
        return true;
    if (!json_is_object(v)) {
        aerr(x, key_line(x, parent, key), "%s.%s: expected a mapping, got %s", path, key,
             k8s_json_type_name(v));
        return false;
    }
    *out = v;
    return true;
}

/* Member |key| of |parent| as a list (NULL when absent); false after an error. */
static bool
list(struct apc *x, const json_t *parent, const char *key, const char *path, size_t max,
     const json_t **out)
{
    const json_t *v = k8s_json_member(parent, key);

    *out = NULL;
    if (v == NULL)
        return true;
    if (!json_is_array(v)) {
        aerr(x, key_line(x, parent, key), "%s.%s: expected a list, got %s", path, key,
             k8s_json_type_name(v));
        return false;
    }
    if (json_array_size(v) > max) {
        aerr(x, key_line(x, parent, key), "%s.%s: %zu entries, more than %zu", path, key,
             json_array_size(v), max);
        return false;
    }
    *out = v;
    return true;
}

/*
 * Member |key| of |parent| as a list of non-empty strings (CheckEmptyValues);
 * NULL when absent. False after an error.
 */
static bool
strings(struct apc *x, const json_t *parent, const char *key, const char *path, const json_t **out)
{
    const json_t *arr;
    bool ok = true;

    *out = NULL;
    if (!list(x, parent, key, path, POLICY_MAX_LIST, &arr))
        return false;
    for (size_t i = 0; arr != NULL && i < json_array_size(arr); i++) {
        const json_t *e = json_array_get(arr, i);
        int line = val_line(x, e);
        if (!json_is_string(e)) {
            aerr(x, line, "%s.%s[%zu]: expected a string, got %s%s", path, key, i, k8s_json_type_name(e),
                 json_is_number(e) || json_is_boolean(e) ? " (quote the value)" : "");
            ok = false;
        } else if (json_string_length(e) == 0) {
            aerr(x, line, "%s.%s[%zu]: empty value not allowed", path, key, i);
            ok = false;
        } else if (json_string_length(e) > POLICY_MAX_STRING) {
            aerr(x, line, "%s.%s[%zu]: %zu bytes, more than ztunnel accepts (%d)", path, key, i,
                 json_string_length(e), POLICY_MAX_STRING);
            ok = false;
        }
    }
    if (ok)
        *out = arr;
    return ok;
}

static size_t
count(const json_t *arr)
{
    return arr ? json_array_size(arr) : 0;
}

/* ---- Values ---- */

/* Go's strconv.ParseUint(s, 10, 32) within 0-65535 (pkg/config/security ValidatePorts). */
static bool
parse_port(const char *s, uint32_t *out)
{
    uint32_t v = 0;

    if (*s == '\0')
        return false;
    for (; *s != '\0'; s++) {
        if (*s < '0' || *s > '9')
            return false;
        v = v * 10 + (uint32_t)(*s - '0');
        if (v > 65535)
            return false;
    }
    *out = v;
    return true;
}

/*
 * Go's netip.ParsePrefix when |s| has a '/', else netip.ParseAddr (an IPv6
 * zone is accepted and dropped, as AsSlice does) with the full length.
 */
static bool
parse_cidr(const char *s, struct k8s_ip *ip, uint32_t *bits)
{
    const char *slash = strchr(s, '/');
    char buf[64];
    size_t n = slash ? (size_t)(slash - s) : strlen(s);

    if (n == 0 || n >= sizeof(buf))
        return false;
    memcpy(buf, s, n);
    buf[n] = '\0';
    if (slash == NULL) {
        char *zone = strchr(buf, '%');
        if (zone != NULL) {
            if (strchr(buf, ':') == NULL || zone[1] == '\0')
                return false; /* zones only on IPv6, and not empty */
            *zone = '\0';
        }
    }
    if (k8s_parse_ip(buf, ip) < 0)
        return false;
    uint32_t max = ip->len == 4 ? 32 : 128;
    if (slash == NULL) {
        *bits = max;
        return true;
    }
    const char *b = slash + 1;
    uint32_t v = 0;
    if (*b == '\0' || (b[0] == '0' && b[1] != '\0'))
        return false; /* no digits, or a leading zero */
    for (; *b != '\0'; b++) {
        if (*b < '0' || *b > '9')
            return false;
        v = v * 10 + (uint32_t)(*b - '0');
        if (v > max)
            return false;
    }
    *bits = v;
    return true;
}

/* Every entry of |arr| (strings already checked) is an address or CIDR (ValidateIPs). */
static void
check_ips(struct apc *x, const json_t *arr, const char *path, const char *key)
{
    for (size_t i = 0; i < count(arr); i++) {
        const json_t *e = json_array_get(arr, i);
        const char *s = json_string_value(e);
        struct k8s_ip ip;
        uint32_t bits;
        if (!parse_cidr(s, &ip, &bits))
            aerr(x, val_line(x, e), "%s.%s[%zu]: bad %s (%s)", path, key, i,
                 strchr(s, '/') ? "CIDR range" : "IP address", s);
    }
}

static void
check_ports(struct apc *x, const json_t *arr, const char *path, const char *key)
{
    for (size_t i = 0; i < count(arr); i++) {
        const json_t *e = json_array_get(arr, i);
        uint32_t p;
        if (!parse_port(json_string_value(e), &p))
            aerr(x, val_line(x, e), "%s.%s[%zu]: bad port (%s): not a number from 0 to 65535", path,
                 key, i, json_string_value(e));
    }
}

/* "ns/sa" or "sa" (the policy's namespace): both parts non-empty, one '/' at most. */
static void
check_service_accounts(struct apc *x, const json_t *arr, const char *path, const char *key)
{
    for (size_t i = 0; i < count(arr); i++) {
        const json_t *e = json_array_get(arr, i);
        const char *s = json_string_value(e), *slash = strchr(s, '/');
        if (slash != NULL && (slash == s || slash[1] == '\0' || strchr(slash + 1, '/') != NULL))
            aerr(x, val_line(x, e),
                 "%s.%s[%zu]: \"%s\" is not a service account (\"<namespace>/<name>\" or "
                 "\"<name>\")",
                 path, key, i, s);
    }
}

/* ---- Validation ---- */

static const char *const source_fields[] = {
    "principals",
    "notPrincipals",
    "requestPrincipals",
    "notRequestPrincipals",
    "namespaces",
    "notNamespaces",
    "ipBlocks",
    "notIpBlocks",
    "remoteIpBlocks",
    "notRemoteIpBlocks",
    "serviceAccounts",
    "notServiceAccounts",
    "trustDomains",
    "notTrustDomains",
    NULL,
};

static const char *const operation_fields[] = {
    "hosts", "notHosts", "ports", "notPorts", "methods", "notMethods", "paths", "notPaths", NULL,
};

/* Values the L4 conversion reads; the other fields are HTTP attributes (httpSources). */
static bool
l7_source_field(const char *k)
{
    return strcmp(k, "remoteIpBlocks") == 0 || strcmp(k, "notRemoteIpBlocks") == 0 ||
           strcmp(k, "requestPrincipals") == 0 || strcmp(k, "notRequestPrincipals") == 0 ||
           strcmp(k, "trustDomains") == 0 || strcmp(k, "notTrustDomains") == 0;
}

static bool
l7_operation_field(const char *k)
{
    return strcmp(k, "ports") != 0 && strcmp(k, "notPorts") != 0;
}

static const char *const l4_when_keys[] = {
    "source.ip", "source.namespace", "source.principal", "destination.ip", "destination.port", NULL,
};

bool
ap_l4_when_key(const char *k)
{
    for (size_t i = 0; l4_when_keys[i] != NULL; i++)
        if (strcmp(l4_when_keys[i], k) == 0)
            return true;
    return false;
}

/* pkg/config/security validateMapKey: "a[b]". */
static bool
map_key(const char *key)
{
    const char *open = strchr(key, '[');
    size_t n = strlen(key);

    return n > 0 && key[n - 1] == ']' && open != NULL && open > key && (size_t)(open - key) < n - 2;
}

static bool
has_prefix(const char *s, const char *p)
{
    return strncmp(s, p, strlen(p)) == 0;
}

/* pkg/config/security ValidateAttribute for the values (or notValues) of a condition. */
static void
check_condition(struct apc *x, const char *key, const json_t *vals, int key_ln, const char *path,
                const char *field)
{
    if (has_prefix(key, "request.headers") || has_prefix(key, "request.auth.claims") ||
        has_prefix(key, "experimental.envoy.filters.")) {
        if (!map_key(key))
            aerr(x, key_ln, "%s: bad key (%s): should have format a[b]", path, key);
    } else if (strcmp(key, "source.ip") == 0 || strcmp(key, "remote.ip") == 0 ||
               strcmp(key, "destination.ip") == 0) {
        check_ips(x, vals, path, field);
    } else if (strcmp(key, "destination.port") == 0) {
        check_ports(x, vals, path, field);
    } else if (strcmp(key, "source.namespace") == 0 || strcmp(key, "source.principal") == 0 ||
               strcmp(key, "request.auth.principal") == 0 ||
               strcmp(key, "request.auth.audiences") == 0 ||
               strcmp(key, "request.auth.presenter") == 0 || strcmp(key, "connection.sni") == 0 ||
               strcmp(key, "source.serviceAccount") == 0 ||
               strcmp(key, "source.trustDomain") == 0) {
        /* any value */
    } else if (strcmp(key, "destination.namespace") == 0) {
        aerr(x, key_ln, "%s: attribute %s is replaced by the metadata.namespace", path, key);
    } else if (has_prefix(key, "destination.labels")) {
        aerr(x, key_ln, "%s: attribute %s is replaced by the workload selector", path, key);
    } else if (strcmp(key, "destination.name") == 0 || strcmp(key, "destination.user") == 0) {
        aerr(x, key_ln, "%s: deprecated attribute %s: only supported in v1alpha1", path, key);
    } else {
        aerr(x, key_ln, "%s: unknown attribute: %s", path, key);
    }
}

static void
validate_source(struct apc *x, const json_t *src, const char *path, size_t rule, bool custom)
{
    static const char *const custom_refused[] = {
        "namespaces", "notNamespaces", "serviceAccounts",   "notServiceAccounts",
        "principals", "notPrincipals", "requestPrincipals", "notRequestPrincipals",
    };
    const json_t *v[ARRAY_LEN(source_fields)] = {0};
    size_t total = 0;
    int before = x->errors;

    known_fields(x, src, path, source_fields);
    for (size_t i = 0; source_fields[i] != NULL; i++) {
        strings(x, src, source_fields[i], path, &v[i]);
        total += count(v[i]);
    }
    if (total == 0 && x->errors == before)
        aerr(x, val_line(x, src), "%s: `from.source` must not be empty, found at rule %zu", path,
             rule);
    /* principals, notPrincipals, namespaces, notNamespaces against serviceAccounts, not... */
    if (count(v[0]) + count(v[1]) + count(v[4]) + count(v[5]) > 0 &&
        count(v[10]) + count(v[11]) > 0)
        aerr(x, val_line(x, src),
             "%s: cannot set serviceAccounts with namespaces or principals, found at rule %zu",
             path, rule);
    for (size_t i = 0; source_fields[i] != NULL; i++) {
        const char *k = source_fields[i];
        if (strstr(k, "IpBlocks") != NULL || strstr(k, "ipBlocks") != NULL)
            check_ips(x, v[i], path, k);
        if (strstr(k, "erviceAccounts") != NULL)
            check_service_accounts(x, v[i], path, k);
    }
    for (size_t i = 0; custom && i < ARRAY_LEN(custom_refused); i++)
        if (k8s_json_member(src, custom_refused[i]) != NULL)
            aerr(x, key_line(x, src, custom_refused[i]),
                 "%s: From.%c%s is currently not supported with CUSTOM action", path,
                 custom_refused[i][0] - 'a' + 'A', custom_refused[i] + 1);
}

static void
validate_operation(struct apc *x, const json_t *op, const char *path, size_t rule)
{
    const json_t *v[ARRAY_LEN(operation_fields)] = {0};
    size_t total = 0;
    int before = x->errors;

    known_fields(x, op, path, operation_fields);
    for (size_t i = 0; operation_fields[i] != NULL; i++) {
        strings(x, op, operation_fields[i], path, &v[i]);
        total += count(v[i]);
    }
    if (total == 0 && x->errors == before)
        aerr(x, val_line(x, op), "%s: `to.operation` must not be empty, found at rule %zu", path,
             rule);
    check_ports(x, v[2], path, "ports");
    check_ports(x, v[3], path, "notPorts");
}

/* `from` or `to`: a non-empty list of mappings with |inner| (source, operation). */
static void
validate_peers(struct apc *x, const json_t *rule, const char *rpath, size_t r, const char *key,
               const char *inner, bool custom)
{
    static const char *const from_fields[] = {"source", NULL};
    static const char *const to_fields[] = {"operation", NULL};
    const json_t *arr;
    char path[128];

    if (!list(x, rule, key, rpath, POLICY_MAX_MATCHES, &arr) || arr == NULL)
        return;
    if (json_array_size(arr) == 0)
        aerr(x, key_line(x, rule, key), "%s.%s: `%s` must not be empty, found at rule %zu", rpath,
             key, key, r);
    for (size_t i = 0; i < json_array_size(arr); i++) {
        const json_t *e = json_array_get(arr, i), *in;
        snprintf(path, sizeof(path), "%s.%s[%zu]", rpath, key, i);
        if (json_is_null(e)) {
            aerr(x, val_line(x, e), "%s: `%s` must not be nil, found at rule %zu", path, key, r);
            continue;
        }
        if (!json_is_object(e)) {
            aerr(x, val_line(x, e), "%s: expected a mapping, got %s", path, k8s_json_type_name(e));
            continue;
        }
        known_fields(x, e, path, strcmp(key, "from") == 0 ? from_fields : to_fields);
        if (!mapping(x, e, inner, path, &in))
            continue;
        if (in == NULL) {
            aerr(x, val_line(x, e), "%s: `%s.%s` must not be nil, found at rule %zu", path, key,
                 inner, r);
            continue;
        }
        char ipath[160];
        snprintf(ipath, sizeof(ipath), "%s.%s", path, inner);
        if (strcmp(key, "from") == 0)
            validate_source(x, in, ipath, r, custom);
        else
            validate_operation(x, in, ipath, r);
    }
}

static void
validate_when(struct apc *x, const json_t *rule, const char *rpath, bool custom)
{
    static const char *const fields[] = {"key", "values", "notValues", NULL};
    const json_t *arr;
    char path[128];

    if (!list(x, rule, "when", rpath, POLICY_MAX_CLAUSES - 2, &arr) || arr == NULL)
        return;
    for (size_t i = 0; i < json_array_size(arr); i++) {
        const json_t *e = json_array_get(arr, i), *vals, *nvals;
        snprintf(path, sizeof(path), "%s.when[%zu]", rpath, i);
        if (!json_is_object(e)) {
            aerr(x, val_line(x, e), "%s: expected a mapping, got %s", path, k8s_json_type_name(e));
            continue;
        }
        known_fields(x, e, path, fields);
        const json_t *k = k8s_json_member(e, "key");
        if (k != NULL && !json_is_string(k)) {
            aerr(x, key_line(x, e, "key"), "%s.key: expected a string, got %s", path, k8s_json_type_name(k));
            continue;
        }
        const char *key = k ? json_string_value(k) : "";
        int kl = k ? key_line(x, e, "key") : val_line(x, e);
        int before = x->errors;
        strings(x, e, "values", path, &vals);
        strings(x, e, "notValues", path, &nvals);
        if (x->errors != before)
            continue;
        if (key[0] == '\0') {
            aerr(x, kl, "%s: `key` must not be empty", path);
            continue;
        }
        if (count(vals) == 0 && count(nvals) == 0) {
            aerr(x, kl, "%s: at least one of `values` or `notValues` must be set for key %s", path,
                 key);
            continue;
        }
        check_condition(x, key, vals, kl, path, "values");
        if (x->errors == before)
            check_condition(x, key, nvals, kl, path, "notValues");
        if (custom &&
            (strcmp(key, "source.namespace") == 0 || strcmp(key, "source.serviceAccount") == 0 ||
             strcmp(key, "source.principal") == 0 || has_prefix(key, "request.auth.")))
            aerr(x, kl, "%s: %s is currently not supported with CUSTOM action", path, key);
    }
}

static void
validate_rules(struct apc *x, const json_t *rules, bool custom)
{
    static const char *const fields[] = {"from", "to", "when", NULL};
    char path[64];

    for (size_t i = 0; i < count(rules); i++) {
        const json_t *r = json_array_get(rules, i);
        snprintf(path, sizeof(path), "spec.rules[%zu]", i);
        if (json_is_null(r)) {
            aerr(x, val_line(x, r), "%s: `rule` must not be nil, found at rule %zu", path, i);
            continue;
        }
        if (!json_is_object(r)) {
            aerr(x, val_line(x, r), "%s: expected a mapping, got %s", path, k8s_json_type_name(r));
            continue;
        }
        known_fields(x, r, path, fields);
        validate_peers(x, r, path, i, "from", "source", custom);
        validate_peers(x, r, path, i, "to", "operation", custom);
        validate_when(x, r, path, custom);
    }
}

/* validateWorkloadSelector: matchLabels without empty keys or wildcards; kept sorted. */
static void
validate_selector(struct apc *x, const json_t *sel, struct k8s_kv **out, size_t *n_out,
                  bool *match_labels)
{
    static const char *const fields[] = {"matchLabels", NULL};
    const json_t *ml;
    const char *k;
    json_t *v;

    known_fields(x, sel, "spec.selector", fields);
    if (!mapping(x, sel, "matchLabels", "spec.selector", &ml))
        return;
    *match_labels = ml != NULL;
    if (ml == NULL || json_object_size(ml) == 0) {
        ap_note(x, K8S_WARNING, val_line(x, sel), CODE_SCHEMA_WARNING,
              "workload selector specified without labels: %s",
              ml == NULL ? "no workload lists this policy (istiod attaches it to none)"
                         : "every workload of its scope lists this policy (an empty selector "
                           "selects all)");
        if (ml == NULL)
            return;
    }
    if (json_object_size(ml) > K8S_MAX_LABELS) {
        aerr(x, key_line(x, sel, "matchLabels"), "spec.selector.matchLabels: more than %d entries",
             K8S_MAX_LABELS);
        return;
    }
    struct k8s_kv *kv = xcalloc(json_object_size(ml) + 1, sizeof(*kv));
    size_t n = 0;
    json_object_foreach((json_t *)(uintptr_t)ml, k, v)
    {
        int line = key_line(x, ml, k);
        if (!json_is_string(v) && !json_is_null(v)) {
            aerr(x, line, "spec.selector.matchLabels.%s: expected a string, got %s%s", k,
                 k8s_json_type_name(v), json_is_number(v) || json_is_boolean(v) ? " (quote the value)" : "");
            continue;
        }
        const char *s = json_is_string(v) ? json_string_value(v) : "";
        if (k[0] == '\0')
            aerr(x, line, "spec.selector: empty key is not supported in selector: \"=%s\"", s);
        else if (strchr(k, '*') != NULL || strchr(s, '*') != NULL)
            aerr(x, line, "spec.selector: wildcard is not supported in selector: \"%s=%s\"", k, s);
        kv[n].k = xstrdup(k);
        kv[n].v = xstrdup(s);
        n++;
    }
    /* Sorted as k8s_kv_get() wants (the store's label arrays are). */
    for (size_t i = 1; i < n; i++)
        for (size_t j = i; j > 0 && strcmp(kv[j - 1].k, kv[j].k) > 0; j--) {
            struct k8s_kv t = kv[j];
            kv[j] = kv[j - 1];
            kv[j - 1] = t;
        }
    *out = kv;
    *n_out = n;
}

/* validatePolicyTargetReference: a name, no namespace, a kind a policy may target. */
static void
validate_target_ref(struct apc *x, const json_t *t, const char *path)
{
    static const char *const fields[] = {"group", "kind", "name", "namespace", NULL};
    static const struct {
        const char *group, *kind;
    } allowed[] = {
        {"", "Service"},
        {"networking.istio.io", "ServiceEntry"},
        {"gateway.networking.k8s.io", "Gateway"},
        {"gateway.networking.k8s.io", "GatewayClass"},
    };
    const char *s[4] = {0};

    if (!json_is_object(t)) {
        aerr(x, val_line(x, t), "%s: expected a mapping, got %s", path, k8s_json_type_name(t));
        return;
    }
    known_fields(x, t, path, fields);
    for (size_t i = 0; i < 4; i++) {
        const json_t *v = k8s_json_member(t, fields[i]);
        if (v != NULL && !json_is_string(v)) {
            aerr(x, key_line(x, t, fields[i]), "%s.%s: expected a string, got %s", path, fields[i],
                 k8s_json_type_name(v));
            return;
        }
        s[i] = v ? json_string_value(v) : "";
    }
    if (s[2][0] == '\0')
        aerr(x, val_line(x, t), "%s: targetRef name must be set", path);
    if (s[3][0] != '\0')
        aerr(x, key_line(x, t, "namespace"),
             "%s: targetRef namespace must not be set; cross namespace referencing is not "
             "supported",
             path);
    const char *group = strcmp(s[0], "core") == 0 ? "" : s[0];
    bool ok = false;
    for (size_t i = 0; i < ARRAY_LEN(allowed) && !ok; i++)
        ok = strcmp(allowed[i].group, group) == 0 && strcmp(allowed[i].kind, s[1]) == 0;
    if (!ok)
        aerr(x, val_line(x, t),
             "%s: targetRef must be to a Service, ServiceEntry, Gateway or GatewayClass but was "
             "%s/%s",
             path, s[0], s[1]);
}

/* ---- Conversion (valid input only) ---- */


static void
found_l7(struct ap_conv *v, const char *name, int line)
{
    bool seen = false;

    for (size_t i = 0; i < v->n_l7 && !seen; i++)
        seen = strcmp(v->l7[i], name) == 0;
    if (!seen && v->n_l7 < ARRAY_LEN(v->l7))
        v->l7[v->n_l7++] = name;
    if (v->l7_line == 0 || line < v->l7_line)
        v->l7_line = line;
    seen = false;
    for (size_t i = 0; i < v->n_all_l7 && !seen; i++)
        seen = strcmp(v->all_l7[i], name) == 0;
    if (!seen && v->n_all_l7 < ARRAY_LEN(v->all_l7))
        v->all_l7[v->n_all_l7++] = name;
}

static int
cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The sorted list "a, b, c" (sets.SortedList joined with ", "). */
static char *
joined(struct k8s_arena *a, const char *const *v, size_t n)
{
    const char **s = k8s_arena_alloc(a, (n + 1) * sizeof(*s));
    size_t len = 1;

    memcpy(s, v, n * sizeof(*s));
    qsort(s, n, sizeof(*s), cmp_str);
    for (size_t i = 0; i < n; i++)
        len += strlen(s[i]) + 2;
    char *out = k8s_arena_alloc(a, len), *p = out;
    for (size_t i = 0; i < n; i++) {
        size_t k = strlen(s[i]);
        if (i > 0) {
            memcpy(p, ", ", 2);
            p += 2;
        }
        memcpy(p, s[i], k);
        p += k;
    }
    *p = '\0';
    return out;
}

/* stringToMatch: "*" presence, "*x" suffix, "x*" prefix, else exact. */
Istio__Security__StringMatch *
ap_string_match(struct k8s_arena *a, const char *v)
{
    Istio__Security__StringMatch *m = k8s_arena_alloc(a, sizeof(*m));
    size_t n = strlen(v);

    istio__security__string_match__init(m);
    if (strcmp(v, "*") == 0) {
        Google__Protobuf__Empty *e = k8s_arena_alloc(a, sizeof(*e));
        google__protobuf__empty__init(e);
        m->match_type_case = ISTIO__SECURITY__STRING_MATCH__MATCH_TYPE_PRESENCE;
        m->presence = e;
    } else if (v[0] == '*') {
        m->match_type_case = ISTIO__SECURITY__STRING_MATCH__MATCH_TYPE_SUFFIX;
        m->suffix = (char *)(uintptr_t)(v + 1);
    } else if (n > 0 && v[n - 1] == '*') {
        m->match_type_case = ISTIO__SECURITY__STRING_MATCH__MATCH_TYPE_PREFIX;
        m->prefix = k8s_arena_printf(a, "%.*s", (int)(n - 1), v);
    } else {
        m->match_type_case = ISTIO__SECURITY__STRING_MATCH__MATCH_TYPE_EXACT;
        m->exact = (char *)(uintptr_t)v;
    }
    return m;
}

void
ap_strs(struct ap_conv *v, const json_t *arr, Istio__Security__StringMatch ***out, size_t *n)
{
    *n = count(arr);
    *out = k8s_arena_alloc(v->a, (*n + 1) * sizeof(**out));
    for (size_t i = 0; i < *n; i++)
        (*out)[i] = ap_string_match(v->a, json_string_value(json_array_get(arr, i)));
    v->entries += *n;
}

/* stringToIP (every entry is valid here). */
void
ap_ips(struct ap_conv *v, const json_t *arr, Istio__Security__Address ***out, size_t *n)
{
    *n = 0;
    *out = k8s_arena_alloc(v->a, (count(arr) + 1) * sizeof(**out));
    for (size_t i = 0; i < count(arr); i++) {
        struct k8s_ip ip;
        uint32_t bits;
        if (!parse_cidr(json_string_value(json_array_get(arr, i)), &ip, &bits))
            continue;
        Istio__Security__Address *ad = k8s_arena_alloc(v->a, sizeof(*ad));
        istio__security__address__init(ad);
        uint8_t *b = k8s_arena_alloc(v->a, ip.len);
        memcpy(b, ip.b, ip.len);
        ad->address.data = b;
        ad->address.len = ip.len;
        ad->length = bits;
        (*out)[(*n)++] = ad;
    }
    v->entries += *n;
}

/* stringToPort. */
void
ap_ports(struct ap_conv *v, const json_t *arr, uint32_t **out, size_t *n)
{
    *n = 0;
    *out = k8s_arena_alloc(v->a, (count(arr) + 1) * sizeof(**out));
    for (size_t i = 0; i < count(arr); i++)
        if (parse_port(json_string_value(json_array_get(arr, i)), &(*out)[*n]))
            (*n)++;
    v->entries += *n;
}

/* stringToServiceAccountMatch: "ns/sa", or "sa" in the policy's namespace. */
static void
sas(struct ap_conv *v, const json_t *arr, Istio__Security__ServiceAccountMatch ***out, size_t *n)
{
    *n = count(arr);
    *out = k8s_arena_alloc(v->a, (*n + 1) * sizeof(**out));
    for (size_t i = 0; i < *n; i++) {
        const char *s = json_string_value(json_array_get(arr, i));
        const char *slash = strchr(s, '/');
        Istio__Security__ServiceAccountMatch *m = k8s_arena_alloc(v->a, sizeof(*m));
        istio__security__service_account_match__init(m);
        if (slash != NULL) {
            m->namespace_ = k8s_arena_printf(v->a, "%.*s", (int)(slash - s), s);
            m->serviceaccount = (char *)(uintptr_t)(slash + 1);
        } else {
            m->namespace_ = (char *)(uintptr_t)v->ns;
            m->serviceaccount = (char *)(uintptr_t)s;
        }
        (*out)[i] = m;
    }
    v->entries += *n;
}

Istio__Security__Match *
ap_new_match(struct ap_conv *v)
{
    Istio__Security__Match *m = k8s_arena_alloc(v->a, sizeof(*m));

    istio__security__match__init(m);
    v->entries++;
    return m;
}

static Istio__Security__Clause *
new_clause(struct ap_conv *v, size_t cap)
{
    Istio__Security__Clause *c = k8s_arena_alloc(v->a, sizeof(*c));

    istio__security__clause__init(c);
    c->matches = k8s_arena_alloc(v->a, (cap + 1) * sizeof(*c->matches));
    v->entries++;
    return c;
}

/* An operation: ports and notPorts; the HTTP fields are recorded, not converted (httpOperations).
 */
static Istio__Security__Match *
to_match(struct ap_conv *v, const json_t *op)
{
    Istio__Security__Match *m = ap_new_match(v);

    for (size_t i = 0; operation_fields[i] != NULL; i++)
        if (l7_operation_field(operation_fields[i]) && count(k8s_json_member(op, operation_fields[i])) > 0)
            found_l7(v, operation_fields[i], key_line(v->x, op, operation_fields[i]));
    ap_ports(v, k8s_json_member(op, "ports"), &m->destination_ports, &m->n_destination_ports);
    ap_ports(v, k8s_json_member(op, "notPorts"), &m->not_destination_ports, &m->n_not_destination_ports);
    return m;
}

/* A source (httpSources for what is not converted). */
Istio__Security__Match *
ap_from_match(struct ap_conv *v, const json_t *src)
{
    Istio__Security__Match *m = ap_new_match(v);

    for (size_t i = 0; source_fields[i] != NULL; i++)
        if (l7_source_field(source_fields[i]) && count(k8s_json_member(src, source_fields[i])) > 0)
            found_l7(v, source_fields[i], key_line(v->x, src, source_fields[i]));
    ap_ips(v, k8s_json_member(src, "ipBlocks"), &m->source_ips, &m->n_source_ips);
    ap_ips(v, k8s_json_member(src, "notIpBlocks"), &m->not_source_ips, &m->n_not_source_ips);
    ap_strs(v, k8s_json_member(src, "namespaces"), &m->namespaces, &m->n_namespaces);
    ap_strs(v, k8s_json_member(src, "notNamespaces"), &m->not_namespaces, &m->n_not_namespaces);
    sas(v, k8s_json_member(src, "serviceAccounts"), &m->service_accounts, &m->n_service_accounts);
    sas(v, k8s_json_member(src, "notServiceAccounts"), &m->not_service_accounts, &m->n_not_service_accounts);
    ap_strs(v, k8s_json_member(src, "principals"), &m->principals, &m->n_principals);
    ap_strs(v, k8s_json_member(src, "notPrincipals"), &m->not_principals, &m->n_not_principals);
    return m;
}

/* A condition: one Match with the field its key names (whenMatch); nothing for other keys. */
Istio__Security__Match *
ap_when_match(struct ap_conv *v, const json_t *cond)
{
    Istio__Security__Match *m = ap_new_match(v);
    const char *key = json_string_value(k8s_json_member(cond, "key"));
    const json_t *vals = k8s_json_member(cond, "values"), *nvals = k8s_json_member(cond, "notValues");

    if (!ap_l4_when_key(key)) {
        found_l7(v, key, key_line(v->x, cond, "key"));
    } else if (strcmp(key, "source.namespace") == 0) {
        ap_strs(v, vals, &m->namespaces, &m->n_namespaces);
        ap_strs(v, nvals, &m->not_namespaces, &m->n_not_namespaces);
    } else if (strcmp(key, "source.principal") == 0) {
        ap_strs(v, vals, &m->principals, &m->n_principals);
        ap_strs(v, nvals, &m->not_principals, &m->n_not_principals);
    } else if (strcmp(key, "source.ip") == 0) {
        ap_ips(v, vals, &m->source_ips, &m->n_source_ips);
        ap_ips(v, nvals, &m->not_source_ips, &m->n_not_source_ips);
    } else if (strcmp(key, "destination.port") == 0) {
        ap_ports(v, vals, &m->destination_ports, &m->n_destination_ports);
        ap_ports(v, nvals, &m->not_destination_ports, &m->n_not_destination_ports);
    } else {
        ap_ips(v, vals, &m->destination_ips, &m->n_destination_ips);
        ap_ips(v, nvals, &m->not_destination_ips, &m->n_not_destination_ips);
    }
    return m;
}

/* handleRule: the clauses of one rule, or NULL when an ALLOW drops it. */
static Istio__Security__Rule *
convert_rule(struct ap_conv *v, const json_t *rule, enum action action)
{
    const json_t *to = k8s_json_member(rule, "to"), *from = k8s_json_member(rule, "from"), *when = k8s_json_member(rule, "when");
    Istio__Security__Rule *r = k8s_arena_alloc(v->a, sizeof(*r));

    v->n_l7 = 0;
    v->l7_line = 0;
    istio__security__rule__init(r);
    r->clauses = k8s_arena_alloc(v->a, (2 + count(when) + 1) * sizeof(*r->clauses));
    v->entries++;
    if (count(to) > 0) {
        Istio__Security__Clause *c = new_clause(v, count(to));
        for (size_t i = 0; i < count(to); i++)
            c->matches[c->n_matches++] = to_match(v, k8s_json_member(json_array_get(to, i), "operation"));
        r->clauses[r->n_clauses++] = c;
    }
    if (count(from) > 0) {
        Istio__Security__Clause *c = new_clause(v, count(from));
        for (size_t i = 0; i < count(from); i++)
            c->matches[c->n_matches++] = ap_from_match(v, k8s_json_member(json_array_get(from, i), "source"));
        r->clauses[r->n_clauses++] = c;
    }
    for (size_t i = 0; i < count(when); i++) {
        Istio__Security__Clause *c = new_clause(v, 1);
        c->matches[c->n_matches++] = ap_when_match(v, json_array_get(when, i));
        r->clauses[r->n_clauses++] = c;
    }
    /* L7 policies never match for ALLOW; for DENY the empty matches stay (ztunnel skips them). */
    return action == A_ALLOW && v->n_l7 > 0 ? NULL : r;
}

/* isMatchEmpty. */
static bool
match_empty(const Istio__Security__Match *m)
{
    return m->n_namespaces + m->n_not_namespaces + m->n_principals + m->n_not_principals +
               m->n_source_ips + m->n_not_source_ips + m->n_destination_ips +
               m->n_not_destination_ips + m->n_destination_ports + m->n_not_destination_ports +
               m->n_service_accounts + m->n_not_service_accounts + m->n_extensions ==
           0;
}

/* Can the rule ever match at ztunnel? Every clause needs a non-empty Match (hasEffectiveRules). */
static bool
rule_effective(const Istio__Security__Rule *r)
{
    for (size_t i = 0; i < r->n_clauses; i++) {
        bool any = false;
        for (size_t j = 0; j < r->clauses[i]->n_matches && !any; j++)
            any = !match_empty(r->clauses[i]->matches[j]);
        if (!any)
            return false;
    }
    return true;
}

/* istiod's status messages (authorization.go httpRuleFmt and the boilerplates). */
#define HTTP_RULE_FMT                                                                              \
    "ztunnel does not support HTTP attributes (found: %s). In ambient mode you must use a "        \
    "waypoint proxy to enforce HTTP rules. %s"
static const char deny_no_effect[] =
    "After omitting unsupported HTTP attributes, this DENY policy has no enforceable rules at "
    "ztunnel and will have no effect. Deploy a waypoint proxy and use a targetRef to enforce this "
    "policy.";
static const char deny_mixed[] = "DENY policy with HTTP attributes is enforced without the HTTP "
                                 "rules. This will be more restrictive than requested.";
static const char allow_rule[] = "Within an ALLOW policy, rules matching HTTP attributes are "
                                 "omitted. This will be more restrictive than requested.";

/* convertAuthorizationPolicy for a valid, sent policy. */
static void
convert(struct apc *x, const json_t *spec, enum action action, bool dry_run, int action_line)
{
    struct k8s_arena a = {0};
    struct ap_conv v = {.x = x, .a = &a, .ns = x->m->ns};
    Istio__Security__Authorization pol = ISTIO__SECURITY__AUTHORIZATION__INIT;
    const json_t *rules = k8s_json_member(spec, "rules");
    size_t dropped = 0;

    pol.name = x->m->name;
    pol.namespace_ = x->m->ns;
    if (x->ap->selector)
        pol.scope = ISTIO__SECURITY__SCOPE__WORKLOAD_SELECTOR;
    else if (strcmp(x->m->ns, K8S_ROOT_NAMESPACE) == 0)
        pol.scope = ISTIO__SECURITY__SCOPE__GLOBAL;
    else
        pol.scope = ISTIO__SECURITY__SCOPE__NAMESPACE;
    pol.action = action == A_DENY ? ISTIO__SECURITY__ACTION__DENY : ISTIO__SECURITY__ACTION__ALLOW;
    pol.dry_run = dry_run;
    pol.rules = k8s_arena_alloc(&a, (count(rules) + 1) * sizeof(*pol.rules));
    for (size_t i = 0; i < count(rules); i++) {
        const json_t *rule = json_array_get(rules, i);
        Istio__Security__Rule *r = convert_rule(&v, rule, action);
        if (r != NULL)
            pol.rules[pol.n_rules++] = r;
        if (v.n_l7 == 0)
            continue;
        const char *found = joined(&a, v.l7, v.n_l7);
        if (action == A_ALLOW) {
            dropped++;
            ap_note(x, K8S_WARNING, v.l7_line, CODE_INEFFECTIVE, "spec.rules[%zu] is omitted: %s", i,
                  k8s_arena_printf(&a, HTTP_RULE_FMT, found, allow_rule));
        } else {
            ap_note(x, K8S_WARNING, v.l7_line, CODE_INEFFECTIVE, "spec.rules[%zu]: %s", i,
                  k8s_arena_printf(&a, HTTP_RULE_FMT, found,
                                   rule_effective(r) ? deny_mixed
                                                     : "Without them this rule can never match "
                                                       "at ztunnel."));
        }
    }
    if (v.n_all_l7 > 0) {
        /* istiod's status for the whole policy (one message, the attributes of every rule). */
        bool effective = false;
        for (size_t i = 0; i < pol.n_rules && !effective; i++)
            effective = rule_effective(pol.rules[i]);
        if (action == A_DENY && !effective)
            ap_note(x, K8S_WARNING, action_line, CODE_INEFFECTIVE,
                  "The policy has no impact at ztunnel: %s",
                  k8s_arena_printf(&a, HTTP_RULE_FMT, joined(&a, v.all_l7, v.n_all_l7),
                                   deny_no_effect));
        if (action == A_ALLOW && pol.n_rules == 0 && dropped > 0)
            ap_note(x, K8S_WARNING, action_line, CODE_INEFFECTIVE,
                  "every rule of this ALLOW policy uses HTTP attributes and is omitted: at "
                  "ztunnel it allows nothing, so it denies all traffic to the workloads it "
                  "applies to");
    }
    if (v.entries > POLICY_MAX_ENTRIES) {
        aerr(x, x->c->line, "the policy converts to %zu entries, more than ztunnel accepts (%d)",
             v.entries, POLICY_MAX_ENTRIES);
        k8s_arena_free(&a);
        return;
    }
    size_t len = istio__security__authorization__get_packed_size(&pol);
    if (len > POLICY_MAX_BYTES) {
        aerr(x, x->c->line, "the policy converts to %zu bytes, more than ztunnel accepts (%d)",
             len, POLICY_MAX_BYTES);
        k8s_arena_free(&a);
        return;
    }
    x->ap->data = xmalloc(len + 1);
    x->ap->len = istio__security__authorization__pack(&pol, x->ap->data);
    k8s_arena_free(&a);
    snprintf(x->ap->version, sizeof(x->ap->version), "%016" PRIx64,
             k8s_hash(K8S_HASH_INIT, x->ap->data, x->ap->len));
    x->ap->sent = true;
}

/* strconv.ParseBool. */
static int
parse_bool(const char *s)
{
    static const char *const t[] = {"1", "t", "T", "TRUE", "true", "True"};
    static const char *const f[] = {"0", "f", "F", "FALSE", "false", "False"};

    for (size_t i = 0; i < ARRAY_LEN(t); i++) {
        if (strcmp(s, t[i]) == 0)
            return 1;
        if (strcmp(s, f[i]) == 0)
            return 0;
    }
    return -1;
}

int
k8s_decode_authz(struct k8s_dctx *c, const json_t *json, const struct k8s_meta *m,
                 struct k8s_ap *ap)
{
    static const char *const spec_fields[] = {"selector",  "rules",      "action", "provider",
                                              "targetRef", "targetRefs", NULL};
    static const char *const provider_fields[] = {"name", NULL};
    struct apc x = {.c = c, .m = m, .ap = ap};
    const json_t *spec, *sel, *rules, *provider = NULL, *target_ref = NULL, *target_refs;
    enum action action = A_ALLOW;
    int action_line = c->line;

    spec = k8s_json_member(json, "spec");
    if (spec != NULL && !json_is_object(spec)) {
        aerr(&x, key_line(&x, json, "spec"), "spec: expected a mapping, got %s", k8s_json_type_name(spec));
        return -MESH_ECONFIG;
    }
    json_t *empty = spec == NULL ? json_object() : NULL;
    if (spec == NULL)
        spec = empty; /* no spec: an ALLOW without rules, as the API reads it */
    known_fields(&x, spec, "spec", spec_fields);
    int spec_line = empty ? c->line : key_line(&x, json, "spec");

    /* action */
    const json_t *act = k8s_json_member(spec, "action");
    if (act != NULL) {
        static const char *const names[] = {"ALLOW", "DENY", "AUDIT", "CUSTOM"};
        const char *s = json_string_value(act);
        size_t i = 0;
        while (s != NULL && i < ARRAY_LEN(names) && strcmp(names[i], s) != 0)
            i++;
        action_line = key_line(&x, spec, "action");
        if (s == NULL || i == ARRAY_LEN(names))
            aerr(&x, action_line, "spec.action: %s%s%s is not ALLOW, DENY, AUDIT or CUSTOM",
                 s ? "\"" : "", s ? s : k8s_json_type_name(act), s ? "\"" : "");
        else
            action = (enum action)i;
    }
    /* selector, targetRef, targetRefs: one of them at most */
    if (mapping(&x, spec, "selector", "spec", &sel) && sel != NULL) {
        ap->selector = true;
        validate_selector(&x, sel, &ap->labels, &ap->n_labels, &ap->match_labels);
    }
    if (mapping(&x, spec, "targetRef", "spec", &target_ref) && target_ref != NULL)
        validate_target_ref(&x, target_ref, "spec.targetRef");
    if (list(&x, spec, "targetRefs", "spec", K8S_MAX_LABELS, &target_refs))
        for (size_t i = 0; i < count(target_refs); i++) {
            char path[48];
            snprintf(path, sizeof(path), "spec.targetRefs[%zu]", i);
            validate_target_ref(&x, json_array_get(target_refs, i), path);
        }
    if ((sel != NULL) + (target_ref != NULL) + (count(target_refs) > 0) > 1)
        aerr(&x, spec_line, "spec: only one of targetRefs or workloadSelector can be set");
    /* provider: CUSTOM only, and CUSTOM needs one */
    if (mapping(&x, spec, "provider", "spec", &provider) && provider != NULL) {
        known_fields(&x, provider, "spec.provider", provider_fields);
        if (action != A_CUSTOM)
            aerr(&x, key_line(&x, spec, "provider"),
                 "spec.provider: `provider` must not be with non CUSTOM action, found %s",
                 act ? json_string_value(act) : "ALLOW");
    }
    /* rules */
    if (list(&x, spec, "rules", "spec", POLICY_MAX_RULES, &rules)) {
        if (rules == NULL && action == A_DENY)
            aerr(&x, action_line,
                 "spec: DENY action without `rules` is meaningless as it will never be "
                 "triggered, add an empty rule `{}` if you want it be triggered for every "
                 "request");
        if (action == A_CUSTOM) {
            const json_t *pn = provider ? k8s_json_member(provider, "name") : NULL;
            if (rules == NULL)
                aerr(&x, action_line,
                     "spec: CUSTOM action without `rules` is meaningless as it will never be "
                     "triggered, add an empty rule `{}` if you want it be triggered for every "
                     "request");
            else if (pn == NULL || !json_is_string(pn) || json_string_length(pn) == 0)
                aerr(&x, action_line, "spec.provider: `provider.name` must not be empty");
        }
        validate_rules(&x, rules, action == A_CUSTOM);
    }
    /* the dry-run annotation */
    bool dry_run = false;
    const char *dr = k8s_kv_get(m->annotations, m->n_annotations, "istio.io/dry-run");
    if (dr != NULL && dr[0] != '\0') {
        int b = parse_bool(dr);
        if (b < 0)
            ap_note(&x, K8S_WARNING, c->line, CODE_BAD_ANNOTATION,
                  "annotation istio.io/dry-run: \"%s\" is not a boolean; the policy is enforced",
                  dr);
        dry_run = b == 1;
    }

    if (x.errors == 0) {
        if (target_ref != NULL || count(target_refs) > 0) {
            /* TargetRef is not intended for ztunnel: only waypoints get it (k8s_authz_wp.c). */
            ap_note(&x, K8S_INFO,
                    key_line(&x, spec, target_ref != NULL ? "targetRef" : "targetRefs"), NULL,
                    "AuthorizationPolicy %s/%s has targetRefs: the waypoint enforces it; it is "
                    "not sent to ztunnel",
                    m->ns, m->name);
            ap_convert_waypoint(&x, spec, action, action_line);
        } else if (action == A_AUDIT || action == A_CUSTOM) {
            ap_note(&x, K8S_WARNING, action_line, CODE_INEFFECTIVE,
                  "The policy has no impact at ztunnel: ztunnel does not support the %s action; "
                  "the policy is not sent to ztunnel",
                  action == A_AUDIT ? "AUDIT" : "CUSTOM");
        } else {
            convert(&x, spec, action, dry_run, action_line);
        }
    }
    json_decref(empty);
    return x.errors > 0 ? -MESH_ECONFIG : 0;
}
