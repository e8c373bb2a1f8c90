/*
 * policy_pb.c - policy_decode(): a packed istio.security.Authorization (the
 * value of an xDS resource) -> struct policy.
 *
 * protobuf-c allocates every element of every repeated field before we see
 * any of them (an empty Match costs 2 bytes on the wire and ~200 in memory),
 * and it cuts a string at an embedded NUL without telling (nor does it check
 * UTF-8, which proto3 and ztunnel's decoder require). So the wire is walked
 * first (policy_wire_check): counts against the caps, string lengths, no NUL
 * inside a string, valid UTF-8. Only then does protobuf-c unpack it, and
 * policy_compile() checks meaning.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "base/base.h"
#include "pbcheck/pbcheck.h"
#include "pbcheck/pbwire.h"
#include "policy/policy_internal.h"

enum msg_kind { M_AUTH, M_RULE, M_CLAUSE, M_MATCH, M_STRMATCH, M_ADDR, M_SA };

struct wire {
    char *err;
    size_t errlen;
    char what[160];
    char path[96];
    size_t entries;
};

static int wfail(struct wire *w, int rc, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* "<what>: <path>.<field>: <message>"; |field| NULL for the message at |path| itself. */
static int
wfail(struct wire *w, int rc, const char *field, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    rc = pol_vfail(w->err, w->errlen, w->what, w->path, rc, field, fmt, ap);
    va_end(ap);
    return rc;
}

static int
check_string(struct wire *w, const struct pb_field *f, size_t max, const char *field)
{
    if (f->type != 2)
        return 0; /* protobuf-c rejects the wrong wire type */
    if (f->len > max)
        return wfail(w, -MESH_ELIMIT, field, "%zu bytes, more than %zu", f->len, max);
    if (memchr(f->data, 0, f->len) != NULL)
        return wfail(w, -MESH_EPROTO, field, "string with a NUL byte");
    if (!utf8_valid(f->data, f->len))
        return wfail(w, -MESH_EPROTO, field, "string is not valid UTF-8");
    return 0;
}

static int
counted(struct wire *w, size_t *n, size_t add, size_t max, const char *field)
{
    *n += add;
    if (*n > max)
        return wfail(w, -MESH_ELIMIT, field, "more than %zu entries", max);
    w->entries += add;
    if (w->entries > POLICY_MAX_ENTRIES)
        return wfail(w, -MESH_ELIMIT, field, "more than %d entries in the whole policy",
                     POLICY_MAX_ENTRIES);
    return 0;
}

/* Packed varints in a payload. */
static int
count_packed(const struct pb_field *f, size_t *n)
{
    const uint8_t *p = f->data, *end = f->data + f->len;
    uint64_t v;

    *n = 0;
    while (p < end) {
        if (pb_wire_varint(&p, end, &v) < 0)
            return -1;
        (*n)++;
    }
    return 0;
}

static int scan(struct wire *w, enum msg_kind kind, const uint8_t *data, size_t len);

/* A StringMatch or ServiceAccountMatch entry |i| of list |field|. */
static int
scan_leaf(struct wire *w, enum msg_kind kind, const struct pb_field *f, const char *field, size_t i)
{
    const uint8_t *p = f->data, *end = f->data + f->len;
    struct pb_field sub;
    char name[64];
    int rc;

    snprintf(name, sizeof(name), "%s[%zu]", field, i);
    while ((rc = pb_wire_next(&p, end, &sub)) > 0) {
        bool str = kind == M_STRMATCH ? sub.num >= 1 && sub.num <= 3 : sub.num <= 2;
        if (str && (rc = check_string(w, &sub, POLICY_MAX_STRING, name)) < 0)
            return rc;
    }
    return rc < 0 ? wfail(w, -MESH_EPROTO, name, "malformed protobuf") : 0;
}

static int
scan_match(struct wire *w, const uint8_t *data, size_t len)
{
    const uint8_t *p = data, *end = data + len;
    size_t n[13] = {0};
    struct pb_field f;
    int rc;

    while ((rc = pb_wire_next(&p, end, &f)) > 0) {
        if (f.num < 1 || f.num > 12)
            continue; /* extensions, unknown fields */
        enum pol_field fam = (enum pol_field)((f.num - 1) / 2);
        const char *field = pol_field_name(fam, (f.num - 1) % 2, false);
        size_t add = 1, i = n[f.num];
        if (fam == PF_DESTINATION_PORTS && f.type == 2 && count_packed(&f, &add) < 0)
            return wfail(w, -MESH_EPROTO, field, "malformed packed list");
        if ((rc = counted(w, &n[f.num], add, POLICY_MAX_LIST, field)) < 0)
            return rc;
        if (f.type != 2 || fam == PF_DESTINATION_PORTS || fam == PF_SOURCE_IPS ||
            fam == PF_DESTINATION_IPS)
            continue;
        rc = scan_leaf(w, fam == PF_SERVICE_ACCOUNTS ? M_SA : M_STRMATCH, &f, field, i);
        if (rc < 0)
            return rc;
    }
    return rc < 0 ? wfail(w, -MESH_EPROTO, NULL, "malformed protobuf") : 0;
}

/* Authorization, Rule or Clause: one repeated child message each. */
static int
scan(struct wire *w, enum msg_kind kind, const uint8_t *data, size_t len)
{
    static const struct {
        uint32_t num;
        enum msg_kind child;
        size_t max;
        const char *name;
    } child[] = {
        [M_AUTH] = {5, M_RULE, POLICY_MAX_RULES, "rules"},
        [M_RULE] = {1, M_CLAUSE, POLICY_MAX_CLAUSES, "clauses"},
        [M_CLAUSE] = {2, M_MATCH, POLICY_MAX_MATCHES, "matches"},
    };
    const uint8_t *p = data, *end = data + len;
    size_t n = 0, saved = strlen(w->path);
    struct pb_field f;
    int rc;

    if (kind == M_MATCH)
        return scan_match(w, data, len);
    while ((rc = pb_wire_next(&p, end, &f)) > 0) {
        if (kind == M_AUTH && (f.num == 1 || f.num == 2) &&
            (rc = check_string(w, &f, POLICY_MAX_NAME, f.num == 1 ? "name" : "namespace")) < 0)
            return rc;
        if (f.num != child[kind].num || f.type != 2)
            continue;
        size_t i = n;
        if ((rc = counted(w, &n, 1, child[kind].max, child[kind].name)) < 0)
            return rc;
        snprintf(w->path + saved, sizeof(w->path) - saved, "%s%s[%zu]", saved ? "." : "",
                 child[kind].name, i);
        if ((rc = scan(w, child[kind].child, f.data, f.len)) < 0)
            return rc;
        w->path[saved] = '\0';
    }
    return rc < 0 ? wfail(w, -MESH_EPROTO, NULL, "malformed protobuf") : 0;
}

/* "policy <ns>/<name>" from the top-level fields, for messages; the last value wins. */
static void
name_policy(struct wire *w, const uint8_t *data, size_t len)
{
    const uint8_t *p = data, *end = data + len;
    struct pb_field f, name = {0}, ns = {0};

    while (pb_wire_next(&p, end, &f) > 0) {
        if (f.type == 2 && f.num == 1)
            name = f;
        else if (f.type == 2 && f.num == 2)
            ns = f;
    }
    snprintf(w->what, sizeof(w->what), "policy %.*s/%.*s", (int)(ns.len > 64 ? 64 : ns.len),
             ns.data ? (const char *)ns.data : "", (int)(name.len > 64 ? 64 : name.len),
             name.data ? (const char *)name.data : "");
}

int
policy_wire_check(const uint8_t *data, size_t len, char *err, size_t errlen)
{
    struct wire w = {.err = err, .errlen = errlen};

    name_policy(&w, data, len);
    if (len > POLICY_MAX_BYTES)
        return wfail(&w, -MESH_ELIMIT, NULL, "%zu bytes, more than %d", len, POLICY_MAX_BYTES);
    return scan(&w, M_AUTH, data, len);
}

int
policy_decode(const uint8_t *data, size_t len, struct policy **out, char *err, size_t errlen)
{
    static const uint8_t empty[1];
    char why[PB_ERR_MAX];
    int rc;

    *out = NULL;
    if (data == NULL) {
        data = empty;
        len = 0;
    }
    if ((rc = policy_wire_check(data, len, err, errlen)) < 0)
        return rc;
    Istio__Security__Authorization *pb = pb_unpack_checked(
        &istio__security__authorization__descriptor, data, len, POLICY_MAX_BYTES, why, sizeof(why));
    if (pb == NULL) {
        snprintf(err, errlen, "policy: not a valid istio.security.Authorization message: %s", why);
        return -MESH_EPROTO;
    }
    rc = policy_compile(pb, false, out, err, errlen);
    istio__security__authorization__free_unpacked(pb, NULL);
    return rc;
}
