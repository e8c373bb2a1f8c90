/*
 * test_kube_reflector.c - reflectors against the model API server of
 * kube_model.c, one scenario per fault. After each scenario the sink's view
 * must equal the model (no lost, stale or duplicated object).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "base/base.h"
#include "kube/kube.h"
#include "kube/kube_client_priv.h"
#include "kube/kube_proto.h"
#include "kube_model.h"
#include "unit_kubesrv.h"
#include "unit_loop.h"

/* ---- scenarios ---- */

/* Paged LIST (continue), then WATCH from the list's RV; changes stream in; BOOKMARK moves the RV.
 */
static void
test_list_watch_bookmark(void **state)
{
    (void)state;
    struct m m;
    setup_m(&m, 10, 100);
    seed(&m, 7);
    m.page = 3;
    start(&m);
    expect_view(&m);
    assert_int_equal(m.synced, 1);
    assert_int_equal(m.n_lists, 3);         /* 3 + 3 + 1 */
    assert_string_equal(m.list_rv[0], "0"); /* first from the watch cache */
    assert_string_equal(m.list_rv[1], "-"); /* continue pages carry no RV */
    wait_watching(&m);
    assert_string_equal(m.watch_rv[0], "7");

    model_set(&m, "cm01", 100);
    model_del(&m, "cm02");
    model_set(&m, "new", 5);
    expect_view(&m);
    for (int i = 0; i < m.n_o; i++)
        assert_int_equal(m.removes[i], strcmp(m.o[i].name, "cm02") == 0);

    /* A BOOKMARK (other kinds changed: RV 10 -> 15), then the server's timeout ends the watch. */
    m.rv += 5;
    struct fks_req *w[4];
    assert_int_equal(open_watches(&m, w), 1);
    fks_write_str(w[0], "{\"type\":\"BOOKMARK\",\"object\":{\"kind\":\"ConfigMap\",\"apiVersion\":"
                        "\"v1\",\"metadata\":{\"resourceVersion\":\"15\"}}}\n");
    unit_run_for(m.loop, 1100); /* not a "very short" watch */
    end_watches(&m);
    wait_watch_n(&m, 2);
    assert_int_equal(m.n_watches, 2);
    assert_string_equal(m.watch_rv[1], "15"); /* re-watched from the bookmark, no relist */
    assert_int_equal(m.n_lists, 3);
    struct kube_reflector_stats st;
    stats(&m, &st);
    assert_int_equal(st.lists, 1);
    assert_int_equal(st.relists, 0);
    assert_int_equal(st.bookmarks, 1);
    assert_int_equal(st.events, 3);
    assert_int_equal(st.errors, 0);
    teardown_m(&m);
}

/* Every byte of the watch in its own DATA frame: events are put back together. */
static void
test_one_byte_frames(void **state)
{
    (void)state;
    struct m m;
    setup_m(&m, 10, 100);
    seed(&m, 2);
    start(&m);
    expect_view(&m);
    wait_watching(&m);
    m.pace = 1;
    unit_run_for(m.loop, 1100); /* not a "very short" watch */
    end_watches(&m);            /* the next watch is paced */
    wait_watch_n(&m, 2);
    model_set(&m, "cm00", 42);
    model_del(&m, "cm01");
    model_set(&m, "x", 7);
    expect_view(&m);
    for (int i = 0; i < m.n_o; i++)
        assert_true(m.upserts[i] <= 2);
    struct kube_reflector_stats st;
    stats(&m, &st);
    assert_int_equal(st.events, 3);
    assert_int_equal(st.errors, 0);
    teardown_m(&m);
}

/* The watch resumes from a compacted RV: in-stream ERROR 410, relist from "", deletes synthesised.
 */
static void
test_expired_in_stream(void **state)
{
    (void)state;
    struct m m;
    setup_m(&m, 10, 100);
    seed(&m, 5);
    start(&m);
    expect_view(&m);
    wait_watching(&m);
    /* Changes the client never hears of, then compaction past them. */
    m.mute = true;
    model_del(&m, "cm01");
    model_del(&m, "cm03");
    model_set(&m, "cm04", 44);
    model_set(&m, "late", 1);
    m.compacted = m.rv;
    m.mute = false;
    unit_run_for(m.loop, 1100);
    end_watches(&m);
    expect_view(&m);
    assert_int_equal(m.watch_rv[1][0], '5');
    assert_int_equal(m.n_lists, 2);
    assert_string_equal(m.list_rv[1], "-"); /* resourceVersion "" : a consistent read */
    assert_int_equal(m.removes[find(&m, "cm01")], 1);
    assert_int_equal(m.removes[find(&m, "cm03")], 1);
    assert_int_equal(m.removes[find(&m, "cm00")], 0);
    wait_watching(&m);
    assert_int_equal(num(m.watch_rv[m.n_watches - 1]), m.rv);
    struct kube_reflector_stats st;
    stats(&m, &st);
    assert_int_equal(st.expired, 1);
    assert_int_equal(st.relists, 1);
    teardown_m(&m);
}

/* HTTP 410 on a continue page: the whole list again, from "". */
static void
test_continue_410(void **state)
{
    (void)state;
    struct m m;
    setup_m(&m, 10, 100);
    seed(&m, 5);
    m.page = 2;
    m.continue_410 = true;
    start(&m);
    expect_view(&m);
    assert_int_equal(m.synced, 1);
    /* 0: first page (RV "0"); 1: continue -> 410; 2..4: a full list from "" */
    assert_int_equal(m.n_lists, 5);
    assert_string_equal(m.list_rv[0], "0");
    assert_string_equal(m.list_rv[2], "-");
    char c2[8];
    (void)c2;
    struct kube_reflector_stats st;
    stats(&m, &st);
    assert_int_equal(st.expired, 1);
    assert_int_equal(st.lists, 1);
    for (int i = 0; i < m.n_o; i++)
        assert_int_equal(m.removes[i], 0);
    teardown_m(&m);
}

/* 504 ResourceVersionTooLarge relists from ""; 429 waits for Retry-After; 500 backs off. */
static void
test_504_429_500(void **state)
{
    (void)state;
    struct m m;
    setup_m(&m, 200, 400);
    seed(&m, 3);
    m.list_fault[0] = 504;
    m.list_fault_body[0] = "{\"kind\":\"Status\",\"status\":\"Failure\",\"message\":\"Too large "
                           "resource version: 999999, current: 3\",\"reason\":\"Timeout\","
                           "\"details\":{\"causes\":[{\"reason\":\"ResourceVersionTooLarge\","
                           "\"message\":\"Too large resource version\"}],\"retryAfterSeconds\":1},"
                           "\"code\":504}";
    m.list_fault[1] = 429;
    m.list_fault_hdr[1] = "1";
    m.list_fault[2] = 500;
    m.list_fault[3] = 500;
    m.n_list_fault = 4;
    start(&m);
    expect_view(&m);
    assert_int_equal(m.n_lists, 5);
    assert_string_equal(m.list_rv[0], "0");
    assert_string_equal(m.list_rv[1], "-"); /* after TooLarge: "" */
    uint64_t d429 = m.list_ms[2] - m.list_ms[1];
    uint64_t d500a = m.list_ms[3] - m.list_ms[2], d500b = m.list_ms[4] - m.list_ms[3];
    if (d429 < 950 || d500a < 190 || d500b < 390)
        fail_msg("waits: 429 %llu ms, 500 %llu ms then %llu ms", (unsigned long long)d429,
                 (unsigned long long)d500a, (unsigned long long)d500b);
    struct kube_reflector_stats st;
    stats(&m, &st);
    assert_int_equal(st.expired, 1);
    assert_int_equal(st.errors, 3);
    teardown_m(&m);
}

/* The connection is cut inside an event: reconnect, re-watch from the last RV, nothing doubled. */
static void
test_cut_mid_event(void **state)
{
    (void)state;
    struct m m;
    setup_m(&m, 10, 100);
    seed(&m, 3);
    start(&m);
    expect_view(&m);
    wait_watching(&m);
    model_set(&m, "cm00", 10);
    expect_view(&m);
    /* Half of the next event reaches the client, then the connection dies. */
    m.mute = true;
    model_set(&m, "cm01", 11);
    struct fks_req *w[4];
    assert_int_equal(open_watches(&m, w), 1);
    char *l = event_line(&m.ev[m.n_ev - 1]);
    fks_write(w[0], l, strlen(l) / 2);
    free(l);
    unit_run_for(m.loop, 50);
    m.mute = false;
    fks_cut(m.f);
    expect_view(&m);
    wait_watching(&m);
    assert_int_equal(fks_connections(m.f), 2);
    assert_int_equal(m.n_lists, 1); /* no relist: the watch resumed */
    assert_string_equal(m.watch_rv[1], "4");
    assert_int_equal(m.upserts[find(&m, "cm00")], 2);
    assert_int_equal(m.upserts[find(&m, "cm01")], 2);
    teardown_m(&m);
}

/* GOAWAY: the server ends its watches; the client carries on over a new connection. */
static void
test_goaway(void **state)
{
    (void)state;
    struct m m;
    setup_m(&m, 10, 100);
    seed(&m, 2);
    start(&m);
    expect_view(&m);
    wait_watching(&m);
    unit_run_for(m.loop, 1100);
    fks_goaway(m.f);
    end_watches(&m);
    wait_watch_n(&m, 2);
    model_set(&m, "cm00", 9);
    expect_view(&m);
    assert_int_equal(fks_connections(m.f), 2);
    assert_int_equal(m.n_lists, 1);
    teardown_m(&m);
}

/* An event line over the cap fails that watch; the reflector relists from the last RV. */
static void
test_line_over_cap(void **state)
{
    (void)state;
    struct m m;
    setup_m(&m, 10, 100);
    seed(&m, 2);
    start(&m);
    kube_client_set_limits(m.c, 1000, 30000);
    expect_view(&m);
    wait_watching(&m);
    struct fks_req *w[4];
    assert_int_equal(open_watches(&m, w), 1);
    char *big = xmalloc(3000);
    memset(big, ' ', 2999);
    big[2999] = '\0';
    fks_write_str(w[0], "{\"type\":\"MODIFIED\",");
    fks_write_str(w[0], big);
    free(big);
    model_set(&m, "cm01", 77); /* in the same stream, after the junk: never parsed */
    assert_true(unit_run_until(m.loop, view_ok, &m, 5000));
    assert_int_equal(m.n_lists, 2);
    assert_string_equal(m.list_rv[1], "2"); /* from the last RV seen, not "" */
    struct kube_reflector_stats st;
    stats(&m, &st);
    assert_int_equal(st.errors, 1);
    assert_int_equal(st.relists, 1);
    teardown_m(&m);
}

/* 404: synced(served=false) at once, looked at again slowly, served when it appears. */
static void
test_absent_kind(void **state)
{
    (void)state;
    struct m m;
    setup_m(&m, 10, 100);
    m.absent = true;
    start(&m);
    kube_client_set_limits(m.c, KUBE_MAX_EVENT_BYTES, 300);
    assert_true(unit_run_until(m.loop, view_ok, &m, 3000));
    assert_int_equal(m.synced, 1);
    assert_false(m.last_served);
    unit_run_for(m.loop, 700);
    assert_true(m.n_lists >= 2 && m.n_lists <= 4); /* every 300 ms, not in a loop */
    assert_int_equal(m.synced, 1);                 /* reported once */
    seed(&m, 2);
    m.absent = false;
    assert_true(unit_run_until(m.loop, view_ok, &m, 3000) && m.last_served);
    expect_view(&m);
    assert_int_equal(m.synced, 2);
    /* The CRD goes away: its objects go with it, and it is reported absent again. */
    wait_watching(&m);
    m.absent = true;
    end_watches(&m);
    for (int i = 0; i < m.n_o; i++)
        m.o[i].alive = false;
    expect_view(&m);
    assert_true(unit_run_until(m.loop, view_ok, &m, 3000));
    assert_int_equal(m.synced_false, 2);
    teardown_m(&m);
}

/* Watches that end at once without an event back off and relist instead of spinning. */
static void
test_very_short_watch(void **state)
{
    (void)state;
    struct m m;
    setup_m(&m, 100, 200);
    seed(&m, 1);
    m.end_watches_at_once = true;
    start(&m);
    expect_view(&m);
    unit_run_for(m.loop, 1000);
    if (m.n_watches > 8)
        fail_msg("%d watches in a second", m.n_watches);
    assert_true(m.n_lists >= 2); /* each very short watch relists */
    struct kube_reflector_stats st;
    stats(&m, &st);
    assert_true(st.errors >= 2);
    teardown_m(&m);
}

/* An ERROR event other than 410 relists after a backoff; a sink may stop its reflector. */
static void
test_error_event_and_stop(void **state)
{
    (void)state;
    struct m m;
    setup_m(&m, 10, 100);
    seed(&m, 2);
    start(&m);
    expect_view(&m);
    wait_watching(&m);
    struct fks_req *w[4];
    assert_int_equal(open_watches(&m, w), 1);
    fks_write_str(w[0], "{\"type\":\"ERROR\",\"object\":{\"kind\":\"Status\",\"code\":500,"
                        "\"reason\":\"InternalError\",\"message\":\"etcd is sad\"}}\n");
    wait_watch_n(&m, 2);
    assert_int_equal(m.n_lists, 2);
    assert_string_equal(m.list_rv[1], "2");
    m.stop_in_upsert = true;
    model_set(&m, "cm00", 5);
    unit_run_for(m.loop, 200);
    assert_null(m.rf);
    int before = m.upserts[0] + m.upserts[1];
    model_set(&m, "cm01", 6);
    unit_run_for(m.loop, 200);
    assert_int_equal(m.upserts[0] + m.upserts[1], before);
    teardown_m(&m);
}

/* Watch HTTP errors: 410 relists from "", 500 re-watches from the same RV. */
static void
test_watch_http_errors(void **state)
{
    (void)state;
    struct m m;
    setup_m(&m, 10, 100);
    seed(&m, 2);
    m.watch_fault = 500;
    start(&m);
    expect_view(&m);
    wait_watching(&m);
    assert_int_equal(m.n_watches, 2);
    assert_string_equal(m.watch_rv[1], "2");
    assert_int_equal(m.n_lists, 1);
    m.watch_fault = 410;
    unit_run_for(m.loop, 1100);
    end_watches(&m);
    wait_watch_n(&m, 3);
    assert_int_equal(m.n_lists, 2);
    assert_string_equal(m.list_rv[1], "-");
    teardown_m(&m);
}

/* A server whose continue tokens never end: the list is cut off at the page cap and tried again. */
static void
test_endless_list(void **state)
{
    (void)state;
    struct m m;
    setup_m(&m, 300, 300);
    seed(&m, 2);
    m.page = 1;
    m.endless = true;
    start(&m);
    kube_client_set_max_pages(m.c, 5);
    unit_run_for(m.loop, 450);
    /* 5 pages, a 300-450 ms backoff, 5 more at most: not an endless stream of requests. */
    if (m.n_lists < 5 || m.n_lists > 10)
        fail_msg("%d list requests", m.n_lists);
    assert_int_equal(m.synced, 0);
    struct kube_reflector_stats st;
    stats(&m, &st);
    assert_true(st.errors >= 1);
    m.endless = false;
    expect_view(&m);
    teardown_m(&m);
}

/* Field and label selectors go on every LIST and WATCH, escaped. */
static void
test_selectors(void **state)
{
    (void)state;
    struct m m;
    setup_m(&m, 10, 100);
    seed(&m, 1);
    m.rf = kube_reflector_start(m.c, &cm, "spec.nodeName=node 1", "app in (a,b),!x", &sink, &m);
    expect_view(&m);
    assert_string_equal(m.fsel, "spec.nodeName=node 1");
    assert_string_equal(m.lsel, "app in (a,b),!x");
    wait_watching(&m);
    assert_string_equal(m.fsel, "spec.nodeName=node 1");
    assert_string_equal(m.lsel, "app in (a,b),!x");
    teardown_m(&m);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_list_watch_bookmark),
        cmocka_unit_test(test_one_byte_frames),
        cmocka_unit_test(test_expired_in_stream),
        cmocka_unit_test(test_continue_410),
        cmocka_unit_test(test_504_429_500),
        cmocka_unit_test(test_cut_mid_event),
        cmocka_unit_test(test_goaway),
        cmocka_unit_test(test_line_over_cap),
        cmocka_unit_test(test_absent_kind),
        cmocka_unit_test(test_very_short_watch),
        cmocka_unit_test(test_error_event_and_stop),
        cmocka_unit_test(test_watch_http_errors),
        cmocka_unit_test(test_selectors),
        cmocka_unit_test(test_endless_list),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
