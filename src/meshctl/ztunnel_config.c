/*
 * ztunnel_config.c - meshctl ztunnel-config: reads a ztunnel's /config_dump
 * (from its admin port, possibly inside a node's network namespace, or from
 * a saved file) and prints one section as istioctl does: a table, the JSON,
 * or YAML.
 *
 * Both dump dialects are read: amesh's (addresses, tunnelProtocol) and
 * Istio ztunnel's (workloadIps, protocol, vips, endpoints).
 *
 * Which ztunnel: --node, --admin or --file when given; else, as istioctl
 * picks a ztunnel pod by itself, the first node's in a local cluster
 * (noted on stderr); else the admin port on this host.
 */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/base.h"
#include "cluster.h"
#include "meshctl.h"

#define DUMP_MAX_FILE ADMIN_MAX_RESPONSE

static const struct zc_kind kinds[] = {
    {"workloads", "workload", NULL, "workloads", zc_print_workloads, true},
    {"services", "service", NULL, "services", zc_print_services, true},
    {"policies", "policy", NULL, "policies", zc_print_policies, true},
    {"certificates", "certificate", NULL, "certificates", zc_print_certificates, false},
    {"connections", "connection", NULL, "connections", zc_print_connections, false},
    {"all", NULL, NULL, NULL, NULL, false},
};

void
ztunnel_config_usage(FILE *f)
{
    fprintf(f,
            "Usage: meshctl ztunnel-config TYPE [flags]\n"
            "\n"
            "Shows what a ztunnel knows, read from its admin /config_dump.\n"
            "\n"
            "Types:\n"
            "  workloads     NAMESPACE POD NAME IP NODE WAYPOINT PROTOCOL\n"
            "  services      NAMESPACE SERVICE NAME SERVICE VIP WAYPOINT ENDPOINTS\n"
            "  policies      NAMESPACE POLICY NAME ACTION SCOPE\n"
            "  certificates  one row per certificate of each identity's chain\n"
            "  connections   live connections: WORKLOAD DIRECTION LOCAL REMOTE ...\n"
            "  all           every table above (-o json|yaml: the whole dump)\n"
            "\n"
            "Flags:\n"
            "  -o, --output FORMAT   short (tables, the default), json or yaml\n"
            "  -n, --namespace NS    only objects in namespace NS (json and yaml: workloads,\n"
            "                        services and policies only)\n"
            "      --node N          the ztunnel of node N (joins its network namespace;\n"
            "                        $MESH_CLUSTER_DIR/nodes/N/netns, else /run/netns/N);\n"
            "                        default in a local cluster: node-1 (said on stderr)\n"
            "      --admin HOST:PORT the admin address (default outside a cluster: %s)\n"
            "      --file DUMP       read a saved config dump instead\n"
            "      --timeout SECS    give up on the admin port after SECS (default %d)\n"
            "  -h, --help            this help\n",
            ADMIN_DEFAULT_ADDR, ADMIN_TIMEOUT_MS / 1000);
}

int
zc_usage_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "meshctl %s: ", cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nSee 'meshctl %s --help'.\n", cmd);
    return MESHCTL_EXIT_USAGE;
}

const struct zc_kind *
zc_find_kind(const struct zc_kind *kinds_, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(kinds_[i].name, name) == 0 ||
            (kinds_[i].alias != NULL && strcmp(kinds_[i].alias, name) == 0) ||
            (kinds_[i].alias2 != NULL && strcmp(kinds_[i].alias2, name) == 0))
            return &kinds_[i];
    return NULL;
}

static int
read_file(const char *path, char **data, size_t *len, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    struct stat st;

    if (f == NULL) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    if (fstat(fileno(f), &st) < 0 || !S_ISREG(st.st_mode) || st.st_size > DUMP_MAX_FILE) {
        snprintf(err, errlen, "%s: not a regular file of at most %u bytes", path, DUMP_MAX_FILE);
        fclose(f);
        return -1;
    }
    *data = xmalloc((size_t)st.st_size + 1);
    *len = fread(*data, 1, (size_t)st.st_size, f);
    (*data)[*len] = '\0';
    fclose(f);
    return 0;
}

json_t *
zc_section(const json_t *dump, const char *key)
{
    json_t *v = json_object_get(dump, key), *out, *item;
    const char *k;

    if (json_is_array(v))
        return json_incref(v);
    out = json_array();
    /* Older ztunnels dump some sections as objects keyed by address or uid. */
    if (json_is_object(v))
        json_object_foreach(v, k, item)
            json_array_append(out, item);
    return out;
}

const char *
zc_str(const json_t *o, const char *key, const char *dflt)
{
    const json_t *v = json_object_get(o, key);
    return json_is_string(v) ? json_string_value(v) : dflt;
}

/* Keeps the entries of |items| in namespace |ns| (all when NULL). New reference. */
static json_t *
filter_ns(json_t *items, const char *ns)
{
    json_t *out = json_array(), *v;
    size_t i;

    json_array_foreach(items, i, v)
        if (ns == NULL || strcmp(zc_str(v, "namespace", ""), ns) == 0)
            json_array_append(out, v);
    return out;
}

void
zc_print_value(const json_t *v, enum zc_output out)
{
    if (out == OUT_YAML) {
        json_print_yaml(stdout, v);
        return;
    }
    char *s = json_dumps(v, JSON_INDENT(2) | JSON_SORT_KEYS | JSON_ENCODE_ANY);
    puts(s ? s : "null");
    free(s);
}

/*
 * The node whose ztunnel to ask when none is named: the first of the local
 * cluster in $MESH_CLUSTER_DIR (default /run/amesh). False outside a cluster.
 */
static bool
cluster_default_node(char *out, size_t outlen)
{
    char path[4096];

    snprintf(path, sizeof(path), "%s/cluster.json", cluster_dir());
    json_t *meta = cl_read_json(path);
    json_int_t nodes = json_integer_value(json_object_get(meta, "nodes"));
    json_decref(meta);
    if (nodes < 1 || nodes > CLUSTER_MAX_NODES)
        return false;
    cl_node_name(1, out, outlen);
    return true;
}

int
zc_fetch(const char *cmd, const char *file, const char *admin, const char *node, int timeout_ms,
         bool guessed, json_t **dump)
{
    char err[1024], *data = NULL, src[512];
    size_t len = 0;
    json_error_t je;

    if (file != NULL) {
        snprintf(src, sizeof(src), "%s", file);
        if (read_file(file, &data, &len, err, sizeof(err)) < 0)
            goto fail;
    } else {
        if (node != NULL && node_enter_netns(node, err, sizeof(err)) < 0)
            goto fail;
        snprintf(src, sizeof(src), "%s%s%s", admin, node ? " on node " : "", node ? node : "");
        if (admin_get(admin, "/config_dump", timeout_ms, &data, &len, err, sizeof(err)) < 0) {
            size_t n = strlen(err);
            if (node != NULL)
                snprintf(err + n, sizeof(err) - n, " (in node %s's network namespace)", node);
            else if (guessed)
                snprintf(err + n, sizeof(err) - n,
                         " (no local cluster in %s; name a ztunnel with --node, --admin or "
                         "--file)",
                         cluster_dir());
            goto fail;
        }
    }
    *dump = json_loadb(data, len, 0, &je);
    free(data);
    if (*dump == NULL) {
        snprintf(err, sizeof(err), "%s: bad JSON at line %d, column %d: %s", src, je.line,
                 je.column, je.text);
        goto fail;
    }
    if (!json_is_object(*dump)) {
        json_decref(*dump);
        snprintf(err, sizeof(err), "%s: the config dump is not a JSON object", src);
        goto fail;
    }
    return 0;
fail:
    fprintf(stderr, "meshctl %s: %s\n", cmd, err);
    return -1;
}

time_t
zc_now(void)
{
    const char *s = getenv("MESHCTL_NOW");
    return s != NULL && s[0] != '\0' ? (time_t)strtoll(s, NULL, 10) : time(NULL);
}

int
zc_show(const char *cmd, const struct zc_kind *kinds_, size_t n, const struct zc_kind *k,
        const json_t *dump, enum zc_output out, const struct zc_opts *o)
{
    if (out == OUT_SHORT && k->print != NULL) {
        k->print(stdout, dump, o);
    } else if (out == OUT_SHORT) {
        for (size_t i = 0; i < n; i++) {
            if (kinds_[i].print == NULL)
                continue;
            if (i > 0)
                fputc('\n', stdout);
            kinds_[i].print(stdout, dump, o);
        }
    } else if (k->section == NULL) {
        zc_print_value(dump, out);
    } else {
        json_t *items = zc_section(dump, k->section);
        json_t *shown = k->has_ns ? filter_ns(items, o->ns) : json_incref(items);
        zc_print_value(shown, out);
        json_decref(shown);
        json_decref(items);
    }
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "meshctl %s: writing output: %s\n", cmd, strerror(errno));
        return MESHCTL_EXIT_FAIL;
    }
    return 0;
}

int
ztunnel_config_main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"output", required_argument, NULL, 'o'}, {"namespace", required_argument, NULL, 'n'},
        {"node", required_argument, NULL, 'N'},   {"admin", required_argument, NULL, 'A'},
        {"file", required_argument, NULL, 'F'},   {"timeout", required_argument, NULL, 'T'},
        {"help", no_argument, NULL, 'h'},         {NULL, 0, NULL, 0},
    };
    const char *file = NULL, *admin = NULL, *node = NULL;
    struct zc_opts o = {0};
    enum zc_output out = OUT_SHORT;
    int timeout_ms = ADMIN_TIMEOUT_MS;
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
                return zc_usage_error("ztunnel-config",
                                      "unknown output format \"%s\" (want short, json or yaml)",
                                      optarg);
            break;
        case 'n':
            o.ns = optarg;
            break;
        case 'N':
            node = optarg;
            break;
        case 'A':
            admin = optarg;
            break;
        case 'F':
            file = optarg;
            break;
        case 'T': {
            char *end;
            long v = strtol(optarg, &end, 10);
            if (*optarg == '\0' || *end != '\0' || v < 1 || v > 3600)
                return zc_usage_error("ztunnel-config",
                                      "--timeout: \"%s\" is not a number of seconds (1-3600)",
                                      optarg);
            timeout_ms = (int)v * 1000;
            break;
        }
        case 'h':
            ztunnel_config_usage(stdout);
            return 0;
        case ':':
            return zc_usage_error("ztunnel-config", "flag %s needs a value", argv[optind - 1]);
        default:
            snprintf(flag, sizeof(flag), "-%c", optopt);
            return zc_usage_error("ztunnel-config", "unknown flag \"%s\"",
                                  optopt ? flag : argv[optind - 1]);
        }
    }
    if (optind >= argc)
        return zc_usage_error("ztunnel-config", "%s",
                              "which type? workloads, services, policies, certificates, "
                              "connections or all");
    if (optind + 1 < argc)
        return zc_usage_error("ztunnel-config", "unexpected argument \"%s\"", argv[optind + 1]);
    const struct zc_kind *k = zc_find_kind(kinds, ARRAY_LEN(kinds), argv[optind]);
    if (k == NULL)
        return zc_usage_error("ztunnel-config", "unknown type \"%s\"", argv[optind]);
    if (file != NULL && (node != NULL || admin != NULL))
        return zc_usage_error("ztunnel-config", "%s",
                              "--file reads a saved dump: it excludes --node and --admin");

    char picked[64];
    bool guessed = file == NULL && admin == NULL && node == NULL;
    if (guessed && cluster_default_node(picked, sizeof(picked))) {
        node = picked;
        fprintf(stderr,
                "meshctl ztunnel-config: local cluster %s: asking the ztunnel of %s "
                "(--node picks another)\n",
                cluster_dir(), node);
    }
    json_t *dump;
    if (zc_fetch("ztunnel-config", file, admin ? admin : ADMIN_DEFAULT_ADDR, node, timeout_ms,
                 guessed, &dump) < 0)
        return MESHCTL_EXIT_FAIL;
    o.now = zc_now();
    int rc = zc_show("ztunnel-config", kinds, ARRAY_LEN(kinds), k, dump, out, &o);
    json_decref(dump);
    return rc;
}
