/*
 * meshctl.h - the mesh's command-line tool: subcommands and the helpers they share.
 *
 *   main.c            the subcommand table, help
 *   cluster*.c, kube_proxy.c   the local cluster (install, apply, get, exec...; cluster.h)
 *   analyze.c         analyze: offline lint with meshd's own parser (lib/k8s)
 *   waypoint_*.c      waypoint generate|apply|list|status|delete (waypoint.h)
 *   ztunnel_config.c  ztunnel-config: flags, fetching and parsing the dump, -o json|yaml
 *   waypoint_config.c waypoint-config: a waypoint replica's dump (its pod's netns), tables
 *   wc_tables.c       waypoint-config's routes and policies tables
 *   zc_tables.c       workloads, services, policies, connections tables
 *   zc_certs.c        certificates table (serials, validity, PEM fallback)
 *   admin_get.c       a tiny blocking HTTP/1.1 GET with timeouts and a size cap
 *   admin_parse.c     its response reader (lib/http1 underneath, bounded body), fuzzed
 *   node_netns.c      --node: enter the network namespace of a node's ztunnel
 *   tabwriter.c       aligned columns (Go tabwriter style)
 *   json_yaml.c       JSON -> YAML rendering
 */
#ifndef MESH_MESHCTL_H
#define MESH_MESHCTL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <time.h>

#include <jansson.h>

#include "admin_parse.h"

/* Exit codes: 0 ok, 1 the operation failed, 2 bad usage. */
#define MESHCTL_EXIT_FAIL  1
#define MESHCTL_EXIT_USAGE 2

/* main.c: a subcommand's entry; argv[0] is the subcommand name. */
typedef int meshctl_cmd_fn(int argc, char **argv);
meshctl_cmd_fn ztunnel_config_main;
void ztunnel_config_usage(FILE *f);
meshctl_cmd_fn waypoint_main; /* waypoint_cmd.c */
void waypoint_usage(FILE *f);
meshctl_cmd_fn waypoint_config_main; /* waypoint_config.c */
void waypoint_config_usage(FILE *f);
meshctl_cmd_fn analyze_main; /* analyze.c */
void analyze_usage(FILE *f);
/* The local cluster (cluster.h). */
meshctl_cmd_fn install_main, uninstall_main; /* cluster_install.c */
void install_usage(FILE *f);
void uninstall_usage(FILE *f);
meshctl_cmd_fn apply_main, delete_main; /* cluster_apply.c */
void apply_usage(FILE *f);
void delete_usage(FILE *f);
meshctl_cmd_fn get_main; /* cluster_get.c */
void get_usage(FILE *f);
meshctl_cmd_fn label_main, exec_main, logs_main; /* cluster_cmds.c */
void label_usage(FILE *f);
void exec_usage(FILE *f);
void logs_usage(FILE *f);
meshctl_cmd_fn pod_run_main; /* cluster_podrun.c: meshctl __pod-run (hidden) */

/* admin_get.c */
#define ADMIN_DEFAULT_ADDR "127.0.0.1:15000"
#define ADMIN_TIMEOUT_MS   10000
/*
 * GETs |path| from |hostport| ("host:port", "[v6]:port", or "host" for port
 * 15000). The whole exchange is bounded by |timeout_ms| and the body by
 * ADMIN_MAX_RESPONSE. On success *body is a NUL-terminated heap copy of
 * *len bytes. Returns 0, or -1 with |err| set.
 */
int admin_get(const char *hostport, const char *path, int timeout_ms, char **body, size_t *len,
              char *err, size_t errlen);

/* node_netns.c: moves this process into node |node|'s network namespace. Returns 0 or -1. */
int node_enter_netns(const char *node, char *err, size_t errlen);

/* tabwriter.c: rows of cells printed with columns aligned, |pad| spaces between them. */
struct table;
struct table *table_new(size_t n_cols, const char *const *header);
/* Adds a row of n_cols cells (copied; NULL prints as ""; control characters as '?'). */
void table_add(struct table *t, const char *const *cells);
void table_print(struct table *t, FILE *f, size_t pad);
void table_free(struct table *t);

/* json_yaml.c: writes |v| as a YAML document, keys sorted. */
void json_print_yaml(FILE *f, const json_t *v);

/* ztunnel_config.c: shared with the table files. */
struct zc_opts {
    const char *ns; /* -n filter, NULL = all */
    time_t now;     /* for certificate validity */
};
enum zc_output { OUT_SHORT = 0, OUT_JSON, OUT_YAML };
/*
 * Reads a proxy's config dump: from |file|, else GET /config_dump from |admin| (inside node
 * |node|'s network namespace when given; |guessed|: no address was named, say so on
 * failure). Errors are printed as "meshctl |cmd|: ...". Returns 0 with *dump a JSON object.
 */
int zc_fetch(const char *cmd, const char *file, const char *admin, const char *node,
             int timeout_ms, bool guessed, json_t **dump);
/* |v| as indented JSON (sorted keys) or YAML on stdout. */
void zc_print_value(const json_t *v, enum zc_output out);
/* Prints "meshctl |cmd|: <message>" and the --help hint to stderr; returns MESHCTL_EXIT_USAGE. */
int zc_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The values of section |key| of the dump (an array, or an object's values); new reference. */
json_t *zc_section(const json_t *dump, const char *key);
/* A string member, or |dflt| when absent or not a string. */
const char *zc_str(const json_t *o, const char *key, const char *dflt);

void zc_print_workloads(FILE *f, const json_t *dump, const struct zc_opts *o);
void zc_print_services(FILE *f, const json_t *dump, const struct zc_opts *o);
void zc_print_policies(FILE *f, const json_t *dump, const struct zc_opts *o);
void zc_print_connections(FILE *f, const json_t *dump, const struct zc_opts *o);
void zc_print_certificates(FILE *f, const json_t *dump, const struct zc_opts *o);
void wc_print_routes(FILE *f, const json_t *dump, const struct zc_opts *o);
void wc_print_policies(FILE *f, const json_t *dump, const struct zc_opts *o);

/* A TYPE of ztunnel-config / waypoint-config; the last one of a table is "all" (section NULL). */
struct zc_kind {
    const char *name, *alias, *alias2; /* what the user may type */
    const char *section;               /* the config dump's key; NULL: the whole dump */
    void (*print)(FILE *f, const json_t *dump, const struct zc_opts *o); /* NULL: every table */
    bool has_ns; /* entries carry "namespace", so -o json|yaml can filter them too */
};
const struct zc_kind *zc_find_kind(const struct zc_kind *kinds, size_t n, const char *name);
/* "Now" for certificate validity; MESHCTL_NOW (seconds since the epoch) pins it for tests. */
time_t zc_now(void);
/*
 * Prints kind |k| of |dump| (tables, or the section as JSON/YAML filtered by o->ns where the
 * kind has namespaces) and flushes. Returns 0, or MESHCTL_EXIT_FAIL with the error printed
 * as "meshctl |cmd|: ...".
 */
int zc_show(const char *cmd, const struct zc_kind *kinds, size_t n, const struct zc_kind *k,
            const json_t *dump, enum zc_output out, const struct zc_opts *o);

#define ZC_PAD 2 /* spaces between table columns */

#endif
