/*
 * test_zds.c - our ZDS server and client in one loop over a real socket path
 * with real netns descriptors: snapshot then live changes, NACKs, reconnects
 * with backoff after a server restart, two ztunnels at once, the socket file's
 * life, and stopping from inside callbacks. Every test checks at teardown that
 * no descriptor leaked.
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
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
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

static struct zds_client *
client(struct fx *f, struct crec *r)
{
    r->c = zds_client_start(f->l, f->path, NULL, &crec_cbs, r);
    assert_non_null(r->c);
    return r->c;
}

static void
test_snapshot_then_live(void **state)
{
    struct fx *f = *state;
    struct srec sr = {0};
    struct crec cr = {0};
    struct stat st;

    server(f, &sr, NULL);
    assert_int_equal(stat(f->path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(zds_server_add(sr.s, "w1", "pod-1", "default", "sa1", f->netns), 0);
    assert_int_equal(zds_server_keep(sr.s, "k1"), 0);
    assert_int_equal(zds_server_n_workloads(sr.s), 2);
    assert_false(zds_server_has_client(sr.s));
    client(f, &cr);

    assert_true(run_until_count(f->l, &sr.n, 3, 2000));
    assert_int_equal(cr.n, 3);
    assert_string_equal(cr.log[0], "add w1 pod-1 default sa1");
    assert_string_equal(cr.log[1], "keep k1");
    assert_string_equal(cr.log[2], "snapshot");
    assert_int_equal(cr.ino, f->netns_ino);
    assert_string_equal(sr.log[0], "ack 1 add w1 ok");
    assert_string_equal(sr.log[1], "ack 1 keep k1 ok");
    assert_string_equal(sr.log[2], "ack 1 snapshot_sent  ok");
    assert_true(zds_server_has_client(sr.s));
    assert_int_equal(zds_server_n_clients(sr.s), 1);
    assert_int_equal(sr.connected, 1);
    assert_true(zds_client_is_synced(cr.c));
    assert_int_equal(cr.ups, 1);

    /* Live: in order, each after the previous ack; a keep is not sent any more. */
    assert_int_equal(zds_server_add(sr.s, "w2", "pod-2", "default", "sa2", f->netns), 0);
    assert_int_equal(zds_server_del(sr.s, "w1"), 0);
    assert_int_equal(zds_server_keep(sr.s, "k2"), 0);
    assert_int_equal(zds_server_add(sr.s, "w3", "pod-3", "other", "sa3", f->netns), 0);
    assert_int_equal(zds_server_del(sr.s, "nope"), -ENOENT);
    assert_int_equal(zds_server_add(sr.s, "bad uid", "p", "n", "s", f->netns), -EINVAL);
    assert_int_equal(zds_server_add(sr.s, "w9", "p", "n", "s", -1), -EINVAL);
    assert_int_equal(sr.n, 3); /* nothing happens inside the calls */
    assert_true(run_until_count(f->l, &sr.n, 6, 2000));
    assert_string_equal(cr.log[3], "add w2 pod-2 default sa2");
    assert_string_equal(cr.log[4], "del w1");
    assert_string_equal(cr.log[5], "add w3 pod-3 other sa3");
    assert_string_equal(sr.log[3], "ack 1 add w2 ok");
    assert_string_equal(sr.log[4], "ack 1 del w1 ok");
    assert_string_equal(sr.log[5], "ack 1 add w3 ok");
    assert_int_equal(zds_server_n_workloads(sr.s), 4); /* k1, w2, k2, w3 */

    /* The ztunnel leaves: the agent hears it. */
    zds_client_stop(cr.c);
    assert_true(run_until_count(f->l, &sr.disconnected, 1, 2000));
    assert_int_equal(sr.last_n, 0);
    assert_int_equal(sr.last_err, -ECONNRESET);
    assert_false(zds_server_has_client(sr.s));
    assert_int_equal(cr.downs, 0); /* stopping is not reported */
    zds_server_stop(sr.s);
    assert_int_equal(access(f->path, F_OK), -1);
}

static void
test_nack_reported(void **state)
{
    struct fx *f = *state;
    struct srec sr = {0};
    struct crec cr = {.nack_uid = "bad"};

    server(f, &sr, NULL);
    assert_int_equal(zds_server_add(sr.s, "bad", "pod", "ns", "sa", f->netns), 0);
    client(f, &cr);
    assert_true(run_until_count(f->l, &sr.n, 2, 2000));
    assert_string_equal(sr.log[0], "ack 1 add bad cannot enter the netns of bad");
    assert_string_equal(sr.log[1], "ack 1 snapshot_sent  ok");
    /* A NACK does not end anything: the next change goes through. */
    assert_int_equal(zds_server_add(sr.s, "good", "pod", "ns", "sa", f->netns), 0);
    assert_int_equal(zds_server_del(sr.s, "bad"), 0);
    assert_true(run_until_count(f->l, &sr.n, 4, 2000));
    assert_string_equal(sr.log[2], "ack 1 add good ok");
    assert_string_equal(sr.log[3], "ack 1 del bad no such workload");
    assert_int_equal(sr.disconnected, 0);
    zds_client_stop(cr.c);
    zds_server_stop(sr.s);
}

static void
test_reconnect_after_restart(void **state)
{
    struct fx *f = *state;
    struct srec sr = {0}, sr2 = {0};
    struct crec cr = {0};

    server(f, &sr, NULL);
    assert_int_equal(zds_server_add(sr.s, "w1", "pod-1", "ns", "sa", f->netns), 0);
    client(f, &cr);
    assert_true(run_until_count(f->l, &cr.snaps, 1, 2000));
    assert_int_equal(zds_client_backoff_ms(cr.c), ZDS_BACKOFF_MIN_MS);

    /* The agent goes away: the client notices, and backs off while nobody listens. */
    zds_server_stop(sr.s);
    assert_true(run_until_count(f->l, &cr.downs, 1, 2000));
    assert_false(zds_client_is_connected(cr.c));
    assert_false(zds_client_is_synced(cr.c));
    unit_run_for(f->l, 300);
    uint64_t b = zds_client_backoff_ms(cr.c);
    assert_true(b >= 80 && b <= 1280);

    /* A new agent with another cache: a fresh snapshot, and the backoff starts over. */
    server(f, &sr2, NULL);
    assert_int_equal(zds_server_add(sr2.s, "w2", "pod-2", "ns", "sa", f->netns), 0);
    assert_true(run_until_count(f->l, &cr.snaps, 2, 3000));
    assert_int_equal(cr.ups, 2);
    assert_string_equal(cr.log[0], "add w1 pod-1 ns sa");
    assert_string_equal(cr.log[1], "snapshot");
    assert_string_equal(cr.log[2], "add w2 pod-2 ns sa");
    assert_string_equal(cr.log[3], "snapshot");
    assert_int_equal(zds_client_backoff_ms(cr.c), ZDS_BACKOFF_MIN_MS);
    assert_int_equal(sr2.connected, 1);
    zds_client_stop(cr.c);
    zds_server_stop(sr2.s);
}

static void
test_two_clients(void **state)
{
    struct fx *f = *state;
    struct srec sr = {0};
    struct crec a = {0}, b = {0};

    server(f, &sr, NULL);
    assert_int_equal(zds_server_add(sr.s, "w1", "pod-1", "ns", "sa", f->netns), 0);
    client(f, &a);
    assert_true(run_until_count(f->l, &a.snaps, 1, 2000));
    client(f, &b); /* an upgrade: the new ztunnel connects while the old one is there */
    assert_true(run_until_count(f->l, &b.snaps, 1, 2000));
    assert_int_equal(zds_server_n_clients(sr.s), 2);
    assert_int_equal(sr.connected, 2);
    assert_string_equal(b.log[0], "add w1 pod-1 ns sa");

    assert_int_equal(zds_server_add(sr.s, "w2", "pod-2", "ns", "sa", f->netns), 0);
    assert_true(run_until_count(f->l, &sr.n, 6, 2000));
    assert_string_equal(a.log[2], "add w2 pod-2 ns sa");
    assert_string_equal(b.log[2], "add w2 pod-2 ns sa");
    int acks_1 = 0, acks_2 = 0;
    for (size_t i = 0; i < sr.n; i++) {
        acks_1 += strcmp(sr.log[i], "ack 1 add w2 ok") == 0;
        acks_2 += strcmp(sr.log[i], "ack 2 add w2 ok") == 0;
    }
    assert_int_equal(acks_1, 1);
    assert_int_equal(acks_2, 1);

    /* The old one leaves; the new one still gets changes. */
    zds_client_stop(a.c);
    assert_true(run_until_count(f->l, &sr.disconnected, 1, 2000));
    assert_int_equal(sr.last_n, 1);
    assert_true(zds_server_has_client(sr.s));
    assert_int_equal(zds_server_del(sr.s, "w1"), 0);
    assert_true(run_until_count(f->l, &b.n, 4, 2000));
    assert_string_equal(b.log[3], "del w1");
    assert_int_equal(a.n, 3);
    zds_client_stop(b.c);
    zds_server_stop(sr.s);
}

static void
test_socket_file(void **state)
{
    struct fx *f = *state;
    struct srec sr = {0};
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    char err[256] = "", other[200];

    /* A socket left by a dead agent is replaced. */
    int fd = socket(AF_UNIX, SOCK_SEQPACKET, 0);
    memcpy(sa.sun_path, f->path, strlen(f->path));
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    close(fd);
    server(f, &sr, NULL);

    /* A live one is not, and a file of another kind is left alone. */
    assert_null(zds_server_start(f->l, f->path, NULL, &srec_cbs, &sr, err, sizeof(err)));
    assert_non_null(strstr(err, "another process is listening"));
    snprintf(other, sizeof(other), "%s/plain", f->dir);
    fd = open(other, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
    close(fd);
    assert_null(zds_server_start(f->l, other, NULL, &srec_cbs, &sr, err, sizeof(err)));
    assert_non_null(strstr(err, "not a socket"));
    assert_int_equal(unlink(other), 0);
    char longp[200];
    memset(longp, 'a', sizeof(longp) - 1), longp[sizeof(longp) - 1] = '\0';
    assert_null(zds_server_start(f->l, longp, NULL, &srec_cbs, &sr, err, sizeof(err)));
    assert_null(zds_client_start(f->l, longp, NULL, &crec_cbs, NULL));
    struct zds_client_cbs no_add = {0};
    assert_null(zds_client_start(f->l, f->path, NULL, &no_add, NULL));

    /* Stopping removes our file, but not one that replaced it meanwhile. */
    assert_int_equal(unlink(f->path), 0);
    fd = open(f->path, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
    close(fd);
    zds_server_stop(sr.s);
    assert_int_equal(access(f->path, F_OK), 0);
    zds_server_stop(NULL);
    zds_client_stop(NULL);
}

static void
test_stop_in_callbacks(void **state)
{
    struct fx *f = *state;
    struct srec sr = {.stop_on_ack = true}, sr2 = {0};
    struct crec cr = {0}, cr2 = {.stop_in_add = true};

    /* The server stops in its first on_ack, with more queued. */
    server(f, &sr, NULL);
    assert_int_equal(zds_server_add(sr.s, "w1", "p", "n", "s", f->netns), 0);
    assert_int_equal(zds_server_add(sr.s, "w2", "p", "n", "s", f->netns), 0);
    client(f, &cr);
    assert_true(run_until_count(f->l, &cr.downs, 1, 2000));
    assert_int_equal(sr.n, 1);
    assert_null(sr.s);
    assert_int_equal(sr.disconnected, 0);
    zds_client_stop(cr.c);
    loop_run_deferred(f->l);

    /* The client stops in on_add: no ack goes out, the server sees it leave. */
    server(f, &sr2, NULL);
    assert_int_equal(zds_server_add(sr2.s, "w1", "p", "n", "s", f->netns), 0);
    client(f, &cr2);
    assert_true(run_until_count(f->l, &sr2.disconnected, 1, 2000));
    assert_int_equal(sr2.n, 0);
    assert_int_equal(cr2.n, 1);
    zds_server_stop(sr2.s);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_snapshot_then_live, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_nack_reported, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_reconnect_after_restart, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_two_clients, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_socket_file, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_stop_in_callbacks, fx_setup, fx_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
