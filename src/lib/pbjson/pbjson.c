/*
 * pbjson.c - proto3 JSON to protobuf wire format by descriptor (see pbjson.h).
 *
 * Writes the wire format directly (tag, value; length-delimited for strings and messages)
 * rather than filling protobuf-c structures: no ownership rules to follow, and a nested
 * message is encoded into a scratch buffer whose length then prefixes it. Repeated scalars
 * are written unpacked, which every proto3 parser accepts.
 */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "pbjson/pbjson.h"

struct out {
    uint8_t *p;
    size_t n, cap;
};

struct ctx {
    char *err;
    size_t errlen;
    char path[512];
    size_t total; /* bytes written at every level: bounds the work too */
};

static int
fail(struct ctx *c, int rc, const char *fmt, ...)
{
    char why[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof(why), fmt, ap);
    va_end(ap);
    snprintf(c->err, c->errlen, "%s%s%s", c->path, c->path[0] ? ": " : "", why);
    return rc;
}

static int
put(struct ctx *c, struct out *o, const void *p, size_t n)
{
    if (o->n + n > PBJSON_MAX_BYTES || c->total + n > 4 * (size_t)PBJSON_MAX_BYTES)
        return fail(c, -MESH_ELIMIT, "encoded message larger than %d bytes", PBJSON_MAX_BYTES);
    if (n == 0)
        return 0; /* an empty message: nothing to copy (and maybe no buffer yet) */
    if (o->n + n > o->cap) {
        size_t cap = o->cap ? o->cap : 64;
        while (cap < o->n + n)
            cap *= 2;
        o->p = xrealloc(o->p, cap);
        o->cap = cap;
    }
    memcpy(o->p + o->n, p, n);
    o->n += n;
    c->total += n;
    return 0;
}

static int
put_varint(struct ctx *c, struct out *o, uint64_t v)
{
    uint8_t b[10];
    size_t n = 0;
    do {
        b[n] = (uint8_t)(v & 0x7f);
        v >>= 7;
        if (v)
            b[n] |= 0x80;
        n++;
    } while (v);
    return put(c, o, b, n);
}

static int
put_tag(struct ctx *c, struct out *o, uint32_t id, unsigned wt)
{
    return put_varint(c, o, ((uint64_t)id << 3) | wt);
}

static int
put_bytes(struct ctx *c, struct out *o, uint32_t id, const void *p, size_t n)
{
    int rc;
    if ((rc = put_tag(c, o, id, 2)) < 0 || (rc = put_varint(c, o, n)) < 0)
        return rc;
    return put(c, o, p, n);
}

/* An integer from a JSON number or a decimal string, within [lo, hi]. */
static int
get_int(struct ctx *c, const json_t *v, long long lo, unsigned long long hi, bool is_unsigned,
        uint64_t *out)
{
    if (json_is_integer(v)) {
        json_int_t x = json_integer_value(v);
        if ((is_unsigned && x < 0) || (!is_unsigned && x < lo) || (x > 0 && (unsigned long long)x > hi))
            return fail(c, -MESH_ECONFIG, "%lld is out of range", (long long)x);
        *out = (uint64_t)x;
        return 0;
    }
    if (json_is_string(v)) {
        const char *s = json_string_value(v);
        char *end;
        errno = 0;
        if (is_unsigned) {
            if (s[0] == '-')
                return fail(c, -MESH_ECONFIG, "\"%s\" is out of range", s);
            unsigned long long x = strtoull(s, &end, 10);
            if (errno || end == s || *end || x > hi)
                return fail(c, -MESH_ECONFIG, "\"%s\" is not an integer in range", s);
            *out = x;
        } else {
            long long x = strtoll(s, &end, 10);
            if (errno || end == s || *end || x < lo || (x > 0 && (unsigned long long)x > hi))
                return fail(c, -MESH_ECONFIG, "\"%s\" is not an integer in range", s);
            *out = (uint64_t)x;
        }
        return 0;
    }
    return fail(c, -MESH_ECONFIG, "expected an integer");
}

/* "1.5s", "-0.25s", "3s": seconds and nanoseconds, as proto3 JSON writes a Duration. */
static int
put_duration(struct ctx *c, struct out *o, uint32_t id, const json_t *v)
{
    const char *s = json_string_value(v);
    size_t n = s ? strlen(s) : 0;
    if (s == NULL || n < 2 || n > 40 || s[n - 1] != 's')
        return fail(c, -MESH_ECONFIG, "expected a duration such as \"1.5s\"");
    bool neg = s[0] == '-';
    const char *p = s + neg;
    long long secs = 0;
    long nanos = 0;
    int digits = 0;
    if (*p < '0' || *p > '9')
        return fail(c, -MESH_ECONFIG, "expected a duration such as \"1.5s\"");
    for (; *p >= '0' && *p <= '9'; p++) {
        if (secs > 315576000000LL / 10)
            return fail(c, -MESH_ECONFIG, "duration \"%s\" out of range", s);
        secs = secs * 10 + (*p - '0');
    }
    if (*p == '.') {
        for (p++; *p >= '0' && *p <= '9'; p++, digits++)
            if (digits < 9)
                nanos = nanos * 10 + (*p - '0');
            else
                return fail(c, -MESH_ECONFIG, "duration \"%s\": more than 9 fraction digits", s);
        if (digits == 0)
            return fail(c, -MESH_ECONFIG, "expected a duration such as \"1.5s\"");
        for (; digits < 9; digits++)
            nanos *= 10;
    }
    if (p != s + n - 1 || secs > 315576000000LL)
        return fail(c, -MESH_ECONFIG, "duration \"%s\" is malformed or out of range", s);
    struct out m = {0};
    int rc = 0;
    if (secs && ((rc = put_tag(c, &m, 1, 0)) < 0 ||
                 (rc = put_varint(c, &m, (uint64_t)(neg ? -secs : secs))) < 0))
        goto out;
    if (nanos && ((rc = put_tag(c, &m, 2, 0)) < 0 ||
                  (rc = put_varint(c, &m, (uint64_t)(int64_t)(neg ? -nanos : nanos))) < 0))
        goto out;
    rc = put_bytes(c, o, id, m.p, m.n);
out:
    free(m.p);
    return rc;
}

static int encode_msg(struct ctx *c, const ProtobufCMessageDescriptor *d, const json_t *j,
                      struct out *o, int depth);

static int
put_value(struct ctx *c, struct out *o, const ProtobufCFieldDescriptor *f, const json_t *v,
          int depth)
{
    uint64_t x;
    int rc;

    switch (f->type) {
    case PROTOBUF_C_TYPE_STRING:
        if (!json_is_string(v))
            return fail(c, -MESH_ECONFIG, "expected a string");
        return put_bytes(c, o, f->id, json_string_value(v), json_string_length(v));
    case PROTOBUF_C_TYPE_BOOL:
        if (!json_is_boolean(v))
            return fail(c, -MESH_ECONFIG, "expected true or false");
        if ((rc = put_tag(c, o, f->id, 0)) < 0)
            return rc;
        return put_varint(c, o, json_is_true(v));
    case PROTOBUF_C_TYPE_UINT32:
        if ((rc = get_int(c, v, 0, UINT32_MAX, true, &x)) < 0 || (rc = put_tag(c, o, f->id, 0)) < 0)
            return rc;
        return put_varint(c, o, x);
    case PROTOBUF_C_TYPE_UINT64:
        if ((rc = get_int(c, v, 0, UINT64_MAX, true, &x)) < 0 || (rc = put_tag(c, o, f->id, 0)) < 0)
            return rc;
        return put_varint(c, o, x);
    case PROTOBUF_C_TYPE_INT32:
        if ((rc = get_int(c, v, INT32_MIN, INT32_MAX, false, &x)) < 0 ||
            (rc = put_tag(c, o, f->id, 0)) < 0)
            return rc;
        return put_varint(c, o, (uint64_t)(int64_t)(int32_t)x); /* negative: 10 bytes */
    case PROTOBUF_C_TYPE_INT64:
        if ((rc = get_int(c, v, INT64_MIN, INT64_MAX, false, &x)) < 0 ||
            (rc = put_tag(c, o, f->id, 0)) < 0)
            return rc;
        return put_varint(c, o, x);
    case PROTOBUF_C_TYPE_ENUM: {
        const ProtobufCEnumDescriptor *ed = f->descriptor;
        int64_t n;
        if (json_is_string(v)) {
            const ProtobufCEnumValue *ev =
                protobuf_c_enum_descriptor_get_value_by_name(ed, json_string_value(v));
            if (ev == NULL)
                return fail(c, -MESH_ECONFIG, "\"%s\" is not a value of %s", json_string_value(v),
                            ed->name);
            n = ev->value;
        } else if (json_is_integer(v)) {
            n = json_integer_value(v);
            if (n < INT32_MIN || n > INT32_MAX ||
                protobuf_c_enum_descriptor_get_value(ed, (int)n) == NULL)
                return fail(c, -MESH_ECONFIG, "%lld is not a value of %s", (long long)n, ed->name);
        } else {
            return fail(c, -MESH_ECONFIG, "expected a %s name", ed->name);
        }
        if ((rc = put_tag(c, o, f->id, 0)) < 0)
            return rc;
        return put_varint(c, o, (uint64_t)n);
    }
    case PROTOBUF_C_TYPE_MESSAGE: {
        const ProtobufCMessageDescriptor *md = f->descriptor;
        if (strcmp(md->name, "google.protobuf.Duration") == 0)
            return put_duration(c, o, f->id, v);
        struct out m = {0};
        rc = encode_msg(c, md, v, &m, depth + 1);
        if (rc == 0)
            rc = put_bytes(c, o, f->id, m.p, m.n);
        free(m.p);
        return rc;
    }
    default:
        return fail(c, -MESH_ECONFIG, "field type not supported in JSON config");
    }
}

/* "not_paths" and "notPaths" both name the field not_paths. */
static bool
name_is(const char *field, const char *key)
{
    if (strcmp(field, key) == 0)
        return true;
    for (; *field && *key; field++, key++) {
        if (*field == '_' && field[1] >= 'a' && field[1] <= 'z') {
            field++;
            if (*key != *field - 'a' + 'A')
                return false;
        } else if (*field != *key) {
            return false;
        }
    }
    return *field == *key;
}

static const ProtobufCFieldDescriptor *
field_by_key(const ProtobufCMessageDescriptor *d, const char *key)
{
    for (unsigned i = 0; i < d->n_fields; i++)
        if (name_is(d->fields[i].name, key))
            return &d->fields[i];
    return NULL;
}

static int
encode_msg(struct ctx *c, const ProtobufCMessageDescriptor *d, const json_t *j, struct out *o,
           int depth)
{
    const char *key;
    const json_t *v;
    size_t mark = strlen(c->path);
    unsigned oneof_seen[16];
    size_t n_oneof = 0;

    if (depth > PBJSON_MAX_DEPTH)
        return fail(c, -MESH_ELIMIT, "nested deeper than %d", PBJSON_MAX_DEPTH);
    if (!json_is_object(j))
        return fail(c, -MESH_ECONFIG, "expected an object (%s)", d->name);
    json_object_foreach((json_t *)j, key, v) {
        int rc = 0;
        snprintf(c->path + mark, sizeof(c->path) - mark, "%s%s", mark ? "." : "", key);
        const ProtobufCFieldDescriptor *f = field_by_key(d, key);
        if (f == NULL)
            return fail(c, -MESH_ECONFIG, "no such field in %s", d->name);
        if (json_is_null(v))
            continue;
        if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
            for (size_t i = 0; i < n_oneof; i++)
                if (oneof_seen[i] == f->quantifier_offset)
                    return fail(c, -MESH_ECONFIG, "another member of its oneof is already set");
            if (n_oneof < ARRAY_LEN(oneof_seen))
                oneof_seen[n_oneof++] = f->quantifier_offset;
        }
        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            if (!json_is_array(v))
                return fail(c, -MESH_ECONFIG, "expected a list");
            size_t i, plen = strlen(c->path);
            const json_t *e;
            json_array_foreach((json_t *)v, i, e) {
                snprintf(c->path + plen, sizeof(c->path) - plen, "[%zu]", i);
                if ((rc = put_value(c, o, f, e, depth)) < 0)
                    return rc;
            }
        } else if ((rc = put_value(c, o, f, v, depth)) < 0) {
            return rc;
        }
    }
    c->path[mark] = '\0';
    return 0;
}

int
pbjson_encode(const ProtobufCMessageDescriptor *desc, const json_t *j, uint8_t **out,
              size_t *len, char *err, size_t errlen)
{
    struct ctx c = {.err = err, .errlen = errlen};
    struct out o = {0};
    int rc = encode_msg(&c, desc, j, &o, 0);
    if (rc < 0) {
        free(o.p);
        *out = NULL;
        *len = 0;
        return rc;
    }
    *out = o.p ? o.p : xmalloc(1);
    *len = o.n;
    return 0;
}
