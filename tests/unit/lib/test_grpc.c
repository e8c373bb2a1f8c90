/* test_grpc.c - gRPC message framing, the incremental reader and header values, table-driven. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "base/base.h"
#include "buf/buf.h"
#include "grpc/grpc.h"

#define MAX_MSGS 16

/* What a reader delivered: message lengths and their bytes, concatenated. */
struct collect {
    size_t n;
    size_t lens[MAX_MSGS];
    uint8_t data[16384];
    size_t data_len;
    int fail_at; /* return an error on this message (1-based); 0: never */
};

static int
on_msg(void *arg, const uint8_t *msg, size_t len)
{
    struct collect *c = arg;

    assert_non_null(msg);
    assert_true(c->n < MAX_MSGS);
    assert_true(c->data_len + len <= sizeof(c->data));
    c->lens[c->n++] = len;
    memcpy(c->data + c->data_len, msg, len);
    c->data_len += len;
    if (c->fail_at != 0 && (size_t)c->fail_at == c->n)
        return -ECANCELED;
    return 0;
}

static void
prefix(uint8_t out[GRPC_PREFIX_LEN], uint8_t flag, uint32_t len)
{
    out[0] = flag;
    out[1] = (uint8_t)(len >> 24);
    out[2] = (uint8_t)(len >> 16);
    out[3] = (uint8_t)(len >> 8);
    out[4] = (uint8_t)len;
}

static void
test_prefix_write(void **state)
{
    uint8_t p[GRPC_PREFIX_LEN];
    (void)state;

    assert_int_equal(grpc_prefix_write(p, 0), 0);
    assert_memory_equal(p, "\0\0\0\0\0", 5);
    assert_int_equal(grpc_prefix_write(p, 0x01020304), 0);
    assert_memory_equal(p, "\0\x01\x02\x03\x04", 5);
    assert_int_equal(grpc_prefix_write(p, UINT32_MAX), 0);
    assert_memory_equal(p, "\0\xff\xff\xff\xff", 5);
#if SIZE_MAX > UINT32_MAX
    assert_int_equal(grpc_prefix_write(p, (size_t)UINT32_MAX + 1), -MESH_ELIMIT);
#endif
}

static void
test_frame_append_cap(void **state)
{
    struct buf b;
    (void)state;

    buf_init(&b, 16);
    assert_int_equal(grpc_frame_append(&b, "hello", 5), 0);
    assert_int_equal(buf_len(&b), 10);
    assert_memory_equal(buf_head(&b), "\0\0\0\0\x05hello", 10);
    /* 6 bytes left: a 1-byte message fits exactly, then nothing (not even a prefix). */
    assert_int_equal(grpc_frame_append(&b, "ab", 2), -MESH_ELIMIT);
    assert_int_equal(buf_len(&b), 10);
    assert_int_equal(grpc_frame_append(&b, "a", 1), 0);
    assert_int_equal(buf_len(&b), 16);
    assert_int_equal(grpc_frame_append(&b, NULL, 0), -MESH_ELIMIT);
    assert_int_equal(buf_len(&b), 16);
    buf_cleanup(&b);

    /* Empty message: prefix only. */
    buf_init(&b, 5);
    assert_int_equal(grpc_frame_append(&b, NULL, 0), 0);
    assert_memory_equal(buf_head(&b), "\0\0\0\0\0", 5);
    buf_cleanup(&b);
}

/* Several messages, including empty ones and one longer than any small chunk. */
static const size_t stream_lens[] = {3, 0, 1, 300, 0, 17, 2000};

static size_t
make_stream(struct buf *b, uint8_t *payload)
{
    size_t off = 0;

    buf_init(b, 1 << 16);
    for (size_t i = 0; i < ARRAY_LEN(stream_lens); i++) {
        for (size_t j = 0; j < stream_lens[i]; j++)
            payload[off + j] = (uint8_t)(i * 31 + j * 7);
        assert_int_equal(grpc_frame_append(b, payload + off, stream_lens[i]), 0);
        off += stream_lens[i];
    }
    return off;
}

static void
check_stream(const struct collect *c, const uint8_t *payload, size_t payload_len)
{
    assert_int_equal(c->n, ARRAY_LEN(stream_lens));
    for (size_t i = 0; i < ARRAY_LEN(stream_lens); i++)
        assert_int_equal(c->lens[i], stream_lens[i]);
    assert_int_equal(c->data_len, payload_len);
    assert_memory_equal(c->data, payload, payload_len);
}

/* Feeds |in| in pieces of |chunk| bytes (after a first piece of |first| bytes). */
static void
feed_split(const uint8_t *in, size_t len, size_t first, size_t chunk, struct collect *c)
{
    struct grpc_reader r;
    size_t off = 0;

    memset(c, 0, sizeof(*c));
    grpc_reader_init(&r, 4096, on_msg, c);
    for (bool started = false; off < len; started = true) {
        /* The first piece may be empty (a cut at 0): after it, always |chunk| bytes. */
        size_t n = started ? chunk : first;
        if (n > len - off)
            n = len - off;
        assert_int_equal(grpc_reader_feed(&r, in + off, n), 0);
        assert_true(grpc_reader_buffered(&r) <= 4096 + GRPC_PREFIX_LEN);
        off += n;
    }
    assert_int_equal(grpc_reader_finish(&r), 0);
    assert_int_equal(grpc_reader_buffered(&r), 0);
    grpc_reader_cleanup(&r);
}

static void
test_round_trip_every_split(void **state)
{
    static uint8_t payload[4096];
    static struct collect c;
    struct buf b;
    (void)state;

    size_t payload_len = make_stream(&b, payload);
    const uint8_t *in = (const uint8_t *)buf_head(&b);
    size_t len = buf_len(&b);

    /* Two pieces, cut at every boundary (0 and len included). */
    for (size_t cut = 0; cut <= len; cut++) {
        feed_split(in, len, cut, len, &c);
        check_stream(&c, payload, payload_len);
    }
    /* Fixed chunk sizes, from byte by byte up. */
    for (size_t chunk = 1; chunk <= 64; chunk++) {
        feed_split(in, len, chunk, chunk, &c);
        check_stream(&c, payload, payload_len);
    }
    /* Three pieces: every first cut, then a prime stride. */
    for (size_t cut = 1; cut < len; cut += 3) {
        feed_split(in, len, cut, 257, &c);
        check_stream(&c, payload, payload_len);
    }
    buf_cleanup(&b);
}

static void
test_two_in_one_chunk_and_empty(void **state)
{
    static const uint8_t in[] = "\0\0\0\0\x02hi"
                                "\0\0\0\0\0"
                                "\0\0\0\0\x03"
                                "abc";
    struct collect c = {0};
    struct grpc_reader r;
    (void)state;

    grpc_reader_init(&r, 0, on_msg, &c);
    assert_int_equal(grpc_reader_feed(&r, in, sizeof(in) - 1), 0);
    assert_int_equal(c.n, 3);
    assert_int_equal(c.lens[0], 2);
    assert_int_equal(c.lens[1], 0);
    assert_int_equal(c.lens[2], 3);
    assert_memory_equal(c.data, "hiabc", 5);
    assert_int_equal(grpc_reader_finish(&r), 0);
    /* An empty feed is a no-op. */
    assert_int_equal(grpc_reader_feed(&r, NULL, 0), 0);
    assert_int_equal(c.n, 3);
    grpc_reader_cleanup(&r);
}

static void
test_cap(void **state)
{
    static uint8_t body[100];
    uint8_t p[GRPC_PREFIX_LEN];
    struct collect c = {0};
    struct grpc_reader r;
    (void)state;

    /* Exactly the cap is accepted, split or not. */
    memset(body, 'x', sizeof(body));
    grpc_reader_init(&r, sizeof(body), on_msg, &c);
    prefix(p, 0, sizeof(body));
    assert_int_equal(grpc_reader_feed(&r, p, sizeof(p)), 0);
    assert_int_equal(grpc_reader_feed(&r, body, 60), 0);
    assert_int_equal(grpc_reader_buffered(&r), 65);
    assert_int_equal(grpc_reader_feed(&r, body + 60, 40), 0);
    assert_int_equal(c.n, 1);
    assert_int_equal(c.lens[0], sizeof(body));
    grpc_reader_cleanup(&r);

    /* Cap + 1 is refused from the prefix alone, with no body held. */
    memset(&c, 0, sizeof(c));
    grpc_reader_init(&r, sizeof(body), on_msg, &c);
    prefix(p, 0, sizeof(body) + 1);
    assert_int_equal(grpc_reader_feed(&r, p, 4), 0);
    assert_int_equal(grpc_reader_feed(&r, p + 4, 1), -MESH_ELIMIT);
    assert_true(grpc_reader_buffered(&r) <= GRPC_PREFIX_LEN);
    assert_int_equal(grpc_reader_feed(&r, body, sizeof(body)), -MESH_ELIMIT);
    assert_true(grpc_reader_buffered(&r) <= GRPC_PREFIX_LEN);
    assert_int_equal(grpc_reader_finish(&r), -MESH_ELIMIT);
    assert_int_equal(c.n, 0);
    grpc_reader_cleanup(&r);

    /* The default cap, and the largest: storage follows the bytes, not the announced length. */
    grpc_reader_init(&r, 0, on_msg, &c);
    prefix(p, 0, (uint32_t)GRPC_MSG_MAX_DEFAULT + 1);
    assert_int_equal(grpc_reader_feed(&r, p, sizeof(p)), -MESH_ELIMIT);
    grpc_reader_cleanup(&r);
    grpc_reader_init(&r, GRPC_MSG_MAX_LIMIT, on_msg, &c);
    prefix(p, 0, (uint32_t)GRPC_MSG_MAX_LIMIT);
    assert_int_equal(grpc_reader_feed(&r, p, sizeof(p)), 0);
    assert_int_equal(grpc_reader_feed(&r, body, 10), 0);
    assert_int_equal(grpc_reader_buffered(&r), 15);
    assert_true(r.body_cap < 65536);
    assert_int_equal(grpc_reader_finish(&r), -MESH_EPROTO);
    grpc_reader_cleanup(&r);
    assert_int_equal(c.n, 0);
}

static void
test_bad_flags(void **state)
{
    static const uint8_t flags[] = {1, 2, 0x80, 0xff};
    uint8_t in[GRPC_PREFIX_LEN + 2];
    (void)state;

    for (size_t i = 0; i < ARRAY_LEN(flags); i++) {
        struct collect c = {0};
        struct grpc_reader r;
        grpc_reader_init(&r, 0, on_msg, &c);
        prefix(in, flags[i], 2);
        in[5] = 'h';
        in[6] = 'i';
        assert_int_equal(grpc_reader_feed(&r, in, sizeof(in)), -MESH_EPROTO);
        /* Sticky: a good message afterwards is not read. */
        prefix(in, 0, 2);
        assert_int_equal(grpc_reader_feed(&r, in, sizeof(in)), -MESH_EPROTO);
        assert_int_equal(grpc_reader_finish(&r), -MESH_EPROTO);
        assert_int_equal(c.n, 0);
        grpc_reader_cleanup(&r);
    }
}

static void
test_finish_truncated(void **state)
{
    static const struct {
        const char *name;
        const char *in;
        size_t len;
        int rc;
        size_t n_msgs;
    } cases[] = {
        {"empty stream", "", 0, 0, 0},
        {"one byte of prefix", "\0", 1, -MESH_EPROTO, 0},
        {"four bytes of prefix", "\0\0\0\0", 4, -MESH_EPROTO, 0},
        {"prefix only", "\0\0\0\0\x02", 5, -MESH_EPROTO, 0},
        {"half a body", "\0\0\0\0\x02h", 6, -MESH_EPROTO, 0},
        {"whole message", "\0\0\0\0\x02hi", 7, 0, 1},
        {"message then prefix byte", "\0\0\0\0\x02hi\0", 8, -MESH_EPROTO, 1},
        {"empty message", "\0\0\0\0\0", 5, 0, 1},
    };
    (void)state;

    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        struct collect c = {0};
        struct grpc_reader r;
        grpc_reader_init(&r, 0, on_msg, &c);
        assert_int_equal(grpc_reader_feed(&r, cases[i].in, cases[i].len), 0);
        int rc = grpc_reader_finish(&r);
        if (rc != cases[i].rc || c.n != cases[i].n_msgs)
            fail_msg("case \"%s\": finish %d (want %d), %zu messages (want %zu)", cases[i].name,
                     rc, cases[i].rc, c.n, cases[i].n_msgs);
        grpc_reader_cleanup(&r);
    }
}

static void
test_callback_error_stops(void **state)
{
    static const uint8_t in[] = "\0\0\0\0\x01"
                                "a"
                                "\0\0\0\0\x01"
                                "b"
                                "\0\0\0\0\x01"
                                "c";
    struct collect c = {.fail_at = 2};
    struct grpc_reader r;
    (void)state;

    grpc_reader_init(&r, 0, on_msg, &c);
    assert_int_equal(grpc_reader_feed(&r, in, sizeof(in) - 1), -ECANCELED);
    assert_int_equal(c.n, 2);
    assert_int_equal(grpc_reader_feed(&r, in, 6), -ECANCELED);
    assert_int_equal(grpc_reader_finish(&r), -ECANCELED);
    assert_int_equal(c.n, 2);
    grpc_reader_cleanup(&r);

    /* The same from the buffered path (message split across feeds). */
    memset(&c, 0, sizeof(c));
    c.fail_at = 1;
    grpc_reader_init(&r, 0, on_msg, &c);
    assert_int_equal(grpc_reader_feed(&r, in, 5), 0);
    assert_int_equal(grpc_reader_feed(&r, in + 5, 7), -ECANCELED);
    assert_int_equal(c.n, 1);
    grpc_reader_cleanup(&r);
}

/* Checks a large message without copying it: its length and a byte sum. */
struct large {
    size_t n;
    size_t len;
    uint64_t sum;
};

static int
on_large(void *arg, const uint8_t *msg, size_t len)
{
    struct large *l = arg;

    l->n++;
    l->len = len;
    l->sum = 0;
    for (size_t i = 0; i < len; i++)
        l->sum += msg[i];
    return 0;
}

/* A large message through the buffered path frees its storage afterwards; cleanup allows reuse. */
static void
test_large_then_reuse(void **state)
{
    const size_t n = 200000, total = n + GRPC_PREFIX_LEN, step = 4093;
    uint8_t *in = malloc(total);
    uint64_t sum = 0;
    struct grpc_reader r;
    (void)state;

    prefix(in, 0, (uint32_t)n);
    for (size_t i = 0; i < n; i++) {
        in[GRPC_PREFIX_LEN + i] = (uint8_t)(i * 13);
        sum += in[GRPC_PREFIX_LEN + i];
    }
    for (int round = 0; round < 2; round++) {
        struct large l = {0};
        grpc_reader_init(&r, 0, on_large, &l);
        for (size_t off = 0; off < total; off += step) {
            size_t k = total - off < step ? total - off : step;
            assert_int_equal(grpc_reader_feed(&r, in + off, k), 0);
            assert_true(grpc_reader_buffered(&r) <= off + k);
        }
        assert_int_equal(l.n, 1);
        assert_int_equal(l.len, n);
        assert_true(l.sum == sum);
        assert_int_equal(grpc_reader_buffered(&r), 0);
        assert_null(r.body); /* over the keep threshold: freed after delivery */
        assert_int_equal(grpc_reader_finish(&r), 0);
        grpc_reader_cleanup(&r);
    }
    free(in);
}

static void
test_status_parse(void **state)
{
    static const struct {
        const char *in;
        int rc;
    } cases[] = {
        {"0", 0},
        {"3", 3},
        {"7", 7},
        {"9", 9},
        {"10", 10},
        {"14", 14},
        {"16", 16},
        {"17", -MESH_EPROTO},
        {"99", -MESH_EPROTO},
        {"100", -MESH_EPROTO},
        {"-1", -MESH_EPROTO},
        {"+1", -MESH_EPROTO},
        {"01", -MESH_EPROTO},
        {"00", -MESH_EPROTO},
        {"", -MESH_EPROTO},
        {"abc", -MESH_EPROTO},
        {" 1", -MESH_EPROTO},
        {"1 ", -MESH_EPROTO},
        {"1a", -MESH_EPROTO},
        {"0x1", -MESH_EPROTO},
        {"4294967296", -MESH_EPROTO},
    };
    (void)state;

    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        int rc = grpc_status_parse(cases[i].in, strlen(cases[i].in));
        if (rc != cases[i].rc)
            fail_msg("status \"%s\": got %d, want %d", cases[i].in, rc, cases[i].rc);
    }
    /* Length, not NUL, bounds the value. */
    assert_int_equal(grpc_status_parse("160", 2), 16);
    assert_int_equal(grpc_status_parse("1\0", 2), -MESH_EPROTO);
    assert_int_equal(GRPC_STATUS_UNAUTHENTICATED, 16);
    assert_int_equal(GRPC_STATUS_UNAVAILABLE, 14);
    assert_int_equal(GRPC_STATUS_PERMISSION_DENIED, 7);
    assert_int_equal(GRPC_STATUS_INVALID_ARGUMENT, 3);
}

static void
test_content_type(void **state)
{
    static const struct {
        const char *in;
        int ok;
    } cases[] = {
        {"application/grpc", 1},
        {"application/grpc+proto", 1},
        {"application/grpc;charset=utf-8", 1},
        {"application/grpc+", 0},
        {"application/grp", 0},
        {"application/grpcx", 0},
        {"application/json", 0},
        {"Application/grpc", 0},
        {"", 0},
    };
    (void)state;

    for (size_t i = 0; i < ARRAY_LEN(cases); i++)
        if (grpc_content_type_ok(cases[i].in, strlen(cases[i].in)) != cases[i].ok)
            fail_msg("content-type \"%s\": want %d", cases[i].in, cases[i].ok);
}

static const struct {
    const char *raw;
    size_t raw_len; /* 0: strlen */
    const char *enc;
} encode_cases[] = {
    {"", 0, ""},
    {"ok", 0, "ok"},
    {"no such workload", 0, "no such workload"},
    {"100%", 0, "100%25"},
    {"%%", 0, "%25%25"},
    {" ~", 0, " ~"},
    {"tab\there", 0, "tab%09here"},
    {"line\r\n", 0, "line%0D%0A"},
    {"\x7f", 0, "%7F"},
    {"caf\xc3\xa9", 0, "caf%C3%A9"},
    {"a\0b", 3, "a%00b"},
    {"\xff", 0, "%FF"},
};

static void
test_message_encode(void **state)
{
    char out[64];
    size_t n;
    (void)state;

    for (size_t i = 0; i < ARRAY_LEN(encode_cases); i++) {
        const char *raw = encode_cases[i].raw;
        size_t len = encode_cases[i].raw_len ? encode_cases[i].raw_len : strlen(raw);
        size_t want = strlen(encode_cases[i].enc);
        assert_int_equal(grpc_message_encoded_len(raw, len), want);
        assert_int_equal(grpc_message_encode(raw, len, out, sizeof(out), &n), 0);
        if (n != want || strcmp(out, encode_cases[i].enc) != 0)
            fail_msg("encode case %zu: got \"%s\", want \"%s\"", i, out, encode_cases[i].enc);
        /* Room for exactly the string and its NUL, and one byte less. */
        assert_int_equal(grpc_message_encode(raw, len, out, want + 1, &n), 0);
        assert_int_equal(grpc_message_encode(raw, len, out, want, &n), -MESH_ELIMIT);
        if (want > 0)
            assert_string_equal(out, "");
    }
    assert_int_equal(grpc_message_encode("x", 1, NULL, 0, &n), -MESH_ELIMIT);
}

static void
test_message_decode(void **state)
{
    static const struct {
        const char *enc;
        const char *raw;
        size_t raw_len; /* 0: strlen */
    } cases[] = {
        /* malformed escapes are kept as they are */
        {"%", "%", 0},
        {"%4", "%4", 0},
        {"%zz", "%zz", 0},
        {"%4g", "%4g", 0},
        {"%g4", "%g4", 0},
        {"a%", "a%", 0},
        {"a%2", "a%2", 0},
        {"%%41", "%A", 0},
        {"%2%41", "%2A", 0},
        {"%-1", "%-1", 0},
        {"% 1", "% 1", 0},
        /* well-formed, either case */
        {"%41", "A", 0},
        {"%4a%4A", "JJ", 0},
        {"%2541", "%41", 0},
        {"%00", "\0", 1},
        {"caf%C3%A9", "caf\xc3\xa9", 0},
        /* bytes a sender should have escaped are passed through */
        {"caf\xc3\xa9", "caf\xc3\xa9", 0},
    };
    uint8_t out[64];
    size_t n;
    (void)state;

    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        size_t want = cases[i].raw_len ? cases[i].raw_len : strlen(cases[i].raw);
        size_t len = strlen(cases[i].enc);
        assert_int_equal(grpc_message_decode(cases[i].enc, len, out, sizeof(out), &n), 0);
        if (n != want || memcmp(out, cases[i].raw, want) != 0 || out[n] != '\0')
            fail_msg("decode \"%s\": got %zu bytes \"%.*s\"", cases[i].enc, n, (int)n,
                     (const char *)out);
        /* len + 1 is always enough; exactly want + 1 is enough too; want is not. */
        assert_int_equal(grpc_message_decode(cases[i].enc, len, out, len + 1, &n), 0);
        assert_int_equal(grpc_message_decode(cases[i].enc, len, out, want + 1, &n), 0);
        assert_int_equal(grpc_message_decode(cases[i].enc, len, out, want, &n), -MESH_ELIMIT);
    }
    /* Decoding reads only |len| bytes: a cut escape is malformed, not read past. */
    assert_int_equal(grpc_message_decode("%41", 2, out, sizeof(out), &n), 0);
    assert_int_equal(n, 2);
    assert_memory_equal(out, "%4", 2);

    /* Round trips through the encode table. */
    for (size_t i = 0; i < ARRAY_LEN(encode_cases); i++) {
        const char *enc = encode_cases[i].enc;
        size_t want = encode_cases[i].raw_len ? encode_cases[i].raw_len
                                              : strlen(encode_cases[i].raw);
        assert_int_equal(grpc_message_decode(enc, strlen(enc), out, sizeof(out), &n), 0);
        assert_int_equal(n, want);
        assert_memory_equal(out, encode_cases[i].raw, want);
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_prefix_write),
        cmocka_unit_test(test_frame_append_cap),
        cmocka_unit_test(test_round_trip_every_split),
        cmocka_unit_test(test_two_in_one_chunk_and_empty),
        cmocka_unit_test(test_cap),
        cmocka_unit_test(test_bad_flags),
        cmocka_unit_test(test_finish_truncated),
        cmocka_unit_test(test_callback_error_stops),
        cmocka_unit_test(test_large_then_reuse),
        cmocka_unit_test(test_status_parse),
        cmocka_unit_test(test_content_type),
        cmocka_unit_test(test_message_encode),
        cmocka_unit_test(test_message_decode),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    buf_cache_drop();
    return rc;
}
