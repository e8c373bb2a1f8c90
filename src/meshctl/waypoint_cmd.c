/*
 * waypoint_cmd.c - meshctl waypoint, with istioctl's flags, lines and columns:
 *
 *   meshctl waypoint generate [-n NS] [--name N] [--for T] [-r REV]
 *   meshctl waypoint apply    [-n NS] [--name N] [--for T] [-r REV] [--enroll-namespace
 *                             [--overwrite]] [-w|--wait] [--waypoint-timeout 90s] [--replicas N]
 *   meshctl waypoint list     [-n NS | -A]
 *   meshctl waypoint status   [-n NS | -A] [-w] [--waypoint-timeout 90s]
 *   meshctl waypoint delete   NAME... | --all [-r REV] [-n NS]
 *
 * generate needs nothing; the others work on the local cluster, where applying the Gateway
 * deploys the waypoint (waypoint_ctl.c). One difference from istioctl: list's TRAFFIC TYPE is
 * the type in effect ("service" for a Gateway without istio.io/waypoint-for), not "none".
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "cluster.h"
#include "meshctl.h"
#include "waypoint.h"

#define WP_WAIT_DEFAULT_S 90

struct wp_flags {
    const char *ns, *name, *for_type, *revision;
    bool ns_given, all_ns, enroll, overwrite, wait, all;
    int timeout_s, replicas; /* replicas -1: not given */
    const char *names[64];
    size_t n_names;
};

void
waypoint_usage(FILE *f)
{
    fprintf(f,
            "Usage: meshctl waypoint generate|apply|list|status|delete [FLAGS]\n"
            "  generate  [--name N] [--for service|workload|all|none] [-r REV] [-n NS]\n"
            "            print the waypoint Gateway as YAML\n"
            "  apply     [--name N] [--for T] [-r REV] [-n NS] [--enroll-namespace [--overwrite]]\n"
            "            [-w|--wait] [--waypoint-timeout 90s] [--replicas N]\n"
            "            create or update the waypoint (the local cluster deploys it);\n"
            "            --enroll-namespace labels the namespace istio.io/use-waypoint=N\n"
            "  list      [-n NS | -A]   NAME REVISION TRAFFIC TYPE PROGRAMMED\n"
            "  status    [-n NS | -A] [-w] [--waypoint-timeout 90s]\n"
            "  delete    NAME... | --all [-r REV] [-n NS]\n"
            "  --name defaults to \"waypoint\" (\"none\" is reserved), -n to \"default\".\n");
}

/* "90s", "2m", "1h" or plain seconds; -1 when malformed. */
static int
parse_duration_s(const char *s)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (end == s || v < 0 || v > 86400)
        return -1;
    if (*end == '\0' || strcmp(end, "s") == 0)
        return (int)v;
    if (strcmp(end, "m") == 0)
        return (int)v * 60;
    if (strcmp(end, "h") == 0 && v <= 24)
        return (int)v * 3600;
    return -1;
}

/* Returns 0, or MESHCTL_EXIT_USAGE (printed). */
static int
parse_flags(int argc, char **argv, struct wp_flags *f)
{
    f->ns = "default";
    f->name = WP_DEFAULT_NAME;
    f->timeout_s = WP_WAIT_DEFAULT_S;
    f->replicas = -1;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
#define TAKES(l) (strcmp(a, l) == 0 && v != NULL && ++i)
        if (TAKES("--namespace") || TAKES("-n")) {
            f->ns = v;
            f->ns_given = true;
        } else if (TAKES("--name")) {
            f->name = v;
        } else if (TAKES("--for")) {
            f->for_type = v;
        } else if (TAKES("--revision") || TAKES("-r")) {
            f->revision = v;
        } else if (TAKES("--waypoint-timeout")) {
            if ((f->timeout_s = parse_duration_s(v)) < 0) {
                fprintf(stderr, "Error: invalid argument \"%s\" for \"--waypoint-timeout\"\n", v);
                return MESHCTL_EXIT_USAGE;
            }
        } else if (TAKES("--replicas")) {
            char *end;
            long r = strtol(v, &end, 10);
            if (*end != '\0' || end == v || r < 0 || r > WP_MAX_REPLICAS) {
                fprintf(stderr, "Error: --replicas: a number in [0, %d]\n", WP_MAX_REPLICAS);
                return MESHCTL_EXIT_USAGE;
            }
            f->replicas = (int)r;
        } else if (strcmp(a, "-A") == 0 || strcmp(a, "--all-namespaces") == 0) {
            f->all_ns = true;
        } else if (strcmp(a, "--enroll-namespace") == 0) {
            f->enroll = true;
        } else if (strcmp(a, "--overwrite") == 0) {
            f->overwrite = true;
        } else if (strcmp(a, "-w") == 0 || strcmp(a, "--wait") == 0) {
            f->wait = true;
        } else if (strcmp(a, "--all") == 0) {
            f->all = true;
        } else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            waypoint_usage(stdout);
            exit(0);
        } else if (a[0] == '-') {
            fprintf(stderr, "Error: unknown flag: %s\n", a);
            return MESHCTL_EXIT_USAGE;
        } else if (f->n_names < ARRAY_LEN(f->names)) {
            f->names[f->n_names++] = a;
        }
#undef TAKES
    }
    if (f->name[0] == '\0')
        f->name = WP_DEFAULT_NAME;
    if (strcmp(f->name, "none") == 0) {
        fprintf(stderr, "Error: failed to create gateway: invalid name provided for waypoint, "
                        "'none' is a reserved value\n");
        return MESHCTL_EXIT_USAGE;
    }
    if (f->for_type != NULL && !wp_valid_traffic_type(f->for_type)) {
        fprintf(stderr,
                "Error: failed to create gateway: invalid traffic type: %s. Valid options are: "
                "[all none service workload]\n",
                f->for_type);
        return MESHCTL_EXIT_USAGE;
    }
    return 0;
}

static int
generate(const struct wp_flags *f)
{
    json_t *gw = wp_gateway(f->ns_given ? f->ns : NULL, f->name, f->for_type, f->revision);
    json_print_yaml(stdout, gw);
    json_decref(gw);
    return 0;
}

/* Waypoint Gateways in |ns| (NULL: all), sorted; *any_gw says whether any Gateway exists. */
static json_t *
waypoints(const struct cluster *c, const char *ns, bool *any_gw)
{
    json_t *all = rec_list(c, kind_by_name("Gateway"), ns), *out = json_array();
    size_t i;
    json_t *r;
    *any_gw = json_array_size(all) > 0;
    json_array_foreach(all, i, r)
        if (wp_is_waypoint(json_object_get(r, "object")))
            json_array_append(out, json_object_get(r, "object"));
    json_decref(all);
    return out;
}

static bool
is_programmed(const char *ns, const char *name)
{
    struct cluster c;
    char reason[64], msg[512];
    bool ok = false;
    if (cluster_open(&c, false) < 0)
        return false;
    json_t *rec = rec_get(&c, kind_by_name("Gateway"), ns, name);
    if (rec != NULL)
        ok = wp_programmed(&c, json_object_get(rec, "object"), reason, sizeof(reason), msg,
                           sizeof(msg));
    json_decref(rec);
    cluster_close(&c);
    return ok;
}

/* Sets istio.io/use-waypoint on namespace |ns|. Returns 0 or -1 (printed). */
static int
label_namespace(struct cluster *c, const char *ns, const char *name)
{
    const struct kind_info *k = kind_by_name("Namespace");
    json_t *rec = rec_get(c, k, "", ns);
    int rc = -1;
    if (rec != NULL) {
        json_object_set_new(jobj(json_object_get(rec, "object"), "metadata.labels"), WP_LABEL_USE,
                            json_string(name));
        rc = rec_put(c, k, rec);
        if (rc < 0)
            fprintf(stderr, "Error: failed to label namespace with waypoint: %s\n",
                    strerror(errno));
    }
    json_decref(rec);
    return rc < 0 ? -1 : 0;
}

static int
apply(const struct wp_flags *f)
{
    struct cluster c;
    char err[1024] = "";
    const char *verb;

    if (cluster_open(&c, true) < 0)
        return MESHCTL_EXIT_FAIL;
    json_t *nsrec = rec_get(&c, kind_by_name("Namespace"), "", f->ns);
    if (nsrec == NULL) {
        fprintf(stderr, "Error: namespace: %s not found\n", f->ns);
        cluster_close(&c);
        return MESHCTL_EXIT_FAIL;
    }
    const json_t *labels = jget(json_object_get(nsrec, "object"), "metadata.labels");
    /* Label keys hold dots: json_object_get, not the dotted-path accessors. */
    const char *use = json_string_value(json_object_get(labels, WP_LABEL_USE));
    const char *mode = json_string_value(json_object_get(labels, "istio.io/dataplane-mode"));
    bool has_wp = use != NULL && use[0] != '\0';
    bool ambient = mode != NULL && strcmp(mode, "ambient") == 0;
    json_decref(nsrec);
    if (f->enroll && has_wp && !f->overwrite) {
        printf("⚠️ Warning: namespace (%s) already has an enrolled Waypoint. Consider adding "
               "the `--overwrite` flag to your apply command.\n",
               f->ns);
        cluster_close(&c);
        return 0;
    }
    if (f->enroll && !ambient)
        printf("⚠️ Warning: namespace is not enrolled in ambient. Consider running\t`meshctl "
               "label namespace %s istio.io/dataplane-mode=ambient`\n",
               f->ns);

    json_t *gw = wp_gateway(f->ns, f->name, f->for_type, f->revision);
    if (f->replicas >= 0) {
        char n[16];
        snprintf(n, sizeof(n), "%d", f->replicas);
        json_object_set_new(jobj(gw, "metadata.annotations"), WP_ANNOTATION_REPLICAS,
                            json_string(n));
    }
    int rc = apply_object(&c, kind_by_name("Gateway"), gw, f->ns, f->name, &verb, err,
                          sizeof(err));
    json_decref(gw);
    if (rc < 0) {
        fprintf(stderr, "Error: applying waypoint %s/%s: %s\n", f->ns, f->name, err);
        cluster_sync(&c);
        cluster_close(&c);
        return MESHCTL_EXIT_FAIL;
    }
    cluster_sync(&c);
    cluster_close(&c); /* no lock held while waiting */
    printf("✅ waypoint %s/%s applied\n", f->ns, f->name);
    fflush(stdout);

    if (f->wait) {
        uint64_t deadline = clock_mono_ms() + (uint64_t)f->timeout_s * 1000;
        while (!is_programmed(f->ns, f->name)) {
            if (clock_mono_ms() >= deadline) {
                fprintf(stderr, "Error: timed out while waiting for waypoint\t%s/%s\n", f->ns,
                        f->name);
                return MESHCTL_EXIT_FAIL;
            }
            sys_sleep_ms(1000);
        }
        printf("✅ waypoint %s/%s is ready!\n", f->ns, f->name);
        fflush(stdout);
    }
    if (f->enroll) {
        if (cluster_open(&c, true) < 0)
            return MESHCTL_EXIT_FAIL;
        rc = label_namespace(&c, f->ns, f->name);
        cluster_sync(&c);
        cluster_close(&c);
        if (rc < 0)
            return MESHCTL_EXIT_FAIL;
        printf("✅ namespace %s labeled with \"%s: %s\"\n", f->ns, WP_LABEL_USE, f->name);
    }
    return 0;
}

static int
list(const struct wp_flags *f)
{
    struct cluster c;
    bool any;
    if (cluster_open(&c, false) < 0)
        return MESHCTL_EXIT_FAIL;
    json_t *gws = waypoints(&c, f->all_ns ? NULL : f->ns, &any);
    if (!any) {
        printf("No waypoints found.\n");
    } else {
        static const char *const hdr_all[] = {"NAMESPACE", "NAME", "REVISION", "TRAFFIC TYPE",
                                              "PROGRAMMED"};
        struct table *t = table_new(f->all_ns ? 5 : 4, f->all_ns ? hdr_all : hdr_all + 1);
        size_t i;
        json_t *gw;
        json_array_foreach(gws, i, gw) {
            char reason[64], msg[512];
            bool p = wp_programmed(&c, gw, reason, sizeof(reason), msg, sizeof(msg));
            const char *rev = json_string_value(
                json_object_get(jget(gw, "metadata.labels"), "istio.io/rev"));
            const char *cells[] = {jsd(gw, "metadata.namespace", ""), jsd(gw, "metadata.name", ""),
                                   rev != NULL ? rev : "default",
                                   wp_traffic_type(gw), p ? "True" : "False"};
            table_add(t, f->all_ns ? cells : cells + 1);
        }
        table_print(t, stdout, 5);
        table_free(t);
    }
    json_decref(gws);
    cluster_close(&c);
    return 0;
}

/* One pass over the waypoints; true when every one is programmed. */
static bool
status_pass(const struct wp_flags *f, bool print)
{
    struct cluster c;
    bool any, all = true;
    if (cluster_open(&c, false) < 0)
        return false;
    json_t *gws = waypoints(&c, f->all_ns ? NULL : f->ns, &any);
    static const char *const hdr[] = {"NAMESPACE", "NAME", "STATUS", "TYPE", "REASON", "MESSAGE"};
    struct table *t = table_new(f->all_ns ? 6 : 5, f->all_ns ? hdr : hdr + 1);
    size_t i;
    json_t *gw;
    json_array_foreach(gws, i, gw) {
        char reason[64], msg[512];
        bool p = wp_programmed(&c, gw, reason, sizeof(reason), msg, sizeof(msg));
        all = all && p;
        const char *cells[] = {jsd(gw, "metadata.namespace", ""), jsd(gw, "metadata.name", ""),
                               p ? "True" : "False", "Programmed", reason, msg};
        table_add(t, f->all_ns ? cells : cells + 1);
    }
    if (print) {
        if (json_array_size(gws) == 0)
            printf("No waypoints found.\n");
        else
            table_print(t, stdout, 5);
    }
    table_free(t);
    json_decref(gws);
    cluster_close(&c);
    return all;
}

static int
status(const struct wp_flags *f)
{
    if (f->wait) {
        uint64_t deadline = clock_mono_ms() + (uint64_t)f->timeout_s * 1000;
        while (!status_pass(f, false)) {
            if (clock_mono_ms() >= deadline) {
                status_pass(f, true);
                fprintf(stderr, "Error: timed out while retrieving status for waypoint\n");
                return MESHCTL_EXIT_FAIL;
            }
            sys_sleep_ms(1000);
        }
    }
    status_pass(f, true);
    return 0;
}

static int
delete(const struct wp_flags *f)
{
    struct cluster c;
    bool any;
    if ((f->all || f->revision != NULL) == (f->n_names > 0)) {
        fprintf(stderr, f->n_names > 0 ? "Error: cannot specify waypoint names when deleting all "
                                         "waypoints\n"
                                       : "Error: must specify a waypoint name or delete all using "
                                         "--all or delete specific revision using --revision\n");
        return MESHCTL_EXIT_USAGE;
    }
    if (cluster_open(&c, true) < 0)
        return MESHCTL_EXIT_FAIL;
    json_t *gws = waypoints(&c, f->ns, &any), *names = json_array();
    size_t i;
    json_t *gw;
    if (f->n_names == 0) {
        json_array_foreach(gws, i, gw) {
            const char *rev = json_string_value(
                json_object_get(jget(gw, "metadata.labels"), "istio.io/rev"));
            if (f->revision == NULL || (rev != NULL && strcmp(rev, f->revision) == 0))
                json_array_append_new(names, json_string(jsd(gw, "metadata.name", "")));
        }
    }
    for (size_t k = 0; k < f->n_names; k++) {
        bool found = false;
        json_array_foreach(gws, i, gw)
            found = found || strcmp(jsd(gw, "metadata.name", ""), f->names[k]) == 0;
        if (found)
            json_array_append_new(names, json_string(f->names[k]));
        else
            printf("waypoint %s/%s not found\n", f->ns, f->names[k]);
    }
    int rc = 0;
    json_t *n;
    json_array_foreach(names, i, n) {
        const char *name = json_string_value(n);
        if (delete_object(&c, kind_by_name("Gateway"), f->ns, name, true) < 0)
            rc = MESHCTL_EXIT_FAIL;
        else
            printf("waypoint %s/%s deleted\n", f->ns, name);
    }
    cluster_sync(&c);
    cluster_close(&c);
    json_decref(names);
    json_decref(gws);
    return rc;
}

int
waypoint_main(int argc, char **argv)
{
    struct wp_flags f = {0};
    if (argc < 2 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
        waypoint_usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? MESHCTL_EXIT_USAGE : 0;
    }
    int rc = parse_flags(argc, argv, &f);
    if (rc != 0)
        return rc;
    const char *sub = argv[1];
    if (f.n_names > 0 && strcmp(sub, "delete") != 0) {
        fprintf(stderr, "Error: unknown command \"%s\" for \"meshctl waypoint %s\"\n", f.names[0],
                sub);
        return MESHCTL_EXIT_USAGE;
    }
    if (strcmp(sub, "generate") == 0)
        return generate(&f);
    if (strcmp(sub, "apply") == 0)
        return apply(&f);
    if (strcmp(sub, "list") == 0)
        return list(&f);
    if (strcmp(sub, "status") == 0)
        return status(&f);
    if (strcmp(sub, "delete") == 0)
        return delete(&f);
    fprintf(stderr, "Error: unknown subcommand \"%s\"\n", sub);
    waypoint_usage(stderr);
    return MESHCTL_EXIT_USAGE;
}
