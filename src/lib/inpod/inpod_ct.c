/*
 * inpod_ct.c - the connections a pod had when it was enrolled, and only
 * those, stay out of capture.
 *
 * The nat table sees a connection's first packet only. A connection older
 * than the rules is first seen mid-stream; redirecting that packet would
 * reset it. Exempting every first packet without SYN, as we once did, lets a
 * process with CAP_NET_RAW send one raw ACK from port P and then connect()
 * from P past ztunnel. Instead (inpod.c puts the steps in order):
 *
 *   1. the pod's TCP sockets are listed (sock_diag) just before the rules go in;
 *   2. the rules drop a first packet without SYN unless its conntrack entry
 *      carries INPOD_CT_EXISTING, exempt such entries from nat, and tag every
 *      entry they see start with INPOD_CT_NEW;
 *   3. every TCP entry of the pod's conntrack table is then judged against
 *      the list: INPOD_CT_NEW ones started under the rules and are left;
 *      those of a listed socket get INPOD_CT_EXISTING; the rest (leftovers, or
 *      made by a raw packet before the rules) are deleted; and a listed socket
 *      without an entry (conntrack starts in a namespace only once a rule
 *      needs it) gets one, established, marked.
 *
 * See inpod_ct.h; what remains open is written in ARCHITECTURE.md (in-pod mode).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/inet_diag.h>
#include <linux/netfilter/nf_conntrack_common.h>
#include <linux/netfilter/nf_conntrack_tcp.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_conntrack.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/base.h"
#include "inpod/inpod.h"
#include "inpod/inpod_ct.h"
#include "inpod/inpod_internal.h"

#define TCP_NEW_SYN_RECV_STATE 12 /* request sockets (kernel-internal state number) */
/* Connections that carry data: not listeners, not closed, not TIME_WAIT (nothing left to keep). */
#define LIVE_STATES                                                                               \
    ((1u << TCP_ESTABLISHED) | (1u << TCP_SYN_SENT) | (1u << TCP_SYN_RECV) |                      \
     (1u << TCP_FIN_WAIT1) | (1u << TCP_FIN_WAIT2) | (1u << TCP_CLOSE_WAIT) |                     \
     (1u << TCP_LAST_ACK) | (1u << TCP_CLOSING) | (1u << TCP_NEW_SYN_RECV_STATE))
#define CT_TIMEOUT_S 432000 /* conntrack's own for established TCP; each packet renews it */

static int
diag_cb(void *arg, const struct nlmsghdr *h)
{
    struct inpod_flowset *s = arg;
    struct inpod_flow f;
    int rc = inpod_diag_parse(h, &f);

    if (rc != 0)
        return rc < 0 ? rc : 0;
    return inpod_flowset_add(s, &f) ? 0 : -E2BIG;
}

int
inpod_ct_sockets(int netns_fd, bool ipv6, struct inpod_flowset *s0, char *err, size_t errlen)
{
    static const int families[] = {AF_INET, AF_INET6};
    int fd = inpod_nl_open(netns_fd, NETLINK_SOCK_DIAG, NULL, err, errlen);
    int rc = 0;

    if (fd < 0)
        return fd;
    for (size_t i = 0; i < (ipv6 ? 2u : 1u) && rc == 0; i++) {
        struct nl_msg m;
        struct inet_diag_req_v2 *r;

        nl_msg_init(&m, SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST | NLM_F_DUMP);
        r = nl_msg_put(&m, sizeof(*r));
        r->sdiag_family = (uint8_t)families[i];
        r->sdiag_protocol = IPPROTO_TCP;
        r->idiag_states = LIVE_STATES;
        rc = inpod_nl_dump(fd, &m.u.h, diag_cb, s0);
        if (rc < 0)
            snprintf(err, errlen, "listing the pod's %s TCP sockets (sock_diag): %s",
                     families[i] == AF_INET ? "IPv4" : "IPv6",
                     rc == -E2BIG ? "more than the cap" : strerror(-rc));
    }
    close(fd);
    if (rc == 0)
        inpod_flowset_sort(s0);
    return rc;
}

struct ct_list {
    struct inpod_ct *e;
    size_t n, cap;
};

static int
ct_cb(void *arg, const struct nlmsghdr *h)
{
    struct ct_list *l = arg;

    if (l->n == INPOD_FLOWS_MAX)
        return -E2BIG;
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 64;
        l->e = xrealloc(l->e, l->cap * sizeof(*l->e));
    }
    if (inpod_ct_parse(h, &l->e[l->n]) < 0)
        return -EPROTO;
    l->n++;
    return 0;
}

/* All entries of the namespace's table (every family and protocol). */
static int
ct_dump(int fd, struct ct_list *l, char *err, size_t errlen)
{
    struct nl_msg m;
    struct nfgenmsg *g;
    int rc;

    nl_msg_init(&m, INPOD_CT_MSG(IPCTNL_MSG_CT_GET), NLM_F_REQUEST | NLM_F_DUMP);
    g = nl_msg_put(&m, sizeof(*g));
    g->nfgen_family = AF_UNSPEC;
    g->version = NFNETLINK_V0;
    rc = inpod_nl_dump(fd, &m.u.h, ct_cb, l);
    if (rc < 0)
        snprintf(err, errlen, "reading the pod's conntrack table (ctnetlink): %s",
                 rc == -E2BIG ? "more entries than the cap" : strerror(-rc));
    return rc;
}

static void
ct_msg_init(struct nl_msg *m, uint8_t type, uint16_t flags, uint8_t family)
{
    struct nfgenmsg *g;

    nl_msg_init(m, INPOD_CT_MSG(type), (uint16_t)(NLM_F_REQUEST | NLM_F_ACK | flags));
    g = nl_msg_put(m, sizeof(*g));
    g->nfgen_family = family;
    g->version = NFNETLINK_V0;
}

/* CTA_TUPLE_ORIG or _REPLY for TCP flow |f| (a = source), reversed with |rev|. */
static void
put_tuple(struct nl_msg *m, uint16_t type, const struct inpod_flow *f, bool rev)
{
    bool v4 = f->family == AF_INET;
    size_t alen = v4 ? 4 : 16;
    uint8_t proto = IPPROTO_TCP;
    uint16_t sp = htons(rev ? f->pb : f->pa), dp = htons(rev ? f->pa : f->pb);
    struct nlattr *t = nl_nest_begin(m, type), *n;

    n = nl_nest_begin(m, CTA_TUPLE_IP);
    nl_attr_put(m, v4 ? CTA_IP_V4_SRC : CTA_IP_V6_SRC, rev ? f->b : f->a, alen);
    nl_attr_put(m, v4 ? CTA_IP_V4_DST : CTA_IP_V6_DST, rev ? f->a : f->b, alen);
    nl_nest_end(m, n);
    n = nl_nest_begin(m, CTA_TUPLE_PROTO);
    nl_attr_put(m, CTA_PROTO_NUM, &proto, 1);
    nl_attr_put(m, CTA_PROTO_SRC_PORT, &sp, 2);
    nl_attr_put(m, CTA_PROTO_DST_PORT, &dp, 2);
    nl_nest_end(m, n);
    nl_nest_end(m, t);
}

static void
put_be32(struct nl_msg *m, uint16_t type, uint32_t v)
{
    uint32_t be = htonl(v);
    nl_attr_put(m, type, &be, 4);
}

/* Sets (or clears) the bits |mask| of the mark of the entry with original tuple |orig|. */
static int
ct_set_bits(int fd, const struct inpod_flow *orig, uint32_t mask, bool set)
{
    struct nl_msg m;

    ct_msg_init(&m, IPCTNL_MSG_CT_NEW, 0, orig->family);
    put_tuple(&m, CTA_TUPLE_ORIG, orig, false);
    put_be32(&m, CTA_MARK, set ? mask : 0);
    put_be32(&m, CTA_MARK_MASK, mask);
    return inpod_nl_call(fd, &m.u.h);
}

static int
ct_delete(int fd, const struct inpod_ct *e)
{
    struct nl_msg m;

    ct_msg_init(&m, IPCTNL_MSG_CT_DELETE, 0, e->family);
    put_tuple(&m, CTA_TUPLE_ORIG, &e->orig, false);
    if (e->has_id)
        put_be32(&m, CTA_ID, e->id); /* not a newer entry that took the same tuple */
    return inpod_nl_call(fd, &m.u.h);
}

/*
 * An established entry for socket flow |f| (local end first), marked: replies
 * seen (so nat never looks at it), assured (not dropped early when the table
 * fills), windows not checked (we never saw the handshake).
 */
static int
ct_create(int fd, const struct inpod_flow *f, uint32_t status)
{
    struct nf_ct_tcp_flags liberal = {.flags = IP_CT_TCP_FLAG_BE_LIBERAL,
                                      .mask = IP_CT_TCP_FLAG_BE_LIBERAL};
    uint8_t state = TCP_CONNTRACK_ESTABLISHED;
    struct nlattr *pi, *tcp;
    struct nl_msg m;

    ct_msg_init(&m, IPCTNL_MSG_CT_NEW, NLM_F_CREATE | NLM_F_EXCL, f->family);
    put_tuple(&m, CTA_TUPLE_ORIG, f, false);
    put_tuple(&m, CTA_TUPLE_REPLY, f, true);
    put_be32(&m, CTA_TIMEOUT, CT_TIMEOUT_S);
    put_be32(&m, CTA_STATUS, status);
    put_be32(&m, CTA_MARK, INPOD_CT_EXISTING);
    pi = nl_nest_begin(&m, CTA_PROTOINFO);
    tcp = nl_nest_begin(&m, CTA_PROTOINFO_TCP);
    nl_attr_put(&m, CTA_PROTOINFO_TCP_STATE, &state, 1);
    nl_attr_put(&m, CTA_PROTOINFO_TCP_FLAGS_ORIGINAL, &liberal, sizeof(liberal));
    nl_attr_put(&m, CTA_PROTOINFO_TCP_FLAGS_REPLY, &liberal, sizeof(liberal));
    nl_nest_end(&m, tcp);
    nl_nest_end(&m, pi);
    return inpod_nl_call(fd, &m.u.h);
}

static void
flow_str(const struct inpod_flow *f, char *out, size_t len)
{
    char a[INET6_ADDRSTRLEN], b[INET6_ADDRSTRLEN];

    inet_ntop(f->family, f->a, a, sizeof(a));
    inet_ntop(f->family, f->b, b, sizeof(b));
    snprintf(out, len, "%s port %u -> %s port %u", a, f->pa, b, f->pb);
}

int
inpod_ct_sweep(int netns_fd, struct inpod_flowset *s0, struct inpod_ct_stats *st, char *err,
               size_t errlen)
{
    struct ct_list l = {0};
    char what[160];
    int fd, rc;

    memset(st, 0, sizeof(*st));
    st->sockets = s0->n;
    fd = inpod_nl_open(netns_fd, NETLINK_NETFILTER, NULL, err, errlen);
    if (fd < 0)
        return fd;
    /* The whole table first: changing it while the kernel walks it could skip entries. */
    rc = ct_dump(fd, &l, err, errlen);
    for (size_t i = 0; i < l.n && rc == 0; i++) {
        const struct inpod_ct *e = &l.e[i];
        const char *step = NULL;
        switch (inpod_ct_decide(s0, e)) {
        case INPOD_CT_LEAVE:
            break;
        case INPOD_CT_MARK:
            step = "marking";
            rc = ct_set_bits(fd, &e->orig, INPOD_CT_EXISTING, true);
            st->marked += rc == 0;
            break;
        case INPOD_CT_DELETE:
            step = "deleting";
            rc = ct_delete(fd, e);
            st->deleted += rc == 0;
            break;
        }
        if (rc == -ENOENT) /* it ended meanwhile */
            rc = 0;
        if (rc < 0) {
            flow_str(&e->orig, what, sizeof(what));
            snprintf(err, errlen, "%s conntrack entry %s: %s", step, what, strerror(-rc));
        }
    }
    for (size_t i = 0; i < s0->n && rc == 0; i++) {
        if (s0->seen[i])
            continue;
        rc = ct_create(fd, &s0->f[i], IPS_SEEN_REPLY | IPS_ASSURED);
        /*
         * Kernels that mark a new entry confirmed before applying CTA_STATUS
         * refuse a status without that bit as a change of it (-EBUSY); others
         * refuse it with the bit. Either is asked in turn.
         */
        if (rc == -EBUSY)
            rc = ct_create(fd, &s0->f[i], IPS_SEEN_REPLY | IPS_ASSURED | IPS_CONFIRMED);
        if (rc == 0) {
            st->created++;
        } else if (rc == -EEXIST) {
            /* Made since the dump, by one of its packets: not NEW-tagged, so mark it. */
            rc = ct_set_bits(fd, &s0->f[i], INPOD_CT_EXISTING, true);
            if (rc == 0)
                st->marked++;
        }
        if (rc < 0) {
            flow_str(&s0->f[i], what, sizeof(what));
            snprintf(err, errlen, "adding a conntrack entry for %s: %s", what, strerror(-rc));
        }
    }
    free(l.e);
    close(fd);
    return rc;
}

int
inpod_ct_list(int netns_fd, struct inpod_ct **out, size_t *n, char *err, size_t errlen)
{
    struct ct_list l = {0};
    int fd, rc;

    *out = NULL;
    *n = 0;
    fd = inpod_nl_open(netns_fd, NETLINK_NETFILTER, NULL, err, errlen);
    if (fd < 0)
        return fd;
    rc = ct_dump(fd, &l, err, errlen);
    close(fd);
    if (rc < 0) {
        free(l.e);
        return rc;
    }
    *out = l.e;
    *n = l.n;
    return 0;
}

int
inpod_ct_clear(int netns_fd, char *err, size_t errlen)
{
    struct ct_list l = {0};
    char what[160];
    int fd, rc;

    fd = inpod_nl_open(netns_fd, NETLINK_NETFILTER, NULL, err, errlen);
    if (fd < 0)
        return fd;
    rc = ct_dump(fd, &l, err, errlen);
    for (size_t i = 0; i < l.n && rc == 0; i++) {
        const struct inpod_ct *e = &l.e[i];
        if ((e->mark & (INPOD_CT_EXISTING | INPOD_CT_NEW)) == 0 || e->proto != IPPROTO_TCP)
            continue;
        rc = ct_set_bits(fd, &e->orig, INPOD_CT_EXISTING | INPOD_CT_NEW, false);
        if (rc == -ENOENT)
            rc = 0;
        if (rc < 0) {
            flow_str(&e->orig, what, sizeof(what));
            snprintf(err, errlen, "clearing the mark of conntrack entry %s: %s", what,
                     strerror(-rc));
        }
    }
    free(l.e);
    close(fd);
    return rc;
}
