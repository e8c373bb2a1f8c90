/*
 * kubesrc.c - see kubesrc.h.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LOG_SCOPE "kube"
#include "kubesrc/kubesrc.h"
#include "log/log.h"

bool
kube_src_flag(struct kube_src_opts *o, int ch, const char *arg)
{
    switch (ch) {
    case KUBE_SRC_OPT_KUBECONFIG:
        o->kubeconfig = arg;
        return true;
    case KUBE_SRC_OPT_IN_CLUSTER:
        o->in_cluster = true;
        return true;
    default:
        return false;
    }
}

int
kube_src_finish(struct kube_src_opts *o, bool other_source, char *err, size_t errlen)
{
    if (o->kubeconfig != NULL && o->in_cluster) {
        snprintf(err, errlen, "--kubeconfig and --in-cluster exclude each other");
        return -1;
    }
    if (!other_source && o->kubeconfig == NULL && !o->in_cluster &&
        getenv("KUBERNETES_SERVICE_HOST") != NULL) {
        o->in_cluster = true;
        log_info("KUBERNETES_SERVICE_HOST is set and no config source given: --in-cluster");
    }
    return 0;
}

bool
kube_src_enabled(const struct kube_src_opts *o)
{
    return o->kubeconfig != NULL || o->in_cluster;
}

struct kube_client *
kube_src_client(struct loop *l, const struct kube_src_opts *o, char *err, size_t errlen)
{
    struct kube_config kc = {0};
    struct kube_client *c;
    char why[512];
    const char *what = o->kubeconfig ? o->kubeconfig : "--in-cluster";
    int rc = o->kubeconfig != NULL
                 ? kube_config_load_file(o->kubeconfig, NULL, &kc, why, sizeof(why))
                 : kube_config_in_cluster(NULL, &kc, why, sizeof(why));

    if (rc < 0) {
        snprintf(err, errlen, "%s: %s", what, why);
        kube_config_free(&kc);
        return NULL;
    }
    c = kube_client_new(l, &kc, why, sizeof(why));
    if (c == NULL)
        snprintf(err, errlen, "Kubernetes client for %s: %s", kc.server ? kc.server : "?", why);
    else
        log_info("Kubernetes API server %s (%s)", kc.server,
                 o->kubeconfig ? o->kubeconfig : "in-cluster");
    kube_config_free(&kc);
    return c;
}

bool
kube_src_object_name(const struct kube_resource *r, const json_t *obj, char *buf, size_t len)
{
    const json_t *meta = json_object_get(obj, "metadata");
    const char *name = json_string_value(json_object_get(meta, "name"));
    const char *ns = json_string_value(json_object_get(meta, "namespace"));
    int n;

    if (name == NULL || name[0] == '\0')
        return false;
    if (r->namespaced)
        n = snprintf(buf, len, "api:%s/%s/%s", r->kind, ns ? ns : "", name);
    else
        n = snprintf(buf, len, "api:%s/%s", r->kind, name);
    return n > 0 && (size_t)n < len;
}
