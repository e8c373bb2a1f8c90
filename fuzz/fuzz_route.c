/*
 * fuzz_route.c - amesh.waypoint.v1.Route values from xDS (route_decode). A
 * route that compiles is dumped, put in a store under its own name (then
 * replaced and removed), and every sample request is decided on it: the
 * action must be consistent (a backend for FORWARD, a Location for REDIRECT,
 * statuses in range, built strings free of control characters).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "route/route.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
no_ctl(const char *s)
{
    for (; s && *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            abort();
}

static void
decide_all(const struct route_table *t)
{
    static const char *const paths[] = {"/", "/foo", "/foo/", "/foo/bar?x=1&y", "/a%2fb",
                                        "/api/v1/users/123", "", "/?q"};
    static const char *const methods[] = {"GET", "POST", "put"};
    struct route_hdr h[] = {{"version", 7, "v2", 2}, {"X-Env", 5, "canary", 6},
                            {"x-env", 5, "prod", 4}, {"host", 4, "svc:8080", 8}};
    for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
        struct route_req r = {.method = methods[i % 3],
                              .method_len = strlen(methods[i % 3]),
                              .path = paths[i],
                              .path_len = strlen(paths[i]),
                              .scheme = i % 2 ? "https" : "http",
                              .authority = i % 3 ? "svc:8080" : "[2001:db8::1]:80",
                              .authority_len = i % 3 ? 8 : 16,
                              .headers = h,
                              .n_headers = i % 5};
        struct route_action a;
        route_decide(t, &r, (uint32_t)(i * 0x9e3779b9u), &a);
        switch (a.kind) {
        case ROUTE_FORWARD:
            if (a.backend_host == NULL || a.backend_port == 0 || a.location)
                abort();
            if (a.path && a.path[0] != '/')
                abort();
            no_ctl(a.path);
            no_ctl(a.authority);
            break;
        case ROUTE_REDIRECT:
            if (a.location == NULL || strncmp(a.location, "http", 4) != 0 || a.status < 301 ||
                a.status > 308)
                abort();
            no_ctl(a.location);
            break;
        case ROUTE_DIRECT:
            if (a.status < 200 || a.status > 599)
                abort();
            break;
        default:
            abort();
        }
        struct route_hdr_list l = {0};
        route_hdrs_apply(a.request_headers, &l);
        route_hdrs_apply(a.response_headers, &l);
        route_hdr_list_free(&l);
        route_action_clear(&a);
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct route_table *t = NULL;
    char err[ROUTE_ERR_MAX];

    if (route_decode(data, size, &t, err, sizeof(err)) != 0) {
        if (t != NULL || err[0] == '\0')
            abort();
        no_ctl(err);
        return 0;
    }
    decide_all(t);
    json_t *j = route_table_dump(t);
    if (j == NULL)
        abort();
    char *text = json_dumps(j, 0);
    free(text);
    json_decref(j);

    struct route_store st;
    route_store_init(&st);
    struct route_update u[2] = {{route_table_key(t), data, size}, {route_table_key(t), NULL, 0}};
    if (route_store_apply(&st, u, 1, err, sizeof(err)) != 0)
        abort(); /* it decoded once: it must decode again */
    struct route_set *s = route_store_get(&st);
    if (route_set_count(s) != 1)
        abort();
    if (route_store_apply(&st, u, 2, err, sizeof(err)) != 0) /* replace, then remove */
        abort();
    if (route_set_count(s) != 1) /* the set taken before the swap is unchanged */
        abort();
    route_set_unref(s);
    s = route_store_get(&st);
    if (route_set_count(s) != 0)
        abort();
    route_set_unref(s);
    route_store_destroy(&st);
    route_table_unref(t);
    return 0;
}
