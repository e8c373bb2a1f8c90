/*
 * inpod_internal.h - pieces of the inpod module shared between its files and
 * its unit tests: a growable text buffer, running a command inside a network
 * namespace with a deadline, and the policy-routing rule and route.
 */
#ifndef MESH_LIB_INPOD_INTERNAL_H
#define MESH_LIB_INPOD_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>

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

/*
 * Adds (idempotently) or deletes (absent is fine) the rule "fwmark
 * 0x111/0xfff pref 32764 lookup 100" and the route "local 0.0.0.0/0 dev lo
 * table 100" in namespace |netns_fd| (-1: the caller's), and the IPv6 pair
 * with |ipv6| (the route only where lo has IPv6, as Istio does).
 * Returns 0 or -errno with |err| set.
 */
int inpod_routing(int netns_fd, bool add, bool ipv6, char *err, size_t errlen);

#endif
