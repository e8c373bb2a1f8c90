/*
 * pbcheck.c - the wire walk in front of protobuf-c's unpack (see pbcheck.h).
 *
 * One loop over an explicit stack of open messages, each with its descriptor
 * and the end of its bytes; a known message field pushes, reaching the end of
 * a message pops. The stack is an array of PB_DEPTH_CAP frames, so neither the
 * input nor max_depth can make it grow.
 */
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>

#include "base/base.h"
#include "pbcheck/pbcheck.h"
#include "pbcheck/pbwire.h"

#define PB_DEPTH_CAP 100        /* max_depth is clamped to this (protobuf's own default) */
#define VARINT_MAX   10         /* bytes in a 64-bit varint */
#define FIELD_MAX    536870911u /* 2^29 - 1, the largest field number */

enum wire { W_VARINT = 0, W_I64 = 1, W_LEN = 2, W_SGROUP = 3, W_EGROUP = 4, W_I32 = 5 };

struct frame {
    const ProtobufCMessageDescriptor *desc;
    const uint8_t *p, *end;
};

__attribute__((format(printf, 4, 5))) static int
refuse(char *err, size_t errlen, int rc, const char *fmt, ...)
{
    va_list ap;

    if (errlen > 0) {
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return rc;
}

int
pb_wire_varint(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
    *v = 0;
    for (unsigned i = 0; i < VARINT_MAX && *p < end; i++) {
        uint8_t b = *(*p)++;
        *v |= (uint64_t)(b & 0x7f) << (7 * i);
        if ((b & 0x80) == 0)
            return 0;
    }
    return -1;
}

int
pb_wire_next(const uint8_t **p, const uint8_t *end, struct pb_field *f)
{
    uint64_t tag, v;

    if (*p == end)
        return 0;
    if (pb_wire_varint(p, end, &tag) < 0 || (tag >> 3) == 0 || (tag >> 3) > UINT32_MAX)
        return -1;
    f->num = (uint32_t)(tag >> 3);
    f->type = (unsigned)(tag & 7);
    f->data = *p;
    f->len = 0;
    switch (f->type) {
    case 0:
        return pb_wire_varint(p, end, &v) < 0 ? -1 : 1;
    case 1:
    case 5: {
        size_t n = f->type == 1 ? 8 : 4;
        if ((size_t)(end - *p) < n)
            return -1;
        *p += n;
        return 1;
    }
    case 2:
        if (pb_wire_varint(p, end, &v) < 0 || v > (uint64_t)(end - *p))
            return -1;
        f->data = *p;
        f->len = (size_t)v;
        *p += v;
        return 1;
    default:
        return -1;
    }
}

/* The wire type a (non-packed) value of |t| uses. */
static enum wire
wire_of(ProtobufCType t)
{
    switch (t) {
    case PROTOBUF_C_TYPE_SFIXED32:
    case PROTOBUF_C_TYPE_FIXED32:
    case PROTOBUF_C_TYPE_FLOAT:
        return W_I32;
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_FIXED64:
    case PROTOBUF_C_TYPE_DOUBLE:
        return W_I64;
    case PROTOBUF_C_TYPE_STRING:
    case PROTOBUF_C_TYPE_BYTES:
    case PROTOBUF_C_TYPE_MESSAGE:
        return W_LEN;
    default: /* int32, sint32, uint32, int64, sint64, uint64, bool, enum */
        return W_VARINT;
    }
}

/* A packed run of |len| bytes of scalars of wire type |w|: whole elements only. */
static bool
packed_ok(enum wire w, const uint8_t *p, size_t len)
{
    const uint8_t *end = p + len;
    uint64_t v;

    switch (w) {
    case W_I32:
        return len % 4 == 0;
    case W_I64:
        return len % 8 == 0;
    default:
        while (p < end)
            if (pb_wire_varint(&p, end, &v) < 0)
                return false;
        return true;
    }
}

/* Checks field |num| of wire type |w| (payload [data, data+len) if W_LEN) against |f|. */
static int
check_known(const ProtobufCFieldDescriptor *f, const ProtobufCMessageDescriptor *in, uint32_t num,
            enum wire w, const uint8_t *data, size_t len, char *err, size_t errlen)
{
    enum wire want = wire_of(f->type);

    if (w == want)
        return 0;
    if (w == W_LEN && f->label == PROTOBUF_C_LABEL_REPEATED) {
        if (packed_ok(want, data, len))
            return 0;
        return refuse(err, errlen, -MESH_EPROTO, "%s field %u: packed values cut short", in->name,
                      num);
    }
    return refuse(err, errlen, -MESH_EPROTO, "%s field %u: wire type %d, its type needs %d",
                  in->name, num, (int)w, (int)want);
}

int
pb_check(const ProtobufCMessageDescriptor *desc, const uint8_t *data, size_t len, size_t max_bytes,
         unsigned max_depth, char *err, size_t errlen)
{
    struct frame stack[PB_DEPTH_CAP];
    unsigned depth = 1;

    if (errlen > 0)
        err[0] = '\0';
    if (max_depth == 0)
        max_depth = PB_MAX_DEPTH;
    if (max_depth > PB_DEPTH_CAP)
        max_depth = PB_DEPTH_CAP;
    if (len > max_bytes)
        return refuse(err, errlen, -MESH_ELIMIT, "%s of %zu bytes, more than %zu", desc->name, len,
                      max_bytes);
    if (len > 0 && data == NULL)
        return refuse(err, errlen, -MESH_EPROTO, "no data");
    stack[0] = (struct frame){.desc = desc, .p = data, .end = data + len};

    while (depth > 0) {
        struct frame *fr = &stack[depth - 1];
        const uint8_t *field_start = fr->p;
        uint64_t tag, n;

        if (fr->p == fr->end) {
            depth--;
            continue;
        }
        if (pb_wire_varint(&fr->p, fr->end, &tag) < 0)
            return refuse(err, errlen, -MESH_EPROTO, "%s: bad tag at byte %zu", fr->desc->name,
                          (size_t)(field_start - data));
        if ((tag >> 3) == 0 || (tag >> 3) > FIELD_MAX)
            return refuse(err, errlen, -MESH_EPROTO, "%s: field number %llu out of range",
                          fr->desc->name, (unsigned long long)(tag >> 3));
        uint32_t num = (uint32_t)(tag >> 3);
        enum wire w = (enum wire)(tag & 7);
        const uint8_t *payload = NULL;
        size_t plen = 0;
        size_t left;

        switch (w) {
        case W_VARINT:
            if (pb_wire_varint(&fr->p, fr->end, &n) < 0)
                return refuse(err, errlen, -MESH_EPROTO, "%s field %u: bad varint", fr->desc->name,
                              num);
            break;
        case W_I64:
        case W_I32:
            n = w == W_I64 ? 8 : 4;
            if ((size_t)(fr->end - fr->p) < n)
                return refuse(err, errlen, -MESH_EPROTO, "%s field %u: fixed value cut short",
                              fr->desc->name, num);
            fr->p += n;
            break;
        case W_LEN:
            if (pb_wire_varint(&fr->p, fr->end, &n) < 0)
                return refuse(err, errlen, -MESH_EPROTO, "%s field %u: bad length", fr->desc->name,
                              num);
            left = (size_t)(fr->end - fr->p);
            if (n > left)
                return refuse(err, errlen, -MESH_EPROTO, "%s field %u: length %llu, remaining %zu",
                              fr->desc->name, num, (unsigned long long)n, left);
            payload = fr->p;
            plen = (size_t)n;
            fr->p += plen;
            break;
        case W_SGROUP:
        case W_EGROUP:
            return refuse(err, errlen, -MESH_EPROTO, "%s field %u: a group (not in proto3)",
                          fr->desc->name, num);
        default:
            return refuse(err, errlen, -MESH_EPROTO, "%s field %u: invalid wire type %d",
                          fr->desc->name, num, (int)w);
        }

        const ProtobufCFieldDescriptor *f = protobuf_c_message_descriptor_get_field(fr->desc, num);
        if (f == NULL)
            continue; /* unknown: protobuf-c keeps its bytes, never parses them */
        int rc = check_known(f, fr->desc, num, w, payload, plen, err, errlen);
        if (rc < 0)
            return rc;
        if (f->type != PROTOBUF_C_TYPE_MESSAGE)
            continue;
        if (depth >= max_depth)
            return refuse(err, errlen, -MESH_ELIMIT, "nested deeper than %u messages (%s field %u)",
                          max_depth, fr->desc->name, num);
        stack[depth++] = (struct frame){
            .desc = f->descriptor,
            .p = payload,
            .end = payload + plen,
        };
    }
    return 0;
}

void *
pb_unpack_checked(const ProtobufCMessageDescriptor *desc, const uint8_t *data, size_t len,
                  size_t max_bytes, char *err, size_t errlen)
{
    static const uint8_t empty[1];

    if (data == NULL && len == 0)
        data = empty; /* protobuf-c wants a pointer even for no bytes */
    if (pb_check(desc, data, len, max_bytes, PB_MAX_DEPTH, err, errlen) < 0)
        return NULL;
    ProtobufCMessage *m = protobuf_c_message_unpack(desc, NULL, len, data);
    if (m == NULL)
        refuse(err, errlen, -MESH_EPROTO, "does not decode as %s", desc->name);
    return m;
}
