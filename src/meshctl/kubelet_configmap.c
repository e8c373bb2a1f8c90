/*
 * kubelet_configmap.c - configMap volumes (and configMap sources of projected
 * volumes, e.g. istio-ca-root-cert for a waypoint). Each source is read with a
 * GET through lib/kube, one at a time per pod, again every KL_CM_REFRESH_MS
 * once all are written: a changed ConfigMap reaches the files within that
 * period. The files go into the same pods/<ns>_<name>/volumes/<volume>/
 * directory as the projected tokens, which the supervisor bind-mounts
 * read-only at the mountPath (kl_tokens_mounts, cluster_podrun.c): each file
 * is replaced by a rename, and a reader through the bind mount sees the old
 * file or the new one, whole. A pod whose non-optional ConfigMap is missing
 * waits in ContainerCreating, as the kubelet's does.
 */
#define LOG_SCOPE "kubelet"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "kcluster.h"
#include "kubelet.h"
#include "log/log.h"

static struct log_ratelimit rl_cm;

/* The |i|-th configMap source of the pod, and its volume. */
static const json_t *
cm_at(const struct kl_pod *p, size_t i, const json_t **vol)
{
    size_t n = 0, j;
    json_t *v;
    json_array_foreach(p->tokvols, j, v)
    {
        size_t m = json_array_size(json_object_get(v, "configMaps"));
        if (i < n + m) {
            *vol = v;
            return json_array_get(json_object_get(v, "configMaps"), i - n);
        }
        n += m;
    }
    return NULL;
}

/* Writes |files| into the volume directory; -1 with |err| set. */
static int
write_files(struct kubelet *kl, struct kl_pod *p, const json_t *vol, const json_t *files, char *err,
            size_t errlen)
{
    size_t i;
    json_t *f;
    json_array_foreach(files, i, f)
    {
        char *file = cl_path(&kl->c, "pods/%s_%s/volumes/%s/%s", p->ns, p->name, js(vol, "volume"),
                             js(f, "path"));
        const char *data = js(f, "data");
        size_t len = json_string_length(json_object_get(f, "data"));
        size_t cur_len = 0;
        char *cur = cl_read_file(file, &cur_len);
        bool same = cur != NULL && cur_len == len && memcmp(cur, data, len) == 0;
        free(cur);
        char *slash = strrchr(file, '/');
        *slash = '\0';
        int rc = same ? 0 : cl_mkdirs(file, 0755);
        *slash = '/';
        mode_t mode = (mode_t)json_integer_value(json_object_get(f, "mode"));
        if (rc < 0 || (!same && cl_write_atomic(file, data, len, mode) < 0)) {
            snprintf(err, errlen, "writing %s: %s", file, strerror(errno));
            free(file);
            return -1;
        }
        if (!same && p->cms_ok)
            log_info("pod %s/%s: %s/%s updated", p->ns, p->name, js(vol, "volume"), js(f, "path"));
        free(file);
    }
    return 0;
}

static void fetch_next(struct kubelet *kl, struct kl_pod *p);

static void
on_configmap(void *arg, int status, const json_t *body)
{
    struct kl_pod *p = arg;
    struct kubelet *kl = p->kl;
    const json_t *vol = NULL;
    const json_t *src = cm_at(p, p->cm_next, &vol);
    char err[512] = "";

    p->cm_req = NULL;
    if (src == NULL)
        return;
    if (status != 404 && (status < 200 || status >= 300)) {
        log_warn_rl(&rl_cm, "pod %s/%s: configmap %s: %d %s (retried)", p->ns, p->name,
                    js(src, "name"), status, jsd(body, "message", ""));
        p->cm_retry_at = loop_now_ms(kl->loop) + 2000;
        return;
    }
    json_t *files = kl_configmap_files(src, status == 404 ? NULL : body, err, sizeof(err));
    if (files == NULL || write_files(kl, p, vol, files, err, sizeof(err)) < 0) {
        /* The pod waits (or keeps its last files when it runs already). */
        log_warn_rl(&rl_cm, "pod %s/%s: volume %s: %s", p->ns, p->name, js(vol, "volume"), err);
        p->cm_retry_at = loop_now_ms(kl->loop) + 2000;
        if (p->phase == KP_CREATING)
            p->cms_ok = false;
        json_decref(files);
        return;
    }
    json_decref(files);
    p->cm_next++;
    fetch_next(kl, p);
}

static void
fetch_next(struct kubelet *kl, struct kl_pod *p)
{
    const json_t *vol = NULL;
    const json_t *src = cm_at(p, p->cm_next, &vol);
    if (src == NULL) {
        if (!p->cms_ok)
            log_info("pod %s/%s: %zu configmap source(s) written", p->ns, p->name, p->cm_next);
        p->cms_ok = true;
        p->cm_refresh_at = loop_now_ms(kl->loop) + KL_CM_REFRESH_MS;
        return;
    }
    char *path = xasprintf("/api/v1/namespaces/%s/configmaps/%s", p->ns, js(src, "name"));
    p->cm_req = kube_request(kl->kc, "GET", path, NULL, NULL, 0, on_configmap, p);
    if (p->cm_req == NULL)
        p->cm_retry_at = loop_now_ms(kl->loop) + 2000;
    free(path);
}

bool
kl_configmaps_ready(struct kubelet *kl, struct kl_pod *p)
{
    uint64_t now = loop_now_ms(kl->loop);
    if (p->tokvols == NULL)
        p->tokvols = kl_token_volumes(p->pod);
    if (cm_at(p, 0, &(const json_t *){NULL}) == NULL)
        return true;
    bool refresh = p->cms_ok && now >= p->cm_refresh_at;
    if (p->cm_req == NULL && now >= p->cm_retry_at && (!p->cms_ok || refresh)) {
        if (refresh || cm_at(p, p->cm_next, &(const json_t *){NULL}) == NULL)
            p->cm_next = 0; /* a new round */
        fetch_next(kl, p);
    }
    return p->cms_ok;
}
