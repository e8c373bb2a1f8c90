/*
 * cluster_get.c - meshctl get, with kubectl's columns:
 *
 *   meshctl get pods|svc|ns|deploy|sa|ap|pa|... [NAME...] [-n NS | -A]
 *               [-o wide|yaml|json|name] [--show-labels]
 *
 * Pods: NAME READY STATUS RESTARTS AGE (wide: IP NODE NOMINATED NODE
 * READINESS GATES); STATUS and READY come from the pod's process (alive, or
 * how it ended), RESTARTS from its record.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/base.h"
#include "cluster.h"
#include "kcluster.h"
#include "meshctl.h"

#define GET_PAD 3

void
get_usage(FILE *f)
{
    fprintf(f, "Usage: meshctl get KIND [NAME...] [-n NAMESPACE | -A] [-o wide|yaml|json|name]\n"
               "                  [--show-labels]\n"
               "  KIND: pods (po), services (svc), namespaces (ns), deployments (deploy),\n"
               "  serviceaccounts (sa), authorizationpolicies, peerauthentications, gateways,\n"
               "  httproutes, grpcroutes, virtualservices.\n");
}

struct get_opts {
    const char *ns;
    bool all_ns, wide, labels;
    const char *output; /* NULL, "yaml", "json", "name" */
};

static int
cmp_rec(const void *a, const void *b)
{
    const json_t *x = *(const json_t *const *)a, *y = *(const json_t *const *)b;
    int c =
        strcmp(jsd(x, "object.metadata.namespace", ""), jsd(y, "object.metadata.namespace", ""));
    return c ? c : strcmp(jsd(x, "object.metadata.name", ""), jsd(y, "object.metadata.name", ""));
}

static char *
join_map(const json_t *m, const char *none)
{
    char *buf = NULL;
    size_t len;
    FILE *f = open_memstream(&buf, &len);
    const char *k;
    json_t *v;
    bool first = true;
    const char **keys = xcalloc(json_object_size(m) + 1, sizeof(*keys));
    size_t n = 0;
    json_object_foreach((json_t *)m, k, v)
        keys[n++] = k;
    for (size_t i = 1; i < n; i++)
        for (size_t j = i; j > 0 && strcmp(keys[j - 1], keys[j]) > 0; j--) {
            const char *t = keys[j];
            keys[j] = keys[j - 1];
            keys[j - 1] = t;
        }
    for (size_t i = 0; i < n; i++) {
        fprintf(f, "%s%s=%s", first ? "" : ",", keys[i], jsd(m, keys[i], ""));
        first = false;
    }
    free(keys);
    if (first)
        fputs(none, f);
    fclose(f);
    return buf;
}

static void
age_of(const json_t *obj, char *out, size_t outlen)
{
    long long t = cl_parse_rfc3339(jsd(obj, "metadata.creationTimestamp", ""));
    if (t < 0)
        snprintf(out, outlen, "<unknown>");
    else
        cl_age((long long)time(NULL) - t, out, outlen);
}

/* Running pods and pods of the current template, for a Deployment's columns. */
static void
deploy_counts(const struct cluster *c, const json_t *dep, int *ready, int *current, int *total)
{
    const char *ns = jsd(dep, "metadata.namespace", "");
    const char *name = jsd(dep, "metadata.name", "");
    char hash[11];
    json_t *pods = rec_list(c, kind_by_name("Pod"), ns);
    size_t i;
    json_t *r;

    cl_template_hash(jget(dep, "spec.template"), hash);
    *ready = *current = *total = 0;
    json_array_foreach(pods, i, r) {
        const char *pn = jsd(r, "object.metadata.name", "");
        json_t *run = pods_run_info(c, ns, pn);
        const char *owner = js(run, "owner");
        if (owner != NULL && strcmp(owner, name) == 0) {
            bool ok;
            pods_status(c, ns, pn, &ok);
            (*total)++;
            *ready += ok;
            *current += strcmp(jsd(r, "object.metadata.labels.pod-template-hash", ""), hash) == 0;
        }
        json_decref(run);
    }
    json_decref(pods);
}

/* One row's cells after NAMESPACE and NAME, into |cells|; returns how many. */
static size_t
row(const struct cluster *c, const struct kind_info *k, const json_t *obj, const struct get_opts *o,
    char cells[][512])
{
    size_t n = 0;
    char age[32];
    age_of(obj, age, sizeof(age));
    if (strcmp(k->kind, "Pod") == 0) {
        bool ready;
        const char *ns = jsd(obj, "metadata.namespace", ""), *name = jsd(obj, "metadata.name", "");
        const char *st = pods_status(c, ns, name, &ready);
        json_t *run = pods_run_info(c, ns, name);
        snprintf(cells[n++], 512, "%d/1", ready ? 1 : 0);
        snprintf(cells[n++], 512, "%s", st);
        snprintf(cells[n++], 512, "%lld",
                 (long long)json_integer_value(json_object_get(run, "restarts")));
        snprintf(cells[n++], 512, "%s", age);
        json_decref(run);
        if (o->wide) {
            snprintf(cells[n++], 512, "%s", jsd(obj, "status.podIP", "<none>"));
            snprintf(cells[n++], 512, "%s", jsd(obj, "spec.nodeName", "<none>"));
            snprintf(cells[n++], 512, "<none>");
            snprintf(cells[n++], 512, "<none>");
        }
    } else if (strcmp(k->kind, "Service") == 0) {
        char ports[512] = "";
        size_t i;
        json_t *p;
        json_array_foreach(jget(obj, "spec.ports"), i, p)
            snprintf(ports + strlen(ports), sizeof(ports) - strlen(ports), "%s%lld/%s",
                     i ? "," : "", (long long)json_integer_value(json_object_get(p, "port")),
                     jsd(p, "protocol", "TCP"));
        snprintf(cells[n++], 512, "%s", jsd(obj, "spec.type", "ClusterIP"));
        snprintf(cells[n++], 512, "%s", jsd(obj, "spec.clusterIP", "<none>"));
        snprintf(cells[n++], 512, "<none>");
        snprintf(cells[n++], 512, "%s", ports[0] ? ports : "<none>");
        snprintf(cells[n++], 512, "%s", age);
        if (o->wide) {
            char *sel = join_map(jget(obj, "spec.selector"), "<none>");
            snprintf(cells[n++], 512, "%s", sel);
            free(sel);
        }
    } else if (strcmp(k->kind, "Namespace") == 0) {
        snprintf(cells[n++], 512, "Active");
        snprintf(cells[n++], 512, "%s", age);
    } else if (strcmp(k->kind, "Deployment") == 0) {
        int ready, current, total;
        json_t *rv = jget(obj, "spec.replicas");
        long long want = json_is_integer(rv) ? json_integer_value(rv) : 1;
        deploy_counts(c, obj, &ready, &current, &total);
        snprintf(cells[n++], 512, "%d/%lld", ready, want);
        snprintf(cells[n++], 512, "%d", current);
        snprintf(cells[n++], 512, "%d", ready);
        snprintf(cells[n++], 512, "%s", age);
        if (o->wide) {
            const json_t *ctr = json_array_get(jget(obj, "spec.template.spec.containers"), 0);
            char *sel = join_map(jget(obj, "spec.selector.matchLabels"), "<none>");
            snprintf(cells[n++], 512, "%s", jsd(ctr, "name", "<none>"));
            snprintf(cells[n++], 512, "%s", jsd(ctr, "image", "<none>"));
            snprintf(cells[n++], 512, "%s", sel);
            free(sel);
        }
    } else {
        snprintf(cells[n++], 512, "%s", age);
    }
    if (o->labels) {
        char *l = join_map(jget(obj, "metadata.labels"), "<none>");
        snprintf(cells[n++], 512, "%s", l);
        free(l);
    }
    return n;
}

static size_t
header(const struct kind_info *k, const struct get_opts *o, const char **h)
{
    size_t n = 0;
    if (k->namespaced && o->all_ns)
        h[n++] = "NAMESPACE";
    h[n++] = "NAME";
    if (strcmp(k->kind, "Pod") == 0) {
        const char *c[] = {"READY", "STATUS", "RESTARTS", "AGE"};
        for (size_t i = 0; i < ARRAY_LEN(c); i++)
            h[n++] = c[i];
        if (o->wide) {
            h[n++] = "IP";
            h[n++] = "NODE";
            h[n++] = "NOMINATED NODE";
            h[n++] = "READINESS GATES";
        }
    } else if (strcmp(k->kind, "Service") == 0) {
        const char *c[] = {"TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"};
        for (size_t i = 0; i < ARRAY_LEN(c); i++)
            h[n++] = c[i];
        if (o->wide)
            h[n++] = "SELECTOR";
    } else if (strcmp(k->kind, "Namespace") == 0) {
        h[n++] = "STATUS";
        h[n++] = "AGE";
    } else if (strcmp(k->kind, "Deployment") == 0) {
        const char *c[] = {"READY", "UP-TO-DATE", "AVAILABLE", "AGE"};
        for (size_t i = 0; i < ARRAY_LEN(c); i++)
            h[n++] = c[i];
        if (o->wide) {
            h[n++] = "CONTAINERS";
            h[n++] = "IMAGES";
            h[n++] = "SELECTOR";
        }
    } else {
        h[n++] = "AGE";
    }
    if (o->labels)
        h[n++] = "LABELS";
    return n;
}

static void
print_objects(const json_t *objs, const struct kind_info *k, const struct get_opts *o, bool single)
{
    size_t i;
    json_t *obj;
    if (strcmp(o->output, "name") == 0) {
        json_array_foreach(objs, i, obj)
            printf("%s/%s\n", k->resource, jsd(obj, "metadata.name", ""));
        return;
    }
    json_t *out = single ? json_incref(json_array_get(objs, 0))
                         : json_pack("{s:s, s:O, s:s, s:{}}", "apiVersion", "v1", "items", objs,
                                     "kind", "List", "metadata");
    if (strcmp(o->output, "json") == 0) {
        char *s = json_dumps(out, JSON_INDENT(4) | JSON_SORT_KEYS);
        printf("%s\n", s ? s : "{}");
        free(s);
    } else {
        json_print_yaml(stdout, out);
    }
    json_decref(out);
}

int
get_main(int argc, char **argv)
{
    struct get_opts o = {.ns = "default"};
    const char *kind = NULL, *names[256];
    size_t n_names = 0;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if ((strcmp(a, "-n") == 0 || strcmp(a, "--namespace") == 0) && i + 1 < argc)
            o.ns = argv[++i];
        else if (strncmp(a, "--namespace=", 12) == 0)
            o.ns = a + 12;
        else if (strcmp(a, "-A") == 0 || strcmp(a, "--all-namespaces") == 0)
            o.all_ns = true;
        else if ((strcmp(a, "-o") == 0 || strcmp(a, "--output") == 0) && i + 1 < argc) {
            const char *v = argv[++i];
            if (strcmp(v, "wide") == 0)
                o.wide = true;
            else if (strcmp(v, "yaml") == 0 || strcmp(v, "json") == 0 || strcmp(v, "name") == 0)
                o.output = v;
            else {
                fprintf(stderr,
                        "error: unable to match a printer suitable for the output format "
                        "\"%s\", allowed formats are: json,name,wide,yaml\n",
                        v);
                return MESHCTL_EXIT_USAGE;
            }
        } else if (strcmp(a, "--show-labels") == 0)
            o.labels = true;
        else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            get_usage(stdout);
            return 0;
        } else if (a[0] == '-') {
            fprintf(stderr, "error: unknown flag: %s\n", a);
            return MESHCTL_EXIT_USAGE;
        } else if (kind == NULL)
            kind = a;
        else if (n_names < ARRAY_LEN(names))
            names[n_names++] = a;
    }
    if (kind == NULL) {
        get_usage(stderr);
        return MESHCTL_EXIT_USAGE;
    }
    char kbuf[128];
    snprintf(kbuf, sizeof(kbuf), "%s", kind);
    char *slash = strchr(kbuf, '/');
    if (slash != NULL) { /* get pod/NAME */
        *slash = '\0';
        if (n_names < ARRAY_LEN(names))
            names[n_names++] = kind + (slash - kbuf) + 1;
    }
    const struct kind_info *k = kind_by_alias(kbuf);
    if (k == NULL) {
        fprintf(stderr, "error: the server doesn't have a resource type \"%s\"\n", kbuf);
        return MESHCTL_EXIT_FAIL;
    }
    struct cluster c;
    if (cluster_open(&c, false) < 0 || kcluster_use_kubectl(&c, "get") != 0)
        return MESHCTL_EXIT_FAIL;
    json_t *recs = rec_list(&c, k, o.all_ns ? NULL : o.ns);
    json_t *objs = json_array();
    int rc = 0;
    if (n_names > 0) {
        for (size_t i = 0; i < n_names; i++) {
            json_t *r = rec_get(&c, k, o.ns, names[i]);
            if (r == NULL) {
                fprintf(stderr, "Error from server (NotFound): %s \"%s\" not found\n", k->plural,
                        names[i]);
                rc = MESHCTL_EXIT_FAIL;
            } else {
                json_array_append(objs, json_object_get(r, "object"));
                json_decref(r);
            }
        }
    } else {
        size_t n = json_array_size(recs);
        json_t **v = xcalloc(n + 1, sizeof(*v));
        for (size_t i = 0; i < n; i++)
            v[i] = json_array_get(recs, i);
        qsort(v, n, sizeof(*v), cmp_rec);
        for (size_t i = 0; i < n; i++)
            json_array_append(objs, json_object_get(v[i], "object"));
        free(v);
    }
    if (json_array_size(objs) == 0 && n_names == 0) {
        if (k->namespaced && !o.all_ns)
            fprintf(stderr, "No resources found in %s namespace.\n", o.ns);
        else
            fprintf(stderr, "No resources found\n");
    } else if (o.output != NULL) {
        print_objects(objs, k, &o, n_names == 1);
    } else if (json_array_size(objs) > 0) {
        const char *h[16];
        size_t nh = header(k, &o, h);
        struct table *t = table_new(nh, h);
        size_t i;
        json_t *obj;
        json_array_foreach(objs, i, obj) {
            char cells[16][512];
            const char *cp[16];
            size_t n = 0;
            if (k->namespaced && o.all_ns)
                snprintf(cells[n++], 512, "%s", jsd(obj, "metadata.namespace", ""));
            snprintf(cells[n++], 512, "%s", jsd(obj, "metadata.name", ""));
            n += row(&c, k, obj, &o, cells + n);
            for (size_t j = 0; j < n; j++)
                cp[j] = cells[j];
            table_add(t, cp);
        }
        table_print(t, stdout, GET_PAD);
        table_free(t);
    }
    json_decref(objs);
    json_decref(recs);
    cluster_close(&c);
    return rc;
}
