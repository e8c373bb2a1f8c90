/*
 * test_zds_util.c - see test_zds_util.h.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
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

int
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

int
fx_setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    struct stat st;

    assert_non_null(f);
    f->fds_before = count_fds();
    f->l = loop_new();
    assert_non_null(f->l);
    snprintf(f->dir, sizeof(f->dir), "/tmp/zds_test.XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->path, sizeof(f->path), "%s/ztunnel.sock", f->dir);
    f->netns = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
    assert_true(f->netns >= 0);
    assert_int_equal(fstat(f->netns, &st), 0);
    f->netns_ino = st.st_ino;
    *state = f;
    return 0;
}

int
fx_teardown(void **state)
{
    struct fx *f = *state;

    loop_run_deferred(f->l);
    loop_free(f->l);
    close(f->netns);
    unlink(f->path);
    assert_int_equal(rmdir(f->dir), 0);
    assert_int_equal(count_fds(), f->fds_before);
    free(f);
    return 0;
}

static void rec_line(char log[][REC_LEN], size_t *n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
rec_line(char log[][REC_LEN], size_t *n, const char *fmt, ...)
{
    va_list ap;
    assert_true(*n < REC_MAX);
    va_start(ap, fmt);
    vsnprintf(log[*n], REC_LEN, fmt, ap);
    va_end(ap);
    (*n)++;
}

static void
c_add(void *arg, const struct zds_workload *w, int fd, char *err, size_t errlen)
{
    struct crec *r = arg;
    struct stat st;

    assert_true(fd >= 0);
    assert_int_equal(fstat(fd, &st), 0);
    r->ino = st.st_ino;
    close(fd);
    rec_line(r->log, &r->n, "add %s %s %s %s", w->uid, w->name, w->ns, w->sa);
    if (r->nack_uid != NULL && strcmp(w->uid, r->nack_uid) == 0)
        snprintf(err, errlen, "cannot enter the netns of %s", w->uid);
    if (r->stop_in_add)
        zds_client_stop(r->c);
}

static void
c_keep(void *arg, const char *uid, char *err, size_t errlen)
{
    struct crec *r = arg;
    (void)err, (void)errlen;
    rec_line(r->log, &r->n, "keep %s", uid);
}

static void
c_del(void *arg, const char *uid, char *err, size_t errlen)
{
    struct crec *r = arg;
    rec_line(r->log, &r->n, "del %s", uid);
    if (r->nack_uid != NULL && strcmp(uid, r->nack_uid) == 0)
        snprintf(err, errlen, "no such workload");
}

static void
c_snap(void *arg, char *err, size_t errlen)
{
    struct crec *r = arg;
    (void)err, (void)errlen;
    r->snaps++;
    rec_line(r->log, &r->n, "snapshot");
}

static void
c_up(void *arg)
{
    struct crec *r = arg;
    r->ups++;
}

static void
c_down(void *arg, int err)
{
    struct crec *r = arg;
    r->downs++;
    r->last_err = err;
}

const struct zds_client_cbs crec_cbs = {
    .on_add = c_add,
    .on_keep = c_keep,
    .on_del = c_del,
    .on_snapshot = c_snap,
    .on_connected = c_up,
    .on_disconnected = c_down,
};

static void
s_conn(void *arg, uint64_t client, size_t n)
{
    struct srec *r = arg;
    (void)client;
    r->connected++;
    r->last_n = n;
}

static void
s_gone(void *arg, uint64_t client, size_t n, int err)
{
    struct srec *r = arg;
    (void)client;
    r->disconnected++;
    r->last_n = n;
    r->last_err = err;
}

static void
s_ack(void *arg, uint64_t client, enum zds_req_kind kind, const char *uid, const char *error)
{
    struct srec *r = arg;
    rec_line(r->log, &r->n, "ack %llu %s %s %s", (unsigned long long)client,
             zds_req_kind_name(kind), uid, error != NULL ? error : "ok");
    if (r->stop_on_ack) {
        zds_server_stop(r->s);
        r->s = NULL;
    }
}

const struct zds_server_cbs srec_cbs = {
    .on_connected = s_conn,
    .on_disconnected = s_gone,
    .on_ack = s_ack,
};

struct count_want {
    const size_t *counter;
    size_t n;
};

static bool
count_reached(void *arg)
{
    const struct count_want *w = arg;
    return *w->counter >= w->n;
}

bool
run_until_count(struct loop *l, const size_t *counter, size_t n, uint64_t timeout_ms)
{
    struct count_want w = {counter, n};
    return unit_run_until(l, count_reached, &w, timeout_ms);
}

static void
fill_addr(struct sockaddr_un *sa, const char *path)
{
    memset(sa, 0, sizeof(*sa));
    sa->sun_family = AF_UNIX;
    assert_true(strlen(path) < sizeof(sa->sun_path));
    memcpy(sa->sun_path, path, strlen(path));
}

int
raw_connect(const char *path)
{
    struct sockaddr_un sa;
    int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

    fill_addr(&sa, path);
    assert_true(fd >= 0);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    return fd;
}

int
raw_listen(const char *path)
{
    struct sockaddr_un sa;
    int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

    fill_addr(&sa, path);
    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(listen(fd, 4), 0);
    return fd;
}

static bool
readable(void *arg)
{
    struct pollfd p = {.fd = *(const int *)arg, .events = POLLIN};
    return poll(&p, 1, 0) > 0;
}

int
raw_accept(struct loop *l, int lfd)
{
    assert_true(unit_run_until(l, readable, &lfd, 2000));
    int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    assert_true(fd >= 0);
    return fd;
}

ssize_t
raw_recv(struct loop *l, int fd, uint8_t *b, int *rfd)
{
    assert_true(unit_run_until(l, readable, &fd, 2000));
    return zds_recv(fd, b, ZDS_MSG_MAX, rfd);
}

void
raw_send(int fd, const void *msg, size_t len, const int *fds, size_t n)
{
    union {
        struct cmsghdr h;
        char b[CMSG_SPACE(sizeof(int) * 8)];
    } u;
    struct iovec iov = {.iov_base = (void *)msg, .iov_len = len};
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};

    assert_true(n <= 8);
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
    assert_int_equal(sendmsg(fd, &mh, MSG_NOSIGNAL), (ssize_t)len);
}

void
raw_send_hello(int fd)
{
    uint8_t b[16];
    size_t len;
    assert_int_equal(zds_hello_encode(b, sizeof(b), &len), 0);
    raw_send(fd, b, len, NULL, 0);
}

void
raw_send_ack(int fd, const char *err)
{
    uint8_t b[ZDS_MSG_MAX];
    size_t len;
    assert_int_equal(zds_ack_encode(err, b, sizeof(b), &len), 0);
    raw_send(fd, b, len, NULL, 0);
}

void
raw_expect_req(struct loop *l, int fd, enum zds_req_kind kind, const char *uid)
{
    uint8_t b[ZDS_MSG_MAX];
    struct zds_req r;
    int rfd;
    ssize_t n = raw_recv(l, fd, b, &rfd);

    assert_true(n > 0);
    assert_int_equal(zds_req_decode(b, (size_t)n, rfd >= 0, &r), 0);
    if (rfd >= 0)
        close(rfd);
    assert_int_equal(r.kind, kind);
    if (uid != NULL)
        assert_string_equal(r.w.uid, uid);
}

void
raw_expect_ack(struct loop *l, int fd, const char *err)
{
    uint8_t b[ZDS_MSG_MAX];
    char e[ZDS_ERR_MAX + 1];
    int rfd;
    ssize_t n = raw_recv(l, fd, b, &rfd);

    assert_true(n > 0);
    assert_int_equal(rfd, -1);
    assert_int_equal(zds_ack_decode(b, (size_t)n, e, sizeof(e)), 0);
    assert_string_equal(e, err);
}

void
raw_expect_eof(struct loop *l, int fd)
{
    uint8_t b[ZDS_MSG_MAX];
    int rfd;
    assert_int_equal(raw_recv(l, fd, b, &rfd), 0);
}
