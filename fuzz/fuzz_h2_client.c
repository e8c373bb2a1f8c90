/*
 * fuzz_h2_client.c - bytes from a hostile HBONE server into a client
 * h2_session (cleartext) that has opened one CONNECT, as pool.c uses it.
 *
 * One socketpair and one loop per input; the client's own frames are read
 * and dropped. On a 200 the tunnel sends a little, half-closes and drains
 * what arrives. The loop runs a bounded number of iterations (an
 * always-writable pipe ticks once per iteration), then everything is closed
 * and freed: an input must terminate quickly and leak nothing.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "conn/tcp_stream.h"
#include "fuzz_peer.h"
#include "h2/h2.h"
#include "loop/loop.h"

struct fz {
    struct fuzz_peer p;
    struct h2_session *s;
    struct h2_stream *st, *st2;
    int responses;
    int status;
    bool st_done;
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
on_stream_event(void *arg, struct stream *x, unsigned events)
{
    struct fz *f = arg;
    char b[16384];
    ssize_t n;

    f->p.progress = true;
    if (events & STREAM_READABLE) {
        while ((n = stream_read(x, b, sizeof(b))) > 0)
            ;
        if (n != -EAGAIN) {
            stream_want(x, false, false);
            f->st_done = true;
            return;
        }
    }
    stream_want(x, true, false);
}

static void
on_response(void *arg, struct h2_stream *st, int status)
{
    struct fz *f = arg;
    struct stream *x = h2_stream_as_stream(st);

    if (st != f->st)
        abort();
    if (++f->responses != 1)
        abort(); /* the response callback runs at most once */
    f->status = status;
    f->p.progress = true;
    if (status != 200)
        return;
    if (stream_write(x, "GET / HTTP/1.1\r\n\r\n", 18) > 0)
        stream_shutdown_write(x);
    stream_set_handler(x, on_stream_event, f);
    stream_want(x, true, false);
    /* A second CONNECT when allowed, as the pool reuses connections. */
    if (f->st2 == NULL && h2_session_can_open(f->s))
        f->st2 = h2_session_connect(f->s, "198.18.0.11:80", NULL, 0, NULL, NULL);
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
    .on_closed = on_closed,
};

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fz f;
    static const struct h2_header hdrs[] = {
        {"baggage", "k8s.namespace.name=default"},
        {"forwarded", "for=198.18.0.1"},
    };

    memset(&f, 0, sizeof(f));
    fuzz_peer_init(&f.p, data, size, NULL);
    f.s = h2_session_new(f.p.loop, tcp_stream_new(f.p.loop, f.p.session_fd), false, &cbs, &f);
    if (!h2_session_can_open(f.s))
        abort();
    f.st = h2_session_connect(f.s, "198.18.0.10:8080", hdrs, 2, on_response, &f);
    if (f.st == NULL)
        abort();
    fuzz_peer_run(&f.p);

    /* h2.h: the callback gets the response status or a negative error, never 0. */
    if (f.responses == 1 && (f.status == 0 || f.status > 999)) {
        fprintf(stderr, "response callback got status %d\n", f.status);
        abort();
    }
    stream_close(h2_stream_as_stream(f.st), !f.st_done);
    if (f.st2 != NULL)
        stream_close(h2_stream_as_stream(f.st2), true);
    h2_session_close(f.s, 0);
    h2_session_release(f.s);
    fuzz_peer_finish(&f.p);
    return 0;
}
