/*
 * test_l7policy.c - the waypoint's L7 authorization table: each case is a
 * raw request (:path as received, method, :authority, headers, client
 * identity and addresses) normalised with the configured pathNormalization
 * mode and decided against a policy set, the expected outcome being what
 * Istio's waypoint (Envoy with Istio's RBAC translation) decides, with the
 * reason in a comment where it is not obvious. Then rule/clause/match
 * structure, sets (replace, remove, order), the JSON dump and references.
 *
 *   test_l7policy --write-corpus DIR   writes the fuzz_l7policy seed corpus
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cmocka.h>
#include <jansson.h>

#include "base/base.h"
#include "l7policy/l7path.h"
#include "l7policy/l7policy.h"
#include "unit_l7pol.h"

#define WP_NS   "demo"
#define WP_NAME "waypoint"
#define ECHO    "echo.demo.svc.cluster.local"

/* ---- policy sets ---- */

/* "path": one DENY on the admin tree through the waypoint, nothing else (no ALLOW). */
static const struct l7spec set_path[] = {
    {.ns = WP_NS,
     .name = "deny-admin",
     .action = 1,
     .gateway = WP_NAME,
     .paths = {"/admin", "/admin/*"}},
};

/* "api": ALLOWs per role on the echo Service, DENYs on headers and hosts. */
static const struct l7spec set_api[] = {
    {.ns = WP_NS,
     .name = "allow-reader",
     .action = 0,
     .svc_ns = WP_NS,
     .svc_host = ECHO,
     .methods = {"GET", "HEAD"},
     .paths = {"/api/*"},
     .principals = {"cluster.local/ns/client/sa/*"}},
    {.ns = WP_NS,
     .name = "allow-writer",
     .action = 0,
     .svc_ns = WP_NS,
     .svc_host = ECHO,
     .methods = {"POST"},
     .paths = {"/api/{*}/items/{**}"},
     .namespaces = {"writer"}},
    {.ns = WP_NS,
     .name = "deny-debug",
     .action = 1,
     .svc_ns = WP_NS,
     .svc_host = ECHO,
     .header = "X-Debug",
     .values = {"1", "true*"}},
    {.ns = WP_NS,
     .name = "deny-evil-host",
     .action = 1,
     .gateway = WP_NAME,
     .hosts = {"evil.example*"}},
    /* Another namespace's Gateway of the same name: never applies here. */
    {.ns = "other", .name = "allow-all", .action = 0, .gateway = WP_NAME, .empty_rule = true},
    /* Another Service: applies only to requests for it. */
    {.ns = WP_NS,
     .name = "allow-none-other",
     .action = 0,
     .svc_ns = WP_NS,
     .svc_host = "other.demo.svc.cluster.local",
     .no_rules = true},
};

/* "host": hosts compared case-insensitively, port included as Envoy does. */
static const struct l7spec set_host[] = {
    {.ns = WP_NS,
     .name = "allow-echo-host",
     .action = 0,
     .gateway = WP_NAME,
     .hosts = {ECHO, "echo.demo:*"}},
};

/* "not": negative lists and request principals without JWT. */
static const struct l7spec set_not[] = {
    {.ns = WP_NS,
     .name = "allow-public",
     .action = 0,
     .gateway = WP_NAME,
     .not_paths = {"/private/*"},
     .not_methods = {"DELETE"}},
    {.ns = WP_NS,
     .name = "deny-jwt-users",
     .action = 1,
     .gateway = WP_NAME,
     .req_principals = {"*"}},
    {.ns = WP_NS,
     .name = "deny-no-trace",
     .action = 1,
     .gateway = WP_NAME,
     .header = "x-trace",
     .not_values = {"*"}},
    /* Matches only the joined value of two x-env headers. */
    {.ns = WP_NS,
     .name = "deny-env-ab",
     .action = 1,
     .gateway = WP_NAME,
     .header = "x-env",
     .values = {"a,b"}},
};

/* "jwt": Istio's "require a request principal" DENY (notRequestPrincipals ["*"]) on a subtree. */
static const struct l7spec set_jwt[] = {
    {.ns = WP_NS,
     .name = "require-jwt",
     .action = 1,
     .gateway = WP_NAME,
     .not_req_principals = {"*"},
     .paths = {"/secure/*"}},
};

/* "l4": source blocks and ports through lib/policy. */
static const struct l7spec set_l4[] = {
    {.ns = WP_NS,
     .name = "deny-lab",
     .action = 1,
     .gateway = WP_NAME,
     .source_ips = {"198.18.9.0/24", "2001:db8:9::/48"},
     .ports = {8080}},
    {.ns = WP_NS,
     .name = "deny-not-ours",
     .action = 1,
     .gateway = WP_NAME,
     .not_namespaces = {"client", "writer", "demo"},
     .paths = {"/ours/*"}},
};

struct set_def {
    const char *name;
    const struct l7spec *specs;
    size_t n;
};

static const struct set_def sets[] = {
    {"path", set_path, ARRAY_LEN(set_path)}, {"api", set_api, ARRAY_LEN(set_api)},
    {"host", set_host, ARRAY_LEN(set_host)}, {"not", set_not, ARRAY_LEN(set_not)},
    {"l4", set_l4, ARRAY_LEN(set_l4)},       {"jwt", set_jwt, ARRAY_LEN(set_jwt)},
};

static struct l7pol_set *
build(const char *name)
{
    for (size_t i = 0; i < ARRAY_LEN(sets); i++) {
        if (strcmp(sets[i].name, name) != 0)
            continue;
        struct l7pol *ps[16] = {0};
        for (size_t k = 0; k < sets[i].n; k++)
            ps[k] = l7spec_decode(&sets[i].specs[k]);
        struct l7pol_set *s = l7pol_set_build(ps, sets[i].n);
        for (size_t k = 0; k < sets[i].n; k++)
            l7pol_unref(ps[k]);
        return s;
    }
    fail_msg("no set %s", name);
    return NULL;
}

/* ---- requests ---- */

enum outcome { ALLOW, DENY, BAD /* 400 from normalisation */ };

struct tcase {
    const char *set;
    enum l7path_mode mode;
    const char *client_ns; /* spiffe://cluster.local/ns/<ns>/sa/default; NULL: no identity */
    const char *method;
    const char *host;
    const char *path;
    const char *headers; /* "name: value\n..." */
    const char *svc;     /* service hostname; NULL: workload-addressed */
    const char *src;     /* client IP, default 198.18.0.10 */
    uint16_t port;       /* default 80 */
    enum outcome want;
    const char *policy; /* the deciding policy, "" none; NULL: not checked */
    const char *jwt;    /* request principal "iss/sub"; NULL: none */
};

#define B  L7PATH_BASE
#define M  L7PATH_MERGE_SLASHES
#define DM L7PATH_DECODE_AND_MERGE_SLASHES
#define NN L7PATH_NONE
#define DA "demo/deny-admin"

static const struct tcase cases[] = {
    /* path: the DENY holds against every spelling Envoy resolves to /admin. */
    {"path", B, "client", "GET", ECHO, "/admin", NULL, ECHO, NULL, 0, DENY, DA, NULL},
    {"path", B, "client", "GET", ECHO, "/admin/users", NULL, ECHO, NULL, 0, DENY, DA, NULL},
    {"path", B, "client", "GET", ECHO, "/public", NULL, ECHO, NULL, 0, ALLOW, "", NULL},
    {"path", B, "client", "GET", ECHO, "/a/../admin", NULL, ECHO, NULL, 0, DENY, DA, NULL},
    {"path", B, "client", "GET", ECHO, "/%2e%2e/admin", NULL, ECHO, NULL, 0, DENY, DA, NULL},
    {"path", B, "client", "GET", ECHO, "/%2E%2e/admin", NULL, ECHO, NULL, 0, DENY, DA, NULL},
    {"path", B, "client", "GET", ECHO, "/x/%2e%2E/admin/", NULL, ECHO, NULL, 0, DENY, DA, NULL},
    {"path", B, "client", "GET", ECHO, "/../../admin", NULL, ECHO, NULL, 0, DENY, DA, NULL},
    {"path", B, "client", "GET", ECHO, "/./admin", NULL, ECHO, NULL, 0, DENY, DA, NULL},
    {"path", B, "client", "GET", ECHO, "/admin/.", NULL, ECHO, NULL, 0, DENY, DA, NULL},
    {"path", B, "client", "GET", ECHO, "/admin/x/..", NULL, ECHO, NULL, 0, DENY, DA, NULL},
    {"path", B, "client", "GET", ECHO, "/admin/../public", NULL, ECHO, NULL, 0, ALLOW, "", NULL},
    {"path", B, "client", "GET", ECHO, "/%61dmin", NULL, ECHO, NULL, 0, DENY, DA, NULL},
    {"path", B, "client", "GET", ECHO, "/%41dmin", NULL, ECHO, NULL, 0, ALLOW, "",
     NULL}, /* "/Admin" */
    /* Decoded once: %252e is "%2e" for the backend, not a dot segment. */
    {"path", B, "client", "GET", ECHO, "/%252e%252e/admin", NULL, ECHO, NULL, 0, ALLOW, "", NULL},
    {"path", B, "client", "GET", ECHO, "/admin%00", NULL, ECHO, NULL, 0, BAD, NULL, NULL},
    {"path", B, "client", "GET", ECHO, "/%00/../admin", NULL, ECHO, NULL, 0, BAD, NULL, NULL},
    {"path", B, "client", "GET", ECHO, "/x\\..\\admin", NULL, ECHO, NULL, 0, DENY, DA, NULL},
    {"path", B, "client", "GET", ECHO, "/admin\\x", NULL, ECHO, NULL, 0, DENY, DA, NULL},
    /* BASE keeps "//": "//admin" is not under "/admin" (MERGE_SLASHES closes it). */
    {"path", B, "client", "GET", ECHO, "//admin", NULL, ECHO, NULL, 0, ALLOW, "", NULL},
    {"path", M, "client", "GET", ECHO, "//admin", NULL, ECHO, NULL, 0, DENY, DA, NULL},
    {"path", B, "client", "GET", ECHO, "/\\admin", NULL, ECHO, NULL, 0, ALLOW, "", NULL},
    {"path", M, "client", "GET", ECHO, "/\\admin", NULL, ECHO, NULL, 0, DENY, DA, NULL},
    /* Dots are resolved before slashes merge (Envoy's order): ".." drops the empty segment. */
    {"path", M, "client", "GET", ECHO, "/x//..//admin", NULL, ECHO, NULL, 0, ALLOW, "", NULL},
    {"path", M, "client", "GET", ECHO, "/x/..//admin", NULL, ECHO, NULL, 0, DENY, DA, NULL},
    /* BASE keeps %2F: one segment "admin%2Fx", neither "/admin" nor under "/admin/". */
    {"path", B, "client", "GET", ECHO, "/admin%2Fx", NULL, ECHO, NULL, 0, ALLOW, "", NULL},
    {"path", M, "client", "GET", ECHO, "/admin%2Fx", NULL, ECHO, NULL, 0, ALLOW, "", NULL},
    {"path", DM, "client", "GET", ECHO, "/admin%2Fx", NULL, ECHO, NULL, 0, DENY, DA, NULL},
    {"path", DM, "client", "GET", ECHO, "/admin%2fx", NULL, ECHO, NULL, 0, DENY, DA, NULL},
    {"path", B, "client", "GET", ECHO, "/x/..%2Fadmin", NULL, ECHO, NULL, 0, ALLOW, "", NULL},
    {"path", DM, "client", "GET", ECHO, "/x/..%2Fadmin", NULL, ECHO, NULL, 0, DENY, DA, NULL},
    {"path", DM, "client", "GET", ECHO, "/x%5C..%5Cadmin", NULL, ECHO, NULL, 0, DENY, DA, NULL},
    {"path", DM, "client", "GET", ECHO, "/%2Fadmin", NULL, ECHO, NULL, 0, DENY, DA, NULL},
    {"path", DM, "client", "GET", ECHO, "/%252Fadmin", NULL, ECHO, NULL, 0, ALLOW, "", NULL},
    /* ';' is not special to Envoy: "/admin;x" is not "/admin" (an ALLOW-list avoids this). */
    {"path", B, "client", "GET", ECHO, "/admin;x", NULL, ECHO, NULL, 0, ALLOW, "", NULL},
    {"path", B, "client", "GET", ECHO, "/admin/;x", NULL, ECHO, NULL, 0, DENY, DA, NULL},
    {"path", B, "client", "GET", ECHO, "/x;/../admin", NULL, ECHO, NULL, 0, DENY, DA, NULL},
    /* The query is never matched, never normalised. */
    {"path", B, "client", "GET", ECHO, "/admin?x=1", NULL, ECHO, NULL, 0, DENY, DA, NULL},
    {"path", B, "client", "GET", ECHO, "/public?/admin", NULL, ECHO, NULL, 0, ALLOW, "", NULL},
    {"path", B, "client", "GET", ECHO, "/public?x=/../admin", NULL, ECHO, NULL, 0, ALLOW, "", NULL},
    {"path", B, "client", "GET", ECHO, "/admin%3Fx", NULL, ECHO, NULL, 0, ALLOW, "", NULL},
    /* Fragments are refused. */
    {"path", B, "client", "GET", ECHO, "/admin#x", NULL, ECHO, NULL, 0, BAD, NULL, NULL},
    {"path", B, "client", "GET", ECHO, "/public#/../admin", NULL, ECHO, NULL, 0, BAD, NULL, NULL},
    {"path", NN, "client", "GET", ECHO, "/public#x", NULL, ECHO, NULL, 0, BAD, NULL, NULL},
    {"path", B, "client", "GET", ECHO, "/ADMIN", NULL, ECHO, NULL, 0, ALLOW, "", NULL},
    {"path", B, "client", "GET", ECHO, "admin", NULL, ECHO, NULL, 0, BAD, NULL, NULL},
    /* NONE: matched as sent, so "/a/../admin" passes (Istio: "not recommended"). */
    {"path", NN, "client", "GET", ECHO, "/a/../admin", NULL, ECHO, NULL, 0, ALLOW, "", NULL},
    {"path", NN, "client", "GET", ECHO, "/admin", NULL, ECHO, NULL, 0, DENY, DA, NULL},
    /* The Gateway target covers workload-addressed traffic too. */
    {"path", B, NULL, "GET", "198.18.5.5:80", "/admin", NULL, NULL, NULL, 0, DENY, DA, NULL},

    /* api: roles, templates, headers, hosts, targets. */
    {"api", B, "client", "GET", ECHO, "/api/x", NULL, ECHO, NULL, 0, ALLOW, "demo/allow-reader",
     NULL},
    {"api", B, "client", "HEAD", ECHO, "/api/x", NULL, ECHO, NULL, 0, ALLOW, "demo/allow-reader",
     NULL},
    {"api", B, "client", "DELETE", ECHO, "/api/x", NULL, ECHO, NULL, 0, DENY, "", NULL},
    {"api", B, "client", "get", ECHO, "/api/x", NULL, ECHO, NULL, 0, DENY, "",
     NULL}, /* case matters */
    {"api", B, "client", "GET", ECHO, "/apix", NULL, ECHO, NULL, 0, DENY, "", NULL},
    {"api", B, NULL, "GET", ECHO, "/api/x", NULL, ECHO, NULL, 0, DENY, "", NULL}, /* no principal */
    {"api", B, "writer", "GET", ECHO, "/api/x", NULL, ECHO, NULL, 0, DENY, "", NULL},
    {"api", B, "writer", "POST", ECHO, "/api/v1/items/", NULL, ECHO, NULL, 0, ALLOW,
     "demo/allow-writer", NULL},
    {"api", B, "writer", "POST", ECHO, "/api/v1/items/a/b", NULL, ECHO, NULL, 0, ALLOW,
     "demo/allow-writer", NULL},
    {"api", B, "writer", "POST", ECHO, "/api/v1/items", NULL, ECHO, NULL, 0, DENY, "", NULL},
    {"api", B, "writer", "POST", ECHO, "/api//items/a", NULL, ECHO, NULL, 0, DENY, "", NULL},
    {"api", B, "writer", "POST", ECHO, "/api/v1/v2/items/a", NULL, ECHO, NULL, 0, DENY, "", NULL},
    {"api", B, "writer", "POST", ECHO, "/api/v1/items/a?q=1", NULL, ECHO, NULL, 0, ALLOW,
     "demo/allow-writer", NULL},
    {"api", B, "writer", "POST", ECHO, "/api/v1/x/../items/a", NULL, ECHO, NULL, 0, ALLOW,
     "demo/allow-writer", NULL},
    {"api", B, "client", "POST", ECHO, "/api/v1/items/a", NULL, ECHO, NULL, 0, DENY, "", NULL},
    {"api", B, "client", "GET", ECHO, "/api/x", "x-debug: 1\n", ECHO, NULL, 0, DENY,
     "demo/deny-debug", NULL},
    {"api", B, "client", "GET", ECHO, "/api/x", "X-DEBUG: trueish\n", ECHO, NULL, 0, DENY,
     "demo/deny-debug", NULL},
    {"api", B, "client", "GET", ECHO, "/api/x", "x-debug: 0\n", ECHO, NULL, 0, ALLOW,
     "demo/allow-reader", NULL},
    {"api", B, "client", "GET", ECHO, "/api/x", "x-debug: TRUE\n", ECHO, NULL, 0, ALLOW,
     "demo/allow-reader", NULL}, /* header values are case-sensitive */
    /* Repeats are joined with ',': "0,1" is not "1" ... */
    {"api", B, "client", "GET", ECHO, "/api/x", "x-debug: 0\nx-debug: 1\n", ECHO, NULL, 0, ALLOW,
     "demo/allow-reader", NULL},
    /* ... and "true,0" starts with "true". */
    {"api", B, "client", "GET", ECHO, "/api/x", "x-debug: true\nx-debug: 0\n", ECHO, NULL, 0, DENY,
     "demo/deny-debug", NULL},
    {"api", B, "client", "GET", "Evil.Example.com", "/api/x", NULL, ECHO, NULL, 0, DENY,
     "demo/deny-evil-host", NULL},
    {"api", B, "client", "GET", "good.example", "/api/x", NULL, ECHO, NULL, 0, ALLOW,
     "demo/allow-reader", NULL},
    /* Service hostnames are DNS names: any case. */
    {"api", B, "client", "GET", ECHO, "/api/x", NULL, "ECHO.demo.svc.cluster.local", NULL, 0, ALLOW,
     "demo/allow-reader", NULL},
    /* Another Service: only its own (empty) ALLOW applies, and it never matches. */
    {"api", B, "client", "GET", ECHO, "/api/x", NULL, "other.demo.svc.cluster.local", NULL, 0, DENY,
     "", NULL},
    /* A third Service: no ALLOW applies at all ("other/allow-all" is another waypoint's). */
    {"api", B, "client", "DELETE", ECHO, "/x", NULL, "third.demo.svc.cluster.local", NULL, 0, ALLOW,
     "", NULL},
    {"api", B, "client", "GET", "evil.example", "/x", NULL, "third.demo.svc.cluster.local", NULL, 0,
     DENY, "demo/deny-evil-host", NULL},

    /* host: case-insensitive, port as received. */
    {"host", B, "client", "GET", ECHO, "/", NULL, ECHO, NULL, 0, ALLOW, "demo/allow-echo-host",
     NULL},
    {"host", B, "client", "GET", "ECHO.Demo.svc.cluster.LOCAL", "/", NULL, ECHO, NULL, 0, ALLOW,
     "demo/allow-echo-host", NULL},
    /* Envoy does not strip the port from :authority: the exact host no longer matches. */
    {"host", B, "client", "GET", ECHO ":80", "/", NULL, ECHO, NULL, 0, DENY, "", NULL},
    {"host", B, "client", "GET", "echo.demo:8080", "/", NULL, ECHO, NULL, 0, ALLOW,
     "demo/allow-echo-host", NULL},
    {"host", B, "client", "GET", "echo.demo", "/", NULL, ECHO, NULL, 0, DENY, "", NULL},
    {"host", B, "client", "GET", "", "/", NULL, ECHO, NULL, 0, DENY, "", NULL},

    /* not: negative lists; request principals never match without JWT. */
    {"not", B, "client", "GET", ECHO, "/x", "x-trace: a\n", ECHO, NULL, 0, ALLOW,
     "demo/allow-public", NULL},
    {"not", B, "client", "DELETE", ECHO, "/x", "x-trace: a\n", ECHO, NULL, 0, DENY, "", NULL},
    {"not", B, "client", "GET", ECHO, "/private/x", "x-trace: a\n", ECHO, NULL, 0, DENY, "", NULL},
    {"not", B, "client", "GET", ECHO, "/public/../private/x", "x-trace: a\n", ECHO, NULL, 0, DENY,
     "", NULL},
    /* notValues ["*"]: holds when the header is absent ... */
    {"not", B, "client", "GET", ECHO, "/x", NULL, ECHO, NULL, 0, DENY, "demo/deny-no-trace", NULL},
    /* ... and not when present, even empty. */
    {"not", B, "client", "GET", ECHO, "/x", "x-trace: \n", ECHO, NULL, 0, ALLOW,
     "demo/allow-public", NULL},
    /* Repeated headers are matched joined: "a" then "b" is "a,b". */
    {"not", B, "client", "GET", ECHO, "/x", "x-trace: t\nx-env: a\nx-env: b\n", ECHO, NULL, 0, DENY,
     "demo/deny-env-ab", NULL},
    {"not", B, "client", "GET", ECHO, "/x", "x-trace: t\nx-env: a\n", ECHO, NULL, 0, ALLOW,
     "demo/allow-public", NULL},
    {"not", B, "client", "GET", ECHO, "/x", "x-trace: t\nx-env: a,b\n", ECHO, NULL, 0, DENY,
     "demo/deny-env-ab", NULL},

    /* jwt: no request principal (no RequestAuthentication yet) -> denied on /secure/. */
    {"jwt", B, "client", "GET", ECHO, "/secure/x", NULL, ECHO, NULL, 0, DENY, "demo/require-jwt",
     NULL},
    {"jwt", B, "client", "GET", ECHO, "/public", NULL, ECHO, NULL, 0, ALLOW, "", NULL},
    {"jwt", B, "client", "GET", ECHO, "/secure/x", NULL, ECHO, NULL, 0, ALLOW, "",
     "issuer/subject"},

    /* l4: source blocks, ports, namespaces through lib/policy. */
    {"l4", B, "client", "GET", ECHO, "/", NULL, ECHO, "198.18.9.5", 8080, DENY, "demo/deny-lab",
     NULL},
    {"l4", B, "client", "GET", ECHO, "/", NULL, ECHO, "::ffff:198.18.9.5", 8080, DENY,
     "demo/deny-lab", NULL},
    {"l4", B, "client", "GET", ECHO, "/", NULL, ECHO, "2001:db8:9::7", 8080, DENY, "demo/deny-lab",
     NULL},
    {"l4", B, "client", "GET", ECHO, "/", NULL, ECHO, "198.18.9.5", 80, ALLOW, "", NULL},
    {"l4", B, "client", "GET", ECHO, "/", NULL, ECHO, "198.18.10.5", 8080, ALLOW, "", NULL},
    {"l4", B, "client", "GET", ECHO, "/ours/x", NULL, ECHO, NULL, 0, ALLOW, "", NULL},
    {"l4", B, "intruder", "GET", ECHO, "/ours/x", NULL, ECHO, NULL, 0, DENY, "demo/deny-not-ours",
     NULL},
    /* Without identity the namespace is "": not one of ours, so denied. */
    {"l4", B, NULL, "GET", ECHO, "/ours/x", NULL, ECHO, NULL, 0, DENY, "demo/deny-not-ours", NULL},
    {"l4", B, "intruder", "GET", ECHO, "/theirs", NULL, ECHO, NULL, 0, ALLOW, "", NULL},
};

struct hdrs {
    char name[8][64];
    char value[8][64];
    size_t n;
};

static void
parse_headers(const char *text, struct hdrs *h)
{
    h->n = 0;
    while (text != NULL && *text != '\0') {
        const char *colon = strchr(text, ':'), *nl = strchr(text, '\n');
        CHECK(colon != NULL && nl != NULL && h->n < 8);
        snprintf(h->name[h->n], 64, "%.*s", (int)(colon - text), text);
        const char *v = colon + 1;
        while (*v == ' ')
            v++;
        snprintf(h->value[h->n], 64, "%.*s", (int)(nl - v), v);
        h->n++;
        text = nl + 1;
    }
}

/* The waypoint's lookup: names case-insensitive, values in arrival order. */
static bool
get_header(void *arg, const char *name, size_t i, const char **v, size_t *n)
{
    const struct hdrs *h = arg;
    for (size_t k = 0; k < h->n; k++) {
        if (strcasecmp(h->name[k], name) != 0)
            continue;
        if (i-- == 0) {
            *v = h->value[k];
            *n = strlen(h->value[k]);
            return true;
        }
    }
    return false;
}

static const char *const outcome_names[] = {"ALLOW", "DENY", "400"};

static void
run_case(const struct tcase *c, size_t idx, struct l7pol_set *s)
{
    struct policy_peer peer = {"cluster.local", c->client_ns, "default"};
    struct hdrs h;
    char norm[L7PATH_OUT_SIZE(256)];
    size_t len, plen;
    const char *why;
    struct l7pol_decision d;

    CHECK(strlen(c->path) <= 256);
    parse_headers(c->headers, &h);
    enum outcome got;
    if (l7path_normalize(c->mode, c->path, strlen(c->path), norm, sizeof(norm), &len, &plen, &why) <
        0) {
        got = BAD;
    } else {
        struct l7pol_request r = {
            .waypoint_ns = WP_NS,
            .waypoint_name = WP_NAME,
            .service_ns = c->svc ? WP_NS : NULL,
            .service_host = c->svc,
            .client = c->client_ns ? &peer : NULL,
            .dst_port = c->port ? c->port : 80,
            .method = c->method,
            .method_len = strlen(c->method),
            .host = c->host,
            .host_len = strlen(c->host),
            .path = norm,
            .path_len = plen,
            .header = get_header,
            .header_arg = &h,
            .request_principal = c->jwt,
        };
        CHECK(ipaddr_parse(c->src ? c->src : "198.18.0.10", &r.src_ip) == 0);
        CHECK(ipaddr_parse("198.19.0.10", &r.dst_ip) == 0);
        got = l7pol_check(s, &r, &d) == L7POL_ALLOWED ? ALLOW : DENY;
    }
    if (got != c->want)
        fail_msg("case %zu (%s %s %s %s): got %s, want %s", idx, c->set, l7path_mode_name(c->mode),
                 c->method, c->path, outcome_names[got], outcome_names[c->want]);
    if (got != BAD && c->policy != NULL && strcmp(d.policy, c->policy) != 0)
        fail_msg("case %zu (%s %s): decided by \"%s\", want \"%s\" (%s)", idx, c->set, c->path,
                 d.policy, c->policy, d.reason);
}

static void
test_table(void **state)
{
    (void)state;
    assert_true(ARRAY_LEN(cases) >= 60);
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        struct l7pol_set *s = build(cases[i].set);
        run_case(&cases[i], i, s);
        l7pol_set_unref(s);
    }
}

/* ---- structure: any rule, all clauses, any match; empty forms ---- */

static Amesh__Waypoint__V1__PolicyMatch *
method_match(const char *m)
{
    Amesh__Waypoint__V1__PolicyMatch *pm = xmalloc(sizeof(*pm));
    amesh__waypoint__v1__policy_match__init(pm);
    if (m != NULL) {
        pm->n_methods = 1;
        pm->methods = xcalloc(1, sizeof(*pm->methods));
        pm->methods[0] = l7spec_str(m);
    }
    return pm;
}

static struct l7pol *
decode_pb(Amesh__Waypoint__V1__Policy *pb)
{
    struct l7pol *p;
    char err[512];
    size_t len;
    uint8_t *buf = l7spec_pack_pb(pb, &len);
    protobuf_c_message_free_unpacked(&pb->base, NULL);
    if (l7pol_decode(buf, len, &p, err, sizeof(err)) < 0)
        fail_msg("%s", err);
    free(buf);
    return p;
}

static bool
allowed(struct l7pol *p, const char *method, const char *path)
{
    struct l7pol_request r = {.waypoint_ns = WP_NS,
                              .waypoint_name = WP_NAME,
                              .method = method,
                              .method_len = strlen(method),
                              .host = "h",
                              .host_len = 1,
                              .path = path,
                              .path_len = strlen(path)};
    struct l7pol_set *s = l7pol_set_build(&p, 1);
    bool ok = l7pol_check(s, &r, NULL) == L7POL_ALLOWED;
    l7pol_set_unref(s);
    return ok;
}

static void
test_structure(void **state)
{
    (void)state;
    /* ALLOW: rule 0 = (GET or HEAD or <empty match>) and (path /x*); rule 1 = (PUT). */
    struct l7spec base = {.ns = WP_NS, .name = "s", .gateway = WP_NAME, .paths = {"/x*"}};
    Amesh__Waypoint__V1__Policy *pb = l7spec_pb(&base);
    Amesh__Waypoint__V1__PolicyRule *r0 = pb->rules[0];
    Amesh__Waypoint__V1__PolicyClause *c1 = xmalloc(sizeof(*c1));
    amesh__waypoint__v1__policy_clause__init(c1);
    c1->n_matches = 3;
    c1->matches = xcalloc(3, sizeof(*c1->matches));
    c1->matches[0] = method_match("GET");
    c1->matches[1] = method_match("HEAD");
    c1->matches[2] = method_match(NULL); /* empty: skipped, never matches */
    r0->clauses = xrealloc(r0->clauses, 2 * sizeof(*r0->clauses));
    r0->clauses[r0->n_clauses++] = c1;
    Amesh__Waypoint__V1__PolicyRule *r1 = xmalloc(sizeof(*r1));
    amesh__waypoint__v1__policy_rule__init(r1);
    r1->n_clauses = 1;
    r1->clauses = xcalloc(1, sizeof(*r1->clauses));
    r1->clauses[0] = xmalloc(sizeof(*r1->clauses[0]));
    amesh__waypoint__v1__policy_clause__init(r1->clauses[0]);
    r1->clauses[0]->n_matches = 1;
    r1->clauses[0]->matches = xcalloc(1, sizeof(*r1->clauses[0]->matches));
    r1->clauses[0]->matches[0] = method_match("PUT");
    pb->rules = xrealloc(pb->rules, 2 * sizeof(*pb->rules));
    pb->rules[pb->n_rules++] = r1;
    struct l7pol *p = decode_pb(pb);

    assert_true(allowed(p, "GET", "/x"));
    assert_true(allowed(p, "HEAD", "/xy"));
    assert_false(allowed(p, "GET", "/y"));  /* clause 0 fails */
    assert_false(allowed(p, "POST", "/x")); /* clause 1 fails; the empty match does not count */
    assert_true(allowed(p, "PUT", "/anything")); /* rule 1 */
    l7pol_unref(p);

    /* rules: [] never matches; rules: [{}] matches everything. */
    struct l7spec none = {.ns = WP_NS, .name = "none", .gateway = WP_NAME, .no_rules = true};
    struct l7spec all = {.ns = WP_NS, .name = "all", .gateway = WP_NAME, .empty_rule = true};
    p = l7spec_decode(&none);
    assert_false(allowed(p, "GET", "/"));
    l7pol_unref(p);
    p = l7spec_decode(&all);
    assert_true(allowed(p, "GET", "/"));
    l7pol_unref(p);
    all.action = 1;
    p = l7spec_decode(&all);
    assert_false(allowed(p, "GET", "/"));
    l7pol_unref(p);
}

/* ---- sets ---- */

static void
test_set_update(void **state)
{
    (void)state;
    struct l7spec a = {
        .ns = WP_NS, .name = "b-deny", .action = 1, .gateway = WP_NAME, .paths = {"/x"}};
    struct l7spec b = {
        .ns = WP_NS, .name = "a-deny", .action = 1, .gateway = WP_NAME, .paths = {"/x"}};
    struct l7pol *pa = l7spec_decode(&a), *pb = l7spec_decode(&b);
    struct l7pol *ps[2] = {pa, pb};
    struct l7pol_set *s1 = l7pol_set_build(ps, 2);
    struct l7pol_request r = {.waypoint_ns = WP_NS,
                              .waypoint_name = WP_NAME,
                              .method = "GET",
                              .method_len = 3,
                              .path = "/x",
                              .path_len = 2};
    struct l7pol_decision d;

    /* Key order decides which of two matching DENYs is named, not arrival order. */
    assert_int_equal(l7pol_set_count(s1), 2);
    assert_string_equal(l7pol_key(l7pol_set_at(s1, 0)), "demo/a-deny");
    assert_int_equal(l7pol_check(s1, &r, &d), L7POL_DENIED);
    assert_string_equal(d.policy, "demo/a-deny");
    assert_ptr_equal(d.reason, L7POL_REASON_DENIED);

    /* Replace a-deny with a version on another path; remove b-deny: allowed. */
    b.paths[0] = "/y";
    struct l7pol *pb2 = l7spec_decode(&b);
    const char *rm[] = {"demo/b-deny", "demo/absent"};
    struct l7pol_set *s2 = l7pol_set_update(s1, &pb2, 1, rm, 2);
    assert_int_equal(l7pol_set_count(s2), 1);
    assert_ptr_equal(l7pol_set_get(s2, "demo/a-deny"), pb2);
    assert_null(l7pol_set_get(s2, "demo/b-deny"));
    assert_int_equal(l7pol_check(s2, &r, &d), L7POL_ALLOWED);
    assert_ptr_equal(d.reason, L7POL_REASON_NO_ALLOW);
    /* The old set is untouched (a request holding it decides as before). */
    assert_int_equal(l7pol_check(s1, &r, &d), L7POL_DENIED);
    assert_int_equal(l7pol_check(NULL, &r, &d), L7POL_ALLOWED);

    l7pol_unref(pa);
    l7pol_unref(pb);
    l7pol_unref(pb2);
    l7pol_set_unref(s1);
    /* s2's policies outlive s1 and the caller's references. */
    assert_int_equal(l7pol_check(s2, &r, &d), L7POL_ALLOWED);
    l7pol_set_unref(s2);
}

/*
 * The target index against the definition: every policy of the set whose
 * l7pol_applies() holds, DENYs then ALLOWs in key order. 400 policies over
 * 4 Gateways (two namespaces, same names), 20 Services (hostnames in mixed
 * case), some naming a Gateway and a Service, some one target twice.
 */
static void
brute(const struct l7pol_set *s, const struct l7pol_request *r, bool *allow, const char **by)
{
    bool any_allow = false;
    *by = "";
    for (int pass = 0; pass < 2; pass++) {
        for (size_t i = 0; i < l7pol_set_count(s); i++) {
            const struct l7pol *p = l7pol_set_at(s, i);
            if ((int)l7pol_action(p) != (pass == 0 ? L7POL_DENY : L7POL_ALLOW) ||
                !l7pol_applies(p, r))
                continue;
            any_allow |= pass == 1;
            if (l7pol_matches(p, r)) {
                *allow = pass == 1;
                *by = l7pol_key(p);
                return;
            }
        }
    }
    *allow = !any_allow;
}

static void
test_index(void **state)
{
    (void)state;
    static const char *const nss[] = {"demo", "prod"};
    static const char *const gws[] = {"waypoint", "wp2"};
    static const char *const methods[] = {"GET", "POST", "PUT", "DELETE"};
    struct l7pol *ps[400];
    char names[400][32], hosts[20][64];

    for (size_t k = 0; k < 20; k++)
        snprintf(hosts[k], sizeof(hosts[k]),
                 k % 3 ? "svc%zu.demo.svc.cluster.local" : "SVC%zu.Demo.svc.cluster.local", k);
    for (size_t i = 0; i < 400; i++) {
        snprintf(names[i], sizeof(names[i]), "p%03zu", (i * 7919) % 400); /* not in key order */
        struct l7spec sp = {.ns = nss[i % 2],
                            .name = names[i],
                            .action = (int)(i % 3 == 0),
                            .methods = {methods[i % 4]}};
        if (i % 5 != 4)
            sp.svc_ns = nss[(i / 2) % 2], sp.svc_host = hosts[i % 20];
        if (i % 5 >= 3)
            sp.gateway = gws[(i / 5) % 2];
        Amesh__Waypoint__V1__Policy *pb = l7spec_pb(&sp);
        if (i % 11 == 0 && pb->n_targets > 0) { /* the same target twice */
            Amesh__Waypoint__V1__Target *t = pb->targets[0];
            size_t len = amesh__waypoint__v1__target__get_packed_size(t);
            uint8_t *buf = xmalloc(len + 1);
            amesh__waypoint__v1__target__pack(t, buf);
            pb->targets = xrealloc(pb->targets, (pb->n_targets + 1) * sizeof(*pb->targets));
            pb->targets[pb->n_targets++] = (Amesh__Waypoint__V1__Target *)protobuf_c_message_unpack(
                &amesh__waypoint__v1__target__descriptor, NULL, len, buf);
            free(buf);
        }
        ps[i] = decode_pb(pb);
    }
    struct l7pol_set *s = l7pol_set_build(ps, 400);
    size_t checked = 0, denied = 0;
    for (size_t n = 0; n < 2; n++)
        for (size_t g = 0; g < 3; g++)
            for (size_t h = 0; h < 21; h++)
                for (size_t m = 0; m < 4; m++) {
                    char host[64];
                    snprintf(host, sizeof(host), "svc%zu.demo.svc.cluster.local", h);
                    struct l7pol_request r = {.waypoint_ns = nss[n],
                                              .waypoint_name = g < 2 ? gws[g] : NULL,
                                              .service_ns = h < 20 ? nss[(n + h) % 2] : NULL,
                                              .service_host = h < 20 ? host : NULL,
                                              .method = methods[m],
                                              .method_len = strlen(methods[m]),
                                              .path = "/",
                                              .path_len = 1};
                    struct l7pol_decision d;
                    bool want;
                    const char *by;
                    brute(s, &r, &want, &by);
                    bool got = l7pol_check(s, &r, &d) == L7POL_ALLOWED;
                    if (got != want || strcmp(d.policy, by) != 0)
                        fail_msg("%s/%s %s %s: index %d by \"%s\", definition %d by \"%s\"", nss[n],
                                 g < 2 ? gws[g] : "-", h < 20 ? host : "-", methods[m], got,
                                 d.policy, want, by);
                    checked++;
                    denied += !got;
                }
    assert_true(denied > 50 && denied < checked - 50); /* both outcomes exercised */
    for (size_t i = 0; i < 400; i++)
        l7pol_unref(ps[i]);
    l7pol_set_unref(s);
}

/* ---- dump ---- */

static void
test_dump(void **state)
{
    (void)state;
    struct l7pol_set *s = build("api");
    json_t *j = l7pol_set_to_json(s);
    char *text = json_dumps(j, JSON_SORT_KEYS | JSON_COMPACT);
    /* Sorted by key; Service hostnames and hosts lower case; l4 in lib/policy's form. */
    assert_non_null(
        strstr(text, "{\"policies\":[{\"action\":\"ALLOW\",\"name\":\"allow-none-other\""));
    assert_non_null(strstr(text, "\"methods\":[{\"exact\":\"GET\"},{\"exact\":\"HEAD\"}]"));
    assert_non_null(strstr(text, "\"paths\":[{\"template\":\"/api/{*}/items/{**}\"}]"));
    assert_non_null(
        strstr(text, "\"l4\":{\"principals\":[{\"prefix\":\"cluster.local/ns/client/sa/\"}]}"));
    assert_non_null(strstr(text, "\"headers\":[{\"name\":\"x-debug\",\"values\":[{\"exact\":\"1\"},"
                                 "{\"prefix\":\"true\"}]}]"));
    assert_non_null(strstr(text, "\"targets\":[{\"gateway\":\"waypoint\"}]"));
    assert_non_null(
        strstr(text, "{\"service\":{\"hostname\":\"" ECHO "\",\"namespace\":\"demo\"}}"));
    assert_non_null(strstr(text, "\"rules\":[]"));
    free(text);
    json_decref(j);
    l7pol_set_unref(s);
}

/* ---- fuzz seeds ---- */

static int
write_corpus(const char *dir)
{
    size_t n = 0;
    for (size_t i = 0; i < ARRAY_LEN(sets); i++) {
        for (size_t k = 0; k < sets[i].n; k++) {
            char path[1024];
            size_t len;
            uint8_t *buf = l7spec_pack(&sets[i].specs[k], &len);
            snprintf(path, sizeof(path), "%s/%s-%s", dir, sets[i].name, sets[i].specs[k].name);
            FILE *f = fopen(path, "wb");
            if (f == NULL || fwrite(buf, 1, len, f) != len) {
                perror(path);
                return 1;
            }
            fclose(f);
            free(buf);
            n++;
        }
    }
    printf("%zu seeds in %s\n", n, dir);
    return 0;
}

int
main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "--write-corpus") == 0)
        return write_corpus(argv[2]);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table),      cmocka_unit_test(test_structure),
        cmocka_unit_test(test_set_update), cmocka_unit_test(test_index),
        cmocka_unit_test(test_dump),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
