/*
 * route_pb.c - route_decode(): bytes of an amesh.waypoint.v1.Route -> a
 * compiled table.
 *
 * Three passes, each cheap before the next allocates: pb_check() (size,
 * depth, wire validity); route_wire_check(), a walk guided by the message
 * descriptors that counts every repeated field against its cap before
 * protobuf-c allocates one struct per element (an empty Rule costs 2 bytes on
 * the wire and ~100 in memory), and refuses strings with a NUL (protobuf-c
 * would cut them there without a word: "/admin\0x" would become "/admin") or
 * invalid UTF-8; then pb_unpack_checked() and route_compile() for meaning.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "base/base.h"
#include "pbcheck/pbcheck.h"
#include "pbcheck/pbwire.h"
#include "route/route_internal.h"

#define WIRE_MAX_FIELDS 16 /* fields of the largest message walked (Rule: 11) */
#define WIRE_MAX_DEPTH  8  /* Route > Rule > Match > KeyMatch is 4 */

struct wire {
    char *err;
    size_t errlen;
    char path[160];
    size_t entries;
};

static int wfail(struct wire *w, int rc, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int
wfail(struct wire *w, int rc, const char *field, const char *fmt, ...)
{
    char msg[128];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    snprintf(w->err, w->errlen, "route: %s%s%s: %s", w->path, w->path[0] && field ? "." : "",
             field ? field : "", msg);
    return rc;
}

static size_t
list_cap(const ProtobufCMessageDescriptor *d, const ProtobufCFieldDescriptor *f)
{
    if (d == &amesh__waypoint__v1__route__descriptor)
        return f->id == 4 ? ROUTE_MAX_RULES : ROUTE_MAX_SOURCES;
    return ROUTE_MAX_LIST;
}

static int
walk(struct wire *w, const ProtobufCMessageDescriptor *d, const uint8_t *p, size_t len,
     unsigned depth)
{
    const uint8_t *end = p + len;
    size_t count[WIRE_MAX_FIELDS] = {0};

    if (depth > WIRE_MAX_DEPTH || d->n_fields > WIRE_MAX_FIELDS)
        return wfail(w, -MESH_ELIMIT, NULL, "nested too deep");
    while (p < end) {
        struct pb_field pf;
        if (pb_wire_next(&p, end, &pf) < 0)
            return wfail(w, -MESH_EPROTO, NULL, "malformed protobuf");
        const uint8_t *data = pf.data;
        size_t dlen = pf.len;
        const ProtobufCFieldDescriptor *f = protobuf_c_message_descriptor_get_field(d, pf.num);
        if (f == NULL)
            continue; /* unknown field: protobuf-c keeps it as bytes */
        size_t idx = (size_t)(f - d->fields), add = 1, at = count[idx];
        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            if (pf.type == 2 && f->type != PROTOBUF_C_TYPE_STRING &&
                f->type != PROTOBUF_C_TYPE_MESSAGE && f->type != PROTOBUF_C_TYPE_BYTES) {
                const uint8_t *q = data;
                uint64_t v;
                for (add = 0; q < data + dlen; add++)
                    if (pb_wire_varint(&q, data + dlen, &v) < 0)
                        return wfail(w, -MESH_EPROTO, f->name, "malformed packed list");
            }
            count[idx] += add;
            if (count[idx] > list_cap(d, f))
                return wfail(w, -MESH_ELIMIT, f->name, "more than %zu entries", list_cap(d, f));
        }
        w->entries += add;
        if (w->entries > ROUTE_MAX_ENTRIES)
            return wfail(w, -MESH_ELIMIT, NULL, "more than %d fields in one route",
                         ROUTE_MAX_ENTRIES);
        if (pf.type != 2)
            continue;
        char name[64];
        if (f->label == PROTOBUF_C_LABEL_REPEATED)
            snprintf(name, sizeof(name), "%s[%zu]", f->name, at);
        else
            snprintf(name, sizeof(name), "%s", f->name);
        if (f->type == PROTOBUF_C_TYPE_STRING) {
            if (dlen > ROUTE_MAX_VALUE)
                return wfail(w, -MESH_ELIMIT, name, "%zu bytes, more than %d", dlen,
                             ROUTE_MAX_VALUE);
            if (memchr(data, 0, dlen) != NULL)
                return wfail(w, -MESH_EPROTO, name, "string with a NUL byte");
            if (!utf8_valid(data, dlen))
                return wfail(w, -MESH_EPROTO, name, "string is not valid UTF-8");
        } else if (f->type == PROTOBUF_C_TYPE_MESSAGE) {
            size_t saved = strlen(w->path);
            snprintf(w->path + saved, sizeof(w->path) - saved, "%s%s", saved ? "." : "", name);
            int rc = walk(w, f->descriptor, data, dlen, depth + 1);
            if (rc < 0)
                return rc;
            w->path[saved] = '\0';
        }
    }
    return 0;
}

int
route_wire_check(const uint8_t *data, size_t len, char *err, size_t errlen)
{
    struct wire w = {.err = err, .errlen = errlen};

    if (len > ROUTE_MAX_BYTES)
        return wfail(&w, -MESH_ELIMIT, NULL, "%zu bytes, more than %d", len, ROUTE_MAX_BYTES);
    return walk(&w, &amesh__waypoint__v1__route__descriptor, data, len, 1);
}

/* Errors quote config values: no control character may reach a log line or NACK as is. */
static int
clean(int rc, char *err)
{
    for (char *p = err; rc < 0 && *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = '?';
    return rc;
}

static int decode(const uint8_t *data, size_t len, struct route_table **out, char *err,
                  size_t errlen);

int
route_decode(const uint8_t *data, size_t len, struct route_table **out, char *err, size_t errlen)
{
    if (errlen > 0)
        err[0] = '\0';
    return clean(decode(data, len, out, err, errlen), err);
}

static int
decode(const uint8_t *data, size_t len, struct route_table **out, char *err, size_t errlen)
{
    static const uint8_t empty[1];
    char why[PB_ERR_MAX];
    int rc;

    *out = NULL;
    if (data == NULL) {
        data = empty;
        len = 0;
    }
    if (len > ROUTE_MAX_BYTES) {
        snprintf(err, errlen, "route: %zu bytes, more than %d", len, ROUTE_MAX_BYTES);
        return -MESH_ELIMIT;
    }
    if ((rc = pb_check(&amesh__waypoint__v1__route__descriptor, data, len, ROUTE_MAX_BYTES, 0,
                       why, sizeof(why))) < 0) {
        snprintf(err, errlen, "route: not a valid amesh.waypoint.v1.Route message: %s", why);
        return rc;
    }
    if ((rc = route_wire_check(data, len, err, errlen)) < 0)
        return rc;
    Amesh__Waypoint__V1__Route *pb = pb_unpack_checked(&amesh__waypoint__v1__route__descriptor,
                                                       data, len, ROUTE_MAX_BYTES, why,
                                                       sizeof(why));
    if (pb == NULL) {
        snprintf(err, errlen, "route: not a valid amesh.waypoint.v1.Route message: %s", why);
        return -MESH_EPROTO;
    }
    rc = route_compile(pb, out, err, errlen);
    amesh__waypoint__v1__route__free_unpacked(pb, NULL);
    return rc;
}
