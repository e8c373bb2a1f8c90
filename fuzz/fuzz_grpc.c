/*
 * fuzz_grpc.c - the gRPC message reader and the header-value helpers.
 *
 * Byte 0 picks two chunk sizes and a message cap; the rest is the stream, fed
 * in alternating chunks and again in one piece: both runs must agree. The
 * whole input also goes through grpc-message encode/decode and status parsing.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "grpc/grpc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct seen {
    size_t n;
    size_t bytes;
    uint64_t hash; /* FNV-1a over lengths and contents, in order */
};

static uint64_t
fnv(uint64_t h, const void *p, size_t len)
{
    const uint8_t *b = p;
    for (size_t i = 0; i < len; i++)
        h = (h ^ b[i]) * 0x100000001b3ULL;
    return h;
}

static int
on_msg(void *arg, const uint8_t *msg, size_t len)
{
    struct seen *s = arg;

    if (msg == NULL)
        abort();
    s->n++;
    s->bytes += len;
    s->hash = fnv(s->hash, &len, sizeof(len));
    s->hash = fnv(s->hash, msg, len);
    return 0;
}

/* Feeds |in| in chunks of |a|, |b|, |a|, ... bytes; returns the first error or 0. */
static int
run(const uint8_t *in, size_t len, size_t cap, size_t a, size_t b, struct seen *s, int *fin)
{
    struct grpc_reader r;
    int rc = 0;
    size_t off = 0;

    memset(s, 0, sizeof(*s));
    s->hash = 0xcbf29ce484222325ULL;
    grpc_reader_init(&r, cap, on_msg, s);
    if (cap == 0)
        cap = GRPC_MSG_MAX_DEFAULT;
    for (int k = 0; off < len && rc == 0; k++) {
        size_t n = (k & 1) ? b : a;
        if (n > len - off)
            n = len - off;
        rc = grpc_reader_feed(&r, in + off, n);
        off += n;
        if (grpc_reader_buffered(&r) > cap + GRPC_PREFIX_LEN || grpc_reader_buffered(&r) > off)
            abort();
        if (s->bytes > off)
            abort();
    }
    *fin = grpc_reader_finish(&r);
    if (rc != 0 && *fin != rc)
        abort();
    grpc_reader_cleanup(&r);
    return rc;
}

static void
check_reader(const uint8_t *data, size_t size)
{
    static const size_t caps[] = {16, 300, 4096, 0};
    static const size_t chunks[] = {1, 2, 3, 5, 7, 64, 1000, SIZE_MAX};
    struct seen s1, s2;
    int f1, f2;

    if (size == 0)
        return;
    uint8_t sel = data[0];
    size_t cap = caps[sel >> 6];
    size_t a = chunks[sel & 7], b = chunks[(sel >> 3) & 7];
    const uint8_t *in = data + 1;
    size_t len = size - 1;

    int rc1 = run(in, len, cap, a, b, &s1, &f1);
    int rc2 = run(in, len, cap, SIZE_MAX, SIZE_MAX, &s2, &f2);
    if (rc1 != rc2 || f1 != f2 || s1.n != s2.n || s1.bytes != s2.bytes || s1.hash != s2.hash)
        abort();
    if (s1.bytes > len || s1.n * GRPC_PREFIX_LEN + s1.bytes > len)
        abort();
    if (rc1 != 0 && rc1 != -MESH_EPROTO && rc1 != -MESH_ELIMIT)
        abort();
    if (f1 != 0 && f1 != -MESH_EPROTO && f1 != -MESH_ELIMIT)
        abort();
}

static void
check_values(const uint8_t *data, size_t size)
{
    size_t enc_len = grpc_message_encoded_len(data, size), n = 0, m = 0;
    char *enc = malloc(enc_len + 1);
    uint8_t *dec = malloc(size + 1);

    /* decode(encode(x)) == x, with buffers of exactly the needed size. */
    if (grpc_message_encode(data, size, enc, enc_len + 1, &n) != 0 || n != enc_len)
        abort();
    for (size_t i = 0; i < n; i++)
        if ((uint8_t)enc[i] < 0x20 || (uint8_t)enc[i] > 0x7e)
            abort();
    if (enc_len > 0 && grpc_message_encode(data, size, enc, enc_len, &n) != -MESH_ELIMIT)
        abort();
    grpc_message_encode(data, size, enc, enc_len + 1, &n);
    uint8_t *rt = malloc(size + 1);
    if (grpc_message_decode(enc, n, rt, size + 1, &m) != 0 || m != size ||
        memcmp(rt, data, size) != 0)
        abort();
    free(rt);

    /* Arbitrary input decodes into len + 1 bytes, never growing. */
    if (grpc_message_decode((const char *)data, size, dec, size + 1, &m) != 0 || m > size)
        abort();

    int st = grpc_status_parse((const char *)data, size);
    if (st != -MESH_EPROTO && (st < 0 || st > GRPC_STATUS_MAX || size == 0 || size > 2))
        abort();
    (void)grpc_content_type_ok((const char *)data, size);
    free(enc);
    free(dec);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    check_reader(data, size);
    check_values(data, size);
    return 0;
}
