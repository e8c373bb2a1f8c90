/*
 * inpod_addrs.c - the addresses of a network namespace (inpod.h), for
 * mesh-cni's search of the pods that started before it or its plugin.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <sys/socket.h>
#include <linux/if_addr.h>
#include <linux/rtnetlink.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "base/base.h"
#include "inpod/inpod.h"
#include "inpod/inpod_internal.h"

struct addrs_ctx {
    struct inpod_addr *out;
    size_t max, n;
};

static int
on_addr(void *arg, const struct nlmsghdr *h)
{
    struct addrs_ctx *c = arg;
    const struct nlattr *tb[IFA_MAX + 1];
    const struct ifaddrmsg *ifa;
    size_t alen;

    if (h->nlmsg_type != RTM_NEWADDR || h->nlmsg_len < NLMSG_LENGTH(sizeof(*ifa)))
        return 0;
    ifa = NLMSG_DATA(h);
    if (ifa->ifa_family != AF_INET && ifa->ifa_family != AF_INET6)
        return 0;
    alen = ifa->ifa_family == AF_INET ? 4 : 16;
    if (!nl_attrs_parse((const char *)ifa + NLMSG_ALIGN(sizeof(*ifa)),
                        h->nlmsg_len - NLMSG_LENGTH(sizeof(*ifa)), tb, IFA_MAX))
        return -EPROTO;
    /* IFA_LOCAL is the interface's own address on point-to-point links; else IFA_ADDRESS. */
    const void *a = nl_attr_data(tb[IFA_LOCAL], alen);
    if (a == NULL)
        a = nl_attr_data(tb[IFA_ADDRESS], alen);
    if (a == NULL || c->n == c->max)
        return 0;
    c->out[c->n].family = ifa->ifa_family;
    memset(c->out[c->n].b, 0, sizeof(c->out[c->n].b));
    memcpy(c->out[c->n].b, a, alen);
    c->n++;
    return 0;
}

int
inpod_addrs(int netns_fd, struct inpod_addr *out, size_t max, char *err, size_t errlen)
{
    struct addrs_ctx c = {.out = out, .max = max};
    struct nl_msg m;
    int fd = inpod_nl_open(netns_fd, NETLINK_ROUTE, NULL, err, errlen), rc;

    if (fd < 0)
        return fd;
    nl_msg_init(&m, RTM_GETADDR, NLM_F_REQUEST | NLM_F_DUMP);
    struct ifaddrmsg *ifa = nl_msg_put(&m, sizeof(*ifa));
    ifa->ifa_family = AF_UNSPEC;
    rc = inpod_nl_dump(fd, &m.u.h, on_addr, &c);
    close(fd);
    if (rc < 0) {
        snprintf(err, errlen, "netlink: address dump: %s", strerror(-rc));
        return rc;
    }
    return (int)c.n;
}
