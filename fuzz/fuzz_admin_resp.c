/*
 * fuzz_admin_resp.c - what meshctl reads from an admin port (ztunnel's, or
 * whatever answers at the address given): the response fed to the reader as
 * admin_get() does, all at once and then read by read in uneven pieces; both
 * must end the same way, with the same body or the same error.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "admin_parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct outcome {
    int rc;
    size_t len;
    char *body;
    char err[256];
};

/* Feeds |d| in pieces of |step| bytes (0: whole), keeping the unconsumed rest like admin_get(). */
static void
run(const char *d, size_t size, size_t step, struct outcome *o)
{
    struct admin_reader rd;
    char *buf = malloc(size + 1);
    size_t n = 0, off = 0;
    int fed = 0;

    memset(o, 0, sizeof(*o));
    admin_reader_init(&rd);
    do {
        size_t piece = step == 0 || size - off < step ? size - off : step, used;
        memcpy(buf + n, d + off, piece);
        n += piece;
        off += piece;
        fed = admin_reader_feed(&rd, buf, n, &used, off == size, o->err, sizeof(o->err));
        if (used > n)
            abort();
        memmove(buf, buf + used, n - used);
        n -= used;
        if (fed == 0 && off == size)
            abort(); /* at EOF the reader decides */
    } while (fed == 0);
    o->rc = fed < 0 ? -1 : admin_reader_result(&rd, &o->body, &o->len, o->err, sizeof(o->err));
    if (o->rc == 0 && (o->body == NULL || o->body[o->len] != '\0' || o->len > size))
        abort();
    if (o->rc < 0 && (o->body != NULL || o->err[0] == '\0'))
        abort(); /* a refusal frees everything and says why */
    admin_reader_free(&rd);
    free(buf);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct outcome whole, split;

    run((const char *)data, size, 0, &whole);
    for (size_t step = 1; step <= 13; step += 12) {
        run((const char *)data, size, step, &split);
        if (split.rc != whole.rc || split.len != whole.len || strcmp(split.err, whole.err) != 0 ||
            (whole.rc == 0 && memcmp(split.body, whole.body, whole.len) != 0))
            abort(); /* how the bytes arrived changed the outcome */
        free(split.body);
    }
    free(whole.body);
    return 0;
}
