/*
 * fuzz_pbjson.c - proto3 JSON to wire bytes (lib/pbjson) for the waypoint's Route and
 * Policy: whatever the encoder accepts must unpack with protobuf-c (the wire it writes is
 * well formed) and go through the real decoders without trouble.
 */
#include <stdint.h>
#include <stdlib.h>

#include <jansson.h>

#include "l7policy/l7policy.h"
#include "pbjson/pbjson.h"
#include "route/route.h"
#include "waypoint.pb-c.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_t *j = json_loadb((const char *)data, size, JSON_DECODE_ANY, NULL);
    char err[512];
    uint8_t *b;
    size_t n;

    if (j == NULL)
        return 0;
    if (pbjson_encode(&amesh__waypoint__v1__route__descriptor, j, &b, &n, err, sizeof(err)) == 0) {
        ProtobufCMessage *m =
            protobuf_c_message_unpack(&amesh__waypoint__v1__route__descriptor, NULL, n, b);
        if (m == NULL)
            abort();
        protobuf_c_message_free_unpacked(m, NULL);
        struct route_table *t;
        if (route_decode(b, n, &t, err, sizeof(err)) == 0)
            route_table_unref(t);
        free(b);
    }
    if (pbjson_encode(&amesh__waypoint__v1__policy__descriptor, j, &b, &n, err, sizeof(err)) == 0) {
        ProtobufCMessage *m =
            protobuf_c_message_unpack(&amesh__waypoint__v1__policy__descriptor, NULL, n, b);
        if (m == NULL)
            abort();
        protobuf_c_message_free_unpacked(m, NULL);
        struct l7pol *p;
        if (l7pol_decode(b, n, &p, err, sizeof(err)) == 0)
            l7pol_unref(p);
        free(b);
    }
    json_decref(j);
    return 0;
}
