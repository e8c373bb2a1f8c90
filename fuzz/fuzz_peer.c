/*
 * fuzz_peer.c - the input-feeding end shared by fuzz_h2_server and fuzz_h2_client.
 */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fuzz_peer.h"

#define FUZZ_MAX_ITER  256
#define FUZZ_IDLE_ITER 4

static void
send_all(struct fuzz_peer *p, const char *b, size_t len, size_t *off)
{
    while (*off < len) {
        ssize_t n = send(p->peer, b + *off, len - *off, MSG_NOSIGNAL);
        if (n <= 0)
            break;
        *off += (size_t)n;
        p->progress = true;
    }
}

static void
on_peer(void *arg, uint32_t events)
{
    struct fuzz_peer *p = arg;
    char b[65536];

    if (events & EPOLLOUT) {
        send_all(p, p->prefix, p->prefix_len, &p->prefix_off);
        if (p->prefix_off == p->prefix_len)
            send_all(p, (const char *)p->in, p->len, &p->off);
    }
    if ((events & (EPOLLIN | EPOLLHUP | EPOLLERR)) && read(p->peer, b, sizeof(b)) > 0)
        p->progress = true;
    loop_io_set(p->loop, &p->peer_io, EPOLLIN | (p->off < p->len ? EPOLLOUT : 0));
}

/* An always-writable pipe: called once per loop iteration. */
static void
on_tick(void *arg, uint32_t events)
{
    struct fuzz_peer *p = arg;
    (void)events;

    p->iter++;
    p->idle = p->progress ? 0 : p->idle + 1;
    p->progress = false;
    if (p->iter >= FUZZ_MAX_ITER || p->done || (p->off == p->len && p->idle >= FUZZ_IDLE_ITER))
        loop_stop(p->loop);
}

void
fuzz_peer_init(struct fuzz_peer *p, const uint8_t *in, size_t len, const char *prefix)
{
    int sv[2];

    memset(p, 0, sizeof(*p));
    p->in = in;
    p->len = len;
    p->prefix = prefix ? prefix : "";
    p->prefix_len = strlen(p->prefix);
    p->loop = loop_new();
    if (p->loop == NULL ||
        socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0 ||
        pipe2(p->tick, O_NONBLOCK | O_CLOEXEC) < 0)
        abort();
    p->peer = sv[0];
    p->session_fd = sv[1];
    if (loop_io_start(p->loop, &p->peer_io, p->peer, EPOLLIN | EPOLLOUT, on_peer, p) < 0 ||
        loop_io_start(p->loop, &p->tick_io, p->tick[1], EPOLLOUT, on_tick, p) < 0)
        abort();
}

void
fuzz_peer_run(struct fuzz_peer *p)
{
    loop_run(p->loop);
}

void
fuzz_peer_finish(struct fuzz_peer *p)
{
    p->done = true;
    loop_run(p->loop);
    loop_io_stop(p->loop, &p->peer_io);
    loop_io_stop(p->loop, &p->tick_io);
    close(p->peer);
    close(p->tick[0]);
    close(p->tick[1]);
    loop_free(p->loop);
}
