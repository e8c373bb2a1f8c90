/*
 * inpod_route.c - the policy routing that brings replies to ztunnel's
 * spoofed-source connections back to it: "ip rule add fwmark 0x111/0xfff
 * pref 32764 lookup 100" and "ip route add local 0.0.0.0/0 dev lo table 100"
 * (::/0 too for IPv6), over rtnetlink. The socket is made by a short-lived
 * thread that joins the pod's namespace; a socket stays in the namespace it
 * was made in, and no other thread of the caller moves. See inpod_internal.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/fib_rules.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "base/base.h"
#include "inpod/inpod.h"
#include "inpod/inpod_internal.h"

/* The loopback device is always ifindex 1 (LOOPBACK_IFINDEX) in every namespace. */
#define LO_IFINDEX   1
#define LO_V6_SYSCTL "/proc/sys/net/ipv6/conf/lo/disable_ipv6"

struct nl_req {
    struct nlmsghdr h;
    union {
        struct fib_rule_hdr rule;
        struct rtmsg rt;
    } u;
    char attrs[64];
};

struct ns_socket {
    int netns_fd;
    int fd;
    int err;       /* errno of the failed step */
    bool in_setns; /* the failed step was setns */
    bool lo_v6;    /* lo has IPv6 in the namespace */
};

/* Runs in the namespace: the socket, and whether lo has IPv6 (/proc/sys/net is per namespace). */
static void
ns_socket_here(struct ns_socket *a)
{
    char v = '1';
    int fd;

    a->fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
    if (a->fd < 0) {
        a->err = errno;
        return;
    }
    fd = open(LO_V6_SYSCTL, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        if (read(fd, &v, 1) != 1)
            v = '1';
        close(fd);
    }
    a->lo_v6 = v == '0';
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

static int
ns_socket(struct ns_socket *a, char *err, size_t errlen)
{
    pthread_t t;
    int rc;

    a->fd = -1;
    if (a->netns_fd < 0) {
        ns_socket_here(a);
    } else {
        rc = pthread_create(&t, NULL, ns_socket_thread, a);
        if (rc != 0) {
            snprintf(err, errlen, "netlink: thread: %s", strerror(rc));
            return -rc;
        }
        pthread_join(t, NULL);
    }
    if (a->fd < 0) {
        snprintf(err, errlen, "netlink: %s: %s", a->in_setns ? "setns" : "socket",
                 strerror(a->err));
        return -a->err;
    }
    return 0;
}

static void
put_u32(struct nl_req *r, unsigned short type, uint32_t v)
{
    struct rtattr *a = (struct rtattr *)((char *)r + NLMSG_ALIGN(r->h.nlmsg_len));

    CHECK(NLMSG_ALIGN(r->h.nlmsg_len) + RTA_SPACE(sizeof(v)) <= sizeof(*r));
    a->rta_type = type;
    a->rta_len = (unsigned short)RTA_LENGTH(sizeof(v));
    memcpy(RTA_DATA(a), &v, sizeof(v));
    r->h.nlmsg_len = NLMSG_ALIGN(r->h.nlmsg_len) + RTA_SPACE(sizeof(v));
}

/* Sends |r| and waits for its acknowledgement. Returns 0 or the kernel's -errno. */
static int
nl_call(int fd, struct nl_req *r)
{
    static uint32_t seq;
    struct sockaddr_nl kernel = {.nl_family = AF_NETLINK};
    char buf[8192];

    r->h.nlmsg_seq = __atomic_add_fetch(&seq, 1, __ATOMIC_RELAXED);
    if (sendto(fd, r, r->h.nlmsg_len, 0, (struct sockaddr *)&kernel, sizeof(kernel)) < 0)
        return -errno;
    for (;;) {
        ssize_t n = recv(fd, buf, sizeof(buf), 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return errno == EAGAIN ? -ETIMEDOUT : -errno;
        }
        for (struct nlmsghdr *h = (struct nlmsghdr *)buf; NLMSG_OK(h, (size_t)n);
             h = NLMSG_NEXT(h, n)) {
            if (h->nlmsg_seq != r->h.nlmsg_seq || h->nlmsg_type != NLMSG_ERROR)
                continue;
            if (h->nlmsg_len < NLMSG_LENGTH(sizeof(struct nlmsgerr)))
                return -EPROTO;
            return ((struct nlmsgerr *)NLMSG_DATA(h))->error;
        }
    }
}

/* ip [-6] rule add|del fwmark 0x111/0xfff pref 32764 lookup 100 */
static int
mark_rule(int fd, int family, bool add)
{
    struct nl_req r;

    memset(&r, 0, sizeof(r));
    r.h.nlmsg_len = NLMSG_LENGTH(sizeof(r.u.rule));
    r.h.nlmsg_type = add ? RTM_NEWRULE : RTM_DELRULE;
    r.h.nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK | (add ? NLM_F_CREATE | NLM_F_EXCL : 0);
    r.u.rule.family = (unsigned char)family;
    r.u.rule.table = INPOD_ROUTE_TABLE;
    r.u.rule.action = FR_ACT_TO_TBL;
    put_u32(&r, FRA_PRIORITY, INPOD_RULE_PREF);
    put_u32(&r, FRA_FWMARK, INPOD_CONN_MARK);
    put_u32(&r, FRA_FWMASK, INPOD_MASK);
    put_u32(&r, FRA_TABLE, INPOD_ROUTE_TABLE);
    return nl_call(fd, &r);
}

/* ip [-6] route replace|del local 0.0.0.0/0 (::/0) dev lo table 100 */
static int
local_route(int fd, int family, bool add)
{
    struct nl_req r;

    memset(&r, 0, sizeof(r));
    r.h.nlmsg_len = NLMSG_LENGTH(sizeof(r.u.rt));
    r.h.nlmsg_type = add ? RTM_NEWROUTE : RTM_DELROUTE;
    r.h.nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK | (add ? NLM_F_CREATE | NLM_F_REPLACE : 0);
    r.u.rt.rtm_family = (unsigned char)family;
    r.u.rt.rtm_table = INPOD_ROUTE_TABLE;
    r.u.rt.rtm_protocol = RTPROT_BOOT;
    r.u.rt.rtm_scope = RT_SCOPE_HOST;
    r.u.rt.rtm_type = RTN_LOCAL;
    put_u32(&r, RTA_TABLE, INPOD_ROUTE_TABLE);
    put_u32(&r, RTA_OIF, LO_IFINDEX);
    return nl_call(fd, &r);
}

int
inpod_routing(int netns_fd, bool add, bool ipv6, char *err, size_t errlen)
{
    struct ns_socket ns = {.netns_fd = netns_fd};
    struct timeval tv = {.tv_sec = 5};
    int families[2] = {AF_INET, AF_INET6}, rc = 0;

    rc = ns_socket(&ns, err, errlen);
    if (rc < 0)
        return rc;
    setsockopt(ns.fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    for (int i = 0; i < (ipv6 ? 2 : 1) && rc == 0; i++) {
        const char *v = families[i] == AF_INET6 ? "-6 " : "";
        const char *dst = families[i] == AF_INET6 ? "::/0" : "0.0.0.0/0";
        int r = mark_rule(ns.fd, families[i], add);

        /* Present already (add) or gone already (del) is what we want. */
        if (r == -EEXIST || (!add && r == -ENOENT))
            r = 0;
        if (r < 0) {
            snprintf(err, errlen, "ip %srule %s fwmark 0x%x/0x%x pref %d lookup %d: %s", v,
                     add ? "add" : "del", INPOD_CONN_MARK, INPOD_MASK, INPOD_RULE_PREF,
                     INPOD_ROUTE_TABLE, strerror(-r));
            rc = r;
            break;
        }
        if (families[i] == AF_INET6 && !ns.lo_v6)
            continue;
        r = local_route(ns.fd, families[i], add);
        if (!add && (r == -ESRCH || r == -ENOENT))
            r = 0;
        if (r < 0) {
            snprintf(err, errlen, "ip %sroute %s local %s dev lo table %d: %s", v,
                     add ? "replace" : "del", dst, INPOD_ROUTE_TABLE, strerror(-r));
            rc = r;
        }
    }
    close(ns.fd);
    return rc;
}
