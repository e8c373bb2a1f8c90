/*
 * enroll.c - enrollment, reconciled: after every config change the set of
 * pods that should be in the mesh (enrolled, on this node, running, with a
 * known network namespace) is compared with the pods that are. New ones get
 * the in-pod redirection rules, then are handed to ztunnel over ZDS (in that
 * order, so ztunnel never serves a pod whose traffic is not captured yet);
 * pods that left get their rules removed (if the pod still exists) and a
 * ZDS delete. Running processes in the pods are never touched.
 *
 * A pod's network namespace comes from its amesh.io/netns annotation (the
 * local cluster writes it) or from the CNI plugin (plugin.c): the sandbox the
 * plugin reported for that namespace/name, if its uid is the pod's. A
 * reported sandbox is remembered whether or not the pod is enrolled, so
 * enrolling it later needs no restart; DEL forgets it.
 *
 * The store is filled from --config-dir, or from the API server (kwatch.c),
 * or both. With the API server, nothing converges and the ZDS socket is not
 * even opened before the node's pods and the namespaces were listed once:
 * a ztunnel connecting earlier would get an empty snapshot and drop every
 * pod of the node. Pods in the mesh are annotated as Istio's agent does
 * (mark.c).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define LOG_SCOPE "cni"
#include "base/base.h"
#include "dirwatch/dirwatch.h"
#include "enroll_internal.h"
#include "inpod/inpod.h"
#include "k8s/k8s.h"
#include "kubesrc/kubesrc.h"
#include "kwatch.h"
#include "log/log.h"
#include "mark.h"
#include "mesh_cni.h"
#include "plugin.h"
#include "sandboxes.h"
#include "zds/zds_server.h"

bool
enroll_gated(const struct cni *c)
{
    return c->kw != NULL && !cni_kube_synced(c->kw);
}

static struct member *
find(struct cni *c, const char *key)
{
    for (struct member *m = c->members; m != NULL; m = m->next)
        if (strcmp(m->key, key) == 0)
            return m;
    return NULL;
}

static void
member_free(struct member *m)
{
    free(m->key);
    free(m->uid);
    free(m->netns);
    free(m->nack);
    free(m);
}

struct record **
enroll_record_slot(struct cni *c, const char *key)
{
    struct record **pp = &c->records;
    while (*pp != NULL && strcmp((*pp)->key, key) != 0)
        pp = &(*pp)->next;
    return pp;
}

void
enroll_record_free(struct record *r)
{
    free(r->key);
    free(r->uid);
    free(r->container_id);
    free(r->netns);
    free(r);
}

/* Remembers |r|'s sandbox as its pod's current one; -MESH_ELIMIT over the cap. */
int
enroll_record_set(struct cni *c, const struct cni_req *r)
{
    char key[sizeof(r->ns) + sizeof(r->name) + 1];
    struct record **pp, *rec;

    snprintf(key, sizeof(key), "%s/%s", r->ns, r->name);
    pp = enroll_record_slot(c, key);
    if (*pp == NULL && c->n_records >= CNI_RECORDS_MAX)
        return -MESH_ELIMIT;
    if (*pp == NULL) {
        *pp = xcalloc(1, sizeof(**pp));
        (*pp)->key = xstrdup(key);
        c->n_records++;
    }
    /* The newest sandbox of a pod wins: a re-created sandbox's ADD comes before the old DEL. */
    rec = *pp;
    free(rec->uid);
    free(rec->container_id);
    free(rec->netns);
    rec->uid = xstrdup(r->uid);
    rec->container_id = xstrdup(r->container_id);
    rec->netns = xstrdup(r->netns);
    return 0;
}

static void
on_loaded(void *arg, const struct cni_req *r)
{
    enroll_record_set(arg, r);
}

/* The pod's network namespace: its annotation, else the sandbox the plugin reported for it. */
const char *
enroll_pod_netns(struct cni *c, const struct k8s_obj *pod, const struct k8s_pod_info *pi,
                 const char *key)
{
    const char *a = k8s_obj_annotation(pod, K8S_ANNOTATION_NETNS);
    struct record *r;

    if (a != NULL)
        return a;
    r = *enroll_record_slot(c, key);
    /* A record of an earlier pod of the same name (its DEL not seen) is not this pod's. */
    if (r == NULL || (r->uid[0] != '\0' && pi->uid[0] != '\0' && strcmp(r->uid, pi->uid) != 0))
        return NULL;
    return r->netns;
}

/* Rules out, ztunnel told. The namespace may be gone already (pod deleted): then only ZDS. */
static void
leave(struct cni *c, struct member *m, const char *why)
{
    char err[1024];
    struct inpod_opts io = {0};
    int fd = open(m->netns, O_RDONLY | O_CLOEXEC);
    struct stat st;

    zds_server_del(c->zds, m->uid);
    if (fd >= 0 && fstat(fd, &st) == 0 && (uint64_t)st.st_ino == m->ino) {
        if (inpod_remove(fd, &io, err, sizeof(err)) < 0)
            log_error("%s: removing the redirection rules: %s", m->key, err);
    }
    if (fd >= 0)
        close(fd);
    log_info("%s left the mesh (%s)", m->key, why);
}

static void
join(struct cni *c, const struct k8s_obj *pod, const struct k8s_pod_info *pi, const char *key,
     const char *netns)
{
    char err[1024];
    struct stat st;
    struct inpod_opts io = {0};
    int fd = open(netns, O_RDONLY | O_CLOEXEC);

    if (fd < 0 || fstat(fd, &st) < 0) {
        log_warn("%s: network namespace %s: %s; will retry", key, netns, strerror(errno));
        if (fd >= 0)
            close(fd);
        return;
    }
    if (inpod_apply(fd, &io, err, sizeof(err)) < 0) {
        log_error("%s: installing the redirection rules: %s", key, err);
        /* Not half in: a pod whose traffic goes to a ztunnel that does not serve it is cut off. */
        if (inpod_remove(fd, &io, err, sizeof(err)) < 0)
            log_error("%s: removing what was installed: %s", key, err);
        close(fd);
        return;
    }
    struct member *m = xcalloc(1, sizeof(*m));
    m->key = xstrdup(key);
    /* ztunnel matches by name, namespace and service account; the uid only has to be unique. */
    m->uid = xstrdup(pi->uid[0] ? pi->uid : key);
    m->netns = xstrdup(netns);
    m->ino = (uint64_t)st.st_ino;
    m->seen = true;
    m->acked = false;
    int rc = zds_server_add(c->zds, m->uid, k8s_obj_name(pod), k8s_obj_namespace(pod),
                            pi->service_account, fd);
    close(fd); /* the server keeps its own duplicate */
    if (rc < 0)
        log_error("%s: handing the pod to ztunnel: %s", key, mesh_strerror(rc));
    m->next = c->members;
    c->members = m;
    c->n_members++;
    log_info("%s joined the mesh: rules in %s, handed to ztunnel%s", key, netns,
             zds_server_has_client(c->zds) ? "" : " (when one connects)");
}

/* For the log: did the pod go, its sandbox (the plugin's DEL), or only its enrollment? */
static const char *
leave_reason(struct cni *c, const struct member *m)
{
    char ns[300];
    struct k8s_pod_info pi;
    const char *slash = strchr(m->key, '/');
    if (slash == NULL || (size_t)(slash - m->key) >= sizeof(ns))
        return "pod deleted";
    memcpy(ns, m->key, (size_t)(slash - m->key));
    ns[slash - m->key] = '\0';
    if (!k8s_pod_info(c->store, ns, slash + 1, &pi))
        return "pod deleted";
    return pi.enrolled && !pi.terminated ? "its sandbox was deleted" : "un-enrolled";
}

/*
 * Istio's annotation for every pod of the node from the API server: set once
 * ztunnel acked the pod, left alone while the pod is on its way in (rules in,
 * no answer yet: also right after our own restart) or has terminated,
 * removed otherwise.
 */
static void
sync_marks(struct cni *c)
{
    char key[600];

    if (c->marker == NULL || enroll_gated(c))
        return;
    marker_begin(c->marker);
    size_t n = k8s_store_count(c->store, K8S_POD);
    for (size_t i = 0; i < n; i++) {
        const struct k8s_obj *pod = k8s_store_at(c->store, K8S_POD, i);
        const char *ns = k8s_obj_namespace(pod), *name = k8s_obj_name(pod);
        struct k8s_pod_info pi;
        if (!k8s_pod_info(c->store, ns, name, &pi) || strcmp(pi.node, c->o.node) != 0)
            continue;
        /* A pod of --config-dir is no API object: there is nothing to patch. */
        if (strncmp(k8s_obj_file(pod), "api:", 4) != 0)
            continue;
        snprintf(key, sizeof(key), "%s/%s", ns, name);
        const struct member *m = find(c, key);
        if (m != NULL && strcmp(m->uid, pi.uid[0] ? pi.uid : key) != 0)
            m = NULL; /* an earlier pod of that name */
        enum mark_want w = MARK_CLEAR;
        if (m != NULL && m->nack == NULL)
            w = m->acked ? MARK_SET : MARK_LEAVE;
        else if (pi.terminated)
            w = MARK_LEAVE;
        marker_pod(c->marker, ns, name, pi.uid, k8s_obj_annotation(pod, MARK_ANNOTATION), w);
    }
    marker_end(c->marker);
}

static bool
same_netns(const char *path, uint64_t ino)
{
    struct stat st;
    return stat(path, &st) == 0 && (uint64_t)st.st_ino == ino;
}

/* The store as it is against the pods in the mesh; then waiting plugin requests look again. */
void
enroll_converge(struct cni *c)
{
    char key[600];

    if (enroll_gated(c) || c->zds == NULL)
        return; /* the first list, then the ZDS socket, come first */
    enroll_forget_scanned(c);
    for (struct member *m = c->members; m != NULL; m = m->next)
        m->seen = false;
    size_t n = k8s_store_count(c->store, K8S_POD);
    for (size_t i = 0; i < n; i++) {
        const struct k8s_obj *pod = k8s_store_at(c->store, K8S_POD, i);
        struct k8s_pod_info pi;
        const char *netns;
        if (!k8s_pod_info(c->store, k8s_obj_namespace(pod), k8s_obj_name(pod), &pi) ||
            strcmp(pi.node, c->o.node) != 0 || pi.terminated || !pi.enrolled)
            continue;
        snprintf(key, sizeof(key), "%s/%s", k8s_obj_namespace(pod), k8s_obj_name(pod));
        if ((netns = enroll_pod_netns(c, pod, &pi, key)) == NULL)
            continue;
        struct member *m = find(c, key);
        if (m != NULL && strcmp(m->netns, netns) != 0 && same_netns(netns, m->ino)) {
            /* Another name for the namespace it is in (the scan's, then the plugin's). */
            free(m->netns);
            m->netns = xstrdup(netns);
        }
        if (m != NULL && strcmp(m->netns, netns) == 0) {
            m->seen = true;
            continue;
        }
        if (m != NULL) {
            /* The same pod in another namespace (re-created): out of the old one first. */
            leave(c, m, "new network namespace");
            m->seen = false;
            m->key[0] = '\0';
        }
        join(c, pod, &pi, key, netns);
    }
    for (struct member **pp = &c->members; *pp != NULL;) {
        struct member *m = *pp;
        if (m->seen) {
            pp = &m->next;
            continue;
        }
        if (m->key[0] != '\0')
            leave(c, m, leave_reason(c, m));
        *pp = m->next;
        c->n_members--;
        member_free(m);
    }
    plugin_srv_poke(c->plugin);
    sync_marks(c);
    enroll_scan_maybe(c);
}

static void
reconcile(struct cni *c)
{
    struct k8s_diags d = {0};

    if (c->o.config_dir == NULL) {
        enroll_converge(c);
        return;
    }
    int rc = k8s_store_sync_dir(c->store, c->o.config_dir, &d);
    k8s_diags_clear(&d);
    if (rc < 0 && rc != -MESH_ECONFIG) {
        log_error("%s: %s; keeping the mesh as it is", c->o.config_dir, mesh_strerror(rc));
        return;
    }
    enroll_converge(c);
}

static void
on_change(void *arg)
{
    reconcile(arg);
}

static void
on_connected(void *arg, uint64_t client, size_t n)
{
    struct cni *c = arg;
    log_info("ztunnel connected (%zu now); sending %zu pods", n, c->n_members);
    (void)client;
    plugin_srv_poke(c->plugin);
}

static void
on_disconnected(void *arg, uint64_t client, size_t n, int err)
{
    (void)arg;
    (void)client;
    log_info("ztunnel disconnected (%s); %zu connected", mesh_strerror(err), n);
}

static void
on_ack(void *arg, uint64_t client, enum zds_req_kind kind, const char *uid, const char *error)
{
    struct cni *c = arg;
    (void)client;
    if (error != NULL && error[0] != '\0')
        log_warn("ztunnel refused pod %s: %s", uid ? uid : "-", error);
    if (kind != ZDS_REQ_ADD || uid == NULL)
        return;
    /* The plugin's ADD waits for this: the pod is served before its app starts. */
    for (struct member *m = c->members; m != NULL; m = m->next) {
        if (strcmp(m->uid, uid) != 0)
            continue;
        free(m->nack);
        m->nack = error != NULL && error[0] != '\0' ? xstrdup(error) : NULL;
        m->acked = m->nack == NULL;
    }
    plugin_srv_poke(c->plugin);
    sync_marks(c);
}

static const struct zds_server_cbs zcbs = {
    .on_connected = on_connected,
    .on_disconnected = on_disconnected,
    .on_ack = on_ack,
};

static int
open_zds(struct cni *c, char *err, size_t errlen)
{
    char why[512];

    c->zds = zds_server_start(c->loop, c->o.zds_socket, NULL, &zcbs, c, why, sizeof(why));
    if (c->zds == NULL) {
        snprintf(err, errlen, "--zds-socket %s: %s", c->o.zds_socket, why);
        return -1;
    }
    return 0;
}

static void on_kube_synced(void *arg);

/* The gate opened (or an earlier attempt to listen failed): ZDS, then the first converge. */
static void
on_kube_synced(void *arg)
{
    struct cni *c = arg;
    char err[600];

    if (c->zds == NULL && open_zds(c, err, sizeof(err)) < 0) {
        log_error("%s; retrying in 1 s", err);
        loop_timer_start(c->loop, &c->zds_retry, 1000, on_kube_synced, c);
        return;
    }
    log_info("listening for ztunnels on %s", c->o.zds_socket);
    reconcile(c);
}

static void
on_kube_changed(void *arg)
{
    enroll_converge(arg);
}

struct cni *
cni_start(struct loop *l, const struct cni_opts *o, char *err, size_t errlen)
{
    struct cni *c = xcalloc(1, sizeof(*c));
    char why[512];

    c->loop = l;
    c->o = *o;
    c->store = k8s_store_new();
    c->scan_backoff_ms = SCAN_INTERVAL_MS;
    c->scan_rl = (struct log_ratelimit)LOG_RATELIMIT_INIT(30000, 5);
    if (!kube_src_enabled(&o->kube) && open_zds(c, err, errlen) < 0)
        goto fail;
    if (o->config_dir != NULL) {
        c->watch = dirwatch_start(l, o->config_dir, o->debounce_ms, on_change, c, why,
                                  sizeof(why));
        if (c->watch == NULL) {
            snprintf(err, errlen, "--config-dir: %s", why);
            goto fail;
        }
    }
    if (o->plugin_socket != NULL) {
        if (sandboxes_open(o->plugin_state, why, sizeof(why)) < 0) {
            snprintf(err, errlen, "--plugin-state: %s", why);
            goto fail;
        }
        size_t n = sandboxes_load(o->plugin_state, CNI_RECORDS_MAX, on_loaded, c);
        if (n > 0)
            log_info("%zu pod sandboxes from %s (reported before a restart)", n, o->plugin_state);
        c->plugin = plugin_srv_start(l, c, o->plugin_socket, o->plugin_wait_ms, why, sizeof(why));
        if (c->plugin == NULL) {
            snprintf(err, errlen, "--plugin-socket %s: %s", o->plugin_socket, why);
            goto fail;
        }
    }
    if (kube_src_enabled(&o->kube)) {
        static const struct cni_kube_cbs kcbs = {.changed = on_kube_changed,
                                                 .synced = on_kube_synced};
        if ((c->kube = kube_src_client(l, &o->kube, err, errlen)) == NULL)
            goto fail;
        c->marker = marker_new(l, c->kube);
        c->kw = cni_kube_start(l, c->kube, c->store, o->node, &kcbs, c, why, sizeof(why));
        if (c->kw == NULL) {
            snprintf(err, errlen, "%s", why);
            goto fail;
        }
        log_info("waiting for the API server's pods of node %s and namespaces before opening %s",
                 o->node, o->zds_socket);
    }
    reconcile(c);
    return c;
fail:
    cni_stop(c);
    return NULL;
}

void
cni_stop(struct cni *c)
{
    if (c == NULL)
        return;
    plugin_srv_stop(c->plugin);
    dirwatch_stop(c->watch);
    if (c->marker != NULL) {
        struct marker_stats ms;
        marker_stats(c->marker, &ms);
        log_info("redirection annotation: %llu patches sent, %llu succeeded, %llu failed, "
                 "%llu pods not yet as wanted",
                 (unsigned long long)ms.sent, (unsigned long long)ms.ok,
                 (unsigned long long)ms.failed, (unsigned long long)ms.pending);
    }
    marker_free(c->marker);
    cni_kube_stop(c->kw);
    kube_client_free(c->kube);
    loop_timer_stop(c->loop, &c->zds_retry);
    loop_timer_stop(c->loop, &c->scan_timer);
    zds_server_stop(c->zds);
    while (c->members != NULL) {
        struct member *m = c->members;
        c->members = m->next;
        member_free(m);
    }
    while (c->records != NULL) {
        struct record *r = c->records;
        c->records = r->next;
        enroll_record_free(r);
    }
    k8s_store_free(c->store);
    free(c);
}

bool
cni_ready(const struct cni *c)
{
    return !enroll_gated(c) && c->zds != NULL;
}

size_t
cni_n_enrolled(const struct cni *c)
{
    return c->n_members;
}

/* ---- the CNI plugin's events (plugin.c) ---- */

int
cni_sandbox_add(struct cni *c, const struct cni_req *r)
{
    int rc = enroll_record_set(c, r);
    if (rc < 0)
        return rc;
    /* Not fatal: the pod is served now; only a restart of ours before its DEL would lose it. */
    if ((rc = sandboxes_save(c->o.plugin_state, r)) < 0)
        log_error("%s/%s: saving the sandbox in %s: %s", r->ns, r->name, c->o.plugin_state,
                  mesh_strerror(rc));
    enroll_converge(c);
    return 0;
}

bool
cni_sandbox_del(struct cni *c, const struct cni_req *r)
{
    char key[sizeof(r->ns) + sizeof(r->name) + 1];
    struct record **pp, *rec;

    snprintf(key, sizeof(key), "%s/%s", r->ns, r->name);
    pp = enroll_record_slot(c, key);
    rec = *pp;
    /* A late DEL of an older sandbox must not take the pod's current one out. */
    if (rec == NULL || strcmp(rec->container_id, r->container_id) != 0)
        return false;
    *pp = rec->next;
    c->n_records--;
    enroll_record_free(rec);
    sandboxes_forget(c->o.plugin_state, r->ns, r->name);
    enroll_converge(c);
    return true;
}

enum cni_pod_state
cni_pod_state(struct cni *c, const struct cni_req *r, char *msg, size_t msglen)
{
    char key[sizeof(r->ns) + sizeof(r->name) + 1];
    const struct k8s_obj *pod = k8s_store_find(c->store, K8S_POD, r->ns, r->name);
    struct k8s_pod_info pi;
    const struct record *rec;
    struct member *m;

    msg[0] = '\0';
    if (enroll_gated(c) || c->zds == NULL)
        return CNI_POD_UNKNOWN; /* the node's pods are not listed yet */
    if (pod == NULL || !k8s_pod_info(c->store, r->ns, r->name, &pi))
        return CNI_POD_UNKNOWN;
    if (r->uid[0] != '\0' && pi.uid[0] != '\0' && strcmp(r->uid, pi.uid) != 0)
        return CNI_POD_UNKNOWN; /* the store still has an earlier pod of that name */
    if (!pi.enrolled || pi.terminated || strcmp(pi.node, c->o.node) != 0) {
        snprintf(msg, msglen, "%s",
                 !pi.enrolled    ? "not enrolled"
                 : pi.terminated ? "terminated"
                                 : "scheduled on another node");
        return CNI_POD_OUT;
    }
    snprintf(key, sizeof(key), "%s/%s", r->ns, r->name);
    m = find(c, key);
    rec = *enroll_record_slot(c, key);
    /* Another sandbox of the pod is the current one (or, without a record, none is ours). */
    if (rec != NULL ? strcmp(rec->container_id, r->container_id) != 0
                    : m == NULL || strcmp(m->netns, r->netns) != 0) {
        snprintf(msg, msglen, "the node agent knows no sandbox of the pod with this container id");
        return CNI_POD_FAILED;
    }
    if (m == NULL || strcmp(m->netns, r->netns) != 0) {
        snprintf(msg, msglen, "%s",
                 m == NULL ? "the redirection rules could not be installed "
                             "(mesh-cni's log says why)"
                           : "the pod is in the mesh with another network "
                             "namespace");
        return CNI_POD_FAILED;
    }
    if (m->nack != NULL) {
        snprintf(msg, msglen, "ztunnel refused the pod: %s", m->nack);
        return CNI_POD_FAILED;
    }
    if (!m->acked) {
        snprintf(msg, msglen, "%s",
                 zds_server_has_client(c->zds) ? "ztunnel has not acknowledged the pod"
                                               : "no ztunnel connected");
        return CNI_POD_WAITING;
    }
    return CNI_POD_IN;
}

size_t
cni_n_sandboxes(const struct cni *c)
{
    return c->n_records;
}
