/*
 * cluster_util.c - the local cluster's pure helpers: no I/O, no globals, so
 * tests/unit/lib/test_meshctl_cluster.c checks them directly.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/base.h"
#include "cluster.h"

/* ---- Kinds ---- */

static const struct kind_info kinds[] = {
    {"Namespace", "", "namespace", "namespaces", false, true},
    {"ServiceAccount", "", "serviceaccount", "serviceaccounts", true, true},
    {"Service", "", "service", "services", true, true},
    {"Pod", "", "pod", "pods", true, true},
    {"Deployment", "apps", "deployment.apps", "deployments.apps", true, false},
    {"AuthorizationPolicy", "security.istio.io", "authorizationpolicy.security.istio.io",
     "authorizationpolicies.security.istio.io", true, true},
    {"PeerAuthentication", "security.istio.io", "peerauthentication.security.istio.io",
     "peerauthentications.security.istio.io", true, true},
    {"Gateway", "gateway.networking.k8s.io", "gateway.gateway.networking.k8s.io",
     "gateways.gateway.networking.k8s.io", true, true},
    {"HTTPRoute", "gateway.networking.k8s.io", "httproute.gateway.networking.k8s.io",
     "httproutes.gateway.networking.k8s.io", true, true},
    {"GRPCRoute", "gateway.networking.k8s.io", "grpcroute.gateway.networking.k8s.io",
     "grpcroutes.gateway.networking.k8s.io", true, true},
    {"VirtualService", "networking.istio.io", "virtualservice.networking.istio.io",
     "virtualservices.networking.istio.io", true, true},
};

static const struct {
    const char *alias, *kind;
} aliases[] = {
    {"pods", "Pod"},
    {"pod", "Pod"},
    {"po", "Pod"},
    {"services", "Service"},
    {"service", "Service"},
    {"svc", "Service"},
    {"namespaces", "Namespace"},
    {"namespace", "Namespace"},
    {"ns", "Namespace"},
    {"deployments", "Deployment"},
    {"deployment", "Deployment"},
    {"deploy", "Deployment"},
    {"serviceaccounts", "ServiceAccount"},
    {"serviceaccount", "ServiceAccount"},
    {"sa", "ServiceAccount"},
    {"authorizationpolicies", "AuthorizationPolicy"},
    {"authorizationpolicy", "AuthorizationPolicy"},
    {"ap", "AuthorizationPolicy"},
    {"peerauthentications", "PeerAuthentication"},
    {"peerauthentication", "PeerAuthentication"},
    {"pa", "PeerAuthentication"},
    {"gateways", "Gateway"},
    {"gateway", "Gateway"},
    {"gtw", "Gateway"},
    {"httproutes", "HTTPRoute"},
    {"httproute", "HTTPRoute"},
    {"grpcroutes", "GRPCRoute"},
    {"grpcroute", "GRPCRoute"},
    {"virtualservices", "VirtualService"},
    {"virtualservice", "VirtualService"},
    {"vs", "VirtualService"},
};

const struct kind_info *
kind_by_name(const char *kind)
{
    for (size_t i = 0; i < ARRAY_LEN(kinds); i++)
        if (strcmp(kinds[i].kind, kind) == 0)
            return &kinds[i];
    return NULL;
}

const struct kind_info *
kind_lookup(const char *kind, const char *api_version)
{
    const char *slash = strchr(api_version, '/');
    size_t glen = slash ? (size_t)(slash - api_version) : 0;

    for (size_t i = 0; i < ARRAY_LEN(kinds); i++)
        if (strcmp(kinds[i].kind, kind) == 0 && strlen(kinds[i].group) == glen &&
            strncmp(kinds[i].group, api_version, glen) == 0)
            return &kinds[i];
    return NULL;
}

const struct kind_info *
kind_by_alias(const char *alias)
{
    for (size_t i = 0; i < ARRAY_LEN(aliases); i++)
        if (strcmp(aliases[i].alias, alias) == 0)
            return kind_by_name(aliases[i].kind);
    for (size_t i = 0; i < ARRAY_LEN(kinds); i++)
        if (strcmp(kinds[i].resource, alias) == 0 || strcmp(kinds[i].plural, alias) == 0)
            return &kinds[i];
    return NULL;
}

/* ---- Names and hashes ---- */

uint64_t
cl_hash(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

void
cl_safe_encode(uint64_t h, char *out, size_t n)
{
    static const char alpha[] = CL_SAFE_ALPHABET;
    for (size_t i = 0; i < n; i++) {
        out[i] = alpha[h % (sizeof(alpha) - 1)];
        h /= sizeof(alpha) - 1;
    }
    out[n] = '\0';
}

void
cl_template_hash(const json_t *tmpl, char out[11])
{
    char *s = json_dumps(tmpl, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
    uint64_t h = cl_hash(CL_HASH_INIT, s ? s : "", s ? strlen(s) : 0);
    free(s);
    cl_safe_encode(h, out, 10);
}

size_t
cl_pod_netns_name(const char *prefix, const char *ns, const char *name, char *out, size_t outlen)
{
    char full[1024];
    int n = snprintf(full, sizeof(full), "%s-pod-%s-%s", prefix, ns, name);

    if (n >= 0 && (size_t)n <= CLUSTER_NETNS_MAX) {
        snprintf(out, outlen, "%s", full);
        return strlen(out);
    }
    uint64_t h = cl_hash(CL_HASH_INIT, ns, strlen(ns));
    h = cl_hash(h, "/", 1);
    h = cl_hash(h, name, strlen(name));
    /* Keep the readable start, end with a hash of the whole identity. */
    snprintf(out, outlen, "%.*s-%012llx", CLUSTER_NETNS_MAX - 13, full,
             (unsigned long long)(h & 0xffffffffffffULL));
    return strlen(out);
}

void
cl_prefix_for_dir(const char *dir, char *out, size_t outlen)
{
    size_t n = strlen(dir);
    while (n > 1 && dir[n - 1] == '/')
        n--;
    if (n == strlen(CLUSTER_DIR_DEFAULT) && strncmp(dir, CLUSTER_DIR_DEFAULT, n) == 0) {
        snprintf(out, outlen, "amesh");
        return;
    }
    snprintf(out, outlen, "am%06llx",
             (unsigned long long)(cl_hash(CL_HASH_INIT, dir, n) & 0xffffffULL));
}

/* ---- Addresses ---- */

int
cl_ip_alloc(const bool used[256], int start)
{
    if (start < 2 || start > 254)
        start = 2;
    for (int i = 0; i < 253; i++) {
        int h = 2 + (start - 2 + i) % 253;
        if (!used[h])
            return h;
    }
    return -1;
}

#define VIP_FIRST 10 /* 198.19.0.0 - .0.9 stay unused */

void
cl_vip_from_index(unsigned idx, char *out, size_t outlen)
{
    unsigned v = VIP_FIRST + idx;
    snprintf(out, outlen, "198.19.%u.%u", (v >> 8) & 0xff, v & 0xff);
}

int
cl_vip_index(const char *ip)
{
    unsigned a, b, x, y;
    char tail;

    if (sscanf(ip, "%u.%u.%u.%u%c", &a, &b, &x, &y, &tail) != 4 || a != 198 || b != 19 || x > 255 ||
        y > 255)
        return -1;
    unsigned v = x * 256 + y;
    if (v < VIP_FIRST || v == 65535)
        return -1;
    return (int)(v - VIP_FIRST);
}

enum cl_vip_want
cl_service_vip(const json_t *spec, char *ip, size_t iplen)
{
    const char *type = json_string_value(json_object_get(spec, "type"));
    const char *one = json_string_value(json_object_get(spec, "clusterIP"));
    const char *first = json_string_value(json_array_get(json_object_get(spec, "clusterIPs"), 0));

    ip[0] = '\0';
    if (type != NULL && strcmp(type, "ExternalName") == 0)
        return CL_VIP_NONE; /* a DNS alias: the API server allocates nothing */
    /* The API server fills clusterIP from clusterIPs[0] and the other way round. */
    if (one == NULL || one[0] == '\0')
        one = first;
    if (one == NULL || one[0] == '\0')
        return CL_VIP_ALLOCATE;
    if (strcmp(one, "None") == 0)
        return CL_VIP_NONE;
    snprintf(ip, iplen, "%s", one);
    return CL_VIP_REQUESTED;
}

/* ---- Time ---- */

void
cl_age(long long secs, char *out, size_t outlen)
{
    long long m, h;

    if (secs < -1) {
        snprintf(out, outlen, "<invalid>");
        return;
    }
    if (secs < 0)
        secs = 0;
    if (secs < 120) {
        snprintf(out, outlen, "%llds", secs);
        return;
    }
    m = secs / 60;
    if (m < 10) {
        if (secs % 60 == 0)
            snprintf(out, outlen, "%lldm", m);
        else
            snprintf(out, outlen, "%lldm%llds", m, secs % 60);
        return;
    }
    if (m < 180) {
        snprintf(out, outlen, "%lldm", m);
        return;
    }
    h = secs / 3600;
    if (h < 8) {
        if (m % 60 == 0)
            snprintf(out, outlen, "%lldh", h);
        else
            snprintf(out, outlen, "%lldh%lldm", h, m % 60);
    } else if (h < 48) {
        snprintf(out, outlen, "%lldh", h);
    } else if (h < 24 * 8) {
        if (h % 24 == 0)
            snprintf(out, outlen, "%lldd", h / 24);
        else
            snprintf(out, outlen, "%lldd%lldh", h / 24, h % 24);
    } else if (h < 24 * 365 * 2) {
        snprintf(out, outlen, "%lldd", h / 24);
    } else if (h < 24 * 365 * 8) {
        long long dy = (h / 24) % 365;
        if (dy == 0)
            snprintf(out, outlen, "%lldy", h / 24 / 365);
        else
            snprintf(out, outlen, "%lldy%lldd", h / 24 / 365, dy);
    } else {
        snprintf(out, outlen, "%lldy", h / 24 / 365);
    }
}

void
cl_rfc3339(long long t, char *out, size_t outlen)
{
    time_t tt = (time_t)t;
    struct tm tm;
    gmtime_r(&tt, &tm);
    strftime(out, outlen, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

long long
cl_parse_rfc3339(const char *s)
{
    struct tm tm = {0};
    const char *end = s ? strptime(s, "%Y-%m-%dT%H:%M:%SZ", &tm) : NULL;
    if (end == NULL || *end != '\0')
        return -1;
    return (long long)timegm(&tm);
}

/* ---- Objects ---- */

json_t *
cl_pod_from_deployment(const json_t *dep, const char *hash, const char *suffix)
{
    const json_t *meta = json_object_get(dep, "metadata");
    const json_t *tmpl = json_object_get(json_object_get(dep, "spec"), "template");
    const json_t *tmeta = json_object_get(tmpl, "metadata");
    const char *name = json_string_value(json_object_get(meta, "name"));
    const char *ns = json_string_value(json_object_get(meta, "namespace"));
    json_t *labels = json_deep_copy(json_object_get(tmeta, "labels"));
    json_t *annotations = json_deep_copy(json_object_get(tmeta, "annotations"));
    json_t *spec = json_deep_copy(json_object_get(tmpl, "spec"));

    if (!json_is_object(labels)) {
        json_decref(labels);
        labels = json_object();
    }
    json_object_set_new(labels, "pod-template-hash", json_string(hash));
    char *pod_name = xasprintf("%s-%s", name ? name : "", suffix);
    char *gen = xasprintf("%s-", name ? name : "");
    char *rs = xasprintf("%s-%s", name ? name : "", hash);
    json_t *owner = json_pack("{s:s, s:s, s:s, s:b, s:b}", "apiVersion", "apps/v1", "kind",
                              "ReplicaSet", "name", rs, "controller", 1, "blockOwnerDeletion", 1);
    json_t *pmeta =
        json_pack("{s:s, s:s, s:s, s:o, s:[o]}", "name", pod_name, "generateName", gen, "namespace",
                  ns ? ns : "default", "labels", labels, "ownerReferences", owner);
    if (json_is_object(annotations) && json_object_size(annotations) > 0)
        json_object_set(pmeta, "annotations", annotations);
    json_decref(annotations);
    if (!json_is_object(spec)) {
        json_decref(spec);
        spec = json_object();
    }
    json_t *pod = json_pack("{s:s, s:s, s:o, s:o}", "apiVersion", "v1", "kind", "Pod", "metadata",
                            pmeta, "spec", spec);
    free(pod_name);
    free(gen);
    free(rs);
    return pod;
}

/* The value of |name| (|n| bytes) in |env|, the last definition winning; NULL when undefined. */
static const char *
env_lookup(const json_t *env, const char *name, size_t n)
{
    const char *found = NULL;
    size_t i;
    json_t *v;

    json_array_foreach(env, i, v) {
        const char *kv = json_string_value(v);
        if (kv != NULL && strncmp(kv, name, n) == 0 && kv[n] == '=')
            found = kv + n + 1;
    }
    return found;
}

char *
cl_expand(const char *s, const json_t *env)
{
    size_t cap = strlen(s) + 1, n = 0;
    char *out = xmalloc(cap);

#define PUT(p, len)                                                                                \
    do {                                                                                           \
        while (n + (len) + 1 > cap)                                                                \
            out = xrealloc(out, cap *= 2);                                                         \
        memcpy(out + n, (p), (len));                                                               \
        n += (len);                                                                                \
    } while (0)
    for (const char *p = s; *p;) {
        if (p[0] == '$' && p[1] == '$') {
            PUT("$", 1);
            p += 2;
            continue;
        }
        if (p[0] == '$' && p[1] == '(') {
            const char *close = strchr(p + 2, ')');
            if (close != NULL) {
                const char *val = env_lookup(env, p + 2, (size_t)(close - p - 2));
                if (val != NULL)
                    PUT(val, strlen(val));
                else
                    PUT(p, (size_t)(close - p + 1));
                p = close + 1;
                continue;
            }
        }
        PUT(p, 1);
        p++;
    }
#undef PUT
    out[n] = '\0';
    return out;
}

/* A label name part or value: <= 63, [A-Za-z0-9._-], alphanumeric at both ends. */
static bool
label_token(const char *s, size_t n, bool empty_ok)
{
    if (n == 0)
        return empty_ok;
    if (n > 63 || !isalnum((unsigned char)s[0]) || !isalnum((unsigned char)s[n - 1]))
        return false;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && strchr("._-", s[i]) == NULL)
            return false;
    return true;
}

static bool
label_key_ok(const char *k)
{
    const char *slash = strchr(k, '/');
    if (slash == NULL)
        return label_token(k, strlen(k), false);
    size_t plen = (size_t)(slash - k);
    if (plen == 0 || plen > 253)
        return false;
    for (size_t i = 0; i < plen; i++)
        if (!islower((unsigned char)k[i]) && !isdigit((unsigned char)k[i]) &&
            strchr(".-", k[i]) == NULL)
            return false;
    return label_token(slash + 1, strlen(slash + 1), false);
}

int
cl_parse_label_arg(const char *arg, char *key, size_t keylen, char *val, size_t vallen,
                   bool *remove)
{
    const char *eq = strchr(arg, '=');
    size_t n = strlen(arg);

    *remove = false;
    val[0] = '\0';
    if (eq == NULL) {
        if (n < 2 || arg[n - 1] != '-' || n - 1 >= keylen)
            return -1;
        snprintf(key, keylen, "%.*s", (int)(n - 1), arg);
        *remove = true;
        return label_key_ok(key) ? 0 : -1;
    }
    if ((size_t)(eq - arg) >= keylen || strlen(eq + 1) >= vallen)
        return -1;
    snprintf(key, keylen, "%.*s", (int)(eq - arg), arg);
    snprintf(val, vallen, "%s", eq + 1);
    return label_key_ok(key) && label_token(val, strlen(val), true) ? 0 : -1;
}

bool
cl_selector_matches(const json_t *selector, const json_t *labels)
{
    const char *k;
    json_t *v;

    if (!json_is_object(selector) || json_object_size(selector) == 0)
        return false;
    json_object_foreach((json_t *)selector, k, v) {
        const char *have = json_string_value(json_object_get(labels, k));
        if (have == NULL || !json_is_string(v) || strcmp(have, json_string_value(v)) != 0)
            return false;
    }
    return true;
}
