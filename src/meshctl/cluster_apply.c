/*
 * cluster_apply.c - meshctl apply -f / delete -f, as kubectl does them:
 *
 *   meshctl apply  -f FILE|DIR|- [-f ...] [-n NS]
 *   meshctl delete -f FILE|DIR|- [-f ...] [-n NS] [--ignore-not-found]
 *   meshctl delete KIND NAME... [-n NS] [--ignore-not-found]
 *
 * Every file is read and checked first (YAML, kinds, names, and meshd's own
 * parser for the kinds meshd reads); nothing changes when one is wrong.
 * Objects are then applied in order. A record keeps what was applied, so
 * applying the same file again is "unchanged"; labels and annotations merge
 * three ways (live, last applied, new), so a label set with `meshctl label`
 * survives an apply that does not mention it and one removed from the file
 * goes. Services get a ClusterIP from 198.19.0.0/16 as the API server gives
 * them (none when headless or ExternalName; "" or no clusterIP: a free one;
 * clusterIPs[0] when only that is given); a Pod whose spec
 * changed is re-created, a Deployment's pods follow its template.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/base.h"
#include "cluster.h"
#include "kcluster.h"
#include "k8s/k8s.h"
#include "meshctl.h"
#include "waypoint.h"

#define MAX_PATHS 256

void
apply_usage(FILE *f)
{
    fprintf(f, "Usage: meshctl apply -f FILE|DIR|- [-f ...] [-n NAMESPACE]\n"
               "  Creates or updates the objects in Kubernetes YAML files (a directory: its\n"
               "  *.yaml and *.yml files): Namespace, ServiceAccount, Service, Pod, Deployment,\n"
               "  AuthorizationPolicy, PeerAuthentication, Gateway, HTTPRoute, GRPCRoute,\n"
               "  VirtualService.\n");
}

void
delete_usage(FILE *f)
{
    fprintf(f,
            "Usage: meshctl delete -f FILE|DIR|- [-f ...] [-n NAMESPACE] [--ignore-not-found]\n"
            "       meshctl delete KIND NAME... [-n NAMESPACE] [--ignore-not-found]\n"
            "  Deletes objects (a Namespace with everything in it, a Deployment with its pods).\n");
}

/* metadata.|key| of the live object after a three-way merge. */
static void
merge_map(json_t *obj, const json_t *live, const json_t *old_applied, const json_t *applied,
          const char *key)
{
    char path[64];
    snprintf(path, sizeof(path), "metadata.%s", key);
    json_t *m = json_deep_copy(jget(live, path));
    if (!json_is_object(m)) {
        json_decref(m);
        m = json_object();
    }
    const json_t *was = jget(old_applied, path), *now = jget(applied, path);
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)was, k, v)
        if (json_object_get(now, k) == NULL)
            json_object_del(m, k);
    json_object_foreach((json_t *)now, k, v)
        json_object_set(m, k, v);
    if (json_object_size(m) > 0)
        json_object_set_new(jobj(obj, "metadata"), key, m);
    else {
        json_object_del(jobj(obj, "metadata"), key);
        json_decref(m);
    }
}

/*
 * A Service's ClusterIP as the API server assigns it (cl_service_vip): none
 * when headless or ExternalName; the requested one when valid and free;
 * else the one it had, or a free one. Returns 0 or -1.
 */
static int
cluster_ip(const struct cluster *c, json_t *obj, const json_t *rec, char *err, size_t errlen)
{
    const char *had = js(rec, "object.spec.clusterIP");
    char want[64], ip[32];

    enum cl_vip_want w = cl_service_vip(json_object_get(obj, "spec"), want, sizeof(want));
    if (w == CL_VIP_NONE)
        return 0;
    if (w == CL_VIP_ALLOCATE && had != NULL && cl_vip_index(had) >= 0) {
        snprintf(ip, sizeof(ip), "%s", had);
    } else {
        json_t *svcs = rec_list(c, kind_by_name("Service"), NULL);
        bool *used = xcalloc(65536, sizeof(bool));
        size_t i;
        json_t *s;
        json_array_foreach(svcs, i, s) {
            int idx = cl_vip_index(jsd(s, "object.spec.clusterIP", ""));
            bool self = js(s, "object.metadata.uid") && js(rec, "object.metadata.uid") &&
                        strcmp(js(s, "object.metadata.uid"), js(rec, "object.metadata.uid")) == 0;
            if (idx >= 0 && !self)
                used[idx] = true;
        }
        json_decref(svcs);
        int idx = -1;
        if (w == CL_VIP_REQUESTED) {
            idx = cl_vip_index(want);
            if (idx < 0 || used[idx]) {
                snprintf(err, errlen, "spec.clusterIP: Invalid value: \"%s\": %s", want,
                         idx < 0
                             ? "provided IP is not in the valid range 198.19.0.10-198.19.255.254"
                             : "provided IP is already allocated");
                free(used);
                return -1;
            }
        } else {
            for (int i2 = 0; i2 < 65525 && idx < 0; i2++)
                if (!used[i2])
                    idx = i2;
        }
        free(used);
        if (idx < 0) {
            snprintf(err, errlen, "no ClusterIP left in 198.19.0.0/16");
            return -1;
        }
        cl_vip_from_index((unsigned)idx, ip, sizeof(ip));
    }
    json_t *spec = jobj(obj, "spec");
    json_object_set_new(spec, "clusterIP", json_string(ip));
    json_object_set_new(spec, "clusterIPs", json_pack("[s]", ip));
    if (js(spec, "type") == NULL)
        json_object_set_new(spec, "type", json_string("ClusterIP"));
    return 0;
}

/* The controllers of the local cluster: what changing |k| makes happen beyond its record. */
static int
after_put(struct cluster *c, const struct kind_info *k, const json_t *rec, char *err,
          size_t errlen)
{
    if (strcmp(k->kind, "Deployment") == 0)
        return pods_reconcile_deployment(c, rec, err, errlen);
    if (strcmp(k->kind, "Gateway") == 0)
        return wp_reconcile(c, json_object_get(rec, "object"), err, errlen);
    return 0;
}

int
apply_object(struct cluster *c, const struct kind_info *k, const json_t *in, const char *ns,
             const char *name, const char **verb, char *err, size_t errlen)
{
    char uid[64], now[32];
    json_t *applied = json_deep_copy(in);
    json_t *rec = rec_get(c, k, ns, name);
    const json_t *old_applied = json_object_get(rec, "applied");
    const json_t *live = json_object_get(rec, "object");
    int rc = 0;

    *verb = rec ? "configured" : "created";
    if (k->namespaced)
        json_object_set_new(jobj(applied, "metadata"), "namespace", json_string(ns));
    if (rec != NULL && json_equal(old_applied, applied)) {
        /* As its controller would: replicas that are missing come back. */
        *verb = "unchanged";
        rc = after_put(c, k, rec, err, errlen);
    } else if (strcmp(k->kind, "Pod") == 0 && rec != NULL &&
               json_equal(jget(old_applied, "spec"), jget(applied, "spec"))) {
        /* Metadata only: the pod keeps running; mesh-cni sees its new labels. */
        json_t *obj = json_deep_copy(live);
        merge_map(obj, live, old_applied, applied, "labels");
        merge_map(obj, live, old_applied, applied, "annotations");
        /* Where the pod's namespace is stays ours to say (annotation keys hold dots). */
        json_t *netns = json_object_get(jget(live, "metadata.annotations"), K8S_ANNOTATION_NETNS);
        if (netns != NULL)
            json_object_set(jobj(obj, "metadata.annotations"), K8S_ANNOTATION_NETNS, netns);
        json_t *nrec = json_pack("{s:O, s:o}", "applied", applied, "object", obj);
        rc = rec_put(c, k, nrec) < 0 ? -1 : 0;
        json_decref(nrec);
    } else if (strcmp(k->kind, "Pod") == 0) {
        if (rec != NULL)
            pods_delete(c, ns, name);
        json_t *pod = json_deep_copy(applied);
        json_object_del(pod, "status");
        rc = pods_create(c, pod, applied, NULL, err, errlen);
        json_decref(pod);
    } else {
        json_t *obj = json_deep_copy(applied);
        json_t *meta = jobj(obj, "metadata");
        if (live != NULL) {
            snprintf(uid, sizeof(uid), "%s", jsd(live, "metadata.uid", ""));
            snprintf(now, sizeof(now), "%s", jsd(live, "metadata.creationTimestamp", ""));
            merge_map(obj, live, old_applied, applied, "labels");
            merge_map(obj, live, old_applied, applied, "annotations");
        } else {
            sys_uid(uid);
            cl_rfc3339((long long)time(NULL), now, sizeof(now));
        }
        json_object_set_new(meta, "uid", json_string(uid));
        json_object_set_new(meta, "creationTimestamp", json_string(now));
        if (strcmp(k->kind, "Service") == 0 && cluster_ip(c, obj, rec, err, errlen) < 0)
            rc = -1;
        if (rc == 0) {
            json_t *nrec = json_pack("{s:O, s:O}", "applied", applied, "object", obj);
            rc = rec_put(c, k, nrec) < 0 ? -1 : 0;
            if (rc < 0)
                snprintf(err, errlen, "%s", strerror(errno));
            else
                rc = after_put(c, k, nrec, err, errlen);
            json_decref(nrec);
        }
        json_decref(obj);
    }
    if (rc < 0 && err[0] == '\0')
        snprintf(err, errlen, "%s", strerror(errno));
    json_decref(applied);
    json_decref(rec);
    return rc;
}

/* Applies one object; prints kubectl's line. Returns 0 or -1. */
static int
apply_one(struct cluster *c, const struct kind_info *k, const json_t *in, const char *ns,
          const char *name, const char *file)
{
    char err[1024] = "";
    const char *verb;

    if (k->namespaced && !rec_exists(c, kind_by_name("Namespace"), "", ns)) {
        fprintf(stderr,
                "Error from server (NotFound): error when creating \"%s\": namespaces "
                "\"%s\" not found\n",
                file, ns);
        return -1;
    }
    if (apply_object(c, k, in, ns, name, &verb, err, sizeof(err)) < 0) {
        fprintf(stderr, "Error from server: error when applying \"%s\": %s/%s: %s\n", file,
                k->resource, name, err);
        return -1;
    }
    printf("%s/%s %s\n", k->resource, name, verb);
    return 0;
}

int
delete_object(struct cluster *c, const struct kind_info *k, const char *ns, const char *name,
              bool quiet)
{
    json_t *rec = rec_get(c, k, ns, name);
    char err[512];
    int rc = 0;

    if (rec == NULL)
        return 1;
    if (strcmp(k->kind, "Namespace") == 0) {
        /* Everything in it: Deployments (with their pods) first, then the rest. */
        static const char *const order[] = {
            "Deployment",         "Pod",     "Service",   "ServiceAccount", "AuthorizationPolicy",
            "PeerAuthentication", "Gateway", "HTTPRoute", "GRPCRoute", "VirtualService"};
        for (size_t i = 0; i < ARRAY_LEN(order); i++) {
            const struct kind_info *ki = kind_by_name(order[i]);
            json_t *all = rec_list(c, ki, name);
            size_t j;
            json_t *r;
            json_array_foreach(all, j, r)
                delete_object(c, ki, name, jsd(r, "object.metadata.name", ""), true);
            json_decref(all);
        }
        rec_del(c, k, "", name);
    } else if (strcmp(k->kind, "Deployment") == 0) {
        rec_del(c, k, ns, name); /* first, so nothing reconciles it back */
        pods_delete_owned(c, ns, name);
    } else if (strcmp(k->kind, "Pod") == 0) {
        json_t *run = pods_run_info(c, ns, name);
        char *owner = js(run, "owner") ? xstrdup(js(run, "owner")) : NULL;
        json_decref(run);
        rc = pods_delete(c, ns, name);
        /* A ReplicaSet would replace it. */
        json_t *dep = owner ? rec_get(c, kind_by_name("Deployment"), ns, owner) : NULL;
        if (dep != NULL && pods_reconcile_deployment(c, dep, err, sizeof(err)) < 0)
            fprintf(stderr, "Warning: replacing the pod of deployment %s: %s\n", owner, err);
        json_decref(dep);
        free(owner);
    } else if (strcmp(k->kind, "Gateway") == 0) {
        rec_del(c, k, ns, name);
        wp_collect(c, ns, name, NULL);
    } else {
        rec_del(c, k, ns, name);
    }
    if (!quiet)
        printf("%s \"%s\" deleted\n", k->resource, name);
    json_decref(rec);
    return rc < 0 ? -1 : 0;
}

struct flags {
    const char *paths[MAX_PATHS];
    size_t n_paths;
    const char *operands[MAX_PATHS];
    size_t n_operands;
    const char *ns;
    bool ns_given, ignore_nf;
};

/* Flags shared by apply and delete. Returns 0, or -1 on bad usage (printed). */
static int
parse_flags(int argc, char **argv, struct flags *f, bool deleting, void (*usage)(FILE *))
{
    f->ns = "default";
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if ((strcmp(a, "-f") == 0 || strcmp(a, "--filename") == 0) && i + 1 < argc) {
            if (f->n_paths == MAX_PATHS)
                return -1;
            f->paths[f->n_paths++] = argv[++i];
        } else if (strncmp(a, "--filename=", 11) == 0 && f->n_paths < MAX_PATHS) {
            f->paths[f->n_paths++] = a + 11;
        } else if ((strcmp(a, "-n") == 0 || strcmp(a, "--namespace") == 0) && i + 1 < argc) {
            f->ns = argv[++i];
            f->ns_given = true;
        } else if (strncmp(a, "--namespace=", 12) == 0) {
            f->ns = a + 12;
            f->ns_given = true;
        } else if (strcmp(a, "--ignore-not-found") == 0 && deleting) {
            f->ignore_nf = true;
        } else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage(stdout);
            exit(0);
        } else if (a[0] == '-') {
            fprintf(stderr, "error: unknown flag: %s\n", a);
            usage(stderr);
            return -1;
        } else if (f->n_operands < MAX_PATHS) {
            f->operands[f->n_operands++] = a;
        }
    }
    return 0;
}

int
apply_main(int argc, char **argv)
{
    struct flags fl = {0};
    if (parse_flags(argc, argv, &fl, false, apply_usage) < 0)
        return MESHCTL_EXIT_USAGE;
    if (fl.n_operands > 0 || fl.n_paths == 0) {
        if (fl.n_operands > 0)
            fprintf(stderr, "error: unexpected argument \"%s\"\n", fl.operands[0]);
        else
            fprintf(stderr, "error: must specify -f\n");
        apply_usage(stderr);
        return MESHCTL_EXIT_USAGE;
    }
    const char *ns = fl.ns;
    bool ns_given = fl.ns_given;
    struct input in = {.docs = json_array()};
    for (size_t i = 0; i < fl.n_paths; i++)
        manifest_read(&in, fl.paths[i]);
    size_t i;
    json_t *d;
    json_array_foreach(in.docs, i, d) {
        const char *dns, *name;
        if (manifest_identify(json_object_get(d, "obj"), js(d, "file"), ns, ns_given, &dns,
                              &name) == NULL)
            in.errors++;
    }
    if (in.errors > 0 || json_array_size(in.docs) == 0) {
        if (in.errors == 0)
            fprintf(stderr, "error: no objects passed to apply\n");
        json_decref(in.docs);
        return MESHCTL_EXIT_FAIL;
    }
    struct cluster c;
    if (cluster_open(&c, true) < 0) {
        json_decref(in.docs);
        return MESHCTL_EXIT_FAIL;
    }
    if (kcluster_use_kubectl(&c, "apply") != 0) {
        json_decref(in.docs);
        return MESHCTL_EXIT_FAIL;
    }
    int failed = 0;
    json_array_foreach(in.docs, i, d) {
        const char *dns, *name;
        const json_t *o = json_object_get(d, "obj");
        const struct kind_info *k = manifest_identify(o, js(d, "file"), ns, ns_given, &dns, &name);
        if (apply_one(&c, k, o, dns, name, js(d, "file")) < 0)
            failed = 1;
        fflush(stdout);
    }
    cluster_sync(&c);
    cluster_close(&c);
    json_decref(in.docs);
    return failed ? MESHCTL_EXIT_FAIL : 0;
}

int
delete_main(int argc, char **argv)
{
    struct flags fl = {0};
    if (parse_flags(argc, argv, &fl, true, delete_usage) < 0)
        return MESHCTL_EXIT_USAGE;
    if ((fl.n_paths > 0) == (fl.n_operands > 0) ||
        (fl.n_operands == 1 && strchr(fl.operands[0], '/') == NULL)) {
        fprintf(stderr, "error: give -f FILE, or KIND NAME..., or KIND/NAME...\n");
        delete_usage(stderr);
        return MESHCTL_EXIT_USAGE;
    }
    const char *ns = fl.ns;
    bool ns_given = fl.ns_given, ignore_nf = fl.ignore_nf;
    struct input in = {.docs = json_array()};
    for (size_t i = 0; i < fl.n_paths; i++)
        manifest_read(&in, fl.paths[i]);
    /* KIND NAME... (kubectl's "delete pod a b"), or KIND/NAME... */
    const struct kind_info *kk = NULL;
    for (size_t i = 0; i < fl.n_operands; i++) {
        const char *op = fl.operands[i], *slash = strchr(op, '/'), *name = op;
        char kind[128];
        if (slash != NULL || i == 0) {
            snprintf(kind, sizeof(kind), "%.*s", slash ? (int)(slash - op) : (int)strlen(op), op);
            kk = kind_by_alias(kind);
            if (kk == NULL) {
                fprintf(stderr, "error: the server doesn't have a resource type \"%s\"\n", kind);
                json_decref(in.docs);
                return MESHCTL_EXIT_FAIL;
            }
            if (slash == NULL)
                continue;
            name = slash + 1;
        }
        char *api = kk->group[0] ? xasprintf("%s/v1", kk->group) : xstrdup("v1");
        json_t *o = json_pack("{s:s, s:s, s:{s:s}}", "apiVersion", api, "kind", kk->kind,
                              "metadata", "name", name);
        free(api);
        json_array_append_new(in.docs, json_pack("{s:s, s:o}", "file", "", "obj", o));
    }
    size_t i;
    json_t *d;
    json_array_foreach(in.docs, i, d) {
        const char *dns, *name;
        if (manifest_identify(json_object_get(d, "obj"), js(d, "file"), ns, ns_given, &dns,
                              &name) == NULL)
            in.errors++;
    }
    if (in.errors > 0) {
        json_decref(in.docs);
        return MESHCTL_EXIT_FAIL;
    }
    struct cluster c;
    if (cluster_open(&c, true) < 0) {
        json_decref(in.docs);
        return MESHCTL_EXIT_FAIL;
    }
    if (kcluster_use_kubectl(&c, "delete") != 0) {
        json_decref(in.docs);
        return MESHCTL_EXIT_FAIL;
    }
    int failed = 0;
    json_array_foreach(in.docs, i, d) {
        const char *dns, *name;
        const json_t *o = json_object_get(d, "obj");
        const struct kind_info *k = manifest_identify(o, js(d, "file"), ns, ns_given, &dns, &name);
        if (strcmp(k->kind, "Namespace") == 0 && strcmp(name, "default") == 0) {
            fprintf(stderr, "Error from server (Forbidden): namespaces \"default\" is forbidden: "
                            "this namespace may not be deleted\n");
            failed = 1;
            continue;
        }
        int rc = delete_object(&c, k, dns, name, false);
        if (rc == 1 && !ignore_nf) {
            const char *f = js(d, "file");
            fprintf(stderr, "Error from server (NotFound): %s%s%s%s \"%s\" not found\n",
                    f[0] ? "error when deleting \"" : "", f, f[0] ? "\": " : "", k->plural, name);
            failed = 1;
        } else if (rc < 0) {
            failed = 1;
        }
        fflush(stdout);
    }
    cluster_sync(&c);
    cluster_close(&c);
    json_decref(in.docs);
    return failed ? MESHCTL_EXIT_FAIL : 0;
}
