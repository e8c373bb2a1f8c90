/*
 * k8s_decode.c - recognises an object by apiVersion and kind, decodes its
 * metadata, and hands Pods and Services to their decoders. Namespaces and
 * ServiceAccounts need nothing more; AuthorizationPolicy and
 * PeerAuthentication are validated as Istio's webhook does (k8s_authz*.c,
 * where unknown spec fields are refused, as kubectl's strict validation does);
 * the other Istio and Gateway API kinds are kept as JSON for the routing
 * modules, checked only for the shape every object has. Elsewhere unknown
 * fields are ignored, as the API server would prune them; fields we read must
 * have the right type.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "k8s/k8s_internal.h"

struct kind_def {
    const char *group; /* "" for the core API */
    const char *kind;
    const char *versions[4];
    enum k8s_kind k;
};

static const struct kind_def kinds[] = {
    {"", "Namespace", {"v1"}, K8S_NAMESPACE},
    {"", "ServiceAccount", {"v1"}, K8S_SERVICE_ACCOUNT},
    {"", "Pod", {"v1"}, K8S_POD},
    {"", "Service", {"v1"}, K8S_SERVICE},
    {"security.istio.io", "AuthorizationPolicy", {"v1", "v1beta1"}, K8S_AUTHORIZATION_POLICY},
    {"security.istio.io", "PeerAuthentication", {"v1", "v1beta1"}, K8S_PEER_AUTHENTICATION},
    {"gateway.networking.k8s.io", "Gateway", {"v1", "v1beta1"}, K8S_GATEWAY},
    {"gateway.networking.k8s.io", "HTTPRoute", {"v1", "v1beta1"}, K8S_HTTP_ROUTE},
    {"networking.istio.io", "VirtualService", {"v1", "v1beta1", "v1alpha3"}, K8S_VIRTUAL_SERVICE},
    {"gateway.networking.k8s.io", "GatewayClass", {"v1", "v1beta1"}, K8S_GATEWAY_CLASS},
    {"gateway.networking.k8s.io", "GRPCRoute", {"v1", "v1alpha2"}, K8S_GRPC_ROUTE},
    {"", "Node", {"v1"}, K8S_NODE},
    /* v1beta1 is what 1.20 serves; the fields read here are the same in both. */
    {"discovery.k8s.io", "EndpointSlice", {"v1", "v1beta1"}, K8S_ENDPOINT_SLICE},
};

const char *
k8s_kind_name(enum k8s_kind kind)
{
    for (size_t i = 0; i < ARRAY_LEN(kinds); i++)
        if (kinds[i].k == kind)
            return kinds[i].kind;
    return "?";
}

bool
k8s_kind_cluster_scoped(enum k8s_kind kind)
{
    return kind == K8S_NAMESPACE || kind == K8S_GATEWAY_CLASS || kind == K8S_NODE;
}

static void
meta_cleanup(struct k8s_meta *m)
{
    free(m->ns);
    free(m->name);
    free(m->uid);
    free(m->generate_name);
    k8s_kv_free(m->labels, m->n_labels);
    k8s_kv_free(m->annotations, m->n_annotations);
    for (size_t i = 0; i < m->n_owners; i++) {
        free(m->owners[i].kind);
        free(m->owners[i].name);
    }
    free(m->owners);
}

void
k8s_obj_free(struct k8s_obj *o)
{
    if (o == NULL)
        return;
    if (o->kind == K8S_POD)
        k8s_pod_cleanup(&o->u.pod);
    else if (o->kind == K8S_SERVICE)
        k8s_service_cleanup(&o->u.svc);
    else if (o->kind == K8S_AUTHORIZATION_POLICY)
        k8s_ap_cleanup(&o->u.ap);
    else if (o->kind == K8S_PEER_AUTHENTICATION)
        k8s_pa_cleanup(&o->u.pa);
    else if (o->kind == K8S_ENDPOINT_SLICE)
        k8s_slice_cleanup(&o->u.slice);
    meta_cleanup(&o->meta);
    json_decref(o->json);
    k8s_lines_unref(o->lines);
    free(o->file);
    free(o);
}

/*
 * Finds the definition for |api_version| and |kind|. Returns it, or NULL with
 * a warning added (unknown kinds and versions are someone else's business).
 */
static const struct kind_def *
find_kind(struct k8s_dctx *c, const char *api_version, const char *kind)
{
    const char *slash = strchr(api_version, '/');
    const char *version = slash ? slash + 1 : api_version;
    size_t glen = slash ? (size_t)(slash - api_version) : 0;

    for (size_t i = 0; i < ARRAY_LEN(kinds); i++) {
        const struct kind_def *k = &kinds[i];
        if (strcmp(k->kind, kind) != 0 || strlen(k->group) != glen ||
            strncmp(k->group, api_version, glen) != 0)
            continue;
        for (size_t j = 0; j < ARRAY_LEN(k->versions) && k->versions[j]; j++)
            if (strcmp(k->versions[j], version) == 0)
                return k;
        k8s_warn(c, 0, "%s %s: unsupported apiVersion; ignored", api_version, kind);
        return NULL;
    }
    k8s_warn(c, 0, "unknown kind %s (apiVersion %s); ignored", kind, api_version);
    return NULL;
}

static int
decode_owners(struct k8s_dctx *c, const json_t *meta, struct k8s_meta *m)
{
    const json_t *arr;
    int rc;

    if ((rc = k8s_get_arr(c, meta, "ownerReferences", "metadata", K8S_MAX_LABELS, &arr)) < 0 ||
        arr == NULL)
        return rc;
    m->owners = xcalloc(json_array_size(arr) + 1, sizeof(*m->owners));
    for (size_t i = 0; i < json_array_size(arr); i++) {
        const json_t *e = json_array_get(arr, i);
        const char *kind, *name;
        char path[64];
        snprintf(path, sizeof(path), "metadata.ownerReferences[%zu]", i);
        if (!json_is_object(e))
            return k8s_fail(c, k8s_val_line(c, e), "%s: expected a mapping", path);
        struct k8s_owner *o = &m->owners[m->n_owners];
        if ((rc = k8s_get_str(c, e, "kind", path, &kind)) < 0 ||
            (rc = k8s_get_str(c, e, "name", path, &name)) < 0 ||
            (rc = k8s_get_bool(c, e, "controller", path, &o->controller)) < 0)
            return rc;
        o->kind = xstrdup(kind ? kind : "");
        o->name = xstrdup(name ? name : "");
        m->n_owners++;
    }
    return 0;
}

static int
decode_meta(struct k8s_dctx *c, const json_t *json, const struct kind_def *k, struct k8s_meta *m,
            struct k8s_ident *id)
{
    const json_t *meta;
    const char *name, *ns, *s;
    int rc;

    if ((rc = k8s_get_obj(c, json, "metadata", "", &meta)) < 0)
        return rc;
    if (meta == NULL)
        return k8s_fail(c, 0, "%s: metadata is missing", k->kind);
    if ((rc = k8s_get_str(c, meta, "name", "metadata", &name)) < 0)
        return rc;
    if (name == NULL || name[0] == '\0')
        return k8s_fail(c, k8s_val_line(c, meta), "%s: metadata.name is missing", k->kind);
    /* Namespaces and Services become DNS labels; everything else is a DNS subdomain. */
    bool ok = k->k == K8S_NAMESPACE ? k8s_dns_label(name, false)
              : k->k == K8S_SERVICE ? k8s_dns_label(name, true)
                                    : k8s_dns_subdomain(name);
    if (!ok)
        return k8s_fail(c, k8s_key_line(c, meta, "name"),
                        "%s \"%s\": metadata.name is not a valid DNS %s", k->kind, name,
                        k->k == K8S_NAMESPACE || k->k == K8S_SERVICE ? "label" : "subdomain");
    if ((rc = k8s_get_str(c, meta, "namespace", "metadata", &ns)) < 0)
        return rc;
    if (k8s_kind_cluster_scoped(k->k))
        ns = ""; /* cluster-scoped: a namespace given here is ignored, as by the API server */
    else if (ns == NULL || ns[0] == '\0')
        ns = "default";
    else if (!k8s_dns_label(ns, false))
        return k8s_fail(c, k8s_key_line(c, meta, "namespace"),
                        "%s \"%s\": metadata.namespace \"%s\" is not a valid DNS label", k->kind,
                        name, ns);
    m->name = xstrdup(name);
    m->ns = xstrdup(ns);
    id->known = true;
    id->kind = k->k;
    id->ns = xstrdup(ns);
    id->name = xstrdup(name);

    if ((rc = k8s_get_str(c, meta, "uid", "metadata", &s)) < 0)
        return rc;
    m->uid = xstrdup(s ? s : "");
    if ((rc = k8s_get_str(c, meta, "generateName", "metadata", &s)) < 0)
        return rc;
    m->generate_name = xstrdup(s ? s : "");
    if ((rc = k8s_get_str(c, meta, "deletionTimestamp", "metadata", &s)) < 0)
        return rc;
    m->deleting = s != NULL && s[0] != '\0';
    if ((rc = k8s_get_strmap(c, meta, "labels", "metadata", K8S_MAP_LABELS, &m->labels,
                             &m->n_labels)) < 0 ||
        (rc = k8s_get_strmap(c, meta, "annotations", "metadata", K8S_MAP_ANNOTATIONS,
                             &m->annotations, &m->n_annotations)) < 0)
        return rc;
    return decode_owners(c, meta, m);
}

static uint64_t
json_hash(const json_t *json)
{
    char *s = json_dumps(json, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
    uint64_t h = k8s_hash(K8S_HASH_INIT, s ? s : "", s ? strlen(s) : 0);

    free(s);
    return h;
}

int
k8s_decode(struct k8s_dctx *c, json_t *json, int line, struct k8s_lines *lines,
           struct k8s_obj **out, struct k8s_ident *id)
{
    const char *api_version, *kind;
    const struct kind_def *k;
    const json_t *spec;
    int rc;

    *out = NULL;
    memset(id, 0, sizeof(*id));
    c->line = line;
    c->lines = lines;
    if (!json_is_object(json))
        return k8s_fail(c, line, "expected a Kubernetes object (a mapping), got %s",
                        json_is_array(json) ? "a list" : "a scalar");
    if ((rc = k8s_get_str(c, json, "apiVersion", "", &api_version)) < 0 ||
        (rc = k8s_get_str(c, json, "kind", "", &kind)) < 0)
        return rc;
    if (api_version == NULL || kind == NULL)
        return k8s_fail(c, line, "not a Kubernetes object: apiVersion and kind are required");
    if ((k = find_kind(c, api_version, kind)) == NULL)
        return K8S_SKIPPED;

    struct k8s_obj *o = xcalloc(1, sizeof(*o));
    o->kind = k->k;
    if ((rc = decode_meta(c, json, k, &o->meta, id)) < 0)
        goto out;
    switch (k->k) {
    case K8S_POD:
        rc = k8s_decode_pod(c, json, &o->u.pod);
        break;
    case K8S_SERVICE:
        rc = k8s_decode_service(c, json, &o->u.svc);
        break;
    case K8S_AUTHORIZATION_POLICY:
        rc = k8s_decode_authz(c, json, &o->meta, &o->u.ap);
        break;
    case K8S_PEER_AUTHENTICATION:
        rc = k8s_decode_peerauthn(c, json, &o->meta, &o->u.pa);
        break;
    case K8S_ENDPOINT_SLICE:
        rc = k8s_decode_slice(c, json, &o->meta, &o->u.slice);
        break;
    case K8S_NAMESPACE:
    case K8S_SERVICE_ACCOUNT:
    case K8S_NODE: /* its labels (metadata) are all the conversion reads */
        break;
    default:
        /* Stored for later modules: the spec, when given, must at least be a mapping. */
        rc = k8s_get_obj(c, json, "spec", "", &spec);
        break;
    }
out:
    if (rc < 0) {
        k8s_obj_free(o);
        return rc;
    }
    o->file = xstrdup(c->file);
    o->line = line;
    o->json = json_incref(json);
    o->lines = k8s_lines_ref(lines);
    o->hash = json_hash(json);
    *out = o;
    return K8S_DECODED;
}
