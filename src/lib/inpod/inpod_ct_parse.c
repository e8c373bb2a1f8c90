/*
 * inpod_ct_parse.c - the pure half of inpod_ct.c: sets of flows (the pod's
 * sockets at enrollment), what sock_diag and ctnetlink send, parsed with
 * every length checked, and the decision for each conntrack entry. No
 * sockets here, so the unit tests and fuzz_inpod_nl run it directly.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/inet_diag.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_conntrack.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "base/base.h"
#include "inpod/inpod.h"
#include "inpod/inpod_ct.h"
#include "inpod/inpod_internal.h"

static int
end_cmp(const uint8_t *a, uint16_t pa, const uint8_t *b, uint16_t pb)
{
    int c = memcmp(a, b, 16);
    return c != 0 ? c : (pa > pb) - (pa < pb);
}

static int
flow_cmp(const void *x, const void *y)
{
    const struct inpod_flow *a = x, *b = y;
    int c = (a->family > b->family) - (a->family < b->family);

    if (c == 0)
        c = end_cmp(a->a, a->pa, b->a, b->pa);
    if (c == 0)
        c = end_cmp(a->b, a->pb, b->b, b->pb);
    return c;
}

/* The same flow with its ends in the set's order (the lower end first). */
static struct inpod_flow
flow_ordered(const struct inpod_flow *f)
{
    struct inpod_flow o = *f;

    if (end_cmp(f->b, f->pb, f->a, f->pa) < 0) {
        memcpy(o.a, f->b, 16);
        memcpy(o.b, f->a, 16);
        o.pa = f->pb;
        o.pb = f->pa;
    }
    return o;
}

bool
inpod_flowset_add(struct inpod_flowset *s, const struct inpod_flow *f)
{
    if (s->n == INPOD_FLOWS_MAX)
        return false;
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 64;
        s->f = xrealloc(s->f, s->cap * sizeof(*s->f));
    }
    s->f[s->n++] = flow_ordered(f);
    return true;
}

void
inpod_flowset_sort(struct inpod_flowset *s)
{
    size_t w = 0;

    if (s->n > 0)
        qsort(s->f, s->n, sizeof(*s->f), flow_cmp);
    for (size_t i = 0; i < s->n; i++)
        if (w == 0 || flow_cmp(&s->f[w - 1], &s->f[i]) != 0)
            s->f[w++] = s->f[i];
    s->n = w;
    free(s->seen);
    s->seen = xcalloc(s->n ? s->n : 1, sizeof(*s->seen));
}

long
inpod_flowset_find(const struct inpod_flowset *s, const struct inpod_flow *f)
{
    struct inpod_flow key = flow_ordered(f);
    const struct inpod_flow *hit;

    if (s->n == 0)
        return -1;
    hit = bsearch(&key, s->f, s->n, sizeof(*s->f), flow_cmp);
    return hit != NULL ? (long)(hit - s->f) : -1;
}

void
inpod_flowset_free(struct inpod_flowset *s)
{
    free(s->f);
    free(s->seen);
    memset(s, 0, sizeof(*s));
}

static const uint8_t v4mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

int
inpod_diag_parse(const struct nlmsghdr *h, struct inpod_flow *f)
{
    struct inet_diag_msg m;

    if (h->nlmsg_type != SOCK_DIAG_BY_FAMILY)
        return 1;
    if (h->nlmsg_len < NLMSG_LENGTH(sizeof(m)))
        return -EINVAL;
    memcpy(&m, NLMSG_DATA(h), sizeof(m));
    memset(f, 0, sizeof(*f));
    if (m.idiag_family == AF_INET) {
        f->family = AF_INET;
        memcpy(f->a, m.id.idiag_src, 4);
        memcpy(f->b, m.id.idiag_dst, 4);
    } else if (m.idiag_family == AF_INET6) {
        const uint8_t *src = (const uint8_t *)m.id.idiag_src;
        const uint8_t *dst = (const uint8_t *)m.id.idiag_dst;
        /* An IPv6 socket talking IPv4: conntrack knows the flow as IPv4. */
        if (memcmp(src, v4mapped, 12) == 0 && memcmp(dst, v4mapped, 12) == 0) {
            f->family = AF_INET;
            memcpy(f->a, src + 12, 4);
            memcpy(f->b, dst + 12, 4);
        } else {
            f->family = AF_INET6;
            memcpy(f->a, src, 16);
            memcpy(f->b, dst, 16);
        }
    } else {
        return -EINVAL;
    }
    f->pa = ntohs(m.id.idiag_sport);
    f->pb = ntohs(m.id.idiag_dport);
    return 0;
}

/* A nested attribute's contents split by type; false if absent or malformed. */
static bool
nested(const struct nlattr *a, const struct nlattr **tb, size_t max)
{
    if (a == NULL)
        return false;
    return nl_attrs_parse((const char *)a + NLA_HDRLEN, (size_t)a->nla_len - NLA_HDRLEN, tb, max);
}

static int
parse_tuple(const struct nlattr *a, uint8_t family, struct inpod_flow *f, uint8_t *proto)
{
    const struct nlattr *t[CTA_TUPLE_MAX + 1], *ip[CTA_IP_MAX + 1], *pr[CTA_PROTO_MAX + 1];
    size_t alen = family == AF_INET ? 4 : 16;
    const void *src, *dst, *num, *sp, *dp;

    if (!nested(a, t, CTA_TUPLE_MAX) || !nested(t[CTA_TUPLE_IP], ip, CTA_IP_MAX) ||
        !nested(t[CTA_TUPLE_PROTO], pr, CTA_PROTO_MAX))
        return -EINVAL;
    src = nl_attr_data(ip[family == AF_INET ? CTA_IP_V4_SRC : CTA_IP_V6_SRC], alen);
    dst = nl_attr_data(ip[family == AF_INET ? CTA_IP_V4_DST : CTA_IP_V6_DST], alen);
    num = nl_attr_data(pr[CTA_PROTO_NUM], 1);
    if (src == NULL || dst == NULL || num == NULL)
        return -EINVAL;
    memset(f, 0, sizeof(*f));
    f->family = family;
    memcpy(f->a, src, alen);
    memcpy(f->b, dst, alen);
    *proto = *(const uint8_t *)num;
    sp = nl_attr_data(pr[CTA_PROTO_SRC_PORT], 2);
    dp = nl_attr_data(pr[CTA_PROTO_DST_PORT], 2);
    if (*proto == IPPROTO_TCP && (sp == NULL || dp == NULL))
        return -EINVAL;
    if (sp != NULL && dp != NULL) {
        uint16_t p;
        memcpy(&p, sp, 2);
        f->pa = ntohs(p);
        memcpy(&p, dp, 2);
        f->pb = ntohs(p);
    }
    return 0;
}

static bool
be32_attr(const struct nlattr *a, uint32_t *out)
{
    const void *d = nl_attr_data(a, 4);
    uint32_t v;

    if (d == NULL)
        return false;
    memcpy(&v, d, 4);
    *out = ntohl(v);
    return true;
}

int
inpod_ct_parse(const struct nlmsghdr *h, struct inpod_ct *e)
{
    const struct nlattr *tb[CTA_MAX + 1];
    struct nfgenmsg g;
    uint8_t reply_proto = 0;
    size_t hdr = NLMSG_LENGTH(NLMSG_ALIGN(sizeof(g)));

    memset(e, 0, sizeof(*e));
    if (h->nlmsg_type != INPOD_CT_MSG(IPCTNL_MSG_CT_NEW) || h->nlmsg_len < hdr)
        return -EINVAL;
    memcpy(&g, NLMSG_DATA(h), sizeof(g));
    if (g.nfgen_family != AF_INET && g.nfgen_family != AF_INET6)
        return -EINVAL;
    e->family = g.nfgen_family;
    if (!nl_attrs_parse((const char *)h + hdr, h->nlmsg_len - hdr, tb, CTA_MAX) ||
        parse_tuple(tb[CTA_TUPLE_ORIG], e->family, &e->orig, &e->proto) < 0 ||
        parse_tuple(tb[CTA_TUPLE_REPLY], e->family, &e->reply, &reply_proto) < 0 ||
        reply_proto != e->proto)
        return -EINVAL;
    if (tb[CTA_MARK] != NULL && !be32_attr(tb[CTA_MARK], &e->mark))
        return -EINVAL;
    if (tb[CTA_ID] != NULL) {
        if (!be32_attr(tb[CTA_ID], &e->id))
            return -EINVAL;
        e->has_id = true;
    }
    if (tb[CTA_ZONE] != NULL) {
        const void *z = nl_attr_data(tb[CTA_ZONE], 2);
        uint16_t v;
        if (z == NULL)
            return -EINVAL;
        memcpy(&v, z, 2);
        e->zone = ntohs(v);
    }
    return 0;
}

enum inpod_ct_action
inpod_ct_decide(struct inpod_flowset *s0, const struct inpod_ct *e)
{
    long i;

    if (e->proto != IPPROTO_TCP || e->zone != 0 || (e->mark & INPOD_CT_NEW))
        return INPOD_CT_LEAVE;
    i = inpod_flowset_find(s0, &e->orig);
    if (i < 0)
        i = inpod_flowset_find(s0, &e->reply); /* the pod's own nat rewrote the original */
    if (i < 0)
        return INPOD_CT_DELETE;
    s0->seen[i] = true;
    return (e->mark & INPOD_CT_EXISTING) ? INPOD_CT_LEAVE : INPOD_CT_MARK;
}
