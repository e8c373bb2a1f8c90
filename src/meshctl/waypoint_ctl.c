/*
 * waypoint_ctl.c - the local cluster's stand-in for istiod's deployment controller: a waypoint
 * Gateway gets the ServiceAccount, Deployment and Service waypoint_render.c describes, they
 * follow the Gateway when it changes and go with it, and its Programmed condition is read from
 * the replicas' readiness (a pod is ready when its readinessProbe answers, cluster_pods.c).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "cluster.h"
#include "waypoint.h"

static const char *const owned_kinds[] = {"Deployment", "Service", "ServiceAccount"};

static bool
kept(const json_t *keep, const char *kind, const char *name)
{
    size_t i;
    json_t *v;
    json_array_foreach(keep, i, v)
        if (strcmp(jsd(v, "kind", ""), kind) == 0 && strcmp(jsd(v, "metadata.name", ""), name) == 0)
            return true;
    return false;
}

void
wp_collect(struct cluster *c, const char *ns, const char *name, const json_t *keep)
{
    for (size_t i = 0; i < ARRAY_LEN(owned_kinds); i++) {
        const struct kind_info *k = kind_by_name(owned_kinds[i]);
        json_t *all = rec_list(c, k, ns);
        size_t j;
        json_t *r;
        json_array_foreach(all, j, r) {
            const json_t *obj = json_object_get(r, "object");
            const char *n = jsd(obj, "metadata.name", "");
            if (wp_owned_by(obj, name) && !kept(keep, k->kind, n))
                delete_object(c, k, ns, n, true);
        }
        json_decref(all);
    }
}

int
wp_reconcile(struct cluster *c, const json_t *gw, char *err, size_t errlen)
{
    const char *ns = jsd(gw, "metadata.namespace", ""), *name = jsd(gw, "metadata.name", "");
    const struct wp_env env = {
        .creds = WP_CREDS_LOCAL, .cluster_dir = c->dir, .xds_address = CLUSTER_MESHD_XDS};
    size_t i;
    json_t *o;
    int rc = 0;

    if (!wp_is_waypoint(gw)) {
        wp_collect(c, ns, name, NULL);
        return 0;
    }
    json_t *objs = wp_render(gw, &env);
    if (objs == NULL) {
        snprintf(err, errlen, "annotation %s: want a number of replicas in [0, %d]",
                 WP_ANNOTATION_REPLICAS, WP_MAX_REPLICAS);
        return -1;
    }
    json_array_foreach(objs, i, o) {
        const struct kind_info *k = kind_by_name(js(o, "kind"));
        const char *on = js(o, "metadata.name"), *verb;
        json_t *cur = rec_get(c, k, ns, on);
        bool foreign = cur != NULL && !wp_owned_by(json_object_get(cur, "object"), name);
        json_decref(cur);
        if (foreign) {
            /* istiod would not take over an object it did not make either. */
            if (strcmp(k->kind, "ServiceAccount") == 0)
                continue;
            snprintf(err, errlen, "%s %s/%s exists and is not owned by gateway %s", k->resource,
                     ns, on, name);
            rc = -1;
            break;
        }
        if (apply_object(c, k, o, ns, on, &verb, err, errlen) < 0) {
            rc = -1;
            break;
        }
    }
    if (rc == 0)
        wp_collect(c, ns, name, objs);
    json_decref(objs);
    return rc;
}

bool
wp_programmed(const struct cluster *c, const json_t *gw, char *reason, size_t reasonlen,
              char *msg, size_t msglen)
{
    const char *ns = jsd(gw, "metadata.namespace", "");
    const char *dname = wp_deployment_name(gw);
    json_t *pods = rec_list(c, kind_by_name("Pod"), ns);
    /* The local cluster reconciles the Service with the Deployment: it is there. */
    struct wp_facts f = {.service = true, .deployment = true};
    size_t i;
    json_t *r;

    if (dname == NULL)
        dname = "";
    json_array_foreach(pods, i, r) {
        const char *pn = jsd(r, "object.metadata.name", "");
        json_t *run = pods_run_info(c, ns, pn);
        const char *owner = js(run, "owner");
        if (owner != NULL && strcmp(owner, dname) == 0) {
            bool ok;
            pods_status(c, ns, pn, &ok);
            f.replicas++;
            f.ready += ok;
        }
        json_decref(run);
    }
    json_decref(pods);
    return wp_condition_programmed(gw, &f, reason, reasonlen, msg, msglen);
}
