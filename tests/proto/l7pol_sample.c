/*
 * l7pol_sample.c - the C side of the amesh.waypoint.v1.Policy round trip
 * with python3-protobuf (tests/proto/interop.sh, pb_check.py).
 *
 *   l7pol_sample encode FILE   writes a Policy built with protobuf-c
 *   l7pol_sample dump FILE     decodes a Policy with l7pol_decode() and prints its JSON dump,
 *                              or the decoder's error (exit 1)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "unit_l7pol.h"

static const struct l7spec sample = {
    .ns = "demo",
    .name = "deny-admin",
    .action = 1,
    .gateway = "waypoint",
    .svc_ns = "demo",
    .svc_host = "echo.demo.svc.cluster.local",
    .paths = {"/admin", "/admin/*", "/api/{*}/secret/{**}"},
    .not_methods = {"GET", "HEAD"},
    .hosts = {"echo.demo*"},
    .header = "x-debug",
    .values = {"1", "*"},
    .principals = {"cluster.local/ns/client/sa/*"},
    .source_ips = {"198.18.9.0/24"},
    .ports = {8080},
};

static int
encode(const char *path)
{
    size_t len;
    uint8_t *buf = l7spec_pack(&sample, &len);
    FILE *f = fopen(path, "wb");
    if (f == NULL || fwrite(buf, 1, len, f) != len) {
        perror(path);
        return 1;
    }
    fclose(f);
    free(buf);
    return 0;
}

static int
dump(const char *path)
{
    static uint8_t b[L7POL_MAX_BYTES];
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        perror(path);
        return 1;
    }
    size_t n = fread(b, 1, sizeof(b), f);
    fclose(f);
    struct l7pol *p;
    char err[512];
    if (l7pol_decode(b, n, &p, err, sizeof(err)) < 0) {
        printf("error: %s\n", err);
        return 1;
    }
    json_t *j = l7pol_to_json(p);
    json_dumpf(j, stdout, JSON_SORT_KEYS | JSON_COMPACT);
    printf("\n");
    json_decref(j);
    l7pol_unref(p);
    return 0;
}

int
main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "encode") == 0)
        return encode(argv[2]);
    if (argc == 3 && strcmp(argv[1], "dump") == 0)
        return dump(argv[2]);
    fprintf(stderr, "usage: l7pol_sample encode FILE | dump FILE\n");
    return 2;
}
