/*
 * inpod_ct.h - the connections a pod had when it was enrolled: its TCP
 * sockets (sock_diag), its conntrack entries (ctnetlink), and what becomes of
 * each entry; see inpod_ct.c. The parsers and the decision are pure (unit
 * tests, fuzz_inpod_nl); the rest talks to the kernel inside the pod's
 * namespace.
 */
#ifndef MESH_LIB_INPOD_CT_H
#define MESH_LIB_INPOD_CT_H

#include <linux/netfilter/nfnetlink.h>
#include <linux/netlink.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A TCP connection by its two ends: a socket (local, remote) or a conntrack tuple (src, dst). */
struct inpod_flow {
    uint8_t family;   /* AF_INET (address in the first 4 bytes) or AF_INET6 */
    uint8_t a[16], b[16];
    uint16_t pa, pb;  /* host order */
};

/* The sockets seen at enrollment, sorted with ends in a fixed order (no direction). */
struct inpod_flowset {
    struct inpod_flow *f;
    bool *seen; /* a conntrack entry matched it */
    size_t n, cap;
};

#define INPOD_FLOWS_MAX ((size_t)1 << 18) /* sockets or entries taken from one pod */

/* Adds |f| (its ends put in the set's order). False when the set holds INPOD_FLOWS_MAX. */
bool inpod_flowset_add(struct inpod_flowset *s, const struct inpod_flow *f);
/* Sorts and removes duplicates (both ends of a loopback connection); call before find. */
void inpod_flowset_sort(struct inpod_flowset *s);
/* Index of the flow with the same two ends as |f| (either order), or -1. */
long inpod_flowset_find(const struct inpod_flowset *s, const struct inpod_flow *f);
void inpod_flowset_free(struct inpod_flowset *s);

/*
 * One sock_diag answer (SOCK_DIAG_BY_FAMILY, struct inet_diag_msg) as a flow
 * (local end in a, remote in b; IPv4-mapped IPv6 becomes IPv4). Returns 0,
 * 1 for a message to skip (not an inet socket message), -EINVAL if malformed.
 */
int inpod_diag_parse(const struct nlmsghdr *h, struct inpod_flow *f);

/* A ctnetlink message type (NFNL_SUBSYS_CTNETLINK, IPCTNL_MSG_*). */
#define INPOD_CT_MSG(t) ((uint16_t)((NFNL_SUBSYS_CTNETLINK << 8) | (t)))

/* One conntrack entry, as ctnetlink dumps it. */
struct inpod_ct {
    uint8_t family; /* of the message: AF_INET or AF_INET6 */
    uint8_t proto;  /* IPPROTO_TCP, ... */
    struct inpod_flow orig, reply; /* a = source, b = destination */
    uint32_t mark, id;
    uint16_t zone;
    bool has_id;
};

/* Parses an IPCTNL_MSG_CT_NEW message of a dump. Returns 0 or -EINVAL if malformed. */
int inpod_ct_parse(const struct nlmsghdr *h, struct inpod_ct *e);

enum inpod_ct_action {
    INPOD_CT_LEAVE,  /* not ours to judge (not TCP, another zone) or made after the rules */
    INPOD_CT_MARK,   /* a connection that existed at enrollment: gets INPOD_CT_EXISTING */
    INPOD_CT_DELETE, /* no socket had it at enrollment: a leftover, or made to slip past */
};

/*
 * What to do with entry |e| given |s0|, the sockets of the pod just before
 * the rules went in (sorted); marks the matching socket seen.
 */
enum inpod_ct_action inpod_ct_decide(struct inpod_flowset *s0, const struct inpod_ct *e);

/* Fills |s0| with the pod's TCP connections (not listeners, not TIME_WAIT), sorted. */
int inpod_ct_sockets(int netns_fd, bool ipv6, struct inpod_flowset *s0, char *err, size_t errlen);

struct inpod_ct_stats {
    size_t sockets, marked, created, deleted;
};

/*
 * With the rules in place: every TCP entry of the pod's conntrack table is
 * marked, deleted or left (inpod_ct_decide), and each socket of |s0| that has
 * no entry gets one (established, marked). Returns 0 or -errno with |err|.
 */
int inpod_ct_sweep(int netns_fd, struct inpod_flowset *s0, struct inpod_ct_stats *st, char *err,
                   size_t errlen);

/* All entries of the pod's conntrack table (heap array, caller frees). Returns 0 or -errno. */
int inpod_ct_list(int netns_fd, struct inpod_ct **out, size_t *n, char *err, size_t errlen);

/* Clears our mark bits from every entry of the pod (removal). Returns 0 or -errno. */
int inpod_ct_clear(int netns_fd, char *err, size_t errlen);

#endif
