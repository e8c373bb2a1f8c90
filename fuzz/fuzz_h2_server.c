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

#include "h2/h2.h"
#include "loop/loop.h"

#define FUZZ_MAX_ITER    256
#define FUZZ_IDLE_ITER   4
#define FUZZ_MAX_STREAMS 512

static const char preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

struct fz {
    struct loop *loop;
    struct h2_session *s;
    int peer;
    const uint8_t *in;
    size_t len, off;
    bool preface_sent;
    struct loop_io peer_io;
    struct loop_io tick_io;
    int tick[2];
    int iter, idle;
    bool progress;
    bool closed;
    struct h2_stream *st[FUZZ_MAX_STREAMS];
    bool st_done[FUZZ_MAX_STREAMS];
    int n_st;
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
write_input(struct fz *f)
{
    if (!f->preface_sent) {
        if (send(f->peer, preface, sizeof(preface) - 1, MSG_NOSIGNAL) != sizeof(preface) - 1)
            abort(); /* an empty socket always takes 24 bytes */
        f->preface_sent = true;
    }
    while (f->off < f->len) {
        ssize_t n = send(f->peer, f->in + f->off, f->len - f->off, MSG_NOSIGNAL);
        if (n <= 0)
            break;
        f->off += (size_t)n;
        f->progress = true;
    }
}

static void
on_peer(void *arg, uint32_t events)
{
    struct fz *f = arg;
    char b[65536];

    if (events & EPOLLOUT)
        write_input(f);
    if (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
        ssize_t n = read(f->peer, b, sizeof(b));
        if (n > 0)
            f->progress = true;
    }
    loop_io_set(f->loop, &f->peer_io, EPOLLIN | (f->off < f->len ? EPOLLOUT : 0));
}

static void
on_tick(void *arg, uint32_t events)
{
    struct fz *f = arg;
    (void)events;

    f->iter++;
    f->idle = f->progress ? 0 : f->idle + 1;
    f->progress = false;
    if (f->iter >= FUZZ_MAX_ITER || f->closed || (f->off == f->len && f->idle >= FUZZ_IDLE_ITER))
        loop_stop(f->loop);
}

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

    f->progress = true;
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
    f->progress = true;
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
    f->closed = true;
}

static const struct h2_session_cbs cbs = {
    .on_request = on_request,
    .on_closed = on_closed,
};

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fz f;
    int sv[2];

    memset(&f, 0, sizeof(f));
    f.in = data;
    f.len = size;
    f.preface_sent = size >= 3 && memcmp(data, "PRI", 3) == 0;
    f.loop = loop_new();
    if (f.loop == NULL ||
        socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0 ||
        pipe2(f.tick, O_NONBLOCK | O_CLOEXEC) < 0)
        abort();
    f.peer = sv[0];
    f.s = h2_session_new(f.loop, sv[1], NULL, true, &cbs, &f);
    loop_io_start(f.loop, &f.peer_io, f.peer, EPOLLIN | EPOLLOUT, on_peer, &f);
    loop_io_start(f.loop, &f.tick_io, f.tick[1], EPOLLOUT, on_tick, &f);
    loop_run(f.loop);

    /* Owner's exit: our streams, then the session; the frees run deferred. */
    for (int i = 0; i < f.n_st; i++)
        stream_close(h2_stream_as_stream(f.st[i]), !f.st_done[i]);
    h2_session_close(f.s, 0);
    h2_session_release(f.s);
    f.closed = true;
    loop_run(f.loop);

    loop_io_stop(f.loop, &f.peer_io);
    loop_io_stop(f.loop, &f.tick_io);
    close(f.peer);
    close(f.tick[0]);
    close(f.tick[1]);
    loop_free(f.loop);
    return 0;
}
