/*
 * inpod_internal.h - pieces of the inpod module shared between its files and
 * its unit tests: a growable text buffer, running a command inside a network
 * namespace with a deadline, netlink inside a namespace, the policy-routing
 * rule and route.
 */
#ifndef MESH_LIB_INPOD_INTERNAL_H
#define MESH_LIB_INPOD_INTERNAL_H

#include <linux/netlink.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct text {
    char *p;
    size_t len, cap;
};

void text_printf(struct text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void text_append(struct text *t, const char *data, size_t len);
/* Returns the text written so far ("" if none), heap-allocated, owned by the caller. */
char *text_take(struct text *t);

#define INPOD_OUT_MAX ((size_t)16 << 20) /* stdout kept from a command */

/*
 * Runs |argv| (argv[0] looked up in |bin_dir|, or $PATH then /usr/sbin and
 * /sbin) in a child process that first joins network namespace |netns_fd|
 * (-1: stays in the caller's), with |input| (NULL: nothing) on stdin. The
 * child and anything it started are killed after |timeout_ms|. With |out|,
 * stores its stdout (heap, NUL-terminated) there on success.
 * Returns 0 on exit status 0; -ENOENT (no such program), -ETIMEDOUT, -EIO
 * (non-zero status or signal), or another -errno from setting up, with
 * |err| saying what happened, including the command's stderr.
 */
int inpod_run(int netns_fd, const char *bin_dir, const char *const argv[], const char *input,
              char **out, int timeout_ms, char *err, size_t errlen);

/* ---- netlink inside a namespace (inpod_nl.c) ---- */

struct inpod_ns_info {
    bool has_ipv6; /* the kernel has IPv6 here (/proc/sys/net/ipv6 exists) */
    bool lo_v6;    /* and lo has it enabled */
};

/*
 * Opens a netlink socket of |protocol| inside namespace |netns_fd| (-1: the
 * caller's), receive timeout 5 s, and fills |info| (may be NULL). Returns the
 * descriptor, or -errno with |err| set.
 */
int inpod_nl_open(int netns_fd, int protocol, struct inpod_ns_info *info, char *err,
                  size_t errlen);

struct nl_msg {
    union {
        struct nlmsghdr h;
        char buf[512];
    } u;
};

void nl_msg_init(struct nl_msg *m, uint16_t type, uint16_t flags);
/* Appends |len| zeroed bytes (aligned), returns them. */
void *nl_msg_put(struct nl_msg *m, size_t len);
void nl_attr_put(struct nl_msg *m, uint16_t type, const void *data, size_t len);
struct nlattr *nl_nest_begin(struct nl_msg *m, uint16_t type);
void nl_nest_end(struct nl_msg *m, struct nlattr *a);

/* Sends |h| (NLM_F_ACK set by the caller) and returns the kernel's answer: 0 or -errno. */
int inpod_nl_call(int fd, struct nlmsghdr *h);

/* Calls |cb| for each message of the dump |h| asked for; a negative return stops it. */
typedef int (*inpod_nl_cb)(void *arg, const struct nlmsghdr *h);
int inpod_nl_dump(int fd, struct nlmsghdr *h, inpod_nl_cb cb, void *arg);

/*
 * Splits |len| bytes of attributes into |tb|[0..max] by type (last one wins,
 * types above |max| ignored). False if an attribute's length is impossible.
 */
bool nl_attrs_parse(const void *data, size_t len, const struct nlattr **tb, size_t max);
/* The payload of |a| if it is exactly |want| bytes long, else NULL (also for a NULL |a|). */
const void *nl_attr_data(const struct nlattr *a, size_t want);

/*
 * Adds (idempotently) or deletes (absent is fine) the rule "fwmark
 * 0x111/0xfff pref 32764 lookup 100" and the route "local 0.0.0.0/0 dev lo
 * table 100" in namespace |netns_fd| (-1: the caller's), and the IPv6 pair
 * where the namespace has IPv6 (the route only where lo has IPv6, as Istio
 * does). Returns 0 or -errno with |err| set.
 */
int inpod_routing(int netns_fd, bool add, char *err, size_t errlen);

#endif
