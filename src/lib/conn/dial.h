/*
 * dial.h - a non-blocking TCP connect with a deadline.
 */
#ifndef MESH_LIB_DIAL_H
#define MESH_LIB_DIAL_H

#include "loop/loop.h"
#include "net/sock.h"

#define DIAL_TIMEOUT_MS 10000 /* ztunnel's connect timeout for any upstream */

/* Called once with a connected fd (caller owns it) or a negative error. */
typedef void dial_fn(void *arg, int fd);

struct dial;

/* Starts connecting; |cb| always runs later from the loop, never from here. */
struct dial *dial_start(struct loop *l, const struct ipaddr *dst, uint16_t port,
                        const struct ipaddr *src, const struct sock_opts *o, uint64_t timeout_ms,
                        dial_fn *cb, void *arg);
/* Abandons a dial whose callback has not run yet; the callback will not run. */
void dial_cancel(struct dial *d);

#endif
