/*
 * kubelet_token.c - projected service-account tokens (a pod volume with
 * projected.sources[].serviceAccountToken, e.g. audience istio-ca for a
 * waypoint): a TokenRequest bound to the pod for each, the token written to
 * pods/<ns>_<name>/volumes/<volume>/<path> (atomically, so a renewal is seen
 * whole), renewed at 80 % of its life as the kubelet does. The supervisor
 * bind-mounts each volume directory at its mountPath in a mount namespace of
 * the pod's own (cluster_podrun.c), so pods sharing a mountPath each see
 * their own token. Mount points missing on the host are made, recorded in
 * run.json and removed with the last pod using them.
 */
#define LOG_SCOPE "kubelet"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/base.h"
#include "kcluster.h"
#include "kubelet.h"
#include "log/log.h"

static struct log_ratelimit rl_token;

/* The |i|-th token of the pod, and its volume. */
static const json_t *
token_at(const struct kl_pod *p, size_t i, const json_t **vol)
{
    size_t n = 0, j;
    json_t *v;
    json_array_foreach(p->tokvols, j, v) {
        size_t m = json_array_size(json_object_get(v, "tokens"));
        if (i < n + m) {
            *vol = v;
            return json_array_get(json_object_get(v, "tokens"), i - n);
        }
        n += m;
    }
    return NULL;
}

static void request_next(struct kubelet *kl, struct kl_pod *p);

static void
on_token(void *arg, int status, const json_t *body)
{
    struct kl_pod *p = arg;
    struct kubelet *kl = p->kl;
    const json_t *vol = NULL;
    const json_t *tok = token_at(p, p->tok_next, &vol);
    const char *jwt = js(body, "status.token");

    p->tok_req = NULL;
    if (tok == NULL)
        return;
    if (status < 200 || status >= 300 || jwt == NULL) {
        log_warn_rl(&rl_token, "pod %s/%s: TokenRequest for %s: %d %s (retried)", p->ns, p->name,
                    jsd(tok, "audience", "the API server"), status, jsd(body, "message", ""));
        p->tok_retry_at = loop_now_ms(kl->loop) + 2000;
        return;
    }
    char *file = cl_path(&kl->c, "pods/%s_%s/volumes/%s/%s", p->ns, p->name, js(vol, "volume"),
                         js(tok, "path"));
    char *slash = strrchr(file, '/');
    *slash = '\0';
    int rc = cl_mkdirs(file, 0755);
    *slash = '/';
    if (rc < 0 || cl_write_atomic(file, jwt, strlen(jwt), 0644) < 0) {
        log_warn_rl(&rl_token, "pod %s/%s: writing %s: %s", p->ns, p->name, file, strerror(errno));
        p->tok_retry_at = loop_now_ms(kl->loop) + 2000;
        free(file);
        return;
    }
    free(file);
    /* Renewed at 80 % of the shortest life, as the kubelet's token manager does. */
    uint64_t life = (uint64_t)json_integer_value(json_object_get(tok, "expirationSeconds"));
    uint64_t due = loop_now_ms(kl->loop) + life * 800;
    if (p->tok_next == 0 || due < p->tok_refresh_at)
        p->tok_refresh_at = due;
    p->tok_next++;
    request_next(kl, p);
}

static void
request_next(struct kubelet *kl, struct kl_pod *p)
{
    const json_t *vol = NULL;
    const json_t *tok = token_at(p, p->tok_next, &vol);
    if (tok == NULL) {
        if (!p->tokens_ok)
            log_info("pod %s/%s: %zu projected token(s) written", p->ns, p->name, p->tok_next);
        p->tokens_ok = true;
        return;
    }
    json_t *req = kl_token_request(p->pod, tok);
    char *path = xasprintf("/api/v1/namespaces/%s/serviceaccounts/%s/token", p->ns,
                           jsd(p->pod, "spec.serviceAccountName", "default"));
    p->tok_req = kube_request(kl->kc, "POST", path, NULL, req, 0, on_token, p);
    if (p->tok_req == NULL)
        p->tok_retry_at = loop_now_ms(kl->loop) + 2000;
    free(path);
    json_decref(req);
}

bool
kl_tokens_ready(struct kubelet *kl, struct kl_pod *p)
{
    uint64_t now = loop_now_ms(kl->loop);
    if (p->tokvols == NULL)
        p->tokvols = kl_token_volumes(p->pod);
    if (json_array_size(p->tokvols) == 0)
        return true;
    bool renew = p->tokens_ok && now >= p->tok_refresh_at;
    if (p->tok_req == NULL && now >= p->tok_retry_at && (!p->tokens_ok || renew)) {
        if (renew || token_at(p, p->tok_next, &(const json_t *){NULL}) == NULL)
            p->tok_next = 0; /* a new round */
        request_next(kl, p);
    }
    return p->tokens_ok;
}

/* Is |dir| (or something below it) the mount point of another pod's record? */
static bool
in_use(struct kubelet *kl, const char *self, const char *dir)
{
    json_t *all = ledger_proc_list(&kl->c); /* "pod_<ns>_<name>" of every pod started */
    size_t i, j, n = strlen(dir);
    json_t *l, *m;
    bool used = false;
    json_array_foreach(all, i, l) {
        const char *label = json_string_value(l);
        if (used || strncmp(label, "pod_", 4) != 0 || strcmp(label + 4, self) == 0)
            continue;
        char *runp = cl_path(&kl->c, "pods/%s/run.json", label + 4);
        json_t *run = cl_read_json(runp);
        free(runp);
        json_array_foreach(json_object_get(run, "mounts"), j, m) {
            const char *t = jsd(m, "target", "");
            if (strncmp(t, dir, n) == 0 && (t[n] == '/' || t[n] == '\0'))
                used = true;
        }
        json_decref(run);
    }
    json_decref(all);
    return used;
}

int
kl_tokens_mounts(struct kubelet *kl, struct kl_pod *p, json_t *run, char *err, size_t errlen)
{
    json_t *mounts = json_array(), *made = json_array();
    size_t i;
    json_t *v;
    int rc = 0;

    json_array_foreach(p->tokvols, i, v) {
        const char *target = js(v, "mountPath");
        char *src = cl_path(&kl->c, "pods/%s_%s/volumes/%s", p->ns, p->name, js(v, "volume"));
        /* An optional ConfigMap that is missing still mounts: an empty directory. */
        if (cl_mkdirs(src, 0755) < 0) {
            snprintf(err, errlen, "volume %s: %s", src, strerror(errno));
            free(src);
            rc = -1;
            break;
        }
        /* Each missing component, outermost first, then made; removed deepest first later. */
        char *walk = xstrdup(target);
        for (char *s = walk + 1;; s++) {
            char c = *s;
            if (c != '/' && c != '\0')
                continue;
            *s = '\0';
            struct stat st;
            if (stat(walk, &st) < 0) {
                if (mkdir(walk, 0755) < 0 && errno != EEXIST) {
                    snprintf(err, errlen, "mount point %s: %s", walk, strerror(errno));
                    rc = -1;
                } else {
                    json_array_insert_new(made, 0, json_string(walk));
                }
            }
            *s = c;
            if (c == '\0' || rc < 0)
                break;
        }
        free(walk);
        json_array_append_new(mounts, json_pack("{s:s, s:s}", "source", src, "target", target));
        free(src);
        if (rc < 0)
            break;
    }
    json_object_set_new(run, "mounts", mounts);
    json_object_set_new(run, "mountDirs", made);
    return rc;
}

void
kl_tokens_release(struct kubelet *kl, const char *ns, const char *name, const json_t *run)
{
    char *self = xasprintf("%s_%s", ns, name);
    size_t i;
    json_t *d;
    json_array_foreach(json_object_get(run, "mountDirs"), i, d) {
        const char *dir = json_string_value(d);
        /* rmdir only: never anything with content, never a directory another pod mounts on. */
        if (dir != NULL && dir[0] == '/' && !in_use(kl, self, dir))
            rmdir(dir);
    }
    free(self);
}

void
kubelet_release_mounts(struct cluster *c)
{
    char *dir = cl_path(c, "pods");
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d != NULL && (e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char *runp = xasprintf("%s/%s/run.json", dir, e->d_name);
        json_t *run = cl_read_json(runp);
        size_t i;
        json_t *m;
        free(runp);
        json_array_foreach(json_object_get(run, "mountDirs"), i, m)
        {
            const char *p = json_string_value(m);
            if (p != NULL && p[0] == '/')
                rmdir(p); /* only empty ones: never anything with content */
        }
        json_decref(run);
    }
    if (d != NULL)
        closedir(d);
    free(dir);
}
