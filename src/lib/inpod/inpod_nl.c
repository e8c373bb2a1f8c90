/*
 * inpod_nl.c - netlink inside a pod's network namespace: a socket made by a
 * short-lived thread that joins the namespace (a socket stays in the
 * namespace it was made in, and no other thread of the caller moves), a
 * message builder, request/acknowledgement and dumps, and a bounds-checked
 * attribute parser. Used for rules and routes (rtnetlink), sockets
 * (sock_diag) and connection tracking (ctnetlink). See inpod_internal.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "base/base.h"
#include "inpod/inpod_internal.h"

#define LO_V6_SYSCTL "/proc/sys/net/ipv6/conf/lo/disable_ipv6"
#define V6_SYSCTL    "/proc/sys/net/ipv6" /* absent when the kernel has no IPv6 */
#define NL_TIMEOUT_S 5
#define NL_RCVBUF    ((size_t)64 << 10)

struct ns_socket {
    int netns_fd;
    int protocol;
    int fd;
    int err;       /* errno of the failed step */
    bool in_setns; /* the failed step was setns */
    struct inpod_ns_info info;
};

/* Runs in the namespace: the socket, and what /proc/sys/net (per namespace) says about IPv6. */
static void
ns_socket_here(struct ns_socket *a)
{
    char v = '1';
    int fd;

    a->fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, a->protocol);
    if (a->fd < 0) {
        a->err = errno;
        return;
    }
    a->info.has_ipv6 = access(V6_SYSCTL, F_OK) == 0;
    fd = open(LO_V6_SYSCTL, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        if (read(fd, &v, 1) != 1)
            v = '1';
        close(fd);
    }
    a->info.lo_v6 = a->info.has_ipv6 && v == '0';
}

static void *
ns_socket_thread(void *arg)
{
    struct ns_socket *a = arg;

    if (setns(a->netns_fd, CLONE_NEWNET) < 0) {
        a->err = errno;
        a->in_setns = true;
        return NULL;
    }
    ns_socket_here(a);
    return NULL;
}

int
inpod_nl_open(int netns_fd, int protocol, struct inpod_ns_info *info, char *err, size_t errlen)
{
    struct ns_socket a = {.netns_fd = netns_fd, .protocol = protocol, .fd = -1};
    struct timeval tv = {.tv_sec = NL_TIMEOUT_S};
    pthread_t t;
    int rc;

    if (netns_fd < 0) {
        ns_socket_here(&a);
    } else {
        rc = pthread_create(&t, NULL, ns_socket_thread, &a);
        if (rc != 0) {
            snprintf(err, errlen, "netlink: thread: %s", strerror(rc));
            return -rc;
        }
        pthread_join(t, NULL);
    }
    if (a.fd < 0) {
        snprintf(err, errlen, "netlink: %s: %s", a.in_setns ? "setns" : "socket",
                 strerror(a.err));
        return -a.err;
    }
    setsockopt(a.fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    if (info != NULL)
        *info = a.info;
    return a.fd;
}

void
nl_msg_init(struct nl_msg *m, uint16_t type, uint16_t flags)
{
    memset(m, 0, sizeof(*m));
    m->u.h.nlmsg_len = NLMSG_HDRLEN;
    m->u.h.nlmsg_type = type;
    m->u.h.nlmsg_flags = flags;
}

void *
nl_msg_put(struct nl_msg *m, size_t len)
{
    size_t off = NLMSG_ALIGN(m->u.h.nlmsg_len);

    CHECK(off + NLMSG_ALIGN(len) <= sizeof(m->u.buf));
    m->u.h.nlmsg_len = (uint32_t)(off + NLMSG_ALIGN(len));
    return m->u.buf + off;
}

void
nl_attr_put(struct nl_msg *m, uint16_t type, const void *data, size_t len)
{
    struct nlattr *a = nl_msg_put(m, NLA_HDRLEN + len);

    a->nla_type = type;
    a->nla_len = (uint16_t)(NLA_HDRLEN + len);
    if (len > 0)
        memcpy((char *)a + NLA_HDRLEN, data, len);
}

struct nlattr *
nl_nest_begin(struct nl_msg *m, uint16_t type)
{
    struct nlattr *a = nl_msg_put(m, NLA_HDRLEN);

    a->nla_type = type | NLA_F_NESTED;
    return a;
}

void
nl_nest_end(struct nl_msg *m, struct nlattr *a)
{
    a->nla_len = (uint16_t)((char *)m->u.buf + m->u.h.nlmsg_len - (char *)a);
}

static uint32_t
next_seq(void)
{
    static uint32_t seq;
    return __atomic_add_fetch(&seq, 1, __ATOMIC_RELAXED);
}

static int
nl_send(int fd, struct nlmsghdr *h)
{
    struct sockaddr_nl kernel = {.nl_family = AF_NETLINK};

    h->nlmsg_seq = next_seq();
    if (sendto(fd, h, h->nlmsg_len, 0, (struct sockaddr *)&kernel, sizeof(kernel)) < 0)
        return -errno;
    return 0;
}

static ssize_t
nl_recv(int fd, char *buf, size_t len)
{
    for (;;) {
        ssize_t n = recv(fd, buf, len, MSG_TRUNC);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return errno == EAGAIN ? -ETIMEDOUT : -errno;
        if ((size_t)n > len)
            return -EMSGSIZE;
        return n;
    }
}

int
inpod_nl_call(int fd, struct nlmsghdr *h)
{
    char buf[8192];
    int rc = nl_send(fd, h);

    while (rc == 0) {
        ssize_t n = nl_recv(fd, buf, sizeof(buf));
        if (n < 0)
            return (int)n;
        for (struct nlmsghdr *r = (struct nlmsghdr *)buf; n > 0 && NLMSG_OK(r, (size_t)n);
             r = NLMSG_NEXT(r, n)) {
            if (r->nlmsg_seq != h->nlmsg_seq || r->nlmsg_type != NLMSG_ERROR)
                continue;
            if (r->nlmsg_len < NLMSG_LENGTH(sizeof(struct nlmsgerr)))
                return -EPROTO;
            return ((struct nlmsgerr *)NLMSG_DATA(r))->error;
        }
    }
    return rc;
}

int
inpod_nl_dump(int fd, struct nlmsghdr *h, inpod_nl_cb cb, void *arg)
{
    char *buf = xmalloc(NL_RCVBUF);
    int rc = nl_send(fd, h);

    while (rc == 0) {
        ssize_t n = nl_recv(fd, buf, NL_RCVBUF);
        if (n < 0) {
            rc = (int)n;
            break;
        }
        if (n == 0) {
            rc = -EPROTO;
            break;
        }
        for (struct nlmsghdr *r = (struct nlmsghdr *)buf; n > 0 && NLMSG_OK(r, (size_t)n);
             r = NLMSG_NEXT(r, n)) {
            if (r->nlmsg_seq != h->nlmsg_seq)
                continue;
            if (r->nlmsg_type == NLMSG_DONE)
                goto out;
            if (r->nlmsg_type == NLMSG_ERROR) {
                rc = r->nlmsg_len < NLMSG_LENGTH(sizeof(struct nlmsgerr))
                         ? -EPROTO
                         : ((struct nlmsgerr *)NLMSG_DATA(r))->error;
                if (rc == 0)
                    rc = -EPROTO; /* a dump ends with DONE, not an acknowledgement */
                goto out;
            }
            rc = cb(arg, r);
            if (rc < 0)
                goto out;
        }
    }
out:
    free(buf);
    return rc;
}

bool
nl_attrs_parse(const void *data, size_t len, const struct nlattr **tb, size_t max)
{
    const char *p = data;

    memset(tb, 0, (max + 1) * sizeof(*tb));
    while (len >= NLA_HDRLEN) {
        const struct nlattr *a = (const struct nlattr *)p;
        size_t alen = a->nla_len, step = NLA_ALIGN(alen);
        uint16_t type = a->nla_type & NLA_TYPE_MASK;

        if (alen < NLA_HDRLEN || alen > len)
            return false;
        if (type <= max)
            tb[type] = a;
        if (step >= len)
            return true;
        p += step;
        len -= step;
    }
    return len == 0;
}

const void *
nl_attr_data(const struct nlattr *a, size_t want)
{
    if (a == NULL || (size_t)a->nla_len - NLA_HDRLEN != want)
        return NULL;
    return (const char *)a + NLA_HDRLEN;
}
