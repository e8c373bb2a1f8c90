/*
 * test_pipe_group.c - pipes sharing a budget per loop turn (ztunnel: one pod's
 * connections): a busy group reads at most its quantum (plus one read) per
 * turn, every byte still arrives in order, and a pipe of another group is
 * served while the busy one still has most of its bytes queued.
 *
 *   peer a <-> [tcp_stream] <=pipe=> [tcp_stream] <-> peer b, five times:
 *   four in group F (2 MiB each to move), one in group V (a 1 KiB message).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "base/base.h"
#include "conn/pipe.h"
#include "conn/tcp_stream.h"
#include "unit_loop.h"

#define N_FLOOD 4
#define FLOOD_BYTES (2u << 20)
#define QUANTUM (64u << 10)
#define MAX_READ (256u << 10) /* the pipe's largest single read (PIPE_CHUNK_MAX) */

struct lane {
    struct unit_peer pa, pb;
    uint8_t *data;
    size_t len;
    int done;
};

struct gt {
    struct loop *loop;
    struct lane flood[N_FLOOD], victim;
    struct pipe_group *gf, *gv;
    uint64_t last_bytes, max_per_turn, turns;
    uint64_t flood_when_victim_done; /* flood bytes read when the victim's message arrived */
    struct loop_defer tick;
};

static void
on_done(void *arg, const struct pipe_result *res)
{
    struct lane *l = arg;
    (void)res;
    l->done++;
}

static void
lane_start(struct gt *t, struct lane *l, size_t len, uint32_t seed, struct pipe_group *g)
{
    int fa[2], fb[2];

    unit_socketpair(fa);
    unit_socketpair(fb);
    l->len = len;
    l->data = unit_pattern(len, seed);
    l->pa = (struct unit_peer){.fd = fa[0], .tx = l->data, .tx_len = len, .shut_when_sent = true,
                               .reading = true};
    l->pb = (struct unit_peer){.fd = fb[0], .shut_when_sent = true, .reading = true,
                               .rx = xmalloc(len), .rx_cap = len};
    struct stream *a = tcp_stream_new(t->loop, fa[1]);
    struct stream *b = tcp_stream_new(t->loop, fb[1]);
    struct pipe *p = pipe_start(t->loop, a, b, PIPE_BUF_DEFAULT, on_done, l);
    pipe_set_group(p, g);
}

/* Every turn: how much the flood group read since the last one. */
static void
on_tick(void *arg)
{
    struct gt *t = arg;
    uint64_t bytes, yields;

    pipe_group_counts(t->gf, &bytes, &yields);
    if (bytes - t->last_bytes > t->max_per_turn)
        t->max_per_turn = bytes - t->last_bytes;
    t->last_bytes = bytes;
    t->turns++;
    loop_defer_turn(t->loop, &t->tick, on_tick, t);
}

static bool
all_done(void *arg)
{
    struct gt *t = arg;
    bool done = true;

    for (int i = 0; i < N_FLOOD; i++) {
        unit_peer_pump(&t->flood[i].pa);
        unit_peer_pump(&t->flood[i].pb);
        done = done && t->flood[i].pb.eof;
    }
    unit_peer_pump(&t->victim.pa);
    unit_peer_pump(&t->victim.pb);
    if (t->victim.pb.rx_len == t->victim.len && t->flood_when_victim_done == 0) {
        uint64_t yields;
        pipe_group_counts(t->gf, &t->flood_when_victim_done, &yields);
        t->flood_when_victim_done++; /* never 0 once set */
    }
    return done && t->victim.pb.eof;
}

static void
test_group_budget_and_fairness(void **state)
{
    struct gt t;
    uint64_t bytes, yields;
    (void)state;

    memset(&t, 0, sizeof(t));
    t.loop = loop_new();
    t.gf = pipe_group_new(t.loop, QUANTUM);
    t.gv = pipe_group_new(t.loop, QUANTUM);
    for (int i = 0; i < N_FLOOD; i++)
        lane_start(&t, &t.flood[i], FLOOD_BYTES, 100 + (uint32_t)i, t.gf);
    lane_start(&t, &t.victim, 1024, 7, t.gv);
    loop_defer_turn(t.loop, &t.tick, on_tick, &t);
    assert_true(unit_run_until(t.loop, all_done, &t, 20000));

    /* Every byte, in order, on every pipe. */
    for (int i = 0; i < N_FLOOD; i++) {
        assert_int_equal(t.flood[i].pb.rx_len, FLOOD_BYTES);
        assert_memory_equal(t.flood[i].pb.rx, t.flood[i].data, FLOOD_BYTES);
    }
    assert_int_equal(t.victim.pb.rx_len, 1024);
    assert_memory_equal(t.victim.pb.rx, t.victim.data, 1024);
    /* The flood group read at most its quantum plus one read in any turn, and had to wait. */
    pipe_group_counts(t.gf, &bytes, &yields);
    assert_int_equal(bytes, (uint64_t)N_FLOOD * FLOOD_BYTES); /* what they read */
    assert_true(yields > 0);
    assert_true(t.max_per_turn <= QUANTUM + MAX_READ);
    assert_true(t.turns >= (uint64_t)N_FLOOD * FLOOD_BYTES / (QUANTUM + MAX_READ));
    print_message("flood: %llu turns, max %llu bytes per turn, %llu yields; victim served after "
                  "%llu flood bytes\n",
                  (unsigned long long)t.turns, (unsigned long long)t.max_per_turn,
                  (unsigned long long)yields, (unsigned long long)t.flood_when_victim_done - 1);
    /* The victim did not wait for the flood: served with most of the flood still queued. */
    assert_true(t.flood_when_victim_done - 1 < bytes / 4);

    unit_run_for(t.loop, 2);
    for (int i = 0; i < N_FLOOD; i++) {
        assert_int_equal(t.flood[i].done, 1);
        close(t.flood[i].pa.fd);
        close(t.flood[i].pb.fd);
        free(t.flood[i].pb.rx);
        free(t.flood[i].data);
    }
    close(t.victim.pa.fd);
    close(t.victim.pb.fd);
    free(t.victim.pb.rx);
    free(t.victim.data);
    pipe_group_unref(t.gf);
    pipe_group_unref(t.gv);
    loop_free(t.loop);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_group_budget_and_fairness),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
