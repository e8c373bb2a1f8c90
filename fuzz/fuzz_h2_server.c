/*
 * fuzz_h2_server.c - bytes from a hostile HTTP/2 client into a server
 * h2_session (cleartext), as HBONE inbound receives them after TLS.
 *
 * One socketpair and one loop per input. The input is written to our end
 * (after the client preface unless it starts with "PRI"); replies are read
 * and dropped. Requests are answered 200 and their streams read, written and
 * ended like a tunnel. The loop runs a bounded number of iterations (an
 * always-writable pipe ticks once per iteration), then everything is closed
 * and freed: an input must terminate quickly and leak nothing.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "conn/tcp_stream.h"
#include "fuzz_peer.h"
#include "h2/h2.h"
#include "loop/loop.h"

#define FUZZ_MAX_STREAMS 512

static const char preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

struct fz {
    struct fuzz_peer p;
    struct h2_session *s;
    struct h2_stream *st[FUZZ_MAX_STREAMS];
    bool st_done[FUZZ_MAX_STREAMS];
    int n_st;
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int
find(struct fz *f, struct stream *x)
{
    for (int i = 0; i < f->n_st; i++)
        if (h2_stream_as_stream(f->st[i]) == x)
            return i;
    abort();
}

/* A tunnel's behaviour: drain what arrives, send a little, end when the peer ends. */
static void
on_stream_event(void *arg, struct stream *x, unsigned events)
{
    struct fz *f = arg;
    char b[16384];
    ssize_t n;
    int i = find(f, x);

    f->p.progress = true;
    if (events & STREAM_WRITABLE) {
        n = stream_write(x, "0123456789abcdef", 16);
        if (n < 0 && n != -EAGAIN) {
            stream_want(x, false, false);
            f->st_done[i] = true;
            return;
        }
    }
    if (events & STREAM_READABLE) {
        while ((n = stream_read(x, b, sizeof(b))) > 0)
            ;
        if (n == 0)
            stream_shutdown_write(x);
        if (n != -EAGAIN) {
            stream_want(x, false, false);
            f->st_done[i] = true;
            return;
        }
    }
    stream_want(x, true, false);
}

static void
on_request(void *arg, struct h2_session *s, struct h2_stream *st)
{
    struct fz *f = arg;
    const char *m = h2_stream_method(st), *a = h2_stream_authority(st);
    static const struct h2_header hdrs[] = {{"server", "amesh-fuzz"}};

    (void)s;
    f->p.progress = true;
    if (f->n_st == FUZZ_MAX_STREAMS) {
        stream_close(h2_stream_as_stream(st), true);
        return;
    }
    f->st[f->n_st++] = st;
    /* Read every accessor, as inbound.c does. */
    (void)h2_stream_header(st, "baggage");
    (void)h2_stream_header(st, "forwarded");
    (void)h2_stream_header(st, "traceparent");
    (void)h2_stream_id(st);
    if (m == NULL || strcmp(m, "CONNECT") != 0 || a == NULL || h2_stream_has_path(st)) {
        h2_stream_respond(st, 400, NULL, 0, true);
        return;
    }
    if (h2_stream_respond(st, 200, hdrs, 1, false) < 0)
        return;
    stream_set_handler(h2_stream_as_stream(st), on_stream_event, f);
    stream_want(h2_stream_as_stream(st), true, true);
}

static void
on_closed(void *arg, struct h2_session *s, int err)
{
    struct fz *f = arg;
    (void)s;
    (void)err;
    f->p.done = true;
}

static const struct h2_session_cbs cbs = {
    .on_request = on_request,
    .on_closed = on_closed,
};

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fz f;

    memset(&f, 0, sizeof(f));
    /* The client preface first, unless the input brings its own. */
    fuzz_peer_init(&f.p, data, size, size >= 3 && memcmp(data, "PRI", 3) == 0 ? NULL : preface);
    f.s = h2_session_new(f.p.loop, tcp_stream_new(f.p.loop, f.p.session_fd), true, &cbs, &f);
    fuzz_peer_run(&f.p);

    /* Owner's exit: our streams, then the session; the frees run deferred. */
    for (int i = 0; i < f.n_st; i++)
        stream_close(h2_stream_as_stream(f.st[i]), !f.st_done[i]);
    h2_session_close(f.s, 0);
    h2_session_release(f.s);
    fuzz_peer_finish(&f.p);
    return 0;
}
