/*
 * listener.h - a listening socket driven by the loop.
 *
 * Accepted sockets are non-blocking, tuned (sock_tune) and handed to |cb|,
 * which owns them. When accept(2) fails (EMFILE, ENOMEM) the listener pauses
 * for a moment rather than spin on a socket that stays readable.
 */
#ifndef MESH_LIB_LISTENER_H
#define MESH_LIB_LISTENER_H

#include <stddef.h>
#include <stdint.h>

#include "loop/loop.h"
#include "net/addr.h"
#include "net/sock.h"

struct listener;
typedef void listener_fn(void *arg, int fd, const struct ipaddr *peer, uint16_t peer_port);

/* Listens on |ip| (NULL: [::] dual-stack) and |port|. NULL with |err| filled on failure. */
struct listener *listener_open(struct loop *loop, const char *name, const struct ipaddr *ip,
                               uint16_t port, const struct sock_opts *o, listener_fn *cb,
                               void *arg, char *err, size_t errlen);
/* Stops accepting and closes; safe from inside |cb| (the memory goes at the end of the batch). */
void listener_close(struct listener *l);

#endif
