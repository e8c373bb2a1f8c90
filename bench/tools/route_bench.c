/*
 * route_bench.c - ns per route_decide() on a 12-rule table (5 prefixes, 2 header
 * matches, exact + method, 2 regexes one of them on a header, a rewrite, a 90/10
 * split) for three paths, 1M decisions each. Use the release build:
 * build/bin/route_bench.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "route/route.h"
#include "route_build.h"

static const char spec[] = "prefix=/a1 be=a:80\nprefix=/a2 be=a:80\nprefix=/a3 be=a:80\n"
                           "prefix=/a4 be=a:80\nprefix=/a5 be=a:80\n"
                           "prefix=/b h=x-env:canary be=b:80\nprefix=/b h=x-user:42 be=b:80\n"
                           "exact=/c/d m=POST be=c:80\n"
                           "regex=/users/[0-9]+/orders be=u:80\n"
                           "regex=/api/v[12]/items/[a-z0-9-]+ hr=user-agent:.*curl.* be=i:80\n"
                           "prefix=/static rw.prefix=/assets be=s:80\n"
                           "be=v1:80:90 be=v2:80:10";

int
main(void)
{
    static const char *const paths[] = {"/api/v2/items/abc-123?x=1", "/productpage",
                                        "/static/css/a.css"};
    struct route_hdr h[] = {{"user-agent", 10, "curl/7.88.1", 11},
                            {"accept", 6, "*/*", 3},
                            {"host", 4, "reviews:9080", 12}};
    struct route_table *t;
    char err[ROUTE_ERR_MAX];
    size_t len;
    uint8_t *b = rb_build(spec, 80, &len);

    if (route_decode(b, len, &t, err, sizeof(err)) != 0) {
        fprintf(stderr, "route_bench: %s\n", err);
        return 1;
    }
    free(b);
    for (size_t p = 0; p < sizeof(paths) / sizeof(paths[0]); p++) {
        struct route_req r = {"GET", 3, paths[p], strlen(paths[p]), "http", "reviews:9080", 12,
                              h, 3};
        const int n = 1000000;
        struct timespec a, z;
        clock_gettime(CLOCK_MONOTONIC, &a);
        for (int i = 0; i < n; i++) {
            struct route_action x;
            route_decide(t, &r, (uint32_t)i * 2654435761u, &x);
            route_action_clear(&x);
        }
        clock_gettime(CLOCK_MONOTONIC, &z);
        printf("%-28s %4.0f ns per route_decide (12 rules)\n", paths[p],
               ((double)(z.tv_sec - a.tv_sec) * 1e9 + (double)(z.tv_nsec - a.tv_nsec)) / n);
    }
    route_table_unref(t);
    return 0;
}
