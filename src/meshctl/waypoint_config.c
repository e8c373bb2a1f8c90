/*
 * waypoint_config.c - meshctl waypoint-config [TYPE] [NAME]: what a waypoint replica holds,
 * read from its admin /config_dump (127.0.0.1:15000 in the replica's network namespace):
 * its route tables, L7 policies, the services and workloads bound to it, its certificate.
 *
 * Which replica: in the local cluster, the pods of the waypoint Gateway's Deployment
 * (NAME, default "waypoint", in -n NS, default "default"); --pod picks one, else the first
 * ready one by name (said on stderr, as ztunnel-config says which node it asked). --admin
 * and --file read any other waypoint, or a saved dump.
 */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "cluster.h"
#include "meshctl.h"
#include "waypoint.h"

static const struct zc_kind kinds[] = {
    {"routes", "route", NULL, "routes", wc_print_routes, false},
    {"policies", "policy", NULL, "policies", wc_print_policies, true},
    {"services", "service", NULL, "services", zc_print_services, true},
    {"workloads", "workload", "endpoints", "workloads", zc_print_workloads, true},
    {"certificates", "certificate", NULL, "certificates", zc_print_certificates, false},
    {"all", NULL, NULL, NULL, NULL, false},
};

void
waypoint_config_usage(FILE *f)
{
    fprintf(f,
            "Usage: meshctl waypoint-config [TYPE] [NAME] [flags]\n"
            "\n"
            "Shows what a waypoint replica holds, read from its admin /config_dump.\n"
            "NAME is the waypoint (its Gateway; default \"%s\").\n"
            "\n"
            "Types:\n"
            "  routes        NAMESPACE SERVICE PORT PROTOCOL RULE MATCH ACTION, rules in the\n"
            "                order the waypoint matches them\n"
            "  policies      NAMESPACE POLICY NAME ACTION TARGETS RULES (L7 authorization)\n"
            "  services      the services bound to the waypoint (as ztunnel-config services)\n"
            "  workloads     the workloads bound to it (also: endpoints)\n"
            "  certificates  the waypoint's certificate chain\n"
            "  all           every table above (the default; -o json|yaml: the whole dump)\n"
            "\n"
            "Flags:\n"
            "  -n, --namespace NS    the waypoint's namespace (default \"default\"); with --admin\n"
            "                        or --file: only objects in namespace NS\n"
            "  -o, --output FORMAT   short (tables, the default), json or yaml\n"
            "      --pod POD         the replica to ask (default: the first ready one)\n"
            "      --admin HOST:PORT a waypoint's admin address instead of the local cluster's\n"
            "      --file DUMP       read a saved config dump instead\n"
            "      --timeout SECS    give up on the admin port after SECS (default %d)\n"
            "  -h, --help            this help\n",
            WP_DEFAULT_NAME, ADMIN_TIMEOUT_MS / 1000);
}

/*
 * The network namespace of the replica of waypoint |ns|/|name| to ask (|pod| or the first
 * ready one), into |netns|. Returns 0, or -1 with the reason printed.
 */
static int
pick_replica(const char *ns, const char *name, const char *pod, char *netns, size_t netnslen)
{
    struct cluster c;
    char path[4096];
    int rc = -1;

    snprintf(path, sizeof(path), "%s/cluster.json", cluster_dir());
    json_t *meta = cl_read_json(path);
    json_decref(meta);
    if (meta == NULL) {
        fprintf(stderr,
                "meshctl waypoint-config: no local cluster in %s; name a waypoint's admin "
                "address with --admin, or use --file\n",
                cluster_dir());
        return -1;
    }
    if (cluster_open(&c, false) < 0)
        return -1;
    json_t *gw = rec_get(&c, kind_by_name("Gateway"), ns, name);
    const json_t *obj = json_object_get(gw, "object");
    if (obj == NULL || !wp_is_waypoint(obj)) {
        fprintf(stderr, "meshctl waypoint-config: waypoint %s/%s not found%s\n", ns, name,
                obj != NULL ? " (that Gateway is not of class " WP_CLASS ")" : "");
        goto out;
    }
    const char *dname = wp_deployment_name(obj);
    json_t *pods = rec_list(&c, kind_by_name("Pod"), ns), *r;
    size_t i, total = 0;
    char first[256] = "", chosen[512] = "";
    json_array_foreach(pods, i, r) {
        const char *pn = jsd(r, "object.metadata.name", "");
        json_t *run = pods_run_info(&c, ns, pn);
        const char *owner = js(run, "owner"), *pns = js(run, "netns");
        if (owner != NULL && dname != NULL && strcmp(owner, dname) == 0 && pns != NULL) {
            bool ready = false;
            pods_status(&c, ns, pn, &ready);
            total++;
            if (first[0] == '\0')
                snprintf(first, sizeof(first), "%s", pn);
            if (pod != NULL ? strcmp(pod, pn) == 0 : ready && chosen[0] == '\0') {
                snprintf(chosen, sizeof(chosen), "%s", pn);
                snprintf(netns, netnslen, "%s", pns);
            }
        }
        json_decref(run);
    }
    json_decref(pods);
    if (chosen[0] == '\0') {
        if (pod != NULL)
            fprintf(stderr, "meshctl waypoint-config: %s is not a replica of waypoint %s/%s\n",
                    pod, ns, name);
        else
            fprintf(stderr, "meshctl waypoint-config: waypoint %s/%s has no ready replica "
                            "(%zu pods)%s%s\n",
                    ns, name, total, first[0] ? "; --pod " : "", first);
        goto out;
    }
    if (pod == NULL)
        fprintf(stderr, "meshctl waypoint-config: waypoint %s/%s: asking replica %s%s\n", ns,
                name, chosen, total > 1 ? " (--pod picks another)" : "");
    rc = 0;
out:
    json_decref(gw);
    cluster_close(&c);
    return rc;
}

static int
fetch_replica(const char *ns, const char *name, const char *pod, int timeout_ms, json_t **dump)
{
    char netns[256], err[512];
    int saved;

    if (pick_replica(ns, name, pod, netns, sizeof(netns)) < 0)
        return -1;
    if (sys_netns_enter(netns, &saved, err, sizeof(err)) < 0) {
        fprintf(stderr, "meshctl waypoint-config: %s\n", err);
        return -1;
    }
    int rc = zc_fetch("waypoint-config", NULL, ADMIN_DEFAULT_ADDR, NULL, timeout_ms, false, dump);
    sys_netns_leave(saved);
    return rc;
}

int
waypoint_config_main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"output", required_argument, NULL, 'o'}, {"namespace", required_argument, NULL, 'n'},
        {"pod", required_argument, NULL, 'P'},    {"admin", required_argument, NULL, 'A'},
        {"file", required_argument, NULL, 'F'},   {"timeout", required_argument, NULL, 'T'},
        {"help", no_argument, NULL, 'h'},         {NULL, 0, NULL, 0},
    };
    const char *file = NULL, *admin = NULL, *pod = NULL, *ns = "default", *name = WP_DEFAULT_NAME;
    struct zc_opts o = {0};
    enum zc_output out = OUT_SHORT;
    int timeout_ms = ADMIN_TIMEOUT_MS;
    bool ns_given = false;
    char flag[8];
    int c;

    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":o:n:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'o':
            if (strcmp(optarg, "json") == 0)
                out = OUT_JSON;
            else if (strcmp(optarg, "yaml") == 0)
                out = OUT_YAML;
            else if (strcmp(optarg, "short") == 0)
                out = OUT_SHORT;
            else
                return zc_usage_error("waypoint-config",
                                      "unknown output format \"%s\" (want short, json or yaml)",
                                      optarg);
            break;
        case 'n': ns = optarg; ns_given = true; break;
        case 'P': pod = optarg; break;
        case 'A': admin = optarg; break;
        case 'F': file = optarg; break;
        case 'T': {
            char *end;
            long v = strtol(optarg, &end, 10);
            if (*optarg == '\0' || *end != '\0' || v < 1 || v > 3600)
                return zc_usage_error("waypoint-config",
                                      "--timeout: \"%s\" is not a number of seconds (1-3600)",
                                      optarg);
            timeout_ms = (int)v * 1000;
            break;
        }
        case 'h': waypoint_config_usage(stdout); return 0;
        case ':':
            return zc_usage_error("waypoint-config", "flag %s needs a value", argv[optind - 1]);
        default:
            snprintf(flag, sizeof(flag), "-%c", optopt);
            return zc_usage_error("waypoint-config", "unknown flag \"%s\"",
                                  optopt ? flag : argv[optind - 1]);
        }
    }
    /* [TYPE] [NAME]: a first word that is a type is the type; anything else a name. */
    const struct zc_kind *k = &kinds[ARRAY_LEN(kinds) - 1];
    int a = optind;
    if (a < argc && zc_find_kind(kinds, ARRAY_LEN(kinds), argv[a]) != NULL)
        k = zc_find_kind(kinds, ARRAY_LEN(kinds), argv[a++]);
    if (a < argc)
        name = argv[a++];
    if (a < argc)
        return zc_usage_error("waypoint-config", "unexpected argument \"%s\"", argv[a]);
    if (file != NULL && admin != NULL)
        return zc_usage_error("waypoint-config", "%s", "--file and --admin exclude each other");
    if ((file != NULL || admin != NULL) && pod != NULL)
        return zc_usage_error(
            "waypoint-config", "%s",
            "--pod picks a local-cluster replica: it excludes --file and --admin");

    json_t *dump;
    int rc = file != NULL || admin != NULL
                 ? zc_fetch("waypoint-config", file, admin, NULL, timeout_ms, false, &dump)
                 : fetch_replica(ns, name, pod, timeout_ms, &dump);
    if (rc < 0)
        return MESHCTL_EXIT_FAIL;
    /* In the cluster -n names the waypoint; its tables show all it holds. Elsewhere it filters. */
    o.ns = file != NULL || admin != NULL ? (ns_given ? ns : NULL) : NULL;
    o.now = zc_now();
    rc = zc_show("waypoint-config", kinds, ARRAY_LEN(kinds), k, dump, out, &o);
    json_decref(dump);
    return rc;
}
