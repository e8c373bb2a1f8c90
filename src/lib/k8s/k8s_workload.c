/*
 * k8s_workload.c - one istio.workload.Workload per pod, as istiod builds it
 * (pilot/pkg/serviceregistry/ambient/workloads.go podWorkloadBuilder):
 *
 *   uid "<cluster>//Pod/<ns>/<name>", addresses from the pod IPs, identity
 *   from the service account, status UNHEALTHY unless Ready and not being
 *   deleted, HOST_NETWORK for host-network pods, telemetry names from the
 *   owner and the canonical labels, and per selecting Service the port map
 *   with named targetPorts resolved against the pod's container ports.
 *
 * tunnel_protocol: istiod sets HBONE when istio-cni annotated the pod
 * (ambient.istio.io/redirection: enabled). There is no CNI writing
 * annotations back into files here, so the CNI's enrollment rule
 * (cni/pkg/util/podutil.go PodRedirectionEnabled) is applied directly as well.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "k8s/k8s_internal.h"

static const char *
label(const struct k8s_obj *o, const char *key)
{
    return k8s_kv_get(o->meta.labels, o->meta.n_labels, key);
}

static const char *
annotation(const struct k8s_obj *o, const char *key)
{
    return k8s_kv_get(o->meta.annotations, o->meta.n_annotations, key);
}

static bool
eq(const char *a, const char *b)
{
    return a != NULL && strcmp(a, b) == 0;
}

/* istio-cni's PodRedirectionEnabled: namespace or pod label, sidecar and host network opt out. */
bool
k8s_pod_enrolled(const struct k8s_store *st, const struct k8s_obj *pod)
{
    const struct k8s_obj *ns = k8s_store_find(st, K8S_NAMESPACE, "", pod->meta.ns);
    const char *pod_mode = label(pod, "istio.io/dataplane-mode");
    const char *ns_mode = ns ? label(ns, "istio.io/dataplane-mode") : NULL;

    if (!eq(ns_mode, "ambient") && !eq(pod_mode, "ambient"))
        return false;
    if (annotation(pod, "sidecar.istio.io/status") != NULL)
        return false; /* ztunnel and a sidecar for one pod is not supported */
    if (eq(pod_mode, "none"))
        return false;
    return !pod->u.pod.host_network;
}

/* The "networking.istio.io/tunnel" label is a comma-separated list of tunnels the pod speaks. */
static bool
speaks_http_tunnel(const struct k8s_obj *pod)
{
    const char *t = label(pod, "networking.istio.io/tunnel");

    while (t != NULL && *t != '\0') {
        size_t n = strcspn(t, ",");
        if (n == 4 && strncmp(t, "http", 4) == 0)
            return true;
        t += n + (t[n] == ',');
    }
    return false;
}

static void
tunnel(const struct k8s_build_ctx *b, const struct k8s_obj *pod, Istio__Workload__Workload *w)
{
    if (eq(annotation(pod, "ambient.istio.io/redirection"), "enabled") ||
        k8s_pod_enrolled(b->st, pod))
        w->tunnel_protocol = ISTIO__WORKLOAD__TUNNEL_PROTOCOL__HBONE;
    if (speaks_http_tunnel(pod)) {
        w->tunnel_protocol = ISTIO__WORKLOAD__TUNNEL_PROTOCOL__HBONE;
        w->native_tunnel = true;
    }
}

static bool
ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* A CronJob's Job is "<cronjob>-<8 to 10 digits>" (pkg/kube cronJobNameRegexp). */
static const char *
cronjob_name(struct k8s_arena *a, const char *job)
{
    const char *dash = strrchr(job, '-');
    size_t digits = dash ? strlen(dash + 1) : 0;

    if (dash == NULL || dash == job || digits < 8 || digits > 10)
        return NULL;
    for (const char *p = dash + 1; *p != '\0'; p++)
        if (!isdigit((unsigned char)*p))
            return NULL;
    return k8s_arena_printf(a, "%.*s", (int)(dash - job), job);
}

/* The name of the pod's controller with its generated suffix removed. */
static const char *
trim_hash(struct k8s_arena *a, const char *owner, const char *hash)
{
    if (!ends_with(owner, hash))
        return NULL;
    char *dash_hash = k8s_arena_printf(a, "-%s", hash);
    if (!ends_with(owner, dash_hash))
        return owner; /* as strings.TrimSuffix: no "-<hash>", nothing trimmed */
    return k8s_arena_printf(a, "%.*s", (int)(strlen(owner) - strlen(dash_hash)), owner);
}

/*
 * pkg/kube GetWorkloadMetaFromPod: a generated pod is named after its
 * controller, with the ReplicaSet, Argo Rollout, DeploymentConfig and CronJob
 * suffixes removed; the label service.istio.io/workload-name overrides all.
 */
static const char *
workload_name(struct k8s_arena *a, const struct k8s_obj *pod)
{
    const char *name = pod->meta.name;
    const char *wn = label(pod, "service.istio.io/workload-name");

    if (wn != NULL)
        return wn;
    if (pod->meta.generate_name[0] == '\0')
        return name;
    for (size_t i = 0; i < pod->meta.n_owners; i++) {
        const struct k8s_owner *o = &pod->meta.owners[i];
        const char *hash, *dc, *t = NULL;
        if (!o->controller)
            continue;
        name = o->name;
        if (strcmp(o->kind, "ReplicaSet") == 0 &&
            (hash = label(pod, "pod-template-hash")) != NULL && hash[0] != '\0' &&
            (t = trim_hash(a, o->name, hash)) != NULL)
            name = t;
        else if (strcmp(o->kind, "ReplicaSet") == 0 &&
                 (hash = label(pod, "rollouts-pod-template-hash")) != NULL && hash[0] != '\0' &&
                 (t = trim_hash(a, o->name, hash)) != NULL)
            name = t;
        else if (strcmp(o->kind, "ReplicationController") == 0 &&
                 (dc = label(pod, "deploymentconfig")) != NULL && dc[0] != '\0')
            name = dc;
        else if (strcmp(o->kind, "Job") == 0 && (t = cronjob_name(a, o->name)) != NULL)
            name = t;
        break;
    }
    return name[0] != '\0' ? name : pod->meta.name;
}

/* pkg/kube/labels CanonicalService: first label present wins, else the workload name / "latest". */
static void
canonical(const struct k8s_obj *pod, const char *wname, Istio__Workload__Workload *w)
{
    static const char *const names[] = {"service.istio.io/canonical-name", "app.kubernetes.io/name",
                                        "app"};
    static const char *const revs[] = {"service.istio.io/canonical-revision",
                                       "app.kubernetes.io/version", "version"};
    const char *v;

    w->canonical_name = (char *)(uintptr_t)wname;
    w->canonical_revision = "latest";
    for (size_t i = 0; i < ARRAY_LEN(names); i++)
        if ((v = label(pod, names[i])) != NULL) {
            w->canonical_name = (char *)(uintptr_t)v;
            break;
        }
    for (size_t i = 0; i < ARRAY_LEN(revs); i++)
        if ((v = label(pod, revs[i])) != NULL) {
            w->canonical_revision = (char *)(uintptr_t)v;
            break;
        }
}

static bool
selects(const struct k8s_obj *svc, const struct k8s_obj *pod)
{
    const struct k8s_service *s = &svc->u.svc;

    /* An empty selector selects nothing (krt.FilterSelectsNonEmpty). */
    if (s->n_selector == 0)
        return false;
    for (size_t i = 0; i < s->n_selector; i++)
        if (!eq(label(pod, s->selector[i].k), s->selector[i].v))
            return false;
    return true;
}

/* helpers.go FindPortName: a TCP container port with that name. */
static const struct k8s_cport *
find_port(const struct k8s_pod *p, const char *name)
{
    for (size_t i = 0; i < p->n_ports; i++)
        if (p->ports[i].tcp && strcmp(p->ports[i].name, name) == 0)
            return &p->ports[i];
    return NULL;
}

static Istio__Workload__PortList *
port_list(struct k8s_arena *a, const struct k8s_obj *svc, const struct k8s_obj *pod)
{
    const struct k8s_service *s = &svc->u.svc;
    Istio__Workload__PortList *pl = k8s_arena_alloc(a, sizeof(*pl));

    istio__workload__port_list__init(pl);
    pl->ports = k8s_arena_alloc(a, (s->n_ports + 1) * sizeof(*pl->ports));
    for (size_t i = 0; i < s->n_ports; i++) {
        const struct k8s_sport *sp = &s->ports[i];
        uint32_t target = sp->target_port;
        if (sp->target_name != NULL) {
            const struct k8s_cport *cp = find_port(&pod->u.pod, sp->target_name);
            if (cp == NULL)
                continue; /* istiod leaves the port out for this pod (k8s_check_ports warns) */
            target = cp->port;
        }
        Istio__Workload__Port *p = k8s_arena_alloc(a, sizeof(*p));
        istio__workload__port__init(p);
        p->service_port = sp->port;
        p->target_port = target;
        pl->ports[pl->n_ports++] = p;
    }
    return pl;
}

void
k8s_check_ports(const struct k8s_store *st, struct k8s_diags *out)
{
    for (size_t i = 0; i < k8s_store_count(st, K8S_POD); i++) {
        const struct k8s_obj *pod = k8s_store_at(st, K8S_POD, i);
        size_t begin, end;
        if (pod->u.pod.terminal || pod->u.pod.n_ips == 0)
            continue;
        k8s_store_ns_range(st, K8S_SERVICE, pod->meta.ns, &begin, &end);
        for (size_t j = begin; j < end; j++) {
            const struct k8s_obj *svc = k8s_store_at(st, K8S_SERVICE, j);
            if (svc->u.svc.external_name || !selects(svc, pod))
                continue;
            for (size_t k = 0; k < svc->u.svc.n_ports; k++) {
                const struct k8s_sport *sp = &svc->u.svc.ports[k];
                if (sp->target_name == NULL || find_port(&pod->u.pod, sp->target_name) != NULL)
                    continue;
                k8s_diag_add(out, pod->file, pod->line, K8S_WARNING, NULL,
                             "Pod %s/%s has no TCP container port named \"%s\" (targetPort of "
                             "Service %s port %u); that port is not mapped to this pod",
                             pod->meta.ns, pod->meta.name, sp->target_name, svc->meta.name,
                             sp->port);
            }
        }
    }
}

static int
cmp_entry(const void *x, const void *y)
{
    const Istio__Workload__Workload__ServicesEntry *const *a = x, *const *b = y;
    return strcmp((*a)->key, (*b)->key);
}

static void
services(const struct k8s_build_ctx *b, struct k8s_arena *a, const struct k8s_obj *pod,
         Istio__Workload__Workload *w)
{
    size_t begin, end;

    k8s_store_ns_range(b->st, K8S_SERVICE, pod->meta.ns, &begin, &end);
    w->services = k8s_arena_alloc(a, (end - begin + 1) * sizeof(*w->services));
    for (size_t i = begin; i < end; i++) {
        const struct k8s_obj *svc = k8s_store_at(b->st, K8S_SERVICE, i);
        if (svc->u.svc.external_name || !selects(svc, pod))
            continue;
        Istio__Workload__Workload__ServicesEntry *e = k8s_arena_alloc(a, sizeof(*e));
        istio__workload__workload__services_entry__init(e);
        e->key = k8s_arena_printf(a, "%s/%s", svc->meta.ns, k8s_service_hostname(a, b, svc));
        e->value = port_list(a, svc, pod);
        w->services[w->n_services++] = e;
    }
    /* A map on the wire: sorted so equal input gives equal bytes. */
    qsort(w->services, w->n_services, sizeof(*w->services), cmp_entry);
}

void
k8s_build_workload(const struct k8s_build_ctx *b, struct k8s_arena *a, const struct k8s_obj *pod,
                   Istio__Workload__Workload *w)
{
    const struct k8s_pod *p = &pod->u.pod;

    istio__workload__workload__init(w);
    w->uid = k8s_arena_printf(a, "%s//Pod/%s/%s", b->cluster_id, pod->meta.ns, pod->meta.name);
    w->name = pod->meta.name;
    w->namespace_ = pod->meta.ns;
    w->addresses = k8s_arena_alloc(a, p->n_ips * sizeof(*w->addresses) + 1);
    for (size_t i = 0; i < p->n_ips; i++) {
        w->addresses[i].len = p->ips[i].len;
        w->addresses[i].data = (uint8_t *)(uintptr_t)p->ips[i].b;
    }
    w->n_addresses = p->n_ips;
    w->network = (char *)(uintptr_t)b->network;
    tunnel(b, pod, w);
    if (b->trust_domain != NULL)
        w->trust_domain = (char *)(uintptr_t)b->trust_domain;
    w->service_account = p->service_account;
    w->node = p->node;
    w->workload_type = ISTIO__WORKLOAD__WORKLOAD_TYPE__POD;
    w->workload_name = (char *)(uintptr_t)workload_name(a, pod);
    canonical(pod, w->workload_name, w);
    services(b, a, pod, w);
    /* Kubernetes has Ready, Serving and Terminating; istiod folds them into one bit. */
    w->status = p->ready && !pod->meta.deleting ? ISTIO__WORKLOAD__WORKLOAD_STATUS__HEALTHY
                                                : ISTIO__WORKLOAD__WORKLOAD_STATUS__UNHEALTHY;
    w->cluster_id = (char *)(uintptr_t)b->cluster_id;
    if (p->host_network)
        w->network_mode = ISTIO__WORKLOAD__NETWORK_MODE__HOST_NETWORK;
}
