/*
 * fuzz_route_match.c - the route matcher and actions on fuzzed rules and
 * fuzzed requests. Input: "<rules>\0<request>". The rules are the unit
 * tests' one-line spec (tests/unit/lib/route_build.h: "prefix=/a h=x:y
 * hr=v:re be=b:80:3 rw.prefix=/z ..."), built into a Route and decoded, so
 * fuzzed paths, regexes, header names and filters go through validation and
 * regex compilation; a spec that does not compile falls back to a fixed
 * table. The request is "METHOD\nPATH\nAUTHORITY\nname:value\n..." with any
 * bytes in it. Checks: the matched index agrees with route_decide, and the
 * strings an action builds start as they must and hold no control character
 * the request did not bring.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "route/route.h"
#include "route_build.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_HDRS 32

static const char fallback[] =
    "name=a exact=/exact m=GET be=a:80:1\n"
    "name=b prefix=/api/ h=version:v2 be=a:80:9 be=b:81:1 rw.prefix=/v2\n"
    "name=c regex=/(users|groups)/[0-9]+ qr=id:[a-f0-9]{1,8} be=c:80\n"
    "name=d prefix=/old redir.scheme=https redir.prefix=/new redir.status=301\n"
    "name=e prefix=/x hr=cookie:.*session=[^;]+.* set=x-a:1 add=x-b:2 rm=x-c be=e:80\n"
    "name=f direct=503 prefix=/down\n"
    "name=g be=z:80:0";

static bool
has_ctl(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return true;
    return false;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nul = memchr(data, 0, size);
    const char *spec = fallback;
    char *own = NULL;
    char err[ROUTE_ERR_MAX];
    struct route_table *t = NULL;

    if (nul != NULL && nul - data < 4096) {
        own = strndup((const char *)data, (size_t)(nul - data));
        spec = own;
        size -= (size_t)(nul - data) + 1;
        data = nul + 1;
    }
    size_t len;
    uint8_t *b = rb_build(spec, 8080, &len);
    if (route_decode(b, len, &t, err, sizeof(err)) != 0) {
        free(b);
        b = rb_build(fallback, 8080, &len);
        if (route_decode(b, len, &t, err, sizeof(err)) != 0)
            abort();
    }
    free(b);
    free(own);

    /* the request: lines, any bytes */
    char *req = malloc(size + 1);
    memcpy(req, data, size);
    req[size] = '\0';
    const char *line[3 + MAX_HDRS];
    size_t ll[3 + MAX_HDRS], n = 0;
    for (size_t i = 0, start = 0; i <= size && n < 3 + MAX_HDRS; i++) {
        if (i == size || req[i] == '\n') {
            line[n] = req + start;
            ll[n++] = i - start;
            start = i + 1;
        }
    }
    for (; n < 3; n++) {
        line[n] = "";
        ll[n] = 0;
    }
    struct route_hdr h[MAX_HDRS];
    size_t nh = 0;
    bool ctl = has_ctl(line[1], ll[1]) || has_ctl(line[2], ll[2]);
    for (size_t i = 3; i < n; i++) {
        const char *c = memchr(line[i], ':', ll[i]);
        size_t nl = c ? (size_t)(c - line[i]) : ll[i];
        h[nh++] = (struct route_hdr){line[i], nl, c ? c + 1 : line[i] + ll[i],
                                     c ? ll[i] - nl - 1 : 0};
    }
    struct route_req r = {.method = line[0],
                          .method_len = ll[0],
                          .path = line[1],
                          .path_len = ll[1],
                          .scheme = size % 2 ? "https" : "http",
                          .authority = line[2],
                          .authority_len = ll[2],
                          .headers = h,
                          .n_headers = nh};
    uint32_t rnd = 2166136261u;
    for (size_t i = 0; i < size; i++)
        rnd = (rnd ^ data[i]) * 16777619u;

    long idx = route_match(t, &r);
    struct route_action a;
    route_decide(t, &r, rnd, &a);
    if ((idx < 0) != (a.rule == NULL))
        abort();
    if (a.kind == ROUTE_REDIRECT) {
        if (strncmp(a.location, "http://", 7) != 0 && strncmp(a.location, "https://", 8) != 0)
            abort();
        if (!ctl && has_ctl(a.location, strlen(a.location)))
            abort();
    }
    if (a.kind == ROUTE_FORWARD) {
        if (a.backend_host == NULL)
            abort();
        if (a.path && (a.path[0] != '/' || (!ctl && has_ctl(a.path, strlen(a.path)))))
            abort();
    }
    struct route_hdr_list l = {0};
    l.v = malloc(sizeof(h));
    memcpy(l.v, h, nh * sizeof(*h));
    l.n = nh;
    l.cap = MAX_HDRS;
    route_hdrs_apply(a.request_headers, &l);
    for (size_t i = 0; i < l.n; i++)
        if (l.v[i].name_len == 0 && nh == 0)
            abort();
    route_hdr_list_free(&l);
    route_action_clear(&a);
    route_table_unref(t);
    free(req);
    return 0;
}
