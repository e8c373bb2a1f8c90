/*
 * pbjson.h - proto3 JSON into protobuf wire bytes, driven by a protobuf-c descriptor, for
 * config that people write by hand (the waypoint's local config: routes, policies) but that
 * the proxies only accept as the bytes meshd would send, so one decoder checks both.
 *
 * Accepted: field names as in the .proto or in lowerCamelCase; strings; numbers or decimal
 * strings for integers; true/false; enum names or numbers; lists for repeated fields;
 * objects for messages; google.protobuf.Duration as "1.5s"; null as absent. Refused: unknown
 * fields, two members of one oneof, wrong JSON types, out-of-range numbers, maps and bytes
 * fields (none of our configs has one), nesting deeper than PBJSON_MAX_DEPTH, output larger
 * than PBJSON_MAX_BYTES. Errors name the path: "rules[0].match.headers[1].name: ...".
 */
#ifndef MESH_LIB_PBJSON_H
#define MESH_LIB_PBJSON_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <protobuf-c/protobuf-c.h>

#define PBJSON_MAX_DEPTH 32
#define PBJSON_MAX_BYTES (4 * 1024 * 1024)

/*
 * Encodes |j| (an object) as a |desc| message. Returns 0 with *out (malloc'd, free()) and
 * *len, or -MESH_ECONFIG / -MESH_ELIMIT with one line in |err|.
 */
int pbjson_encode(const ProtobufCMessageDescriptor *desc, const json_t *j, uint8_t **out,
                  size_t *len, char *err, size_t errlen);

#endif
