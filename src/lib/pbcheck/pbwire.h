/*
 * pbwire.h - reading protobuf wire data field by field, for the walks that check peer bytes
 * before protobuf-c unpacks them (pbcheck itself, and the per-schema caps of lib/policy,
 * lib/route and lib/l7policy).
 */
#ifndef MESH_LIB_PBWIRE_H
#define MESH_LIB_PBWIRE_H

#include <stddef.h>
#include <stdint.h>

/* One field read off the wire. */
struct pb_field {
    uint32_t num;        /* field number, >= 1 */
    unsigned type;       /* wire type: 0 varint, 1 fixed64, 2 length-delimited, 5 fixed32 */
    const uint8_t *data; /* type 2: the payload; else where the value starts */
    size_t len;          /* type 2: the payload's length; else 0 */
};

/* A varint of at most 10 bytes at *p (advanced). Returns 0, or -1 if cut short or too long. */
int pb_wire_varint(const uint8_t **p, const uint8_t *end, uint64_t *v);

/*
 * The next field of [*p, end), *p advanced past it. Returns 1, 0 at the end, or -1 when
 * malformed: a tag, varint or length cut short or out of bounds, field number 0 or past
 * 2^32-1, or a group (wire types 3 and 4: proto3 has none and protobuf-c cannot read them).
 */
int pb_wire_next(const uint8_t **p, const uint8_t *end, struct pb_field *f);

#endif
