/*
 * fuzz_inpod_nl.c - what the kernel sends mesh-cni while it enrolls a pod:
 * one recv() worth of netlink messages from a sock_diag dump and from a
 * ctnetlink dump (lib/inpod, inpod_ct_parse.c), walked as inpod_nl_dump()
 * walks them.
 *
 * Every message goes to both parsers. Whatever parses must be coherent: an
 * IPv4 flow has nothing past its fourth address byte; a socket flow, once in
 * a set, is found by its own two ends in either order; an entry's decision
 * against a set holding one of its own tuples is never "delete". Seeds: real
 * TCP, UDP and IPv6 entries, IPv4 and v4-mapped sockets, truncations, bad
 * lengths, nested attributes pointing past their parent.
 */
#include <errno.h>
#include <linux/netlink.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "inpod/inpod.h"
#include "inpod/inpod_ct.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check_flow(const struct inpod_flow *f)
{
    static const uint8_t zero[12];

    if (f->family != AF_INET && f->family != AF_INET6)
        abort();
    if (f->family == AF_INET && (memcmp(f->a + 4, zero, 12) != 0 || memcmp(f->b + 4, zero, 12) != 0))
        abort();
}

static struct inpod_flow
reversed(const struct inpod_flow *f)
{
    struct inpod_flow r = *f;

    memcpy(r.a, f->b, 16);
    memcpy(r.b, f->a, 16);
    r.pa = f->pb;
    r.pb = f->pa;
    return r;
}

static void
one_message(const struct nlmsghdr *h)
{
    struct inpod_flow f;
    struct inpod_ct e;
    int rc = inpod_diag_parse(h, &f);

    if (rc != 0 && rc != 1 && rc != -EINVAL)
        abort();
    if (rc == 0) {
        struct inpod_flowset s = {0};
        struct inpod_flow r = reversed(&f);
        check_flow(&f);
        if (!inpod_flowset_add(&s, &f))
            abort();
        inpod_flowset_sort(&s);
        if (inpod_flowset_find(&s, &f) != 0 || inpod_flowset_find(&s, &r) != 0)
            abort();
        inpod_flowset_free(&s);
    }
    rc = inpod_ct_parse(h, &e);
    if (rc != 0 && rc != -EINVAL)
        abort();
    if (rc == 0) {
        struct inpod_flowset s = {0};
        enum inpod_ct_action a;
        check_flow(&e.orig);
        check_flow(&e.reply);
        if (e.family != e.orig.family || e.family != e.reply.family)
            abort();
        if (!inpod_flowset_add(&s, &e.reply))
            abort();
        inpod_flowset_sort(&s);
        a = inpod_ct_decide(&s, &e);
        if (a == INPOD_CT_DELETE)
            abort();
        if (a == INPOD_CT_MARK && !s.seen[0])
            abort();
        inpod_flowset_free(&s);
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* Aligned, as a recv() buffer is; the walk is NLMSG_OK/NLMSG_NEXT, as in inpod_nl_dump(). */
    size_t cap = size ? size : 1;
    uint8_t *buf = malloc(cap);
    int len = (int)(size > 65536 ? 65536 : size);

    if (buf == NULL)
        return 0;
    memcpy(buf, data, (size_t)len);
    for (struct nlmsghdr *h = (struct nlmsghdr *)buf; NLMSG_OK(h, len); h = NLMSG_NEXT(h, len))
        one_message(h);
    free(buf);
    return 0;
}
