/*
 * l7policy_wire.c - the caps of a Policy checked on its wire bytes, before
 * protobuf-c unpacks it: protobuf-c allocates every element of a repeated
 * field (an empty PolicyMatch costs 2 bytes on the wire and ~200 in memory)
 * before anything can look at them, and it cuts strings at an embedded NUL
 * without saying so. The walk follows the message descriptors, so every
 * message of the schema (the l4 istio.security.Match and its StringMatch,
 * Address and ServiceAccountMatch included) is covered by one set of rules:
 *
 *   repeated field  at most L7POL_MAX_TARGETS / _RULES / _CLAUSES / _MATCHES
 *                   for those four, L7POL_MAX_LIST for any other (packed
 *                   scalars counted per element); L7POL_MAX_ENTRIES in all
 *   string          at most L7POL_MAX_NAME (names, namespaces, hostnames),
 *                   L7POL_MAX_HEADER (header names) or L7POL_MAX_STRING;
 *                   no NUL; valid UTF-8 (proto3)
 *   nesting         at most 8 messages (the schema needs 7)
 *
 * Wire validity as such (wire types, truncation) is pb_check()'s, which runs
 * next; here a malformed field only ends the walk with an error.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "base/base.h"
#include "l7policy/l7policy_internal.h"
#include "pbcheck/pbwire.h"

#define WIRE_MAX_DEPTH  8
#define WIRE_MAX_FIELDS 32 /* fields of the widest message (Match: 13) */

struct wire {
    char *err;
    size_t errlen;
    const char *what;
    char path[192];
    size_t entries;
};

static int wfail(struct wire *w, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int
wfail(struct wire *w, int rc, const char *fmt, ...)
{
    char msg[256];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    snprintf(w->err, w->errlen, "%s: %s%s%s", w->what, w->path, w->path[0] ? ": " : "", msg);
    return rc;
}

static size_t
list_cap(const ProtobufCMessageDescriptor *d, const ProtobufCFieldDescriptor *fd)
{
    if (d == &amesh__waypoint__v1__policy__descriptor)
        return strcmp(fd->name, "targets") == 0 ? L7POL_MAX_TARGETS : L7POL_MAX_RULES;
    if (d == &amesh__waypoint__v1__policy_rule__descriptor)
        return L7POL_MAX_CLAUSES;
    if (d == &amesh__waypoint__v1__policy_clause__descriptor)
        return L7POL_MAX_MATCHES;
    return L7POL_MAX_LIST;
}

static size_t
string_cap(const ProtobufCMessageDescriptor *d, const ProtobufCFieldDescriptor *fd)
{
    if (d == &amesh__waypoint__v1__policy__descriptor ||
        d == &amesh__waypoint__v1__target__descriptor ||
        d == &istio__workload__namespaced_hostname__descriptor)
        return L7POL_MAX_NAME;
    if (d == &amesh__waypoint__v1__header_cond__descriptor && strcmp(fd->name, "name") == 0)
        return L7POL_MAX_HEADER;
    return L7POL_MAX_STRING;
}

static size_t
packed_count(const struct pb_field *f)
{
    const uint8_t *p = f->data, *end = f->data + f->len;
    uint64_t v;
    size_t n = 0;

    while (p < end && pb_wire_varint(&p, end, &v) == 0)
        n++;
    return n;
}

static int
walk(struct wire *w, const ProtobufCMessageDescriptor *d, const uint8_t *data, size_t len,
     unsigned depth)
{
    const uint8_t *p = data, *end = data + len;
    size_t counts[WIRE_MAX_FIELDS] = {0};
    size_t saved = strlen(w->path);
    struct pb_field f;
    int rc;

    if (depth > WIRE_MAX_DEPTH)
        return wfail(w, -MESH_EPROTO, "nested deeper than %d messages", WIRE_MAX_DEPTH);
    while ((rc = pb_wire_next(&p, end, &f)) > 0) {
        const ProtobufCFieldDescriptor *fd = protobuf_c_message_descriptor_get_field(d, f.num);
        if (fd == NULL)
            continue; /* unknown: protobuf-c keeps it as bytes, counted in the total size */
        size_t idx = (size_t)(fd - d->fields), i = 0;
        CHECK(idx < WIRE_MAX_FIELDS);
        snprintf(w->path + saved, sizeof(w->path) - saved, "%s%s", saved ? "." : "", fd->name);
        if (fd->label == PROTOBUF_C_LABEL_REPEATED) {
            bool packed = f.type == 2 && fd->type != PROTOBUF_C_TYPE_STRING &&
                          fd->type != PROTOBUF_C_TYPE_BYTES && fd->type != PROTOBUF_C_TYPE_MESSAGE;
            size_t add = packed ? packed_count(&f) : 1, cap = list_cap(d, fd);
            i = counts[idx];
            counts[idx] += add;
            w->entries += add;
            if (counts[idx] > cap)
                return wfail(w, -MESH_ELIMIT, "more than %zu entries", cap);
            if (w->entries > L7POL_MAX_ENTRIES)
                return wfail(w, -MESH_ELIMIT, "more than %d entries in the whole policy",
                             L7POL_MAX_ENTRIES);
            size_t n = strlen(w->path);
            snprintf(w->path + n, sizeof(w->path) - n, "[%zu]", i);
        }
        if (f.type == 2 && fd->type == PROTOBUF_C_TYPE_STRING) {
            size_t cap = string_cap(d, fd);
            if (f.len > cap)
                return wfail(w, -MESH_ELIMIT, "%zu bytes, more than %zu", f.len, cap);
            if (memchr(f.data, 0, f.len) != NULL)
                return wfail(w, -MESH_EPROTO, "string with a NUL byte");
            if (!utf8_valid(f.data, f.len))
                return wfail(w, -MESH_EPROTO, "string is not valid UTF-8");
        } else if (f.type == 2 && fd->type == PROTOBUF_C_TYPE_MESSAGE) {
            if ((rc = walk(w, fd->descriptor, f.data, f.len, depth + 1)) < 0)
                return rc;
        }
        w->path[saved] = '\0';
    }
    if (rc < 0)
        return wfail(w, -MESH_EPROTO, "malformed protobuf");
    return 0;
}

/* |n| bytes at |s| for a message: at most 64, control bytes as '?' (the name is not checked yet).
 */
static size_t
printable(char *out, const uint8_t *s, size_t n)
{
    n = n > 64 ? 64 : n;
    for (size_t i = 0; i < n; i++)
        out[i] = s[i] < 0x20 || s[i] == 0x7f ? '?' : (char)s[i];
    out[n] = '\0';
    return n;
}

/* "policy <ns>/<name>" from the top-level fields, the last value winning as in protobuf. */
static void
name_policy(const uint8_t *data, size_t len, char *what, size_t whatlen)
{
    const uint8_t *p = data, *end = data + len;
    struct pb_field f, name = {0}, ns = {0};
    char a[65], b[65];

    while (pb_wire_next(&p, end, &f) > 0) {
        if (f.type == 2 && f.num == 1)
            name = f;
        else if (f.type == 2 && f.num == 2)
            ns = f;
    }
    printable(a, ns.data, ns.len);
    printable(b, name.data, name.len);
    snprintf(what, whatlen, "policy %s/%s", a, b);
}

int
l7_wire_check(const uint8_t *data, size_t len, char *what, size_t whatlen, char *err, size_t errlen)
{
    struct wire w = {.err = err, .errlen = errlen, .what = what};

    name_policy(data, len, what, whatlen);
    if (len > L7POL_MAX_BYTES)
        return wfail(&w, -MESH_ELIMIT, "%zu bytes, more than %d", len, L7POL_MAX_BYTES);
    return walk(&w, &amesh__waypoint__v1__policy__descriptor, data, len, 1);
}
