/*
 * test_hs_guard.c - the pending-handshake guard: per-source refusal, eviction
 * of the oldest at the total cap, deadlines (paused and resumed), the wait for
 * a whole first record over real TCP sockets, and the record header check.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "conn/hs_guard.h"
#include "unit_loop.h"

struct owner {
    int ends;
    enum hs_end why;
    int readies;
    struct hs_ticket *t;
};

static void
on_end(void *arg, enum hs_end why)
{
    struct owner *o = arg;
    o->ends++;
    o->why = why;
    o->t = NULL;
}

static void
on_ready(void *arg)
{
    struct owner *o = arg;
    o->readies++;
}

static struct ipaddr
ip(const char *s)
{
    struct ipaddr a;
    assert_int_equal(ipaddr_parse(s, &a), 0);
    return a;
}

static void
test_record_need(void **state)
{
    (void)state;
    static const uint8_t hello[] = {22, 3, 1, 0x01, 0x2c};
    static const uint8_t big[] = {22, 3, 3, 0x40, 0x00};
    static const uint8_t too_big[] = {22, 3, 3, 0x40, 0x01};
    static const uint8_t empty[] = {22, 3, 1, 0, 0};
    static const uint8_t alert[] = {21, 3, 3, 0, 2};
    static const uint8_t http[] = "GET / HTTP/1.1\r\n";
    static const uint8_t v2[] = {0x80, 0x2e, 0x01, 0x03, 0x01};

    assert_int_equal(hs_record_need(hello, sizeof(hello)), 5 + 300);
    assert_int_equal(hs_record_need(big, sizeof(big)), 5 + 16384);
    assert_int_equal(hs_record_need(too_big, sizeof(too_big)), 0);
    assert_int_equal(hs_record_need(empty, sizeof(empty)), 0);
    assert_int_equal(hs_record_need(alert, sizeof(alert)), 0);
    assert_int_equal(hs_record_need(http, sizeof(http) - 1), 0);
    assert_int_equal(hs_record_need(v2, sizeof(v2)), 0);
    assert_int_equal(hs_record_need(hello, 4), 0);
}

static void
test_per_source_and_total(void **state)
{
    (void)state;
    struct loop *l = loop_new();
    struct hs_guard_opts o = {.max_pending = 4, .max_per_source = 2, .timeout_ms = 10000};
    struct hs_guard *g = hs_guard_new(l, "test", &o);
    struct owner w[6];
    struct ipaddr a = ip("198.18.0.1"), b = ip("198.18.0.2"), c = ip("2001:db8::3");
    memset(w, 0, sizeof(w));

    w[0].t = hs_guard_admit(g, &a, on_end, &w[0]);
    w[1].t = hs_guard_admit(g, &a, on_end, &w[1]);
    assert_non_null(w[0].t);
    assert_non_null(w[1].t);
    /* A third from the same address is refused; nobody is evicted for it. */
    assert_null(hs_guard_admit(g, &a, on_end, &w[5]));
    assert_int_equal(hs_guard_stats(g)->refused, 1);
    w[2].t = hs_guard_admit(g, &b, on_end, &w[2]);
    w[3].t = hs_guard_admit(g, &c, on_end, &w[3]);
    assert_int_equal(hs_guard_stats(g)->pending, 4);
    /* Full: the next one evicts the oldest (w[0]), which frees a slot of address a too. */
    w[4].t = hs_guard_admit(g, &b, on_end, &w[4]);
    assert_non_null(w[4].t);
    assert_int_equal(w[0].ends, 1);
    assert_int_equal(w[0].why, HS_END_EVICTED);
    assert_int_equal(hs_guard_stats(g)->evicted, 1);
    assert_int_equal(hs_guard_stats(g)->pending, 4);
    for (int i = 1; i < 5; i++)
        assert_int_equal(w[i].ends, 0);
    /* b now has 2 pending: refused; a has 1: admitted after evicting w[1] (the oldest). */
    assert_null(hs_guard_admit(g, &b, on_end, &w[5]));
    w[5].t = hs_guard_admit(g, &a, on_end, &w[5]);
    assert_non_null(w[5].t);
    assert_int_equal(w[1].why, HS_END_EVICTED);
    /* Completion frees the slot and the per-source count. */
    hs_ticket_done(w[2].t, true);
    hs_ticket_done(w[4].t, false);
    assert_int_equal(hs_guard_stats(g)->completed, 1);
    assert_int_equal(hs_guard_stats(g)->failed, 1);
    assert_int_equal(hs_guard_stats(g)->pending, 2);
    assert_non_null(w[4].t = hs_guard_admit(g, &b, on_end, &w[4]));
    assert_non_null(w[2].t = hs_guard_admit(g, &b, on_end, &w[2]));
    assert_int_equal(hs_guard_stats(g)->admitted, 8);
    unit_run_for(l, 5);
    hs_guard_free(g);
    loop_run_deferred(l);
    loop_free(l);
}

static bool
ended(void *arg)
{
    return ((struct owner *)arg)->ends > 0;
}

static bool
readied(void *arg)
{
    return ((struct owner *)arg)->readies > 0;
}

static void
test_deadline_pause_resume(void **state)
{
    (void)state;
    struct loop *l = loop_new();
    struct hs_guard_opts o = {.timeout_ms = 40};
    struct hs_guard *g = hs_guard_new(l, "test", &o);
    struct owner w1 = {0}, w2 = {0};
    struct ipaddr a = ip("198.18.0.1");

    w1.t = hs_guard_admit(g, &a, on_end, &w1);
    w2.t = hs_guard_admit(g, &a, on_end, &w2);
    hs_ticket_pause(w2.t);
    assert_true(unit_run_until(l, ended, &w1, 1000));
    assert_int_equal(w1.why, HS_END_TIMEOUT);
    unit_run_for(l, 80);
    assert_int_equal(w2.ends, 0); /* paused: the server is the one waiting */
    hs_ticket_resume(w2.t);
    assert_true(unit_run_until(l, ended, &w2, 1000));
    assert_int_equal(w2.why, HS_END_TIMEOUT);
    assert_int_equal(hs_guard_stats(g)->timed_out, 2);
    assert_int_equal(hs_guard_stats(g)->pending, 0);
    hs_guard_free(g);
    loop_run_deferred(l);
    loop_free(l);
}

static void
send_all(int fd, const void *p, size_t n)
{
    assert_int_equal(send(fd, p, n, MSG_NOSIGNAL), (ssize_t)n);
}

static void
test_wait_record(void **state)
{
    (void)state;
    struct loop *l = loop_new();
    struct hs_guard *g = hs_guard_new(l, "test", NULL);
    struct ipaddr a = ip("198.18.0.1");
    uint8_t rec[5 + 300];
    int cli, srv;

    memset(rec, 0x42, sizeof(rec));
    memcpy(rec, (const uint8_t[]){22, 3, 1, 0x01, 0x2c}, 5);

    /* Dribbled: not ready until the whole record is queued, and then once. */
    struct owner w = {0};
    unit_tcp_pair(&cli, &srv);
    w.t = hs_guard_admit(g, &a, on_end, &w);
    hs_ticket_wait_record(w.t, srv, on_ready);
    send_all(cli, rec, 3);
    unit_run_for(l, 30);
    send_all(cli, rec + 3, 100);
    unit_run_for(l, 30);
    assert_int_equal(w.readies, 0);
    send_all(cli, rec + 103, sizeof(rec) - 103);
    assert_true(unit_run_until(l, readied, &w, 1000));
    unit_run_for(l, 20);
    assert_int_equal(w.readies, 1);
    /* Nothing was consumed: the TLS stack reads the whole record itself. */
    uint8_t back[sizeof(rec)];
    assert_int_equal(recv(srv, back, sizeof(back), 0), (ssize_t)sizeof(rec));
    assert_memory_equal(back, rec, sizeof(rec));
    hs_ticket_done(w.t, true);
    close(cli);
    close(srv);

    /* Not TLS at all: handed over at once, so the TLS stack answers with an alert. */
    struct owner h = {0};
    unit_tcp_pair(&cli, &srv);
    h.t = hs_guard_admit(g, &a, on_end, &h);
    hs_ticket_wait_record(h.t, srv, on_ready);
    send_all(cli, "GET / HTTP/1.1\r\n", 16);
    assert_true(unit_run_until(l, readied, &h, 1000));
    hs_ticket_done(h.t, false);
    close(cli);
    close(srv);

    /* The peer leaves half-way: the guard ends the ticket (HS_END_CLOSED). */
    struct owner c = {0};
    unit_tcp_pair(&cli, &srv);
    c.t = hs_guard_admit(g, &a, on_end, &c);
    hs_ticket_wait_record(c.t, srv, on_ready);
    send_all(cli, rec, 50);
    shutdown(cli, SHUT_WR);
    assert_true(unit_run_until(l, ended, &c, 1000));
    assert_int_equal(c.why, HS_END_CLOSED);
    assert_int_equal(c.readies, 0);
    close(cli);
    close(srv);

    /* Silent peer: nothing but the deadline ends it, and no busy loop meanwhile. */
    struct owner s = {0};
    unit_tcp_pair(&cli, &srv);
    s.t = hs_guard_admit(g, &a, on_end, &s);
    hs_ticket_wait_record(s.t, srv, on_ready);
    send_all(cli, rec, 10);
    double cpu = unit_idle_cpu(l, 200);
    assert_true(cpu < 0.05);
    assert_int_equal(s.ends + s.readies, 0);
    assert_int_equal(hs_guard_stats(g)->pending, 1);
    hs_guard_free(g);
    close(cli);
    close(srv);
    loop_run_deferred(l);
    loop_free(l);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_record_need),
        cmocka_unit_test(test_per_source_and_total),
        cmocka_unit_test(test_deadline_pause_resume),
        cmocka_unit_test(test_wait_record),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
