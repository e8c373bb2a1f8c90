/*
 * route_sample.c - the C side of the Route round trip (route_interop.sh):
 *   route_sample decode FILE        lib/route decodes FILE, prints its table as JSON
 *   route_sample encode FILE SPEC   packs the Route of SPEC (tests/unit/lib/route_build.h)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "route/route.h"
#include "route_build.h"

int
main(int argc, char **argv)
{
    if (argc >= 3 && strcmp(argv[1], "decode") == 0) {
        static uint8_t buf[ROUTE_MAX_BYTES + 1];
        FILE *f = fopen(argv[2], "rb");
        if (f == NULL)
            return 2;
        size_t n = fread(buf, 1, sizeof(buf), f);
        fclose(f);
        struct route_table *t;
        char err[ROUTE_ERR_MAX];
        if (route_decode(buf, n, &t, err, sizeof(err)) != 0) {
            printf("error: %s\n", err);
            return 1;
        }
        json_t *j = route_table_dump(t);
        char *s = json_dumps(j, JSON_SORT_KEYS);
        puts(s);
        free(s);
        json_decref(j);
        route_table_unref(t);
        return 0;
    }
    if (argc >= 4 && strcmp(argv[1], "encode") == 0) {
        size_t len;
        uint8_t *b = rb_build(argv[3], 8080, &len);
        FILE *f = fopen(argv[2], "wb");
        if (f == NULL || fwrite(b, 1, len, f) != len)
            return 2;
        fclose(f);
        free(b);
        return 0;
    }
    fprintf(stderr, "usage: route_sample decode FILE | encode FILE SPEC\n");
    return 2;
}
