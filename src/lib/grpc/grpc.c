/*
 * grpc.c - gRPC message framing and header values; see grpc.h.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "buf/buf.h"
#include "grpc/grpc.h"

#define GRPC_BODY_MIN_ALLOC 4096
/* Body storage above this is freed after each message, so an idle stream holds little. */
#define GRPC_BODY_KEEP      ((size_t)64 << 10)

int
grpc_prefix_write(uint8_t out[GRPC_PREFIX_LEN], size_t len)
{
    if (len > UINT32_MAX)
        return -MESH_ELIMIT;
    out[0] = 0;
    out[1] = (uint8_t)(len >> 24);
    out[2] = (uint8_t)(len >> 16);
    out[3] = (uint8_t)(len >> 8);
    out[4] = (uint8_t)len;
    return 0;
}

int
grpc_frame_append(struct buf *b, const void *msg, size_t len)
{
    uint8_t prefix[GRPC_PREFIX_LEN];
    size_t space = buf_space(b);

    if (space < GRPC_PREFIX_LEN || len > space - GRPC_PREFIX_LEN)
        return -MESH_ELIMIT;
    if (grpc_prefix_write(prefix, len) < 0)
        return -MESH_ELIMIT;
    /* Both fit (checked above), so neither append can fail half way. */
    CHECK(buf_append(b, prefix, sizeof(prefix)) == 0);
    if (len > 0)
        CHECK(buf_append(b, msg, len) == 0);
    return 0;
}

void
grpc_reader_init(struct grpc_reader *r, size_t max_msg, grpc_msg_fn on_msg, void *arg)
{
    CHECK(max_msg <= GRPC_MSG_MAX_LIMIT);
    CHECK(on_msg != NULL);
    memset(r, 0, sizeof(*r));
    r->max_msg = max_msg != 0 ? max_msg : GRPC_MSG_MAX_DEFAULT;
    r->on_msg = on_msg;
    r->arg = arg;
}

void
grpc_reader_cleanup(struct grpc_reader *r)
{
    free(r->body);
    r->body = NULL;
    r->body_len = 0;
    r->body_cap = 0;
    r->prefix_len = 0;
}

size_t
grpc_reader_buffered(const struct grpc_reader *r)
{
    return r->prefix_len + r->body_len;
}

/* A complete prefix: checks the flag and the length against the cap. */
static int
prefix_parse(struct grpc_reader *r)
{
    const uint8_t *h = r->prefix;

    if (h[0] != 0)
        return -MESH_EPROTO; /* 1 is compression, which we never negotiate */
    uint32_t n = (uint32_t)h[1] << 24 | (uint32_t)h[2] << 16 | (uint32_t)h[3] << 8 | h[4];
    if (n > r->max_msg)
        return -MESH_ELIMIT;
    r->msg_len = n;
    return 0;
}

/* Makes room for |want| body bytes; |want| <= msg_len <= max_msg. */
static int
body_reserve(struct grpc_reader *r, size_t want)
{
    if (want <= r->body_cap)
        return 0;
    size_t ncap = r->body_cap != 0 ? r->body_cap : GRPC_BODY_MIN_ALLOC;
    while (ncap < want)
        ncap *= 2;
    if (ncap > r->msg_len)
        ncap = r->msg_len;
    uint8_t *p = realloc(r->body, ncap);
    if (p == NULL)
        return -ENOMEM;
    r->body = p;
    r->body_cap = ncap;
    return 0;
}

/* Resets for the next prefix, then hands |msg| to the callback. */
static int
deliver(struct grpc_reader *r, const uint8_t *msg, size_t len)
{
    static const uint8_t empty[1];

    r->prefix_len = 0;
    r->msg_len = 0;
    int rc = r->on_msg(r->arg, len > 0 ? msg : empty, len);
    r->body_len = 0;
    if (r->body_cap > GRPC_BODY_KEEP) {
        free(r->body);
        r->body = NULL;
        r->body_cap = 0;
    }
    return rc;
}

int
grpc_reader_feed(struct grpc_reader *r, const void *data, size_t len)
{
    const uint8_t *p = data;
    int rc = 0;

    if (r->err != 0)
        return r->err;
    for (;;) {
        if (r->prefix_len < GRPC_PREFIX_LEN) {
            if (len == 0)
                break;
            size_t n = GRPC_PREFIX_LEN - r->prefix_len;
            if (n > len)
                n = len;
            memcpy(r->prefix + r->prefix_len, p, n);
            r->prefix_len += n;
            p += n;
            len -= n;
            if (r->prefix_len < GRPC_PREFIX_LEN)
                break;
            if ((rc = prefix_parse(r)) != 0)
                goto out;
        }
        if (r->body_len == 0 && len >= r->msg_len) {
            /* The whole body is in this chunk: no copy. */
            size_t n = r->msg_len;
            rc = deliver(r, p, n);
            p += n;
            len -= n;
            if (rc != 0)
                goto out;
            continue;
        }
        if (len == 0)
            break;
        size_t n = r->msg_len - r->body_len;
        if (n > len)
            n = len;
        if ((rc = body_reserve(r, r->body_len + n)) != 0)
            goto out;
        memcpy(r->body + r->body_len, p, n);
        r->body_len += n;
        p += n;
        len -= n;
        if (r->body_len == r->msg_len && (rc = deliver(r, r->body, r->body_len)) != 0)
            goto out;
    }
out:
    if (rc != 0)
        r->err = rc;
    return rc;
}

int
grpc_reader_finish(const struct grpc_reader *r)
{
    if (r->err != 0)
        return r->err;
    return r->prefix_len != 0 ? -MESH_EPROTO : 0;
}

int
grpc_status_parse(const char *s, size_t len)
{
    int v = 0;

    if (len == 0 || len > 2 || (len == 2 && s[0] == '0'))
        return -MESH_EPROTO;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -MESH_EPROTO;
        v = v * 10 + (s[i] - '0');
    }
    return v <= GRPC_STATUS_MAX ? v : -MESH_EPROTO;
}

int
grpc_content_type_ok(const char *s, size_t len)
{
    static const char base[] = GRPC_CONTENT_TYPE;
    const size_t n = sizeof(base) - 1;

    if (len < n || memcmp(s, base, n) != 0)
        return 0;
    if (len == n || s[n] == ';')
        return 1;
    return s[n] == '+' && len > n + 1;
}

static int
needs_escape(uint8_t c)
{
    return c < 0x20 || c > 0x7e || c == '%';
}

size_t
grpc_message_encoded_len(const void *in, size_t len)
{
    const uint8_t *p = in;
    size_t n = len;

    for (size_t i = 0; i < len; i++)
        if (needs_escape(p[i]))
            n += 2;
    return n;
}

int
grpc_message_encode(const void *in, size_t len, char *out, size_t cap, size_t *out_len)
{
    static const char hex[] = "0123456789ABCDEF";
    const uint8_t *p = in;
    size_t need = grpc_message_encoded_len(in, len);
    size_t o = 0;

    if (need >= cap) {
        if (cap > 0)
            out[0] = '\0';
        return -MESH_ELIMIT;
    }
    for (size_t i = 0; i < len; i++) {
        if (needs_escape(p[i])) {
            out[o++] = '%';
            out[o++] = hex[p[i] >> 4];
            out[o++] = hex[p[i] & 0xf];
        } else {
            out[o++] = (char)p[i];
        }
    }
    out[o] = '\0';
    *out_len = o;
    return 0;
}

static int
hex_val(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int
grpc_message_decode(const char *in, size_t len, uint8_t *out, size_t cap, size_t *out_len)
{
    size_t o = 0;

    for (size_t i = 0; i < len; i++) {
        uint8_t c = (uint8_t)in[i];
        if (c == '%' && len - i > 2) {
            int hi = hex_val(in[i + 1]), lo = hex_val(in[i + 2]);
            if (hi >= 0 && lo >= 0) {
                c = (uint8_t)(hi << 4 | lo);
                i += 2;
            }
        }
        if (o + 1 >= cap) {
            if (cap > 0)
                out[0] = '\0';
            return -MESH_ELIMIT;
        }
        out[o++] = c;
    }
    if (cap == 0)
        return -MESH_ELIMIT;
    out[o] = '\0';
    *out_len = o;
    return 0;
}
