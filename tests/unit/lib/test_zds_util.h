/*
 * test_zds_util.h - helpers shared by the lib/zds loop tests (test_zds_util.c):
 * a fixture with a loop, a socket path in a temp dir, the test's own netns fd
 * and a descriptor count checked at teardown; recorders for the callbacks of
 * both sides; and raw SEQPACKET peers driven by hand.
 */
#ifndef MESH_TESTS_TEST_ZDS_UTIL_H
#define MESH_TESTS_TEST_ZDS_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "loop/loop.h"
#include "zds/zds_client.h"
#include "zds/zds_msg.h"
#include "zds/zds_server.h"

#define REC_MAX 64
#define REC_LEN 200

struct fx {
    struct loop *l;
    char dir[64];
    char path[128];
    int netns; /* /proc/self/ns/net */
    ino_t netns_ino;
    int fds_before;
};

/* cmocka group-less setup/teardown: *state is a struct fx. */
int fx_setup(void **state);
int fx_teardown(void **state);

int count_fds(void);

/* What a zds_client saw, one line per callback. */
struct crec {
    struct zds_client *c;
    char log[REC_MAX][REC_LEN];
    size_t n;
    ino_t ino;            /* of the last netns received */
    const char *nack_uid; /* NACK add and del of this uid */
    bool stop_in_add;
    size_t ups, downs, snaps;
    int last_err;
};
extern const struct zds_client_cbs crec_cbs;

/* What a zds_server saw. */
struct srec {
    struct zds_server *s;
    char log[REC_MAX][REC_LEN]; /* "ack <client> <kind> <uid> <ok|error>" */
    size_t n;
    size_t connected, disconnected;
    int last_err;
    size_t last_n;
    bool stop_on_ack;
};
extern const struct zds_server_cbs srec_cbs;

/* Runs |l| until |*counter| >= |n| or |timeout_ms|; returns whether it got there. */
bool run_until_count(struct loop *l, const size_t *counter, size_t n, uint64_t timeout_ms);

/* Raw peers: non-blocking SEQPACKET sockets driven by the test. */
int raw_connect(const char *path);
int raw_listen(const char *path);
/* Runs |l| until |lfd| has a connection and accepts it (fails the test after 2 s). */
int raw_accept(struct loop *l, int lfd);
/* Runs |l| until |fd| is readable, then zds_recv()s into |b| (ZDS_MSG_MAX). */
ssize_t raw_recv(struct loop *l, int fd, uint8_t *b, int *rfd);
/* Sends |len| bytes with |n| descriptors (0..8) as one datagram. */
void raw_send(int fd, const void *msg, size_t len, const int *fds, size_t n);
void raw_send_hello(int fd);
void raw_send_ack(int fd, const char *err);
/* Expects the next datagram to be request |kind| for |uid| (NULL: any); closes its fd. */
void raw_expect_req(struct loop *l, int fd, enum zds_req_kind kind, const char *uid);
/* Expects an Ack whose error is |err| ("" for ACK). */
void raw_expect_ack(struct loop *l, int fd, const char *err);
/* Expects the peer to close (EOF) within 2 s. */
void raw_expect_eof(struct loop *l, int fd);

#endif
