/*
 * tls_bio.c - lower stream reads, a batch buffer plus lower stream writes.
 */
#include <errno.h>
#include <pthread.h>

#include "base/base.h"
#include "tls/tls_bio.h"

struct tls_bio {
    struct stream *lower;
    struct buf *out;
    bool drained; /* a short read took all the lower stream had: see tls_bio_readable() */
};

/* Made once per process (pthread_once): loops on several threads make BIOs, and a plain
 * "if NULL" would let two of them build (and one leak) the method, or read it half set. */
static BIO_METHOD *method;
static pthread_once_t method_once = PTHREAD_ONCE_INIT;

int
tls_bio_send(struct stream *lower, struct buf *out)
{
    while (buf_len(out) > 0) {
        size_t len = buf_len(out);
        ssize_t n = stream_write(lower, buf_head(out), len);
        if (n == -EINTR)
            continue;
        if (n < 0)
            return (int)n;
        buf_consume(out, (size_t)n);
        /* A socket that took part of it is full: asking again would return -EAGAIN. */
        if ((size_t)n < len && stream_short_io_final(lower))
            return -EAGAIN;
    }
    buf_release_if_empty(out);
    return 0;
}

static int
bio_write(BIO *b, const char *p, int len)
{
    struct tls_bio *t = BIO_get_data(b);

    BIO_clear_retry_flags(b);
    if (len <= 0)
        return 0;
    if (buf_space(t->out) < (size_t)len) {
        /* Make room by sending; if the socket is full too, OpenSSL retries later. */
        int rc = tls_bio_send(t->lower, t->out);
        if (rc < 0 && rc != -EAGAIN) {
            errno = -rc;
            return -1;
        }
        if (buf_space(t->out) < (size_t)len) {
            BIO_set_retry_write(b);
            return -1;
        }
    }
    CHECK(buf_append(t->out, p, (size_t)len) == 0);
    return len;
}

static int
bio_read(BIO *b, char *p, int len)
{
    struct tls_bio *t = BIO_get_data(b);

    BIO_clear_retry_flags(b);
    ssize_t n = t->drained ? -EAGAIN : stream_read(t->lower, p, (size_t)len);
    if (n < 0) {
        if (n == -EAGAIN || n == -EINTR)
            BIO_set_retry_read(b);
        errno = (int)-n; /* SSL_ERROR_SYSCALL reports it through errno */
        return -1;
    }
    t->drained = n > 0 && n < len && stream_short_io_final(t->lower);
    return (int)n;
}

void
tls_bio_readable(BIO *b)
{
    struct tls_bio *t = b != NULL ? BIO_get_data(b) : NULL;
    if (t != NULL)
        t->drained = false;
}

static long
bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    (void)b;
    (void)num;
    (void)ptr;
    /* Flushing is the TLS stream's job (tls_bio_send after each round of SSL calls). */
    return cmd == BIO_CTRL_FLUSH ? 1 : 0;
}

static int
bio_create(BIO *b)
{
    BIO_set_init(b, 1);
    return 1;
}

static int
bio_destroy(BIO *b)
{
    struct tls_bio *t = BIO_get_data(b);
    OPENSSL_free(t);
    BIO_set_data(b, NULL);
    return 1;
}

static void
method_init(void)
{
    BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "amesh stream");
    if (m == NULL || !BIO_meth_set_write(m, bio_write) || !BIO_meth_set_read(m, bio_read) ||
        !BIO_meth_set_ctrl(m, bio_ctrl) || !BIO_meth_set_create(m, bio_create) ||
        !BIO_meth_set_destroy(m, bio_destroy)) {
        BIO_meth_free(m);
        return; /* out of memory: every tls_bio_new() fails */
    }
    method = m;
}

BIO *
tls_bio_new(struct stream *lower, struct buf *out)
{
    pthread_once(&method_once, method_init);
    if (method == NULL)
        return NULL;
    struct tls_bio *t = OPENSSL_zalloc(sizeof(*t));
    BIO *b = t ? BIO_new(method) : NULL;
    if (b == NULL) {
        OPENSSL_free(t);
        return NULL;
    }
    t->lower = lower;
    t->out = out;
    BIO_set_data(b, t);
    return b;
}
