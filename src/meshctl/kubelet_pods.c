/*
 * kubelet_pods.c - the pods bound to this node, as a kubelet runs them.
 *
 * A new pod: its directory pods/<ns>_<name>/ (run.json first, so a crash
 * half-way leaves something to clean up), a network namespace, the CNI chain
 * (ADD; the result cached in cni.json; the pod's IP from it), the container's
 * spec and /etc/netns files (pod_spec.c, cluster_podrun.c: the embedded
 * cluster's own) and its supervisor `meshctl __pod-run`. A kubelet restarted
 * finds the record with the pod's UID and a live supervisor and adopts it
 * (CHECK, no restart).
 *
 * Every tick: a supervisor that ended left exit.json; restartPolicy decides
 * (a restart after a doubling backoff, or Succeeded/Failed). Readiness is the
 * readinessProbe's (httpGet, tcpSocket; from the node, which routes to every
 * pod) or "started". The status subresource is patched whenever what it
 * would say changed (and retried when the patch failed).
 *
 * Deletion (deletionTimestamp): SIGTERM to the pod's process group, SIGKILL
 * after the grace period, CNI DEL, the namespace and the directory removed,
 * then DELETE with gracePeriodSeconds 0 and the UID as precondition. A pod
 * the API no longer has goes the same way without the DELETE. Nothing else
 * stops a pod: an API error only delays patches.
 */
#define LOG_SCOPE "kubelet"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>

#include "base/base.h"
#include "log/log.h"
#include "loop/loop.h"
#include "kubelet.h"
#include "meshctl.h"

static struct log_ratelimit rl_start, rl_status, rl_cni, rl_del;

static void
now_rfc(char out[32])
{
    cl_rfc3339((long long)time(NULL), out, 32);
}

static char *
label_of(const char *ns, const char *name)
{
    return xasprintf("pod_%s_%s", ns, name);
}

static struct kl_pod *
find(struct kubelet *kl, const char *uid)
{
    for (struct kl_pod *p = kl->pods; p != NULL; p = p->next)
        if (strcmp(p->uid, uid) == 0)
            return p;
    return NULL;
}

static void
pod_free(struct kl_pod *p)
{
    if (p->status_req != NULL)
        kube_request_cancel(p->status_req);
    if (p->del_req != NULL)
        kube_request_cancel(p->del_req);
    if (p->tok_req != NULL)
        kube_request_cancel(p->tok_req);
    if (p->cm_req != NULL)
        kube_request_cancel(p->cm_req);
    kl_probe_cancel(p->probe);
    json_decref(p->tokvols);
    json_decref(p->pod);
    free(p->ns);
    free(p->name);
    free(p->uid);
    free(p->sent);
    free(p);
}

static void
unlink_pod(struct kubelet *kl, struct kl_pod *p)
{
    for (struct kl_pod **pp = &kl->pods; *pp != NULL; pp = &(*pp)->next)
        if (*pp == p) {
            *pp = p->next;
            break;
        }
}

/* The Deployment behind a ReplicaSet's pod (for `meshctl exec deploy/NAME`), or NULL. */
static char *
deployment_of(const json_t *pod)
{
    const char *hash = js(pod, "metadata.labels.pod-template-hash");
    size_t i;
    json_t *o;
    json_array_foreach(jget(pod, "metadata.ownerReferences"), i, o) {
        const char *rs = js(o, "name");
        if (hash == NULL || rs == NULL || strcmp(jsd(o, "kind", ""), "ReplicaSet") != 0)
            continue;
        size_t n = strlen(rs), h = strlen(hash);
        if (n > h + 1 && rs[n - h - 1] == '-' && strcmp(rs + n - h, hash) == 0)
            return xasprintf("%.*s", (int)(n - h - 1), rs);
    }
    return NULL;
}

/* ---- the network ---- */

static void
cni_del(struct kubelet *kl, const char *ns, const char *name, const json_t *run)
{
    const char *uid = jsd(run, "uid", ""), *netns = js(run, "netns");
    char *cache = cl_path(&kl->c, "pods/%s_%s/cni.json", ns, name);
    json_t *prev = cl_read_json(cache);
    char *args = kl_cni_args(ns, name, uid), *path = NULL, err[512];
    struct stat st;

    if (netns != NULL) {
        path = xasprintf("/run/netns/%s", netns);
        if (stat(path, &st) < 0) {
            free(path);
            path = NULL;
        }
    }
    /* DEL is idempotent and runs even without a cached result (an ADD that failed half-way). */
    if (uid[0] != '\0' && kl_cni_run(kl->conflist, "DEL", uid, path, args, kl->cni_path, prev, NULL,
                                     err, sizeof(err)) < 0)
        log_warn_rl(&rl_cni, "pod %s/%s: CNI DEL: %s", ns, name, err);
    free(args);
    free(path);
    free(cache);
    json_decref(prev);
}

/* Removes what the pod had on this node: supervisor record, network, namespace, directory. */
static void
teardown(struct kubelet *kl, const char *ns, const char *name)
{
    json_t *run = pods_run_info(&kl->c, ns, name);
    char *label = label_of(ns, name);

    ledger_proc_del(&kl->c, label);
    if (run != NULL) {
        cni_del(kl, ns, name, run);
        if (js(run, "netns") != NULL)
            net_netns_del(&kl->c, js(run, "netns"));
        kl_tokens_release(kl, ns, name, run);
    }
    char *dir = pods_dir(&kl->c, ns, name);
    cl_rmtree(dir);
    free(dir);
    free(label);
    json_decref(run);
}

/* ---- starting ---- */

static int
save_run(struct kubelet *kl, struct kl_pod *p, json_t *run)
{
    char *runp = cl_path(&kl->c, "pods/%s_%s/run.json", p->ns, p->name);
    int rc = cl_write_json(runp, run);
    free(runp);
    return rc;
}

/* The supervisor's pid as podrun_start recorded it. */
static void
load_pid(struct kl_pod *p)
{
    char *label = label_of(p->ns, p->name);
    if (ledger_proc_get(&p->kl->c, label, &p->pid, &p->pstart) < 0) {
        p->pid = 0;
        p->pstart = 0;
    }
    free(label);
}

static int
start_pod(struct kubelet *kl, struct kl_pod *p, char *err, size_t errlen)
{
    char *dir = pods_dir(&kl->c, p->ns, p->name);
    char *root = xasprintf("%s/root", dir);
    char *owner = deployment_of(p->pod);
    json_t *run = NULL, *result = NULL, *svcs = NULL, *copy = NULL;
    int rc = -1;

    json_t *old = pods_run_info(&kl->c, p->ns, p->name);
    const char *old_node = jsd(old, "node", kl->node);
    if (old != NULL && strcmp(old_node, kl->node) != 0) {
        /* A pod of that name another node ran: its kubelet removes the directory first. */
        snprintf(err, errlen, "pods/%s_%s still holds a pod of %s", p->ns, p->name, old_node);
        json_decref(old);
        free(owner);
        free(dir);
        free(root);
        return -1;
    }
    json_decref(old);
    if (cl_mkdirs(root, 0755) < 0) {
        snprintf(err, errlen, "%s: %s", root, strerror(errno));
        goto out;
    }
    pods_netns_name(&kl->c, p->ns, p->name, p->netns, sizeof(p->netns));
    run = json_pack("{s:b, s:s, s:s, s:s, s:s, s:i, s:s, s:i, s:s?, s:O?, s:b}", "kube", 1, "uid",
                    p->uid, "namespace", p->ns, "netns", p->netns, "node", kl->node, "nodeIndex",
                    kl->k, "hostIP", kl->node_ip, "restarts", p->restarts, "owner", owner, "labels",
                    jget(p->pod, "metadata.labels"), "ready", 0);
    if (json_array_size(p->tokvols) > 0 && kl_tokens_mounts(kl, p, run, err, errlen) < 0) {
        save_run(kl, p, run); /* what was made goes with the teardown */
        goto out;
    }
    if (save_run(kl, p, run) < 0) {
        snprintf(err, errlen, "writing %s/run.json", dir);
        goto out;
    }
    if (ledger_netns_add(&kl->c, p->netns) < 0 ||
        sys_ip(err, errlen, "netns", "add", p->netns, NULL) < 0 ||
        sys_ip(err, errlen, "-n", p->netns, "link", "set", "lo", "up", NULL) < 0)
        goto out;
    char *nspath = xasprintf("/run/netns/%s", p->netns);
    char *args = kl_cni_args(p->ns, p->name, p->uid);
    rc = kl_cni_run(kl->conflist, "ADD", p->uid, nspath, args, kl->cni_path, NULL, &result, err,
                    errlen);
    free(nspath);
    free(args);
    if (rc < 0)
        goto out;
    rc = -1;
    char *cache = xasprintf("%s/cni.json", dir);
    int wrc = cl_write_json(cache, result);
    free(cache);
    if (wrc < 0 || kl_result_ip(result, p->ip, sizeof(p->ip), err, errlen) < 0) {
        if (wrc < 0)
            snprintf(err, errlen, "writing %s/cni.json", dir);
        goto out;
    }
    json_object_set_new(run, "ip", json_string(p->ip));
    /* fieldRef status.podIP and status.hostIP see what the status will say. */
    copy = json_deep_copy(p->pod);
    json_object_set_new(jobj(copy, "status"), "podIP", json_string(p->ip));
    json_object_set_new(jobj(copy, "status"), "hostIP", json_string(kl->node_ip));
    svcs = kl_service_records(kl);
    if (podrun_prepare(&kl->c, copy, svcs, run, err, errlen) < 0 ||
        podrun_start(&kl->c, p->ns, p->name, err, errlen) < 0)
        goto out;
    load_pid(p);
    rc = 0;
out:
    if (rc < 0) {
        teardown(kl, p->ns, p->name);
        p->tokens_ok = false; /* their files went with the directory */
        p->cms_ok = false;
    }
    json_decref(run);
    json_decref(result);
    json_decref(svcs);
    json_decref(copy);
    free(owner);
    free(dir);
    free(root);
    return rc;
}

static void
try_start(struct kubelet *kl, struct kl_pod *p)
{
    char err[512];
    uint64_t now = loop_now_ms(kl->loop);
    uint64_t t0 = kl_mono_ms();

    if (start_pod(kl, p, err, sizeof(err)) < 0) {
        p->backoff_ms = p->backoff_ms == 0 ? KL_BACKOFF_MIN_MS
                                           : KL_MIN(p->backoff_ms * 2, (uint64_t)KL_BACKOFF_MAX_MS);
        p->retry_at = now + p->backoff_ms;
        p->phase = KP_CREATING;
        log_warn_rl(&rl_start, "pod %s/%s: not started (retry in %llu ms): %s", p->ns, p->name,
                    (unsigned long long)p->backoff_ms, err);
        return;
    }
    p->phase = KP_RUNNING;
    p->running_since = loop_now_ms(kl->loop);
    p->probe_at = 0;
    p->probe_fails = 0;
    now_rfc(p->started_at);
    json_t *run = pods_run_info(&kl->c, p->ns, p->name);
    if (run != NULL) { /* an adopting kubelet keeps the container's start time */
        json_object_set_new(run, "startedAt", json_string(p->started_at));
        save_run(kl, p, run);
        json_decref(run);
    }
    log_info("pod %s/%s: running, %s in %s (network and start %llu ms)", p->ns, p->name, p->ip,
             p->netns, (unsigned long long)(kl_mono_ms() - t0));
}

/* A kubelet restarted: the pod's record with its UID and a live supervisor. */
static bool
adopt(struct kubelet *kl, struct kl_pod *p)
{
    json_t *run = pods_run_info(&kl->c, p->ns, p->name);
    bool ok = false;

    if (run == NULL || strcmp(jsd(run, "uid", ""), p->uid) != 0 ||
        strcmp(jsd(run, "node", ""), kl->node) != 0 || js(run, "ip") == NULL ||
        jget(run, "argv") == NULL) {
        json_decref(run);
        return false;
    }
    snprintf(p->netns, sizeof(p->netns), "%s", jsd(run, "netns", ""));
    snprintf(p->ip, sizeof(p->ip), "%s", js(run, "ip"));
    p->restarts = (int)json_integer_value(json_object_get(run, "restarts"));
    snprintf(p->started_at, sizeof(p->started_at), "%s", jsd(run, "startedAt", ""));
    load_pid(p);
    char *exitp = cl_path(&kl->c, "pods/%s_%s/exit.json", p->ns, p->name);
    struct stat st;
    bool ended = stat(exitp, &st) == 0;
    free(exitp);
    if ((p->pid > 0 && proc_alive(p->pid, p->pstart)) || ended) {
        /* The network is as ADD left it? A failed CHECK is reported, the pod kept. */
        char err[512], *args = kl_cni_args(p->ns, p->name, p->uid);
        char *cache = cl_path(&kl->c, "pods/%s_%s/cni.json", p->ns, p->name);
        char *nspath = xasprintf("/run/netns/%s", p->netns);
        json_t *prev = cl_read_json(cache);
        if (kl_cni_run(kl->conflist, "CHECK", p->uid, nspath, args, kl->cni_path, prev, NULL, err,
                       sizeof(err)) < 0)
            log_warn_rl(&rl_cni, "pod %s/%s: CNI CHECK after adoption: %s", p->ns, p->name, err);
        json_decref(prev);
        free(args);
        free(cache);
        free(nspath);
        p->phase = KP_RUNNING; /* an ended container is handled by the next tick */
        p->tokens_ok = true;   /* the files are there; renewed at once (their age is unknown) */
        p->tok_refresh_at = 0;
        p->cms_ok = true;
        p->cm_refresh_at = 0;
        p->running_since = loop_now_ms(kl->loop);
        ok = true;
        log_info("pod %s/%s: adopted (supervisor %d, %s)", p->ns, p->name, (int)p->pid, p->ip);
    }
    json_decref(run);
    return ok;
}

/* ---- what the API says ---- */

static void
begin_stop(struct kubelet *kl, struct kl_pod *p, long long grace)
{
    if (p->phase == KP_STOPPING || p->phase == KP_DELETING)
        return;
    if (grace < 0)
        grace = 0;
    p->kill_at = loop_now_ms(kl->loop) + (uint64_t)grace * 1000;
    p->killed = false;
    if (p->pid > 0 && proc_alive(p->pid, p->pstart))
        kill(-p->pid, SIGTERM);
    else
        p->pid = 0;
    p->phase = KP_STOPPING;
    kl_probe_cancel(p->probe);
    p->probe = NULL;
    log_info("pod %s/%s: stopping (grace %lld s)", p->ns, p->name, grace);
}

static long long
grace_of(const json_t *pod)
{
    json_t *g = jget(pod, "metadata.deletionGracePeriodSeconds");
    if (!json_is_integer(g))
        g = jget(pod, "spec.terminationGracePeriodSeconds");
    return json_is_integer(g) ? json_integer_value(g) : KL_GRACE_DEFAULT;
}

void
kl_pod_upsert(struct kubelet *kl, const json_t *pod)
{
    const char *uid = js(pod, "metadata.uid");
    const char *ns = js(pod, "metadata.namespace"), *name = js(pod, "metadata.name");
    if (uid == NULL || ns == NULL || name == NULL ||
        strcmp(jsd(pod, "spec.nodeName", ""), kl->node))
        return;
    struct kl_pod *p = find(kl, uid);
    bool deleting = js(pod, "metadata.deletionTimestamp") != NULL;
    if (p == NULL) {
        const char *phase = jsd(pod, "status.phase", "Pending");
        bool finished = strcmp(phase, "Succeeded") == 0 || strcmp(phase, "Failed") == 0;
        p = xcalloc(1, sizeof(*p));
        p->kl = kl;
        p->ns = xstrdup(ns);
        p->name = xstrdup(name);
        p->uid = xstrdup(uid);
        p->pod = json_deep_copy(pod);
        p->next = kl->pods;
        kl->pods = p;
        snprintf(p->start, sizeof(p->start), "%s", jsd(pod, "status.startTime", ""));
        if (p->start[0] == '\0')
            now_rfc(p->start);
        if (adopt(kl, p)) {
            p->ready = false; /* the tick re-probes */
        } else if (deleting) {
            p->phase = KP_STOPPING; /* nothing of it runs here: straight to the final DELETE */
            p->pid = 0;
            return;
        } else if (finished) {
            p->phase = KP_DONE;
            p->succeeded = strcmp(phase, "Succeeded") == 0;
            p->sent = xstrdup("finished before this kubelet started");
            return;
        } else {
            p->phase = KP_CREATING;
            p->retry_at = 0;
            /* An older pod of that name we ran (deleted while we were away) goes first. */
            json_t *old = pods_run_info(&kl->c, ns, name);
            if (old != NULL && strcmp(jsd(old, "node", ""), kl->node) == 0)
                teardown(kl, ns, name);
            json_decref(old);
        }
    } else {
        json_decref(p->pod);
        p->pod = json_deep_copy(pod);
    }
    if (deleting)
        begin_stop(kl, p, grace_of(pod));
}

void
kl_pod_remove(struct kubelet *kl, const json_t *pod)
{
    struct kl_pod *p = find(kl, jsd(pod, "metadata.uid", ""));
    if (p == NULL)
        return;
    p->api_gone = true;
    begin_stop(kl, p, grace_of(pod));
}

void
kl_pods_synced(struct kubelet *kl)
{
    /* Records of this node's pods the API does not have: a kubelet restarted after a delete. */
    char *dir = cl_path(&kl->c, "pods");
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d != NULL && (e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char *runp = xasprintf("%s/%s/run.json", dir, e->d_name);
        json_t *run = cl_read_json(runp);
        free(runp);
        const char *uid = js(run, "uid"), *ns = js(run, "namespace");
        if (run != NULL && json_is_true(json_object_get(run, "kube")) && uid != NULL &&
            ns != NULL && strcmp(jsd(run, "node", ""), kl->node) == 0 && find(kl, uid) == NULL &&
            strncmp(e->d_name, ns, strlen(ns)) == 0 && e->d_name[strlen(ns)] == '_') {
            const char *name = e->d_name + strlen(ns) + 1;
            char *label = label_of(ns, name);
            pid_t pid;
            unsigned long long start;
            if (ledger_proc_get(&kl->c, label, &pid, &start) == 0)
                proc_stop_group(pid, start, CLUSTER_STOP_MS);
            free(label);
            log_info("pod %s/%s (uid %s): not in the API any more, removed", ns, name, uid);
            teardown(kl, ns, name);
        }
        json_decref(run);
    }
    if (d != NULL)
        closedir(d);
    free(dir);
}

/* ---- each tick ---- */

static void
set_ready(struct kubelet *kl, struct kl_pod *p, bool ready)
{
    if (p->ready == ready)
        return;
    p->ready = ready;
    now_rfc(p->ready_since);
    json_t *run = pods_run_info(&kl->c, p->ns, p->name);
    if (run != NULL) { /* meshctl exec deploy/NAME picks a ready pod */
        json_object_set_new(run, "ready", json_boolean(ready));
        save_run(kl, p, run);
        json_decref(run);
    }
}

static const json_t *
readiness_probe(const struct kl_pod *p)
{
    return json_object_get(json_array_get(jget(p->pod, "spec.containers"), 0), "readinessProbe");
}

static void
probe_done(void *arg, bool ok)
{
    struct kl_pod *p = arg;
    struct kubelet *kl = p->kl;
    const json_t *rp = readiness_probe(p);
    json_int_t period = json_integer_value(json_object_get(rp, "periodSeconds"));
    json_int_t fails = json_integer_value(json_object_get(rp, "failureThreshold"));

    p->probe = NULL;
    p->probe_fails = ok ? 0 : p->probe_fails + 1;
    if (ok)
        set_ready(kl, p, true);
    else if (p->probe_fails >= (fails > 0 ? fails : 3))
        set_ready(kl, p, false);
    /* Until the first success a short period, so Ready follows the app closely. */
    uint64_t ms = (uint64_t)(period > 0 ? period : 10) * 1000;
    p->probe_at = loop_now_ms(kl->loop) + (p->ready ? ms : KL_MIN(ms, 1000));
}

/* Readiness: the probe's (httpGet, tcpSocket), run from the loop (kubelet_probe.c), or started. */
static void
probe(struct kubelet *kl, struct kl_pod *p)
{
    const json_t *ctr = json_array_get(jget(p->pod, "spec.containers"), 0);
    const json_t *rp = readiness_probe(p);
    const json_t *get = json_object_get(rp, "httpGet"), *tcp = json_object_get(rp, "tcpSocket");
    uint64_t now = loop_now_ms(kl->loop);

    if (get == NULL && tcp == NULL) {
        set_ready(kl, p, true);
        return;
    }
    if (p->probe != NULL || now < p->probe_at)
        return;
    json_int_t delay = json_integer_value(json_object_get(rp, "initialDelaySeconds"));
    json_int_t timeout = json_integer_value(json_object_get(rp, "timeoutSeconds"));
    if (now < p->running_since + (uint64_t)KL_MAX(delay, 0) * 1000) {
        p->probe_at = p->running_since + (uint64_t)delay * 1000;
        return;
    }
    int port = pods_probe_port(ctr, json_object_get(get != NULL ? get : tcp, "port"));
    p->probe =
        kl_probe_start(kl->loop, p->ip, port, get != NULL ? jsd(get, "path", "/") : NULL,
                       (unsigned)(timeout > 0 ? KL_MIN(timeout, 60) : 1) * 1000, probe_done, p);
    if (p->probe == NULL) /* a port or path no probe can use: a failure */
        probe_done(p, false);
}

/* The supervisor ended: how, and what restartPolicy says. */
static void
container_ended(struct kubelet *kl, struct kl_pod *p)
{
    char *exitp = cl_path(&kl->c, "pods/%s_%s/exit.json", p->ns, p->name);
    json_t *ex = cl_read_json(exitp);
    uint64_t now = loop_now_ms(kl->loop);
    free(exitp);

    p->exit_code = ex != NULL ? (int)json_integer_value(json_object_get(ex, "exitCode")) : 137;
    snprintf(p->finished_at, sizeof(p->finished_at), "%s", jsd(ex, "finishedAt", ""));
    if (p->finished_at[0] == '\0')
        now_rfc(p->finished_at);
    snprintf(p->last_started, sizeof(p->last_started), "%s", p->started_at);
    p->has_last = true;
    /*
     * A container ends whole, as a runtime's cgroup does: whatever it left in its process
     * group (background children; all of it when the supervisor itself was killed) goes.
     */
    if (p->pid > 0)
        kill(-p->pid, SIGKILL);
    json_decref(ex);
    p->pid = 0;
    kl_probe_cancel(p->probe);
    p->probe = NULL;
    set_ready(kl, p, false);

    const char *policy = jsd(p->pod, "spec.restartPolicy", "Always");
    bool restart =
        strcmp(policy, "Always") == 0 || (strcmp(policy, "OnFailure") == 0 && p->exit_code != 0);
    if (!restart) {
        p->phase = KP_DONE;
        p->succeeded = p->exit_code == 0;
        log_info("pod %s/%s: container exited %d: %s", p->ns, p->name, p->exit_code,
                 p->succeeded ? "Succeeded" : "Failed");
        return;
    }
    if (now - p->running_since >= KL_BACKOFF_RESET_MS || p->backoff_ms == 0)
        p->backoff_ms = KL_BACKOFF_MIN_MS;
    else
        p->backoff_ms = KL_MIN(p->backoff_ms * 2, (uint64_t)KL_BACKOFF_MAX_MS);
    p->retry_at = now + p->backoff_ms;
    p->phase = KP_BACKOFF;
    log_info("pod %s/%s: container exited %d, restart in %llu ms", p->ns, p->name, p->exit_code,
             (unsigned long long)p->backoff_ms);
}

static void
restart(struct kubelet *kl, struct kl_pod *p)
{
    char err[512];
    char *exitp = cl_path(&kl->c, "pods/%s_%s/exit.json", p->ns, p->name);
    unlink(exitp);
    free(exitp);
    json_t *run = pods_run_info(&kl->c, p->ns, p->name);
    p->restarts++;
    json_object_set_new(run, "restarts", json_integer(p->restarts));
    save_run(kl, p, run);
    json_decref(run);
    if (podrun_start(&kl->c, p->ns, p->name, err, sizeof(err)) < 0) {
        log_warn_rl(&rl_start, "pod %s/%s: restart failed: %s", p->ns, p->name, err);
        p->retry_at = loop_now_ms(kl->loop) + p->backoff_ms;
        return;
    }
    load_pid(p);
    p->phase = KP_RUNNING;
    p->running_since = loop_now_ms(kl->loop);
    p->probe_at = 0;
    now_rfc(p->started_at);
    run = pods_run_info(&kl->c, p->ns, p->name);
    json_object_set_new(run, "startedAt", json_string(p->started_at));
    save_run(kl, p, run);
    json_decref(run);
}

static void
on_status(void *arg, int status, const json_t *body)
{
    struct kl_pod *p = arg;
    p->status_req = NULL;
    if (status >= 200 && status < 300)
        return; /* p->sent stays */
    free(p->sent);
    p->sent = NULL;
    p->status_retry_at = loop_now_ms(p->kl->loop) + 2000;
    if (status != 404)
        log_warn_rl(&rl_status, "pod %s/%s: status patch: %d %s", p->ns, p->name, status,
                    jsd(body, "message", ""));
}

static void
patch_status(struct kubelet *kl, struct kl_pod *p)
{
    struct kl_state s = {.host_ip = kl->node_ip, .start = p->start, .restarts = p->restarts};
    if (p->status_req != NULL || loop_now_ms(kl->loop) < p->status_retry_at)
        return;
    s.ip = p->ip[0] != '\0' ? p->ip : NULL;
    s.ready_since = p->ready_since[0] != '\0' ? p->ready_since : NULL;
    s.finished_at = p->has_last ? p->finished_at : NULL;
    s.last_started = p->has_last && p->last_started[0] ? p->last_started : NULL;
    s.exit_code = p->exit_code;
    switch (p->phase) {
    case KP_CREATING:
        s.phase = "Pending";
        s.reason = "ContainerCreating";
        s.ip = NULL;
        break;
    case KP_RUNNING:
        s.phase = "Running";
        s.running = true;
        s.ready = p->ready;
        s.started_at = p->started_at;
        break;
    case KP_BACKOFF:
        s.phase = "Running";
        s.reason = "CrashLoopBackOff";
        s.terminated = true;
        break;
    case KP_DONE:
        s.phase = p->succeeded ? "Succeeded" : "Failed";
        s.terminated = true;
        s.reason = p->exit_code == 0 ? "Completed" : "Error";
        break;
    default:
        return;
    }
    json_t *body = kl_status_patch(p->pod, &s);
    char *text = json_dumps(body, JSON_COMPACT | JSON_SORT_KEYS);
    if (p->sent == NULL || strcmp(p->sent, text) != 0) {
        char *path = xasprintf("/api/v1/namespaces/%s/pods/%s/status", p->ns, p->name);
        p->status_req = kube_request(kl->kc, "PATCH", path, "application/merge-patch+json", body, 0,
                                     on_status, p);
        free(p->sent);
        p->sent = p->status_req != NULL ? text : NULL;
        text = NULL;
        free(path);
    }
    free(text);
    json_decref(body);
}

static void
on_deleted(void *arg, int status, const json_t *body)
{
    struct kl_pod *p = arg;
    struct kubelet *kl = p->kl;
    p->del_req = NULL;
    /* 404: gone already; 409: the precondition failed (another pod of that name now). */
    if ((status >= 200 && status < 300) || status == 404 || status == 409) {
        log_info("pod %s/%s: deleted (%d)", p->ns, p->name, status);
        unlink_pod(kl, p);
        pod_free(p);
        return;
    }
    p->status_retry_at = loop_now_ms(kl->loop) + 2000;
    log_warn_rl(&rl_del, "pod %s/%s: final delete: %d %s", p->ns, p->name, status,
                jsd(body, "message", ""));
}

/* Is the process group led by |pid| gone? (Our own zombies are reaped first.) */
static bool
group_gone(pid_t pid)
{
    while (waitpid(-1, NULL, WNOHANG) > 0)
        ;
    return pid <= 0 || (kill(-pid, 0) < 0 && errno == ESRCH);
}

/* Tokens and ConfigMaps both (neither waits for the other). */
static bool
volumes_ready(struct kubelet *kl, struct kl_pod *p)
{
    bool tokens = kl_tokens_ready(kl, p);
    return kl_configmaps_ready(kl, p) && tokens;
}

/* Returns false when |p| was freed. */
static bool
tick_one(struct kubelet *kl, struct kl_pod *p)
{
    uint64_t now = loop_now_ms(kl->loop);

    switch (p->phase) {
    case KP_CREATING:
        if (now >= p->retry_at && volumes_ready(kl, p))
            try_start(kl, p);
        break;
    case KP_RUNNING:
        volumes_ready(kl, p); /* token renewals, ConfigMap changes */
        if (p->pid <= 0 || !proc_alive(p->pid, p->pstart))
            container_ended(kl, p);
        else
            probe(kl, p);
        break;
    case KP_BACKOFF:
        volumes_ready(kl, p);
        if (now >= p->retry_at)
            restart(kl, p);
        break;
    case KP_DONE:
        break;
    case KP_STOPPING:
        if (!group_gone(p->pid)) {
            if (now >= p->kill_at && !p->killed) {
                kill(-p->pid, SIGKILL);
                p->killed = true;
            }
            return true;
        }
        teardown(kl, p->ns, p->name);
        log_info("pod %s/%s: stopped, network and namespace removed", p->ns, p->name);
        if (p->api_gone) {
            unlink_pod(kl, p);
            pod_free(p);
            return false;
        }
        p->phase = KP_DELETING;
        /* fall through */
    case KP_DELETING:
        if (p->del_req == NULL && now >= p->status_retry_at) {
            char *path = xasprintf("/api/v1/namespaces/%s/pods/%s", p->ns, p->name);
            json_t *opts =
                json_pack("{s:s, s:s, s:i, s:{s:s}}", "kind", "DeleteOptions", "apiVersion", "v1",
                          "gracePeriodSeconds", 0, "preconditions", "uid", p->uid);
            p->del_req = kube_request(kl->kc, "DELETE", path, NULL, opts, 0, on_deleted, p);
            json_decref(opts);
            free(path);
        }
        return true;
    }
    patch_status(kl, p);
    return true;
}

void
kl_pods_tick(struct kubelet *kl)
{
    while (waitpid(-1, NULL, WNOHANG) > 0) /* supervisors we started and that ended */
        ;
    for (struct kl_pod *p = kl->pods, *next; p != NULL; p = next) {
        next = p->next;
        tick_one(kl, p);
    }
}

void
kl_pods_sync_dns(struct kubelet *kl)
{
    json_t *svcs = kl_service_records(kl);
    char err[512];
    for (struct kl_pod *p = kl->pods; p != NULL; p = p->next) {
        if (p->phase == KP_CREATING || p->phase >= KP_STOPPING)
            continue;
        json_t *run = pods_run_info(&kl->c, p->ns, p->name);
        if (run != NULL &&
            podrun_write_dns(&kl->c, p->ns, p->name, run, svcs, err, sizeof(err)) < 0)
            log_warn("pod %s/%s: %s", p->ns, p->name, err);
        json_decref(run);
    }
    json_decref(svcs);
}

void
kl_pods_free(struct kubelet *kl)
{
    while (kl->pods != NULL) {
        struct kl_pod *p = kl->pods;
        kl->pods = p->next;
        pod_free(p);
    }
}
