/*
 * test_inpod_ct.c - the pure half of the connections-at-enrollment logic
 * (src/lib/inpod/inpod_ct_parse.c): flow sets (ends in either order, both
 * ends of a loopback connection once), sock_diag and ctnetlink messages as
 * the kernel sends them (built here with the module's own message builder),
 * refusals of malformed ones, and the decision for each conntrack entry.
 * No root, no netlink socket.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/inet_diag.h>
#include <linux/netfilter/nf_conntrack_common.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_conntrack.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>

#include <cmocka.h>

#include "inpod/inpod.h"
#include "inpod/inpod_ct.h"
#include "inpod/inpod_internal.h"

static struct inpod_flow
flow(int family, const char *a, uint16_t pa, const char *b, uint16_t pb)
{
    struct inpod_flow f;

    memset(&f, 0, sizeof(f));
    f.family = (uint8_t)family;
    assert_int_equal(inet_pton(family, a, f.a), 1);
    assert_int_equal(inet_pton(family, b, f.b), 1);
    f.pa = pa;
    f.pb = pb;
    return f;
}

static void
test_flowset(void **state)
{
    struct inpod_flowset s = {0};
    struct inpod_flow out = flow(AF_INET, "198.18.1.10", 40000, "198.18.2.10", 8080);
    struct inpod_flow lo1 = flow(AF_INET, "127.0.0.1", 5000, "127.0.0.1", 41000);
    struct inpod_flow lo2 = flow(AF_INET, "127.0.0.1", 41000, "127.0.0.1", 5000);
    struct inpod_flow v6 = flow(AF_INET6, "2001:db8::1", 80, "2001:db8::2", 50000);
    struct inpod_flow back = flow(AF_INET, "198.18.2.10", 8080, "198.18.1.10", 40000);
    struct inpod_flow other = flow(AF_INET, "198.18.2.10", 8080, "198.18.1.10", 40001);
    struct inpod_flow v4as6 = flow(AF_INET6, "::ffff:198.18.1.10", 40000, "::ffff:198.18.2.10", 8080);

    (void)state;
    assert_int_equal(inpod_flowset_find(&s, &out), -1);
    assert_true(inpod_flowset_add(&s, &out));
    assert_true(inpod_flowset_add(&s, &lo1));
    assert_true(inpod_flowset_add(&s, &lo2)); /* the other end of the same connection */
    assert_true(inpod_flowset_add(&s, &v6));
    inpod_flowset_sort(&s);
    assert_int_equal(s.n, 3);
    assert_true(inpod_flowset_find(&s, &out) >= 0);
    assert_int_equal(inpod_flowset_find(&s, &back), inpod_flowset_find(&s, &out));
    assert_int_equal(inpod_flowset_find(&s, &lo2), inpod_flowset_find(&s, &lo1));
    assert_true(inpod_flowset_find(&s, &v6) >= 0);
    assert_int_equal(inpod_flowset_find(&s, &other), -1);
    assert_int_equal(inpod_flowset_find(&s, &v4as6), -1); /* families differ */
    for (size_t i = 0; i < s.n; i++)
        assert_false(s.seen[i]);
    inpod_flowset_free(&s);
}

/* A sock_diag answer as the kernel sends it. */
static void
diag_msg(struct nl_msg *m, int family, const char *src, uint16_t sport, const char *dst,
         uint16_t dport)
{
    struct inet_diag_msg *d;

    nl_msg_init(m, SOCK_DIAG_BY_FAMILY, NLM_F_MULTI);
    d = nl_msg_put(m, sizeof(*d));
    d->idiag_family = (uint8_t)family;
    d->idiag_state = 1;
    d->id.idiag_sport = htons(sport);
    d->id.idiag_dport = htons(dport);
    assert_int_equal(inet_pton(family, src, d->id.idiag_src), 1);
    assert_int_equal(inet_pton(family, dst, d->id.idiag_dst), 1);
}

static void
test_diag_parse(void **state)
{
    struct inpod_flow f, want;
    struct nl_msg m;

    (void)state;
    diag_msg(&m, AF_INET, "198.18.1.10", 40000, "198.18.2.10", 8080);
    assert_int_equal(inpod_diag_parse(&m.u.h, &f), 0);
    want = flow(AF_INET, "198.18.1.10", 40000, "198.18.2.10", 8080);
    assert_memory_equal(&f, &want, sizeof(f));

    diag_msg(&m, AF_INET6, "fe80::1", 8082, "fe80::2", 51000);
    assert_int_equal(inpod_diag_parse(&m.u.h, &f), 0);
    want = flow(AF_INET6, "fe80::1", 8082, "fe80::2", 51000);
    assert_memory_equal(&f, &want, sizeof(f));

    /* An IPv6 socket carrying IPv4: conntrack knows it as IPv4. */
    diag_msg(&m, AF_INET6, "::ffff:198.18.2.10", 8080, "::ffff:198.18.1.10", 40000);
    assert_int_equal(inpod_diag_parse(&m.u.h, &f), 0);
    want = flow(AF_INET, "198.18.2.10", 8080, "198.18.1.10", 40000);
    assert_memory_equal(&f, &want, sizeof(f));

    /* Only one end mapped is not IPv4. */
    diag_msg(&m, AF_INET6, "::ffff:198.18.2.10", 8080, "2001:db8::1", 40000);
    assert_int_equal(inpod_diag_parse(&m.u.h, &f), 0);
    assert_int_equal(f.family, AF_INET6);

    diag_msg(&m, AF_INET, "1.2.3.4", 1, "1.2.3.4", 2);
    ((struct inet_diag_msg *)NLMSG_DATA(&m.u.h))->idiag_family = AF_UNIX;
    assert_int_equal(inpod_diag_parse(&m.u.h, &f), -EINVAL);

    diag_msg(&m, AF_INET, "198.18.1.10", 1, "198.18.2.10", 2);
    m.u.h.nlmsg_len = NLMSG_LENGTH(sizeof(struct inet_diag_msg) - 1);
    assert_int_equal(inpod_diag_parse(&m.u.h, &f), -EINVAL);

    diag_msg(&m, AF_INET, "198.18.1.10", 1, "198.18.2.10", 2);
    m.u.h.nlmsg_type = NLMSG_NOOP;
    assert_int_equal(inpod_diag_parse(&m.u.h, &f), 1);
}

struct ct_spec {
    int family;
    uint8_t proto;
    const char *src, *dst, *rsrc, *rdst;
    uint16_t sport, dport, rsport, rdport;
    bool ports;
    uint32_t mark;
    int zone; /* -1: no CTA_ZONE */
};

static void
put_tuple(struct nl_msg *m, uint16_t type, const struct ct_spec *c, bool reply)
{
    unsigned char a[16], b[16];
    size_t alen = c->family == AF_INET ? 4 : 16;
    uint16_t sp = htons(reply ? c->rsport : c->sport), dp = htons(reply ? c->rdport : c->dport);
    struct nlattr *t = nl_nest_begin(m, type), *n;

    assert_int_equal(inet_pton(c->family, reply ? c->rsrc : c->src, a), 1);
    assert_int_equal(inet_pton(c->family, reply ? c->rdst : c->dst, b), 1);
    n = nl_nest_begin(m, CTA_TUPLE_IP);
    nl_attr_put(m, c->family == AF_INET ? CTA_IP_V4_SRC : CTA_IP_V6_SRC, a, alen);
    nl_attr_put(m, c->family == AF_INET ? CTA_IP_V4_DST : CTA_IP_V6_DST, b, alen);
    nl_nest_end(m, n);
    n = nl_nest_begin(m, CTA_TUPLE_PROTO);
    nl_attr_put(m, CTA_PROTO_NUM, &c->proto, 1);
    if (c->ports) {
        nl_attr_put(m, CTA_PROTO_SRC_PORT, &sp, 2);
        nl_attr_put(m, CTA_PROTO_DST_PORT, &dp, 2);
    }
    nl_nest_end(m, n);
    nl_nest_end(m, t);
}

/* A ctnetlink dump entry as the kernel sends it (attributes in its order). */
static void
ct_msg(struct nl_msg *m, const struct ct_spec *c)
{
    struct nfgenmsg *g;
    uint32_t v;

    nl_msg_init(m, INPOD_CT_MSG(IPCTNL_MSG_CT_NEW), NLM_F_MULTI);
    g = nl_msg_put(m, sizeof(*g));
    g->nfgen_family = (uint8_t)c->family;
    put_tuple(m, CTA_TUPLE_ORIG, c, false);
    put_tuple(m, CTA_TUPLE_REPLY, c, true);
    v = htonl(IPS_SEEN_REPLY);
    nl_attr_put(m, CTA_STATUS, &v, 4);
    v = htonl(c->mark);
    nl_attr_put(m, CTA_MARK, &v, 4);
    v = htonl(0xdeadbeef);
    nl_attr_put(m, CTA_ID, &v, 4);
    if (c->zone >= 0) {
        uint16_t z = htons((uint16_t)c->zone);
        nl_attr_put(m, CTA_ZONE, &z, 2);
    }
}

static const struct ct_spec tcp4 = {
    .family = AF_INET, .proto = IPPROTO_TCP,
    .src = "198.18.1.10", .dst = "198.18.2.10", .rsrc = "198.18.2.10", .rdst = "198.18.1.10",
    .sport = 40000, .dport = 8080, .rsport = 8080, .rdport = 40000, .ports = true, .zone = -1,
};

static void
test_ct_parse(void **state)
{
    struct ct_spec c = tcp4;
    struct inpod_ct e;
    struct inpod_flow want;
    struct nl_msg m;

    (void)state;
    c.mark = INPOD_CT_EXISTING | 0x111;
    ct_msg(&m, &c);
    assert_int_equal(inpod_ct_parse(&m.u.h, &e), 0);
    assert_int_equal(e.family, AF_INET);
    assert_int_equal(e.proto, IPPROTO_TCP);
    assert_int_equal(e.mark, INPOD_CT_EXISTING | 0x111);
    assert_true(e.has_id);
    assert_int_equal(e.id, 0xdeadbeef);
    assert_int_equal(e.zone, 0);
    want = flow(AF_INET, "198.18.1.10", 40000, "198.18.2.10", 8080);
    assert_memory_equal(&e.orig, &want, sizeof(want));
    want = flow(AF_INET, "198.18.2.10", 8080, "198.18.1.10", 40000);
    assert_memory_equal(&e.reply, &want, sizeof(want));

    c = (struct ct_spec){.family = AF_INET6, .proto = IPPROTO_UDP, .src = "2001:db8::1",
                         .dst = "2001:db8::2", .rsrc = "2001:db8::2", .rdst = "2001:db8::1",
                         .sport = 5353, .dport = 53, .rsport = 53, .rdport = 5353,
                         .ports = true, .zone = 1};
    ct_msg(&m, &c);
    assert_int_equal(inpod_ct_parse(&m.u.h, &e), 0);
    assert_int_equal(e.family, AF_INET6);
    assert_int_equal(e.zone, 1);
    assert_int_equal(e.orig.pb, 53);

    /* ICMP has no ports: fine; TCP without them is malformed. */
    c = tcp4;
    c.proto = IPPROTO_ICMP;
    c.ports = false;
    ct_msg(&m, &c);
    assert_int_equal(inpod_ct_parse(&m.u.h, &e), 0);
    c.proto = IPPROTO_TCP;
    ct_msg(&m, &c);
    assert_int_equal(inpod_ct_parse(&m.u.h, &e), -EINVAL);

    /* Every truncation of a good message is refused, none read past the end. */
    ct_msg(&m, &tcp4);
    uint32_t full = m.u.h.nlmsg_len;
    for (uint32_t len = NLMSG_HDRLEN; len < full; len++) {
        m.u.h.nlmsg_len = len;
        int rc = inpod_ct_parse(&m.u.h, &e);
        assert_true(rc == -EINVAL || rc == 0);
        if (rc == 0) /* cut between whole trailing attributes (status, mark, id) */
            assert_true(len >= full - 3 * NLA_ALIGN(NLA_HDRLEN + 4));
    }

    /* A wrong message type, a family other than IPv4/IPv6, an address of the wrong size. */
    ct_msg(&m, &tcp4);
    m.u.h.nlmsg_type = INPOD_CT_MSG(IPCTNL_MSG_CT_DELETE);
    assert_int_equal(inpod_ct_parse(&m.u.h, &e), -EINVAL);
    ct_msg(&m, &tcp4);
    ((struct nfgenmsg *)NLMSG_DATA(&m.u.h))->nfgen_family = AF_UNIX;
    assert_int_equal(inpod_ct_parse(&m.u.h, &e), -EINVAL);
    ct_msg(&m, &tcp4);
    ((struct nfgenmsg *)NLMSG_DATA(&m.u.h))->nfgen_family = AF_INET6;
    assert_int_equal(inpod_ct_parse(&m.u.h, &e), -EINVAL);
}

static void
test_ct_decide(void **state)
{
    struct inpod_flowset s0 = {0};
    struct inpod_flow sock = flow(AF_INET, "198.18.1.10", 40000, "198.18.2.10", 8080);
    struct inpod_ct e;
    struct ct_spec c = tcp4;
    struct nl_msg m;

    (void)state;
    assert_true(inpod_flowset_add(&s0, &sock));
    inpod_flowset_sort(&s0);

    /* An entry of a socket open at enrollment: marked, and the socket needs no new entry. */
    ct_msg(&m, &c);
    assert_int_equal(inpod_ct_parse(&m.u.h, &e), 0);
    assert_int_equal(inpod_ct_decide(&s0, &e), INPOD_CT_MARK);
    assert_true(s0.seen[0]);
    s0.seen[0] = false;

    /* Marked already: left, still counted as seen. */
    c.mark = INPOD_CT_EXISTING;
    ct_msg(&m, &c);
    assert_int_equal(inpod_ct_parse(&m.u.h, &e), 0);
    assert_int_equal(inpod_ct_decide(&s0, &e), INPOD_CT_LEAVE);
    assert_true(s0.seen[0]);
    s0.seen[0] = false;

    /* Started under the rules (tag 0x2000): left, whatever else it matches. */
    c.mark = INPOD_CT_NEW | 0x111;
    ct_msg(&m, &c);
    assert_int_equal(inpod_ct_parse(&m.u.h, &e), 0);
    assert_int_equal(inpod_ct_decide(&s0, &e), INPOD_CT_LEAVE);
    assert_false(s0.seen[0]);

    /* The pod's own DNAT rewrote the original destination: the reply tuple matches. */
    c = tcp4;
    c.dst = "198.19.0.10";
    c.dport = 80;
    ct_msg(&m, &c);
    assert_int_equal(inpod_ct_parse(&m.u.h, &e), 0);
    assert_int_equal(inpod_ct_decide(&s0, &e), INPOD_CT_MARK);
    assert_true(s0.seen[0]);

    /* No socket had it (a raw ACK's entry, a leftover): deleted. */
    c = tcp4;
    c.sport = c.rdport = 31011;
    ct_msg(&m, &c);
    assert_int_equal(inpod_ct_parse(&m.u.h, &e), 0);
    assert_int_equal(inpod_ct_decide(&s0, &e), INPOD_CT_DELETE);

    /* Not TCP, or another zone (ztunnel's DNS): not ours to judge. */
    c.proto = IPPROTO_UDP;
    ct_msg(&m, &c);
    assert_int_equal(inpod_ct_parse(&m.u.h, &e), 0);
    assert_int_equal(inpod_ct_decide(&s0, &e), INPOD_CT_LEAVE);
    c.proto = IPPROTO_TCP;
    c.zone = 1;
    ct_msg(&m, &c);
    assert_int_equal(inpod_ct_parse(&m.u.h, &e), 0);
    assert_int_equal(inpod_ct_decide(&s0, &e), INPOD_CT_LEAVE);
    inpod_flowset_free(&s0);
}

static void
test_attrs_parse(void **state)
{
    const struct nlattr *tb[4];
    unsigned char buf[16] = {0};
    struct nlattr *a = (struct nlattr *)buf;

    (void)state;
    assert_true(nl_attrs_parse(buf, 0, tb, 3));
    a->nla_len = 3; /* shorter than its own header */
    assert_false(nl_attrs_parse(buf, sizeof(buf), tb, 3));
    a->nla_len = 17; /* longer than what is there */
    assert_false(nl_attrs_parse(buf, sizeof(buf), tb, 3));
    a->nla_len = 5; /* one byte, unpadded, last */
    a->nla_type = 2;
    assert_true(nl_attrs_parse(buf, 5, tb, 3));
    assert_non_null(nl_attr_data(tb[2], 1));
    assert_null(nl_attr_data(tb[2], 2));
    assert_null(nl_attr_data(tb[1], 1));
    assert_true(nl_attrs_parse(buf, 8, tb, 3));  /* with its padding */
    assert_false(nl_attrs_parse(buf, 9, tb, 3)); /* a stray byte after that */
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_flowset),
        cmocka_unit_test(test_diag_parse),
        cmocka_unit_test(test_ct_parse),
        cmocka_unit_test(test_ct_decide),
        cmocka_unit_test(test_attrs_parse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
