/*
 * kube_backoff.c - client-go's reflector backoff: 800 ms doubling to 30 s,
 * each delay jittered by up to itself, back to the start after two minutes
 * without a failure. Pure arithmetic; the caller brings the clock and the
 * randomness, so tests can pin both.
 */
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include "base/base.h"
#include "kube/kube_proto.h"

void
kube_backoff_init(struct kube_backoff *b, uint64_t min_ms, uint64_t max_ms)
{
    b->cur_ms = 0;
    b->last_ms = 0;
    b->min_ms = min_ms;
    b->max_ms = max_ms < min_ms ? min_ms : max_ms;
}

uint64_t
kube_backoff_next(struct kube_backoff *b, uint64_t now_ms, double rnd)
{
    if (b->cur_ms == 0 || (b->last_ms != 0 && now_ms - b->last_ms > KUBE_BACKOFF_RESET_MS))
        b->cur_ms = b->min_ms;
    if (rnd < 0 || rnd >= 1)
        rnd = 0;
    uint64_t d = b->cur_ms + (uint64_t)((double)b->cur_ms * rnd);
    if (d > b->max_ms)
        d = b->max_ms;
    b->cur_ms = b->cur_ms * 2 > b->max_ms ? b->max_ms : b->cur_ms * 2;
    b->last_ms = now_ms;
    return d;
}

double
kube_rand(void)
{
    static bool seeded;
    static unsigned short xs[3];
    if (!seeded) {
        uint64_t t = clock_mono_ms() ^ ((uint64_t)getpid() << 20);
        int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
        if (fd >= 0) {
            uint64_t r;
            if (read(fd, &r, sizeof(r)) == (ssize_t)sizeof(r))
                t ^= r;
            close(fd);
        }
        xs[0] = (unsigned short)t;
        xs[1] = (unsigned short)(t >> 16);
        xs[2] = (unsigned short)(t >> 32);
        seeded = true;
    }
    return erand48(xs);
}
