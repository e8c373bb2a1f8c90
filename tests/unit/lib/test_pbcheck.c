/*
 * test_pbcheck.c - the wire walk in front of protobuf-c (lib/pbcheck): the
 * depth limit exactly at its boundary, sizes, truncated and invalid wire
 * data, unknown fields, packed repeated scalars, groups, and the attack of
 * issue 9 (a Struct nested 5000 deep in a CA request and an xDS request).
 * Wire bytes are written by hand here, so the test does not lean on the
 * encoder it guards.
 */
#include <setjmp.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "authorization.pb-c.h"
#include "ca.pb-c.h"
#include "discovery.pb-c.h"
#include "google/protobuf/struct.pb-c.h"

#include "base/base.h"
#include "pbcheck/pbcheck.h"

#define VALUE_DESC (&google__protobuf__value__descriptor)
#define MATCH_DESC (&istio__security__match__descriptor)
#define BIG        ((size_t)1 << 20)

struct bytes {
    uint8_t *p;
    size_t len;
};

static size_t
put_varint(uint8_t *out, uint64_t v)
{
    size_t n = 0;
    do {
        out[n++] = (uint8_t)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
        v >>= 7;
    } while (v != 0);
    return n;
}

/* Wraps |in| as length-delimited field |num|: returns a new buffer (|in| freed). */
static struct bytes
wrap(struct bytes in, uint32_t num)
{
    struct bytes out;
    uint8_t head[20];
    size_t h = put_varint(head, (uint64_t)num << 3 | 2);
    h += put_varint(head + h, in.len);
    out.len = h + in.len;
    out.p = malloc(out.len ? out.len : 1);
    assert_non_null(out.p);
    memcpy(out.p, head, h);
    if (in.len > 0)
        memcpy(out.p + h, in.p, in.len);
    free(in.p);
    return out;
}

/*
 * A google.protobuf.Value holding exactly |levels| messages: Value (1),
 * ListValue (2), Value (3)... the innermost one empty. list_value is field 6 of
 * Value, values field 1 of ListValue.
 */
static struct bytes
nested_value(unsigned levels)
{
    struct bytes b = {.p = NULL, .len = 0};
    for (unsigned level = levels; level > 1; level--)
        b = wrap(b, (level - 1) % 2 == 1 ? 6 : 1); /* the parent at level-1: Value or ListValue */
    return b;
}

static int
check(const ProtobufCMessageDescriptor *d, const void *p, size_t len, unsigned max_depth, char *err)
{
    return pb_check(d, p, len, BIG, max_depth, err, PB_ERR_MAX);
}

#define ASSERT_REFUSED(rc_, want_rc, err, needle)                                                  \
    do {                                                                                           \
        assert_int_equal((rc_), (want_rc));                                                        \
        if (strstr((err), (needle)) == NULL)                                                       \
            fail_msg("error \"%s\" lacks \"%s\"", (err), (needle));                                \
    } while (0)

static void
test_depth_boundary(void **state)
{
    char err[PB_ERR_MAX];
    (void)state;

    for (unsigned max = 1; max <= 40; max++) {
        struct bytes at = nested_value(max), over = nested_value(max + 1);
        assert_int_equal(check(VALUE_DESC, at.p, at.len, max, err), 0);
        assert_string_equal(err, "");
        ASSERT_REFUSED(check(VALUE_DESC, over.p, over.len, max, err), -MESH_ELIMIT, err,
                       "nested deeper than");
        free(at.p);
        free(over.p);
    }
    /* The default, through the wrapper protobuf-c's unpack sits behind. */
    struct bytes at = nested_value(PB_MAX_DEPTH), over = nested_value(PB_MAX_DEPTH + 1);
    ProtobufCMessage *m = pb_unpack_checked(VALUE_DESC, at.p, at.len, BIG, err, sizeof(err));
    assert_non_null(m);
    protobuf_c_message_free_unpacked(m, NULL);
    assert_null(pb_unpack_checked(VALUE_DESC, over.p, over.len, BIG, err, sizeof(err)));
    assert_string_equal(err, "nested deeper than 32 messages (google.protobuf.ListValue field 1)");
    /* 0 means the default; more than 100 is held at 100. */
    assert_int_equal(check(VALUE_DESC, at.p, at.len, 0, err), 0);
    assert_int_equal(check(VALUE_DESC, over.p, over.len, 0, err), -MESH_ELIMIT);
    free(at.p);
    free(over.p);
    at = nested_value(100);
    over = nested_value(101);
    assert_int_equal(check(VALUE_DESC, at.p, at.len, 100000, err), 0);
    assert_int_equal(check(VALUE_DESC, over.p, over.len, 100000, err), -MESH_ELIMIT);
    free(at.p);
    free(over.p);
}

/* The attack: a valid request whose metadata Struct nests 5000 Value/ListValue pairs. */
static void
test_deep_struct_requests(void **state)
{
    char err[PB_ERR_MAX];
    (void)state;

    struct bytes v = nested_value(10000);
    /* Struct{fields: {"deep": v}}: map entry key 1, value 2. */
    struct bytes key = {.p = malloc(4), .len = 4};
    memcpy(key.p, "deep", 4);
    key = wrap(key, 1);
    v = wrap(v, 2);
    struct bytes entry = {.p = malloc(key.len + v.len), .len = key.len + v.len};
    memcpy(entry.p, key.p, key.len);
    memcpy(entry.p + key.len, v.p, v.len);
    free(key.p);
    free(v.p);
    struct bytes st = wrap(entry, 1); /* Struct.fields */
    struct bytes copy = {.p = malloc(st.len), .len = st.len};
    memcpy(copy.p, st.p, st.len);

    struct bytes ca = wrap(st, 4); /* IstioCertificateRequest.metadata */
    assert_in_range(ca.len, 20000, 65536);
    assert_null(pb_unpack_checked(&istio__v1__auth__istio_certificate_request__descriptor, ca.p,
                                  ca.len, 64 << 10, err, sizeof(err)));
    assert_string_equal(err, "nested deeper than 32 messages (google.protobuf.Value field 6)");

    struct bytes xds = wrap(wrap(copy, 3), 1); /* DeltaDiscoveryRequest.node.metadata */
    assert_null(
        pb_unpack_checked(&envoy__service__discovery__v3__delta_discovery_request__descriptor,
                          xds.p, xds.len, 4 << 20, err, sizeof(err)));
    assert_non_null(strstr(err, "nested deeper than 32 messages"));
    free(ca.p);
    free(xds.p);
}

static void
test_size_cap(void **state)
{
    char err[PB_ERR_MAX];
    static const uint8_t msg[] = {0x11, 0, 0, 0, 0, 0, 0, 0, 0}; /* number_value */
    (void)state;

    assert_int_equal(pb_check(VALUE_DESC, msg, sizeof(msg), sizeof(msg), 0, err, sizeof(err)), 0);
    ASSERT_REFUSED(pb_check(VALUE_DESC, msg, sizeof(msg), sizeof(msg) - 1, 0, err, sizeof(err)),
                   -MESH_ELIMIT, err, "google.protobuf.Value of 9 bytes, more than 8");
    assert_null(pb_unpack_checked(VALUE_DESC, msg, sizeof(msg), 8, err, sizeof(err)));
    /* Nothing at all is the empty message. */
    ProtobufCMessage *m = pb_unpack_checked(VALUE_DESC, NULL, 0, 0, err, sizeof(err));
    assert_non_null(m);
    protobuf_c_message_free_unpacked(m, NULL);
}

static void
test_truncated_and_invalid(void **state)
{
    char err[PB_ERR_MAX];
    static const struct {
        const char *what;
        uint8_t b[12];
        size_t len;
        const char *want;
    } cases[] = {
        {"tag cut short", {0x80}, 1, "bad tag at byte 0"},
        {"varint cut short", {0x08, 0x80}, 2, "bad varint"},
        {"varint of 11 bytes",
         {0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01},
         12,
         "bad varint"},
        {"fixed64 cut short", {0x11, 1, 2, 3}, 4, "fixed value cut short"},
        {"fixed32 cut short", {0x7d, 1, 2, 3}, 4, "fixed value cut short"}, /* unknown field 15 */
        {"length cut short", {0x1a, 0x80}, 2, "bad length"},
        {"length past the end", {0x1a, 0x05, 'a'}, 3, "length 5, remaining 1"},
        {"length past the end, nested", {0x32, 0x04, 0x0a, 0x05, 0, 0}, 6, "length 5, remaining 2"},
        {"field number 0", {0x00, 0x00}, 2, "field number 0 out of range"},
        {"field number 2^29", {0x80, 0x80, 0x80, 0x80, 0x10, 0x00}, 6, "out of range"},
        {"start group", {0x0b, 0x0c}, 2, "a group"},
        {"end group", {0x0c}, 1, "a group"},
        {"wire type 6", {0x0e}, 1, "invalid wire type 6"},
        {"wire type 7", {0x0f}, 1, "invalid wire type 7"},
        {"known double as a varint", {0x10, 0x01}, 2, "field 2: wire type 0, its type needs 1"},
        {"known string as a varint", {0x18, 0x01}, 2, "field 3: wire type 0, its type needs 2"},
        {"known message as fixed32",
         {0x35, 1, 2, 3, 4},
         5,
         "field 6: wire type 5, its type needs 2"},
        {"known bool as a length", {0x22, 0x01, 0x01}, 3, "field 4: wire type 2, its type needs 0"},
    };
    (void)state;

    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        int rc = check(VALUE_DESC, cases[i].b, cases[i].len, 0, err);
        if (rc != -MESH_EPROTO || strstr(err, cases[i].want) == NULL)
            fail_msg("%s: rc %d, error \"%s\", wanted \"%s\"", cases[i].what, rc, err,
                     cases[i].want);
        /*
         * protobuf-c refuses these too: the walk refuses earlier and says why.
         * Two it lets through: a field number over 2^29 - 1 (invalid in
         * protobuf) it keeps as unknown, and it reads a bool from whatever wire
         * type comes. No encoder writes either; the walk refuses them.
         */
        ProtobufCMessage *m = protobuf_c_message_unpack(VALUE_DESC, NULL, cases[i].len, cases[i].b);
        bool lax = strcmp(cases[i].what, "field number 2^29") == 0 ||
                   strcmp(cases[i].what, "known bool as a length") == 0;
        protobuf_c_message_free_unpacked(m, NULL);
        if ((m != NULL) != lax)
            fail_msg("%s: protobuf-c %s it", cases[i].what, m ? "accepts" : "refuses");
    }
}

static void
test_unknown_fields(void **state)
{
    char err[PB_ERR_MAX];
    /*
     * Unknown fields 20 (varint), 21 (fixed64), 22 (bytes that would be a
     * malformed message) and 23 (fixed32), then string_value "x".
     */
    static const uint8_t msg[] = {0xa0, 0x01, 0x96, 0x01,                         /* 20: 150 */
                                  0xa9, 0x01, 1,    2,    3,    4,    5, 6, 7, 8, /* 21 */
                                  0xb2, 0x01, 0x03, 0x0a, 0x7f, 0xff,             /* 22 */
                                  0xbd, 0x01, 1,    2,    3,    4,                /* 23 */
                                  0x1a, 0x01, 'x'};
    (void)state;

    assert_int_equal(check(VALUE_DESC, msg, sizeof(msg), 0, err), 0);
    Google__Protobuf__Value *v =
        pb_unpack_checked(VALUE_DESC, msg, sizeof(msg), BIG, err, sizeof(err));
    assert_non_null(v);
    assert_int_equal(v->kind_case, GOOGLE__PROTOBUF__VALUE__KIND_STRING_VALUE);
    assert_string_equal(v->string_value, "x");
    assert_int_equal(v->base.n_unknown_fields, 4);
    google__protobuf__value__free_unpacked(v, NULL);

    /* Deep nesting under an unknown field is bytes, not levels: it is not descended. */
    struct bytes deep = wrap(nested_value(200), 30);
    assert_int_equal(check(VALUE_DESC, deep.p, deep.len, 2, err), 0);
    free(deep.p);
}

static void
test_packed_repeated(void **state)
{
    char err[PB_ERR_MAX];
    /* istio.security.Match destination_ports (9, uint32): packed and one by one. */
    static const uint8_t packed[] = {0x4a, 0x04, 0x50, 0xac, 0x02, 0x01}; /* 80, 300, 1 */
    static const uint8_t single[] = {0x48, 0x50, 0x48, 0xac, 0x02};       /* 80, 300 */
    static const uint8_t cut[] = {0x4a, 0x03, 0x50, 0xac, 0x82};          /* last varint open */
    static const uint8_t empty_run[] = {0x4a, 0x00};
    (void)state;

    Istio__Security__Match *m =
        pb_unpack_checked(MATCH_DESC, packed, sizeof(packed), BIG, err, sizeof(err));
    assert_non_null(m);
    assert_int_equal(m->n_destination_ports, 3);
    assert_int_equal(m->destination_ports[1], 300);
    istio__security__match__free_unpacked(m, NULL);
    assert_int_equal(check(MATCH_DESC, single, sizeof(single), 0, err), 0);
    assert_int_equal(check(MATCH_DESC, empty_run, sizeof(empty_run), 0, err), 0);
    ASSERT_REFUSED(check(MATCH_DESC, cut, sizeof(cut), 0, err), -MESH_EPROTO, err,
                   "istio.security.Match field 9: packed values cut short");
    /* A packed run is only for repeated scalars: not for the singular Value.bool_value. */
    static const uint8_t not_repeated[] = {0x22, 0x01, 0x01};
    assert_int_equal(check(VALUE_DESC, not_repeated, sizeof(not_repeated), 0, err), -MESH_EPROTO);
}

/*
 * No .proto of amesh has a repeated fixed-width scalar, so a descriptor is
 * made here: field 1 repeated fixed32, field 2 repeated double (fixed64).
 */
static const ProtobufCFieldDescriptor fixed_fields[] = {
    {.name = "f32", .id = 1, .label = PROTOBUF_C_LABEL_REPEATED, .type = PROTOBUF_C_TYPE_FIXED32},
    {.name = "f64", .id = 2, .label = PROTOBUF_C_LABEL_REPEATED, .type = PROTOBUF_C_TYPE_DOUBLE},
};
static const ProtobufCIntRange fixed_ranges[] = {{1, 0}, {0, 2}};
static const ProtobufCMessageDescriptor fixed_desc = {
    .magic = PROTOBUF_C__MESSAGE_DESCRIPTOR_MAGIC,
    .name = "test.Fixed",
    .n_fields = 2,
    .fields = fixed_fields,
    .n_field_ranges = 1,
    .field_ranges = fixed_ranges,
};

static void
test_packed_fixed(void **state)
{
    char err[PB_ERR_MAX];
    static const uint8_t ok32[] = {0x0a, 0x08, 1, 2, 3, 4, 5, 6, 7, 8, 0x0d, 1, 2, 3, 4};
    static const uint8_t bad32[] = {0x0a, 0x06, 1, 2, 3, 4, 5, 6};
    static const uint8_t ok64[] = {0x12, 0x08, 1, 2, 3, 4, 5, 6, 7, 8,
                                   0x11, 1,    2, 3, 4, 5, 6, 7, 8};
    static const uint8_t bad64[] = {0x12, 0x04, 1, 2, 3, 4};
    static const uint8_t wrong[] = {0x08, 0x01}; /* fixed32 sent as a varint */
    (void)state;

    assert_int_equal(check(&fixed_desc, ok32, sizeof(ok32), 0, err), 0);
    assert_int_equal(check(&fixed_desc, ok64, sizeof(ok64), 0, err), 0);
    ASSERT_REFUSED(check(&fixed_desc, bad32, sizeof(bad32), 0, err), -MESH_EPROTO, err,
                   "test.Fixed field 1: packed values cut short");
    ASSERT_REFUSED(check(&fixed_desc, bad64, sizeof(bad64), 0, err), -MESH_EPROTO, err,
                   "test.Fixed field 2: packed values cut short");
    ASSERT_REFUSED(check(&fixed_desc, wrong, sizeof(wrong), 0, err), -MESH_EPROTO, err,
                   "wire type 0, its type needs 5");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_depth_boundary), cmocka_unit_test(test_deep_struct_requests),
        cmocka_unit_test(test_size_cap),       cmocka_unit_test(test_truncated_and_invalid),
        cmocka_unit_test(test_unknown_fields), cmocka_unit_test(test_packed_repeated),
        cmocka_unit_test(test_packed_fixed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
