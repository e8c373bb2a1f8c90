/*
 * inpod_route.c - the policy routing that brings replies to ztunnel's
 * spoofed-source connections back to it: "ip rule add fwmark 0x111/0xfff
 * pref 32764 lookup 100" and "ip route add local 0.0.0.0/0 dev lo table 100"
 * (::/0 too for IPv6), over rtnetlink from a socket made inside the pod's
 * namespace (inpod_nl.c). See inpod_internal.h.
 */
#include <errno.h>
#include <linux/fib_rules.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/base.h"
#include "inpod/inpod.h"
#include "inpod/inpod_internal.h"

/* The loopback device is always ifindex 1 (LOOPBACK_IFINDEX) in every namespace. */
#define LO_IFINDEX 1

static void
put_u32(struct nl_msg *m, unsigned short type, uint32_t v)
{
    nl_attr_put(m, type, &v, sizeof(v));
}

/* ip [-6] rule add|del fwmark 0x111/0xfff pref 32764 lookup 100 */
static int
mark_rule(int fd, int family, bool add)
{
    struct nl_msg m;
    struct fib_rule_hdr *r;

    nl_msg_init(&m, add ? RTM_NEWRULE : RTM_DELRULE,
                NLM_F_REQUEST | NLM_F_ACK | (add ? NLM_F_CREATE | NLM_F_EXCL : 0));
    r = nl_msg_put(&m, sizeof(*r));
    r->family = (unsigned char)family;
    r->table = INPOD_ROUTE_TABLE;
    r->action = FR_ACT_TO_TBL;
    put_u32(&m, FRA_PRIORITY, INPOD_RULE_PREF);
    put_u32(&m, FRA_FWMARK, INPOD_CONN_MARK);
    put_u32(&m, FRA_FWMASK, INPOD_MASK);
    put_u32(&m, FRA_TABLE, INPOD_ROUTE_TABLE);
    return inpod_nl_call(fd, &m.u.h);
}

/* ip [-6] route replace|del local 0.0.0.0/0 (::/0) dev lo table 100 */
static int
local_route(int fd, int family, bool add)
{
    struct nl_msg m;
    struct rtmsg *rt;

    nl_msg_init(&m, add ? RTM_NEWROUTE : RTM_DELROUTE,
                NLM_F_REQUEST | NLM_F_ACK | (add ? NLM_F_CREATE | NLM_F_REPLACE : 0));
    rt = nl_msg_put(&m, sizeof(*rt));
    rt->rtm_family = (unsigned char)family;
    rt->rtm_table = INPOD_ROUTE_TABLE;
    rt->rtm_protocol = RTPROT_BOOT;
    rt->rtm_scope = RT_SCOPE_HOST;
    rt->rtm_type = RTN_LOCAL;
    put_u32(&m, RTA_TABLE, INPOD_ROUTE_TABLE);
    put_u32(&m, RTA_OIF, LO_IFINDEX);
    return inpod_nl_call(fd, &m.u.h);
}

int
inpod_routing(int netns_fd, bool add, char *err, size_t errlen)
{
    struct inpod_ns_info info;
    int families[2] = {AF_INET, AF_INET6}, rc = 0;
    int fd = inpod_nl_open(netns_fd, NETLINK_ROUTE, &info, err, errlen);

    if (fd < 0)
        return fd;
    for (int i = 0; i < (info.has_ipv6 ? 2 : 1) && rc == 0; i++) {
        const char *v = families[i] == AF_INET6 ? "-6 " : "";
        const char *dst = families[i] == AF_INET6 ? "::/0" : "0.0.0.0/0";
        int r = mark_rule(fd, families[i], add);

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
        /*
         * Without IPv6 on lo the kernel refuses the route; and the v6 path
         * back to ztunnel is then not needed (no IPv6 to lo, nothing spoofed).
         */
        if (families[i] == AF_INET6 && !info.lo_v6)
            continue;
        r = local_route(fd, families[i], add);
        if (!add && (r == -ESRCH || r == -ENOENT))
            r = 0;
        if (r < 0) {
            snprintf(err, errlen, "ip %sroute %s local %s dev lo table %d: %s", v,
                     add ? "replace" : "del", dst, INPOD_ROUTE_TABLE, strerror(-r));
            rc = r;
        }
    }
    close(fd);
    return rc;
}
