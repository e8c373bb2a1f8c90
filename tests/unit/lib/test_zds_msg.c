/*
 * test_zds_msg.c - ZDS messages: exact bytes, round trips, every decode
 * error, the old AddWorkload form, and descriptor passing on a real
 * SOCK_SEQPACKET socketpair (one fd, two fds, too many fds, oversized
 * datagrams), with descriptor leak checks.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "base/base.h"
#include "zds/zds_msg.h"

static int
count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    int n = 0;
    assert_non_null(d);
    while (readdir(d) != NULL)
        n++;
    closedir(d);
    return n;
}

static struct zds_req
add_req(const char *uid, const char *name, const char *ns, const char *sa)
{
    struct zds_req r = {.kind = ZDS_REQ_ADD};
    assert_int_equal(zds_workload_set(&r.w, uid, name, ns, sa), 0);
    return r;
}

static void
test_exact_bytes(void **state)
{
    uint8_t b[ZDS_MSG_MAX];
    size_t len;
    struct zds_req r = add_req("u1", "n", "ns", "sa");
    static const uint8_t want_add[] = {0x0a, 0x11, 0x0a, 0x02, 'u', '1',  0x12, 0x0b, 0x0a, 0x01,
                                       'n',  0x12, 0x02, 'n',  's', 0x1a, 0x02, 's',  'a'};
    static const uint8_t want_del[] = {0x12, 0x04, 0x12, 0x02, 'u', '1'};
    static const uint8_t want_keep[] = {0x2a, 0x04, 0x0a, 0x02, 'u', '1'};
    static const uint8_t want_snap[] = {0x1a, 0x00};
    static const uint8_t want_hello[] = {0x08, 0x01};
    static const uint8_t want_ack[] = {0x0a, 0x00};
    static const uint8_t want_nack[] = {0x0a, 0x03, 0x0a, 0x01, 'x'};
    (void)state;

    assert_int_equal(zds_req_encode(&r, b, sizeof(b), &len), 0);
    assert_int_equal(len, sizeof(want_add));
    assert_memory_equal(b, want_add, len);
    r.kind = ZDS_REQ_DEL;
    assert_int_equal(zds_req_encode(&r, b, sizeof(b), &len), 0);
    assert_int_equal(len, sizeof(want_del));
    assert_memory_equal(b, want_del, len);
    r.kind = ZDS_REQ_KEEP;
    assert_int_equal(zds_req_encode(&r, b, sizeof(b), &len), 0);
    assert_int_equal(len, sizeof(want_keep));
    assert_memory_equal(b, want_keep, len);
    r.kind = ZDS_REQ_SNAPSHOT_SENT;
    assert_int_equal(zds_req_encode(&r, b, sizeof(b), &len), 0);
    assert_int_equal(len, sizeof(want_snap));
    assert_memory_equal(b, want_snap, len);
    assert_int_equal(zds_hello_encode(b, sizeof(b), &len), 0);
    assert_int_equal(len, sizeof(want_hello));
    assert_memory_equal(b, want_hello, len);
    assert_int_equal(zds_ack_encode(NULL, b, sizeof(b), &len), 0);
    assert_int_equal(len, sizeof(want_ack));
    assert_memory_equal(b, want_ack, len);
    assert_int_equal(zds_ack_encode("", b, sizeof(b), &len), 0);
    assert_memory_equal(b, want_ack, len);
    assert_int_equal(zds_ack_encode("x", b, sizeof(b), &len), 0);
    assert_int_equal(len, sizeof(want_nack));
    assert_memory_equal(b, want_nack, len);
    /* Too small an output buffer. */
    r.kind = ZDS_REQ_ADD;
    assert_int_equal(zds_req_encode(&r, b, 5, &len), -MESH_ELIMIT);
    assert_int_equal(zds_hello_encode(b, 1, &len), -MESH_ELIMIT);
    assert_int_equal(zds_ack_encode("x", b, 2, &len), -MESH_ELIMIT);
}

static void
test_round_trip(void **state)
{
    uint8_t b[ZDS_MSG_MAX];
    size_t len;
    struct zds_req out;
    char name[ZDS_NAME_MAX + 1], ns[ZDS_NS_MAX + 1], sa[ZDS_SA_MAX + 1], uid[ZDS_UID_MAX + 1];
    (void)state;

    /* Every field at its cap still fits ztunnel's buffer. */
    memset(uid, 'u', ZDS_UID_MAX), uid[ZDS_UID_MAX] = '\0';
    memset(name, 'n', ZDS_NAME_MAX), name[ZDS_NAME_MAX] = '\0';
    memset(ns, 's', ZDS_NS_MAX), ns[ZDS_NS_MAX] = '\0';
    memset(sa, 'a', ZDS_SA_MAX), sa[ZDS_SA_MAX] = '\0';
    struct zds_req cases[] = {
        add_req(uid, name, ns, sa),
        add_req("8f1c2d3e-0000-4000-8000-123456789abc", "reviews-v1-abc", "bookinfo", "reviews"),
        add_req("u", "p\xc3\xa9", "", ""), /* UTF-8 and empty strings */
        {.kind = ZDS_REQ_DEL, .w = {.uid = "gone"}},
        {.kind = ZDS_REQ_KEEP, .w = {.uid = "kept"}},
        {.kind = ZDS_REQ_SNAPSHOT_SENT},
    };
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        assert_int_equal(zds_req_encode(&cases[i], b, sizeof(b), &len), 0);
        assert_true(len <= ZDS_MSG_MAX);
        assert_int_equal(zds_req_decode(b, len, cases[i].kind == ZDS_REQ_ADD, &out), 0);
        assert_int_equal(out.kind, cases[i].kind);
        assert_false(out.legacy);
        assert_memory_equal(&out.w, &cases[i].w, sizeof(out.w));
    }
    assert_int_equal(zds_hello_encode(b, sizeof(b), &len), 0);
    assert_int_equal(zds_hello_decode(b, len), 0);
    char err[ZDS_ERR_MAX + 1];
    assert_int_equal(zds_ack_encode("no such netns", b, sizeof(b), &len), 0);
    assert_int_equal(zds_ack_decode(b, len, err, sizeof(err)), 0);
    assert_string_equal(err, "no such netns");
    assert_int_equal(zds_ack_encode(NULL, b, sizeof(b), &len), 0);
    assert_int_equal(zds_ack_decode(b, len, err, sizeof(err)), 0);
    assert_string_equal(err, "");
    assert_string_equal(zds_req_kind_name(ZDS_REQ_KEEP), "keep");
    assert_string_equal(zds_req_kind_name((enum zds_req_kind)99), "?");
}

static void
test_workload_rules(void **state)
{
    struct zds_workload w;
    char big[ZDS_NAME_MAX + 2];
    struct zds_req r = {.kind = ZDS_REQ_DEL};
    uint8_t b[ZDS_MSG_MAX];
    size_t len;
    (void)state;

    memset(big, 'x', sizeof(big) - 1), big[sizeof(big) - 1] = '\0';
    assert_int_equal(zds_workload_set(&w, "u", NULL, NULL, NULL), 0);
    assert_int_equal(zds_workload_set(&w, NULL, "n", "ns", "sa"), -EINVAL);
    assert_int_equal(zds_workload_set(&w, "", "n", "ns", "sa"), -EINVAL);
    assert_int_equal(zds_workload_set(&w, "a b", "n", "ns", "sa"), -EINVAL);
    assert_int_equal(zds_workload_set(&w, "a\x7f", "n", "ns", "sa"), -EINVAL);
    assert_int_equal(zds_workload_set(&w, "u", big, "ns", "sa"), -EINVAL);
    assert_int_equal(zds_workload_set(&w, "u", "n\n", "ns", "sa"), -EINVAL);
    assert_int_equal(zds_workload_set(&w, "u", "\xc3", "ns", "sa"), -EINVAL);     /* cut */
    assert_int_equal(zds_workload_set(&w, "u", "\xc0\xaf", "ns", "sa"), -EINVAL); /* overlong */
    assert_int_equal(zds_workload_set(&w, "u", "\xed\xa0\x80", "ns", "sa"),
                     -EINVAL); /* surrogate */
    big[ZDS_UID_MAX + 1] = '\0';
    assert_int_equal(zds_workload_set(&w, big, "n", "ns", "sa"), -EINVAL);
    big[ZDS_UID_MAX] = '\0';
    assert_int_equal(zds_workload_set(&w, big, "n", "ns", "sa"), 0);
    /* The encoder checks what it is given as well. */
    assert_int_equal(zds_req_encode(&r, b, sizeof(b), &len), -EINVAL); /* empty uid */
    memcpy(r.w.uid, "a b", 4);
    assert_int_equal(zds_req_encode(&r, b, sizeof(b), &len), -EINVAL);
    memset(r.w.uid, 'x', sizeof(r.w.uid)); /* not terminated */
    assert_int_equal(zds_req_encode(&r, b, sizeof(b), &len), -EINVAL);
    r.kind = (enum zds_req_kind)0;
    memcpy(r.w.uid, "u", 2);
    assert_int_equal(zds_req_encode(&r, b, sizeof(b), &len), -EINVAL);
}

/* Encodes |r| and decodes it with or without a descriptor. */
static int
decode_as(const struct zds_req *r, bool has_fd)
{
    uint8_t b[ZDS_MSG_MAX];
    size_t len;
    struct zds_req out;
    assert_int_equal(zds_req_encode(r, b, sizeof(b), &len), 0);
    return zds_req_decode(b, len, has_fd, &out);
}

static void
test_decode_errors(void **state)
{
    struct zds_req out, add = add_req("u1", "n", "ns", "sa");
    struct zds_req del = {.kind = ZDS_REQ_DEL, .w = {.uid = "u1"}};
    struct zds_req keep = {.kind = ZDS_REQ_KEEP, .w = {.uid = "u1"}};
    struct zds_req snap = {.kind = ZDS_REQ_SNAPSHOT_SENT};
    uint8_t b[ZDS_MSG_MAX + 1];
    size_t len;
    (void)state;

    /* The descriptor rule: add needs one, nothing else may have one. */
    assert_int_equal(decode_as(&add, false), -MESH_EPROTO);
    assert_int_equal(decode_as(&del, true), -MESH_EPROTO);
    assert_int_equal(decode_as(&keep, true), -MESH_EPROTO);
    assert_int_equal(decode_as(&snap, true), -MESH_EPROTO);
    assert_int_equal(decode_as(&del, false), 0);

    /* Unknown payloads: 4 (no_snapshot_present of old), 9, none at all. */
    static const uint8_t old4[] = {0x22, 0x00}, f9[] = {0x4a, 0x00};
    assert_int_equal(zds_req_decode(old4, sizeof(old4), false, &out), -ENOTSUP);
    assert_int_equal(zds_req_decode(f9, sizeof(f9), false, &out), -ENOTSUP);
    assert_int_equal(zds_req_decode(b, 0, false, &out), -ENOTSUP);
    assert_int_equal(zds_req_decode(old4, sizeof(old4), true, &out), -MESH_EPROTO);

    /* Every truncation of a valid add is malformed. */
    assert_int_equal(zds_req_encode(&add, b, sizeof(b), &len), 0);
    for (size_t k = 1; k < len; k++)
        assert_int_equal(zds_req_decode(b, k, true, &out), -MESH_EPROTO);

    /* Oversized, before any parsing. */
    memset(b, 0, sizeof(b));
    assert_int_equal(zds_req_decode(b, ZDS_MSG_MAX + 1, true, &out), -MESH_ELIMIT);

    /* Unknown fields are skipped; a later oneof member replaces an earlier one. */
    static const uint8_t unknown[] = {0x12, 0x06, 0x12, 0x02, 'u', '1', 0x78, 0x05};
    static const uint8_t two[] = {0x1a, 0x00, 0x12, 0x04, 0x12, 0x02, 'u', '2'};
    assert_int_equal(zds_req_decode(unknown, 8, false, &out), 0);
    assert_int_equal(out.kind, ZDS_REQ_DEL);
    assert_string_equal(out.w.uid, "u1");
    assert_int_equal(zds_req_decode(two, sizeof(two), false, &out), 0);
    assert_int_equal(out.kind, ZDS_REQ_DEL);
    assert_string_equal(out.w.uid, "u2");

    /* Field rules apply on receipt: empty uid, a space, a bad name, a uid too long. */
    static const uint8_t del_empty[] = {0x12, 0x00};
    static const uint8_t del_space[] = {0x12, 0x05, 0x12, 0x03, 'a', ' ', 'b'};
    static const uint8_t bad_name[] = {0x0a, 0x09, 0x0a, 0x01, 'u', 0x12,
                                       0x04, 0x0a, 0x02, 0xff, 'x'};
    static const uint8_t wrong_type[] = {0x12, 0x02, 0x10, 0x01}; /* del.uid as a varint */
    assert_int_equal(zds_req_decode(del_empty, sizeof(del_empty), false, &out), -MESH_EPROTO);
    assert_int_equal(zds_req_decode(del_space, sizeof(del_space), false, &out), -MESH_EPROTO);
    assert_int_equal(zds_req_decode(bad_name, sizeof(bad_name), true, &out), -MESH_EPROTO);
    assert_int_equal(zds_req_decode(wrong_type, sizeof(wrong_type), false, &out), -MESH_EPROTO);
    /* del{uid: 129 x's}, then 128 (lengths 132 and 129 as two-byte varints). */
    uint8_t long_uid[ZDS_UID_MAX + 8] = {0x12, 0x84, 0x01, 0x12, 0x81, 0x01};
    memset(long_uid + 6, 'x', ZDS_UID_MAX + 1);
    assert_int_equal(zds_req_decode(long_uid, ZDS_UID_MAX + 7, false, &out), -MESH_EPROTO);
    long_uid[1]--, long_uid[4]--;
    assert_int_equal(zds_req_decode(long_uid, ZDS_UID_MAX + 6, false, &out), 0);
    assert_int_equal(strlen(out.w.uid), ZDS_UID_MAX);

    /* Not protobuf at all. */
    static const uint8_t junk[] = {0xff, 0xff, 0xff};
    assert_int_equal(zds_req_decode(junk, sizeof(junk), false, &out), -MESH_EPROTO);
}

static void
test_legacy_add(void **state)
{
    struct zds_req r = {.kind = ZDS_REQ_ADD, .legacy = true}, out;
    uint8_t b[ZDS_MSG_MAX];
    size_t len;
    (void)state;

    /* A UUID as uid 2: protobuf-c cannot read it as WorkloadInfo. */
    memcpy(r.w.uid, "8f1c2d3e-0000-4000-8000-123456789abc", 37);
    assert_int_equal(zds_req_encode(&r, b, sizeof(b), &len), 0);
    assert_int_equal(b[0], 0x0a);
    assert_int_equal(b[2], 0x12);
    assert_int_equal(zds_req_decode(b, len, true, &out), 0);
    assert_int_equal(out.kind, ZDS_REQ_ADD);
    assert_true(out.legacy);
    assert_string_equal(out.w.uid, r.w.uid);
    assert_string_equal(out.w.name, "");
    assert_int_equal(zds_req_decode(b, len, false, &out), -MESH_EPROTO);

    /* A uid whose bytes happen to parse as a WorkloadInfo (field 6, 33 bytes). */
    memcpy(r.w.uid, "2!aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", 36);
    assert_int_equal(zds_req_encode(&r, b, sizeof(b), &len), 0);
    assert_int_equal(zds_req_decode(b, len, true, &out), 0);
    assert_true(out.legacy);
    assert_string_equal(out.w.uid, r.w.uid);

    /* Today's form with an empty uid is not mistaken for the old one. */
    static const uint8_t no_uid[] = {0x0a, 0x05, 0x12, 0x03, 0x0a, 0x01, 'n'};
    assert_int_equal(zds_req_decode(no_uid, sizeof(no_uid), true, &out), -MESH_EPROTO);
    /*
     * An old add followed by another payload: malformed for today's schema (as
     * for any protobuf decoder), and not the old shape either.
     */
    static const uint8_t then_del[] = {0x0a, 0x03, 0x12, 0x01, '1', 0x12,
                                       0x04, 0x12, 0x02, 'u',  '2'};
    assert_int_equal(zds_req_decode(then_del, sizeof(then_del), false, &out), -MESH_EPROTO);
}

static void
test_hello_and_ack_errors(void **state)
{
    static const uint8_t v0[] = {0x08, 0x00}, v2[] = {0x08, 0x02}, junk[] = {0xff};
    static const uint8_t no_ack[] = {0x12, 0x00}, ack_junk[] = {0x0a, 0x02, 0xff, 0xff};
    char err[16];
    uint8_t b[ZDS_MSG_MAX + 1] = {0};
    size_t len;
    (void)state;

    assert_int_equal(zds_hello_decode(v0, sizeof(v0)), -MESH_EPROTO);
    assert_int_equal(zds_hello_decode(v2, sizeof(v2)), -MESH_EPROTO);
    assert_int_equal(zds_hello_decode(junk, sizeof(junk)), -MESH_EPROTO);
    assert_int_equal(zds_hello_decode(b, 0), -MESH_EPROTO);
    assert_int_equal(zds_hello_decode(b, ZDS_MSG_MAX + 1), -MESH_EPROTO);
    assert_int_equal(zds_ack_decode(b, 0, err, sizeof(err)), -MESH_EPROTO);
    assert_int_equal(zds_ack_decode(no_ack, sizeof(no_ack), err, sizeof(err)), -MESH_EPROTO);
    assert_int_equal(zds_ack_decode(ack_junk, sizeof(ack_junk), err, sizeof(err)), -MESH_EPROTO);
    assert_int_equal(zds_ack_decode(b, ZDS_MSG_MAX + 1, err, sizeof(err)), -MESH_ELIMIT);

    /* NACK text: made printable, cut at a character boundary. */
    assert_int_equal(zds_ack_encode("a\nb\xff\xc3\xa9", b, sizeof(b), &len), 0);
    assert_int_equal(zds_ack_decode(b, len, err, sizeof(err)), 0);
    assert_string_equal(err, "a?b?\xc3\xa9");
    assert_int_equal(zds_ack_decode(b, len, err, 6), 0);
    assert_string_equal(err, "a?b?"); /* no half character */
    char big[2000];
    memset(big, 'e', sizeof(big) - 1), big[sizeof(big) - 1] = '\0';
    char back[ZDS_ERR_MAX + 8];
    assert_int_equal(zds_ack_encode(big, b, sizeof(b), &len), 0);
    assert_true(len <= ZDS_MSG_MAX);
    assert_int_equal(zds_ack_decode(b, len, back, sizeof(back)), 0);
    assert_int_equal(strlen(back), ZDS_ERR_MAX);
}

/* ---- Transport ---- */

static void
seqpacket_pair(int sv[2])
{
    assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
}

/* Sends |len| bytes with |n| descriptors, bypassing zds_send(). */
static void
send_fds(int sock, const void *msg, size_t len, const int *fds, size_t n)
{
    union {
        struct cmsghdr h;
        char b[CMSG_SPACE(sizeof(int) * 8)];
    } u;
    struct iovec iov = {.iov_base = (void *)msg, .iov_len = len};
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
    memset(&u, 0, sizeof(u));
    if (n > 0) {
        mh.msg_control = u.b;
        mh.msg_controllen = CMSG_SPACE(sizeof(int) * n);
        struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int) * n);
        memcpy(CMSG_DATA(c), fds, sizeof(int) * n);
    }
    assert_int_equal(sendmsg(sock, &mh, 0), (ssize_t)len);
}

static void
test_fd_passing(void **state)
{
    int before = count_fds(), sv[2], fd, ns = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
    uint8_t b[ZDS_MSG_MAX], big[ZDS_MSG_MAX + 1];
    struct stat a, c;
    struct zds_req r = add_req("u1", "n", "ns", "sa"), out;
    size_t len;
    (void)state;

    assert_true(ns >= 0);
    seqpacket_pair(sv);
    assert_int_equal(zds_recv(sv[1], b, sizeof(b), &fd), -EAGAIN);
    assert_int_equal(fd, -1);

    /* One add with its netns: the same namespace arrives. */
    assert_int_equal(zds_req_encode(&r, b, sizeof(b), &len), 0);
    assert_int_equal(zds_send(sv[0], b, len, ns), 0);
    uint8_t rb[ZDS_MSG_MAX];
    ssize_t n = zds_recv(sv[1], rb, sizeof(rb), &fd);
    assert_int_equal(n, (ssize_t)len);
    assert_true(fd >= 0);
    assert_int_equal(fstat(ns, &a), 0);
    assert_int_equal(fstat(fd, &c), 0);
    assert_int_equal(a.st_ino, c.st_ino);
    assert_int_equal(fcntl(fd, F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
    assert_int_equal(zds_req_decode(rb, (size_t)n, true, &out), 0);
    close(fd);

    /* Two descriptors, then more than the receiver has room for: refused, none kept. */
    int fds[8];
    for (int i = 0; i < 8; i++)
        fds[i] = ns;
    int mid = count_fds();
    send_fds(sv[0], b, len, fds, 2);
    assert_int_equal(zds_recv(sv[1], rb, sizeof(rb), &fd), -MESH_EPROTO);
    assert_int_equal(fd, -1);
    assert_int_equal(count_fds(), mid);
    send_fds(sv[0], b, len, fds, 8);
    assert_int_equal(zds_recv(sv[1], rb, sizeof(rb), &fd), -MESH_EPROTO);
    assert_int_equal(count_fds(), mid);

    /* A datagram over the buffer (MSG_TRUNC), with a descriptor that must not leak. */
    memset(big, 0, sizeof(big));
    send_fds(sv[0], big, sizeof(big), fds, 1);
    assert_int_equal(zds_recv(sv[1], rb, sizeof(rb), &fd), -MESH_ELIMIT);
    assert_int_equal(count_fds(), mid);
    /* Exactly the buffer is fine. */
    assert_int_equal(zds_send(sv[0], big, ZDS_MSG_MAX, -1), 0);
    assert_int_equal(zds_recv(sv[1], rb, sizeof(rb), &fd), ZDS_MSG_MAX);

    /* The peer's end: 0; sending to a closed peer: an error, no SIGPIPE. */
    close(sv[0]);
    assert_int_equal(zds_recv(sv[1], rb, sizeof(rb), &fd), 0);
    assert_true(zds_send(sv[1], b, len, -1) < 0);
    close(sv[1]);
    close(ns);
    assert_int_equal(count_fds(), before);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exact_bytes),    cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_workload_rules), cmocka_unit_test(test_decode_errors),
        cmocka_unit_test(test_legacy_add),     cmocka_unit_test(test_hello_and_ack_errors),
        cmocka_unit_test(test_fd_passing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
