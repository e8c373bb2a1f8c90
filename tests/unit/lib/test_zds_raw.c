/*
 * test_zds_raw.c - our ZDS server and client against peers driven by hand:
 * a ztunnel that never acks (the ack deadline), one that falls behind (the
 * queue cap), one that breaks the rules; an agent that sends descriptors
 * where none belong, adds without one, oversized datagrams, unknown requests,
 * keeps after the snapshot and the old AddWorkload form. Descriptor leaks are
 * checked at teardown.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "base/base.h"
#include "test_zds_util.h"
#include "unit_loop.h"

static struct zds_server *
server(struct fx *f, struct srec *r, const struct zds_server_opts *o)
{
    char err[256] = "";
    r->s = zds_server_start(f->l, f->path, o, &srec_cbs, r, err, sizeof(err));
    if (r->s == NULL)
        fail_msg("zds_server_start: %s", err);
    return r->s;
}

/* ---- Against our server ---- */

static void
test_ztunnel_never_acks(void **state)
{
    struct fx *f = *state;
    struct srec sr = {0};
    struct zds_server_opts o = {.ack_timeout_ms = 200};
    uint8_t b[ZDS_MSG_MAX];
    struct stat st;
    int rfd;

    server(f, &sr, &o);
    assert_int_equal(zds_server_add(sr.s, "w1", "pod-1", "ns", "sa", f->netns), 0);
    int z = raw_connect(f->path);
    raw_send_hello(z);
    ssize_t n = raw_recv(f->l, z, b, &rfd);
    assert_true(n > 0);
    assert_true(rfd >= 0);
    assert_int_equal(fstat(rfd, &st), 0);
    assert_int_equal(st.st_ino, f->netns_ino);
    close(rfd);
    assert_int_equal(sr.connected, 1);

    uint64_t t0 = clock_mono_ms();
    assert_true(run_until_count(f->l, &sr.disconnected, 1, 3000));
    uint64_t took = clock_mono_ms() - t0;
    assert_true(took >= 150 && took < 2000);
    assert_int_equal(sr.last_err, -ETIMEDOUT);
    assert_int_equal(sr.n, 0);
    raw_expect_eof(f->l, z);
    close(z);

    /* A connection that never says Hello is closed too, unreported. */
    z = raw_connect(f->path);
    raw_expect_eof(f->l, z);
    close(z);
    assert_int_equal(sr.disconnected, 1);
    zds_server_stop(sr.s);
}

static void
test_keep_joins_snapshot(void **state)
{
    struct fx *f = *state;
    struct srec sr = {0};

    server(f, &sr, NULL);
    assert_int_equal(zds_server_add(sr.s, "w1", "p", "n", "s", f->netns), 0);
    int z = raw_connect(f->path);
    raw_send_hello(z);
    raw_expect_req(f->l, z, ZDS_REQ_ADD, "w1");
    /* Made while the add is unanswered: a keep still precedes SnapshotSent, an add follows. */
    assert_int_equal(zds_server_add(sr.s, "w2", "p", "n", "s", f->netns), 0);
    assert_int_equal(zds_server_keep(sr.s, "k1"), 0);
    raw_send_ack(z, "");
    raw_expect_req(f->l, z, ZDS_REQ_KEEP, "k1");
    raw_send_ack(z, "");
    raw_expect_req(f->l, z, ZDS_REQ_SNAPSHOT_SENT, NULL);
    raw_send_ack(z, "");
    raw_expect_req(f->l, z, ZDS_REQ_ADD, "w2");
    raw_send_ack(z, "");
    assert_true(run_until_count(f->l, &sr.n, 4, 2000));
    assert_string_equal(sr.log[3], "ack 1 add w2 ok");
    close(z);
    zds_server_stop(sr.s);
}

static void
test_ztunnel_falls_behind(void **state)
{
    struct fx *f = *state;
    struct srec sr = {0};
    struct zds_server_opts o = {.ack_timeout_ms = 60000, .max_queue = 4};

    server(f, &sr, &o);
    int z = raw_connect(f->path);
    raw_send_hello(z);
    raw_expect_req(f->l, z, ZDS_REQ_SNAPSHOT_SENT, NULL); /* never answered */
    char uid[8];
    for (int i = 0; i < 5; i++) {
        snprintf(uid, sizeof(uid), "w%d", i);
        assert_int_equal(zds_server_add(sr.s, uid, "p", "n", "s", f->netns), 0);
    }
    assert_true(run_until_count(f->l, &sr.disconnected, 1, 2000));
    assert_int_equal(sr.last_err, -MESH_ELIMIT);
    raw_expect_eof(f->l, z);
    close(z);
    zds_server_stop(sr.s);
}

static void
test_ztunnel_breaks_rules(void **state)
{
    struct fx *f = *state;
    struct srec sr = {0};
    static const uint8_t junk[] = {0xff, 0xff};
    uint8_t b[ZDS_MSG_MAX + 100] = {0};

    server(f, &sr, NULL);
    /* Not a Hello; a Hello with a descriptor; an oversized Hello: closed, unreported. */
    int z = raw_connect(f->path);
    raw_send(z, junk, sizeof(junk), NULL, 0);
    raw_expect_eof(f->l, z);
    close(z);
    z = raw_connect(f->path);
    assert_int_equal(zds_hello_encode(b, sizeof(b), &(size_t){0}), 0);
    raw_send(z, b, 2, &f->netns, 1);
    raw_expect_eof(f->l, z);
    close(z);
    z = raw_connect(f->path);
    raw_send(z, b, sizeof(b), NULL, 0);
    raw_expect_eof(f->l, z);
    close(z);
    assert_int_equal(sr.connected, 0);

    /* Speaking unprompted after the snapshot. */
    z = raw_connect(f->path);
    raw_send_hello(z);
    raw_expect_req(f->l, z, ZDS_REQ_SNAPSHOT_SENT, NULL);
    raw_send_ack(z, "");
    assert_true(run_until_count(f->l, &sr.n, 1, 2000));
    raw_send_ack(z, "");
    assert_true(run_until_count(f->l, &sr.disconnected, 1, 2000));
    assert_int_equal(sr.last_err, -MESH_EPROTO);
    raw_expect_eof(f->l, z);
    close(z);

    /* Answering with something that is not an ack; an ack with a descriptor. */
    z = raw_connect(f->path);
    raw_send_hello(z);
    raw_expect_req(f->l, z, ZDS_REQ_SNAPSHOT_SENT, NULL);
    raw_send(z, junk, sizeof(junk), NULL, 0);
    assert_true(run_until_count(f->l, &sr.disconnected, 2, 2000));
    raw_expect_eof(f->l, z);
    close(z);
    z = raw_connect(f->path);
    raw_send_hello(z);
    raw_expect_req(f->l, z, ZDS_REQ_SNAPSHOT_SENT, NULL);
    size_t len;
    assert_int_equal(zds_ack_encode(NULL, b, sizeof(b), &len), 0);
    raw_send(z, b, len, &f->netns, 1);
    assert_true(run_until_count(f->l, &sr.disconnected, 3, 2000));
    assert_int_equal(sr.last_err, -MESH_EPROTO);
    raw_expect_eof(f->l, z);
    close(z);

    /* More connections than allowed: the extra one is closed at once. */
    struct zds_server_opts o = {.max_clients = 1};
    zds_server_stop(sr.s);
    server(f, &sr, &o);
    int z1 = raw_connect(f->path), z2 = raw_connect(f->path);
    raw_expect_eof(f->l, z2);
    raw_send_hello(z1);
    raw_expect_req(f->l, z1, ZDS_REQ_SNAPSHOT_SENT, NULL);
    close(z1);
    close(z2);
    zds_server_stop(sr.s);
}

/* ---- Against our client ---- */

struct agent {
    int lfd, z;
};

/* Listens, starts |cr|'s client, accepts it and checks its Hello. */
static void
agent_accept(struct fx *f, struct agent *a, struct crec *cr)
{
    uint8_t b[ZDS_MSG_MAX];
    int rfd;

    a->z = raw_accept(f->l, a->lfd);
    ssize_t n = raw_recv(f->l, a->z, b, &rfd);
    assert_true(n > 0);
    assert_int_equal(rfd, -1);
    assert_int_equal(zds_hello_decode(b, (size_t)n), 0);
    assert_true(zds_client_is_connected(cr->c));
}

static void
send_req(int z, const struct zds_req *r, const int *fds, size_t n_fds)
{
    uint8_t b[ZDS_MSG_MAX];
    size_t len;
    assert_int_equal(zds_req_encode(r, b, sizeof(b), &len), 0);
    raw_send(z, b, len, fds, n_fds);
}

/* Expects the client to hang up on |a| and come back. */
static void
expect_reconnect(struct fx *f, struct agent *a, struct crec *cr, size_t downs)
{
    raw_expect_eof(f->l, a->z);
    close(a->z);
    assert_true(run_until_count(f->l, &cr->downs, downs, 2000));
    assert_int_equal(cr->last_err, -MESH_EPROTO);
    agent_accept(f, a, cr);
}

static void
test_agent_breaks_rules(void **state)
{
    struct fx *f = *state;
    struct crec cr = {0};
    struct agent a = {.lfd = raw_listen(f->path)};
    struct zds_req add = {.kind = ZDS_REQ_ADD}, del = {.kind = ZDS_REQ_DEL};
    uint8_t big[1500] = {0};
    int two[2] = {f->netns, f->netns};

    assert_int_equal(zds_workload_set(&add.w, "w1", "p", "n", "s"), 0);
    assert_int_equal(zds_workload_set(&del.w, "w1", NULL, NULL, NULL), 0);
    cr.c = zds_client_start(f->l, f->path, NULL, &crec_cbs, &cr);
    agent_accept(f, &a, &cr);

    send_req(a.z, &add, NULL, 0); /* add without its netns */
    expect_reconnect(f, &a, &cr, 1);
    send_req(a.z, &del, &f->netns, 1); /* del with a descriptor: it must be closed */
    expect_reconnect(f, &a, &cr, 2);
    send_req(a.z, &add, two, 2); /* two descriptors */
    expect_reconnect(f, &a, &cr, 3);
    raw_send(a.z, big, sizeof(big), NULL, 0); /* over ztunnel's 1024 bytes */
    raw_expect_eof(f->l, a.z);
    close(a.z);
    assert_true(run_until_count(f->l, &cr.downs, 4, 2000));
    assert_int_equal(cr.last_err, -MESH_ELIMIT);
    agent_accept(f, &a, &cr);
    assert_int_equal(cr.n, 0); /* no callback saw any of it */

    /* Unknown requests, and keep or SnapshotSent out of place, are NACKed. */
    static const uint8_t old4[] = {0x22, 0x00};
    raw_send(a.z, old4, sizeof(old4), NULL, 0);
    raw_expect_ack(f->l, a.z, "unsupported request");
    struct zds_req snap = {.kind = ZDS_REQ_SNAPSHOT_SENT}, keep = {.kind = ZDS_REQ_KEEP};
    assert_int_equal(zds_workload_set(&keep.w, "k1", NULL, NULL, NULL), 0);
    send_req(a.z, &snap, NULL, 0);
    raw_expect_ack(f->l, a.z, "");
    assert_true(zds_client_is_synced(cr.c));
    send_req(a.z, &keep, NULL, 0);
    raw_expect_ack(f->l, a.z, "keep after the snapshot");
    send_req(a.z, &snap, NULL, 0);
    raw_expect_ack(f->l, a.z, "snapshot already sent");
    assert_int_equal(cr.snaps, 1);

    /* The old AddWorkload{uid = 2} is served, with an empty WorkloadInfo. */
    struct zds_req old = {.kind = ZDS_REQ_ADD, .legacy = true};
    memcpy(old.w.uid, "8f1c2d3e-0000-4000-8000-123456789abc", 37);
    send_req(a.z, &old, &f->netns, 1);
    raw_expect_ack(f->l, a.z, "");
    assert_string_equal(cr.log[cr.n - 1], "add 8f1c2d3e-0000-4000-8000-123456789abc   ");
    assert_int_equal(cr.ino, f->netns_ino);

    /* A NACK from the callback. */
    cr.nack_uid = "w1";
    send_req(a.z, &add, &f->netns, 1);
    raw_expect_ack(f->l, a.z, "cannot enter the netns of w1");

    zds_client_stop(cr.c);
    raw_expect_eof(f->l, a.z);
    close(a.z);
    close(a.lfd);
    assert_int_equal(cr.downs, 4);
}

static void
test_client_backoff_bounds(void **state)
{
    struct fx *f = *state;
    struct crec cr = {0};
    struct zds_client_opts o = {.backoff_min_ms = 5, .backoff_max_ms = 40};

    /* Nobody listens: attempts spread out up to the cap. */
    cr.c = zds_client_start(f->l, f->path, &o, &crec_cbs, &cr);
    assert_int_equal(zds_client_backoff_ms(cr.c), 5);
    unit_run_for(f->l, 300);
    assert_int_equal(zds_client_backoff_ms(cr.c), 40);
    assert_int_equal(cr.ups, 0);
    /* The agent appears: the client finds it within one backoff. */
    struct agent a = {.lfd = raw_listen(f->path)};
    agent_accept(f, &a, &cr);
    assert_int_equal(cr.ups, 1);
    zds_client_stop(cr.c);
    close(a.z);
    close(a.lfd);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_ztunnel_never_acks, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_keep_joins_snapshot, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_ztunnel_falls_behind, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_ztunnel_breaks_rules, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_agent_breaks_rules, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_client_backoff_bounds, fx_setup, fx_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
